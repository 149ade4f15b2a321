"""Shared pieces of the hostile-input and backend-fault tests.

The gateway fixtures come from the gateway tier (a real gateway in front of a real pplex-sim);
test modules import them from here. ``Witness`` keeps every answer body and log line of a test
so it can prove that no key or admin secret was ever repeated.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
import numpy as np
import pytest

from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.codec import FRAME_SAMPLES, OpusEncoder
from tests.gateway.conftest import ADMIN_SECRET, Gateway, GatewayFactory, gateway, make_gateway
from tests.gateway.hostile import wav_bytes

__all__ = [
    "ADMIN_SECRET",
    "CJK_PERSONA",
    "Gateway",
    "GatewayFactory",
    "Witness",
    "gateway",
    "make_gateway",
    "multipart",
    "native_audio",
    "tiny_wav",
    "wav_bytes",
    "witness",
]

# 1,000 CJK characters: under the 2,000-character limit, 9,000 bytes once percent-encoded,
# longer than the model server's whole 8,190-byte request line.
CJK_PERSONA = "你" * 1000


@dataclass
class Witness:
    """Answers and log lines seen during a test, and the secrets none of them may contain."""

    caplog: pytest.LogCaptureFixture
    secrets: list[str] = field(default_factory=lambda: [ADMIN_SECRET])
    # 5xx statuses a test provokes on purpose (a model server that refuses everything is a bad
    # gateway), and none else.
    expected_5xx: set[int] = field(default_factory=set)
    bodies: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def secret(self, value: str) -> str:
        self.secrets.append(value)
        return value

    async def read(self, resp: aiohttp.ClientResponse) -> str:
        text = await resp.text(errors="replace")
        self.bodies.append(text)
        self.statuses.append(resp.status)
        return text

    def log_lines(self) -> list[str]:
        return [r.getMessage() for r in self.caplog.records]

    def check(self) -> None:
        server_errors = [s for s in self.statuses if s >= 500 and s not in self.expected_5xx]
        assert server_errors == [], f"server errors: {server_errors}"
        lines = self.log_lines()
        for secret in self.secrets:
            for text in self.bodies + lines:
                assert secret not in text, f"a secret was repeated in {text[:200]!r}"


@pytest.fixture
def witness(caplog: pytest.LogCaptureFixture) -> Iterator[Witness]:
    caplog.set_level(logging.DEBUG)
    seen = Witness(caplog)
    yield seen
    seen.check()


async def multipart(audio: bytes, filename: str = "input.wav", **fields: str) -> tuple[bytes, str]:
    """A multipart/form-data body with one 'audio' file, as bytes and its Content-Type."""
    writer = aiohttp.MultipartWriter("form-data")
    for name, value in fields.items():
        part = writer.append(value)
        part.set_content_disposition("form-data", name=name)
    part = writer.append(audio)
    part.set_content_disposition("form-data", name="audio", filename=filename)
    buffer = io.BytesIO()

    class _Sink:
        async def write(self, data: bytes) -> None:
            buffer.write(data)

    await writer.write(_Sink())  # type: ignore[arg-type]
    return buffer.getvalue(), writer.content_type


def native_audio(frames: int) -> list[bytes]:
    """Kind-0x01 messages of a real Ogg Opus stream, one 80 ms frame each."""
    encoder = OpusEncoder()
    t = np.arange(FRAME_SAMPLES) / 24_000
    return [
        proto.encode(proto.Audio(encoder.encode(0.2 * np.sin(2 * np.pi * 330 * t + i))))
        for i in range(frames)
    ]


def tiny_wav(seconds: float = 0.2) -> bytes:
    return wav_bytes(data=b"\1\0" * int(24_000 * seconds))
