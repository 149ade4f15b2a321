"""Offline jobs: accepted uploads, a worker per backend, results on disk, expiry.

A job's files live in ``<data>/jobs/<id>/``: ``input.f32`` (the decoded upload), then
``response.wav`` and ``transcript.json``. The row in ``jobs.sqlite3`` is written only once the
input is safely decoded, so every row a caller was told about can be run again after a crash.
POST /v1/inference is a job too: it just waits for its own job to finish.

Writes to the job store run in worker threads: another process holding the database's lock
keeps one request waiting (up to SQLite's busy timeout, then a 503), never the gateway's loop
and the live sessions on it. Reads stay on the loop; in WAL mode a writer never blocks them.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

from aiohttp import web

from pplex_desktop.core.errors import PplexError, RateLimitedError, UnavailableError
from pplex_desktop.core.jobstore import (
    PRIORITY_BATCH,
    PRIORITY_SYNC,
    Job,
    JobState,
    JobStore,
    NewJob,
    new_job_id,
)
from pplex_desktop.core.keystore import ApiKey
from pplex_desktop.core.tasks import stop_tasks
from pplex_desktop.gateway.context import GatewayContext
from pplex_desktop.gateway.events import EventHub, JobChanged, JobsExpired
from pplex_desktop.gateway.offline.engine import StreamEngine
from pplex_desktop.gateway.offline.local_engine import LocalEngine, package_root
from pplex_desktop.gateway.offline.params import (
    TEXT_FIELDS,
    OfflineParams,
    merge_fields,
    parse_offline_params,
)
from pplex_desktop.gateway.offline.results import INPUT_NAME, load_input, write_result
from pplex_desktop.gateway.offline.transcoder import Transcoder
from pplex_desktop.gateway.offline.uploads import receive_upload
from pplex_desktop.gateway.pool.scheduler import Priority

_log = logging.getLogger(__name__)
JOBS_FOLDER = "jobs"
MAX_UNFINISHED_PER_KEY = 100
PROGRESS_EVENT_STEP = 0.05


class JobService:
    def __init__(self, ctx: GatewayContext, data_folder: Path) -> None:
        self.ctx = ctx
        self.folder = data_folder / JOBS_FOLDER
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store = JobStore.in_folder(data_folder)
        self.transcoder = Transcoder()
        self.stream_engine = StreamEngine(ctx)
        self.local_engine = LocalEngine(ctx.settings)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Task[None]] = {}
        self._live: dict[str, _Reporter] = {}  # progress and stage of the running jobs
        self._waiters: dict[str, list[asyncio.Future[Job]]] = {}
        self._reserved: dict[int, int] = {}  # job slots held by uploads in flight, per key

    def job_folder(self, job_id: str) -> Path:
        return self.folder / job_id

    def progress_of(self, job: Job) -> float:
        live = self._live.get(job.id)
        return live.value if live is not None and job.state is JobState.RUNNING else job.progress

    def stage_of(self, job: Job) -> str | None:
        """Where a running job is: waiting (for a model server), connecting, streaming..."""
        live = self._live.get(job.id)
        return live.where if live is not None and job.state is JobState.RUNNING else None

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        requeued, failed = await self.store.db.run(self.store.recover, now=self.ctx.clock.wall())
        if requeued:
            _log.info("%d interrupted offline job(s) are queued to run again.", len(requeued))
        for job_id in failed:
            _log.warning("The offline job %s was interrupted too often and is given up.", job_id)
        await asyncio.to_thread(self._remove_orphans, self.store.ids())
        workers = max(1, len(self.ctx.backends.backends))
        self._tasks = [
            asyncio.create_task(self._work(), name=f"job-worker-{i}") for i in range(workers)
        ]
        self._tasks.append(asyncio.create_task(self._expire_forever(), name="job-expiry"))

    async def release_waiters(self, _app: web.Application | None = None) -> None:
        """At shutdown, callers waiting on a job hear why instead of a dropped connection."""
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(
                        UnavailableError(
                            "The gateway is shutting down; the job stays queued and runs again "
                            "when it restarts (follow it at /v1/jobs).",
                            retry_after_s=30,
                            code="shutting_down",
                        )
                    )

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks.clear()
        await self.transcoder.close()
        self.store.close()

    def _remove_orphans(self, known: set[str]) -> None:
        """Folders without a row are uploads a dead gateway never finished accepting."""
        for path in self.folder.iterdir():
            if path.is_dir() and path.name not in known:
                shutil.rmtree(path, ignore_errors=True)

    # -- accepting ------------------------------------------------------------------------

    async def submit(
        self, request: web.Request, record: ApiKey, *, sync: bool
    ) -> tuple[Job, OfflineParams]:
        """Receive, validate and decode an upload, then queue it; raise a 4xx if it is unusable."""
        self._reserve(record.id)
        try:
            return await self._accept(request, record, sync=sync)
        finally:
            # The row (if any) was written before this, with no await in between: at no moment
            # do the rows plus the reservations count a job twice or not at all.
            self._release(record.id)

    def _reserve(self, key_id: int) -> None:
        """Take one of the key's job slots before the upload, in one step of the event loop.

        Counting rows alone lets concurrent uploads all pass the check before any of them
        writes its row (130 at once were all accepted); uploads in flight count too.
        """
        held = self._reserved.get(key_id, 0)
        if self.store.count_unfinished(key_id) + held >= MAX_UNFINISHED_PER_KEY:
            raise RateLimitedError(
                f"This key already has {MAX_UNFINISHED_PER_KEY} jobs waiting, running or being "
                "uploaded; wait for some to finish.",
                retry_after_s=60,
                code="too_many_jobs",
            )
        self._reserved[key_id] = held + 1

    def _release(self, key_id: int) -> None:
        held = self._reserved.pop(key_id, 1) - 1
        if held > 0:
            self._reserved[key_id] = held

    async def _accept(
        self, request: web.Request, record: ApiKey, *, sync: bool
    ) -> tuple[Job, OfflineParams]:
        settings = self.ctx.settings
        self.transcoder.prewarm()  # a decoder starts while the upload arrives
        job_id = new_job_id()
        folder = self.job_folder(job_id)
        try:
            upload = await receive_upload(
                request,
                folder / "upload",
                max_bytes=int(settings.max_upload_mb * 1024 * 1024),
                text_fields=TEXT_FIELDS,
                idle_timeout_s=settings.upload_idle_timeout_s,
            )
            params = parse_offline_params(
                merge_fields(request.query, upload.fields), settings, self.ctx.backends.voices()
            )
            if params.engine == "local":
                assert settings.personaplex_repo is not None
                package_root(settings.personaplex_repo)
            elif sync:
                self.ctx.scheduler.check_admission(params.voice, Priority.OFFLINE)
            decoded = await self.transcoder.decode(
                upload.path, folder / INPUT_NAME, max_seconds=settings.max_audio_s
            )
            await asyncio.to_thread(shutil.rmtree, folder / "upload", True)
            new = NewJob(
                key_id=record.id,
                key_name=record.name,
                priority=PRIORITY_SYNC if sync else PRIORITY_BATCH,
                engine=params.engine,
                input_name=upload.filename,
                persona=params.persona,
                voice=params.voice,
                seed=params.seed,
                silence_s=params.silence_s,
                input_s=decoded.seconds,
            )
            job = await self.store.db.run(
                self.store.create, new, job_id=job_id, now=self.ctx.clock.wall()
            )
        except BaseException:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, folder, True))
            raise
        _log.info(
            "Job %s accepted for key '%s': '%s', %.1f s of %s %d Hz %d-channel audio.",
            job.id,
            record.name,
            upload.filename,
            decoded.seconds,
            decoded.format,
            decoded.sample_rate,
            decoded.channels,
        )
        self._changed(job)
        self._wake.set()
        return job, params

    # -- running --------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            self._wake.clear()
            try:
                job = await self.store.db.run(self.store.claim_next, self.ctx.clock.wall())
            except PplexError as exc:  # the database is locked or the disk is full
                _log.warning("The job queue cannot be read (%s); retrying in a second.", exc)
                await asyncio.sleep(1.0)
                continue
            if job is None:
                await self._wake.wait()
                continue
            await self._run(job)

    async def _run(self, job: Job) -> None:
        report = self._live[job.id] = _Reporter(self.ctx.events, job)
        self._changed(job)
        task = asyncio.create_task(self._execute(job, report), name=f"job-{job.id}")
        self._running[job.id] = task
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            # The gateway is stopping: the job goes back to the queue for the next start.
            task.cancel()
            await asyncio.wait({task})
            self.store.requeue(job.id)
            raise
        finally:
            self._running.pop(job.id, None)
            self._live.pop(job.id, None)

    async def _execute(self, job: Job, report: _Reporter) -> None:
        folder = self.job_folder(job.id)
        _log.info("Job %s starts (attempt %d, engine %s).", job.id, job.attempts, job.engine)
        failure: tuple[str, int, str] | None = None
        began = time.monotonic()
        try:
            pcm = await asyncio.to_thread(load_input, folder)
            if job.engine == "local":
                result = await self.local_engine.run(job, folder, pcm, report)
            else:
                wait = self.ctx.settings.queue_max_wait_s if job.priority == PRIORITY_SYNC else None
                result = await self.stream_engine.run(job, pcm, report, max_wait_s=wait)
            report.stage("saving")
            output_s = await asyncio.to_thread(write_result, folder, job.id, result)
        except PplexError as exc:
            _log.warning("Job %s failed: %s", job.id, exc.message)
            failure = (exc.code, exc.status, exc.message)
        except Exception as exc:  # noqa: BLE001 (a bug must fail one job, never the worker)
            _log.exception("Job %s failed unexpectedly.", job.id)
            failure = (
                "internal_error",
                500,
                f"The gateway could not run this job ({type(exc).__name__}); the error has been "
                "logged for the operator.",
            )
        now = self.ctx.clock.wall()
        if failure is None:
            finished = await self.store.db.run(
                self.store.mark_done, job.id, now=now, output_s=output_s, transcript=result.text
            )
            if finished is not None:
                if job.input_s > 0:
                    self.ctx.metrics.job_rtf.observe((time.monotonic() - began) / job.input_s)
                self.ctx.keystore.record_usage(
                    job.key_id, audio_in_s=job.input_s, audio_out_s=output_s
                )
                _log.info("Job %s is done: %.1f s of answer.", job.id, output_s)
        else:
            code, status, message = failure
            finished = await self.store.db.run(
                self.store.mark_failed, job.id, now=now, code=code, status=status, message=message
            )
        # The decoded input is only needed to run the job: a finished job keeps its results.
        await asyncio.to_thread((folder / INPUT_NAME).unlink, missing_ok=True)
        self._final(finished)

    def _changed(self, job: Job) -> None:
        self.ctx.events.emit(JobChanged(job.id, job.key_id, job.state.value, self.progress_of(job)))

    def _final(self, job: Job | None) -> None:
        """Tell the waiters; None means somebody else (a cancel) already finished the job."""
        if job is None:
            return
        self._changed(job)
        for future in self._waiters.pop(job.id, []):
            if not future.done():
                future.set_result(job)

    async def wait(self, job_id: str, timeout_s: float | None = None) -> Job | None:
        """The job once it is finished, or as it is when ``timeout_s`` passes."""
        job = self.store.get(job_id)
        if job is None or job.state.final:
            return job
        future: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append(future)
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            return self.store.get(job_id)
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiters[job_id]

    # -- cancelling and removing ----------------------------------------------------------

    async def cancel(self, job_id: str) -> Job | None:
        """Cancel an unfinished job and drop its files; None if it had already finished."""
        job = await self.store.db.run(self.store.mark_cancelled, job_id, now=self.ctx.clock.wall())
        if job is None:
            return None
        task = self._running.get(job_id)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        await asyncio.to_thread(shutil.rmtree, self.job_folder(job_id), True)
        _log.info("Job %s was cancelled.", job_id)
        self._final(job)
        return job

    async def delete(self, job_id: str) -> None:
        await self.store.db.run(self.store.delete, job_id)
        await asyncio.to_thread(shutil.rmtree, self.job_folder(job_id), True)

    async def expire(self) -> list[str]:
        retention_s = self.ctx.settings.job_retention_h * 3600
        expired = await self.store.db.run(self.store.expired, self.ctx.clock.wall() - retention_s)
        for job_id in expired:
            await self.delete(job_id)
        if expired:
            _log.info("%d finished job(s) expired and were deleted.", len(expired))
            self.ctx.events.emit(JobsExpired(tuple(expired)))
        return expired

    async def _expire_forever(self) -> None:
        retention_s = self.ctx.settings.job_retention_h * 3600
        interval = min(60.0, max(1.0, retention_s / 20))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire()
            except PplexError as exc:  # locked by another program: the next round tries again
                _log.warning("Finished jobs could not be expired (%s); trying again later.", exc)


class _Reporter:
    """Progress and stage of one running job, kept in memory and announced as events."""

    def __init__(self, events: EventHub, job: Job) -> None:
        self.events = events
        self.job = job
        self.where = "waiting"
        self.value = 0.0

    def stage(self, name: str) -> None:
        self.where = name

    def progress(self, value: float) -> None:
        before, self.value = self.value, value
        if int(value / PROGRESS_EVENT_STEP) != int(before / PROGRESS_EVENT_STEP):
            job = self.job
            self.events.emit(JobChanged(job.id, job.key_id, job.state.value, value))
