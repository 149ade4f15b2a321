"""Find a known signal inside a recording and say how well it matches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.float32]
RATE = 24_000
HOP = 240  # 10 ms


def from_s16le(raw: bytes) -> Pcm:
    return (np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2") / 32768.0).astype(np.float32)


def xcorr_lag(haystack: npt.ArrayLike, needle: npt.ArrayLike) -> int:
    """Offset in ``haystack`` where ``needle`` fits best (FFT cross-correlation)."""
    h = np.asarray(haystack, dtype=np.float64)
    n = np.asarray(needle, dtype=np.float64)
    size = 1 << int(np.ceil(np.log2(len(h) + len(n))))
    corr = np.fft.irfft(np.fft.rfft(h, size) * np.conj(np.fft.rfft(n, size)), size)
    return int(np.argmax(corr[: len(h) - len(n) + 1])) if len(h) >= len(n) else 0


def envelope(pcm: npt.ArrayLike) -> npt.NDArray[np.float64]:
    x = np.asarray(pcm, dtype=np.float64)
    frames = len(x) // HOP
    return np.asarray(np.sqrt(np.mean(x[: frames * HOP].reshape(frames, HOP) ** 2, axis=1)))


def log_spectrogram(pcm: npt.ArrayLike, bands: int = 24) -> npt.NDArray[np.float64]:
    """Log energies in ``bands`` equal slices of 0-8 kHz per 20 ms, where speech lives."""
    x = np.asarray(pcm, dtype=np.float64)
    win = 2 * HOP
    frames = (len(x) - win) // HOP + 1
    if frames <= 0:
        return np.zeros((0, bands))
    idx = np.arange(win)[None, :] + HOP * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(win), axis=1)) ** 2
    usable = spec[:, 1 : 1 + (spec.shape[1] * 2 // 3) // bands * bands]
    energy = usable.reshape(frames, bands, -1).sum(axis=2)
    return np.asarray(np.log10(energy + 1e-9), dtype=np.float64)


def _pearson(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


@dataclass(frozen=True)
class Match:
    lag: int  # samples into the recording where the reference starts
    envelope_corr: float
    spectral_corr: float
    waveform_corr: float

    @property
    def seconds(self) -> float:
        return self.lag / RATE


def locate(recording: Pcm, reference: Pcm) -> Match:
    """Where ``reference`` sits in ``recording`` and how alike the two are there."""
    # Coarse lag from envelopes (robust to the codec's phase changes), refined on the waveform.
    coarse = xcorr_lag(envelope(recording), envelope(reference)) * HOP
    lo = max(coarse - 2 * HOP, 0)
    window = recording[lo : coarse + len(reference) + 2 * HOP]
    lag = lo + xcorr_lag(window, reference)
    segment = recording[lag : lag + len(reference)]
    if len(segment) < len(reference):
        segment = np.pad(segment, (0, len(reference) - len(segment)))
    speech = envelope(reference) > 0.1 * envelope(reference).max()
    spec_ref, spec_rec = log_spectrogram(reference), log_spectrogram(segment)
    voiced = speech[: len(spec_ref)]
    return Match(
        lag=lag,
        envelope_corr=_pearson(envelope(segment), envelope(reference)),
        spectral_corr=_pearson(spec_rec[voiced], spec_ref[voiced]),
        waveform_corr=_pearson(segment, reference),
    )
