"""G.711 (mu-law and A-law at 8 kHz), the telephony formats of the OpenAI Realtime API.

Tables are built once from the ITU-T G.711 segment rules, so a block costs two numpy lookups
and one streaming resample between 8 kHz and the model's 24 kHz (stdlib ``audioop`` is gone
from Python 3.13 and deprecated before it).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import soxr

from pplex_desktop.moshi.codec import SAMPLE_RATE, Pcm

Law = Literal["pcmu", "pcma"]
G711_RATE = 8_000
_ULAW_BIAS = 0x21  # in the 14-bit domain the encoder works in
_ULAW_CLIP = 8159
_ULAW_DECODE_BIAS = 0x84


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_DECODE_BIAS) << exponent) - _ULAW_DECODE_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    value = (code & 0x0F) << 4
    value = np.where(segment == 0, value + 8, value + 0x108)
    value = np.where(segment > 1, value << np.maximum(segment - 1, 0), value)
    return np.where(code & 0x80, value, -value).astype(np.int16)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # mu-law works on 14 bits
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.where(pcm < 0, -pcm, pcm), _ULAW_CLIP) + _ULAW_BIAS
    ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    segment = np.searchsorted(ends, magnitude, side="left")
    coded = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    coded = np.where(segment >= 8, 0x7F, coded)
    return ((coded ^ mask) & 0xFF).astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # A-law works on 13 bits
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1)
    # Segment ends of the 13-bit A-law curve: 0x1F, 0x3F, ... 0xFFF.
    segment = np.searchsorted(
        np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), magnitude, side="left"
    )
    shift = np.where(segment < 2, 1, segment)
    coded = (segment << 4) | ((magnitude >> shift) & 0x0F)
    coded = np.where(segment >= 8, 0x7F, coded)
    return ((coded ^ mask) & 0xFF).astype(np.uint8)


_DECODE = {"pcmu": _ulaw_decode_table(), "pcma": _alaw_decode_table()}
_ENCODE = {"pcmu": _ulaw_encode_table(), "pcma": _alaw_encode_table()}


def decode(law: Law, data: bytes) -> npt.NDArray[np.int16]:
    """G.711 bytes to 16-bit PCM at 8 kHz."""
    return _DECODE[law][np.frombuffer(data, dtype=np.uint8)]


def encode(law: Law, pcm: npt.NDArray[np.int16]) -> bytes:
    """16-bit PCM at 8 kHz to G.711 bytes."""
    return _ENCODE[law][pcm.astype(np.int32) + 32768].tobytes()


class G711Decoder:
    """A stream of G.711 bytes to the model's 24 kHz float PCM, resampled without seams."""

    def __init__(self, law: Law) -> None:
        self.law: Law = law
        self._resampler = soxr.ResampleStream(G711_RATE, SAMPLE_RATE, 1, dtype="float32")

    def decode(self, data: bytes) -> Pcm:
        pcm = decode(self.law, data).astype(np.float32) / np.float32(32768.0)
        out = self._resampler.resample_chunk(pcm)
        return np.asarray(out, dtype=np.float32).reshape(-1)


class G711Encoder:
    """The model's 24 kHz float PCM to a stream of G.711 bytes at 8 kHz."""

    def __init__(self, law: Law) -> None:
        self.law: Law = law
        self._resampler = soxr.ResampleStream(SAMPLE_RATE, G711_RATE, 1, dtype="float32")

    def encode(self, pcm: Pcm) -> bytes:
        narrow = np.asarray(self._resampler.resample_chunk(pcm), dtype=np.float32).reshape(-1)
        ints = (np.clip(narrow, -1.0, 1.0) * 32767.0).astype(np.int16)
        return encode(self.law, ints)
