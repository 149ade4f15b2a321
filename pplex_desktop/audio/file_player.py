"""Playing a whole audio file on the default speaker (the Offline page's play buttons).

sounddevice is imported lazily, through ``devices``; reading the file and opening the stream
are blocking, so callers run ``play`` off the Qt thread. One file plays at a time: playing
another stops the first, as a media player's play button does.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import soundfile as sf

from pplex_desktop.audio.duplex import AudioUnavailableError
from pplex_desktop.audio.portaudio import _sounddevice, list_devices

# Nobody listens to an hour in a preview: longer files are cut (and the caller says so).
MAX_PLAY_S = 600.0
STEREO = 2


def output_problem() -> str | None:
    """Why no file can be played here, as a sentence; None when a speaker exists."""
    try:
        speakers = list_devices("output")
    except AudioUnavailableError as exc:
        return exc.message
    if not speakers:
        return "No sound output device was found; open the file in another player instead."
    return None


class FilePlayer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.playing: Path | None = None

    def play(self, path: Path) -> float:
        """Start playing ``path`` and return its length in seconds (blocking: off the Qt thread)."""
        try:
            with sf.SoundFile(str(path)) as handle:
                rate = handle.samplerate
                frames = min(handle.frames, int(MAX_PLAY_S * rate))
                data = handle.read(frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise AudioUnavailableError(f"'{path.name}' cannot be played: {exc}.") from None
        if data.shape[1] > STEREO:  # mixed down: not every speaker takes more
            data = np.ascontiguousarray(data.mean(axis=1, keepdims=True), dtype=np.float32)
        sd = _sounddevice()
        with self._lock:
            try:
                sd.play(data, rate)
            except (sd.PortAudioError, ValueError) as exc:
                raise AudioUnavailableError(
                    f"The speaker could not play '{path.name}': {exc}."
                ) from None
            self.playing = path
        return float(frames) / float(rate)

    def wait(self) -> None:
        """Block until the file has played out (off the Qt thread)."""
        if self.playing is not None:
            _sounddevice().wait()

    def stop(self) -> None:
        with self._lock:
            if self.playing is not None:
                _sounddevice().stop()
                self.playing = None
