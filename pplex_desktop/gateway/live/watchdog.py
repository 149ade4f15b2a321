"""The limits a live session must keep while it runs, as pure functions of times.

The relay asks ``check`` what to do and sleeps until the answer's deadline: no clock, no sleep
and no session in here, so every limit is tested on plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from pplex_desktop.core.close_codes import CloseCode
from pplex_desktop.core.settings import Settings

# Limits are checked at least this often, so a limit that depends on audio resuming (the
# model's stall) is noticed soon after; at most twice a second, as fifty live sessions should
# not mean hundreds of wake-ups a second on the gateway thread.
MAX_TICK_S = 0.5
MIN_TICK_S = 0.02
# Client audio counts as flowing this long after it last arrived: the model server is only
# expected to answer while it is being spoken to.
FLOWING_S = 1.0


@dataclass(frozen=True, slots=True)
class Limits:
    idle_s: float  # no client audio for this long ends the session
    max_session_s: float  # the longest a session may be live
    backend_stall_s: float  # no model audio for this long, while the client talks, ends it
    tick_s: float  # the longest the relay sleeps between two checks

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        shortest = min(s.idle_timeout_s, s.max_session_s, s.backend_stall_s)
        tick = max(MIN_TICK_S, min(MAX_TICK_S, shortest / 4))
        return cls(s.idle_timeout_s, s.max_session_s, s.backend_stall_s, tick)


@dataclass(frozen=True, slots=True)
class Activity:
    """When the session went live and when audio last came each way (one clock for all)."""

    live_since: float
    last_client_audio: float
    last_backend_audio: float


@dataclass(frozen=True, slots=True)
class KeepGoing:
    until: float  # check again at this time


@dataclass(frozen=True, slots=True)
class Stop:
    code: CloseCode
    message: str  # the sentence the client reads
    reason: str  # the short machine code, e.g. "idle"
    backend_failed: str | None = None  # set when the model server is to blame


def check(limits: Limits, activity: Activity, now: float) -> KeepGoing | Stop:
    """Whether the session may go on at ``now``, and until when without another look."""
    idle_at = activity.last_client_audio + limits.idle_s
    if now >= idle_at:
        return Stop(CloseCode.POLICY, f"No audio arrived for {limits.idle_s:g} s.", "idle")
    length_at = activity.live_since + limits.max_session_s
    if now >= length_at:
        return Stop(
            CloseCode.POLICY,
            f"The session reached its length limit of {limits.max_session_s:g} s.",
            "max_length",
        )
    until = min(idle_at, length_at, now + limits.tick_s)
    if now - activity.last_client_audio < FLOWING_S:
        stall_at = activity.last_backend_audio + limits.backend_stall_s
        if now >= stall_at:
            return Stop(
                CloseCode.BACKEND_ERROR,
                f"The model server stopped answering for {limits.backend_stall_s:g} s.",
                "backend_stalled",
                backend_failed="stopped answering",
            )
        until = min(until, stall_at)
    return KeepGoing(until)


def pace(audio_in_s: float, live_since: float, now: float, tolerance_s: float) -> Stop | None:
    """Refuse client audio that arrives faster than real time (files belong to the job API)."""
    if audio_in_s > now - live_since + tolerance_s:
        return Stop(
            CloseCode.POLICY,
            "Audio is arriving faster than real time; live sessions are paced by the speaker "
            "(use /v1/inference or /v1/jobs for files).",
            "too_fast",
        )
    return None
