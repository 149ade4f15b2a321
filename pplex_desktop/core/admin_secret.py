"""The admin secret given in the environment (PPLEX_ADMIN_SECRET), for the gateway and the app."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pplex_desktop.core.errors import ConfigError
from pplex_desktop.core.keystore import KeyStore

ADMIN_SECRET_ENV = "PPLEX_ADMIN_SECRET"  # noqa: S105 (a variable name, not a secret)
MIN_ADMIN_SECRET_CHARS = 16


def use_env_admin_secret(store: KeyStore, env: Mapping[str, str] | None = None) -> bool:
    """Store the secret from the environment, if one is set; refuse a short one by name."""
    value = (os.environ if env is None else env).get(ADMIN_SECRET_ENV)
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
