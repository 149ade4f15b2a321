"""API key format: a recognisable prefix, a random body and a checksum.

The checksum lets the gateway refuse a mistyped or truncated key before any lookup, and the
prefix lets secret scanners and people recognise a leaked key.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import zlib

KEY_PREFIX = "pplx_"
_ALPHABET = string.ascii_letters + string.digits
_BODY_LEN = 40  # 40 base62 characters: about 238 bits of entropy
_CHECK_LEN = 6
KEY_LEN = len(KEY_PREFIX) + _BODY_LEN + _CHECK_LEN
DISPLAY_PREFIX_LEN = len(KEY_PREFIX) + 6
_ALLOWED = frozenset(_ALPHABET)


def _base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECK_LEN)


def new_key() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LEN))
    return KEY_PREFIX + body + _checksum(body)


def is_well_formed(key: str) -> bool:
    """True when the key has our shape and its checksum matches."""
    if len(key) != KEY_LEN or not key.startswith(KEY_PREFIX):
        return False
    rest = key[len(KEY_PREFIX) :]
    if not _ALLOWED.issuperset(rest):
        return False
    body, check = rest[:_BODY_LEN], rest[_BODY_LEN:]
    return secrets.compare_digest(_checksum(body), check)


def digest(secret: str) -> str:
    # A header can carry bytes that decode to lone surrogates; they must hash, not raise.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LEN]
