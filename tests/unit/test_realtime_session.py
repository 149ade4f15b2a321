"""The Realtime session's rules, without sockets: updates, locks, events."""

from __future__ import annotations

import json

import pytest

from pplex_desktop.core.errors import ValidationError
from pplex_desktop.gateway.live.realtime_session import (
    EventError,
    RealtimeConfig,
    Response,
    apply_update,
    closing_events,
    locked_change,
    opening_events,
    parse_model,
)


def test_ga_and_beta_shapes_of_an_update() -> None:
    ga = apply_update(
        RealtimeConfig(),
        {
            "instructions": "  Be kind.  ",
            "audio": {
                "input": {"format": {"type": "audio/pcmu"}},
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "NATF1"},
            },
            "pplex": {"response_mode": "continuous", "silence_ms": 800, "queue_events": True},
        },
    )
    assert (ga.instructions, ga.voice, ga.input_format, ga.output_format) == (
        "Be kind.",
        "NATF1",
        "audio/pcmu",
        "audio/pcm",
    )
    assert (ga.response_mode, ga.silence_ms, ga.queue_events) == ("continuous", 800, True)
    beta = apply_update(RealtimeConfig(), {"voice": "VARM2", "input_audio_format": "g711_alaw"})
    assert (beta.voice, beta.input_format) == ("VARM2", "audio/pcma")


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"instructions": 5}, "instructions"),
        ({"audio": {"output": {"voice": ""}}}, "session.audio.output.voice"),
        ({"audio": {"input": {"format": {"type": "audio/opus"}}}}, "session.audio.input.format"),
        ({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}, None),
        ({"pplex": {"response_mode": "sometimes"}}, "session.pplex.response_mode"),
        ({"pplex": {"silence_ms": float("nan")}}, "session.pplex.silence_ms"),
        ({"pplex": {"silence_ms": True}}, "session.pplex.silence_ms"),
        ({"audio": []}, "session.audio"),
        ("not an object", "session"),
    ],
)
def test_bad_updates_are_refused_with_the_parameter_named(
    session: object, param: str | None
) -> None:
    with pytest.raises(EventError) as refused:
        apply_update(RealtimeConfig(), session)
    if param is not None:
        assert refused.value.param == param
    assert refused.value.message.endswith(".")


def test_persona_and_voice_are_the_locked_parts() -> None:
    live = RealtimeConfig(instructions="A", voice="NATF1")
    assert (
        locked_change(
            live, RealtimeConfig(instructions="A", voice="NATF1", response_mode="continuous")
        )
        is None
    )
    assert locked_change(live, RealtimeConfig(instructions="B", voice="NATF1")) == "instructions"
    assert locked_change(live, RealtimeConfig(instructions="A", voice="NATM0")) == "voice"


def test_model_names() -> None:
    assert parse_model(None) == "personaplex"
    assert parse_model("gpt-realtime") == "gpt-realtime"
    with pytest.raises(ValidationError):
        parse_model("x" * 200)


def test_a_response_opens_and_closes_in_order_with_its_transcript_and_usage() -> None:
    response = Response()
    response.transcript += ["Hello", " there"]
    response.usage.input_s, response.usage.output_s = 2.0, 1.2
    config = RealtimeConfig()
    kinds = [e["type"] for e in opening_events(response, config, "NATF2")]
    assert kinds == [
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
    ]
    closing = closing_events(response, config, "NATF2", "completed")
    assert [e["type"] for e in closing] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    assert closing[1]["transcript"] == "Hello there"
    usage = closing[-1]["response"]["usage"]
    assert usage["input_audio_seconds"] == 2.0 and usage["output_tokens"] == 15
    json.dumps(closing, allow_nan=False)
