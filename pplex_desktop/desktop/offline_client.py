"""The jobs API as the Offline page uses it: HTTP to our own gateway with the app's owner key.

The page is one more client of the gateway, so its files wait in the same queue, under the same
limits and survival rules as anybody's. Coroutines here run on the gateway's loop (through the
bridge); there is no Qt in this module. Each call opens its own short-lived session: a call
cancelled when the app quits then still closes its connection cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from pplex_desktop.core.errors import PplexError

AUDIO_CHUNK = 256 * 1024
LIST_PAGE = 100
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_read=120)


class JobApiError(PplexError):
    """The gateway refused or could not be reached; ``message`` is a sentence for the user."""

    code = "gateway_unreachable"
    status = 0  # 0: the gateway did not answer at all; else the HTTP status it answered

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after_s = retry_after_s

    @property
    def transient(self) -> bool:
        """Worth trying again by itself later: unreachable, busy, or over a rate limit."""
        return self.status in (0, 429, 502, 503, 504)


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    raw = response.headers.get("Retry-After", "")
    return float(raw) if raw.isdigit() else None


async def _error(response: aiohttp.ClientResponse) -> JobApiError:
    try:
        body = await response.json()
        error = body["error"]
        message, code = str(error["message"]), str(error["code"])
    except (aiohttp.ContentTypeError, ValueError, KeyError, TypeError):
        message, code = f"The gateway answered {response.status} {response.reason}.", "http_error"
    return JobApiError(
        message, status=response.status, code=code, retry_after_s=_retry_after(response)
    )


class JobClient:
    def __init__(self, key: str) -> None:
        self._headers = {"X-API-Key": key}

    @contextlib.asynccontextmanager
    async def _request(
        self, method: str, url: str, **kwargs: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        try:
            async with (
                aiohttp.ClientSession(timeout=_REQUEST_TIMEOUT) as session,
                session.request(method, url, headers=self._headers, **kwargs) as response,
            ):
                if response.status >= 400:
                    raise await _error(response)
                yield response
        except aiohttp.ClientError as exc:
            raise JobApiError(
                f"The gateway could not be reached ({type(exc).__name__}); the file waits until "
                "the gateway runs again."
            ) from None

    async def submit(self, base: str, path: Path, fields: Mapping[str, str]) -> dict[str, Any]:
        """POST /v1/jobs with the file streamed from disk; the accepted job's JSON."""
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            form = aiohttp.FormData(default_to_multipart=True)
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            form.add_field("audio", handle, filename=path.name, content_type=kind)
            for name, value in fields.items():
                form.add_field(name, value)
            async with self._request("POST", f"{base}/v1/jobs", data=form) as response:
                body: dict[str, Any] = await response.json()
                return body
        finally:
            handle.close()  # also when cancelled: no second await a cancelled task might skip

    async def find(self, base: str, wanted: set[str]) -> dict[str, dict[str, Any]]:
        """The wanted jobs among this key's, by id; a missing id is a job the gateway dropped."""
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while wanted - found.keys():
            url = f"{base}/v1/jobs?limit={LIST_PAGE}&offset={offset}"
            async with self._request("GET", url) as response:
                page = await response.json()
            for job in page["jobs"]:
                if job["id"] in wanted:
                    found[job["id"]] = job
            if page["next"] is None:
                break
            offset += LIST_PAGE
        return found

    async def job(self, base: str, job_id: str) -> dict[str, Any]:
        async with self._request("GET", f"{base}/v1/jobs/{job_id}") as response:
            body: dict[str, Any] = await response.json()
            return body

    async def cancel(self, base: str, job_id: str) -> dict[str, Any]:
        """DELETE of an unfinished job cancels it (of a finished one: deletes it)."""
        async with self._request("DELETE", f"{base}/v1/jobs/{job_id}") as response:
            body: dict[str, Any] = await response.json()
            return body

    async def delete(self, base: str, job_id: str) -> None:
        """Cancel if need be, then delete; a job the gateway no longer has is fine."""
        for _ in range(2):
            try:
                body = await self.cancel(base, job_id)
            except JobApiError as exc:
                if exc.status == 404:
                    return
                raise
            if body.get("deleted"):
                return

    async def download_audio(self, base: str, job_id: str, target: Path) -> None:
        """Stream the answer's WAV into ``target`` (a temporary file the caller publishes)."""
        async with self._request("GET", f"{base}/v1/jobs/{job_id}/audio") as response:
            handle = await asyncio.to_thread(target.open, "xb")
            try:
                async for chunk in response.content.iter_chunked(AUDIO_CHUNK):
                    await asyncio.to_thread(handle.write, chunk)
            finally:
                handle.close()

    async def transcript(self, base: str, job_id: str) -> dict[str, Any]:
        async with self._request("GET", f"{base}/v1/jobs/{job_id}/transcript") as response:
            body: dict[str, Any] = await response.json()
            return body
