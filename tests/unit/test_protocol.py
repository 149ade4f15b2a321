from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pplex_desktop.moshi import protocol as proto

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)

messages = st.one_of(
    st.builds(proto.Handshake),
    st.builds(proto.Handshake, st.integers(0, 255)),
    st.builds(proto.Handshake, st.integers(0, 255), st.integers(0, 255)),
    st.builds(proto.Audio, st.binary()),
    st.builds(proto.Text, st.text()),
    st.builds(proto.Control, st.sampled_from(list(proto.ControlAction))),
    st.builds(proto.Metadata, json_values),
    st.builds(proto.Error, st.text()),
    st.builds(proto.Ping),
)


@given(messages)
def test_decode_inverts_encode(message: proto.Message) -> None:
    assert proto.decode(proto.encode(message)) == message


@given(st.binary(max_size=64))
def test_decode_of_arbitrary_bytes_is_a_message_or_a_protocol_error(data: bytes) -> None:
    try:
        message = proto.decode(data)
    except proto.ProtocolError as exc:
        assert str(exc).endswith(".")
    else:
        assert proto.encode(message)[0] == data[0]


def test_kind_bytes_match_the_wire_protocol() -> None:
    assert proto.encode(proto.Handshake()) == b"\x00"
    assert proto.encode(proto.Handshake(0, 0)) == b"\x00\x00\x00"
    assert proto.encode(proto.Audio(b"OggS")) == b"\x01OggS"
    assert proto.encode(proto.Text(" héllo")) == b"\x02 h\xc3\xa9llo"
    assert proto.encode(proto.Control(proto.ControlAction.END_TURN)) == b"\x03\x01"
    assert proto.encode(proto.Metadata({"a": 1})) == b'\x04{"a":1}'
    assert proto.encode(proto.Error("boom")) == b"\x05boom"
    assert proto.encode(proto.Ping()) == b"\x06"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"\x07", "0x07"),
        (b"\xff\x00", "0xff"),
        (b"\x02\xff\xfe", "UTF-8"),
        (b"\x03", "one action byte"),
        (b"\x03\x09", "unknown"),
        (b"\x04{not json", "JSON"),
        (b"\x04" + b"[" * 100_000, "JSON"),
        (b"\x04" + b"9" * 5_000, "too large"),
    ],
)
def test_malformed_messages_get_a_clear_error(data: bytes, words: str) -> None:
    with pytest.raises(proto.ProtocolError, match=words):
        proto.decode(data)


def test_peek_kind_reads_only_the_first_byte() -> None:
    assert proto.peek_kind(b"\x01" + b"\xff" * 10) is proto.Kind.AUDIO
    with pytest.raises(proto.ProtocolError):
        proto.peek_kind(b"")


def test_handshake_rejects_impossible_fields() -> None:
    with pytest.raises(ValueError, match="version"):
        proto.Handshake(None, 3)
    with pytest.raises(ValueError, match="single bytes"):
        proto.Handshake(256)
