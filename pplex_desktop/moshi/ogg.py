"""Just enough Ogg framing to split, inspect and rewrite pages (RFC 3533).

The codec itself lives in sphn; this module lets the simulated backend reproduce each upstream
server's message layout and lets tests check that a stream arrived byte-exact.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

CAPTURE = b"OggS"
_HEADER = struct.Struct("<4sBBqIIIB")
FLAG_CONTINUED = 0x01
FLAG_BOS = 0x02
FLAG_EOS = 0x04
MAX_PAGE_SIZE = _HEADER.size + 255 + 255 * 255


class OggError(ValueError):
    """Bytes that are not a well-formed Ogg stream."""


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def ogg_crc(data: bytes) -> int:
    crc = 0
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


@dataclass(frozen=True, slots=True)
class OggPage:
    header_type: int
    granule: int
    serial: int
    sequence: int
    lacing: bytes
    body: bytes

    @property
    def is_opus_head(self) -> bool:
        return self.body.startswith(b"OpusHead")

    @property
    def is_opus_tags(self) -> bool:
        return self.body.startswith(b"OpusTags")

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(
            CAPTURE,
            0,
            self.header_type,
            self.granule,
            self.serial,
            self.sequence,
            0,
            len(self.lacing),
        )
        raw = header + self.lacing + self.body
        crc = ogg_crc(raw)
        return raw[:22] + struct.pack("<I", crc) + raw[26:]

    def with_granule(self, granule: int) -> OggPage:
        return replace(self, granule=granule)


class OggPageReader:
    """Incremental page parser: feed any slices of a stream, get whole pages back."""

    def __init__(self, *, check_crc: bool = True) -> None:
        self._buffer = bytearray()
        self._check_crc = check_crc

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole page."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[OggPage]:
        self._buffer += data
        pages: list[OggPage] = []
        while True:
            page = self._next_page()
            if page is None:
                return pages
            pages.append(page)

    def _next_page(self) -> OggPage | None:
        buf = self._buffer
        if len(buf) < 4:
            if not CAPTURE.startswith(bytes(buf)):
                raise OggError("The stream does not start an Ogg page where one was expected.")
            return None
        if buf[:4] != CAPTURE:
            raise OggError("The stream does not start an Ogg page where one was expected.")
        if len(buf) < _HEADER.size:
            return None
        _, version, header_type, granule, serial, sequence, crc, nseg = _HEADER.unpack_from(buf)
        if version != 0:
            raise OggError(f"The Ogg page version {version} is not supported.")
        end_of_lacing = _HEADER.size + nseg
        if len(buf) < end_of_lacing:
            return None
        lacing = bytes(buf[_HEADER.size : end_of_lacing])
        end = end_of_lacing + sum(lacing)
        if len(buf) < end:
            return None
        raw = bytes(buf[:end])
        del buf[:end]
        if self._check_crc:
            zeroed = raw[:22] + b"\x00\x00\x00\x00" + raw[26:]
            if ogg_crc(zeroed) != crc:
                raise OggError("An Ogg page failed its checksum: the stream was damaged.")
        return OggPage(header_type, granule, serial, sequence, lacing, raw[end_of_lacing:])


def split_pages(data: bytes) -> list[OggPage]:
    """Split bytes holding only whole pages; raise if anything is left over."""
    reader = OggPageReader()
    pages = reader.feed(data)
    if reader.pending:
        raise OggError("The data ends in the middle of an Ogg page.")
    return pages
