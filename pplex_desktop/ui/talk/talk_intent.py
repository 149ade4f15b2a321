"""What the user asks of the microphone with the talk key (Space) and the big button."""

from __future__ import annotations

from pplex_desktop.audio.ptt import PttMode


class TalkIntent:
    """Hold: open while the key or the button (either) is held; Toggle: each press flips it;
    Open: always open. ``press`` and ``release`` say whether the engine is to hear of it."""

    def __init__(self) -> None:
        self._held: set[str] = set()  # what holds the talk key down: "key", "button"
        self._toggled = False

    def reset(self) -> None:
        self._held.clear()
        self._toggled = False

    def press(self, mode: PttMode, source: str) -> bool:
        if mode is PttMode.TOGGLE:
            self._toggled = not self._toggled
            return True
        if mode is PttMode.HOLD:
            first = not self._held
            self._held.add(source)
            return first
        return False

    def release(self, mode: PttMode, source: str) -> bool:
        if mode is PttMode.HOLD and source in self._held:
            self._held.discard(source)
            return not self._held
        return False

    def wants(self, mode: PttMode) -> bool:
        """Whether the user asked for an open microphone (the engine confirms via Levels)."""
        if mode is PttMode.HOLD:
            return bool(self._held)
        if mode is PttMode.TOGGLE:
            return self._toggled
        return True
