"""Start the installed ``moshi.server`` on a CPU, unmodified but for one CUDA call.

Run with the conformance venv's Python: ``python -I -u launch_server.py SERVER ARGS``.
The server's ``warmup()`` ends with ``torch.cuda.synchronize()`` whatever the device, which
raises on a machine without CUDA, so that call is made a no-op before the module runs. The
package on disk is left as PyPI ships it.
"""

from __future__ import annotations

import ctypes
import runpy
import signal
from typing import Any

import torch


def _no_sync(*_args: Any, **_kwargs: Any) -> None:
    return None


def _die_with_parent() -> None:
    """Linux only: if the test run is killed outright, take the server down with it."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


if __name__ == "__main__":
    torch.cuda.synchronize = _no_sync
    _die_with_parent()
    runpy.run_module("moshi.server", run_name="__main__", alter_sys=True)
