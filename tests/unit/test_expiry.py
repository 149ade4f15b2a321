"""One rule turns "in N days" or "at this time" into a key's expiry, for the admin API and the
desktop's key dialogs alike."""

from __future__ import annotations

import pytest

from pplex_desktop.core.errors import ValidationError
from pplex_desktop.core.expiry import DAY_S, expiry_time

NOW = 1_800_000_000.0


def test_days_count_from_now_and_win_over_a_time() -> None:
    assert expiry_time(NOW, in_days=2) == NOW + 2 * DAY_S
    assert expiry_time(NOW, in_days=0.5, at=NOW + 99) == NOW + DAY_S / 2


def test_a_time_is_kept_as_given_and_nothing_means_never() -> None:
    assert expiry_time(NOW, at=NOW + 60) == NOW + 60
    assert expiry_time(NOW) is None


@pytest.mark.parametrize("days", [0, -1, -0.5])
def test_days_that_are_not_ahead_are_refused_with_a_sentence(days: float) -> None:
    with pytest.raises(ValidationError) as caught:
        expiry_time(NOW, in_days=days)
    assert caught.value.code == "invalid_expiry"
    assert caught.value.message == (
        "expires_in_days must be above zero and at most 3650 (ten years); leave it out for a "
        "key that never expires."
    )
