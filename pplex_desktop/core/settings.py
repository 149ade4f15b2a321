"""Settings: a small validated JSON file, written atomically, with the original gateway's
environment variables (MOSHI_HOST, MOSHI_PORT, RATE_LIMIT_RPM, PERSONAPLEX_REPO) still honoured.

Precedence: command line > environment > settings file > defaults.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pplex_desktop.core.errors import ConfigError
from pplex_desktop.core.fs import write_atomic
from pplex_desktop.core.hostnames import normalize_name, normalize_origin
from pplex_desktop.core.personas import DEFAULT_PERSONA
from pplex_desktop.core.voices import DEFAULT_VOICES, voice_file_name

SETTINGS_NAME = "settings.json"
CLOSE_ACTIONS = ("ask", "minimize", "quit")
# The longest trailing silence an offline job may ask for (the model's time to answer).
MAX_SILENCE_S = 30.0
OFFLINE_ENGINES = ("stream", "local")


def normalize_backend_url(url: str) -> str:
    """Turn ws/wss/http/https base URLs, with or without /api/chat, into ws(s)://host:port."""
    text = url.strip()
    if "://" not in text:
        text = "ws://" + text
    parts = urlsplit(text)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ConfigError(
            f"'{url}' is not a model server address; use ws://host:port, wss://, http:// or "
            "https://.",
            code="invalid_backend",
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"'{url}' has an invalid port number.", code="invalid_backend") from None
    path = parts.path.rstrip("/").removesuffix("/api/chat")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if port is None:
        netloc = f"{netloc}:{443 if scheme == 'wss' else 8998}"
    return urlunsplit((scheme, netloc, path, "", ""))


@dataclass(frozen=True)
class BackendConfig:
    url: str
    voices: tuple[str, ...] = DEFAULT_VOICES
    name: str = ""
    # The model server's voice folder (its --voice-prompt-dir) when this gateway can write it:
    # uploaded voices are stored there and every .wav in it is offered (README, "Custom voices").
    voice_dir: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", normalize_backend_url(self.url))
        if not self.voices:
            raise ConfigError(f"The backend {self.url} needs at least one voice.")
        object.__setattr__(self, "voices", tuple(voice_file_name(v) for v in self.voices))
        if self.voice_dir is not None and (
            not isinstance(self.voice_dir, str) or not os.path.isabs(self.voice_dir)
        ):
            raise ConfigError(
                f"The voice folder of {self.url} must be an absolute path, not "
                f"{str(self.voice_dir)[:80]!r}."
            )

    @property
    def label(self) -> str:
        return self.name or self.url


def _default_backends() -> tuple[BackendConfig, ...]:
    return (BackendConfig("ws://localhost:8998"),)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    backends: tuple[BackendConfig, ...] = field(default_factory=_default_backends)
    demo: bool = False
    default_rpm: int = 60
    default_max_sessions: int = 1
    default_persona: str = DEFAULT_PERSONA
    default_voice: str = "NATF2.pt"
    personaplex_repo: str | None = None
    personaplex_python: str | None = None  # the interpreter that has PersonaPlex installed
    offline_engine: str = "stream"  # "stream" (through a model server) or "local"
    offline_silence_s: float = 3.0  # trailing silence so the model has time to answer
    local_engine_timeout_s: float = 3600.0
    max_prompt_chars: int = 2000
    max_upload_mb: float = 200.0
    upload_idle_timeout_s: float = 30.0  # the longest wait for the next bytes of a body
    max_audio_s: float = 900.0
    max_session_s: float = 3600.0
    idle_timeout_s: float = 30.0
    realtime_tolerance_s: float = 3.0
    max_client_lag_s: float = 1.0
    backend_stall_s: float = 10.0
    handshake_timeout_s: float = 120.0
    ws_heartbeat_s: float = 5.0
    queue_max: int = 32
    queue_max_wait_s: float = 600.0
    job_retention_h: float = 72.0
    serve_lan: bool = False  # HTTPS on lan_host:lan_port; plain HTTP then stays on loopback
    lan_host: str = "0.0.0.0"
    lan_port: int = 8443
    tls_cert: str | None = None
    tls_key: str | None = None
    allowed_origins: tuple[str, ...] = ()
    # Host names the gateway answers to besides its own (loopback, this machine's names and
    # LAN addresses, its certificate's names): a reverse proxy's or a DNS name of yours.
    # ".example.org" matches every subdomain. Any other Host gets 421.
    public_hosts: tuple[str, ...] = ()
    # Connection defences (see gateway/connections.py for why each value).
    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    body_min_bytes_per_s: float = 500.0
    keepalive_timeout_s: float = 30.0
    tls_handshake_timeout_s: float = 10.0
    close_grace_s: float = 2.0
    max_connections: int = 0  # 0: derived from the open-file limit
    max_waiting_per_address: int = 64
    # Reverse proxies whose X-Forwarded-For / Forwarded headers name the real client (for
    # limits and logs): addresses or networks such as 127.0.0.1 or 10.0.0.0/8.
    trusted_proxies: tuple[str, ...] = ()
    metrics_token: str | None = None  # a Bearer token for /metrics besides the admin secret
    metrics_on_lan: bool = False  # /metrics on the HTTPS site for the network too
    start_minimized: bool = False
    close_action: str = "ask"

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        check(0 <= self.port <= 65535, f"The port {self.port} is not between 0 and 65535.")
        check(bool(self.host.strip()), "The listening address cannot be empty.")
        check(0 <= self.lan_port <= 65535, f"The LAN port {self.lan_port} is not 0-65535.")
        check(bool(self.lan_host.strip()), "The LAN listening address cannot be empty.")
        check(1 <= self.default_rpm <= 100_000, "The default requests per minute must be 1-100000.")
        check(1 <= self.default_max_sessions <= 100, "The default session limit must be 1-100.")
        check(self.max_upload_mb > 0, "The upload size limit must be above zero.")
        check(self.upload_idle_timeout_s > 0, "The upload idle timeout must be above zero.")
        check(self.max_audio_s > 0, "The audio length limit must be above zero.")
        check(self.max_session_s > 0, "The session length limit must be above zero.")
        check(self.idle_timeout_s > 0, "The idle timeout must be above zero.")
        check(self.realtime_tolerance_s >= 0, "The real-time tolerance cannot be negative.")
        check(self.max_client_lag_s > 0, "The client lag limit must be above zero.")
        check(self.backend_stall_s > 0, "The model server stall limit must be above zero.")
        check(self.handshake_timeout_s > 0, "The handshake timeout must be above zero.")
        check(self.ws_heartbeat_s > 0, "The WebSocket heartbeat must be above zero.")
        check(self.header_timeout_s > 0, "The header timeout must be above zero.")
        check(self.body_timeout_s > 0, "The body timeout must be above zero.")
        check(self.body_min_bytes_per_s >= 0, "The minimum body rate cannot be negative.")
        check(self.keepalive_timeout_s > 0, "The keep-alive timeout must be above zero.")
        check(self.tls_handshake_timeout_s > 0, "The TLS handshake timeout must be above zero.")
        check(self.close_grace_s > 0, "The close grace must be above zero.")
        check(self.max_connections >= 0, "The connection limit cannot be negative (0: automatic).")
        check(self.max_waiting_per_address >= 1, "max_waiting_per_address must be at least 1.")
        check(self.queue_max >= 0, "The queue length cannot be negative.")
        check(self.queue_max_wait_s > 0, "The maximum queue wait must be above zero.")
        check(self.job_retention_h > 0, "The job retention must be above zero hours.")
        check(
            0 <= self.offline_silence_s <= MAX_SILENCE_S,
            f"The trailing silence must be 0-{MAX_SILENCE_S:g} seconds.",
        )
        check(self.local_engine_timeout_s > 0, "The local engine timeout must be above zero.")
        check(self.offline_engine in OFFLINE_ENGINES, "offline_engine must be stream or local.")
        check(
            self.offline_engine != "local" or bool(self.personaplex_repo),
            "The local offline engine needs PERSONAPLEX_REPO (the PersonaPlex checkout).",
        )
        check(self.close_action in CLOSE_ACTIONS, f"close_action must be one of {CLOSE_ACTIONS}.")
        check(bool(self.backends) or self.demo, "Configure at least one model server.")
        check(bool(self.default_persona.strip()), "The default persona cannot be empty.")
        check(
            (self.tls_cert is None) == (self.tls_key is None),
            "A TLS certificate and its key go together: set both or neither.",
        )
        object.__setattr__(self, "default_voice", voice_file_name(self.default_voice))
        for name in _LIST_RULES:
            object.__setattr__(self, name, _entries(name, getattr(self, name)))
        check(
            self.metrics_token is None or len(self.metrics_token) >= 16,
            "metrics_token must be at least 16 characters long (or unset).",
        )

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["backends"] = [_backend_json(b) for b in self.backends]
        for name in _LIST_RULES:
            data[name] = list(getattr(self, name))
        return data


def _backend_json(backend: BackendConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"url": backend.url, "voices": list(backend.voices), "name": backend.name}
    if backend.voice_dir is not None:  # only when set: settings files without one stay as they were
        out["voice_dir"] = backend.voice_dir
    return out


def _network(entry: object) -> str | None:
    try:
        return str(ipaddress.ip_network(str(entry).strip(), strict=False))
    except ValueError:
        return None


def _public_host(entry: object) -> str | None:
    text = entry if isinstance(entry, str) else ""
    dot = "." if text.startswith(".") else ""
    normal = normalize_name(text.removeprefix("."))
    return None if normal is None else dot + normal


def _origin(entry: object) -> str | None:
    return normalize_origin(entry) if isinstance(entry, str) else None


@dataclass(frozen=True, slots=True)
class _EntryRule:
    """How one list setting's entries are read: each is normalised, or refused with ``hint``."""

    normalize: Callable[[object], str | None]
    kind: str  # what the setting is a list of, for "must be a list of ..."
    example: str  # a JSON list a user could copy
    wrong: str  # what a bad entry is not, for "which is not ..."
    hint: str  # a sentence on how to write entries


_LIST_RULES: dict[str, _EntryRule] = {
    "public_hosts": _EntryRule(
        _public_host,
        "host names",
        '["gw.example.org"]',
        "a host name or address",
        "write names alone, without scheme, port or path (gw.example.org, .example.org for "
        "every subdomain).",
    ),
    "trusted_proxies": _EntryRule(
        _network,
        "addresses",
        '["127.0.0.1"]',
        "an IP address or network",
        "write addresses such as 127.0.0.1, ::1 or 10.0.0.0/8.",
    ),
    "allowed_origins": _EntryRule(
        _origin,
        "web page origins",
        '["https://app.example.org"]',
        "a web page origin",
        "write the scheme, the host and the port if it is not the default, with no path "
        "(https://app.example.org, http://localhost:5173).",
    ),
}


def _entries(name: str, entries: object) -> tuple[str, ...]:
    """The normalised, de-duplicated entries of the list setting ``name``, or a ConfigError."""
    rule = _LIST_RULES[name]
    if isinstance(entries, str) or not isinstance(entries, (tuple, list)):
        raise ConfigError(f"{name} must be a list of {rule.kind}, such as {rule.example}.")
    out: list[str] = []
    for entry in entries:
        normal = rule.normalize(entry)
        if normal is None:
            raise ConfigError(
                f"{name} has {str(entry)[:80]!r}, which is not {rule.wrong}; {rule.hint}"
            )
        out.append(normal)
    return tuple(dict.fromkeys(out))


def from_json(data: Mapping[str, Any]) -> Settings:
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"The settings file has unknown entries: {', '.join(unknown)}.")
    values = dict(data)
    try:
        if "backends" in values:
            values["backends"] = tuple(
                BackendConfig(
                    b["url"],
                    tuple(b.get("voices") or DEFAULT_VOICES),
                    b.get("name", ""),
                    b.get("voice_dir"),
                )
                for b in values["backends"]
            )
        for name in _LIST_RULES:
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        return Settings(**values)
    except (TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(f"The settings file has an entry of the wrong type: {exc}.") from None


def read_settings_file(folder: Path) -> dict[str, Any]:
    """The entries of ``folder``'s settings.json as written, or nothing when there is none."""
    path = folder / SETTINGS_NAME
    data: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"The settings file {path} cannot be read: {exc}.") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"The settings file {path} must hold a JSON object.")
        data = loaded
    return data


def load_settings(folder: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read settings.json (if any) from ``folder`` and apply environment overrides."""
    # Imported here: the schema module describes Settings, so it imports this one.
    from pplex_desktop.core.settings_schema import env_overrides

    env = os.environ if env is None else env
    base = from_json(read_settings_file(folder))
    overrides = env_overrides(env)
    try:
        return base.replace(**overrides.values) if overrides.values else base
    except ConfigError as exc:
        where = ", ".join(overrides.sources.values())
        raise ConfigError(f"{exc.message} (It comes from {where}.)") from None


def save_settings(folder: Path, settings: Settings) -> Path:
    """Write settings atomically: a crash mid-write never leaves a half-written file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SETTINGS_NAME
    text = json.dumps(settings.to_json(), indent=2, sort_keys=True) + "\n"
    write_atomic(path, text)
    return path
