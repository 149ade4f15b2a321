"""The admin secret given in the environment (PPLEX_ADMIN_SECRET), for the gateway and the app."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pplex_desktop.core.errors import ConfigError
from pplex_desktop.core.keystore import KeyStore

ADMIN_SECRET_ENV = "PPLEX_ADMIN_SECRET"  # noqa: S105 (a variable name, not a secret)
MIN_ADMIN_SECRET_CHARS = 16
# systemd's LoadCredential=pplex-admin-secret:FILE hands the secret over as a file only this
# service can read, never in the environment where `ps e` or a crash report could show it.
CREDENTIAL_NAME = "pplex-admin-secret"


def _credential(env: Mapping[str, str]) -> str | None:
    folder = env.get("CREDENTIALS_DIRECTORY")
    if not folder:
        return None
    path = Path(folder) / CREDENTIAL_NAME
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"The systemd credential {CREDENTIAL_NAME} cannot be read ({type(exc).__name__})."
        ) from None


def use_env_admin_secret(store: KeyStore, env: Mapping[str, str] | None = None) -> bool:
    """Store the secret from the environment, if one is set; refuse a short one by name."""
    env = os.environ if env is None else env
    value = env.get(ADMIN_SECRET_ENV) or _credential(env)
    if not value:
        return False
    if len(value) < MIN_ADMIN_SECRET_CHARS:
        # The length only, never the value: it is meant to be a secret.
        raise ConfigError(
            f"{ADMIN_SECRET_ENV} is {len(value)} characters long, but an admin secret needs at "
            f"least {MIN_ADMIN_SECRET_CHARS}. Set a longer one, or unset it to have a secret "
            "made and shown once.",
            code="admin_secret_too_short",
        )
    store.set_admin_secret(value)
    return True
