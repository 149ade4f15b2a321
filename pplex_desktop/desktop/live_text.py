"""The words the Talk page shows for conversation states and figures (no Qt, easy to test)."""

from __future__ import annotations

from pplex_desktop.audio.events import ConversationState, SessionStats, StateChanged
from pplex_desktop.audio.ptt import PttMode

S = ConversationState
TITLES = {
    S.IDLE: "Not connected",
    S.QUEUED: "Waiting in the queue",
    S.CONNECTING: "Connecting…",
    S.PREPARING: "Preparing the persona…",
    S.LIVE: "Live",
    S.ENDED: "Ended",
    S.ERROR: "Error",
}
MODE_HINTS = {
    PttMode.OPEN: "The model hears your microphone all the time.",
    PttMode.HOLD: "Hold Space (or the button) while you speak; the model hears silence otherwise.",
    PttMode.TOGGLE: "Press Space (or the button) to start talking and again to stop.",
}


def clock(seconds: float) -> str:
    """0:42, 12:05, 1:02:03."""
    whole = max(round(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def eta_text(eta_s: float | None) -> str:
    if eta_s is None:
        return ""
    if eta_s < 60:
        return "less than a minute"
    minutes = round(eta_s / 60)
    return "about 1 minute" if minutes == 1 else f"about {minutes} minutes"


def queue_text(position: int | None, eta_s: float | None) -> str:
    if position is None:
        return "Every model server is busy; you are in the queue."
    where = "next in line" if position == 1 else f"number {position} in line"
    eta = eta_text(eta_s)
    return f"Every model server is busy; you are {where}" + (f" ({eta})." if eta else ".")


def state_detail(event: StateChanged, mode: PttMode) -> str:
    """The sentence under the state: the reason, the queue position or what to do now."""
    state = event.state
    if state is S.IDLE:
        return "Connect to talk to the model through this app's gateway."
    if state is S.QUEUED:
        return queue_text(event.queue_position, event.eta_s)
    if state is S.CONNECTING:
        return "Reaching the model server through the gateway."
    if state is S.PREPARING:
        return "The model reads the persona and the voice; this takes a few seconds."
    if state is S.LIVE:
        return f"Talk now. {MODE_HINTS[mode]}"
    return event.detail or ("The conversation has ended." if state is S.ENDED else "")


def stats_text(stats: SessionStats) -> str:
    delay = "–" if stats.delay_ms is None else f"{stats.delay_ms:.0f} ms"
    rtt = "–" if stats.rtt_ms is None else f"{stats.rtt_ms:.0f} ms"
    underruns = stats.underruns + stats.output_underflows
    return (
        f"Round trip {delay} (network and model {rtt}) · buffer {stats.buffer_ms:.0f} of "
        f"{stats.target_ms:.0f} ms{' (adaptive)' if stats.buffer_adaptive else ''} · "
        f"underruns {underruns} · {clock(stats.session_s)}"
    )
