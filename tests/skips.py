"""One rule for tests that cannot run on this machine: skip here, fail in CI.

On a developer's machine a missing tool (PulseAudio, Chromium, espeak-ng, the conformance
venv) skips its tests with the reason. In CI (``CI=true``, as CI services set it) the same
reason fails them: a tier that quietly stopped running would look green for good.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def skip_or_fail(reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Skip with ``reason``, or fail with it when running in CI."""
    __tracebackhide__ = True  # the report names the test's line, not this one
    if in_ci():
        pytest.fail(f"{reason} In CI (CI=true) this is a failure, not a skip.", pytrace=False)
    pytest.skip(reason, allow_module_level=allow_module_level)
