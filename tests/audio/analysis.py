"""Find a known signal inside a recording and say how well it matches."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

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
    return match_at(recording, reference, lo + xcorr_lag(window, reference))


def match_at(recording: Pcm, reference: Pcm, lag: int) -> Match:
    """How alike ``reference`` and the part of ``recording`` from ``lag`` on are."""
    segment = recording[lag : lag + len(reference)]
    if len(segment) < len(reference):
        segment = np.pad(segment, (0, len(reference) - len(segment)))
    level = envelope(reference)
    speech = level > 0.1 * level.max()
    spec_ref, spec_rec = log_spectrogram(reference), log_spectrogram(segment)
    voiced = speech[: len(spec_ref)]
    return Match(
        lag=lag,
        envelope_corr=_pearson(envelope(segment), envelope(reference)),
        spectral_corr=_pearson(spec_rec[voiced], spec_ref[voiced]),
        waveform_corr=_pearson(segment, reference),
    )


@dataclass(frozen=True)
class Pieces:
    """A reference found piece by piece: what a listener hears when the player edits time.

    An adaptive playback buffer cuts and repeats pauses, and an underrun inserts a gap: the
    whole sentence then matches one alignment badly although every word came back.
    """

    pieces: tuple[Match, ...]
    offsets: tuple[int, ...]  # where each piece starts in the reference
    missing: int  # voiced pieces past the end of the recording

    @property
    def lag(self) -> int:
        """Where the reference's start would be, going by its first voiced piece."""
        return self.pieces[0].lag - self.offsets[0] if self.pieces else 0

    @property
    def envelope_corr(self) -> float:
        return float(np.median([p.envelope_corr for p in self.pieces])) if self.pieces else 0.0

    @property
    def spectral_corr(self) -> float:
        return float(np.median([p.spectral_corr for p in self.pieces])) if self.pieces else 0.0

    @property
    def in_order(self) -> bool:
        """Each piece after the one before it, by at least half their distance in the reference.

        A player cuts pauses, never words: a piece found much nearer is a false match.
        """
        steps = zip(pairwise(p.lag for p in self.pieces), pairwise(self.offsets), strict=True)
        return all(b - a >= (d - c) // 2 for (a, b), (c, d) in steps)

    def __str__(self) -> str:
        found = ", ".join(
            f"{p.lag / RATE:.2f} s ({p.envelope_corr:.2f}/{p.spectral_corr:.2f})"
            for p in self.pieces
        )
        return (
            f"{len(self.pieces)} pieces ({self.missing} missing), median envelope {self.envelope_corr:.3f}, "
            f"spectral {self.spectral_corr:.3f}, in order {self.in_order}: {found}"
        )


def locate_pieces(
    recording: Pcm, reference: Pcm, piece_s: float = 0.4, slack_s: float = 0.3
) -> Pieces:
    """Find each voiced ``piece_s`` of ``reference`` near where the one before it ended."""
    piece, slack = int(piece_s * RATE), int(slack_s * RATE)
    level = envelope(reference)
    loud = level > 0.1 * level.max()
    have = envelope(recording)  # once: a minute of recording has 100-odd pieces
    expected = locate(recording, reference).lag
    pieces: list[Match] = []
    offsets: list[int] = []
    missing = 0
    for start in range(0, len(reference) - piece + 1, piece):
        chunk = reference[start : start + piece]
        if loud[start // HOP : (start + piece) // HOP].mean() < 0.5:
            expected += piece  # mostly pause: an editing player may have cut or stretched it
            continue
        if expected + piece + slack > len(recording):
            missing += 1  # the recording ended before it came back
            continue
        match = _best_nearby(recording, have, chunk, expected, slack)
        pieces.append(match)
        offsets.append(start)
        expected = match.lag + piece
    return Pieces(tuple(pieces), tuple(offsets), missing)


def _best_nearby(
    recording: Pcm, have: npt.NDArray[np.float64], chunk: Pcm, expected: int, slack: int
) -> Match:
    """The lag within ``slack`` of ``expected`` whose envelope is most alike, to the sample;
    ``have`` is the recording's envelope.

    Normalised, unlike a plain cross-correlation, which favours the loudest stretch nearby.
    """
    wanted = envelope(chunk)
    first, last = max(expected - slack, 0) // HOP, (expected + slack) // HOP
    hops = [h for h in range(first, last + 1) if h + len(wanted) <= len(have)]
    best = max(hops, key=lambda h: _pearson(have[h : h + len(wanted)], wanted))
    lo = max(best * HOP - HOP, 0)
    lag = lo + xcorr_lag(recording[lo : best * HOP + len(chunk) + HOP], chunk)
    return match_at(recording, chunk, lag)
