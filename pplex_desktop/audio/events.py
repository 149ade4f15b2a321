"""What a Conversation tells its listener: frozen dataclasses, cheap to pass between threads.

The UI bridge turns each into a Qt signal; nothing here knows about Qt or asyncio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

from pplex_desktop.audio.recorder import RecordingInfo


class ConversationState(StrEnum):
    IDLE = "idle"
    QUEUED = "queued"
    CONNECTING = "connecting"
    PREPARING = "preparing"
    LIVE = "live"
    ENDED = "ended"
    ERROR = "error"

    @property
    def finished(self) -> bool:
        return self in (ConversationState.ENDED, ConversationState.ERROR)


@dataclass(frozen=True, slots=True)
class StateChanged:
    state: ConversationState
    detail: str = ""  # why it ended, or the error message: a sentence for the user
    queue_position: int | None = None
    eta_s: float | None = None


@dataclass(frozen=True, slots=True)
class TextPiece:
    text: str
    t: float  # seconds since the conversation went live


@dataclass(frozen=True, slots=True)
class Levels:
    """Linear levels in [0, 1] since the previous report (see ``meters.to_dbfs``)."""

    input_rms: float
    input_peak: float
    output_rms: float
    output_peak: float
    talking: bool


@dataclass(frozen=True, slots=True)
class SessionStats:
    session_s: float
    rtt_ms: float | None  # send of a frame to arrival of the model's frame for it, smoothed
    buffer_ms: float
    target_ms: float
    underruns: int
    dropped_ms: float
    frames_sent: int
    frames_received: int
    input_overflows: int
    # From capturing your voice to hearing the model's answer to it, for the latest frame;
    # what the recording's right channel trails the left by.
    delay_ms: float | None = None
    output_underflows: int = 0  # times the sound system said the speaker ran dry
    buffer_adaptive: bool = False  # the target follows the measured jitter (audio/jitter.py)


@dataclass(frozen=True, slots=True)
class EchoHeard:
    """The model hears itself through the microphone (``heard``), or no longer does; the
    sentence says what to do about it."""

    heard: bool
    sentence: str = ""


@dataclass(frozen=True, slots=True)
class RecordingSaved:
    recording: RecordingInfo


ConversationEvent: TypeAlias = (
    StateChanged | TextPiece | Levels | SessionStats | RecordingSaved | EchoHeard
)
Listener: TypeAlias = Callable[[ConversationEvent], None]
