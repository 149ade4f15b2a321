"""G.711 against the ITU segment rules: known codes, the whole 16-bit range, and resampling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pplex_desktop.moshi import g711
from tests.signals import dominant_frequency, tone


@pytest.mark.parametrize(
    ("law", "pcm", "code"),
    [
        ("pcmu", 0, 0xFF),
        ("pcmu", -1, 0x7E),
        ("pcmu", 32767, 0x80),
        ("pcmu", -32768, 0x00),
        ("pcma", 0, 0xD5),
        ("pcma", -1, 0x55),
        ("pcma", 32767, 0xAA),
        ("pcma", -32768, 0x2A),
    ],
)
def test_known_codes(law: g711.Law, pcm: int, code: int) -> None:
    assert g711.encode(law, np.array([pcm], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize("law", ["pcmu", "pcma"])
def test_every_code_decodes_to_a_value_that_encodes_back_to_it(law: g711.Law) -> None:
    codes = bytes(range(256))
    decoded = g711.decode(law, codes)
    again = g711.encode(law, decoded)
    # mu-law has two codes for zero (+0 and -0); every other code is its own fixed point.
    mismatched = [c for c, d in zip(codes, again, strict=True) if c != d]
    assert mismatched in ([], [0x7F])


@pytest.mark.parametrize("law", ["pcmu", "pcma"])
def test_matches_the_reference_where_python_still_ships_it(law: g711.Law) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop", reason="audioop left Python in 3.13")
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    reference = (audioop.lin2ulaw if law == "pcmu" else audioop.lin2alaw)(pcm.tobytes(), 2)
    assert g711.encode(law, pcm) == reference


@pytest.mark.parametrize("law", ["pcmu", "pcma"])
def test_streams_resample_between_the_phone_and_the_model(law: g711.Law) -> None:
    phone = (tone(1000, 1.0, rate=8_000) * 32767).astype(np.int16)
    decoder, encoder = g711.G711Decoder(law), g711.G711Encoder(law)
    wide = np.concatenate(
        [decoder.decode(g711.encode(law, phone[i : i + 160])) for i in range(0, 8000, 160)]
    )
    assert dominant_frequency(wide) == pytest.approx(1000, abs=5)
    assert len(wide) == pytest.approx(24_000, abs=600)  # the resampler holds ~20 ms back
    back = b"".join(encoder.encode(wide[i : i + 1920]) for i in range(0, len(wide), 1920))
    narrow = g711.decode(law, back).astype(np.float32) / 32768
    assert dominant_frequency(narrow, rate=8_000) == pytest.approx(1000, abs=10)
    signal = narrow[800:-800]
    assert 0.3 < float(np.sqrt(np.mean(signal**2))) < 0.4  # a 0.5 tone keeps its level
