"""Checking and preparing a recording as a voice prompt (moshi/voice_check.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from pplex_desktop.core.errors import PplexError
from pplex_desktop.moshi.voice_check import TARGET_LUFS, VoiceRefusedError, prepare_voice
from tests.voice_samples import clipped, speechlike, wav_bytes


def _write(tmp_path: Path, data: bytes, name: str = "in.wav") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("rate", "channels"), [(24_000, 1), (48_000, 2), (16_000, 1)])
def test_a_good_recording_becomes_24k_mono_at_minus_24_lufs(
    tmp_path: Path, rate: int, channels: int
) -> None:
    pcm = speechlike(12.0, rate, level=0.05)
    data = np.stack([pcm] * channels, axis=1) if channels > 1 else pcm
    source = _write(tmp_path, wav_bytes(data, rate))
    report = prepare_voice(source, tmp_path / "out.wav")
    assert report.seconds == pytest.approx(12.0, abs=0.01)
    assert (report.source_rate, report.source_channels) == (rate, channels)
    out, out_rate = sf.read(str(tmp_path / "out.wav"), dtype="float64")
    info = sf.info(str(tmp_path / "out.wav"))
    assert (out_rate, info.channels, info.subtype) == (24_000, 1, "PCM_16")
    assert len(out) == pytest.approx(12.0 * 24_000, abs=2)
    loudness = pyloudnorm.Meter(24_000).integrated_loudness(out)
    assert loudness == pytest.approx(TARGET_LUFS, abs=0.5)
    assert np.max(np.abs(out)) < 0.99


@pytest.mark.parametrize(
    ("pcm", "code", "words"),
    [
        (speechlike(3.0), "voice_too_short", "at least 5"),
        (speechlike(40.0), "voice_too_long", "5 to 30 seconds"),
        (np.zeros(24_000 * 10, np.float32), "voice_silent", "silent"),
        (np.full(24_000 * 10, 1e-4, np.float32), "voice_silent", "silent"),
        (clipped(10.0), "voice_clipped", "clipped"),
    ],
    ids=["short", "long", "digital-silence", "hiss", "clipped"],
)
def test_unusable_recordings_are_refused_with_a_sentence(
    tmp_path: Path, pcm: np.ndarray, code: str, words: str
) -> None:
    source = _write(tmp_path, wav_bytes(pcm))
    with pytest.raises(VoiceRefusedError) as caught:
        prepare_voice(source, tmp_path / "out.wav")
    assert caught.value.code == code
    assert caught.value.status == 422
    assert words in str(caught.value)
    assert str(caught.value).endswith(".")
    assert not (tmp_path / "out.wav").exists()


def test_a_file_that_is_not_audio_is_refused(tmp_path: Path) -> None:
    source = _write(tmp_path, b"%PDF-1.7 not a recording at all" * 100, "voice.wav")
    with pytest.raises(PplexError) as caught:
        prepare_voice(source, tmp_path / "out.wav")
    assert caught.value.code == "not_audio"
    assert str(tmp_path) not in str(caught.value)


def test_a_quiet_recording_with_a_loud_peak_is_not_clipped_by_the_gain(tmp_path: Path) -> None:
    pcm = speechlike(10.0, level=0.05)
    pcm[24_000] = 0.95  # a click: normalising the quiet speech would push it far past 1.0
    source = _write(tmp_path, wav_bytes(pcm, subtype="FLOAT"))
    prepare_voice(source, tmp_path / "out.wav")
    out, _rate = sf.read(str(tmp_path / "out.wav"), dtype="float64")
    assert np.max(np.abs(out)) <= 0.99
