"""How much audio an Ogg Opus stream carries, read from the packets themselves.

The gateway forwards native streams without decoding them, yet must account audio seconds per
key and refuse clients that send faster than real time. Granule positions cannot be trusted
(PersonaPlex writes them in 24 kHz units, the spec says 48 kHz), but every Opus packet's first
byte (its TOC, RFC 6716 section 3.1) states its exact duration.
"""

from __future__ import annotations

from pplex_desktop.moshi.ogg import OggError, OggPageReader

OPUS_RATE = 48_000
# Frame length in 48 kHz samples for each of the 32 TOC configurations.
FRAME_SAMPLES_48K = tuple(
    [480, 960, 1920, 2880] * 3  # SILK-only, NB/MB/WB: 10, 20, 40, 60 ms
    + [480, 960] * 2  # hybrid SWB/FB: 10, 20 ms
    + [120, 240, 480, 960] * 4  # CELT-only: 2.5, 5, 10, 20 ms
)


def opus_packet_samples(packet: bytes) -> int:
    """Duration of one Opus packet in 48 kHz samples (0 for an empty or malformed packet)."""
    if not packet:
        return 0
    toc = packet[0]
    frame = FRAME_SAMPLES_48K[toc >> 3]
    code = toc & 0x03
    if code == 0:
        return frame
    if code in (1, 2):
        return 2 * frame
    if len(packet) < 2:
        return 0
    return (packet[1] & 0x3F) * frame


class OggOpusDuration:
    """Feed slices of one Ogg Opus stream; read the audio seconds seen so far."""

    def __init__(self) -> None:
        self._pages = OggPageReader(check_crc=False)
        self._partial = bytearray()
        self._packets = 0
        self.samples_48k = 0
        self.broken = False

    @property
    def seconds(self) -> float:
        return self.samples_48k / OPUS_RATE

    def feed(self, data: bytes) -> float:
        """Return the seconds of audio completed by ``data``; a broken stream counts nothing."""
        if self.broken:
            return 0.0
        try:
            pages = self._pages.feed(data)
        except OggError:
            self.broken = True
            return 0.0
        before = self.samples_48k
        for page in pages:
            offset = 0
            for lace in page.lacing:
                self._partial += page.body[offset : offset + lace]
                offset += lace
                if lace < 255:
                    self._packet(bytes(self._partial))
                    self._partial.clear()
        return (self.samples_48k - before) / OPUS_RATE

    def _packet(self, packet: bytes) -> None:
        self._packets += 1
        if self._packets <= 2 and packet.startswith((b"OpusHead", b"OpusTags")):
            return
        self.samples_48k += opus_packet_samples(packet)
