"""The simulated model server: the real servers' protocol and quirks, with a predictable model.

It behaves like PROTOCOL.md says the real servers do: one conversation at a time behind a lock
with later callers waiting in silence, PersonaPlex's query checks that close without a handshake,
input discarded while the prompts are "processed", one output frame per input frame.
Its "model" echoes the caller's audio after a fixed number of frames and speaks the words of the
text prompt as text pieces, so tests can check what went through and how late.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from aiohttp import WSMsgType, web

from pplex_desktop.core.close_codes import CloseCode
from pplex_desktop.core.voices import DEFAULT_VOICES
from pplex_desktop.moshi import session as ms
from pplex_desktop.moshi.codec import FRAME_SAMPLES, CodecError, OpusDecoder, OpusEncoder, Pcm
from pplex_desktop.moshi.framing import Framer
from pplex_desktop.moshi.ogg import split_pages
from pplex_desktop.moshi.session import MoshiProtocol, Role
from pplex_desktop.sim.jitter import DelayedSender, JitterFault
from pplex_desktop.sim.ogg_layout import PersonaPlexLayout

_log = logging.getLogger(__name__)
Flavor = Literal["kyutai", "personaplex"]
KYUTAI_SPEECH = "Hello, this is the simulated Moshi speaking."
# The real servers are aiohttp apps with its default request-line limit, which its parser
# applies to the request target (path and query): a longer one (a long text_prompt,
# percent-encoded) is answered 400 before the handler runs. Spelled out here so that a change of
# aiohttp's default cannot make the simulator kinder than the servers.
REQUEST_LINE_LIMIT = 8190


@dataclass(frozen=True)
class SimConfig:
    flavor: Flavor = "personaplex"
    voices: tuple[str, ...] = DEFAULT_VOICES
    prompt_delay_s: float = 0.0
    echo_delay_frames: int = 0
    frame_delay_s: float = 0.0
    text_every_frames: int = 3
    close_after_frames: int | None = None
    error_after_frames: int | None = None
    stall_after_frames: int | None = None
    invalid_after_frames: int | None = None  # refuse the input with 1007, as for corrupt audio
    raw_echo: bool = False  # benchmarks: send each audio message back unchanged, no codec work
    # Like PersonaPlex's --voice-prompt-dir: any .wav in it is a voice, looked up per session.
    voice_dir: str | None = None
    # Fault: the model's messages leave late (sim/jitter.py); none by default.
    jitter: JitterFault = field(default_factory=JitterFault)

    def __post_init__(self) -> None:
        if self.flavor not in ("kyutai", "personaplex"):
            raise ValueError(f"Unknown flavour {self.flavor!r}: use 'kyutai' or 'personaplex'.")
        if self.echo_delay_frames < 0 or self.text_every_frames < 1:
            raise ValueError("The echo delay must be >= 0 frames and text_every_frames >= 1.")


@dataclass
class SimStats:
    sessions_started: int = 0
    sessions_finished: int = 0
    refused: int = 0
    waiting: int = 0
    frames_in: int = 0
    frames_out: int = 0
    queries: list[dict[str, str]] = field(default_factory=list)


@functools.cache
def _opus_header_bodies() -> tuple[bytes, bytes]:
    pages = split_pages(OpusEncoder().encode(np.zeros(FRAME_SAMPLES, dtype=np.float32)))
    head = next(p.body for p in pages if p.is_opus_head)
    tags = next(p.body for p in pages if p.is_opus_tags)
    return head, tags


class SimServer:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.stats = SimStats()
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    def make_app(self) -> web.Application:
        app = web.Application(handler_args={"max_line_size": REQUEST_LINE_LIMIT})
        app.on_shutdown.append(self._close_sockets)
        app.router.add_get("/api/chat", self.handle_chat)
        app.router.add_get("/", self._handle_root)
        app.router.add_get("/sim/stats", self._handle_stats)
        return app

    async def _close_sockets(self, _app: web.Application) -> None:
        # A stopping server drops its conversations; 1001 says so instead of hanging until
        # aiohttp's shutdown timeout.
        for ws in list(self._sockets):
            await ws.close(code=CloseCode.GOING_AWAY, message=b"server shutting down")

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(
            self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = port
        for address in self._runner.addresses:
            bound_port = int(address[1])
        display_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{display_host}:{bound_port}"
        _log.info("The simulated %s server listens on %s.", self.config.flavor, self.url)
        return self.url

    async def wait_until(self, predicate: Callable[[SimStats], bool]) -> None:
        """Wait until the session counters satisfy ``predicate`` (tests use this)."""
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self.stats))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle_root(self, _request: web.Request) -> web.Response:
        return web.Response(
            text=f"pplex-sim: a simulated {self.config.flavor} server. Connect to /api/chat.\n"
        )

    async def _handle_stats(self, _request: web.Request) -> web.Response:
        s = self.stats
        return web.json_response(
            {
                "flavor": self.config.flavor,
                "sessions_started": s.sessions_started,
                "sessions_finished": s.sessions_finished,
                "refused": s.refused,
                "waiting": s.waiting,
                "busy": self._lock.locked(),
                "frames_in": s.frames_in,
                "frames_out": s.frames_out,
                "queries": s.queries[-20:],
            }
        )

    def _query_problem(self, query: dict[str, str]) -> str | None:
        """What makes the real PersonaPlex handler raise before its handshake, if anything."""
        if self.config.flavor != "personaplex":
            return None
        voice = query.get("voice_prompt")
        if voice is None:
            return "the voice_prompt query parameter is missing"
        if voice not in self.config.voices and not self._wav_voice_exists(voice):
            return f"the voice prompt {voice!r} is not in the voice directory"
        if not query.get("text_prompt"):
            return "the text_prompt query parameter is missing or empty"
        if "seed" in query:
            return "a seed parameter was sent (upstream raises KeyError: 'seed')"
        return None

    def _wav_voice_exists(self, voice: str) -> bool:
        # Upstream refuses any name with a directory part (os.path.basename must not change it)
        # and loads every name not ending in .pt as audio; the sim accepts only .wav files.
        if self.config.voice_dir is None or not voice.endswith(".wav"):
            return False
        if os.path.basename(voice) != voice or voice in (".", ".."):
            return False
        return os.path.isfile(os.path.join(self.config.voice_dir, voice))

    async def handle_chat(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            return await self._handle(request, ws)
        finally:
            self._sockets.discard(ws)

    async def _handle(
        self, request: web.Request, ws: web.WebSocketResponse
    ) -> web.WebSocketResponse:
        query = dict(request.query)
        self.stats.queries.append(query)
        problem = self._query_problem(query)
        if problem is not None:
            # Upstream raises inside the handler after the upgrade: the client sees the TCP
            # connection drop with no close frame and no handshake.
            _log.warning("The simulator refuses a session because %s.", problem)
            self.stats.refused += 1
            await self._notify()
            if request.transport is not None:
                request.transport.close()
            return ws
        self.stats.waiting += 1
        await self._notify()
        try:
            await self._lock.acquire()
        finally:
            self.stats.waiting -= 1
        try:
            await self._serve(request, ws, query)
        finally:
            self._lock.release()
            await self._notify()
        return ws

    async def _discard_until(
        self, ws: web.WebSocketResponse, protocol: MoshiProtocol, seconds: float
    ) -> bool:
        """Read and drop whatever the client sends for ``seconds``; False if it went away."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            remaining = deadline - loop.time()
            try:
                msg = await ws.receive(timeout=max(remaining, 0.005))
            except TimeoutError:
                return True
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return False
            if msg.type is WSMsgType.BINARY:
                protocol.receive(msg.data, loop.time())  # still preparing: read and discarded

    async def _serve(
        self, request: web.Request, ws: web.WebSocketResponse, query: dict[str, str]
    ) -> None:
        cfg = self.config
        protocol = MoshiProtocol(Role.SERVER)
        if cfg.flavor == "personaplex" and not await self._discard_until(
            ws, protocol, cfg.prompt_delay_s
        ):
            return
        if ws.closed:
            return
        self.stats.sessions_started += 1
        await self._notify()
        session = _SimSession(
            request, ws, cfg, self.stats, query, protocol=protocol, notify=self._notify
        )
        try:
            await session.run()
        except ConnectionResetError:
            # The client hung up while the model was still sending (during the handshake, say):
            # the session is over, as it is at the real server; not an error of the model.
            _log.debug("A client left while the simulated model was sending to it.")
        finally:
            await session.close_link()
            self.stats.sessions_finished += 1


class _SimSession:
    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        cfg: SimConfig,
        stats: SimStats,
        query: dict[str, str],
        *,
        protocol: MoshiProtocol,
        notify: Callable[[], Awaitable[None]],
    ) -> None:
        self.request = request
        self.notify = notify
        self.ws = ws
        self.protocol = protocol
        self.cfg = cfg
        self.stats = stats
        self.decoder = OpusDecoder()
        self.encoder = OpusEncoder()
        self.framer = Framer()
        self.layout = (
            PersonaPlexLayout(*_opus_header_bodies()) if cfg.flavor == "personaplex" else None
        )
        silence = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        self.delay_line: collections.deque[Pcm] = collections.deque(
            [silence] * cfg.echo_delay_frames
        )
        speech = query.get("text_prompt", "") if cfg.flavor == "personaplex" else KYUTAI_SPEECH
        self.words = collections.deque(" " + w for w in speech.split())
        self.skip_frames = 1 if cfg.flavor == "kyutai" else 0
        self.frames_out = 0
        self.stalled = False
        self.link = DelayedSender(ws.send_bytes, cfg.jitter) if cfg.jitter.active else None

    async def _send(self, data: bytes, *, audio: bool = False) -> None:
        if self.link is None:
            await self.ws.send_bytes(data)
        else:
            self.link.put(data, audio=audio)

    async def close_link(self) -> None:
        if self.link is not None:
            await self.link.close()

    async def run(self) -> None:
        await self.ws.send_bytes(self.protocol.send_handshake())
        if self.layout is not None:
            for header in self.layout.header_messages():
                await self.ws.send_bytes(self.protocol.send_audio(header))
        async for msg in self.ws:
            if msg.type is not WSMsgType.BINARY:
                continue
            for event in self.protocol.receive(msg.data, 0.0):
                if isinstance(event, ms.Audio):
                    if not await self._audio(event.data):
                        return
                elif isinstance(event, ms.ProtocolViolation):
                    _log.warning("The simulator skips a message: %s", event.sentence)
                else:
                    _log.warning("The simulator skips a %s message.", type(event).__name__.lower())

    async def _audio(self, payload: bytes) -> bool:
        """Take one audio message; False when the session is over."""
        if self.cfg.raw_echo:
            # The caller's own Ogg stream is a valid stream for the caller to decode.
            await self.ws.send_bytes(self.protocol.send_audio(payload))
            self.stats.frames_out += 1
            return True
        try:
            pcm = self.decoder.decode(payload)
        except CodecError as exc:
            _log.warning("The simulator ends a session with a corrupt stream: %s", exc)
            await self.ws.close(code=CloseCode.INVALID_DATA, message=b"invalid audio stream")
            return False
        for frame in self.framer.push(pcm):
            try:
                if not await self._step(frame):
                    return False
            except ConnectionResetError:
                # The client closed while frames it sent were still being answered, as
                # clients may: the real servers end the session there too.
                return False
        return True

    async def _step(self, frame: Pcm) -> bool:
        """Run one model step; False when a simulated fault ends the session."""
        self.stats.frames_in += 1
        await self.notify()
        if self.skip_frames:
            self.skip_frames -= 1
            return True
        if self.stalled:
            return True
        if self.cfg.frame_delay_s > 0:
            await asyncio.sleep(self.cfg.frame_delay_s)
        self.delay_line.append(frame)
        out = self.delay_line.popleft()
        encoded = self.encoder.encode(out)
        if self.layout is not None:
            encoded = self.layout.audio_message(encoded)
        await self._send(self.protocol.send_audio(encoded), audio=True)
        self.frames_out += 1
        self.stats.frames_out += 1
        await self.notify()  # so tests can await frame counts too
        if self.frames_out % self.cfg.text_every_frames == 0 and self.words:
            await self._send(self.protocol.send_text(self.words.popleft()))
        return await self._apply_faults()

    async def _apply_faults(self) -> bool:
        cfg, n = self.cfg, self.frames_out
        if cfg.close_after_frames is not None and n >= cfg.close_after_frames:
            _log.warning("The simulator drops the connection after %d frames, as asked.", n)
            if self.request.transport is not None:
                self.request.transport.abort()
            return False
        if cfg.error_after_frames is not None and n >= cfg.error_after_frames:
            await self.ws.send_bytes(self.protocol.send_error("simulated model failure"))
            await self.ws.close(code=CloseCode.BACKEND_ERROR, message=b"simulated model failure")
            return False
        if cfg.invalid_after_frames is not None and n >= cfg.invalid_after_frames:
            _log.warning("The simulator refuses the input after %d frames, as asked.", n)
            await self.ws.close(code=CloseCode.INVALID_DATA, message=b"invalid audio stream")
            return False
        if cfg.stall_after_frames is not None and n >= cfg.stall_after_frames:
            self.stalled = True
        return True
