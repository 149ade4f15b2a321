"""Start, stop and reconfigure the gateway from the UI without ever waiting for it.

Operations run one at a time: a restart is a stop whose completion starts the gateway again,
so a click during a stop cannot race the old listener for the port.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from PySide6.QtCore import QObject, Signal

from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.settings import Settings
from pplex_desktop.gateway.lan.tls import TlsInfo
from pplex_desktop.gateway.server import BackendStatus, GatewayAddress, GatewayServer, GatewayState
from pplex_desktop.ui.bridge import GatewayBridge

_log = logging.getLogger(__name__)
LAN_HOST = "0.0.0.0"
LOCAL_HOST = "127.0.0.1"
QUIT_REASON = "the application is quitting"


@dataclass(frozen=True, slots=True)
class GatewayView:
    """What the UI shows about the gateway; replaced, never mutated."""

    state: GatewayState
    address: GatewayAddress | None = None
    failure: str | None = None
    demo: bool = False
    serve_lan: bool = False
    lan_address: GatewayAddress | None = None  # the HTTPS site for the network, when serving it
    tls: TlsInfo | None = None  # its certificate: the fingerprint to show, the CA to hand out

    @property
    def url(self) -> str | None:
        return self.address.url if self.address is not None else None

    @property
    def busy(self) -> bool:
        return self.state in (GatewayState.STARTING, GatewayState.STOPPING)


Step = Callable[[Callable[[], None]], None]


class GatewayController(QObject):
    changed = Signal(object)  # GatewayView

    def __init__(
        self, server: GatewayServer, bridge: GatewayBridge, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._server = server
        self._bridge = bridge
        self._steps: deque[Step] = deque()
        self._running_step = False
        self._view = GatewayView(
            GatewayState.STOPPED, demo=server.settings.demo, serve_lan=self._lan(server.settings)
        )

    @property
    def view(self) -> GatewayView:
        return self._view

    @property
    def settings(self) -> Settings:
        return self._server.settings

    @staticmethod
    def _lan(settings: Settings) -> bool:
        return settings.serve_lan or settings.host in (LAN_HOST, "::")

    def _set(self, view: GatewayView) -> None:
        if view != self._view:
            self._view = view
            self.changed.emit(view)

    # -- the queue of steps ---------------------------------------------------------------

    def _enqueue(self, step: Step) -> None:
        self._steps.append(step)
        self._next()

    def _next(self) -> None:
        if self._running_step or not self._steps:
            return
        self._running_step = True
        step = self._steps.popleft()

        def done() -> None:
            self._running_step = False
            self._next()

        step(done)

    # -- operations -----------------------------------------------------------------------

    def start(self) -> None:
        self._enqueue(self._start_step)

    def stop(self, reason: str = "stopped from the app") -> None:
        self._enqueue(lambda done: self._stop_step(done, reason))

    def restart(self) -> None:
        self._enqueue(lambda done: self._stop_step(done, "restarting"))
        self._enqueue(self._start_step)

    def apply(self, settings: Settings, *, restart: bool) -> None:
        """Use ``settings`` from the next start; restart now if asked and it is serving."""

        def step(done: Callable[[], None]) -> None:
            # After a failed start, new settings (another port, say) deserve another try.
            was_up = self._view.state in (
                GatewayState.RUNNING,
                GatewayState.STARTING,
                GatewayState.FAILED,
            )
            self._server.reconfigure(settings, self._server.ssl_context)
            self._set(replace(self._view, demo=settings.demo, serve_lan=self._lan(settings)))
            if restart and was_up:
                self._steps.appendleft(self._start_step)
                self._stop_step(done, "the settings changed")
            else:
                done()

        self._enqueue(step)

    def shutdown(self, on_done: Callable[[], None]) -> None:
        """Stop serving for good (application exit); ``on_done`` runs on the Qt thread."""

        def step(done: Callable[[], None]) -> None:
            def finished() -> None:
                done()
                on_done()

            self._stop_step(finished, QUIT_REASON)

        self._steps.clear()
        self._enqueue(step)

    def _start_step(self, done: Callable[[], None]) -> None:
        self._set(replace(self._view, state=GatewayState.STARTING, failure=None))

        def started(address: GatewayAddress) -> None:
            server = self._server
            self._set(
                replace(
                    self._view,
                    state=GatewayState.RUNNING,
                    address=address,
                    lan_address=server.lan_address,
                    tls=server.tls,
                )
            )
            done()

        def failed(exc: BaseException) -> None:
            if isinstance(exc, PplexError):
                message = exc.message
                _log.warning("The gateway did not start: %s", message)
            else:
                message = f"The gateway failed to start because of an internal error: {exc!r}."
                _log.error("The gateway failed to start.", exc_info=exc)
            self._set_down(GatewayState.FAILED, message)
            done()

        self._bridge.watch(self._server.start_future(), started, failed, what="starting")

    def _set_down(self, state: GatewayState, failure: str | None) -> None:
        """Not serving: no addresses to show, and why if it failed."""
        self._set(replace(self._view, state=state, address=None, lan_address=None, failure=failure))

    def _stop_step(self, done: Callable[[], None], reason: str) -> None:
        if self._view.state in (GatewayState.STOPPED, GatewayState.FAILED):
            done()
            return
        self._set(replace(self._view, state=GatewayState.STOPPING))

        def stopped(_: None) -> None:
            self._set_down(GatewayState.STOPPED, None)
            done()

        def failed(exc: BaseException) -> None:
            _log.error("The gateway did not stop cleanly.", exc_info=exc)
            self._set_down(GatewayState.FAILED, f"The gateway did not stop cleanly: {exc}.")
            done()

        self._bridge.watch(self._server.stop_future(reason), stopped, failed, what="stopping")

    # -- reading the running gateway --------------------------------------------------------

    def poll_backends(
        self,
        on_done: Callable[[list[BackendStatus]], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """The model servers' health, busy flag and counters, read on the gateway thread."""
        self._bridge.watch(
            self._server.backend_statuses(),
            on_done,
            on_error,
            what="reading the model servers",
        )
