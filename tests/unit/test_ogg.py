from __future__ import annotations

import numpy as np
import pytest

from pplex_desktop.moshi.codec import OpusEncoder
from pplex_desktop.moshi.ogg import OggError, OggPageReader, split_pages
from tests.signals import tone


def _stream(frames: int = 5) -> bytes:
    enc = OpusEncoder()
    x = tone(440, frames * 0.08)
    return b"".join(enc.encode(x[i * 1920 : (i + 1) * 1920]) for i in range(frames))


def test_pages_reserialise_byte_exact() -> None:
    data = _stream()
    pages = split_pages(data)
    assert pages[0].is_opus_head and pages[1].is_opus_tags
    assert b"".join(p.to_bytes() for p in pages) == data


def test_reader_accepts_any_slicing() -> None:
    data = _stream()
    reader = OggPageReader()
    pages = [p for i in range(0, len(data), 3) for p in reader.feed(data[i : i + 3])]
    assert pages == split_pages(data)
    assert reader.pending == 0


def test_damaged_page_fails_its_checksum() -> None:
    data = bytearray(_stream())
    data[40] ^= 0xFF
    with pytest.raises(OggError, match="checksum"):
        split_pages(bytes(data))


@pytest.mark.parametrize("data", [b"RIFF....", b"\x00" * 30, b"OggS\x01" + b"\x00" * 30])
def test_garbage_is_not_a_page(data: bytes) -> None:
    with pytest.raises(OggError):
        split_pages(data)


def test_truncated_stream_is_reported() -> None:
    data = _stream()
    with pytest.raises(OggError, match="middle"):
        split_pages(data[:-5])


def test_granule_rewrite_keeps_a_valid_page() -> None:
    page = split_pages(_stream())[3]
    again = split_pages(page.with_granule(1234).to_bytes())[0]
    assert again.granule == 1234
    assert again.body == page.body
    assert np.frombuffer(again.lacing, np.uint8).sum() == len(again.body)
