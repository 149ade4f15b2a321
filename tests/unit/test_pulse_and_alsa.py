"""PulseAudio device names from pactl's JSON, and ALSA's error lines kept off stderr."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import pytest

from pplex_desktop.audio import audio_errors, pulse_devices
from pplex_desktop.audio.pulse_devices import PulseDevice, _parse, _unique_descriptions

PACTL_SOURCES = [
    {
        "name": "alsa_input.usb-headset.mono",
        "description": "USB Headset Mono",
        "sample_specification": "s16le 1ch 48000Hz",
    },
    {"name": "spk.monitor", "description": "Monitor of Null Output"},
    {"name": "mic.monitor", "description": "Monitor of Null Output"},
    {"description": "no name: skipped"},
    "not a device",
]


def test_sources_are_read_and_told_apart_by_name() -> None:
    found = _unique_descriptions(_parse(PACTL_SOURCES, "input"))
    assert [d.description for d in found] == [
        "USB Headset Mono",
        "Monitor of Null Output (spk.monitor)",
        "Monitor of Null Output (mic.monitor)",
    ]
    headset = found[0]
    assert (headset.rate, headset.channels) == (48_000, 1)
    assert headset.spec == "pulse:alsa_input.usb-headset.mono"
    assert pulse_devices.pulse_name(headset.spec) == headset.name
    assert pulse_devices.pulse_name("pulse:") is None and pulse_devices.pulse_name(3) is None
    assert _parse({"not": "a list"}, "output") == []


def test_the_variable_is_set_only_while_a_stream_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_SINK", "the-users-own")
    with pulse_devices.opening("PULSE_SINK", "spk"):
        assert os.environ["PULSE_SINK"] == "spk"
    assert os.environ["PULSE_SINK"] == "the-users-own"
    monkeypatch.delenv("PULSE_SOURCE", raising=False)
    with pulse_devices.opening("PULSE_SOURCE", "mic.monitor"):
        assert os.environ["PULSE_SOURCE"] == "mic.monitor"
    assert "PULSE_SOURCE" not in os.environ
    with pulse_devices.opening("PULSE_SOURCE", None):
        assert "PULSE_SOURCE" not in os.environ
    assert PulseDevice("x", "X", "output", 48_000, 2).spec == "pulse:x"


@pytest.mark.skipif(ctypes.util.find_library("asound") is None, reason="no libasound here")
def test_alsa_errors_reach_our_count_not_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    assert audio_errors.silence_alsa()
    lib = ctypes.CDLL(ctypes.util.find_library("asound"))
    handle = ctypes.c_void_p()
    # Opening a PCM that does not exist makes alsa-lib report through its error handler.
    assert lib.snd_pcm_open(ctypes.byref(handle), b"no_such_pcm_device", 0, 0) < 0
    assert "ALSA lib" not in capfd.readouterr().err
    before = audio_errors.underruns()
    audio_errors._state.on_error(b"pcm.c", 8740, b"snd_pcm_recover", -32, b"underrun occurred")
    audio_errors._state.on_error(b"pcm.c", 1, b"f", 0, b"Unknown PCM %s")
    assert audio_errors.underruns() == before + 1
