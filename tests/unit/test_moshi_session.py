"""moshi/session.py: every state, every transition, the handshake deadline, and bad bytes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi import session as ms
from pplex_desktop.moshi.session import MoshiProtocol, Role, SessionStateError, State

T0 = 1000.0


def client(timeout: float = 5.0) -> MoshiProtocol:
    protocol = MoshiProtocol(Role.CLIENT, handshake_timeout=timeout)
    protocol.connected(T0)
    return protocol


def opened() -> MoshiProtocol:
    protocol = client()
    protocol.receive(b"\x00", T0)
    return protocol


def meta(data: object) -> bytes:
    return b"\x04" + json.dumps(data).encode()


def state(protocol: MoshiProtocol) -> State:
    """Read afresh: mypy would otherwise keep the state it last narrowed the attribute to."""
    return protocol.state


def server() -> MoshiProtocol:
    protocol = MoshiProtocol(Role.SERVER)
    protocol.send_handshake()
    return protocol


# -- the client side, before the handshake ------------------------------------------------------


def test_a_client_starts_connecting_and_nothing_can_arrive_yet() -> None:
    protocol = MoshiProtocol()
    assert protocol.role is Role.CLIENT and state(protocol) is State.CONNECTING
    assert protocol.deadline(T0) is None and not protocol.expired(T0 + 1e9)
    with pytest.raises(SessionStateError, match="before the socket is open"):
        protocol.receive(b"\x00", T0)


def test_connected_starts_the_handshake_clock() -> None:
    protocol = client(timeout=5.0)
    assert state(protocol) is State.AWAITING_HANDSHAKE
    assert protocol.deadline(T0) == T0 + 5.0
    assert protocol.remaining(T0 + 2.0) == 3.0
    assert not protocol.expired(T0 + 4.999)
    assert protocol.expired(T0 + 5.0)
    assert protocol.remaining(T0 + 9.0) == 0.0


def test_connecting_twice_or_as_a_server_is_refused() -> None:
    protocol = client()
    with pytest.raises(SessionStateError, match="already connected"):
        protocol.connected(T0)
    with pytest.raises(SessionStateError, match="Only a client connects"):
        MoshiProtocol(Role.SERVER).connected(T0)


def test_the_handshake_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        MoshiProtocol(handshake_timeout=0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00", proto.Handshake()),
        (b"\x00\x00", proto.Handshake(0)),
        (b"\x00\x01\x02", proto.Handshake(1, 2)),
    ],
)
def test_the_handshake_opens_the_session(raw: bytes, message: proto.Handshake) -> None:
    protocol = client()
    assert protocol.receive(raw, T0 + 1) == [ms.Handshake(message, raw)]
    assert state(protocol) is State.OPEN and protocol.is_open
    assert protocol.handshake == message
    assert protocol.deadline(T0 + 1) is None
    assert not protocol.expired(T0 + 1e9)


def test_queue_messages_pause_the_deadline_and_a_status_restarts_it() -> None:
    protocol = client(timeout=5.0)
    events = protocol.receive(meta({"type": "queue", "position": 3, "eta_s": 12.5}), T0 + 1)
    assert events == [ms.Queued(3, 12.5, {"type": "queue", "position": 3, "eta_s": 12.5})]
    assert state(protocol) is State.QUEUED
    assert protocol.deadline(T0 + 100) is None
    assert not protocol.expired(T0 + 10_000)  # queued far beyond the handshake timeout
    status = {"type": "status", "state": "connecting"}
    assert protocol.receive(meta(status), T0 + 600) == [ms.Metadata(status)]
    assert state(protocol) is State.AWAITING_HANDSHAKE
    assert protocol.deadline(T0 + 600) == T0 + 605
    assert not protocol.expired(T0 + 604.9) and protocol.expired(T0 + 605)
    preparing = {"type": "status", "state": "preparing"}
    protocol.receive(meta(preparing), T0 + 603)
    assert protocol.deadline(T0 + 603) == T0 + 608


def test_without_queue_messages_the_deadline_runs_from_connected() -> None:
    protocol = client(timeout=5.0)
    assert protocol.receive(meta({"type": "other"}), T0 + 4) == [ms.Metadata({"type": "other"})]
    assert state(protocol) is State.AWAITING_HANDSHAKE
    assert protocol.expired(T0 + 5)


def test_a_queue_update_while_queued_stays_queued() -> None:
    protocol = client()
    protocol.receive(meta({"type": "queue", "position": 2}), T0)
    protocol.receive(meta({"type": "queue", "position": 1}), T0 + 1)
    assert state(protocol) is State.QUEUED
    assert protocol.receive(b"\x00", T0 + 2)[0] == ms.Handshake(proto.Handshake(), b"\x00")
    assert state(protocol) is State.OPEN


@pytest.mark.parametrize(
    ("data", "position", "eta"),
    [
        ({"type": "queue"}, None, None),
        ({"type": "queue", "position": "1", "eta_s": None}, None, None),
        ({"type": "queue", "position": True, "eta_s": 3}, None, 3.0),
        ({"type": "queue", "position": 2.0, "eta_s": 1}, 2, 1.0),
    ],
)
def test_queue_fields_of_the_wrong_type_are_none(
    data: dict[str, object], position: int | None, eta: float | None
) -> None:
    assert client().receive(meta(data), T0) == [ms.Queued(position, eta, data)]


def test_metadata_that_is_not_an_object_is_plain_metadata() -> None:
    protocol = client()
    assert protocol.receive(meta([1, 2]), T0) == [ms.Metadata([1, 2])]
    assert state(protocol) is State.AWAITING_HANDSHAKE


@pytest.mark.parametrize("raw", [b"\x01OggS", b"\x02 hello"])
def test_audio_or_text_before_the_handshake_is_a_violation(raw: bytes) -> None:
    protocol = client()
    [event] = protocol.receive(raw, T0)
    assert isinstance(event, ms.ProtocolViolation)
    assert "the first message must be the handshake" in event.sentence
    assert state(protocol) is State.AWAITING_HANDSHAKE and protocol.handshake is None


def test_an_error_before_the_handshake_is_reported() -> None:
    protocol = client()
    assert protocol.receive(b"\x05no voice", T0) == [ms.ServerError("no voice")]
    assert state(protocol) is State.AWAITING_HANDSHAKE


def test_pings_are_events_in_every_state() -> None:
    protocol = client()
    assert protocol.receive(b"\x06", T0) == [ms.Ping()]
    protocol.receive(b"\x00", T0)
    assert protocol.receive(b"\x06", T0) == [ms.Ping()]


# -- the client side, open --------------------------------------------------------------------


def test_an_open_session_delivers_audio_text_metadata_and_errors() -> None:
    protocol = opened()
    assert protocol.receive(b"\x01OggS\x00", T0) == [ms.Audio(b"OggS\x00")]
    assert protocol.receive(b"\x02 word", T0) == [ms.Text(" word")]
    assert protocol.receive(meta({"k": 1}), T0) == [ms.Metadata({"k": 1})]
    assert protocol.receive(b"\x05boom", T0) == [ms.ServerError("boom")]
    # A queue message now is news, not a reason to stop the (finished) handshake clock.
    queued = protocol.receive(meta({"type": "queue", "position": 1}), T0)
    assert isinstance(queued[0], ms.Queued) and state(protocol) is State.OPEN


def test_a_second_handshake_is_a_violation() -> None:
    protocol = opened()
    assert protocol.receive(b"\x00", T0) == [
        ms.ProtocolViolation("The server sent a second handshake.")
    ]
    assert state(protocol) is State.OPEN


def test_a_server_sends_no_control_messages() -> None:
    assert opened().receive(b"\x03\x01", T0) == [
        ms.ProtocolViolation("A server does not send control messages.")
    ]


def test_a_client_sends_audio_and_control_only_once_open() -> None:
    protocol = client()
    with pytest.raises(SessionStateError, match="No audio can be sent while the session is"):
        protocol.send_audio(b"OggS")
    with pytest.raises(SessionStateError, match="control"):
        protocol.send_control(proto.ControlAction.START)
    with pytest.raises(SessionStateError, match="ping"):
        protocol.send_ping()
    protocol.receive(b"\x00", T0)
    assert protocol.send_audio(b"OggS") == b"\x01OggS"
    assert protocol.send_control(proto.ControlAction.END_TURN) == b"\x03\x01"
    assert protocol.send_ping() == b"\x06"


@pytest.mark.parametrize(
    ("method", "argument"),
    [("send_text", "hi"), ("send_error", "no"), ("send_metadata", {}), ("send_handshake", None)],
)
def test_a_client_cannot_send_what_only_a_server_sends(method: str, argument: object) -> None:
    protocol = opened()
    with pytest.raises(SessionStateError, match="Only the server"):
        getattr(protocol, method)(argument)


# -- closing ----------------------------------------------------------------------------------


def test_closing_still_delivers_what_the_server_sends_until_its_close() -> None:
    protocol = opened()
    protocol.close()
    assert state(protocol) is State.CLOSING
    assert protocol.receive(b"\x02 late", T0) == [ms.Text(" late")]
    with pytest.raises(SessionStateError, match="while the session is closing"):
        protocol.send_audio(b"OggS")
    closed = protocol.connection_closed(1000, "bye")
    assert closed == ms.Closed(1000, "bye") and state(protocol) is State.CLOSED
    assert protocol.closed == closed


def test_a_close_before_the_handshake_stops_the_clock_and_a_late_handshake_is_heard() -> None:
    protocol = client()
    protocol.close()
    assert protocol.deadline(T0) is None and not protocol.expired(T0 + 1e9)
    assert isinstance(protocol.receive(b"\x00", T0)[0], ms.Handshake)
    assert state(protocol) is State.CLOSING  # the handshake does not reopen a closing session


def test_nothing_arrives_after_the_connection_closed() -> None:
    protocol = opened()
    protocol.connection_closed(1011, "model failure")
    with pytest.raises(SessionStateError, match="after the connection has closed"):
        protocol.receive(b"\x01OggS", T0)
    with pytest.raises(SessionStateError):
        protocol.send_audio(b"OggS")
    protocol.close()  # closing a closed session changes nothing
    assert state(protocol) is State.CLOSED


def test_the_first_end_is_the_one_kept() -> None:
    protocol = opened()
    assert protocol.connection_closed(None, "") == ms.Closed(None, "connection lost")
    assert protocol.connection_closed(1000, "later") == ms.Closed(None, "connection lost")


# -- bad bytes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "sentence"),
    [
        (b"", "The message is empty"),
        (b"\x07", "The message kind 0x07 is not a Moshi kind."),
        (b"\xff\x00", "The message kind 0xff is not a Moshi kind."),
        (b"\x02\xff\xfe", "The text message is not valid UTF-8"),
        (b"\x04{nope", "The metadata message is not valid JSON"),
        (b"\x05\xc3", "The error message is not valid UTF-8"),
    ],
)
def test_malformed_messages_are_violations_in_every_state(raw: bytes, sentence: str) -> None:
    for protocol in (client(), opened(), server()):
        [event] = protocol.receive(raw, T0)
        assert isinstance(event, ms.ProtocolViolation)
        assert event.sentence.startswith(sentence)
    assert client().state is State.AWAITING_HANDSHAKE


def test_an_oversized_message_is_a_violation_and_is_not_decoded() -> None:
    protocol = MoshiProtocol(handshake_timeout=1.0, max_message_bytes=16)
    protocol.connected(T0)
    assert protocol.receive(b"\x00" + b"\x00" * 15, T0)[0] == ms.Handshake(
        proto.Handshake(0, 0), b"\x00" * 16
    )
    assert protocol.receive(b"\x01" + b"x" * 16, T0) == [
        ms.ProtocolViolation("A message of 17 bytes is over the limit of 16 bytes.")
    ]


def test_the_default_message_limit_is_the_servers() -> None:
    assert MoshiProtocol().max_message_bytes == 4 * 1024 * 1024


# -- the server side --------------------------------------------------------------------------


def test_a_server_discards_everything_while_it_prepares() -> None:
    protocol = MoshiProtocol(Role.SERVER)
    assert state(protocol) is State.PREPARING
    for raw in (b"\x01OggS", b"\x02x", b"\x03\x00", b"\x06", meta({})):
        assert protocol.receive(raw, T0) == []
    # Bytes that are no message at all are still named, though nothing is done with them.
    assert isinstance(protocol.receive(b"\x09", T0)[0], ms.ProtocolViolation)
    assert state(protocol) is State.PREPARING
    assert protocol.deadline(T0) is None


def test_a_server_sends_its_handshake_once_and_first() -> None:
    protocol = MoshiProtocol(Role.SERVER)
    with pytest.raises(SessionStateError, match="between the handshake and the close"):
        protocol.send_audio(b"OggS")
    with pytest.raises(SessionStateError):
        protocol.send_text("early")
    assert protocol.send_handshake() == b"\x00"
    assert state(protocol) is State.OPEN
    with pytest.raises(SessionStateError, match="sent once"):
        protocol.send_handshake()
    assert MoshiProtocol(Role.SERVER).send_handshake(proto.Handshake(1, 2)) == b"\x00\x01\x02"


def test_an_open_server_takes_audio_control_and_pings() -> None:
    protocol = server()
    assert protocol.receive(b"\x01OggS", T0) == [ms.Audio(b"OggS")]
    assert protocol.receive(b"\x03\x02", T0) == [ms.Control(proto.ControlAction.PAUSE)]
    assert protocol.receive(b"\x06", T0) == [ms.Ping()]


@pytest.mark.parametrize(
    ("raw", "name"),
    [(b"\x00", "handshake"), (b"\x02 hi", "text"), (meta({}), "metadata"), (b"\x05x", "error")],
)
def test_a_server_refuses_what_clients_do_not_send(raw: bytes, name: str) -> None:
    assert server().receive(raw, T0) == [
        ms.ProtocolViolation(f"A client does not send {name} messages.")
    ]


def test_an_open_server_sends_every_kind_it_may() -> None:
    protocol = server()
    assert protocol.send_audio(b"OggS") == b"\x01OggS"
    assert proto.decode(protocol.send_text(" hi")) == proto.Text(" hi")
    assert proto.decode(protocol.send_error("boom")) == proto.Error("boom")
    assert proto.decode(protocol.send_metadata({"a": [1]})) == proto.Metadata({"a": [1]})
    assert protocol.send_ping() == b"\x06"
    with pytest.raises(TypeError):
        protocol.send_metadata({"a": object()})
    with pytest.raises(SessionStateError, match="Only a client sends control"):
        protocol.send_control(proto.ControlAction.START)


def test_a_closing_server_sends_nothing_more() -> None:
    protocol = server()
    protocol.close()
    with pytest.raises(SessionStateError):
        protocol.send_text("late")
    assert protocol.receive(b"\x01OggS", T0) == [ms.Audio(b"OggS")]


# -- fuzz -------------------------------------------------------------------------------------

kind_bytes = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 0x80, 0xFF])
moshi_like = st.builds(lambda k, rest: bytes([k]) + rest, kind_bytes, st.binary(max_size=40))
json_like = st.builds(
    meta,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["queue", "status", "end", "x"])},
        optional={
            "position": st.one_of(st.integers(), st.floats(), st.text(), st.none()),
            "eta_s": st.one_of(st.integers(), st.floats(allow_nan=True), st.none()),
        },
    ),
)
messages = st.one_of(st.binary(max_size=40), moshi_like, json_like)
EVENT_TYPES = (
    ms.Handshake,
    ms.Queued,
    ms.Metadata,
    ms.Audio,
    ms.Text,
    ms.ServerError,
    ms.Control,
    ms.Ping,
    ms.ProtocolViolation,
)


@settings(max_examples=300, deadline=None)
@given(
    role=st.sampled_from(list(Role)),
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("receive"), messages, st.floats(0, 50)),
            st.tuples(st.just("close"), st.just(b""), st.just(0.0)),
            st.tuples(st.just("send"), st.binary(max_size=8), st.just(0.0)),
            st.tuples(st.just("end"), st.just(b""), st.just(0.0)),
        ),
        max_size=30,
    ),
)
def test_random_bytes_and_calls_raise_only_the_documented_error(
    role: Role, steps: list[tuple[str, bytes, float]]
) -> None:
    protocol = MoshiProtocol(role, handshake_timeout=10.0)
    now = T0
    if role is Role.CLIENT:
        protocol.connected(now)
    elif steps and steps[0][0] == "receive":
        protocol.send_handshake()
    for action, data, dt in steps:
        now += dt
        state_before = protocol.state
        try:
            if action == "receive":
                events = protocol.receive(data, now)
                assert all(isinstance(e, EVENT_TYPES) for e in events)
                assert len(events) == 1 or (events == [] and state_before is State.PREPARING)
            elif action == "close":
                protocol.close()
            elif action == "send":
                assert protocol.send_audio(data) == b"\x01" + data
                assert state_before is State.OPEN
            else:
                protocol.connection_closed(1000, "")
        except SessionStateError:
            assert action in ("receive", "send")
            assert action == "send" or state_before is State.CLOSED
        # Invariants of every state.
        if state(protocol) is State.AWAITING_HANDSHAKE:
            assert protocol.deadline(now) is not None
        else:
            assert protocol.deadline(now) is None
        if state(protocol) is State.OPEN:
            assert role is Role.SERVER or protocol.handshake is not None
        assert (protocol.closed is not None) == (state(protocol) is State.CLOSED)
