from __future__ import annotations

import json
import re
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


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        (
            "public_hosts",
            ["GW.Example.org.", ".lan.example.org", "gw.example.org"],
            ("gw.example.org", ".lan.example.org"),
        ),
        (
            "trusted_proxies",
            ["127.0.0.1", "10.1.2.3/8", " ::1 "],
            ("127.0.0.1/32", "10.0.0.0/8", "::1/128"),
        ),
        (
            "allowed_origins",
            ["HTTPS://App.Example.org:443/", "http://localhost:5173"],
            ("https://app.example.org", "http://localhost:5173"),
        ),
    ],
)
def test_list_settings_are_normalised_and_deduplicated(
    tmp_path: Path, name: str, given: list[str], expected: tuple[str, ...]
) -> None:
    (tmp_path / "settings.json").write_text(json.dumps({name: given}))
    loaded = load_settings(tmp_path, env={})
    assert getattr(loaded, name) == expected
    assert getattr(Settings().replace(**{name: tuple(given)}), name) == expected
    save_settings(tmp_path, loaded)
    assert json.loads((tmp_path / "settings.json").read_text())[name] == list(expected)


@pytest.mark.parametrize(
    ("name", "bad", "message"),
    [
        (
            "public_hosts",
            "https://gw.example/",
            "public_hosts has 'https://gw.example/', which is not a host name or address; write "
            "names alone, without scheme, port or path (gw.example.org, .example.org for every "
            "subdomain).",
        ),
        (
            "trusted_proxies",
            "10.0.0.300",
            "trusted_proxies has '10.0.0.300', which is not an IP address or network; write "
            "addresses such as 127.0.0.1, ::1 or 10.0.0.0/8.",
        ),
        (
            "allowed_origins",
            "app.example.org",
            "allowed_origins has 'app.example.org', which is not a web page origin; write the "
            "scheme, the host and the port if it is not the default, with no path "
            "(https://app.example.org, http://localhost:5173).",
        ),
        ("allowed_origins", 7, "allowed_origins has '7', which is not a web page origin;"),
        ("public_hosts", None, "public_hosts has 'None', which is not a host name or address;"),
    ],
)
def test_a_bad_list_entry_is_a_sentence_naming_it(
    tmp_path: Path, name: str, bad: object, message: str
) -> None:
    good = {"public_hosts": "ok.example", "trusted_proxies": "127.0.0.1"}
    entries = [good.get(name, "https://ok.example"), bad]
    (tmp_path / "settings.json").write_text(json.dumps({name: entries}))
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, env={})
    assert caught.value.message.startswith(message)
    assert caught.value.message.endswith(".")


@pytest.mark.parametrize(
    ("name", "example"),
    [
        ("public_hosts", 'host names, such as ["gw.example.org"].'),
        ("trusted_proxies", 'addresses, such as ["127.0.0.1"].'),
        ("allowed_origins", 'web page origins, such as ["https://app.example.org"].'),
    ],
)
def test_a_list_setting_given_one_text_is_a_sentence(
    tmp_path: Path, name: str, example: str
) -> None:
    # A single text used to be split into its characters (allowed_origins: "h", "t", ...).
    (tmp_path / "settings.json").write_text(json.dumps({name: "https://app.example.org"}))
    with pytest.raises(ConfigError, match=rf"^{name} must be a list of {re.escape(example)}$"):
        load_settings(tmp_path, env={})
