"""Live audio on a laptop's own speakers: the model must not hear itself.

A room on the virtual sound card (the speaker reaches the microphone 40 ms later, at full
level), a live call through our gateway to pplex-sim echoing what it hears two seconds later,
and one burst of speech-like sound from the user. With echo cancellation on, the model hears
the user once and then silence: its own voice coming back through the room is removed, so it
never answers itself. In Headphones mode nothing is processed, and the same room rings: the
model hears its own echo at nearly the level it played it, tells the user so, and answers it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pplex_desktop.audio.echo import EchoSettings
from tests.audio.echo_room import RATE, Call, Gateway, babble, call, level_db, onset, room

pytestmark = pytest.mark.usefixtures("pulse_devices")
ECHO_FRAMES = 25  # the model answers two seconds after it heard: nothing overlaps
ECHO_S = ECHO_FRAMES * 0.08
BURST_S = 1.5


def script() -> np.ndarray:
    # Lead-in silence lets both streams settle before the user speaks.
    silence = np.zeros(RATE // 2, dtype=np.float32)
    return np.concatenate([silence, babble(BURST_S, seed=7)])


async def in_room(settings: EchoSettings, folder: Path) -> tuple[Call, float, float]:
    """The call, when the user's burst starts in the recording, and when the model played it
    back (the first generation of the echo)."""
    with room(40), Gateway(folder, ECHO_FRAMES) as gateway:
        done = await call(gateway, settings, script(), tail_s=2 * ECHO_S + 1.0, folder=folder)
    said = onset(done.data[:, 0])
    played = onset(done.data[:, 1])
    assert ECHO_S < played - said < ECHO_S + 0.6, (said, played)
    return done, said, played


@pytest.mark.timeout(90)
async def test_with_cancellation_the_model_does_not_hear_itself(tmp_path: Path) -> None:
    done, said, played = await in_room(EchoSettings(), tmp_path)
    heard, out = done.data[:, 0], done.data[:, 1]
    user = level_db(heard, said, said + BURST_S)
    # The model played the burst back; the room carried it to the microphone; the model must
    # hear (nearly) nothing of it.
    echo = level_db(heard, played + 0.1, played + BURST_S)
    assert user - echo >= 25, f"the model heard itself {user - echo:.1f} dB below the user"
    # So it does not say it a second time.
    first = level_db(out, played, played + BURST_S)
    second = level_db(out, played + ECHO_S + 0.1, played + ECHO_S + BURST_S)
    assert first - second >= 25, f"the echo came back {first - second:.1f} dB lower only"
    assert not any(e.heard for e in done.echo_heard), "nobody was told of an echo"


@pytest.mark.timeout(90)
async def test_with_headphones_nothing_is_processed_and_the_room_rings(tmp_path: Path) -> None:
    done, said, played = await in_room(EchoSettings(cancel=False), tmp_path)
    heard, out = done.data[:, 0], done.data[:, 1]
    user = level_db(heard, said, said + BURST_S)
    echo = level_db(heard, played + 0.1, played + BURST_S)
    assert user - echo < 6, "untouched, the microphone hears the speaker as it played"
    first = level_db(out, played, played + BURST_S)
    second = level_db(out, played + ECHO_S + 0.1, played + ECHO_S + BURST_S)
    assert first - second < 6, "the model answered its own voice"
    assert any(e.heard for e in done.echo_heard), "the user was told the model hears itself"
