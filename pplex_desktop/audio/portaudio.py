"""Real sound devices through sounddevice (PortAudio), imported lazily.

The PortAudio callbacks run on PortAudio's own threads. They copy one block and hand it to the
asyncio loop with ``call_soon_threadsafe``; they never block, log or do heavy work. Resampling,
when the device cannot run at 24 kHz, happens on the loop side, never in a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import soxr

from pplex_desktop.audio import audio_errors, pulse_devices
from pplex_desktop.audio.duplex import (
    AudioUnavailableError,
    Captured,
    DeviceStats,
    Pcm,
    Played,
    PlayedCallback,
)
from pplex_desktop.audio.jitter import ADAPTIVE, JitterBuffer
from pplex_desktop.audio.stamps import SampleClock
from pplex_desktop.moshi.codec import FRAME_SECONDS, SAMPLE_RATE

_log = logging.getLogger(__name__)
Kind = Literal["input", "output"]
DeviceSpec = int | str | None
# About 2.5 s of microphone blocks: beyond that the loop has stalled and old audio is useless.
MAX_QUEUED_INPUT_BLOCKS = 32


@functools.cache
def _sounddevice() -> Any:
    # Before PortAudio loads and probes every ALSA device (which prints a dozen error lines):
    # ALSA's messages go to our stats from now on, not the terminal.
    audio_errors.silence_alsa()
    try:
        import sounddevice
    except OSError:
        raise AudioUnavailableError(
            "PortAudio, the library that reaches sound devices, is not installed; install it "
            "(on Debian or Ubuntu: sudo apt install libportaudio2) and restart the app."
        ) from None
    return sounddevice


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    index: int
    name: str
    hostapi: str
    default_samplerate: float
    input_channels: int
    output_channels: int
    is_default_input: bool
    is_default_output: bool
    pulse_name: str | None = None  # a PulseAudio source or sink, opened through "pulse"

    @property
    def spec(self) -> DeviceSpec:
        """What to pass as a device to open this one."""
        return pulse_devices.PREFIX + self.pulse_name if self.pulse_name else self.index

    @property
    def is_input(self) -> bool:
        return self.input_channels > 0

    @property
    def is_output(self) -> bool:
        return self.output_channels > 0


def refresh_devices() -> None:
    """Re-scan the system's devices (hot-plug); PortAudio only looks when it initialises.

    Streams still open are invalidated, so call this only while no conversation is running.
    """
    sd = _sounddevice()
    sd._terminate()
    sd._initialize()


def list_devices(kind: Kind | None = None, *, pulse: bool = False) -> list[DeviceInfo]:
    """Every device PortAudio knows, or only those with inputs or outputs; with ``pulse``,
    followed by PulseAudio's sources and sinks by name when PortAudio reaches PulseAudio."""
    sd = _sounddevice()
    try:
        raw = sd.query_devices()
        hostapis = sd.query_hostapis()
    except sd.PortAudioError as exc:
        raise AudioUnavailableError(f"The sound devices could not be listed: {exc}.") from None
    default_in, default_out = _default_indices(sd)
    devices = [
        DeviceInfo(
            index=int(d["index"]),
            name=str(d["name"]),
            hostapi=str(hostapis[d["hostapi"]]["name"]),
            default_samplerate=float(d["default_samplerate"]),
            input_channels=int(d["max_input_channels"]),
            output_channels=int(d["max_output_channels"]),
            is_default_input=int(d["index"]) == default_in,
            is_default_output=int(d["index"]) == default_out,
        )
        for d in raw
    ]
    through = next((d for d in devices if d.name == "pulse"), None)
    if pulse and through is not None:
        devices += [
            DeviceInfo(
                index=through.index,
                name=p.description,
                hostapi="PulseAudio",
                default_samplerate=float(p.rate),
                input_channels=p.channels if p.kind == "input" else 0,
                output_channels=p.channels if p.kind == "output" else 0,
                is_default_input=False,
                is_default_output=False,
                pulse_name=p.name,
            )
            for p in pulse_devices.list_pulse_devices()
        ]
    if kind == "input":
        return [d for d in devices if d.is_input]
    if kind == "output":
        return [d for d in devices if d.is_output]
    return devices


def _default_indices(sd: Any) -> tuple[int, int]:
    result: list[int] = []
    for kind in ("input", "output"):
        try:
            result.append(int(sd.query_devices(None, kind)["index"]))
        except (ValueError, sd.PortAudioError):
            result.append(-1)
    return result[0], result[1]


@dataclass(frozen=True, slots=True)
class _StreamPlan:
    index: int
    name: str
    rate: int
    channels: int
    pulse: str | None = None  # the PulseAudio source or sink to set while opening

    def opening(self, kind: Kind) -> contextlib.AbstractContextManager[None]:
        variable = "PULSE_SOURCE" if kind == "input" else "PULSE_SINK"
        return pulse_devices.opening(variable, self.pulse)


def _plan(sd: Any, device: DeviceSpec, kind: Kind) -> _StreamPlan:
    """Pick 24 kHz mono if the device takes it, else its own rate, and one or two channels."""
    what = "microphone" if kind == "input" else "speaker"
    named = pulse_devices.pulse_name(device)
    if named is not None:
        # PulseAudio's own source or sink, through its ALSA device.
        plan = _plan(sd, "pulse", kind)
        return _StreamPlan(plan.index, named, plan.rate, plan.channels, named)
    try:
        info = sd.query_devices(device, kind)
    except (ValueError, sd.PortAudioError):
        if device is None:
            raise AudioUnavailableError(
                f"No {what} was found; connect one, or pick another device in the settings."
            ) from None
        raise AudioUnavailableError(
            f"The {what} '{device}' was not found; it may have been unplugged. "
            "Refresh the device list and pick another one."
        ) from None
    max_channels = int(info[f"max_{kind}_channels"])
    name = str(info["name"])
    if max_channels < 1:
        raise AudioUnavailableError(f"'{name}' cannot be used as a {what}; pick another device.")
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    index = int(info["index"])
    rates = dict.fromkeys((SAMPLE_RATE, round(float(info["default_samplerate"]))))
    for rate in rates:
        for channels in dict.fromkeys((1, min(2, max_channels))):
            try:
                check(
                    device=int(info["index"]), samplerate=rate, channels=channels, dtype="float32"
                )
            except sd.PortAudioError:
                continue
            return _StreamPlan(index, name, rate, channels)
    raise AudioUnavailableError(
        f"The {what} '{name}' accepts neither 24 kHz nor its own default rate; pick another."
    )


class SoundDeviceDuplex:
    """A microphone and a speaker opened as two PortAudio streams (they may be different cards)."""

    def __init__(
        self,
        input_device: DeviceSpec = None,
        output_device: DeviceSpec = None,
        *,
        jitter_target_ms: float | None = ADAPTIVE,
        input_latency: float | str = "low",
        output_latency: float | str = 0.04,
    ) -> None:
        self._input_device = input_device
        self._output_device = output_device
        self._jitter = JitterBuffer(target_ms=jitter_target_ms)
        self._input_latency = input_latency
        self._output_latency = output_latency
        self._queue: asyncio.Queue[Captured | None] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_played: PlayedCallback | None = None
        self._in_stream: Any = None
        self._out_stream: Any = None
        self._in_plan: _StreamPlan | None = None
        self._out_plan: _StreamPlan | None = None
        self._in_resampler: Any = None
        self._out_resampler: Any = None
        self._played_resampler: Any = None
        self._stopping = False
        self._in_clock = SampleClock(SAMPLE_RATE)
        self._out_clock = SampleClock(SAMPLE_RATE)
        self._overflows = 0
        self._underflows = 0
        self._alsa_underruns = 0

    @property
    def jitter(self) -> JitterBuffer:
        return self._jitter

    @property
    def description(self) -> str:
        if self._in_plan is None or self._out_plan is None:
            return "sound devices not opened yet"
        return (
            f"microphone '{self._in_plan.name}' at {self._in_plan.rate} Hz, "
            f"speaker '{self._out_plan.name}' at {self._out_plan.rate} Hz"
        )

    async def start(self, on_played: PlayedCallback | None = None) -> None:
        if self._in_stream is not None:
            raise RuntimeError("The sound device is already started.")
        sd = _sounddevice()
        self._loop = asyncio.get_running_loop()
        self._on_played = on_played
        self._stopping = False
        in_plan = _plan(sd, self._input_device, "input")
        out_plan = _plan(sd, self._output_device, "output")
        self._in_plan, self._out_plan = in_plan, out_plan
        if out_plan.rate != SAMPLE_RATE:
            old = self._jitter
            self._jitter = JitterBuffer(
                sample_rate=out_plan.rate, target_ms=ADAPTIVE if old.adaptive else old.target_ms
            )
            self._jitter.gain = old.gain
            self._out_resampler = soxr.ResampleStream(SAMPLE_RATE, out_plan.rate, 1, "float32")
            self._played_resampler = soxr.ResampleStream(out_plan.rate, SAMPLE_RATE, 1, "float32")
        if in_plan.rate != SAMPLE_RATE:
            self._in_resampler = soxr.ResampleStream(in_plan.rate, SAMPLE_RATE, 1, "float32")
        try:
            # Opening takes tens of milliseconds with some host APIs; keep the loop responsive.
            await asyncio.to_thread(self._open, sd, in_plan, out_plan)
        except sd.PortAudioError as exc:
            await self.stop()
            raise AudioUnavailableError(
                f"The sound devices could not be opened ({exc}); check that no other program "
                "holds them exclusively, or pick others."
            ) from None
        _log.info("Opened the %s.", self.description)

    def _open(self, sd: Any, in_plan: _StreamPlan, out_plan: _StreamPlan) -> None:
        self._in_clock = SampleClock(in_plan.rate)
        self._out_clock = SampleClock(out_plan.rate)
        with in_plan.opening("input"):
            self._open_input(sd, in_plan)
        with out_plan.opening("output"):
            self._open_output(sd, out_plan)
        # The speaker plays a block this long after its callback. No such term for the
        # microphone: PortAudio's own ADC times put a block's first sample one block before
        # its callback, which the sample count already says; its reported input latency (two
        # periods) would count that block twice.
        self._out_clock.latency_s = _latency(self._out_stream)
        self._in_stream.start()
        self._out_stream.start()

    def _open_input(self, sd: Any, in_plan: _StreamPlan) -> None:
        self._in_stream = sd.InputStream(
            device=in_plan.index,
            samplerate=in_plan.rate,
            channels=in_plan.channels,
            dtype="float32",
            # One model frame per block: the frame is complete only when its last sample is in
            # anyway, and bigger blocks mean fewer wake-ups.
            blocksize=round(in_plan.rate * FRAME_SECONDS),
            latency=self._input_latency,
            callback=self._input_callback,
            finished_callback=self._input_finished,
        )

    def _open_output(self, sd: Any, out_plan: _StreamPlan) -> None:
        self._out_stream = sd.OutputStream(
            device=out_plan.index,
            samplerate=out_plan.rate,
            channels=out_plan.channels,
            dtype="float32",
            latency=self._output_latency,
            callback=self._output_callback,
        )

    # PortAudio threads: copy, hand over, return.

    def _input_callback(self, indata: Any, frames: int, _time: Any, status: Any) -> None:
        arrival = time.monotonic()
        overflow = bool(status and status.input_overflow)
        if overflow:
            self._overflows += 1
        clock = self._in_clock
        t = clock.stamp(arrival, frames, completed=True, skipped=overflow) - clock.latency_s
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed while we were stopping
                loop.call_soon_threadsafe(self._deliver, indata[:, 0].copy(), t)

    def _input_finished(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._input_ended)

    def _output_callback(self, outdata: Any, frames: int, _time: Any, status: Any) -> None:
        arrival = time.monotonic()
        underflow = bool(status and status.output_underflow)
        if underflow:
            self._underflows += 1
        alsa = audio_errors.underruns()
        underflow = underflow or alsa != self._alsa_underruns
        self._alsa_underruns = alsa
        mono = outdata[:, 0]
        position, taken = self._jitter.pull_into(mono)
        if outdata.shape[1] > 1:
            outdata[:, 1:] = outdata[:, :1]
        clock = self._out_clock
        t = clock.stamp(arrival, frames, completed=False, skipped=underflow) + clock.latency_s
        loop = self._loop
        if loop is not None and self._on_played is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._played, mono.copy(), t, position, taken)

    # The loop's side.

    def _deliver(self, block: Pcm, t: float) -> None:
        if self._stopping:
            return
        if self._in_resampler is not None:
            block = np.asarray(self._in_resampler.resample_chunk(block), dtype=np.float32)
        if self._queue.qsize() >= MAX_QUEUED_INPUT_BLOCKS:
            # The reader fell behind: drop the oldest so the model hears the present.
            self._queue.get_nowait()
            self._overflows += 1
        self._queue.put_nowait(Captured(block, t))

    def _input_ended(self) -> None:
        if not self._stopping:
            self._queue.put_nowait(None)

    def _played(self, block: Pcm, t: float, position: int, taken: int) -> None:
        on_played = self._on_played
        if on_played is None or self._stopping:
            return
        if self._played_resampler is not None:
            # Positions count samples at the device's rate; the model's are at 24 kHz.
            ratio = SAMPLE_RATE / self._jitter.sample_rate
            position, taken = round(position * ratio), round(taken * ratio)
            block = np.asarray(self._played_resampler.resample_chunk(block), dtype=np.float32)
        if block.size:
            on_played(Played(block, t, position, min(taken, block.size)))

    async def read(self) -> Captured:
        block = await self._queue.get()
        if block is None:
            raise AudioUnavailableError(
                "The microphone stopped delivering audio; it may have been unplugged."
            )
        return block

    def discard_input(self) -> None:
        while not self._queue.empty():
            if self._queue.get_nowait() is None:
                self._queue.put_nowait(None)
                return

    def play(self, pcm: Pcm) -> None:
        if self._out_resampler is not None:
            pcm = np.asarray(self._out_resampler.resample_chunk(pcm), dtype=np.float32)
        self._jitter.push(pcm)

    def stats(self) -> DeviceStats:
        return DeviceStats(
            input_overflows=self._overflows,
            output_underflows=self._underflows,
            input_rate=self._in_plan.rate if self._in_plan else SAMPLE_RATE,
            output_rate=self._out_plan.rate if self._out_plan else SAMPLE_RATE,
        )

    async def stop(self) -> None:
        self._stopping = True
        self._on_played = None
        streams = [s for s in (self._in_stream, self._out_stream) if s is not None]
        self._in_stream = self._out_stream = None
        if streams:
            await asyncio.to_thread(_close_streams, streams)
            _log.info("Closed the sound devices.")


def _latency(stream: Any) -> float:
    try:
        value = float(stream.latency)
    except (AttributeError, TypeError, ValueError):
        return 0.0
    return value if 0.0 <= value < 2.0 else 0.0


def _close_streams(streams: list[Any]) -> None:
    for stream in streams:
        # abort() drops what is queued instead of waiting for it to play out.
        with contextlib.suppress(Exception):
            stream.abort(ignore_errors=True)
        stream.close(ignore_errors=True)
