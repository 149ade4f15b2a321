"""Ogg Opus stream encoder and decoder at 24 kHz: the only module that imports sphn.

One encoder and one decoder per direction per connection: a payload is a slice of one
continuous stream, so a decoder must never see bytes from two streams.
sphn 0.1 (pinned by PersonaPlex) and 0.2 (allowed by Kyutai) differ in API; both work here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import sphn

from pplex_desktop.moshi.ogg import FLAG_BOS, OggError, OggPageReader

SAMPLE_RATE = 24_000
FRAME_SAMPLES = 1_920
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
FRAME_RATE = SAMPLE_RATE / FRAME_SAMPLES

Pcm = npt.NDArray[np.float32]
EMPTY_PCM: Pcm = np.zeros(0, dtype=np.float32)


class CodecError(ValueError):
    """Audio that cannot be encoded, or bytes that are not an Ogg Opus stream."""


def _as_frame(pcm: npt.ArrayLike) -> Pcm:
    frame = np.ascontiguousarray(pcm, dtype=np.float32)
    if frame.ndim != 1 or frame.shape[0] != FRAME_SAMPLES:
        raise CodecError(
            f"An Opus frame must be {FRAME_SAMPLES} mono samples, got shape {frame.shape}."
        )
    if not np.all(np.isfinite(frame)):
        raise CodecError("The audio frame holds NaN or infinite samples.")
    return np.clip(frame, -1.0, 1.0)


class OpusEncoder:
    """PCM frames in, Ogg Opus bytes out; the first output carries the stream headers."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self._writer: Any = sphn.OpusStreamWriter(sample_rate)
        self.frames = 0

    def encode(self, pcm: npt.ArrayLike) -> bytes:
        frame = _as_frame(pcm)
        out = self._writer.append_pcm(frame)
        self.frames += 1
        if out is None:
            out = self._writer.read_bytes()
        return bytes(out)


class OpusDecoder:
    """Any slices of one Ogg Opus stream in, float PCM out (possibly empty)."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self._reader: Any = sphn.OpusStreamReader(sample_rate)
        self._pages = OggPageReader(check_crc=False)
        self._serial: int | None = None
        self.samples = 0

    def decode(self, data: bytes) -> Pcm:
        if not data:
            return EMPTY_PCM
        # sphn panics or raises on some malformed input; checking the page framing first turns
        # garbage into a clear error before it reaches native code.
        try:
            pages = self._pages.feed(data)
        except OggError as exc:
            raise CodecError(f"The audio is not a valid Ogg Opus stream: {exc}") from None
        for page in pages:
            if self._serial is None:
                if not (page.header_type & FLAG_BOS and page.is_opus_head):
                    raise CodecError(
                        "The audio stream does not begin with its OpusHead page: its start "
                        "was lost (was audio sent before the server's handshake?)."
                    )
                self._serial = page.serial
            elif page.serial != self._serial or page.header_type & FLAG_BOS:
                raise CodecError(
                    "A second Ogg stream was spliced into the first; each connection must "
                    "carry exactly one stream."
                )
        try:
            out = self._reader.append_bytes(data)
            if out is None:
                out = self._reader.read_pcm()
        except BaseException as exc:  # a Rust panic surfaces as PanicException(BaseException)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise CodecError(f"The Opus decoder rejected the stream: {exc}") from None
        pcm = np.asarray(out, dtype=np.float32).reshape(-1)
        self.samples += pcm.shape[0]
        return pcm
