"""The admin secret's stored form: a salted, slow scrypt hash.

A user may choose the admin secret (PPLEX_ADMIN_SECRET), so unlike API keys (238 random bits,
stored as SHA-256) it gets a hash that makes a copied database useless to a dictionary.
"""

from __future__ import annotations

import hashlib
import secrets

ADMIN_META_SCRYPT = "admin_secret_scrypt"
ADMIN_META_SHA256 = "admin_secret_sha256"  # written by earlier versions; upgraded when used
# scrypt's interactive-login parameters: ~50 ms and 16 MiB per check. Slow enough that a copy
# of the database does not give the secret away to a dictionary, fast enough that the admin
# throttle, not the hash, decides how often anyone can try.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # The cap keeps a tampered parameter set from asking for gigabytes: it fails instead.
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32
    )


def hash_admin_secret(secret: str) -> str:
    """``scrypt$n$r$p$salt$hash``: the parameters travel with the hash so they can change."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_admin_hash(stored: str, secret: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        wanted = bytes.fromhex(digest)
        got = _scrypt(secret, bytes.fromhex(salt), int(n), int(r), int(p))
    except (ValueError, MemoryError):
        return False
    return secrets.compare_digest(got, wanted)
