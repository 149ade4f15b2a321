from __future__ import annotations

from pplex_desktop.core.redact import redact_text, redact_url


def test_query_keys_and_passwords_are_hidden() -> None:
    url = "ws://x:pplx_SECRETSECRET1234@host:8000/ws/stream?api_key=abc123&voice=NATF2"
    out = redact_url(url)
    assert "abc123" not in out and "SECRETSECRET" not in out
    assert "voice=NATF2" in out and "host:8000" in out


def test_key_shaped_text_is_hidden_anywhere() -> None:
    assert "pplx_abcdefgh12" not in redact_text("bad key pplx_abcdefgh12345 used")


def test_urls_without_secrets_are_unchanged() -> None:
    assert redact_url("http://h:1/v1/info?x=1") == "http://h:1/v1/info?x=1"


def test_every_spelling_of_a_secret_parameter_is_hidden() -> None:
    for name in (
        "admin_secret",
        "X-Admin-Secret",
        "x_admin_secret",
        "secret",
        "Password",
        "api-key",
        "access_token",
        "metrics_token",
        "client_secret",
        "apikey",
    ):
        assert redact_url(f"http://h/admin/keys?{name}=hunter2hunter2") == (
            f"http://h/admin/keys?{name}=REDACTED"
        ), name
    for name in ("key_id", "voice", "persona", "days"):
        assert redact_url(f"http://h/x?{name}=3") == f"http://h/x?{name}=3"
