"""What Space and the talk button ask of the microphone, mode by mode (the Talk page's rules)."""

from __future__ import annotations

from pplex_desktop.audio.ptt import PttMode
from pplex_desktop.ui.talk.talk_intent import TalkIntent


def test_hold_is_open_while_the_key_or_the_button_is_held() -> None:
    intent = TalkIntent()
    assert not intent.wants(PttMode.HOLD)
    assert intent.press(PttMode.HOLD, "key")  # the engine hears the first press
    assert not intent.press(PttMode.HOLD, "button")  # not the second: it is already open
    assert intent.wants(PttMode.HOLD)
    assert not intent.release(PttMode.HOLD, "key")  # the button still holds it
    assert intent.wants(PttMode.HOLD)
    assert not intent.release(PttMode.HOLD, "key")  # released twice: nothing more
    assert intent.release(PttMode.HOLD, "button")
    assert not intent.wants(PttMode.HOLD)


def test_toggle_flips_at_each_press_and_ignores_releases() -> None:
    intent = TalkIntent()
    assert intent.press(PttMode.TOGGLE, "key")
    assert not intent.release(PttMode.TOGGLE, "key")
    assert intent.wants(PttMode.TOGGLE)
    assert intent.press(PttMode.TOGGLE, "button")
    assert not intent.wants(PttMode.TOGGLE)


def test_open_mic_is_always_open_and_reset_lets_go() -> None:
    intent = TalkIntent()
    assert not intent.press(PttMode.OPEN, "key")
    assert intent.wants(PttMode.OPEN)
    intent.press(PttMode.HOLD, "key")
    intent.press(PttMode.TOGGLE, "key")
    intent.reset()
    assert not intent.wants(PttMode.HOLD)
    assert not intent.wants(PttMode.TOGGLE)
