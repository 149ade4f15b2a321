from __future__ import annotations

import json
from pathlib import Path

import pytest

from pplex_desktop.core.errors import ConfigError
from pplex_desktop.core.settings import (
    BackendConfig,
    Settings,
    load_settings,
    normalize_backend_url,
    save_settings,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("localhost:8998", "ws://localhost:8998"),
        ("ws://gpu:8998/api/chat", "ws://gpu:8998"),
        ("http://gpu:9000/", "ws://gpu:9000"),
        ("https://gpu.example", "wss://gpu.example:443"),
        ("wss://gpu:1/api/chat/", "wss://gpu:1"),
        ("http://user:pw@gpu:7", "ws://gpu:7"),
    ],
)
def test_backend_urls_are_normalised(given: str, expected: str) -> None:
    assert normalize_backend_url(given) == expected


@pytest.mark.parametrize("bad", ["ftp://x:1", "http://", "ws://h:99999"])
def test_bad_backend_urls_are_sentences(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"\.$"):
        normalize_backend_url(bad)


def test_defaults_match_the_original_gateway(tmp_path: Path) -> None:
    s = load_settings(tmp_path, env={})
    assert (s.host, s.port, s.default_rpm) == ("127.0.0.1", 8000, 60)
    assert s.backends == (BackendConfig("ws://localhost:8998"),)


def test_original_environment_variables(tmp_path: Path) -> None:
    env = {
        "MOSHI_HOST": "gpu-box",
        "MOSHI_PORT": "9001",
        "RATE_LIMIT_RPM": "12",
        "PERSONAPLEX_REPO": "/opt/personaplex",
    }
    s = load_settings(tmp_path, env=env)
    assert s.backends[0].url == "ws://gpu-box:9001"
    assert s.default_rpm == 12 and s.personaplex_repo == "/opt/personaplex"
    with pytest.raises(ConfigError, match="RATE_LIMIT_RPM"):
        load_settings(tmp_path, env={"RATE_LIMIT_RPM": "lots"})


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    s = Settings(
        port=9100,
        backends=(BackendConfig("ws://a:1", ("NATF0", "mine.wav"), "A"),),
        allowed_origins=("https://x",),
        default_voice="NATM1",
    )
    save_settings(tmp_path, s)
    assert load_settings(tmp_path, env={}) == s
    assert s.default_voice == "NATM1.pt"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_file_errors_are_sentences(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text("{nope")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path, env={})
    (tmp_path / "settings.json").write_text(json.dumps({"port": 70000}))
    with pytest.raises(ConfigError, match="70000"):
        load_settings(tmp_path, env={})
    (tmp_path / "settings.json").write_text(json.dumps({"colour": "blue"}))
    with pytest.raises(ConfigError, match="unknown entries: colour"):
        load_settings(tmp_path, env={})
