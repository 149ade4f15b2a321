"""Our protocol and codec on bytes the real Kyutai server sent (``tests/data``).

The recording is made by ``tests/conformance/record_fixture.py``; these tests need neither the
server nor its venv.
"""

from __future__ import annotations

import itertools
import struct

import numpy as np
import pytest

from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.codec import FRAME_SAMPLES, OpusDecoder
from pplex_desktop.moshi.ogg import FLAG_BOS, OggPage, OggPageReader, split_pages
from tests.recorded import Recording, load_recording


@pytest.fixture(scope="module")
def recording() -> Recording:
    return load_recording()


def _audio(messages: list[bytes]) -> list[bytes]:
    return [m[1:] for m in messages if proto.peek_kind(m) is proto.Kind.AUDIO]


def test_every_message_decodes_to_the_expected_kind(recording: Recording) -> None:
    received = [proto.decode(m) for m in recording.received]
    assert received[0] == proto.Handshake()
    assert recording.received[0] == b"\x00", "the handshake is the bare kind byte"
    kinds = [type(m) for m in received[1:]]
    assert set(kinds) <= {proto.Audio, proto.Text}
    assert kinds[0] is proto.Audio
    # Each model step sends its audio, then the text token sampled with it, if any.
    assert all(not (a is proto.Text and b is proto.Text) for a, b in itertools.pairwise(kinds))
    assert all(isinstance(proto.decode(m), proto.Audio) for m in recording.sent)
    # The Kyutai server drops the first input frame.
    assert kinds.count(proto.Audio) == len(recording.sent) - 1


def test_text_pieces_are_utf8_with_spaces_for_word_starts(recording: Recording) -> None:
    texts = [m for m in map(proto.decode, recording.received) if isinstance(m, proto.Text)]
    assert texts
    assert all(t.text and "\u2581" not in t.text for t in texts)
    assert any(t.text.startswith(" ") for t in texts)
    for text in texts:
        assert proto.encode(text) in recording.received, "text round-trips byte-exact"


@pytest.mark.parametrize("direction", ["received", "sent"])
def test_each_audio_message_decodes_to_one_frame(recording: Recording, direction: str) -> None:
    decoder = OpusDecoder()
    sizes = [decoder.decode(p).shape[0] for p in _audio(getattr(recording, direction))]
    assert sizes == [FRAME_SAMPLES] * len(sizes)


def test_server_audio_is_bounded_pcm(recording: Recording) -> None:
    decoder = OpusDecoder()
    pcm = np.concatenate([decoder.decode(p) for p in _audio(recording.received)])
    assert pcm.shape[0] % FRAME_SAMPLES == 0
    assert np.all(np.isfinite(pcm)) and np.max(np.abs(pcm)) <= 1.0


def test_decoder_accepts_the_stream_in_any_slices(recording: Recording) -> None:
    stream = b"".join(_audio(recording.received))
    whole = OpusDecoder().decode(stream)
    decoder = OpusDecoder()
    sliced = np.concatenate([decoder.decode(stream[i : i + 97]) for i in range(0, len(stream), 97)])
    assert sliced.shape == whole.shape
    np.testing.assert_array_equal(sliced, whole)


@pytest.mark.parametrize("direction", ["received", "sent"])
def test_pages_parse_and_reserialise_byte_exact(recording: Recording, direction: str) -> None:
    reader = OggPageReader(check_crc=True)
    for payload in _audio(getattr(recording, direction)):
        pages = reader.feed(payload)
        assert reader.pending == 0, "every message ends on a page boundary"
        assert b"".join(page.to_bytes() for page in pages) == payload


def _opus_head(page: OggPage) -> tuple[int, int, int, int]:
    version, channels, pre_skip, rate = struct.unpack_from("<BBHI", page.body, 8)
    return version, channels, pre_skip, rate


def test_first_message_glues_the_headers_to_audio_pages(recording: Recording) -> None:
    audio = _audio(recording.received)
    first = split_pages(audio[0])
    assert first[0].is_opus_head and first[0].header_type & FLAG_BOS
    assert first[1].is_opus_tags
    assert len(first) == 4, "OpusHead, OpusTags and the two 40 ms pages of the first frame"
    assert _opus_head(first[0])[:2] == (1, 1), "Opus header version 1, mono"
    later = [split_pages(payload) for payload in audio[1:]]
    assert all(len(pages) == 2 for pages in later), "one 80 ms frame as two 40 ms pages"
    pages = first + [page for group in later for page in group]
    assert len({page.serial for page in pages}) == 1
    assert [page.sequence for page in pages] == list(range(len(pages)))
    audio_pages = pages[2:]
    # Granule positions count 48 kHz samples, as the Ogg Opus spec says: 1920 per 40 ms page.
    assert [page.granule for page in audio_pages] == [
        1920 * (i + 1) for i in range(len(audio_pages))
    ]
