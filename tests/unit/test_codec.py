from __future__ import annotations

import numpy as np
import pytest

from pplex_desktop.moshi.codec import FRAME_SAMPLES, CodecError, OpusDecoder, OpusEncoder
from pplex_desktop.moshi.framing import Framer
from tests.signals import dominant_frequency, tone


def _encode(pcm: np.ndarray) -> list[bytes]:
    enc = OpusEncoder()
    return [enc.encode(f) for f in Framer().push(pcm)]


def test_tone_survives_a_round_trip() -> None:
    x = tone(440, 2.0)
    dec = OpusDecoder()
    y = np.concatenate([dec.decode(b) for b in _encode(x)])
    assert y.shape[0] == x.shape[0]
    assert dominant_frequency(y[FRAME_SAMPLES:]) == pytest.approx(440, abs=5)


def test_decoder_accepts_the_stream_in_arbitrary_slices() -> None:
    data = b"".join(_encode(tone(300, 0.96)))
    dec = OpusDecoder()
    y = np.concatenate([dec.decode(data[i : i + 11]) for i in range(0, len(data), 11)])
    assert y.shape[0] == 12 * FRAME_SAMPLES


def test_first_message_carries_the_headers() -> None:
    first = _encode(tone(300, 0.08))[0]
    assert first.startswith(b"OggS") and b"OpusHead" in first and b"OpusTags" in first


@pytest.mark.parametrize("shape", [(1919,), (1920, 2), (0,)])
def test_encoder_refuses_wrong_frame_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(CodecError, match="1920"):
        OpusEncoder().encode(np.zeros(shape, np.float32))


def test_encoder_refuses_nan() -> None:
    frame = np.zeros(FRAME_SAMPLES, np.float32)
    frame[5] = np.nan
    with pytest.raises(CodecError, match="NaN"):
        OpusEncoder().encode(frame)


def test_loud_input_is_clipped_not_refused() -> None:
    assert OpusEncoder().encode(np.full(FRAME_SAMPLES, 4.0, np.float32))


@pytest.mark.parametrize("garbage", [b"RIFF\x00\x00\x00\x00WAVE", b"\x00" * 64, b"Ogg"[:2] + b"x"])
def test_decoder_rejects_garbage_with_a_clear_error(garbage: bytes) -> None:
    with pytest.raises(CodecError, match="Ogg Opus"):
        OpusDecoder().decode(garbage)


def test_truncated_stream_decodes_what_is_whole() -> None:
    data = b"".join(_encode(tone(300, 0.8)))
    dec = OpusDecoder()
    y = dec.decode(data[: len(data) - 20])
    assert 0 < y.shape[0] < 10 * FRAME_SAMPLES


def test_spliced_second_stream_is_refused() -> None:
    dec = OpusDecoder()
    first = b"".join(_encode(tone(300, 0.4)))
    dec.decode(first)
    with pytest.raises(CodecError):
        dec.decode(b"".join(_encode(tone(300, 0.4))))
