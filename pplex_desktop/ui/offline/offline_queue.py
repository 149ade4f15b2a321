"""The Offline page's work: files checked, sent as jobs, followed, and their answers saved.

Everything slow happens off the Qt thread and off the gateway's loop, through the desktop's
I/O bridge: uploads and downloads over HTTP with the owner key on its loop, file checks and
the page's record in its disk thread.
The Qt thread only changes rows and starts work. News comes two ways: the gateway's JobChanged
events (immediate) and a light poll of GET /v1/jobs (catches anything an event did not say,
such as the stage of a running job, or jobs that finished while the app was closed).

Surviving a restart: the owner key is replaced at every start and a key only sees its own
jobs. The record (``offline.sqlite3``) keeps each row's job id; once the gateway runs, the
page takes back the jobs it recorded under its previous owner keys (``JobStore.reassign``,
in-process, only jobs whose key is gone and whose key name is the owner's), and from then on
uses the public API like any client. The HTTP API itself never shows one key another's jobs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from pplex_desktop.core.errors import NotFoundError, PplexError
from pplex_desktop.core.jobstore import JobStore
from pplex_desktop.core.keystore import KIND_OWNER, KeyStore
from pplex_desktop.desktop.offline_client import JobApiError, JobClient
from pplex_desktop.desktop.offline_files import (
    FileCheck,
    check_file,
    expand,
    publish,
    result_folder,
    result_stem,
    temp_path,
)
from pplex_desktop.desktop.offline_record import BatchRecord, Item, ItemState, NewItem
from pplex_desktop.gateway.events import JobChanged, JobsExpired
from pplex_desktop.gateway.server import GatewayState
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.server.gateway_control import GatewayView

_log = logging.getLogger(__name__)
POLL_MS = 2_000
RETRY_MS = 5_000  # a busy or unreachable gateway is asked again after this, or its Retry-After
GONE_MESSAGE = (
    "The gateway no longer has this job: finished jobs are deleted after the retention time "
    "(Settings). Retry sends the file again."
)


@dataclass(frozen=True, slots=True)
class BatchChoice:
    """What the form asks for: every file is sent once per persona and per voice."""

    personas: tuple[str, ...]
    voices: tuple[str, ...]
    seed: int | None
    silence_s: float
    out_dir: Path | None  # None: next to each input


@dataclass(frozen=True, slots=True)
class Collected:
    job: dict[str, Any]
    audio: Path | None = None
    transcript_path: Path | None = None
    text: str | None = None


def check_all(paths: Iterable[Path], max_bytes: int, max_seconds: float) -> list[FileCheck]:
    return [
        check_file(p, max_bytes=max_bytes, max_seconds=max_seconds) for p in expand(list(paths))
    ]


async def collect(client: JobClient, base: str, item: Item) -> Collected:
    """The finished job; when it is done, its answer and transcript saved under free names.

    ``item`` is a copy: this runs on the gateway thread while the Qt thread owns the original.
    """
    assert item.job_id is not None
    job = await client.job(base, item.job_id)
    if job["state"] != "done":
        return Collected(job)
    folder = result_folder(item.path, item.out_dir)
    stem = result_stem(item.path, item.persona, item.voice)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    audio = temp_path(folder, stem)
    try:
        await client.download_audio(base, item.job_id, audio)
        transcript = await client.transcript(base, item.job_id)
    except BaseException:
        await asyncio.to_thread(audio.unlink, missing_ok=True)
        raise
    transcript.update(
        input_file=item.path.name,
        persona=item.persona,
        voice=item.voice,
        seed=item.seed,
        silence_s=item.silence_s,
    )
    wav, js = await asyncio.to_thread(publish, folder, stem, audio, transcript)
    return Collected(job, wav, js, str(transcript.get("text") or ""))


def adopt(keystore: KeyStore, data_folder: Path, job_ids: list[str]) -> int:
    """Move the recorded jobs of this app's earlier owner keys to its current one.

    Only a job whose key no longer exists and carried the owner key's name moves: the owner
    keys of earlier runs are deleted at start, a user's key never is by that.
    """
    owners = keystore.list_keys(kinds=frozenset({KIND_OWNER}))
    if not owners or not job_ids:
        return 0
    owner = owners[-1]
    store = JobStore.in_folder(data_folder)
    try:
        orphans: list[str] = []
        for job_id in job_ids:
            job = store.get(job_id)
            if job is None or job.key_id == owner.id or job.key_name != owner.name:
                continue
            try:
                keystore.get(job.key_id)
            except NotFoundError:
                orphans.append(job_id)
        return len(store.reassign(orphans, key_id=owner.id, key_name=owner.name))
    finally:
        store.close()


def _sentence(error: BaseException, path: Path) -> str:
    if isinstance(error, PplexError):
        return error.message
    if isinstance(error, OSError):
        return f"'{path.name}' could not be read or its answer written: {error.strerror or error}."
    return f"'{path.name}' failed unexpectedly ({type(error).__name__}); see the log."


class OfflineQueue(QObject):
    added = Signal(object)  # list[Item], new rows
    removed = Signal(object)  # list[int], rows gone
    changed = Signal(object)  # Item, changed in place
    loaded = Signal()  # the record was read (at start)

    def __init__(self, ctx: DesktopContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ctx = ctx
        self._bridge = ctx.io
        self.client = JobClient(ctx.owner_key)
        self._record: BatchRecord | None = None  # opened and used in the disk thread only
        self._data_folder = ctx.keystore.db.path.parent  # where the gateway keeps its jobs
        self.items: dict[int, Item] = {}
        self._by_job: dict[str, int] = {}
        self._uploading: int | None = None
        self._collecting: set[int] = set()
        self._cancel_after_upload: set[int] = set()
        self._polling = False
        self.is_loaded = False
        self.ready = False  # the gateway runs and our earlier jobs are ours again
        self._closed = False

        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self.poll)
        self._later = QTimer(self)
        self._later.setSingleShot(True)
        self._later.timeout.connect(self._pump)
        ctx.bridge.job_changed.connect(self._job_changed)
        ctx.bridge.jobs_expired.connect(self._jobs_expired)
        ctx.gateway.changed.connect(self._gateway_changed)

        self.page_state: dict[str, Any] = {}  # what the page was left with, once loaded
        folder = ctx.data_dir

        def load() -> tuple[list[Item], dict[str, Any]]:
            self._record = BatchRecord(folder)
            return self._record.load(), self._record.page_state()

        self._bridge.call_fn(
            load, on_done=lambda got: self._loaded(*got), what="reading the offline batches"
        )

    # -- the record -------------------------------------------------------------------------------

    def _rec(self) -> BatchRecord:
        assert self._record is not None, "the record is opened before any other call"
        return self._record

    def _set(self, item: Item, *, keep: bool = False, **changes: Any) -> None:
        """Change a row; with ``keep`` also in the record (what a restart needs to know)."""
        for name, value in changes.items():
            setattr(item, name, value)
        self.changed.emit(item)
        if keep and not self._closed:
            kept = {k: v for k, v in changes.items() if k not in ("progress", "stage")}
            self._bridge.call_fn(
                lambda: self._rec().update(item.id, kept), what="saving the offline batch"
            )

    def save_page_state(self, name: str, value: object) -> None:
        """Keep one thing the page was left with (JSON), for the next start on this folder."""
        if self._closed or not self.is_loaded:
            return  # before the load, the defaults on screen must not replace what was kept
        self.page_state[name] = value
        self._bridge.call_fn(
            lambda: self._rec().set_page_state(name, value), what="saving the offline page"
        )

    def _loaded(self, items: list[Item], page_state: dict[str, Any]) -> None:
        self.page_state = page_state
        for item in items:
            if item.state is ItemState.UPLOADING:
                item.state = ItemState.WAITING  # the app closed during the upload
            elif item.state in (ItemState.RUNNING, ItemState.SAVING):
                item.state = ItemState.QUEUED  # the gateway says where it is once we ask
            self.items[item.id] = item
            if item.job_id is not None:
                self._by_job[item.job_id] = item.id
        self.is_loaded = True
        if items:
            _log.info("The Offline page lists %d row(s) from earlier runs.", len(items))
            self.added.emit(items)
        self.loaded.emit()
        self._gateway_changed(self._ctx.gateway.view)

    # -- the gateway coming and going -------------------------------------------------------------

    def _gateway_changed(self, view: GatewayView) -> None:
        if self._closed or not self.is_loaded:
            return
        if view.state is not GatewayState.RUNNING:
            self.ready = False
            self._poll.stop()
            return
        if self.ready:
            return
        job_ids = [i.job_id for i in self.items.values() if i.job_id is not None]
        keystore = self._ctx.keystore
        folder = self._data_folder
        self._bridge.call_fn(
            lambda: adopt(keystore, folder, job_ids),
            on_done=self._adopted,
            what="taking back the offline jobs of an earlier run",
        )

    def _adopted(self, count: int) -> None:
        if count:
            _log.info("The Offline page took back %d job(s) from an earlier run.", count)
        if self._ctx.gateway_url() is None:
            return  # stopped again meanwhile; the next start adopts again
        self.ready = True
        self.poll()
        self._pump()

    # -- adding -----------------------------------------------------------------------------------

    def add(self, paths: list[Path], choice: BatchChoice) -> None:
        """Check the files (off the Qt thread) and add one row per file, persona and voice."""
        settings = self._ctx.settings.current
        max_bytes = int(settings.max_upload_mb * 1024 * 1024)
        max_seconds = settings.max_audio_s

        def prepare() -> list[Item]:
            checks = check_all(paths, max_bytes, max_seconds)
            record = self._rec()
            batch = record.next_batch()
            now = time.time()
            new = [
                NewItem(
                    batch=batch,
                    path=check.path,
                    out_dir=choice.out_dir,
                    persona=persona,
                    voice=voice,
                    seed=choice.seed,
                    silence_s=choice.silence_s,
                    state=ItemState.REFUSED if check.refusal else ItemState.WAITING,
                    message=check.refusal,
                    input_s=check.seconds,
                    created_at=now,
                )
                for check in checks
                # A refused file is one row, whatever it would have been sent with.
                for persona in (choice.personas[:1] if check.refusal else choice.personas)
                for voice in (choice.voices[:1] if check.refusal else choice.voices)
            ]
            return record.add(new)

        self._bridge.call_fn(prepare, on_done=self._added, what="adding files to the offline page")

    def _added(self, items: list[Item]) -> None:
        if self._closed:
            return
        for item in items:
            self.items[item.id] = item
        refused = sum(1 for i in items if i.state is ItemState.REFUSED)
        _log.info(
            "The Offline page added %d job(s) and refused %d file(s).",
            len(items) - refused,
            refused,
        )
        self.added.emit(items)
        self._pump()

    # -- uploading, one file at a time ------------------------------------------------------------

    def _pump(self) -> None:
        base = self._ctx.gateway_url()
        if self._closed or self._uploading is not None or not self.ready or base is None:
            return
        if self._later.isActive():
            return  # the gateway asked us to wait
        item = next((i for i in self.items.values() if i.state is ItemState.WAITING), None)
        if item is None:
            return
        self._uploading = item.id
        self._set(item, state=ItemState.UPLOADING, message=None)
        fields = {"persona": item.persona, "voice": item.voice, "silence_s": f"{item.silence_s:g}"}
        if item.seed is not None:
            fields["seed"] = str(item.seed)
        item_id = item.id
        self._bridge.call(
            self.client.submit(base, item.path, fields),
            on_done=lambda job: self._uploaded(item_id, job),
            on_error=lambda error: self._upload_failed(item_id, error),
            what="sending a file to the gateway",
        )

    def _uploaded(self, item_id: int, job: dict[str, Any]) -> None:
        self._uploading = None
        item = self.items.get(item_id)
        if item is None:  # removed while it was uploading: nobody wants the job
            self._forget_job(str(job["id"]))
        else:
            self._by_job[job["id"]] = item.id
            self._set(item, keep=True, job_id=job["id"], state=ItemState.QUEUED, message=None)
            self._apply(item, job)
            if item.id in self._cancel_after_upload:
                self._cancel_after_upload.discard(item.id)
                self.cancel([item.id])
            if not self._poll.isActive():
                self._poll.start()
        self._pump()

    def _upload_failed(self, item_id: int, error: BaseException) -> None:
        self._uploading = None
        self._cancel_after_upload.discard(item_id)
        item = self.items.get(item_id)
        if item is None:
            self._pump()
            return
        if isinstance(error, JobApiError) and error.status in (0, 429, 503):
            # Busy, over a limit or not running: the file waits and is sent again later.
            self._set(item, state=ItemState.WAITING, message=error.message)
            wait_s = error.retry_after_s
            self._later.start(int(wait_s * 1000) if wait_s else RETRY_MS)
            return
        message = _sentence(error, item.path)
        _log.warning("The Offline page could not send '%s': %s", item.path.name, message)
        self._set(item, keep=True, state=ItemState.FAILED, message=message)
        self._pump()

    # -- news from the gateway --------------------------------------------------------------------

    def _apply(self, item: Item, job: dict[str, Any]) -> None:
        """Take the gateway's view of a job; a finished one is collected."""
        if item.state.final or item.state is ItemState.SAVING:
            return  # already finishing here: a late "running" must not undo that
        state = str(job["state"])
        news: dict[str, Any] = {"progress": float(job.get("progress") or 0.0)}
        for name in ("stage", "started_at"):
            if name in job:  # events carry neither; the poll does
                news[name] = job[name]
        self._set(item, **news)
        if state in ("queued", "running"):
            if item.state.value != state:
                self._set(item, state=ItemState(state))
        else:
            self._collect(item)

    def _job_changed(self, event: JobChanged) -> None:
        item_id = self._by_job.get(event.job_id)
        item = self.items.get(item_id) if item_id is not None else None
        if item is None or self._closed:
            return
        if event.state in ("queued", "running"):
            self._apply(item, {"state": event.state, "progress": event.progress})
        elif self.ready:
            self._collect(item)
        # Before the jobs are ours again, the poll after adopting finds it finished.

    def _jobs_expired(self, event: JobsExpired) -> None:
        for job_id in event.job_ids:
            item_id = self._by_job.pop(job_id, None)
            item = self.items.get(item_id) if item_id is not None else None
            if item is not None and item.state.on_gateway:
                self._set(item, keep=True, state=ItemState.GONE, message=GONE_MESSAGE)

    def poll(self) -> None:
        base = self._ctx.gateway_url()
        if self._closed or self._polling or not self.ready or base is None:
            return
        wanted = {
            i.job_id for i in self.items.values() if i.job_id is not None and i.state.on_gateway
        }
        if not wanted:
            self._poll.stop()
            return
        if not self._poll.isActive():
            self._poll.start()
        self._polling = True
        self._bridge.call(
            self.client.find(base, wanted),
            on_done=lambda found: self._polled(wanted, found),
            on_error=self._poll_failed,
            what="reading the offline jobs",
        )

    def _polled(self, wanted: set[str], found: dict[str, dict[str, Any]]) -> None:
        self._polling = False
        for job_id in wanted:
            item_id = self._by_job.get(job_id)
            item = self.items.get(item_id) if item_id is not None else None
            if item is None or not item.state.on_gateway:
                continue
            job = found.get(job_id)
            if job is None:
                self._set(item, keep=True, state=ItemState.GONE, message=GONE_MESSAGE)
            elif item.state is ItemState.SAVING and item.id not in self._collecting:
                self._collect(item)  # an earlier attempt to save it met a busy gateway
            else:
                self._apply(item, job)

    def _poll_failed(self, error: BaseException) -> None:
        self._polling = False
        if not isinstance(error, JobApiError):
            self._ctx.errors.report("reading the offline jobs", error)
        # A busy or stopped gateway: the next tick asks again.

    # -- saving the answers -----------------------------------------------------------------------

    def _collect(self, item: Item) -> None:
        base = self._ctx.gateway_url()
        if item.id in self._collecting or item.state.final or base is None or not self.ready:
            return
        self._collecting.add(item.id)
        self._set(item, state=ItemState.SAVING)
        snapshot = dataclasses.replace(item)
        self._bridge.call(
            collect(self.client, base, snapshot),
            on_done=lambda got: self._collected(item.id, got),
            on_error=lambda error: self._collect_failed(item.id, error),
            what="saving an offline answer",
        )

    def _collected(self, item_id: int, got: Collected) -> None:
        self._collecting.discard(item_id)
        item = self.items.get(item_id)
        if item is None:
            return
        job = got.job
        timing = {
            "started_at": job.get("started_at"),
            "finished_at": job.get("finished_at"),
            "input_s": job.get("input_s", item.input_s),
        }
        if got.audio is not None:
            _log.info("The answer to '%s' was saved as '%s'.", item.path.name, got.audio.name)
            self._set(
                item,
                keep=True,
                state=ItemState.DONE,
                message=None,
                output_s=job.get("duration_s"),
                audio_path=got.audio,
                transcript_path=got.transcript_path,
                transcript=got.text,
                progress=1.0,
                **timing,
            )
        elif job["state"] == "cancelled":
            self._set(
                item, keep=True, state=ItemState.CANCELLED, message=job.get("error"), **timing
            )
        elif job["state"] == "failed":
            message = str(job.get("error") or "The job failed.")
            _log.warning("The job for '%s' failed: %s", item.path.name, message)
            self._set(item, keep=True, state=ItemState.FAILED, message=message, **timing)
        else:  # not finished after all (a retried job): follow it again
            self._set(item, state=ItemState(job["state"]))

    def _collect_failed(self, item_id: int, error: BaseException) -> None:
        self._collecting.discard(item_id)
        item = self.items.get(item_id)
        if item is None:
            return
        if isinstance(error, JobApiError) and error.status == 404:
            self._set(item, keep=True, state=ItemState.GONE, message=GONE_MESSAGE)
        elif isinstance(error, JobApiError) and error.status in (0, 429, 503):
            return  # still SAVING: the next poll tries again
        else:
            message = _sentence(error, item.path)
            _log.warning("The answer to '%s' could not be saved: %s", item.path.name, message)
            self._set(item, keep=True, state=ItemState.FAILED, message=message)

    # -- what the user asks for -------------------------------------------------------------------

    def _selected(self, item_ids: Iterable[int]) -> list[Item]:
        return [self.items[i] for i in item_ids if i in self.items]

    def _gateway_call(
        self,
        what: str,
        coro_for: Callable[[str], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> bool:
        base = self._ctx.gateway_url()
        if base is None or not self.ready:
            self._ctx.status.post("The gateway is not running; start it to change its jobs.")
            return False
        self._bridge.call(coro_for(base), on_done=on_done, on_error=on_error, what=what)
        return True

    def cancel(self, item_ids: Iterable[int]) -> None:
        for item in self._selected(item_ids):
            if item.state is ItemState.WAITING:
                self._set(item, keep=True, state=ItemState.CANCELLED, message="Not sent.")
            elif item.state is ItemState.UPLOADING:
                self._cancel_after_upload.add(item.id)
            elif item.state in (ItemState.QUEUED, ItemState.RUNNING) and item.job_id:
                self._cancel_job(item, item.job_id)

    def _cancel_job(self, item: Item, job_id: str) -> None:
        def cancelled(job: dict[str, Any]) -> None:
            if job.get("deleted"):  # it finished a moment before: DELETE removed it instead
                message = "The job finished just before it was cancelled; its answer is dropped."
                self._set(item, keep=True, state=ItemState.CANCELLED, message=message)
            else:
                self._apply(item, job)

        self._gateway_call(
            "cancelling an offline job",
            lambda base: self.client.cancel(base, job_id),
            cancelled,
            lambda error: self._ctx.status.post(_sentence(error, item.path)),
        )

    def retry(self, item_ids: Iterable[int]) -> None:
        """Send again what failed or was cancelled; an answer that could not be saved is
        fetched again instead, without running the model a second time."""
        for item in self._selected(item_ids):
            if not item.state.retryable:
                continue
            if item.state is ItemState.FAILED and item.job_id is not None and self.ready:
                self._retry_saving_or_resend(item, item.job_id)
            else:
                self._resend(item)
        self._pump()

    def _retry_saving_or_resend(self, item: Item, job_id: str) -> None:
        def got(job: dict[str, Any]) -> None:
            if item.id not in self.items:
                return
            if job["state"] == "done":  # only the saving failed: the answer is still there
                self._set(item, state=ItemState.QUEUED, message=None)
                self._collect(item)
            else:
                self._resend(item)
                self._pump()

        def failed(_error: BaseException) -> None:
            if item.id in self.items:
                self._resend(item)
                self._pump()

        self._gateway_call(
            "retrying an offline job", lambda base: self.client.job(base, job_id), got, failed
        )

    def _resend(self, item: Item) -> None:
        if item.job_id is not None:
            self._forget_job(item.job_id)
        self._set(
            item,
            keep=True,
            state=ItemState.WAITING,
            job_id=None,
            message=None,
            progress=0.0,
            stage=None,
            started_at=None,
            finished_at=None,
            output_s=None,
        )

    def remove(self, item_ids: Iterable[int]) -> None:
        """Drop rows (their saved answers stay on disk); their jobs leave the gateway too."""
        gone = self._selected(item_ids)
        if not gone:
            return
        for item in gone:
            del self.items[item.id]
            self._cancel_after_upload.discard(item.id)
            if item.job_id is not None:
                self._by_job.pop(item.job_id, None)
                if item.state is not ItemState.GONE:
                    self._forget_job(item.job_id)
        ids = [i.id for i in gone]
        self._bridge.call_fn(lambda: self._rec().delete(ids), what="saving the offline batch")
        self.removed.emit(ids)

    def _forget_job(self, job_id: str) -> None:
        """Delete a job the page no longer wants; a gateway that is down keeps it until expiry."""
        self._by_job.pop(job_id, None)
        base = self._ctx.gateway_url()
        if base is None or not self.ready or self._closed:
            return

        def failed(error: BaseException) -> None:
            _log.info(
                "A job the Offline page dropped stays on the gateway until it expires (%s).", error
            )

        self._bridge.call(
            self.client.delete(base, job_id), on_error=failed, what="deleting an offline job"
        )

    # -- quitting ---------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop asking; what is on the gateway keeps running there and is listed next time."""
        self._closed = True
        self._poll.stop()
        self._later.stop()

        def close() -> None:
            if self._record is not None:
                self._record.close()

        self._bridge.call_fn(close, what="closing the offline record")
