from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pplex_desktop.gateway.offline.routes import MAX_TRANSCRIPT_HEADER, transcript_header
from pplex_desktop.gateway.offline.uploads import safe_filename


def test_plain_english_stays_readable() -> None:
    assert transcript_header(" Hello, how are you?") == (" Hello, how are you?", False)


def test_percent_and_non_ascii_are_encoded() -> None:
    value, truncated = transcript_header("100% café\n")
    assert (value, truncated) == ("100%25 caf%C3%A9%0A", False)


@given(st.text(max_size=300))
def test_any_text_round_trips_through_an_ascii_header(text: str) -> None:
    value, truncated = transcript_header(text)
    assert value.isascii()
    assert all(0x20 <= ord(c) < 0x7F for c in value)
    assert not truncated
    assert unquote(value, errors="strict") == text


def test_long_transcripts_are_cut_on_a_character() -> None:
    text = "é" * 5000
    value, truncated = transcript_header(text)
    assert truncated
    assert len(value) <= MAX_TRANSCRIPT_HEADER
    assert unquote(value, errors="strict") == "é" * (len(value) // 6)


@pytest.mark.parametrize(
    ("given_name", "safe"),
    [
        ("input.wav", "input.wav"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\voice memo.flac", "voice memo.flac"),
        ("..", "upload"),
        (None, "upload"),
        ("naïve;rm -rf.wav", "na_ve_rm -rf.wav"),
    ],
)
def test_upload_names_are_made_safe(given_name: str | None, safe: str) -> None:
    assert safe_filename(given_name) == safe
