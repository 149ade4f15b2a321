"""Screenshots of the real app in a real X window, for docs/screenshots/.

Starts its own Xvfb, builds the app exactly as ``pplex-desktop`` does (first launch in a fresh
data folder, so the welcome shows), chooses the demo backend, makes a few keys and some traffic,
and grabs each page and dialog with QWidget.grab() on Qt's xcb platform.

    .venv/bin/python -m bench.screenshots
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pplex_desktop.ui.shell import DesktopShell

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
WINDOW_SIZE = (1180, 760)
TIMEOUT_S = 30.0


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + TIMEOUT_S
    tick = QTimer()
    tick.start(20)  # wakes processEvents so the predicate is re-checked
    try:
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Timed out waiting for {what}.")
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 50)
    finally:
        tick.stop()


def settle() -> None:
    """Let layouts, style polish and a repaint happen before a grab."""
    from PySide6.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()


def shoot(widget: object, name: str) -> Path:
    from PySide6.QtWidgets import QWidget

    assert isinstance(widget, QWidget)
    settle()
    path = OUT / name
    if not widget.grab().save(str(path)):
        raise RuntimeError(f"Could not write {path}.")
    print(f"wrote {path.relative_to(OUT.parents[1])}")
    return path


def traffic(url: str, keys: list[str]) -> None:
    """Requests like a few clients would make, from another thread (the UI keeps painting)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(path: str, key: str | None = None) -> None:
        request = urllib.request.Request(url + path)
        if key is not None:
            request.add_header("X-API-Key", key)
        try:
            with opener.open(request, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.read()

    get("/healthz")
    get("/v1/voices")
    for key in keys:
        get("/v1/info", key)
    get(f"/v1/info?api_key={keys[0]}")
    get("/v1/info", "pplx_" + "0" * 46)
    get("/v1/info")
    get("/v1/info", keys[1])


def spoken(folder: Path) -> Any:
    """A sentence from espeak-ng at 24 kHz, so the microphone meter moves like a voice."""
    from pplex_desktop.moshi.audiofile import read_mono

    wav = folder / "voice.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(wav), "Hello! My bike makes a clicking noise when I brake."],
        check=True,
        timeout=30,
    )
    pcm = read_mono(wav)
    return 0.8 * pcm / max(float(abs(pcm).max()), 1e-6)


def talk(window: Any, audio: Any, tmp: Path) -> None:
    """The Talk page mid-conversation on the demo backend: one recording done, one call live."""
    from pplex_desktop.audio.events import ConversationState
    from pplex_desktop.audio.ptt import PttMode

    page = window.show_page("live")
    wait_until(page.connect_button.isEnabled, "the Talk page to be ready")
    audio.mic_pcm = spoken(tmp)
    audio.mic_amplitude = 1.0
    page.preset_combo.setCurrentIndex(3)  # the bike shop
    page.preset_combo.activated.emit(3)
    page.record_check.setChecked(True)

    def conversation(seconds: float) -> None:
        page.connect_button.click()
        wait_until(lambda: page.session.state is ConversationState.LIVE, "a live conversation")
        device = audio.device
        frames = round(seconds / 0.08)
        wait_until(lambda: device.received_samples >= frames * 1920, "the conversation")

    conversation(3.0)
    page.hangup_button.click()
    wait_until(lambda: not page.session.active, "the hang-up")
    wait_until(lambda: page.recordings.list.count() == 1, "the first recording")
    page.mode_buttons[PttMode.HOLD].click()
    conversation(1.0)
    page._press("button")  # the big button, held: the microphone is open
    wait_until(lambda: page.talking, "push-to-talk")
    device = audio.device
    frames = device.received_samples // 1920 + 110  # about 9 s: the transcript fills up
    wait_until(lambda: device.received_samples >= frames * 1920, "more conversation")
    shoot(window, "talk.png")
    page._release("button")
    page.hangup_button.click()
    wait_until(lambda: not page.session.active, "the second hang-up")


OFFLINE_SENTENCES = (
    ("question", "What time does the bike shop open on Saturdays?"),
    ("complaint", "My order arrived late and the box was damaged."),
    ("greeting", "Good morning, I would like to book a table for two."),
)


def recordings(folder: Path) -> list[Path]:
    """A few espeak-ng recordings, and a text file named like one."""
    folder.mkdir(parents=True)
    made = []
    for name, text in OFFLINE_SENTENCES:
        path = folder / f"{name}.wav"
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
        made.append(path)
    notes = folder / "notes.wav"
    notes.write_text("Remember to call the shop back.\n")
    return [*made, notes]


def shoot_offline(shell: DesktopShell, tmp: Path) -> None:
    """A batch in progress: two voices × three recordings, one file refused."""
    from pplex_desktop.core.personas import PRESETS
    from pplex_desktop.desktop.offline_record import ItemState
    from pplex_desktop.ui.offline.offline_panel import OfflinePanel

    page = shell.window.show_page("offline")
    assert isinstance(page, OfflinePanel)
    wait_until(lambda: page.queue.ready, "the offline page")
    runner = shell.services.server.runner
    assert runner is not None
    assert runner.demo is not None
    # Slower than the real time of the recordings, so the picture catches the batch mid-way.
    runner.demo.config = dataclasses.replace(runner.demo.config, frame_delay_s=0.1)
    page.form.tick(page.form.personas, [PRESETS[3].text])
    page.form.tick(page.form.voices, ["NATF2", "NATM1"])
    page.form.silence.setValue(2.0)
    files = recordings(tmp / "recordings")
    page.add_paths(files)

    def mid_way() -> bool:
        items = page.model.items()
        done = sum(1 for i in items if i.state is ItemState.DONE)
        running = [i for i in items if i.state is ItemState.RUNNING and i.progress >= 0.4]
        return done >= 2 and bool(running)

    wait_until(mid_way, "a batch half done")
    page.select(page.model.items()[0].id)
    shoot(shell.window, "offline.png")
    page.queue.cancel([i.id for i in page.model.items()])
    runner.demo.config = dataclasses.replace(runner.demo.config, frame_delay_s=0.0)


def main() -> int:
    from tests.journeys.harness import start_display

    xvfb = start_display()
    os.environ.update(DISPLAY=xvfb.name, QT_QPA_PLATFORM="xcb")
    os.environ.pop("PPLEX_ADMIN_SECRET", None)
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="pplex-shots-") as tmp:
            return run(Path(tmp))
    finally:
        xvfb.stop()


def run(tmp: Path) -> int:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from pplex_desktop.app import Options, open_services
    from pplex_desktop.core.settings import BackendConfig, Settings, save_settings
    from pplex_desktop.desktop.ui_state import APPLICATION, ORGANIZATION
    from pplex_desktop.gateway.server import GatewayState
    from pplex_desktop.ui.look import apply_look, use_scheme
    from pplex_desktop.ui.shell import DesktopShell, default_pages
    from tests.paced_audio import FakeAudio

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "qs"))
    app = QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    apply_look(app)
    data = tmp / "data"
    # A model server that is not there: the welcome's test fails and offers the demo.
    save_settings(data, Settings(backends=(BackendConfig("ws://gpu-box.local:8998"),)))
    services = open_services(Options(data_dir=data, port=0))
    audio = FakeAudio()  # no sound card under Xvfb: simulated devices that run in real time
    services.pages = default_pages(audio)
    shell = DesktopShell(services)
    window = shell.window
    window.move(0, 0)
    window.resize(*WINDOW_SIZE)
    shell.launch()

    wait_until(lambda: shell.welcome is not None, "the welcome dialog")
    welcome = shell.welcome
    assert welcome is not None
    wait_until(lambda: welcome.last_probe is not None, "the welcome's server test")
    shoot(welcome, "welcome.png")
    welcome.demo_button.click()
    wait_until(lambda: shell.gateway.view.state is GatewayState.RUNNING, "the gateway")

    store = shell.services.keystore
    made = [
        store.create("kitchen tablet", rpm=30).key,
        store.create("batch transcriber", rpm=120, max_sessions=2).key,
        store.create("Sam's phone", expires_at=time.time() + 30 * 86_400).key,
    ]
    old = store.create("old laptop")
    store.revoke(old.record.id)
    url = shell.gateway.view.url
    assert url is not None
    worker = threading.Thread(target=traffic, args=(url, made))
    worker.start()
    wait_until(lambda: not worker.is_alive(), "the sample traffic")
    wait_until(lambda: shell.counters.counts.requests_per_min >= 8, "the request counter")

    server = window.show_page("server")
    server.lan_switch.setChecked(True)  # type: ignore[attr-defined]
    # Since LAN serving moved to its own HTTPS site, plain HTTP stays on loopback.
    wait_until(lambda: shell.gateway.view.lan_address is not None, "LAN serving")
    wait_until(lambda: bool(shell.counters.backends), "the backends' status")
    shell.counters.refresh_usage()
    shoot(window, "server.png")

    keys = window.show_page("keys")
    wait_until(lambda: keys.proxy.rowCount() == 4, "the keys table")  # type: ignore[attr-defined]
    shoot(window, "keys.png")
    keys.new_button.click()  # type: ignore[attr-defined]
    dialog = keys.limits_dialog  # type: ignore[attr-defined]
    dialog.name_edit.setText("living-room speaker")
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    wait_until(lambda: keys.new_key_dialog is not None, "the new key")  # type: ignore[attr-defined]
    shoot(keys.new_key_dialog, "new-key.png")  # type: ignore[attr-defined]
    keys.new_key_dialog.reject()  # type: ignore[attr-defined]

    activity = window.show_page("activity")
    wait_until(lambda: activity.model.rowCount() >= 8, "the activity table")  # type: ignore[attr-defined]
    shoot(window, "activity.png")

    shoot_offline(shell, tmp)

    settings = shell.open_settings()
    settings.resize(780, 580)
    shoot(settings, "settings.png")
    settings.tabs.setCurrentIndex(2)
    shoot(settings, "settings-limits.png")
    settings.reject()

    talk(window, audio, tmp)

    # Xvfb has no desktop to ask for a colour scheme: show the dark palette directly.
    use_scheme(app, dark=True)
    window.show_page("server")
    shoot(window, "server-dark.png")

    done = threading.Event()
    shell.finished.connect(done.set)
    shell.quit()
    wait_until(done.is_set, "a graceful quit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
