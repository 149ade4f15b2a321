"""``pplex-gateway``: the gateway without a screen, for servers and scripts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pplex_desktop.core.admin_secret import use_env_admin_secret
from pplex_desktop.core.db import StoreError
from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.folder_lock import lock_folder
from pplex_desktop.core.keystore import KeyStore, weak_keys_notice
from pplex_desktop.core.paths import data_dir
from pplex_desktop.core.settings import BackendConfig, Settings, read_settings_file
from pplex_desktop.core.settings_schema import (
    SPECS,
    Kind,
    Overrides,
    Resolved,
    SettingSpec,
    describe,
    env_overrides,
    resolve,
    shown_value,
)
from pplex_desktop.gateway.lan.tls import TLS_FOLDER, TlsInfo, lan_urls
from pplex_desktop.gateway.server import DEMO_LABEL, GatewayAddress, GatewayRunner

ADMIN_SECRET_ENV = "PPLEX_ADMIN_SECRET"  # noqa: S105 (a variable name, not a secret)
_log = logging.getLogger("pplex_desktop.gateway")


_METAVARS = {
    Kind.TEXT: "TEXT",
    Kind.OPTIONAL_TEXT: "TEXT",
    Kind.INT: "N",
    Kind.FLOAT: "X",
    Kind.LIST: "VALUE",
    Kind.BACKENDS: "URL",
}


def _dest(spec: SettingSpec) -> str:
    return "setting_" + spec.name


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pplex-gateway",
        description="A secure gateway for PersonaPlex/Moshi servers: API keys, rate limits, a "
        "queue, a WebSocket proxy and offline inference.",
        epilog="Every setting is also read from the environment (PPLEX_ and its name in capitals, "
        "lists comma-separated, e.g. PPLEX_ALLOWED_ORIGINS) and from settings.json in the data "
        "folder; a flag wins over the environment, which wins over the file. MOSHI_HOST, "
        "MOSHI_PORT, RATE_LIMIT_RPM and PERSONAPLEX_REPO work as in the original gateway.",
    )
    run = p.add_argument_group("Running")
    run.add_argument("--data-dir", type=Path, help="folder for keys, jobs and settings")
    run.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    run.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings, each with where it came from, and exit",
    )
    run.add_argument(
        "--voice-dir",
        type=Path,
        metavar="DIR",
        help="the model servers' voice folder (their --voice-prompt-dir), if this gateway can "
        "write it: uploaded voices go there and every .wav in it is offered",
    )
    run.add_argument(
        "--tls",
        choices=("auto", "off"),
        help="auto: serve the network over HTTPS (--host, default 0.0.0.0, port --lan-port) with "
        "a certificate from a local CA made in the data folder, keeping plain HTTP on "
        "127.0.0.1:--port; off: no LAN site",
    )
    run.add_argument(
        "--voices",
        metavar="NAMES",
        help="comma-separated voice names the backends offer (default: the 18 PersonaPlex ships)",
    )
    keys = p.add_argument_group("Key maintenance")
    keys.add_argument(
        "--reset-admin-secret", action="store_true", help="print a new admin secret and exit"
    )
    keys.add_argument(
        "--import-keys", type=Path, metavar="FILE", help="import api_keys.json and exit"
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for spec in SPECS:
        group = groups.get(spec.group) or p.add_argument_group(spec.group)
        groups[spec.group] = group
        shown = "" if spec.secret else f"; default {shown_value(spec, spec.default)}"
        text = f"{spec.help} [{spec.env}{shown}]".replace("%", "%%")
        if spec.kind is Kind.BOOL:
            group.add_argument(
                spec.flag, dest=_dest(spec), action=argparse.BooleanOptionalAction, help=text
            )
        else:
            group.add_argument(
                spec.flag,
                dest=_dest(spec),
                action="append" if spec.many else "store",
                metavar=_METAVARS[spec.kind],
                help=text,
            )
    return p


def flag_overrides(args: argparse.Namespace, current: Settings) -> Overrides:
    """The settings the command line gives, with the older flags' meanings kept."""
    out = Overrides()
    for spec in SPECS:
        raw = getattr(args, _dest(spec))
        if raw is None:
            continue
        value = raw if isinstance(raw, bool) else spec.parse(raw, spec.flag)
        out.set(spec.name, value, spec.flag)
    if "tls_cert" in out.values or "tls_key" in out.values:
        out.set("serve_lan", True, "--tls-cert")
    if args.tls is not None:
        out.set("serve_lan", args.tls == "auto" or "tls_cert" in out.values, "--tls")
    # With HTTPS for the network, --host says where that site listens; plain HTTP stays on
    # loopback whatever it says.
    lan = out.values.get("serve_lan", current.serve_lan)
    if "host" in out.values and lan and "lan_host" not in out.values:
        out.set("lan_host", out.values.pop("host"), out.sources.pop("host"))
    if args.voices:
        voices = tuple(v.strip() for v in args.voices.split(",") if v.strip())
        backends = out.values.get("backends", current.backends)
        out.set(
            "backends",
            tuple(BackendConfig(b.url, voices, b.name, b.voice_dir) for b in backends),
            "--voices",
        )
    if args.voice_dir is not None:
        voice_dir = str(args.voice_dir.resolve())
        backends = out.values.get("backends", current.backends)
        out.set(
            "backends",
            tuple(BackendConfig(b.url, b.voices, b.name, voice_dir) for b in backends),
            "--voice-dir",
        )
    return out


def resolve_settings(
    args: argparse.Namespace, folder: Path, env: Mapping[str, str] | None = None
) -> Resolved:
    env = os.environ if env is None else env
    data = read_settings_file(folder)
    from_env = env_overrides(env)
    before_flags = resolve(data, from_env).settings
    return resolve(data, from_env, flag_overrides(args, before_flags))


def _admin_secret_source(folder: Path) -> str:
    if os.environ.get(ADMIN_SECRET_ENV):
        return f"The admin secret comes from {ADMIN_SECRET_ENV} (hidden)."
    return f"The admin secret is the one stored (as a hash) in {folder}."


def _admin_secret(store: KeyStore, port: int) -> None:
    if use_env_admin_secret(store):
        return
    secret = store.ensure_admin_secret()
    if secret is not None:
        _print_secret(secret, "This is the gateway's admin secret. It is shown only once.", port)


def _print_secret(secret: str, headline: str, port: int) -> None:
    # Port 0 is chosen when the gateway binds, after this is printed: name the placeholder.
    where = f"localhost:{port}" if port else "localhost:PORT"
    print(
        f"\n{headline}\n"
        f"    {secret}\n"
        "Save this key! Only its hash is stored. Use it in the X-Admin-Secret header, e.g.\n"
        f"    curl -X POST http://{where}/admin/keys/generate "
        '-H "X-Admin-Secret: ..." -F "name=my-app"\n',
        flush=True,
    )


def _reload(runner: GatewayRunner, reread: Callable[[], Settings]) -> None:
    if runner.ctx is None:
        return
    try:
        settings = reread()
    except PplexError as exc:
        _log.warning("The settings were not reloaded: %s", exc.message)
        return
    result = runner.reload(settings)
    if not result.applied and not result.need_restart:
        _log.info("Reloaded the keys; no setting changed.")


async def _serve(
    settings: Settings, store: KeyStore, folder: Path, reread: Callable[[], Settings]
) -> int:
    # Handlers before the "listening" line: whoever reads it may signal us right away.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    runner = GatewayRunner(settings, store, tls_folder=folder / TLS_FOLDER)
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, AttributeError):  # no SIGHUP on Windows
        loop.add_signal_handler(signal.SIGHUP, _reload, runner, reread)
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
    serving = not (args.reset_admin_secret or args.import_keys or args.print_config)
    lock = None
    try:
        folder = data_dir(args.data_dir)
        # Before anything else reads the folder: a second gateway would clean up the first
        # one's upload spool and re-run its jobs. Key maintenance goes through SQLite's own
        # locking and may run beside a gateway.
        lock = lock_folder(folder, "pplex-gateway") if serving else None
        resolved = resolve_settings(args, folder)
        settings = resolved.settings
        if args.print_config:
            print(describe(resolved), flush=True)
            print(_admin_secret_source(folder), flush=True)
            return 0
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
            _print_secret(
                store.new_admin_secret(), "A new admin secret replaces the old one.", settings.port
            )
            return 0
        if args.import_keys:
            result = store.import_legacy_json(args.import_keys)
            print(f"Imported {result.imported} keys ({result.skipped} were already present).")
            if result.weak:
                print(weak_keys_notice(result.weak), flush=True)
            return 0
        _admin_secret(store, settings.port)
        return asyncio.run(
            _serve(settings, store, folder, lambda: resolve_settings(args, folder).settings)
        )
    except PplexError as exc:
        print(f"pplex-gateway: {exc.message}", file=sys.stderr)
        return 2
    finally:
        store.close()
        if lock is not None:
            lock.release()
