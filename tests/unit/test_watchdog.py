"""The live session's limits, on plain numbers: no clock, no sleep, no socket."""

from __future__ import annotations

import pytest

from pplex_desktop.core.close_codes import CloseCode
from pplex_desktop.core.settings import Settings
from pplex_desktop.gateway.live.watchdog import (
    Activity,
    KeepGoing,
    Limits,
    Stop,
    check,
    pace,
)

LIMITS = Limits(idle_s=10.0, max_session_s=60.0, backend_stall_s=3.0, tick_s=0.5)
START = 1000.0  # an arbitrary loop time: nothing may assume the clock starts at zero


def activity(client: float = START, backend: float = START) -> Activity:
    return Activity(live_since=START, last_client_audio=client, last_backend_audio=backend)


def test_a_fresh_session_goes_on_and_is_looked_at_within_a_tick() -> None:
    assert check(LIMITS, activity(), START) == KeepGoing(START + 0.5)


def test_a_silent_client_is_ended_at_the_idle_limit() -> None:
    # Talking stopped at START + 1; no model audio is expected once it is not flowing.
    quiet = activity(client=START + 1.0, backend=START + 1.0)
    assert isinstance(check(LIMITS, quiet, START + 10.9), KeepGoing)
    assert check(LIMITS, quiet, START + 11.0) == Stop(
        CloseCode.POLICY, "No audio arrived for 10 s.", "idle"
    )


def test_the_session_length_limit_holds_while_audio_flows() -> None:
    now = START + 60.0
    busy = activity(client=now - 0.1, backend=now - 0.1)
    assert check(LIMITS, busy, now - 0.01) == KeepGoing(now)
    assert check(LIMITS, busy, now) == Stop(
        CloseCode.POLICY, "The session reached its length limit of 60 s.", "max_length"
    )


def test_a_model_that_stops_answering_a_talking_client_is_to_blame() -> None:
    talking = activity(client=START + 3.5, backend=START + 0.5)
    verdict = check(LIMITS, talking, START + 3.5)
    assert verdict == Stop(
        CloseCode.BACKEND_ERROR,
        "The model server stopped answering for 3 s.",
        "backend_stalled",
        backend_failed="stopped answering",
    )


def test_a_quiet_model_is_no_stall_while_the_client_is_quiet_too() -> None:
    # The client's last audio is more than a second old: the model owes no answer.
    quiet = activity(client=START + 2.0, backend=START)
    assert isinstance(check(LIMITS, quiet, START + 5.0), KeepGoing)


def test_the_next_look_is_at_the_stall_deadline_when_it_comes_first() -> None:
    talking = activity(client=START + 2.9, backend=START + 0.2)
    assert check(LIMITS, talking, START + 3.0) == KeepGoing(START + 3.2)


def test_limits_come_from_the_settings_with_a_bounded_tick() -> None:
    short = Limits.from_settings(
        Settings(idle_timeout_s=0.04, max_session_s=60.0, backend_stall_s=5.0)
    )
    assert short.tick_s == 0.02  # never a busy loop, however short a limit
    assert Limits.from_settings(Settings()).tick_s == 0.5  # never more than twice a second


def test_a_session_run_on_a_fake_clock_ends_at_its_length_limit() -> None:
    """The relay's loop: sleep until the verdict's time, look again; audio flows throughout."""
    now, wakeups = START, 0
    while True:
        verdict = check(LIMITS, activity(client=now, backend=now), now)
        if isinstance(verdict, Stop):
            break
        assert verdict.until > now  # time always moves on: no busy loop
        now, wakeups = verdict.until, wakeups + 1
        assert wakeups < 1000
    assert verdict.reason == "max_length"
    assert now == pytest.approx(START + 60.0)
    assert wakeups == pytest.approx(60.0 / LIMITS.tick_s, abs=1)


def test_audio_faster_than_real_time_is_refused_beyond_the_tolerance() -> None:
    assert pace(audio_in_s=3.0, live_since=START, now=START + 2.0, tolerance_s=1.0) is None
    refused = pace(audio_in_s=3.01, live_since=START, now=START + 2.0, tolerance_s=1.0)
    assert refused is not None and refused.code is CloseCode.POLICY
    assert refused.reason == "too_fast"
    assert refused.message.startswith("Audio is arriving faster than real time")
