"""POST /v1/inference (file in, spoken answer out) and the /v1/jobs API around it.

A key only ever sees its own jobs: another key's job id answers 404 exactly like an unknown
one. The transcript rides on the synchronous answer as ``X-Transcript``: the model's text with
``%`` and every byte outside printable ASCII percent-encoded as UTF-8, so any client decodes it
with one call (``urllib.parse.unquote``, ``decodeURIComponent``) and plain English stays
readable.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from pplex_desktop.core.errors import NotFoundError, PplexError, ValidationError
from pplex_desktop.core.jobstore import Job, JobState
from pplex_desktop.core.tasks import stop_task
from pplex_desktop.core.voices import display_name
from pplex_desktop.gateway.context import API_KEY, GatewayContext
from pplex_desktop.gateway.edge.hosts import base_url
from pplex_desktop.gateway.errors import json_error
from pplex_desktop.gateway.jsonout import json_response
from pplex_desktop.gateway.offline.jobs import JobService
from pplex_desktop.gateway.offline.results import AUDIO_NAME, TRANSCRIPT_NAME
from pplex_desktop.gateway.offline.uploads import ClientGoneError

JOBS = web.AppKey("pplex_jobs", JobService)
routes = web.RouteTableDef()
MAX_TRANSCRIPT_HEADER = 4096
MAX_WAIT_S = 60.0
DISCONNECT_CHECK_S = 0.25
_JOB_ID = re.compile(r"^job_[0-9a-f]{20}$")
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def transcript_header(text: str) -> tuple[str, bool]:
    """The X-Transcript value and whether it had to be cut to fit in a header."""
    encoded = quote(text, safe=_HEADER_SAFE)
    if len(encoded) <= MAX_TRANSCRIPT_HEADER:
        return encoded, False
    parts: list[str] = []
    size = 0
    for char in text:
        piece = quote(char, safe=_HEADER_SAFE)
        if size + len(piece) > MAX_TRANSCRIPT_HEADER:
            break
        parts.append(piece)
        size += len(piece)
    return "".join(parts), True


def _base(request: web.Request) -> str:
    return base_url(request)  # never an unchecked Host: these URLs go into Location


def job_json(job: Job, service: JobService, base: str) -> dict[str, Any]:
    url = f"{base}/v1/jobs/{job.id}"
    done = job.state is JobState.DONE
    retention_s = service.ctx.settings.job_retention_h * 3600
    return {
        "id": job.id,
        "state": job.state.value,
        "stage": service.stage_of(job),
        "progress": round(service.progress_of(job), 3),
        "error": job.error,
        "error_code": job.error_code,
        "input_name": job.input_name,
        "persona": job.persona,
        "voice": display_name(job.voice),
        "seed": job.seed,
        "engine": job.engine,
        "input_s": round(job.input_s, 3),
        "silence_s": job.silence_s,
        "duration_s": round(job.output_s if job.output_s is not None else job.target_s, 3),
        "transcript": job.transcript,
        "attempts": job.attempts,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "expires_at": job.finished_at + retention_s if job.finished_at is not None else None,
        "url": url,
        "audio_url": f"{url}/audio" if done else None,
        "transcript_url": f"{url}/transcript" if done else None,
    }


def _service(request: web.Request) -> JobService:
    return request.app[JOBS]


def _own_job(request: web.Request) -> Job:
    job_id = request.match_info["job_id"]
    if not _JOB_ID.match(job_id):
        raise NotFoundError(f"There is no job {job_id[:40]!r} for this key.", code="no_job")
    return _service(request).store.get_for_key(job_id, request[API_KEY].id)


def _failure(job: Job) -> PplexError:
    return PplexError(
        job.error or "The job did not finish.",
        code=job.error_code or "job_failed",
        status=job.error_status or 502,
    )


async def _until_finished_or_gone(
    request: web.Request, service: JobService, job: Job
) -> Job | None:
    """Wait for the job; None once the caller hung up (the job is cancelled: nobody would
    get the answer). aiohttp does not cancel handlers on disconnect, so this looks."""
    waiting = asyncio.create_task(service.wait(job.id))
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=DISCONNECT_CHECK_S)
            if done:
                finished = waiting.result()
                assert finished is not None
                return finished
            transport = request.transport
            if transport is None or transport.is_closing():
                await service.cancel(job.id)
                return None
    finally:
        # A wait that ended with the job's own error (the gateway stopping) was answered above.
        await stop_task(waiting, expected=(PplexError,))


def _client_gone() -> web.Response:
    # Nobody reads this; 499 is what access logs conventionally show for it.
    return json_error(499, "client_closed", "The client went away before its answer.")


@routes.post("/v1/inference")
async def inference(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    try:
        submitted, params = await service.submit(request, request[API_KEY], sync=True)
    except ClientGoneError:
        return _client_gone()
    job = await _until_finished_or_gone(request, service, submitted)
    if job is None:
        return _client_gone()
    if job.state is not JobState.DONE:
        raise _failure(job)
    body = job_json(job, service, _base(request))
    if params.response_format == "json":
        return json_response(
            {
                "id": job.id,
                "transcript": job.transcript or "",
                "duration_s": body["duration_s"],
                "input_s": body["input_s"],
                "audio_url": body["audio_url"],
                "transcript_url": body["transcript_url"],
            }
        )
    value, truncated = transcript_header(job.transcript or "")
    headers = {
        "Content-Type": "audio/wav",
        "Content-Disposition": 'attachment; filename="response.wav"',
        "X-Job-Id": job.id,
        "X-Transcript": value,
    }
    if truncated:
        headers["X-Transcript-Truncated"] = "true"
    return web.FileResponse(service.job_folder(job.id) / AUDIO_NAME, headers=headers)


@routes.post("/v1/jobs")
async def submit_job(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    try:
        job, _params = await service.submit(request, request[API_KEY], sync=False)
    except ClientGoneError:
        return _client_gone()
    body = job_json(job, service, _base(request))
    return json_response(body, status=202, headers={"Location": body["url"]})


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18) or not low <= int(raw) <= high:
        raise ValidationError(f"{name} must be a whole number from {low} to {high}.")
    return int(raw)


@routes.get("/v1/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    service = _service(request)
    limit = _int_query(request, "limit", 20, 1, 100)
    offset = _int_query(request, "offset", 0, 0, 10**9)
    jobs, total = service.store.list_for_key(request[API_KEY].id, limit=limit, offset=offset)
    base = _base(request)
    after = offset + len(jobs)
    return json_response(
        {
            "jobs": [job_json(j, service, base) for j in jobs],
            "total": total,
            "limit": limit,
            "offset": offset,
            "next": f"{base}/v1/jobs?limit={limit}&offset={after}" if after < total else None,
        }
    )


@routes.get("/v1/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    service = _service(request)
    job = _own_job(request)
    raw_wait = request.query.get("wait")
    if raw_wait:
        try:
            wait_s = float(raw_wait)
        except ValueError:
            wait_s = -1.0
        if not 0 <= wait_s <= MAX_WAIT_S:
            raise ValidationError(f"wait must be a number of seconds from 0 to {MAX_WAIT_S:g}.")
        job = await service.wait(job.id, wait_s) or job
    return json_response(job_json(job, service, _base(request)))


def _result_file(request: web.Request, name: str) -> Path:
    job = _own_job(request)
    if job.state is not JobState.DONE:
        raise PplexError(
            f"The job is {job.state.value}; its results exist once its state is done.",
            code="job_not_done",
            status=409,
        )
    path = _service(request).job_folder(job.id) / name
    if not path.is_file():
        raise NotFoundError("The job's results are no longer on disk.", code="result_missing")
    return path


@routes.get("/v1/jobs/{job_id}/audio")
async def job_audio(request: web.Request) -> web.StreamResponse:
    path = _result_file(request, AUDIO_NAME)
    job_id = request.match_info["job_id"]
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "audio/wav",
            "Content-Disposition": f'attachment; filename="{job_id}.wav"',
        },
    )


@routes.get("/v1/jobs/{job_id}/transcript")
async def job_transcript(request: web.Request) -> web.Response:
    path = _result_file(request, TRANSCRIPT_NAME)
    data = await asyncio.to_thread(path.read_text, encoding="utf-8")
    return json_response(json.loads(data))


@routes.delete("/v1/jobs/{job_id}")
async def delete_job(request: web.Request) -> web.Response:
    service = _service(request)
    job = _own_job(request)
    if not job.state.final:
        cancelled = await service.cancel(job.id)
        if cancelled is not None:
            return json_response(job_json(cancelled, service, _base(request)))
    await service.delete(job.id)
    return json_response({"id": job.id, "deleted": True})


def install(app: web.Application, ctx: GatewayContext) -> None:
    """Register the routes and the job workers, started and stopped with the app."""
    service = JobService(ctx, ctx.keystore.db.path.parent)
    app[JOBS] = service
    app.add_routes(routes)

    async def workers(_app: web.Application) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.stop()

    app.cleanup_ctx.append(workers)
    app.on_shutdown.append(service.release_waiters)
