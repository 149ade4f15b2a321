"""Push-to-talk: decide per 80 ms frame whether the model hears the microphone or silence.

The model is clocked by its input (PROTOCOL.md): it answers one frame per frame received, so a
released key must still send a frame, only a silent one. ``gate`` therefore always returns a
frame. The same object tells the player how loud the model should be: muted, ducked while the
user speaks, or at full volume. Pure logic, no I/O, no clock.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import numpy.typing as npt

from pplex_desktop.moshi.codec import FRAME_SAMPLES

Frame = npt.NDArray[np.float32]

# About -46 dBFS: above a quiet room's noise floor, below any speech into a working microphone.
VOICE_RMS_THRESHOLD = 0.005
# Keep ducking for a few frames after the voice stops so the model does not pump between words.
VOICE_HANGOVER_FRAMES = 4


class PttMode(StrEnum):
    OPEN = "open"  # always talking, a plain open microphone
    HOLD = "hold"  # talking while the key is held
    TOGGLE = "toggle"  # each press flips between talking and not


class PushToTalk:
    def __init__(
        self,
        mode: PttMode | str = PttMode.OPEN,
        *,
        duck_gain: float | None = None,
        speaker_muted: bool = False,
        frame_samples: int = FRAME_SAMPLES,
    ) -> None:
        self._mode = PttMode(mode)
        self._held = False
        self._toggled_on = False
        self.duck_gain = duck_gain
        self.speaker_muted = speaker_muted
        self._silence = np.zeros(frame_samples, dtype=np.float32)
        # Shared by every caller: a writer would corrupt all later silent frames.
        self._silence.flags.writeable = False
        self._voice_frames_left = 0

    @property
    def mode(self) -> PttMode:
        return self._mode

    @mode.setter
    def mode(self, value: PttMode | str) -> None:
        # A key held or toggled in the old mode must not leave the microphone open in the new.
        self._mode = PttMode(value)
        self._held = False
        self._toggled_on = False
        self._voice_frames_left = 0

    @property
    def duck_gain(self) -> float | None:
        return self._duck_gain

    @duck_gain.setter
    def duck_gain(self, value: float | None) -> None:
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"The duck gain must be between 0 and 1, not {value:g}.")
        self._duck_gain = value

    def press(self) -> None:
        if self._mode is PttMode.HOLD:
            self._held = True
        elif self._mode is PttMode.TOGGLE:
            self._toggled_on = not self._toggled_on

    def release(self) -> None:
        if self._mode is PttMode.HOLD:
            self._held = False
            self._voice_frames_left = 0

    @property
    def talking(self) -> bool:
        """Whether the microphone currently reaches the model."""
        if self._mode is PttMode.OPEN:
            return True
        if self._mode is PttMode.HOLD:
            return self._held
        return self._toggled_on

    @property
    def voice_active(self) -> bool:
        """Whether the user was heard recently through an open gate (drives ducking)."""
        return self._voice_frames_left > 0 and self.talking

    def gate(self, frame: Frame) -> Frame:
        """Return ``frame`` while talking, otherwise a read-only silent frame of the same size."""
        if not self.talking:
            self._voice_frames_left = 0
            if frame.shape[0] == self._silence.shape[0]:
                return self._silence
            return np.zeros(frame.shape[0], dtype=np.float32)
        power = float(np.dot(frame, frame)) / max(frame.shape[0], 1)
        if power >= VOICE_RMS_THRESHOLD * VOICE_RMS_THRESHOLD:
            self._voice_frames_left = VOICE_HANGOVER_FRAMES
        elif self._voice_frames_left:
            self._voice_frames_left -= 1
        return frame

    @property
    def output_gain(self) -> float:
        """The gain the player applies to the model's audio right now."""
        if self.speaker_muted:
            return 0.0
        if self._duck_gain is not None and self.voice_active:
            return self._duck_gain
        return 1.0
