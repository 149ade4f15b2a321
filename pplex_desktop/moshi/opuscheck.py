"""Refusing an Ogg Opus stream that a model server's decoder would choke on, before it gets there.

A model server that meets a corrupt stream ends the conversation: pplex-sim closes with 1007,
the real Kyutai server drops TCP without a close frame, which looks exactly like a crash. So the
gateway checks what a client sends to /api/chat before forwarding it: the Ogg page framing, one
logical stream that starts with its OpusHead, and the structure of every Opus packet as libopus
checks it before decoding (RFC 6716 section 3.4; ``opus_packet_parse_impl``), which is where its
decoder fails on garbage. Nothing is decoded: the check costs microseconds per message.
"""

from __future__ import annotations

import struct

from pplex_desktop.moshi.ogg import FLAG_BOS, FLAG_CONTINUED, OggError, OggPage, OggPageReader
from pplex_desktop.moshi.opusclock import FRAME_SAMPLES_48K, OPUS_RATE, opus_packet_samples

MAX_PACKET_BYTES = 65_536  # 120 ms at the highest bitrate is about 60 KB
MAX_FRAME_BYTES = 1275  # RFC 6716 section 3.2.1
MAX_PACKET_SAMPLES_48K = 5760  # 120 ms


class StreamError(ValueError):
    """Client audio that is not a valid Ogg Opus stream; the message is a sentence."""


def _size(data: bytes, at: int) -> tuple[int, int]:
    """A frame length (RFC 6716 section 3.2.1) at ``at``: (length, bytes used), (-1, 0) if cut."""
    if at >= len(data):
        return -1, 0
    first = data[at]
    if first < 252:
        return first, 1
    if at + 1 >= len(data):
        return -1, 0
    return 4 * data[at + 1] + first, 2


def check_opus_packet(packet: bytes) -> str | None:
    """Why libopus would refuse ``packet``, or None if its framing is sound."""
    if not packet:
        return None  # an empty packet is a lost one: decoders conceal it
    toc = packet[0]
    frame = FRAME_SAMPLES_48K[toc >> 3]
    code = toc & 0x03
    rest = len(packet) - 1
    if code == 0:
        last = rest
    elif code == 1:
        if rest % 2:
            return "a two-frame packet of odd length"
        last = rest // 2
    elif code == 2:
        first, used = _size(packet, 1)
        if first < 0 or first > rest - used:
            return "a frame longer than its packet"
        last = rest - used - first
        if first > MAX_FRAME_BYTES:
            return "a frame longer than 1,275 bytes"
    else:
        if rest < 1:
            return "a packet without its frame count"
        count = packet[1] & 0x3F
        if count == 0 or count * frame > MAX_PACKET_SAMPLES_48K:
            return "a packet of no frames or more than 120 ms"
        at, rest = 2, rest - 1
        if packet[1] & 0x40:  # padding
            while True:
                if rest <= 0:
                    return "padding longer than its packet"
                pad = packet[at]
                at, rest = at + 1, rest - 1
                rest -= 254 if pad == 255 else pad
                if pad != 255:
                    break
            if rest < 0:
                return "padding longer than its packet"
        if packet[1] & 0x80:  # variable bitrate: every frame but the last has its length
            last = rest
            for _ in range(count - 1):
                size, used = _size(packet, at)
                rest -= used
                if size < 0 or size > rest:
                    return "a frame longer than its packet"
                if size > MAX_FRAME_BYTES:
                    return "a frame longer than 1,275 bytes"
                at += used + size
                rest -= size
                last -= used + size
            if last < 0:
                return "frames longer than their packet"
        else:
            last = rest // count
            if last * count != rest:
                return "constant-bitrate frames that do not divide their packet"
    if last > MAX_FRAME_BYTES:
        return "a frame longer than 1,275 bytes"
    return None


def check_opus_head(packet: bytes) -> str | None:
    """Why ``packet`` is not an OpusHead a mono or stereo decoder takes (RFC 7845 section 5.1)."""
    if len(packet) < 19 or not packet.startswith(b"OpusHead"):
        return "its first packet is not an OpusHead"
    version, channels, _pre_skip, _rate, _gain, family = struct.unpack_from("<BBHIhB", packet, 8)
    if version >> 4:
        return f"its OpusHead has version {version}, which no decoder reads"
    if family != 0 or not 1 <= channels <= 2:
        return "its OpusHead asks for more than two channels"
    return None


class OggOpusChecker:
    """Feed the slices of one client's Ogg Opus stream in order; each is checked before use."""

    def __init__(self) -> None:
        self._pages = OggPageReader(check_crc=False)  # decoders ignore checksums too
        self._serial: int | None = None
        self._partial = bytearray()
        self._packets = 0
        self.samples_48k = 0

    def feed(self, data: bytes) -> float:
        """Return the seconds of audio ``data`` completes; raise StreamError if it is corrupt."""
        try:
            pages = self._pages.feed(data)
        except OggError as exc:
            raise StreamError(f"The audio is not a valid Ogg Opus stream: {exc}") from None
        if self._pages.pending > MAX_PACKET_BYTES + 65_536:
            raise StreamError("The audio is not a valid Ogg Opus stream: a page never ends.")
        before = self.samples_48k
        for page in pages:
            problem = self._page(page)
            if problem is not None:
                raise StreamError(f"The audio is not a valid Ogg Opus stream: {problem}.")
        return (self.samples_48k - before) / OPUS_RATE

    def _page(self, page: OggPage) -> str | None:
        if self._serial is None:
            if not page.header_type & FLAG_BOS:
                return "it does not begin with the first page of a stream"
            self._serial = page.serial
        elif page.serial != self._serial or page.header_type & FLAG_BOS:
            return "a second stream was spliced into the first"
        if bool(page.header_type & FLAG_CONTINUED) != bool(self._partial):
            return "a page breaks the packet it continues"
        offset = 0
        for lace in page.lacing:
            self._partial += page.body[offset : offset + lace]
            offset += lace
            if len(self._partial) > MAX_PACKET_BYTES:
                return "a packet is longer than any Opus packet"
            if lace < 255:
                problem = self._packet(bytes(self._partial))
                self._partial.clear()
                if problem is not None:
                    return problem
        return None

    def _packet(self, packet: bytes) -> str | None:
        self._packets += 1
        if self._packets == 1:
            return check_opus_head(packet)
        if self._packets == 2:
            return None if packet.startswith(b"OpusTags") else "its second packet is not OpusTags"
        problem = check_opus_packet(packet)
        if problem is None:
            self.samples_48k += opus_packet_samples(packet)
            return None
        return f"it holds {problem}"
