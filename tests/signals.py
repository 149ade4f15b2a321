"""Test signals and measurements shared by the tiers."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.float32]


def tone(freq: float, seconds: float, rate: int = 24_000, amplitude: float = 0.5) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(pcm: npt.ArrayLike, rate: int = 24_000) -> float:
    x = np.asarray(pcm, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def rms(pcm: npt.ArrayLike) -> float:
    x = np.asarray(pcm, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def chirp_train(seconds: float, rate: int = 24_000, seed: int = 1) -> Pcm:
    """Rising chirps of random lengths at random gaps, several to any half second: no two
    stretches alike, so where one reappears is unambiguous."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * rate), dtype=np.float32)
    at = 0.1
    while True:
        length = rng.uniform(0.03, 0.09)
        if at + length >= seconds:
            return out
        t = np.arange(int(length * rate)) / rate
        f0, f1 = rng.uniform(300, 800), rng.uniform(1_500, 3_000)
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * length))
        i = int(at * rate)
        out[i : i + len(t)] += (0.5 * np.hanning(len(t)) * np.sin(phase)).astype(np.float32)
        at += length + rng.uniform(0.04, 0.15)


MATCH = 0.95  # envelope correlation above which a stretch is the same sound (0.99 seen)


def _envelope(x: npt.ArrayLike, hop: int) -> npt.NDArray[np.float64]:
    a = np.asarray(x, dtype=np.float64)
    k = len(a) // hop
    env: npt.NDArray[np.float64] = np.sqrt(np.mean(a[: k * hop].reshape(k, hop) ** 2, axis=1))
    return env


def lag_ms(
    left: npt.ArrayLike,
    right: npt.ArrayLike,
    start_s: float,
    end_s: float,
    *,
    max_lag_s: float = 1.0,
    min_lag_s: float = -0.1,
    rate: int = 24_000,
) -> float | None:
    """How many ms later the sound of ``left`` between ``start_s`` and ``end_s`` appears in
    ``right`` (correlating 2 ms envelopes, robust to the codec); None if that stretch is
    silent or nothing in ``right`` resembles it (it was never played). An echo cannot come
    before the voice: lags are looked for from ``min_lag_s`` (a little below zero, so that a
    channel placed early still shows) to ``max_lag_s``; one lone chirp would otherwise match
    any other chirp of the train."""
    hop = rate // 500
    el, er = _envelope(left, hop), _envelope(right, hop)
    s, e = max(0, round(start_s * rate / hop)), min(len(el), round(end_s * rate / hop))
    if e - s < 10 or np.max(el[s:e]) < 0.02:
        return None
    a = el[s:e] - el[s:e].mean()
    a /= np.linalg.norm(a)
    w = e - s
    first, last = round(min_lag_s * rate / hop), round(max_lag_s * rate / hop)
    best, best_lag = -np.inf, 0
    for k in range(max(0, s + first), min(s + last, len(er) - w) + 1):
        b = er[k : k + w] - er[k : k + w].mean()
        norm = float(np.linalg.norm(b))
        score = float(np.dot(a, b)) / norm if norm > 1e-9 else 0.0
        if score > best:
            best, best_lag = score, k - s
    return 1000.0 * best_lag * hop / rate if best > MATCH else None
