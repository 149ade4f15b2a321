"""Settings a running gateway takes on without a restart (SIGHUP), and those it cannot.

Everything read per request (limits, origins, host names, proxies, defaults) changes at
once. What was built at start-up, listening sockets, the model server pool, TLS and the local
engine, waits for a restart; the log says which.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pplex_desktop.core.settings import Settings
from pplex_desktop.core.settings_schema import SPECS
from pplex_desktop.gateway.context import GatewayContext
from pplex_desktop.gateway.edge.hosts import AllowedHosts

_log = logging.getLogger(__name__)
NEEDS_RESTART = frozenset(
    {
        "host",
        "port",
        "backends",
        "demo",
        "serve_lan",
        "lan_host",
        "lan_port",
        "tls_cert",
        "tls_key",
        "offline_engine",
        "personaplex_repo",
        "personaplex_python",
        "local_engine_timeout_s",
        "start_minimized",  # the desktop app's own
        "close_action",
    }
)
LIVE = frozenset(s.name for s in SPECS) - NEEDS_RESTART


@dataclass(frozen=True, slots=True)
class Reloaded:
    applied: tuple[str, ...]
    need_restart: tuple[str, ...]


def apply_settings(ctx: GatewayContext, hosts: AllowedHosts | None, new: Settings) -> Reloaded:
    """Take ``new``'s live settings on; report the changed ones that need a restart."""
    old = ctx.settings
    changed = [s.name for s in SPECS if getattr(old, s.name) != getattr(new, s.name)]
    applied = tuple(n for n in changed if n in LIVE)
    waiting = tuple(n for n in changed if n not in LIVE)
    ctx.settings = old.replace(**{n: getattr(new, n) for n in applied})
    ctx.scheduler.max_queue = ctx.settings.queue_max
    ctx.keystore.default_rpm = ctx.settings.default_rpm
    ctx.keystore.default_max_sessions = ctx.settings.default_max_sessions
    if hosts is not None and "public_hosts" in applied:
        hosts.forget()
    if applied:
        _log.info("Reloaded settings now in effect: %s.", ", ".join(applied))
    if waiting:
        _log.warning(
            "These changed settings take effect only after a restart: %s.", ", ".join(waiting)
        )
    return Reloaded(applied, waiting)
