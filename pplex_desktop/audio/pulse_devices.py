"""PulseAudio's sources and sinks by their own names, for the device lists.

Through PortAudio, PulseAudio shows up as two ALSA devices, ``pulse`` and ``default``, which
always mean the system's default source and sink. To offer "Built-in Audio Analog Stereo" or a
headset by name, the lists come from ``pactl`` (the PulseAudio and PipeWire client that is
installed wherever either runs), and a chosen one is opened through the ``pulse`` device with
PULSE_SOURCE or PULSE_SINK set while PortAudio opens the stream: libpulse reads them when the
ALSA plugin connects. Nothing here is needed for sound to work; without pactl the lists are
just the PortAudio ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

_log = logging.getLogger(__name__)
PREFIX = "pulse:"  # a device spec naming a PulseAudio source or sink
PACTL_TIMEOUT_S = 5.0
# os.environ is process-wide: one stream opens at a time with its variable set.
_env_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class PulseDevice:
    name: str  # PulseAudio's name, e.g. "alsa_input.pci-0000_00_1f.3.analog-stereo"
    description: str  # what people read, e.g. "Built-in Audio Analog Stereo"
    kind: Literal["input", "output"]
    rate: int
    channels: int

    @property
    def spec(self) -> str:
        return PREFIX + self.name


def pulse_name(spec: object) -> str | None:
    """The PulseAudio name in a device spec made by ``PulseDevice.spec``, else None."""
    if isinstance(spec, str) and spec.startswith(PREFIX) and len(spec) > len(PREFIX):
        return spec[len(PREFIX) :]
    return None


def list_pulse_devices() -> list[PulseDevice]:
    """Sources, then sinks, as PulseAudio describes them; empty if it cannot be asked."""
    pactl = shutil.which("pactl")
    if pactl is None:
        return []
    found: list[PulseDevice] = []
    for what, kind in (("sources", "input"), ("sinks", "output")):
        try:
            run = subprocess.run(  # noqa: S603 - a fixed command, no input of anyone's
                [pactl, "-f", "json", "list", what],
                capture_output=True,
                text=True,
                timeout=PACTL_TIMEOUT_S,
                check=False,
            )
            items = json.loads(run.stdout) if run.returncode == 0 else []
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            _log.info("PulseAudio's devices are not listed by name: %s", exc)
            return []
        found.extend(_parse(items, "input" if kind == "input" else "output"))
    return _unique_descriptions(found)


def _parse(items: object, kind: Literal["input", "output"]) -> list[PulseDevice]:
    out: list[PulseDevice] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        spec = str(item.get("sample_specification", ""))  # "s16le 2ch 44100Hz"
        rate, channels = 48_000, 2
        for part in spec.split():
            if part.endswith("Hz") and part[:-2].isdigit():
                rate = int(part[:-2])
            elif part.endswith("ch") and part[:-2].isdigit():
                channels = int(part[:-2])
        description = str(item.get("description") or item["name"])
        out.append(PulseDevice(item["name"], description, kind, rate, channels))
    return out


def _unique_descriptions(devices: list[PulseDevice]) -> list[PulseDevice]:
    """Two "Null Output"s, or two identical headsets, are told apart by their names."""
    seen: dict[tuple[str, str], int] = {}
    for d in devices:
        seen[(d.kind, d.description)] = seen.get((d.kind, d.description), 0) + 1
    return [
        PulseDevice(d.name, f"{d.description} ({d.name})", d.kind, d.rate, d.channels)
        if seen[(d.kind, d.description)] > 1
        else d
        for d in devices
    ]


@contextlib.contextmanager
def opening(variable: str, name: str | None) -> Iterator[None]:
    """Set PULSE_SOURCE or PULSE_SINK to ``name`` while a stream opens (nothing if None)."""
    if name is None:
        yield
        return
    with _env_lock:
        previous = os.environ.get(variable)
        os.environ[variable] = name
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = previous
