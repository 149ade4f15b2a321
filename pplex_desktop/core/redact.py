"""Keep secrets out of logs: keys can arrive in URLs, headers and user-info."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_QUERY_NAMES = frozenset(
    {"api_key", "apikey", "key", "auth_id", "auth", "authorization", "token", "admin_secret"}
    | {"secret", "password", "passwd", "pwd", "pass"}
)
# Names are compared as x_admin_secret, X-Admin-Secret and admin-secret all mean the same to
# whoever typed them; any *_secret, *_token, *_password or *_key is hidden too.
_SECRET_SUFFIXES = ("secret", "token", "password", "_key")
REDACTED = "REDACTED"
# Our own keys look like pplx_<body>; anything shaped like one is hidden wherever it appears.
_KEY_PATTERN = re.compile(r"pplx_[A-Za-z0-9_-]{8,}")


def redact_text(text: str) -> str:
    return _KEY_PATTERN.sub("pplx_" + REDACTED, text)


def is_secret_name(name: str) -> bool:
    """Whether a query parameter called ``name`` may carry a key, a secret or a password."""
    normal = name.strip().lower().replace("-", "_").removeprefix("x_")
    return normal in SECRET_QUERY_NAMES or normal.endswith(_SECRET_SUFFIXES)


def redact_url(url: str) -> str:
    """Return the URL with secret query values and any password replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, REDACTED if is_secret_name(k) else v) for k, v in pairs],
            safe="",
        )
    return redact_text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


class RedactingFilter(logging.Filter):
    """Redacts key-shaped text in records of loggers we do not write ourselves (aiohttp's,
    asyncio's), whose messages and tracebacks may quote a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)  # formatters print this one
        return True


def install_redacting_filter(*names: str) -> None:
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
