"""The skip-or-fail rule of tests/skips.py."""

from __future__ import annotations

import pytest

from tests.skips import in_ci, skip_or_fail


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_in_ci_a_missing_tool_fails_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match=r"^Chromium is missing\. In CI"):
        skip_or_fail("Chromium is missing.")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_elsewhere_a_missing_tool_skips_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception, match=r"^Chromium is missing\.$"):
        skip_or_fail("Chromium is missing.")
