"""When a key expires, from "in N days" or "at this time": one rule for the admin API and the app.

The admin API (``PATCH /admin/keys/{id}``, ``POST /admin/keys/generate``) and the desktop's key
dialogs both turn the user's answer into ``expires_at`` here, then hand it to ``KeyStore``, which
refuses a time that is not in the future.
"""

from __future__ import annotations

from pplex_desktop.core.errors import ValidationError

DAY_S = 86_400.0


def expiry_time(
    now: float, *, in_days: float | None = None, at: float | None = None
) -> float | None:
    """The wall-clock time a key stops working, or None for never; ``in_days`` wins over ``at``."""
    if in_days is not None:
        if in_days <= 0:
            raise ValidationError("expires_in_days must be above zero.", code="invalid_expiry")
        return now + in_days * DAY_S
    return at
