"""Every setting as a command-line flag and a ``PPLEX_...`` environment variable, derived from
the Settings dataclass itself so that a new setting gets both without anyone remembering to.

Precedence: flag > environment > settings.json > default. The original gateway's variables
(MOSHI_HOST, MOSHI_PORT, RATE_LIMIT_RPM, PERSONAPLEX_REPO, PERSONAPLEX_PYTHON) still work; a
``PPLEX_`` variable for the same setting wins over them.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pplex_desktop.core.errors import ConfigError
from pplex_desktop.core.redact import redact_url
from pplex_desktop.core.settings import BackendConfig, Settings, from_json

ENV_PREFIX = "PPLEX_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class Kind(StrEnum):
    TEXT = "text"
    OPTIONAL_TEXT = "optional text"
    INT = "whole number"
    FLOAT = "number"
    BOOL = "true or false"
    LIST = "list"
    BACKENDS = "model servers"


# (group in --help, one line of help). A setting missing here still gets its flag and variable,
# under "Other settings"; a test makes sure none is missing.
_DOCS: dict[str, tuple[str, str]] = {
    "host": ("Listening", "address to listen on (127.0.0.1; 0.0.0.0 for the LAN)"),
    "port": ("Listening", "port of the plain HTTP site (0 for any free port)"),
    "backends": ("Model servers", "model server URL (ws://, wss://, http://, https://); repeat"),
    "demo": ("Model servers", "serve the built-in simulated model server"),
    "default_rpm": ("Limits", "requests per minute of new keys"),
    "default_max_sessions": ("Limits", "concurrent live sessions of new keys"),
    "default_persona": ("Conversations", "persona prompt when a client sends none"),
    "default_voice": ("Conversations", "voice when a client names none (NATF2)"),
    "personaplex_repo": ("Offline jobs", "PersonaPlex checkout, for the local offline engine"),
    "personaplex_python": ("Offline jobs", "interpreter that has PersonaPlex installed"),
    "offline_engine": ("Offline jobs", "stream (through a model server) or local"),
    "offline_silence_s": ("Offline jobs", "trailing silence so the model can answer, seconds"),
    "local_engine_timeout_s": ("Offline jobs", "longest local engine run, seconds"),
    "max_prompt_chars": ("Limits", "longest persona prompt, characters"),
    "max_upload_mb": ("Limits", "largest upload, MB"),
    "max_audio_s": ("Limits", "longest uploaded audio, seconds"),
    "max_session_s": ("Limits", "longest live session, seconds"),
    "idle_timeout_s": ("Limits", "a silent session ends after this many seconds"),
    "realtime_tolerance_s": ("Conversations", "how far ahead of real time a client may send, s"),
    "max_client_lag_s": ("Conversations", "audio a client may fall behind before it is let go, s"),
    "backend_stall_s": ("Model servers", "a model server silent this long has failed, seconds"),
    "handshake_timeout_s": ("Model servers", "longest wait for a model server's handshake, s"),
    "ws_heartbeat_s": ("Conversations", "WebSocket ping interval, seconds"),
    "queue_max": ("Limits", "callers who may wait for a free model server"),
    "queue_max_wait_s": ("Limits", "longest wait in the queue, seconds"),
    "job_retention_h": ("Offline jobs", "hours finished jobs are kept"),
    "serve_lan": ("Network and TLS", "serve the network over HTTPS on lan_host:lan_port"),
    "lan_host": ("Network and TLS", "address of the HTTPS site"),
    "lan_port": ("Network and TLS", "port of the HTTPS site"),
    "tls_cert": ("Network and TLS", "PEM certificate for the HTTPS site (else a local CA's)"),
    "tls_key": ("Network and TLS", "PEM private key of the certificate"),
    "allowed_origins": ("Browsers and proxies", "web page origin allowed to call; repeat"),
    "public_hosts": ("Browsers and proxies", "extra Host name served (.example.org); repeat"),
    "trusted_proxies": ("Browsers and proxies", "proxy address whose X-Forwarded-For counts"),
    "metrics_token": ("Metrics", "Bearer token for /metrics, besides the admin secret"),
    "metrics_on_lan": ("Metrics", "serve /metrics on the HTTPS site for the network too"),
    "upload_idle_timeout_s": ("Connections", "an upload body may pause this long, seconds"),
    "header_timeout_s": ("Connections", "request line and headers must arrive within, s"),
    "body_timeout_s": ("Connections", "longest pause in a request body, seconds"),
    "body_min_bytes_per_s": ("Connections", "slowest average body rate after that, bytes/s"),
    "keepalive_timeout_s": ("Connections", "idle time between requests on one connection, s"),
    "tls_handshake_timeout_s": ("Connections", "longest TLS handshake, seconds"),
    "close_grace_s": ("Connections", "a closing socket is aborted after this many seconds"),
    "max_connections": ("Connections", "open connections at most (0: from the file limit)"),
    "max_waiting_per_address": ("Connections", "idle connections one address may hold"),
    "start_minimized": ("Desktop app", "start in the tray (desktop app only)"),
    "close_action": ("Desktop app", "ask, minimize or quit on close (desktop app only)"),
}
SECRET_SETTINGS = frozenset({"metrics_token"})
# The original gateway's variables, for the settings they set.
LEGACY_ENV = {
    "RATE_LIMIT_RPM": "default_rpm",
    "PERSONAPLEX_REPO": "personaplex_repo",
    "PERSONAPLEX_PYTHON": "personaplex_python",
}


def _kind(hint: object) -> Kind:
    if hint is str:
        return Kind.TEXT
    if hint is bool:
        return Kind.BOOL
    if hint is int:
        return Kind.INT
    if hint is float:
        return Kind.FLOAT
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and set(args) == {str, type(None)}:
        return Kind.OPTIONAL_TEXT
    if typing.get_origin(hint) is tuple and args[:1] == (str,):
        return Kind.LIST
    if typing.get_origin(hint) is tuple and args[:1] == (BackendConfig,):
        return Kind.BACKENDS
    raise TypeError(f"The settings schema cannot describe a setting of type {hint!r}.")


@dataclass(frozen=True, slots=True)
class SettingSpec:
    name: str
    kind: Kind
    group: str
    help: str
    default: Any

    @property
    def secret(self) -> bool:
        return self.name in SECRET_SETTINGS

    @property
    def many(self) -> bool:
        return self.kind in (Kind.LIST, Kind.BACKENDS)

    @property
    def flag(self) -> str:
        # Repeatable flags take the singular: --allowed-origin A --allowed-origin B.
        name = self.name
        if self.many:
            name = name[:-3] + "y" if name.endswith("ies") else name.removesuffix("s")
        return "--" + name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def parse(self, raw: str | Sequence[str], where: str) -> Any:
        """The value of ``raw`` (one text, or the texts of a repeated flag), or a ConfigError
        naming ``where`` it came from and what it accepts."""
        if self.many:
            texts = [raw] if isinstance(raw, str) else list(raw)
            items = tuple(p.strip() for t in texts for p in t.split(",") if p.strip())
            if self.kind is Kind.BACKENDS:
                if not items:
                    raise ConfigError(f"{where} needs at least one model server URL.")
                return tuple(BackendConfig(url) for url in items)
            return items
        if not isinstance(raw, str):
            raise ConfigError(f"{where} takes one value.")
        text = raw.strip()
        if self.kind is Kind.TEXT:
            return text
        if self.kind is Kind.OPTIONAL_TEXT:
            return text or None
        if self.kind is Kind.BOOL:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ConfigError(f"{where} must be true or false (or 1/0, yes/no), not {text!r}.")
        try:
            number = int(text) if self.kind is Kind.INT else float(text)
        except ValueError:
            raise ConfigError(f"{where} must be a {self.kind.value}, not {text[:40]!r}.") from None
        if not math.isfinite(number):
            raise ConfigError(f"{where} must be a finite number, not {text[:40]!r}.")
        return number


def _specs() -> tuple[SettingSpec, ...]:
    hints = typing.get_type_hints(Settings)
    defaults = Settings()
    out = []
    for f in dataclasses.fields(Settings):
        group, text = _DOCS.get(f.name, ("Other settings", f"the {f.name} setting"))
        out.append(
            SettingSpec(f.name, _kind(hints[f.name]), group, text, getattr(defaults, f.name))
        )
    return tuple(out)


SPECS: tuple[SettingSpec, ...] = _specs()
BY_NAME: dict[str, SettingSpec] = {s.name: s for s in SPECS}


@dataclass
class Overrides:
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def set(self, name: str, value: Any, source: str) -> None:
        self.values[name] = value
        self.sources[name] = source


def env_overrides(env: Mapping[str, str]) -> Overrides:
    out = Overrides()
    if env.get("MOSHI_HOST") or env.get("MOSHI_PORT"):
        host = env.get("MOSHI_HOST") or "localhost"
        port = env.get("MOSHI_PORT") or "8998"
        if not port.isdigit():
            raise ConfigError(f"MOSHI_PORT must be a port number, not {port[:40]!r}.")
        out.set("backends", (BackendConfig(f"ws://{host}:{port}"),), "MOSHI_HOST/MOSHI_PORT")
    for variable, name in LEGACY_ENV.items():
        if env.get(variable):
            out.set(name, BY_NAME[name].parse(env[variable], variable), variable)
    for spec in SPECS:
        raw = env.get(spec.env)
        if raw is not None and raw.strip():
            out.set(spec.name, spec.parse(raw, spec.env), spec.env)
    return out


@dataclass(frozen=True)
class Resolved:
    settings: Settings
    sources: dict[str, str]  # setting -> "default", "settings.json", "PPLEX_X" or "--x"


def resolve(file_data: Mapping[str, Any], *layers: Overrides) -> Resolved:
    """Apply ``layers`` in order over the file; a refused value names where it came from."""
    settings = from_json(file_data)
    sources = {s.name: "default" for s in SPECS}
    sources.update(dict.fromkeys(file_data, "settings.json"))
    for layer in layers:
        if not layer.values:
            continue
        try:
            settings = settings.replace(**layer.values)
        except ConfigError as exc:
            where = ", ".join(dict.fromkeys(layer.sources.values()))
            raise ConfigError(f"{exc.message} (It comes from {where}.)") from None
        sources.update(layer.sources)
    return Resolved(settings, sources)


def shown_value(spec: SettingSpec, value: Any) -> str:
    """A value for --print-config: secrets only say whether they are set."""
    if spec.secret:
        return "(not set)" if value is None else "(set, hidden)"
    if spec.kind is Kind.BACKENDS:
        return ", ".join(redact_url(b.url) for b in value) or "(none)"
    if spec.kind is Kind.LIST:
        return ", ".join(value) or "(none)"
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def describe(resolved: Resolved) -> str:
    """The effective configuration, grouped as in --help, each value with its source."""
    lines: list[str] = []
    groups: dict[str, list[SettingSpec]] = {}
    for spec in SPECS:
        groups.setdefault(spec.group, []).append(spec)
    for group, specs in groups.items():
        lines.append(f"[{group}]")
        for spec in specs:
            value = shown_value(spec, getattr(resolved.settings, spec.name))
            lines.append(f"  {spec.name} = {value}    ({resolved.sources[spec.name]})")
    return "\n".join(lines)
