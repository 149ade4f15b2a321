"""Simulated sound devices that run by themselves in real time, for the Talk page's tests and
screenshots: every 80 ms the "microphone" delivers a block and the "speaker" takes one, as a
sound card's clock would make them. The test sets what the microphone hears (``mic_amplitude``)
from its own thread; a float assignment is atomic, so no lock is needed.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import soundfile as sf

from pplex_desktop.audio.duplex import AudioUnavailableError, Pcm, PlayedCallback
from pplex_desktop.audio.fake import FakeDuplexDevice
from pplex_desktop.audio.jitter import JitterBuffer
from pplex_desktop.audio.portaudio import DeviceInfo, DeviceSpec
from pplex_desktop.desktop.live_audio import DeviceScan, FilePlayer
from pplex_desktop.moshi.codec import FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE

MIC = DeviceInfo(0, "Simulated headset microphone", "Test", 48_000.0, 1, 0, True, False)
SPEAKER = DeviceInfo(1, "Simulated headset speaker", "Test", 48_000.0, 0, 2, False, True)


class PacedFakeDevice(FakeDuplexDevice):
    def __init__(self, jitter: JitterBuffer, *, mic_hz: float = 440.0) -> None:
        super().__init__(jitter)
        self.mic_amplitude = 0.0  # 0: a silent room; set from any thread
        self.mic_hz = mic_hz
        self.mic_pcm: Pcm | None = None  # if set, the microphone hears this, over and over
        self.played: list[Pcm] = []
        self._phase = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._next = 0.0

    async def start(self, on_played: PlayedCallback | None = None) -> None:
        await super().start(on_played)
        self._loop = asyncio.get_running_loop()
        self._next = self._loop.time()
        self._tick()

    def _tick(self) -> None:
        assert self._loop is not None
        n = np.arange(self._phase, self._phase + FRAME_SAMPLES)
        self._phase += FRAME_SAMPLES
        source = self.mic_pcm
        if source is not None and source.size:
            block = self.mic_amplitude * source[n % source.size]
        else:
            block = self.mic_amplitude * np.sin(2 * math.pi * self.mic_hz * n / SAMPLE_RATE)
        # Stamped on the same grid: the block just completed, and the speaker plays from now.
        self.inject(block.astype(np.float32), self._next - FRAME_SECONDS)
        self.played.append(self.pull(FRAME_SAMPLES, self._next))
        # Scheduled on the ideal grid, not "80 ms from now": a late tick must not slow the clock.
        self._next += FRAME_SECONDS
        self._timer = self._loop.call_at(self._next, self._tick)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await super().stop()

    def recent_received(self, frames: int) -> Pcm:
        """The model's last ``frames`` frames as they arrived (a copy, safe from any thread)."""
        chunks = self.received[-(frames + 1) :]  # a slice copies: safe from any thread
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return pcm[-frames * FRAME_SAMPLES :]


class FakePlayer:
    """Plays a file by waiting as long as it lasts (or until stopped)."""

    def __init__(self, log: list[Path]) -> None:
        self._log = log
        self._stop = asyncio.Event()

    async def play(self, path: Path) -> float:
        seconds = float(sf.info(str(path)).duration)
        self._log.append(path)
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return seconds
        return 0.0

    def stop(self) -> None:
        self._stop.set()


class FakeAudio:
    """An AudioSystem with one simulated headset, or none (``unavailable``/``no_devices``)."""

    def __init__(self, *, unavailable: str | None = None, no_devices: bool = False) -> None:
        self.unavailable = unavailable
        self.no_devices = no_devices
        self.devices: list[PacedFakeDevice] = []
        self.opened: list[tuple[DeviceSpec, DeviceSpec, float | None]] = []
        self.played: list[Path] = []
        self.scans = 0
        self.mic_amplitude = 0.0  # what each new device's microphone hears at first
        self.mic_pcm: Pcm | None = None

    def scan(self, *, refresh: bool) -> DeviceScan:
        self.scans += 1
        if self.unavailable is not None:
            raise AudioUnavailableError(self.unavailable)
        if self.no_devices:
            return DeviceScan((), ())
        return DeviceScan((MIC,), (SPEAKER,))

    def duplex(
        self, input_device: DeviceSpec, output_device: DeviceSpec, jitter_target_ms: float | None
    ) -> PacedFakeDevice:
        if self.unavailable is not None:
            raise AudioUnavailableError(self.unavailable)
        self.opened.append((input_device, output_device, jitter_target_ms))
        device = PacedFakeDevice(JitterBuffer(target_ms=jitter_target_ms))
        device.mic_amplitude = self.mic_amplitude
        device.mic_pcm = self.mic_pcm
        self.devices.append(device)
        return device

    def player(self, output_device: DeviceSpec) -> FilePlayer:
        return FakePlayer(self.played)

    @property
    def device(self) -> PacedFakeDevice:
        assert self.devices, "no conversation has opened the devices yet"
        return self.devices[-1]
