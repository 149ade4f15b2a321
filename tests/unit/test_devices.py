"""The sounddevice layer without a sound card: a stand-in PortAudio module drives the callbacks
from a thread of its own, as PortAudio does."""

from __future__ import annotations

import asyncio
import importlib.abc
import subprocess
import sys
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from pplex_desktop.audio import portaudio as devices
from pplex_desktop.audio.duplex import AudioUnavailableError, Played
from tests.signals import dominant_frequency, tone


class PortAudioError(Exception):
    pass


class FakeStream:
    def __init__(self, owner: FakeSd, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.started = self.closed = False
        owner.streams.append(self)

    def start(self) -> None:
        self.started = True

    def abort(self, ignore_errors: bool = True) -> None:
        self.started = False

    def close(self, ignore_errors: bool = True) -> None:
        self.closed = True
        finished = self.kwargs.get("finished_callback")
        if finished is not None:
            finished()


class FakeSd:
    """Just enough of the sounddevice module: devices, settings checks and streams."""

    PortAudioError = PortAudioError

    def __init__(
        self,
        devices: list[dict[str, Any]],
        default: tuple[int, int],
        rates: dict[int, set[int]],
        mono: bool = True,
    ) -> None:
        self.devices = devices
        self.default = default
        self.rates = rates
        self.mono = mono
        self.streams: list[FakeStream] = []
        self.initialised = 0

    def query_devices(self, device: Any = None, kind: str | None = None) -> Any:
        if device is None and kind is None:
            return self.devices
        if device is None:
            device = self.default[0 if kind == "input" else 1]
            if device < 0:
                raise PortAudioError(f"Error querying device {device}")
        if isinstance(device, str):
            found = [d for d in self.devices if device in d["name"]]
            if not found:
                raise ValueError(f"No {kind} device matching {device!r}")
            return found[0]
        return self.devices[device]

    def query_hostapis(self) -> Any:
        return ({"name": "ALSA"},)

    def _check(self, device: int, samplerate: int, channels: int, dtype: str) -> None:
        if samplerate not in self.rates[device] or (channels == 1 and not self.mono):
            raise PortAudioError("Invalid sample rate")

    check_input_settings = _check
    check_output_settings = _check

    def InputStream(self, **kwargs: Any) -> FakeStream:  # sounddevice's names
        return FakeStream(self, kind="input", **kwargs)

    def OutputStream(self, **kwargs: Any) -> FakeStream:
        return FakeStream(self, kind="output", **kwargs)

    def _terminate(self) -> None:
        self.initialised -= 1

    def _initialize(self) -> None:
        self.initialised += 1


def device(index: int, name: str, ins: int, outs: int, rate: float) -> dict[str, Any]:
    return {
        "index": index,
        "name": name,
        "hostapi": 0,
        "max_input_channels": ins,
        "max_output_channels": outs,
        "default_samplerate": rate,
    }


@pytest.fixture
def fake_sd(monkeypatch: pytest.MonkeyPatch) -> FakeSd:
    sd = FakeSd(
        [
            device(0, "USB headset", 2, 2, 48_000.0),
            device(1, "pulse", 32, 32, 44_100.0),
            device(2, "HDMI", 0, 8, 48_000.0),
        ],
        default=(1, 1),
        rates={0: {48_000}, 1: {24_000, 44_100}, 2: {48_000}},
    )
    monkeypatch.setattr(devices, "_sounddevice", lambda: sd)
    return sd


def test_list_devices_marks_defaults_and_filters(fake_sd: FakeSd) -> None:
    all_devices = devices.list_devices()
    assert [d.name for d in all_devices] == ["USB headset", "pulse", "HDMI"]
    pulse = all_devices[1]
    assert pulse.is_default_input and pulse.is_default_output
    assert pulse.default_samplerate == 44_100.0 and pulse.hostapi == "ALSA"
    assert [d.name for d in devices.list_devices("input")] == ["USB headset", "pulse"]
    assert [d.name for d in devices.list_devices("output")] == ["USB headset", "pulse", "HDMI"]


def test_refresh_reinitialises_portaudio(fake_sd: FakeSd) -> None:
    devices.refresh_devices()
    assert fake_sd.initialised == 0, "terminated once, initialised once"


def test_plan_prefers_24k_mono_then_the_device_rate_then_stereo(fake_sd: FakeSd) -> None:
    plan = devices._plan(fake_sd, None, "input")
    assert (plan.name, plan.rate, plan.channels) == ("pulse", 24_000, 1)
    plan = devices._plan(fake_sd, "USB", "output")
    assert (plan.index, plan.rate, plan.channels) == (0, 48_000, 1)
    fake_sd.mono = False
    plan = devices._plan(fake_sd, 2, "output")
    assert (plan.rate, plan.channels) == (48_000, 2)


def test_missing_devices_are_explained(fake_sd: FakeSd) -> None:
    fake_sd.default = (-1, 1)
    with pytest.raises(AudioUnavailableError, match="No microphone was found"):
        devices._plan(fake_sd, None, "input")
    with pytest.raises(AudioUnavailableError, match="'Jabra' was not found"):
        devices._plan(fake_sd, "Jabra", "output")
    with pytest.raises(AudioUnavailableError, match="cannot be used as a microphone"):
        devices._plan(fake_sd, 2, "input")
    fake_sd.rates[1] = {96_000}
    with pytest.raises(AudioUnavailableError, match="accepts neither 24 kHz"):
        devices._plan(fake_sd, 1, "output")


async def test_48k_device_is_resampled_on_the_loop_side(fake_sd: FakeSd) -> None:
    fake_sd.default = (0, 0)
    fake_sd.mono = False  # a headset that only opens in stereo
    dev = devices.SoundDeviceDuplex(jitter_target_ms=80)
    played: list[np.ndarray] = []
    reported = asyncio.Event()

    def on_played(block: Played) -> None:
        played.append(block.pcm)
        if sum(len(p) for p in played) >= 18_000:
            reported.set()

    await dev.start(on_played)
    assert "at 48000 Hz" in dev.description
    mic, spk = fake_sd.streams
    assert mic.kwargs["samplerate"] == 48_000 and mic.kwargs["blocksize"] == 3_840
    assert dev.jitter.sample_rate == 48_000

    # The microphone: stereo 48 kHz blocks from PortAudio's thread → 24 kHz mono on the loop.
    x48 = tone(440, 12 * 3_840 / 48_000, rate=48_000)

    def capture() -> None:
        for i in range(0, len(x48), 3_840):
            block = np.column_stack((x48[i : i + 3_840], np.zeros(3_840, np.float32)))
            mic.kwargs["callback"](block, 3_840, None, None)

    await asyncio.to_thread(capture)
    got = [(await dev.read()).pcm for _ in range(12)]
    y = np.concatenate(got)
    assert 21_000 < len(y) <= 24_000
    assert dominant_frequency(y[2_000:]) == pytest.approx(440, abs=3)

    # The speaker: 24 kHz model audio → 48 kHz stereo out of the callback, both channels.
    outs: list[np.ndarray] = []

    def render() -> None:
        for _ in range(4):  # 80 ms in 20 ms callbacks
            out = np.full((960, 2), 9.0, dtype=np.float32)
            spk.kwargs["callback"](out, 960, None, None)
            outs.append(out)

    model = tone(1_000, 0.8)
    for i in range(0, len(model), 1_920):
        dev.play(model[i : i + 1_920])
        await asyncio.to_thread(render)  # the callback's own thread, the loop free meanwhile
    out = np.concatenate(outs)
    np.testing.assert_array_equal(out[:, 0], out[:, 1])
    audible = out[np.flatnonzero(np.abs(out[:, 0]) > 0.1)[0] :, 0]
    assert len(audible) > 20_000
    assert dominant_frequency(audible, rate=48_000) == pytest.approx(1_000, abs=5)
    # What played comes back on the loop at 24 kHz, for the meters and the recording.
    await reported.wait()
    heard = np.concatenate(played)
    heard = heard[np.flatnonzero(np.abs(heard) > 0.1)[0] :]
    assert len(heard) > 10_000
    assert dominant_frequency(heard) == pytest.approx(1_000, abs=5)

    await dev.stop()
    assert all(s.closed for s in fake_sd.streams)


async def test_a_microphone_that_stops_by_itself_is_reported(fake_sd: FakeSd) -> None:
    dev = devices.SoundDeviceDuplex()
    await dev.start()
    mic = fake_sd.streams[0]
    await asyncio.to_thread(mic.kwargs["finished_callback"])
    with pytest.raises(AudioUnavailableError, match="stopped delivering audio"):
        await dev.read()
    await dev.stop()


async def test_a_stalled_reader_loses_the_oldest_blocks(fake_sd: FakeSd) -> None:
    dev = devices.SoundDeviceDuplex()
    await dev.start()
    mic = fake_sd.streams[0]

    def flood() -> None:
        for i in range(devices.MAX_QUEUED_INPUT_BLOCKS + 5):
            mic.kwargs["callback"](np.full((1_920, 1), i, np.float32), 1_920, None, None)

    await asyncio.to_thread(flood)
    first = (await dev.read()).pcm
    assert first[0] == 5, "the five oldest blocks were dropped"
    assert dev.stats().input_overflows == 5
    await dev.stop()


class _NoPortAudio(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: ModuleType | None = None) -> None:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")


def test_missing_portaudio_is_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    devices._sounddevice.cache_clear()
    try:
        with pytest.raises(AudioUnavailableError, match="install it") as info:
            devices.list_devices()
        assert info.value.code == "audio_unavailable"
    finally:
        devices._sounddevice.cache_clear()


def test_the_audio_package_imports_without_touching_sounddevice() -> None:
    code = (
        "import sys\n"
        "import pplex_desktop.audio.conversation, pplex_desktop.audio.portaudio, "
        "pplex_desktop.audio.fake, pplex_desktop.audio.recorder\n"
        "assert 'sounddevice' not in sys.modules, 'sounddevice was imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
