"""The sound devices as the Talk page sees them: scan, open for a conversation, open to play.

One seam between the page and PortAudio, so tests and screenshots inject simulated devices and
the page never imports sounddevice (the audio package does, lazily). ``scan`` blocks (PortAudio
re-initialises on refresh): call it off the Qt thread. ``duplex`` and ``player`` only build
objects; they open nothing until the conversation loop starts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pplex_desktop.audio.duplex import DuplexDevice
from pplex_desktop.audio.portaudio import DeviceInfo, DeviceSpec


@dataclass(frozen=True, slots=True)
class DeviceScan:
    inputs: tuple[DeviceInfo, ...]
    outputs: tuple[DeviceInfo, ...]

    def problem(self) -> str | None:
        """Why no conversation is possible with these devices, as a sentence, or None."""
        if not self.inputs and not self.outputs:
            return (
                "No sound device was found: talking needs a microphone and a speaker. "
                "Connect a headset and press Refresh; the rest of the app works without one."
            )
        if not self.inputs:
            return "No microphone was found. Connect one and press Refresh to talk."
        if not self.outputs:
            return "No speaker was found. Connect headphones or speakers and press Refresh."
        return None


class FilePlayer(Protocol):
    async def play(self, path: Path) -> float: ...

    def stop(self) -> None: ...


class AudioSystem(Protocol):
    def scan(self, *, refresh: bool) -> DeviceScan:
        """The devices now; ``refresh`` re-scans the system first (hot-plug). Blocks; raises
        AudioUnavailableError when sound cannot work at all (PortAudio missing)."""
        ...

    def duplex(
        self, input_device: DeviceSpec, output_device: DeviceSpec, jitter_target_ms: float | None
    ) -> DuplexDevice:
        """Open nothing yet; ``jitter_target_ms`` None means the adaptive playback buffer."""
        ...

    def player(self, output_device: DeviceSpec) -> FilePlayer: ...


class SoundDeviceAudio:
    """The real thing: PortAudio through the audio package."""

    def scan(self, *, refresh: bool) -> DeviceScan:
        from pplex_desktop.audio.portaudio import list_devices, refresh_devices

        if refresh:
            refresh_devices()
        found = list_devices(pulse=True)
        return DeviceScan(
            inputs=tuple(d for d in found if d.is_input),
            outputs=tuple(d for d in found if d.is_output),
        )

    def duplex(
        self, input_device: DeviceSpec, output_device: DeviceSpec, jitter_target_ms: float | None
    ) -> DuplexDevice:
        from pplex_desktop.audio.portaudio import SoundDeviceDuplex

        return SoundDeviceDuplex(input_device, output_device, jitter_target_ms=jitter_target_ms)

    def player(self, output_device: DeviceSpec) -> FilePlayer:
        from pplex_desktop.audio.player import RecordingPlayer

        return RecordingPlayer(output_device)
