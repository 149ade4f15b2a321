"""The Offline page on the real app: a real gateway, pplex-sim, real files and real drops."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from pytestqt.qtbot import QtBot

from pplex_desktop.core.settings import Settings
from pplex_desktop.desktop.offline_record import ItemState
from pplex_desktop.gateway.server import GatewayState
from pplex_desktop.ui.offline.offline_model import RESULT
from tests.gui.conftest import Launch, http, quit_gracefully, url_of
from tests.gui.offline_helpers import (
    JOB_WAIT_MS,
    PERSONA,
    SLUG,
    all_final,
    drop,
    offline_page,
    ready_page,
    rows,
    slow_backend,
    spoken_files,
    states,
)
from tests.signals import tone


def test_dropped_files_come_back_as_answers_next_to_them(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    inputs = spoken_files(tmp_path / "in")
    text = tmp_path / "in" / "notes.wav"
    text.write_text("These are my notes, not a recording.\n")
    drop(page, [*inputs, text])
    qtbot.waitUntil(lambda: all_final(page, 4), timeout=JOB_WAIT_MS)
    by_name = {i.path.name: i for i in rows(page)}
    assert by_name["notes.wav"].state is ItemState.REFUSED
    assert "not an audio file" in (by_name["notes.wav"].message or "")
    for source in inputs:
        item = by_name[source.name]
        assert item.state is ItemState.DONE, item.message
        answer = source.parent / f"{source.stem}.{SLUG}.NATF2.wav"
        assert item.audio_path == answer
        info = sf.info(str(answer))
        assert (info.samplerate, info.channels) == (24_000, 1)
        assert abs(info.duration - (sf.info(str(source)).duration + 1.0)) < 0.01
        transcript = json.loads(answer.with_suffix(".json").read_text())
        assert "sarcastic" in transcript["text"]
        assert transcript["persona"] == PERSONA
        assert transcript["input_file"] == source.name


def test_a_folder_drop_with_two_voices_makes_an_evaluation_matrix(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    page.form.tick(page.form.voices, ["NATF2", "NATM1"])
    assert page.matrix_label.text() == "Each file makes 2 jobs (1 persona × 2 voices)."
    assert page.drop_zone.isVisibleTo(page) and not page.table.isVisibleTo(page)
    folder = tmp_path / "batch"
    inputs = [*spoken_files(folder, ("a",)), *spoken_files(folder / "deeper", ("b", "c"))]
    (folder / "readme.txt").write_text("not audio, and not named like audio: skipped")
    hidden = spoken_files(folder / ".cache", ("skipped",))
    out = tmp_path / "answers"
    page.form.set_out_dir(out)
    drop(page, [folder])
    qtbot.waitUntil(lambda: all_final(page, 6), timeout=JOB_WAIT_MS)
    assert {i.state for i in rows(page)} == {ItemState.DONE}
    made = sorted(p.name for p in out.iterdir())
    assert made == sorted(
        f"{p.stem}.{SLUG}.{voice}.{ext}"
        for p in inputs
        for voice in ("NATF2", "NATM1")
        for ext in ("wav", "json")
    )
    assert hidden[0].name not in {i.path.name for i in rows(page)}
    assert json.loads((out / f"b.{SLUG}.NATM1.json").read_text())["voice"] == "NATM1"
    assert page.overall.value() == 1000
    assert page.summary_label.text() == "6 of 6 done"
    assert page.table.isVisibleTo(page) and not page.drop_zone.isVisibleTo(page)


def test_cancel_stops_a_running_and_a_queued_job_and_retry_sends_again(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    slow_backend(shell, 0.25)  # about 10 s per file: plenty of time to cancel
    inputs = spoken_files(tmp_path / "in", ("first", "second"))
    drop(page, inputs)
    qtbot.waitUntil(
        lambda: states(page) == [ItemState.RUNNING, ItemState.QUEUED], timeout=JOB_WAIT_MS
    )
    page.table.selectAll()
    assert page.cancel_button.isEnabled()
    page.cancel_button.click()
    qtbot.waitUntil(
        lambda: states(page) == [ItemState.CANCELLED, ItemState.CANCELLED], timeout=JOB_WAIT_MS
    )
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["first.wav", "second.wav"]
    assert page.retry_button.isEnabled()
    slow_backend(shell, 0.0)
    first = rows(page)[0]
    page.select(first.id)
    page.retry_button.click()
    qtbot.waitUntil(lambda: rows(page)[0].state is ItemState.DONE, timeout=JOB_WAIT_MS)
    assert rows(page)[1].state is ItemState.CANCELLED
    assert (tmp_path / "in" / f"first.{SLUG}.NATF2.wav").is_file()


def test_closing_mid_batch_and_reopening_lists_results_and_finishes_the_rest(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    slow_backend(shell, 0.05)
    inputs = spoken_files(tmp_path / "in")
    drop(page, inputs)
    qtbot.waitUntil(lambda: ItemState.DONE in states(page), timeout=JOB_WAIT_MS)
    before = {i.path.name: i for i in rows(page)}
    assert sum(1 for i in before.values() if i.state is ItemState.DONE) == 1
    assert all(i.job_id for i in before.values())
    quit_gracefully(qtbot, shell)

    again = launch()
    page = offline_page(again)
    qtbot.waitUntil(lambda: len(rows(page)) == 3, timeout=15_000)
    after = {i.path.name: i for i in rows(page)}
    done_first = next(n for n, i in before.items() if i.state is ItemState.DONE)
    assert after[done_first].state is ItemState.DONE
    assert after[done_first].audio_path == before[done_first].audio_path
    qtbot.waitUntil(lambda: all_final(page, 3), timeout=JOB_WAIT_MS)
    assert {i.state for i in rows(page)} == {ItemState.DONE}
    assert {n: i.job_id for n, i in after.items()} == {n: i.job_id for n, i in before.items()}
    # One answer per input: nothing was made twice, nothing overwritten.
    answers = sorted(p.name for p in (tmp_path / "in").glob("*.wav") if SLUG in p.name)
    assert answers == sorted(f"{p.stem}.{SLUG}.NATF2.wav" for p in inputs)
    # The jobs are the new owner key's now, and still nobody else's.
    url = url_of(again)
    status, listed = http(f"{url}/v1/jobs", key=again.services.owner_key)
    assert status == 200
    assert {j["id"] for j in listed["jobs"]} == {i.job_id for i in after.values()}
    stranger = again.services.keystore.create("stranger").key
    status, _body = http(f"{url}/v1/jobs/{after[done_first].job_id}", key=stranger)
    assert status == 404


def test_answers_never_replace_existing_files(qtbot: QtBot, launch: Launch, tmp_path: Path) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    (source,) = spoken_files(tmp_path / "in", ("question",))
    taken = source.parent / f"question.{SLUG}.NATF2.json"
    taken.write_text("my own notes")
    drop(page, [source])
    qtbot.waitUntil(lambda: all_final(page, 1), timeout=JOB_WAIT_MS)
    drop(page, [source])
    qtbot.waitUntil(lambda: all_final(page, 2), timeout=JOB_WAIT_MS)
    assert taken.read_text() == "my own notes"
    assert [i.audio_path.name for i in rows(page) if i.audio_path] == [
        f"question.{SLUG}.NATF2 (2).wav",
        f"question.{SLUG}.NATF2 (3).wav",
    ]
    assert not (source.parent / f"question.{SLUG}.NATF2.wav").exists()
    assert sorted(p.name for p in source.parent.iterdir()) == sorted(
        [
            "question.wav",
            taken.name,
            *(f"question.{SLUG}.NATF2 ({n}).{ext}" for n in (2, 3) for ext in ("wav", "json")),
        ]
    )


def test_too_long_and_too_big_files_are_refused_at_drop_time_with_the_reason(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch(settings=Settings(max_audio_s=2.5, max_upload_mb=0.1))
    page = ready_page(qtbot, shell)
    folder = tmp_path / "in"
    folder.mkdir()
    made = {}
    for name, seconds, rate, channels in (
        ("fine", 1.0, 16_000, 1),  # 32 KB
        ("long", 3.0, 16_000, 1),  # 96 KB, but 3 s
        ("big", 1.5, 48_000, 2),  # 288 KB
    ):
        made[name] = folder / f"{name}.wav"
        pcm = tone(440, seconds, rate)
        sf.write(str(made[name]), np.stack([pcm] * channels, axis=1), rate, subtype="PCM_16")
    drop(page, list(made.values()))
    qtbot.waitUntil(lambda: all_final(page, 3), timeout=JOB_WAIT_MS)
    by_name = {i.path.stem: i for i in rows(page)}
    assert by_name["fine"].state is ItemState.DONE
    assert (by_name["long"].state, by_name["long"].message) == (
        ItemState.REFUSED,
        "'long.wav' is 3 s long; the gateway accepts up to 2.5 s. Split it into shorter files.",
    )
    assert by_name["big"].state is ItemState.REFUSED
    assert by_name["big"].message == (
        "'big.wav' is 281 KB; the gateway accepts files up to 102 KB. Split it or save it as "
        "FLAC or OGG."
    )
    assert by_name["big"].job_id is None and by_name["long"].job_id is None
    # The row says why, in the Result column, and the summary counts it.
    result = page.model.index(page.model.row_of(by_name["long"].id) or 0, RESULT)
    assert "3 s long" in result.data()
    assert page.summary_label.text() == "1 of 1 done · 2 refused"


class FolderOpener(QObject):
    """Stands in for the file manager: QDesktopServices hands file URLs to it."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[Path] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(Path(url.toLocalFile()))


def test_an_answer_that_could_not_be_saved_is_fetched_again_on_retry_and_rows_go(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    (source,) = spoken_files(tmp_path / "in", ("question",))
    blocked = tmp_path / "answers"
    blocked.write_text("a file where the answers folder should be")
    page.form.set_out_dir(blocked)
    drop(page, [source])
    qtbot.waitUntil(lambda: all_final(page, 1), timeout=JOB_WAIT_MS)
    (item,) = rows(page)
    assert item.state is ItemState.FAILED
    assert (item.message or "").startswith("'question.wav' could not be read or its answer written")
    job_id = item.job_id
    blocked.unlink()
    page.select(item.id)
    assert page.retry_button.isEnabled()
    page.retry_button.click()
    qtbot.waitUntil(lambda: rows(page)[0].state is ItemState.DONE, timeout=JOB_WAIT_MS)
    assert rows(page)[0].job_id == job_id  # the same job: the model did not run again
    assert rows(page)[0].audio_path == blocked / f"question.{SLUG}.NATF2.wav"
    assert page.transcript_view.toPlainText() == rows(page)[0].transcript
    assert "sarcastic" in page.transcript_view.toPlainText()
    # Playing needs a speaker; where there is none the page says so instead.
    qtbot.waitUntil(lambda: page.sound_problem != "Looking for a speaker…", timeout=15_000)
    assert page.play_answer_button.isEnabled() == (page.sound_problem is None)
    assert page.sound_label.text() == (page.sound_problem or "")
    opened = FolderOpener()
    QDesktopServices.setUrlHandler("file", opened, "open")  # type: ignore[arg-type]
    try:
        page.open_folder_button.click()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert opened.urls == [blocked]

    page.select(item.id)
    page.remove_button.click()
    qtbot.waitUntil(lambda: page.model.rowCount() == 0, timeout=15_000)
    assert page.drop_zone.isVisibleTo(page)
    assert (blocked / f"question.{SLUG}.NATF2.wav").is_file()  # the answer stays on disk
    url, key = url_of(shell), shell.services.owner_key
    qtbot.waitUntil(lambda: http(f"{url}/v1/jobs/{job_id}", key=key)[0] == 404, timeout=15_000)


def test_files_dropped_while_the_gateway_is_stopped_wait_and_survive_a_restart(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    shell.gateway.stop()
    qtbot.waitUntil(lambda: shell.gateway.view.state is GatewayState.STOPPED, timeout=15_000)
    inputs = spoken_files(tmp_path / "in", ("early", "late"))
    drop(page, inputs)
    qtbot.waitUntil(lambda: len(rows(page)) == 2, timeout=15_000)
    assert states(page) == [ItemState.WAITING, ItemState.WAITING]
    assert page.summary_label.text() == "0 of 2 done · 2 to upload · waiting for the gateway to run"
    quit_gracefully(qtbot, shell)

    page = offline_page(launch())
    qtbot.waitUntil(lambda: all_final(page, 2), timeout=JOB_WAIT_MS)
    assert states(page) == [ItemState.DONE, ItemState.DONE]
    assert [i.persona for i in rows(page)] == [PERSONA, PERSONA]
    assert all((tmp_path / "in" / f"{p.stem}.{SLUG}.NATF2.wav").is_file() for p in inputs)


def test_a_job_deleted_behind_the_pages_back_shows_as_gone_and_can_be_sent_again(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    slow_backend(shell, 0.1)
    drop(page, spoken_files(tmp_path / "in", ("first", "second")))
    qtbot.waitUntil(lambda: states(page)[1:] == [ItemState.QUEUED], timeout=JOB_WAIT_MS)
    second = rows(page)[1]
    deleted = second.job_id
    url, key = url_of(shell), shell.services.owner_key
    for _ in range(2):  # the first DELETE cancels, the second deletes
        assert http(f"{url}/v1/jobs/{deleted}", key=key, method="DELETE")[0] == 200
    qtbot.waitUntil(lambda: rows(page)[1].state is ItemState.GONE, timeout=JOB_WAIT_MS)
    assert (rows(page)[1].message or "").startswith("The gateway no longer has this job")
    slow_backend(shell, 0.0)
    page.select(second.id)
    page.retry_button.click()
    qtbot.waitUntil(lambda: all_final(page, 2), timeout=JOB_WAIT_MS)
    assert states(page) == [ItemState.DONE, ItemState.DONE]
    assert rows(page)[1].job_id not in (None, deleted)
