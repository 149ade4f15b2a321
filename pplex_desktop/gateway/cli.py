"""``pplex-gateway``: the gateway without a screen, for servers and scripts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pplex_desktop.core.admin_secret import use_env_admin_secret
from pplex_desktop.core.db import StoreError
from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.folder_lock import lock_folder
from pplex_desktop.core.keystore import KeyStore, weak_keys_notice
from pplex_desktop.core.paths import data_dir
from pplex_desktop.core.settings import BackendConfig, Settings, load_settings
from pplex_desktop.core.voices import DEFAULT_VOICES
from pplex_desktop.gateway.server import DEMO_LABEL, GatewayAddress, GatewayRunner
from pplex_desktop.gateway.tls import TLS_FOLDER, TlsInfo, lan_urls

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
    p.add_argument(
        "--voice-dir",
        type=Path,
        metavar="DIR",
        help="the model servers' voice folder (their --voice-prompt-dir), if this gateway can "
        "write it: uploaded voices go there and every .wav in it is offered",
    )
    p.add_argument("--demo", action="store_true", help="serve the built-in simulated backend")
    p.add_argument(
        "--tls",
        choices=("auto", "off"),
        help="auto: serve the network over HTTPS (--host, default 0.0.0.0, port --lan-port) with "
        "a certificate from a local CA made in the data folder, keeping plain HTTP on "
        "127.0.0.1:--port; off: no LAN site",
    )
    p.add_argument("--tls-cert", metavar="FILE", help="PEM certificate for the HTTPS site")
    p.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    p.add_argument("--lan-port", type=int, help="port of the HTTPS site (default 8443)")
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
    if args.tls_cert is not None or args.tls_key is not None:
        changes.update(tls_cert=args.tls_cert, tls_key=args.tls_key, serve_lan=True)
    if args.tls is not None:
        changes["serve_lan"] = args.tls == "auto" or "tls_cert" in changes
    if args.lan_port is not None:
        changes["lan_port"] = args.lan_port
    if args.host is not None:
        # With HTTPS for the network, --host says where that site listens; plain HTTP stays
        # on loopback whatever it says.
        lan = changes.get("serve_lan", settings.serve_lan)
        changes["lan_host" if lan else "host"] = args.host
    if args.port is not None:
        changes["port"] = args.port
    voices = DEFAULT_VOICES
    if args.voices:
        voices = tuple(v.strip() for v in args.voices.split(",") if v.strip())
    voice_dir = str(args.voice_dir.resolve()) if args.voice_dir is not None else None
    if args.backend:
        changes["backends"] = tuple(
            BackendConfig(url, voices, voice_dir=voice_dir) for url in args.backend
        )
    elif args.voices or voice_dir is not None:
        changes["backends"] = tuple(
            BackendConfig(
                b.url,
                voices if args.voices else b.voices,
                b.name,
                voice_dir if voice_dir is not None else b.voice_dir,
            )
            for b in settings.backends
        )
    if args.demo:
        changes["demo"] = True
    return settings.replace(**changes) if changes else settings


def _admin_secret(store: KeyStore) -> None:
    if use_env_admin_secret(store):
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


async def _serve(settings: Settings, store: KeyStore, folder: Path) -> int:
    # Handlers before the "listening" line: whoever reads it may signal us right away.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    runner = GatewayRunner(settings, store, tls_folder=folder / TLS_FOLDER)
    try:
        address = await runner.start()
    except PplexError as exc:
        print(f"pplex-gateway: {exc.message}", file=sys.stderr)
        return 2 if isinstance(exc, StoreError) else 1  # a damaged job store, like the keys
    backends = DEMO_LABEL if settings.demo else ", ".join(b.url for b in settings.backends)
    print(f"pplex-gateway is listening on {address.url} (model servers: {backends})", flush=True)
    if runner.lan_address is not None and runner.tls is not None:
        _print_lan(runner.lan_address, runner.tls)
    try:
        await stop.wait()
    finally:
        await runner.stop("the gateway was asked to stop")
    return 0


def _print_lan(address: GatewayAddress, tls: TlsInfo) -> None:
    url = address.url
    wildcard = address.host in ("0.0.0.0", "::", "")
    urls = (lan_urls(address.port) if wildcard else []) or [url]
    lines = [f"It serves the network over HTTPS on {url}: open {urls[0]}/ on a phone or laptop."]
    if tls.generated:
        lines.append(
            f"Devices trust it once they trust this gateway's certificate authority, from "
            f"{urls[0]}/ca.crt (SHA-256 fingerprint {tls.fingerprint_sha256})."
        )
    else:
        lines.append(f"Its certificate has the SHA-256 fingerprint {tls.fingerprint_sha256}.")
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serving = not (args.reset_admin_secret or args.import_keys)
    lock = None
    try:
        folder = data_dir(args.data_dir)
        # Before anything else reads the folder: a second gateway would clean up the first
        # one's upload spool and re-run its jobs. Key maintenance goes through SQLite's own
        # locking and may run beside a gateway.
        lock = lock_folder(folder, "pplex-gateway") if serving else None
        settings = _settings(args, folder)
        store = KeyStore.in_folder(
            folder,
            default_rpm=settings.default_rpm,
            default_max_sessions=settings.default_max_sessions,
        )
    except PplexError as exc:
        if lock is not None:
            lock.release()
        print(f"pplex-gateway: {exc.message}", file=sys.stderr)
        return 2
    try:
        if args.reset_admin_secret:
            _print_secret(store.new_admin_secret(), "A new admin secret replaces the old one.")
            return 0
        if args.import_keys:
            result = store.import_legacy_json(args.import_keys)
            print(f"Imported {result.imported} keys ({result.skipped} were already present).")
            if result.weak:
                print(weak_keys_notice(result.weak), flush=True)
            return 0
        _admin_secret(store)
        return asyncio.run(_serve(settings, store, folder))
    except PplexError as exc:
        print(f"pplex-gateway: {exc.message}", file=sys.stderr)
        return 2
    finally:
        store.close()
        if lock is not None:
            lock.release()
