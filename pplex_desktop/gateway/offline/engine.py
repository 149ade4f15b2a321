"""The stream engine: a file through a running model server's /api/chat, faster than real time.

The model is clocked by its input (one output frame per input frame), so the whole file plus
the trailing silence is sent as fast as the server answers, never paced to real time. A window
bounds the frames in flight so nothing piles up in either direction. Servers that drop the
first input frame (Kyutai) are handled by sending a few frames more than needed and trimming
the answer to exactly input + silence.

The Opus encoder never runs on the gateway's loop: it encodes a batch of frames in a worker
thread, one batch ahead of what is sent, so live sessions on the same loop never wait behind
a job filling its window (20 frames back to back were 6-26 ms of loop time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque

import aiohttp
import numpy as np
from aiohttp import WSMsgType

from pplex_desktop.core.close_codes import INPUT_REFUSALS, CloseCode
from pplex_desktop.core.jobstore import Job
from pplex_desktop.gateway.context import GatewayContext
from pplex_desktop.gateway.offline.results import (
    EngineError,
    EngineResult,
    Piece,
    Reporter,
    fit,
    piece_at,
)
from pplex_desktop.gateway.pool.backends import failure_cause
from pplex_desktop.gateway.pool.connect import StartError, await_handshake, connect_backend
from pplex_desktop.gateway.pool.scheduler import Lease, Priority, QueueTimeoutError, Ticket
from pplex_desktop.moshi import session as ms
from pplex_desktop.moshi.codec import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    CodecError,
    OpusDecoder,
    OpusEncoder,
    Pcm,
)
from pplex_desktop.moshi.session import MoshiProtocol

_log = logging.getLogger(__name__)
WINDOW_FRAMES = 20  # 1.6 s of audio ahead of what came back
ENCODE_BATCH = WINDOW_FRAMES  # frames per trip to the encoder's thread
EXTRA_FRAMES = 4  # covers a dropped first frame and codec look-ahead
CLOSE_TIMEOUT_S = 2.0
_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.float32)
_ENDED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


class _Conversation:
    """One pass of the input through one backend socket."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        protocol: MoshiProtocol,
        pcm: Pcm,
        target: int,
        *,
        stall_s: float,
        report: Reporter,
    ) -> None:
        self.ws = ws
        self.protocol = protocol
        self.pcm = pcm
        self.target = target
        self.stall_s = stall_s
        self.report = report
        self.max_frames = math.ceil(target / FRAME_SAMPLES) + EXTRA_FRAMES
        self.encoder = OpusEncoder()
        self.decoder = OpusDecoder()
        self.sent = 0
        self._ready: deque[bytes] = deque()  # encoded, not sent yet
        self._encoded = 0  # frames given to the encoder's thread
        self._encoding: asyncio.Future[list[bytes]] | None = None
        self.out: list[Pcm] = []
        self.out_samples = 0
        self.pieces: list[Piece] = []
        self._reported = 0.0

    def _frame(self, index: int) -> Pcm:
        start = index * FRAME_SAMPLES
        if start >= self.pcm.shape[0]:
            return _SILENCE
        frame = np.asarray(self.pcm[start : start + FRAME_SAMPLES], dtype=np.float32)
        if frame.shape[0] < FRAME_SAMPLES:
            frame = fit(frame, FRAME_SAMPLES)
        return frame

    def _encode(self, start: int, count: int) -> list[bytes]:
        # In a worker thread; batches never overlap, so the encoder sees its frames in order.
        return [self.encoder.encode(self._frame(i)) for i in range(start, start + count)]

    def _encode_ahead(self) -> None:
        if self._encoding is not None or self._encoded >= self.max_frames:
            return
        count = min(ENCODE_BATCH, self.max_frames - self._encoded)
        self._encoding = asyncio.ensure_future(
            asyncio.to_thread(self._encode, self._encoded, count)
        )
        self._encoded += count

    async def _next_payload(self) -> bytes:
        if not self._ready:
            self._encode_ahead()
            assert self._encoding is not None, "called only while frames remain"
            self._ready.extend(await self._encoding)
            self._encoding = None
        self._encode_ahead()  # the next batch is ready before the window asks for it
        return self._ready.popleft()

    def _stop_encoding(self) -> None:
        encoding, self._encoding = self._encoding, None
        if encoding is None:
            return
        if encoding.done():
            if not encoding.cancelled():
                encoding.exception()  # nobody needs it any more; no "never retrieved" warning
        else:
            encoding.cancel()

    async def _top_up(self) -> None:
        received = self.out_samples // FRAME_SAMPLES
        while self.sent < self.max_frames and self.sent - received < WINDOW_FRAMES:
            payload = await self._next_payload()
            await self.ws.send_bytes(self.protocol.send_audio(payload))
            self.sent += 1

    def _on_audio(self, payload: bytes) -> None:
        try:
            pcm = self.decoder.decode(payload)
        except CodecError as exc:
            raise EngineError(
                f"The model server's audio is corrupt: {exc}",
                backend_failed="corrupt audio stream",
            ) from None
        if pcm.size:
            self.out.append(pcm)
            self.out_samples += pcm.shape[0]
            done = min(1.0, self.out_samples / self.target)
            if done - self._reported >= 0.01 or done >= 1.0:
                self._reported = done
                self.report.progress(done)

    def _on_message(self, data: bytes) -> None:
        # Upstream servers skip what they cannot read (protocol violations); so do we.
        # The time matters only before the handshake, for its deadline.
        for event in self.protocol.receive(data, 0.0):
            if isinstance(event, ms.Audio):
                self._on_audio(event.data)
            elif isinstance(event, ms.Text):
                self.pieces.append(piece_at(self.out_samples // FRAME_SAMPLES, event.text))
            elif isinstance(event, ms.ServerError):
                raise EngineError(
                    f"The model server reported an error: {event.message[:200]}",
                    code="model_error",
                )

    def _progress_text(self) -> str:
        return f"{self.out_samples / SAMPLE_RATE:.1f} s of the {self.target / SAMPLE_RATE:.1f} s"

    def _ended_early(self, msg: aiohttp.WSMessage) -> EngineError:
        code = self.ws.close_code
        # A server that closes normally, or refuses what it received, is up and answering.
        clean = msg.type is not WSMsgType.ERROR and (
            code == CloseCode.NORMAL or code in INPUT_REFUSALS
        )
        return EngineError(
            f"The model server ended the conversation after {self._progress_text()} answer "
            f"(close code {code}).",
            # Anything but a clean close means the backend cannot be trusted until checked.
            backend_failed=None if clean else f"connection lost mid-job (close code {code})",
        )

    def _dropped(self, exc: BaseException) -> EngineError:
        return EngineError(
            f"The model server dropped the connection after {self._progress_text()} answer.",
            backend_failed=f"connection lost mid-job ({str(exc) or type(exc).__name__})",
        )

    async def run(self) -> EngineResult:
        try:
            return await self._converse()
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise self._dropped(exc) from None
        finally:
            self._stop_encoding()

    async def _converse(self) -> EngineResult:
        await self._top_up()
        while self.out_samples < self.target:
            try:
                msg = await self.ws.receive(timeout=self.stall_s)
            except TimeoutError:
                raise EngineError(
                    f"The model server stopped answering for {self.stall_s:g} s.",
                    code="backend_stalled",
                    backend_failed="stopped answering",
                ) from None
            if msg.type in _ENDED:
                raise self._ended_early(msg)
            if msg.type is WSMsgType.BINARY and msg.data:
                self._on_message(msg.data)
                await self._top_up()
        await self._drain()
        pcm = np.concatenate(self.out) if self.out else np.zeros(0, dtype=np.float32)
        # Words spoken over the extra frames are not in the trimmed answer either.
        end_s = self.target / SAMPLE_RATE
        pieces = tuple(p for p in self.pieces if p.start_s < end_s)
        return EngineResult(fit(pcm, self.target), pieces)

    async def _drain(self) -> None:
        """Take the answers to frames still in flight, so the server is not cut off mid-send.

        Only up to one answer short of what was sent: a server that drops a first frame
        (Kyutai) owes one less, and waiting for it with a timeout would not do. aiohttp takes
        a receive() that timed out or was cancelled for an abnormal closure, and its close()
        then drops the socket without a handshake: a server still answering raises on it
        ("Cannot write to closing transport"). The answer that may still be owed is read and
        discarded by close(), which waits for the server's close frame behind it.
        """
        # The answer is complete: nothing that happens now can fail the job.
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, ConnectionError):
            while self.out_samples < (self.sent - 1) * FRAME_SAMPLES:
                msg = await self.ws.receive(timeout=self.stall_s)
                if msg.type is not WSMsgType.BINARY:
                    return
                with contextlib.suppress(EngineError):
                    self._on_message(msg.data)


class StreamEngine:
    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx

    async def _lease(self, job: Job, ticket: Ticket | None, max_wait_s: float | None) -> Lease:
        """Wait for a backend on ``ticket``, or on a new one when it is None."""
        scheduler = self.ctx.scheduler
        if not scheduler.capable(job.voice):
            # The servers changed since the job was accepted: waiting would be forever.
            raise EngineError(
                f"No model server offers the voice {job.voice.rsplit('.', 1)[0]!r} any more.",
                code="voice_unavailable",
                status=503,
            )
        if ticket is None:
            ticket = scheduler.enqueue(
                key_id=job.key_id,
                key_name=job.key_name,
                client=f"job {job.id}",
                priority=Priority.OFFLINE,
                voice=job.voice,
            )
        if max_wait_s is not None:
            try:
                return await scheduler.acquire(ticket, max_wait_s)
            except QueueTimeoutError as exc:
                raise EngineError(exc.message, code=exc.code, status=503) from None
        # Batch jobs wait as long as it takes; a ticket that timed out is simply taken again.
        while True:
            try:
                return await scheduler.acquire(ticket, self.ctx.settings.queue_max_wait_s)
            except QueueTimeoutError:
                ticket = scheduler.enqueue(
                    key_id=job.key_id,
                    key_name=job.key_name,
                    client=f"job {job.id}",
                    priority=Priority.OFFLINE,
                    voice=job.voice,
                )

    async def run(
        self, job: Job, pcm: Pcm, report: Reporter, *, max_wait_s: float | None
    ) -> EngineResult:
        scheduler = self.ctx.scheduler
        settings = self.ctx.settings
        target = round(job.target_s * SAMPLE_RATE)

        async def wait_turn(ticket: Ticket | None) -> Lease:
            report.stage("waiting")
            return await self._lease(job, ticket, max_wait_s)

        try:
            # seed is never sent: it crashes PersonaPlex's handler (PROTOCOL.md).
            connected = await connect_backend(
                scheduler,
                self.ctx.backends,
                wait_turn=wait_turn,
                query={"text_prompt": job.persona, "voice_prompt": job.voice},
                voice=job.voice,
                what="job",
                ident=job.id,
                on_connecting=lambda _lease: report.stage("connecting"),
            )
        except StartError as exc:
            raise EngineError(exc.message, code=exc.reason) from None
        lease, ws = connected.lease, connected.ws
        failed: str | None = None
        try:
            report.stage("preparing")
            protocol = MoshiProtocol(handshake_timeout=settings.handshake_timeout_s)
            await await_handshake(ws, protocol, asyncio.get_running_loop().time)
            report.stage("streaming")
            conversation = _Conversation(
                ws, protocol, pcm, target, stall_s=settings.backend_stall_s, report=report
            )
            return await conversation.run()
        except StartError as exc:
            failed = exc.backend_failed
            raise EngineError(exc.message, code=exc.reason, backend_failed=failed) from None
        except EngineError as exc:
            failed = exc.backend_failed
            raise
        except (aiohttp.ClientError, ConnectionError) as exc:
            failed = str(exc) or type(exc).__name__
            raise EngineError(
                f"The connection to the model server failed ({failure_cause(exc)}).",
                backend_failed=failed,
            ) from None
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await ws.close()
            scheduler.release(lease, failed=failed)
