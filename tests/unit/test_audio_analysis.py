"""The audio tier's measure of "the sentence came back", on signals whose truth is known."""

from __future__ import annotations

import numpy as np

from tests.audio.analysis import RATE, Match, Pcm, Pieces, locate, locate_pieces


def sentence(seed: int = 7, seconds: float = 3.0) -> Pcm:
    """Syllables of random pitch and length with random pauses: nothing in it repeats."""
    rng = np.random.default_rng(seed)
    parts: list[Pcm] = [np.zeros(RATE // 4, np.float32)]
    while sum(len(p) for p in parts) < seconds * RATE:
        n = int(rng.uniform(0.08, 0.3) * RATE)
        t = np.arange(n) / RATE
        pitch = rng.uniform(90, 260)
        voiced = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6))
        parts.append((0.5 * np.hanning(n) * voiced).astype(np.float32))
        parts.append(np.zeros(int(rng.uniform(0.02, 0.15) * RATE), np.float32))
    parts.append(np.zeros(RATE // 4, np.float32))
    return np.concatenate(parts).astype(np.float32)


def played(reference: Pcm, gap_at_s: float, gap_s: float, delay_s: float = 0.45) -> Pcm:
    """What a speaker gives back: a delay, then the reference with a silent gap inserted."""
    cut = int(gap_at_s * RATE)
    return np.concatenate(
        (
            np.zeros(int(delay_s * RATE), np.float32),
            reference[:cut],
            np.zeros(int(gap_s * RATE), np.float32),
            reference[cut:],
            np.zeros(RATE // 2, np.float32),
        )
    ).astype(np.float32)


def test_an_underrun_gap_keeps_every_piece_found_where_one_alignment_fails() -> None:
    reference = sentence()
    heard = played(reference, gap_at_s=1.2, gap_s=0.1)
    whole = locate(heard, reference)
    pieces = locate_pieces(heard, reference)
    assert whole.envelope_corr < 0.8  # one rigid alignment says it did not come back
    assert pieces.envelope_corr > 0.95 and pieces.spectral_corr > 0.9, pieces
    assert pieces.in_order and not pieces.missing, pieces
    assert abs(pieces.lag - int(0.45 * RATE)) < RATE // 100


def test_another_sentence_does_not_pass_for_the_one_spoken() -> None:
    pieces = locate_pieces(played(sentence(seed=8), gap_at_s=1.0, gap_s=0.0), sentence(seed=7))
    assert pieces.envelope_corr < 0.8 or pieces.spectral_corr < 0.6, pieces


def test_silence_does_not_pass_for_the_sentence() -> None:
    pieces = locate_pieces(np.zeros(5 * RATE, np.float32), sentence())
    assert pieces.envelope_corr < 0.8, pieces


def test_a_recording_that_stops_early_misses_the_end() -> None:
    reference = sentence()
    heard = played(reference, gap_at_s=0.0, gap_s=0.0)[: int(0.45 * RATE) + len(reference) // 2]
    assert locate_pieces(heard, reference).missing > 0


def test_a_piece_found_far_nearer_than_it_was_spoken_is_out_of_order() -> None:
    def at(lag: int) -> Match:
        return Match(lag, 0.9, 0.9, 0.5)

    step = int(0.4 * RATE)
    spoken = (0, step, 2 * step)
    assert Pieces((at(1000), at(1000 + step + 2400), at(1000 + 2 * step)), spoken, 0).in_order
    assert not Pieces((at(1000), at(1000 + step // 4), at(1000 + 2 * step)), spoken, 0).in_order
