"""``pplex-gateway``: the gateway without a screen, for servers and scripts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.paths import data_dir
from pplex_desktop.core.settings import BackendConfig, Settings, load_settings
from pplex_desktop.core.voices import DEFAULT_VOICES
from pplex_desktop.gateway.server import DEMO_LABEL, GatewayRunner

ADMIN_SECRET_ENV = "PPLEX_ADMIN_SECRET"  # noqa: S105 (a variable name, not a secret)
_log = logging.getLogger("pplex_desktop.gateway")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pplex-gateway",
        description="A secure gateway for PersonaPlex/Moshi servers: API keys, rate limits, a "
        "queue, a WebSocket proxy and offline inference.",
    )
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for the LAN)")
    p.add_argument("--port", type=int, help="port to listen on (default 8000, 0 for any free port)")
    p.add_argument(
        "--backend",
        action="append",
        metavar="URL",
        help="model server (ws://, wss://, http:// or https://, with or without /api/chat); "
        "repeat for several. Default: MOSHI_HOST:MOSHI_PORT or localhost:8998",
    )
    p.add_argument(
        "--voices",
        metavar="NAMES",
        help="comma-separated voice names the backends offer (default: the 18 PersonaPlex ships)",
    )
    p.add_argument("--demo", action="store_true", help="serve the built-in simulated backend")
    p.add_argument("--data-dir", type=Path, help="folder for keys, jobs and settings")
    p.add_argument(
        "--reset-admin-secret", action="store_true", help="print a new admin secret and exit"
    )
    p.add_argument("--import-keys", type=Path, metavar="FILE", help="import api_keys.json and exit")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return p


def _settings(args: argparse.Namespace, folder: Path) -> Settings:
    settings = load_settings(folder)
    changes: dict[str, object] = {}
    if args.host is not None:
        changes["host"] = args.host
    if args.port is not None:
        changes["port"] = args.port
    voices = DEFAULT_VOICES
    if args.voices:
        voices = tuple(v.strip() for v in args.voices.split(",") if v.strip())
    if args.backend:
        changes["backends"] = tuple(BackendConfig(url, voices) for url in args.backend)
    elif args.voices:
        changes["backends"] = tuple(BackendConfig(b.url, voices, b.name) for b in settings.backends)
    if args.demo:
        changes["demo"] = True
    return settings.replace(**changes) if changes else settings


def _admin_secret(store: KeyStore) -> None:
    explicit = os.environ.get(ADMIN_SECRET_ENV)
    if explicit:
        store.set_admin_secret(explicit)
        return
    secret = store.ensure_admin_secret()
    if secret is not None:
        _print_secret(secret, "This is the gateway's admin secret. It is shown only once.")


def _print_secret(secret: str, headline: str) -> None:
    print(
        f"\n{headline}\n"
        f"    {secret}\n"
        "Save this key! Only its hash is stored. Use it in the X-Admin-Secret header, e.g.\n"
        "    curl -X POST http://localhost:8000/admin/keys/generate "
        '-H "X-Admin-Secret: ..." -F "name=my-app"\n',
        flush=True,
    )


async def _serve(settings: Settings, store: KeyStore) -> int:
    # Ready for SIGTERM before saying "listening": a supervisor may stop us right after.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    runner = GatewayRunner(settings, store)
    try:
        address = await runner.start()
    except PplexError as exc:
        print(f"pplex-gateway: {exc.message}", file=sys.stderr)
        return 1
    backends = DEMO_LABEL if settings.demo else ", ".join(b.url for b in settings.backends)
    print(f"pplex-gateway is listening on {address.url} (model servers: {backends})", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.stop("the gateway was asked to stop")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        folder = data_dir(args.data_dir)
        settings = _settings(args, folder)
        store = KeyStore.in_folder(
            folder,
            default_rpm=settings.default_rpm,
            default_max_sessions=settings.default_max_sessions,
        )
    except PplexError as exc:
        print(f"pplex-gateway: {exc.message}", file=sys.stderr)
        return 2
    try:
        if args.reset_admin_secret:
            _print_secret(store.new_admin_secret(), "A new admin secret replaces the old one.")
            return 0
        if args.import_keys:
            result = store.import_legacy_json(args.import_keys)
            print(f"Imported {result.imported} keys ({result.skipped} were already present).")
            return 0
        _admin_secret(store)
        return asyncio.run(_serve(settings, store))
    except PplexError as exc:
        print(f"pplex-gateway: {exc.message}", file=sys.stderr)
        return 2
    finally:
        store.close()
