"""The Offline page's files: what a drop holds, refusals before upload, names that never clash."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import soundfile as sf

from pplex_desktop.core.personas import PRESETS
from pplex_desktop.desktop.offline_files import (
    check_file,
    expand,
    persona_slug,
    publish,
    result_stem,
    size_text,
    slug,
    temp_path,
)
from pplex_desktop.desktop.offline_record import BatchRecord, ItemState, NewItem


def _wav(path: Path, seconds: float, rate: int = 16_000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.zeros((int(seconds * rate), channels), dtype=np.float32)
    sf.write(str(path), frames, rate, subtype="PCM_16")
    return path


def test_folders_are_walked_for_audio_and_answers_are_left_out(tmp_path: Path) -> None:
    a = _wav(tmp_path / "in" / "a.wav", 0.1)
    b = _wav(tmp_path / "in" / "sub" / "B.FLAC", 0.1)
    _wav(tmp_path / "in" / ".hidden" / "c.wav", 0.1)
    (tmp_path / "in" / "notes.txt").write_text("text")
    answer = _wav(tmp_path / "in" / "a.persona.NATF2.wav", 0.1)
    answer.with_suffix(".json").write_text(json.dumps({"input_file": "a.wav", "text": ""}))
    # A recording with an unrelated .json beside it is still an input.
    d = _wav(tmp_path / "in" / "d.wav", 0.1)
    d.with_suffix(".json").write_text("{}")
    loose = tmp_path / "loose.txt"
    loose.write_text("dropped on its own: kept, so that it is refused with a reason")
    assert expand([tmp_path / "in", loose, a]) == [a, d, b, loose]


def test_files_are_refused_with_a_sentence_before_any_upload(tmp_path: Path) -> None:
    ok = _wav(tmp_path / "ok.wav", 1.0)
    assert check_file(ok, max_bytes=10**6, max_seconds=5).seconds == 1.0
    text = tmp_path / "text.wav"
    text.write_text("not audio")
    refusal = check_file(text, max_bytes=10**6, max_seconds=5).refusal
    assert refusal is not None and "'text.wav' is not an audio file" in refusal
    refusal = check_file(_wav(tmp_path / "long.wav", 3.0), max_bytes=10**6, max_seconds=2).refusal
    assert (
        refusal
        == "'long.wav' is 3 s long; the gateway accepts up to 2 s. Split it into shorter files."
    )
    refusal = check_file(ok, max_bytes=1024, max_seconds=5).refusal
    assert refusal == (
        "'ok.wav' is 31 KB; the gateway accepts files up to 1 KB. Split it or save it as FLAC "
        "or OGG."
    )
    assert size_text(200 * 1024**2) == "200 MB"
    assert size_text(int(1.5 * 1024**2)) == "1.5 MB"
    assert check_file(
        _wav(tmp_path / "empty.wav", 0.0), max_bytes=10**6, max_seconds=5
    ).refusal == ("'empty.wav' holds no audio.")
    missing = check_file(tmp_path / "gone.wav", max_bytes=10**6, max_seconds=5).refusal
    assert missing is not None and missing.startswith("'gone.wav' cannot be read")


def test_names_are_predictable() -> None:
    assert slug("You are a wise and friendly teacher. Answer questions!") == (
        "you-are-a-wise-and-friendly"
    )
    assert slug("!!!") == "persona"
    assert persona_slug(PRESETS[3].text) == "customer-service-bike-shop"
    assert result_stem(Path("/x/call 1.wav"), PRESETS[0].text, "NATF2") == (
        "call 1.assistant-trained-role.NATF2"
    )


def _publish(folder: Path, stem: str, content: bytes) -> tuple[Path, Path]:
    audio = temp_path(folder, stem)
    audio.write_bytes(content)
    return publish(folder, stem, audio, {"text": content.decode()})


def test_publishing_never_replaces_a_file_and_keeps_pairs_together(tmp_path: Path) -> None:
    (tmp_path / "q.p.V.wav").write_bytes(b"mine")
    (tmp_path / "q.p.V (2).json").write_text("also mine")
    wav, js = _publish(tmp_path, "q.p.V", b"answer")
    assert (wav.name, js.name) == ("q.p.V (3).wav", "q.p.V (3).json")
    assert wav.read_bytes() == b"answer"
    assert json.loads(js.read_text()) == {"text": "answer"}
    assert (tmp_path / "q.p.V.wav").read_bytes() == b"mine"
    assert (tmp_path / "q.p.V (2).json").read_text() == "also mine"
    assert not (tmp_path / "q.p.V (2).wav").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_concurrent_saves_of_one_name_each_get_their_own(tmp_path: Path) -> None:
    results: list[tuple[Path, Path]] = []
    lock = threading.Lock()

    def save(n: int) -> None:
        made = _publish(tmp_path, "same", str(n).encode())
        with lock:
            results.append(made)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    contents = sorted(w.read_bytes() for w, _ in results)
    assert contents == sorted(str(n).encode() for n in range(8))
    for wav, js in results:
        assert json.loads(js.read_text())["text"] == wav.read_text()
    assert len({w for w, _ in results}) == 8


def test_the_record_keeps_rows_across_opens(tmp_path: Path) -> None:
    record = BatchRecord(tmp_path)
    batch = record.next_batch()
    new = NewItem(
        batch, tmp_path / "a.wav", None, "p", "NATF2", 7, 1.5, ItemState.WAITING, None, 2.0, 100.0
    )
    (item,) = record.add([new])
    record.update(
        item.id,
        {
            "state": ItemState.DONE,
            "job_id": "job_1",
            "audio_path": tmp_path / "a.p.NATF2.wav",
            "transcript": "hi",
        },
    )
    record.close()
    again = BatchRecord(tmp_path)
    (loaded,) = again.load()
    assert (loaded.state, loaded.job_id, loaded.audio_path, loaded.seed, loaded.input_s) == (
        ItemState.DONE,
        "job_1",
        tmp_path / "a.p.NATF2.wav",
        7,
        2.0,
    )
    assert loaded.duration_s == 3.5
    assert again.next_batch() == batch + 1
    again.delete([loaded.id])
    assert again.load() == []
    again.close()
