"""Keep ALSA's own error lines off stderr and count its underruns instead.

alsa-lib prints "ALSA lib pcm.c:...: underrun occurred" to stderr through its error handler;
in a desktop app that is noise in the user's terminal, and the figure belongs in the Talk
page's stats. The handler is replaced, through ctypes, by one that counts underruns and drops
everything else. Only on Linux, only if libasound is there; nothing else changes otherwise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from typing import Any

_log = logging.getLogger(__name__)

# void (*)(const char *file, int line, const char *function, int err, const char *fmt, ...);
# the variable arguments are never read, so the fixed ones are all that is declared.
_HANDLER = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
)


class _AlsaErrors:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.underruns = 0
        # Kept for as long as the process lives: ALSA calls it from its own threads.
        self.handler: Any = None

    def on_error(
        self, _file: bytes | None, _line: int, _func: bytes | None, _err: int, fmt: bytes | None
    ) -> None:
        if fmt is not None and b"underrun" in fmt:
            with self.lock:
                self.underruns += 1


_state = _AlsaErrors()


def silence_alsa() -> bool:
    """Install the counting handler once; True if ALSA's messages are now ours."""
    with _state.lock:
        if _state.handler is not None:
            return True
        name = ctypes.util.find_library("asound")
        if name is None:
            return False
        try:
            lib = ctypes.CDLL(name)
            handler = _HANDLER(_state.on_error)
            lib.snd_lib_error_set_handler.argtypes = [_HANDLER]
            lib.snd_lib_error_set_handler.restype = ctypes.c_int
            if lib.snd_lib_error_set_handler(handler) != 0:
                return False
        except (OSError, AttributeError) as exc:
            _log.debug("ALSA's error messages stay as they are: %s", exc)
            return False
        _state.handler = handler
        return True


def underruns() -> int:
    """Underruns ALSA reported since the handler was installed."""
    with _state.lock:
        return _state.underruns
