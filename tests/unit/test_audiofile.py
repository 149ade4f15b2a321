from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pplex_desktop.moshi.audiofile import (
    AudioTooLongError,
    InvalidAudioError,
    NotAudioError,
    probe,
    read_mono,
    resample,
    to_mono,
    write_wav,
)
from tests.signals import dominant_frequency, tone


@pytest.mark.parametrize(
    ("rate", "channels", "fmt"),
    [
        (16_000, 2, "WAV"),
        (44_100, 1, "WAV"),
        (48_000, 2, "FLAC"),
        (22_050, 1, "OGG"),
        (24_000, 1, "WAV"),
    ],
)
def test_any_rate_and_layout_becomes_24k_mono(
    tmp_path: Path, rate: int, channels: int, fmt: str
) -> None:
    x = tone(440, 1.5, rate)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    path = tmp_path / f"in.{fmt.lower()}"
    sf.write(path, data, rate, format=fmt)
    y = read_mono(path)
    assert abs(len(y) - 36_000) <= 2
    assert dominant_frequency(y) == pytest.approx(440, abs=3)
    assert y.dtype == np.float32


def test_stereo_is_averaged(tmp_path: Path) -> None:
    left = tone(440, 0.5, 24_000)
    stereo = np.stack([left, -left], axis=1)
    path = tmp_path / "cancel.wav"
    sf.write(path, stereo, 24_000, subtype="FLOAT")
    assert np.max(np.abs(read_mono(path))) < 1e-6


def test_text_file_named_wav_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    with pytest.raises(NotAudioError, match=r"notes\.wav.*not an audio file") as info:
        probe(path)
    assert info.value.status == 415


def test_empty_file_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(NotAudioError):
        probe(path)


def test_unsupported_container_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.aiff"
    sf.write(path, tone(440, 0.1), 24_000, format="AIFF")
    with pytest.raises(NotAudioError, match="AIFF"):
        probe(path)


def test_header_with_no_frames_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(0, np.float32), 24_000)
    with pytest.raises(InvalidAudioError, match="no audio frames"):
        read_mono(path)


def test_length_limit_counts_decoded_frames(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, tone(200, 4.0, 8_000), 8_000)
    with pytest.raises(AudioTooLongError, match="3 seconds") as info:
        read_mono(path, max_seconds=3)
    assert info.value.status == 413
    assert len(read_mono(path, max_seconds=5)) == 96_000


def test_absurd_sample_rate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fast.wav"
    sf.write(path, tone(200, 0.1, 8_000), 8_000)
    raw = bytearray(path.read_bytes())
    raw[24:28] = (2_000_000_000).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises((InvalidAudioError, NotAudioError), match=r"sample rate|not an audio"):
        probe(path)


def test_write_wav_is_16_bit_and_clipped(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    write_wav(path, np.array([0.0, 2.0, -2.0, np.nan], np.float32))
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (24_000, 1, "PCM_16")
    data, _ = sf.read(path, dtype="float32")
    assert data[1] == pytest.approx(1.0, abs=1e-4) and data[2] == -1.0 and data[3] == 0.0


def test_to_mono_and_resample_shapes() -> None:
    assert to_mono(np.ones((10, 3), np.float32)).shape == (10,)
    assert resample(tone(440, 1.0, 48_000), 48_000).shape == (24_000,)
