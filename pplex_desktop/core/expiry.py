"""When a key expires, from "in N days" or "at this time": one rule for the admin API and the app.

The admin API (``PATCH /admin/keys/{id}``, ``POST /admin/keys/generate``) and the desktop's key
dialogs both turn the user's answer into ``expires_at`` here, then hand it to ``KeyStore``, which
refuses a time that is not in the future.
"""

from __future__ import annotations

from pplex_desktop.core.errors import ValidationError

DAY_S = 86_400.0
# Ten years: longer is "never", which is said by leaving the expiry out (and 1e308 days would
# make an infinite time that JSON cannot carry).
MAX_EXPIRY_DAYS = 3650


def expiry_time(
    now: float, *, in_days: float | None = None, at: float | None = None
) -> float | None:
    """The wall-clock time a key stops working, or None for never; ``in_days`` wins over ``at``."""
    if in_days is not None:
        if not 0 < in_days <= MAX_EXPIRY_DAYS:
            raise ValidationError(
                f"expires_in_days must be above zero and at most {MAX_EXPIRY_DAYS} (ten years); "
                "leave it out for a key that never expires.",
                code="invalid_expiry",
            )
        return now + in_days * DAY_S
    if at is not None and at > now + MAX_EXPIRY_DAYS * DAY_S:
        raise ValidationError(
            f"expires_at must be at most {MAX_EXPIRY_DAYS} days (ten years) from now; leave it "
            "out for a key that never expires.",
            code="invalid_expiry",
        )
    return at
