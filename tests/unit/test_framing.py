from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pplex_desktop.moshi.framing import Framer


@given(st.lists(st.integers(0, 5000), max_size=20))
def test_frames_preserve_every_sample_in_order(sizes: list[int]) -> None:
    framer = Framer(1920)
    total = sum(sizes)
    source = np.arange(total, dtype=np.float32)
    frames, pos = [], 0
    for size in sizes:
        frames += framer.push(source[pos : pos + size])
        pos += size
    assert all(f.shape == (1920,) for f in frames)
    tail = framer.flush()
    out = np.concatenate(
        [*frames, tail] if tail is not None else frames or [np.zeros(0, np.float32)]
    )
    assert np.array_equal(out[:total], source)
    assert len(frames) == total // 1920
