"""Conversation recordings: stereo WAV (user left, model right) and a timed transcript."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from pplex_desktop.audio.recorder import (
    DRIFT_SECONDS,
    HOLD_SECONDS,
    JUMP_SECONDS,
    TAKE_BACK_MAX_SECONDS,
    ConversationRecorder,
    delete_recording,
    list_recordings,
    recordings_dir,
)
from pplex_desktop.core.clock import FakeClock
from pplex_desktop.core.errors import NotFoundError
from pplex_desktop.moshi.codec import FRAME_SAMPLES
from tests.signals import dominant_frequency, tone

F = FRAME_SAMPLES
RATE = 24_000
LATE_S = 0.085  # how late the PulseAudio plugin delivers a microphone's first blocks
# 2026-11-26 21:57:35 UTC
WALL = 1_795_730_255.0


def test_recording_files_hold_both_sides_and_the_transcript() -> None:
    clock = FakeClock(wall_start=WALL)
    rec = ConversationRecorder(voice="NATF2.pt", persona="You are a tea robot.", clock=clock)
    assert rec.wav_path.parent == Path(os.environ["PPLEX_DATA_DIR"]).resolve() / "recordings"
    assert rec.wav_path.name == "2026-11-26T21-57-35_NATF2.wav"
    user = tone(440, 1.0, amplitude=0.5)
    model = tone(1000, 1.0, amplitude=0.25)
    # The two sides arrive in different block sizes, as the mic and speaker callbacks do.
    for i in range(0, len(user), F):
        rec.write_user(user[i : i + F])
        if i == 2 * F:
            clock.advance(0.16)
            rec.add_text(" Hello")
    for i in range(0, len(model), 441):
        rec.write_model(model[i : i + 441])
    clock.advance(0.5)
    rec.add_text(" there.")
    info = rec.close()
    assert rec.close() is info, "closing twice is harmless"

    data, rate = sf.read(str(info.wav_path), dtype="float32")
    assert rate == 24_000 and data.shape == (24_000, 2)
    assert dominant_frequency(data[:, 0]) == pytest.approx(440, abs=2)
    assert dominant_frequency(data[:, 1]) == pytest.approx(1000, abs=2)
    np.testing.assert_allclose(data[:, 0], user, atol=1e-4)
    np.testing.assert_allclose(data[:, 1], model, atol=1e-4)

    meta = json.loads(info.json_path.read_text())
    assert meta["voice"] == "NATF2.pt"
    assert meta["persona"] == "You are a tea robot."
    assert meta["started_at"] == "2026-11-26T21:57:35Z"
    assert meta["duration_s"] == pytest.approx(1.0)
    assert meta["complete"] is True
    assert meta["transcript"] == [{"t": 0.16, "text": " Hello"}, {"t": 0.66, "text": " there."}]
    assert meta["text"] == "Hello there."
    assert info.text == "Hello there."


def test_the_shorter_side_is_padded_with_silence_at_the_end() -> None:
    rec = ConversationRecorder(voice="NATM1.pt", persona="p", clock=FakeClock(wall_start=WALL))
    rec.write_user(np.full(3 * F, 0.5, dtype=np.float32))
    rec.write_model(np.full(F, -0.5, dtype=np.float32))
    info = rec.close()
    data, _ = sf.read(str(info.wav_path), dtype="float32")
    assert data.shape == (3 * F, 2)
    assert np.allclose(data[:, 0], 0.5, atol=1e-4)
    assert np.allclose(data[:F, 1], -0.5, atol=1e-4)
    assert not data[F:, 1].any()


def test_a_stalled_side_does_not_make_the_other_pile_up_in_memory() -> None:
    rec = ConversationRecorder(voice="NATM1.pt", persona="p", clock=FakeClock(wall_start=WALL))
    for _ in range(100):  # 8 s of microphone, no speaker at all
        rec.write_user(np.full(F, 0.1, dtype=np.float32))
    assert rec._left.pending <= HOLD_SECONDS * RATE + F, "older audio went to the file"
    info = rec.close()
    assert info.duration_s == pytest.approx(8.0)


def _stamped_conversation(
    rec: ConversationRecorder,
    start: float,
    seconds: float,
    late_until_s: float,
    late_side: str = "user",
    late_s: float = LATE_S,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Both sides block by block from ``start``, a ramp that repeats every 997 samples (so any
    shift shows); the microphone's stamps come ``late_s`` late until ``late_until_s`` (a sound
    clock settling), the speaker's on time (or the other way round). Returns what each side
    played."""
    n = round(seconds * RATE)
    user = ((np.arange(n) % 997 + 1) / 2000).astype(np.float32)
    model = -user
    for i in range(0, n, F):
        t = start + i / RATE
        late = late_s if i / RATE < late_until_s else 0.0
        user_late, model_late = (late, 0.0) if late_side == "user" else (0.0, late)
        user_at, model_at = rec.user_samples, rec.model_samples
        rec.write_user(user[i : i + F], t + user_late)
        rec.write_model(model[i : i + F], t + model_late)
        # Heard as soon as said: the live delay is 0, measured from the late stamps.
        rec.add_delay(model_late - user_late, t, user_at=user_at, model_at=model_at)
    return user, model


@pytest.mark.parametrize("late_side", ["user", "model"])
def test_a_sound_clock_stamping_late_at_first_is_put_back_in_place(late_side: str) -> None:
    clock = FakeClock(wall_start=WALL)
    rec = ConversationRecorder(voice="NATM1.pt", persona="p", clock=clock)
    start = clock.monotonic() + 0.5  # audio began half a second into the recording
    user, model = _stamped_conversation(rec, start, 8.0, 2.0, late_side)
    assert not rec._left.dropped and not rec._right.dropped, "nothing is lost"
    info = rec.close()
    data, _ = sf.read(str(info.wav_path), dtype="float32")
    begin = round(0.5 * RATE)
    np.testing.assert_allclose(data[begin : begin + len(user), 0], user, atol=1e-4)
    np.testing.assert_allclose(data[begin : begin + len(model), 1], model, atol=1e-4)
    assert not data[:begin].any()
    delays = json.loads(info.json_path.read_text())["delays"]
    assert len(delays) == len(user) // F
    assert {d["delay_ms"] for d in delays} == {0.0}, "the sidecar follows the moved side"


def test_what_moves_before_the_start_of_the_recording_is_left_out() -> None:
    clock = FakeClock(wall_start=WALL)
    rec = ConversationRecorder(voice="NATM1.pt", persona="p", clock=clock)
    early = 0.05  # the first block was captured before the conversation went live
    user, _model = _stamped_conversation(rec, clock.monotonic() - early, 8.0, late_until_s=2.0)
    assert not rec._left.dropped
    info = rec.close()
    data, _ = sf.read(str(info.wav_path), dtype="float32")
    before = round(early * RATE)
    np.testing.assert_allclose(data[:, 0], user[before:], atol=1e-4)
    delays = json.loads(info.json_path.read_text())["delays"]
    assert {d["delay_ms"] for d in delays} == {0.0}


def test_more_than_a_clock_settling_is_dropped_as_before() -> None:
    clock = FakeClock(wall_start=WALL)
    rec = ConversationRecorder(voice="NATM1.pt", persona="p", clock=clock)
    late = TAKE_BACK_MAX_SECONDS + 0.1
    _stamped_conversation(rec, clock.monotonic() + 0.5, 8.0, 2.0, late_s=late)
    assert rec._left.dropped >= 0.9 * late * RATE, "seconds of audio are not moved"
    info = rec.close()
    delays = json.loads(info.json_path.read_text())["delays"]
    # As measured, but for what the end of the overlap, under JUMP_SECONDS, moved.
    assert -1000 * late <= delays[0]["delay_ms"] <= -1000 * (late - JUMP_SECONDS)


def test_a_late_block_later_on_moves_only_itself_in_the_sidecar() -> None:
    """A speaker callback that ran late once (a busy moment) stamps one block late: silence is
    inserted before it, and when the next block shows it was on time after all, that silence is
    taken back. Only that block moved; what was measured before it keeps its delay."""
    clock = FakeClock(wall_start=WALL)
    rec = ConversationRecorder(voice="NATM1.pt", persona="p", clock=clock)
    start = clock.monotonic() + 1.0  # the model's side starts after a long silence
    n = round(8.0 * RATE)
    user = ((np.arange(n) % 997 + 1) / 2000).astype(np.float32)
    glitch = 50 * F  # 4 s in
    for i in range(0, n, F):
        t = start + i / RATE
        late = 0.054 if i == glitch else 0.0
        user_at, model_at = rec.user_samples, rec.model_samples
        rec.write_user(user[i : i + F], t)
        rec.write_model(-user[i : i + F], t + late)
        rec.add_delay(late, t, user_at=user_at, model_at=model_at)
    assert rec._right.padded == round(RATE * 1.0), "the silence was taken back"
    info = rec.close()
    data, _ = sf.read(str(info.wav_path), dtype="float32")
    begin = round(1.0 * RATE)
    np.testing.assert_allclose(data[begin : begin + n, 1], -user, atol=1e-4)
    delays = json.loads(info.json_path.read_text())["delays"]
    assert {d["delay_ms"] for d in delays} == {0.0}, "each delay as the file has it"


def test_a_correction_after_the_file_was_written_drops_the_overlap() -> None:
    clock = FakeClock(wall_start=WALL)
    rec = ConversationRecorder(voice="NATM1.pt", persona="p", clock=clock)
    start = clock.monotonic()
    # Late for longer than the recorder holds back: the start is in the file already.
    user, _model = _stamped_conversation(rec, start, 12.0, late_until_s=HOLD_SECONDS + 2)
    late = round(LATE_S * RATE)
    assert 0.9 * late <= rec._left.dropped <= late
    info = rec.close()
    data, _ = sf.read(str(info.wav_path), dtype="float32")
    corrected = round((HOLD_SECONDS + 2) * RATE)
    np.testing.assert_allclose(data[late:corrected, 0], user[: corrected - late], atol=1e-4)
    # Then on time again, within the recorder's drift tolerance.
    assert abs(len(data) - len(user)) <= DRIFT_SECONDS * RATE
    # What the file kept late, the sidecar keeps as measured.
    delays = json.loads(info.json_path.read_text())["delays"]
    assert {d["delay_ms"] for d in delays[: corrected // F]} == {-1000 * LATE_S}


def test_metadata_exists_while_recording() -> None:
    rec = ConversationRecorder(voice="NATF0.pt", persona="p", clock=FakeClock(wall_start=WALL))
    meta = json.loads(rec.json_path.read_text())
    assert meta["complete"] is False and meta["voice"] == "NATF0.pt"
    rec.close()


def test_list_newest_first_and_delete_both_files() -> None:
    clock = FakeClock(wall_start=WALL)
    stems = []
    for voice in ("NATF0.pt", "VARM3.pt", "VARM3.pt"):
        rec = ConversationRecorder(voice=voice, persona="p", clock=clock)
        rec.write_user(np.zeros(F, dtype=np.float32))
        stems.append(rec.close().stem)
        if voice == "NATF0.pt":
            clock.advance(60)
    # Two recordings in the same second get distinct names.
    assert stems == [
        "2026-11-26T21-57-35_NATF0",
        "2026-11-26T21-58-35_VARM3",
        "2026-11-26T21-58-35_VARM3-2",
    ]
    (recordings_dir() / "notes.json").write_text("{}")  # not ours: ignored
    listed = [r.stem for r in list_recordings()]
    assert listed == [stems[2], stems[1], stems[0]]

    delete_recording(stems[1])
    folder = recordings_dir()
    assert not (folder / f"{stems[1]}.wav").exists()
    assert not (folder / f"{stems[1]}.json").exists()
    assert [r.stem for r in list_recordings()] == [stems[2], stems[0]]
    with pytest.raises(NotFoundError):
        delete_recording(stems[1])
    with pytest.raises(NotFoundError):
        delete_recording("../../etc/passwd")
