"""The gateway's check of client audio refuses everything a model server's decoder would fail on.

Each mutated stream is fed message by message to the check and to the decoder pplex-sim uses
(sphn, as in the real servers, behind our Ogg framing checks). Whenever the decoder fails on a
message, the check must have refused that message or an earlier one; valid streams, however
they are sliced into messages, must pass.
"""

from __future__ import annotations

import random

import numpy as np

from pplex_desktop.moshi.codec import FRAME_SAMPLES, CodecError, OpusDecoder, OpusEncoder
from pplex_desktop.moshi.ogg import OggPage, split_pages
from pplex_desktop.moshi.opuscheck import OggOpusChecker, StreamError
from pplex_desktop.sim.ogg_layout import PersonaPlexLayout

MUTATIONS = 400


def _stream(frames: int = 10) -> list[bytes]:
    encoder = OpusEncoder()
    t = np.arange(FRAME_SAMPLES) / 24_000
    return [encoder.encode(0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t)) for i in range(frames)]


def _first_failure(messages: list[bytes]) -> tuple[int | None, int | None]:
    """(the message the decoder fails on, the message the check refuses), None for neither."""
    decoder, checker = OpusDecoder(), OggOpusChecker()
    decoded: int | None = None
    checked: int | None = None
    for index, message in enumerate(messages):
        if checked is None:
            try:
                checker.feed(message)
            except StreamError:
                checked = index
        if decoded is None:
            try:
                decoder.decode(message)
            except CodecError:
                decoded = index
    return decoded, checked


def _mutate(rng: random.Random, messages: list[bytes]) -> list[bytes]:
    out = [bytearray(m) for m in messages]
    kind = rng.choice(("flip", "byte", "packet", "truncate", "swap", "random"))
    i = rng.randrange(len(out))
    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            j = rng.randrange(len(out))
            out[j][rng.randrange(len(out[j]))] ^= 1 << rng.randrange(8)
    elif kind == "byte":
        out[i][rng.randrange(len(out[i]))] = rng.randrange(256)
    elif kind == "packet":
        pages = split_pages(bytes(out[max(i, 1)]))
        k = rng.randrange(len(pages))
        p = pages[k]
        body = bytes(rng.randrange(256) for _ in p.body)
        pages[k] = OggPage(p.header_type, p.granule, p.serial, p.sequence, p.lacing, body)
        out[max(i, 1)] = bytearray(b"".join(page.to_bytes() for page in pages))
    elif kind == "truncate":
        out[i] = out[i][: rng.randrange(len(out[i]))]
    elif kind == "swap":
        j = rng.randrange(len(out))
        out[i], out[j] = out[j], out[i]
    else:
        out[i] = bytearray(rng.randrange(256) for _ in range(rng.randint(1, 600)))
    return [bytes(m) for m in out]


def test_the_check_refuses_all_the_decoder_fails_on() -> None:
    rng = random.Random(20261201)
    base = _stream()
    assert _first_failure(base) == (None, None)
    decoder_failures = missed = 0
    for _ in range(MUTATIONS):
        decoded, checked = _first_failure(_mutate(rng, base))
        if decoded is not None:
            decoder_failures += 1
            if checked is None or checked > decoded:
                missed += 1
    assert decoder_failures > MUTATIONS // 5  # the corpus does break the decoder
    assert missed == 0


def test_valid_streams_pass_however_they_are_sliced() -> None:
    rng = random.Random(7)
    whole = b"".join(_stream(12))
    for _ in range(30):
        cuts = sorted(rng.sample(range(1, len(whole)), 8))
        slices = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
        checker = OggOpusChecker()
        seconds = sum(checker.feed(piece) for piece in slices)
        assert abs(seconds - 12 * 0.08) < 1e-9
    # PersonaPlex's layout: the two header pages as their own messages, one page per frame.
    encoder = OpusEncoder()
    first = split_pages(encoder.encode(np.zeros(FRAME_SAMPLES, dtype=np.float32)))
    head = next(p.body for p in first if p.is_opus_head)
    tags = next(p.body for p in first if p.is_opus_tags)
    layout = PersonaPlexLayout(head, tags)
    checker = OggOpusChecker()
    for message in layout.header_messages():
        checker.feed(message)
    for _ in range(5):
        checker.feed(layout.audio_message(encoder.encode(np.zeros(FRAME_SAMPLES, np.float32))))
    assert checker.samples_48k > 0
