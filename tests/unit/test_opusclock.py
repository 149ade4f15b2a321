from __future__ import annotations

import numpy as np
import pytest

from pplex_desktop.moshi.codec import FRAME_SAMPLES, OpusEncoder
from pplex_desktop.moshi.opusclock import OggOpusDuration, opus_packet_samples
from pplex_desktop.sim.ogg_layout import PersonaPlexLayout
from pplex_desktop.sim.sim import _opus_header_bodies
from tests.signals import tone


def test_packet_durations_follow_rfc_6716() -> None:
    assert opus_packet_samples(bytes([31 << 3])) == 960  # CELT FB 20 ms, one frame
    assert opus_packet_samples(bytes([(31 << 3) | 1])) == 1920  # two frames
    assert opus_packet_samples(bytes([(3 << 3) | 3, 3])) == 3 * 2880  # three 60 ms SILK frames
    assert opus_packet_samples(b"") == 0


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_stream_duration_in_any_slicing(chunk: int) -> None:
    enc = OpusEncoder()
    x = tone(440, 2.0)
    data = b"".join(
        enc.encode(x[i : i + FRAME_SAMPLES]) for i in range(0, 25 * FRAME_SAMPLES, FRAME_SAMPLES)
    )
    clock = OggOpusDuration()
    for i in range(0, len(data), chunk):
        clock.feed(data[i : i + chunk])
    assert clock.seconds == pytest.approx(25 * 0.08)


def test_personaplex_layout_counts_the_same() -> None:
    """Merged pages with 24 kHz granules still count by packet, not by granule."""
    layout = PersonaPlexLayout(*_opus_header_bodies())
    enc = OpusEncoder()
    clock = OggOpusDuration()
    for header in layout.header_messages():
        assert clock.feed(header) == 0
    for _ in range(10):
        clock.feed(layout.audio_message(enc.encode(np.zeros(FRAME_SAMPLES, np.float32))))
    assert clock.seconds == pytest.approx(0.8)


def test_garbage_counts_nothing() -> None:
    clock = OggOpusDuration()
    assert clock.feed(b"not ogg at all") == 0.0
    assert clock.broken and clock.seconds == 0
