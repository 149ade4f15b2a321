"""Drive the installed ``pplex-desktop`` as a person does: a real X server, real input events.

Everything here acts from outside the app: Xvfb is the screen, xdotool the keyboard and mouse,
``import`` the eyes, xclip the clipboard, PulseAudio null sinks the sound card. The app gets no
hook of any kind; what a journey checks is what a person or a client could see.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

SCREEN = (1440, 900)
TOOLS = ("Xvfb", "xdotool", "import", "xclip")
# What a journey allows the app for a graceful exit after SIGTERM, SIGINT or Quit.
EXIT_BUDGET_S = 5.0
START_TIMEOUT_S = 40.0
SHOTS_ENV = "PPLEX_JOURNEY_SCREENSHOTS"
# The README's pictures (docs/screenshots/NAME.png) that journeys re-make when SHOTS_ENV is set.
DOC_SHOTS = frozenset(
    {"welcome", "server", "talk", "offline", "keys", "new-key", "activity", "settings"}
)
T = TypeVar("T")
Pixels = npt.NDArray[np.uint8]
Region = tuple[int, int, int, int]  # x, y, width, height on the screen


class JourneyFailure(AssertionError):
    """What a person would have seen go wrong, as a sentence."""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def wait_until(
    probe: Callable[[], T | None], what: str, timeout: float = 15.0, every: float = 0.1
) -> T:
    """Poll ``probe`` until it returns something truthy; the app offers nothing to await.

    Polling is the only way to watch another process's screen, files or HTTP answers.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False and (isinstance(value, np.ndarray) or value):
            return value
        if time.monotonic() > deadline:
            raise JourneyFailure(f"Timed out after {timeout:g} s waiting for {what}.")
        time.sleep(every)


# -- the screen ----------------------------------------------------------------------------------


@dataclass
class Display:
    process: subprocess.Popen[bytes]
    name: str

    def env(self) -> dict[str, str]:
        return {"DISPLAY": self.name}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def start_display(timeout: float = 10.0) -> Display:
    """Xvfb on a display number it picks and locks itself, once it answers a client.

    ``-displayfd`` makes Xvfb take the first free number under its own lock and write it to a
    pipe when it accepts clients. Choosing a number ourselves and watching for its socket raced
    with other runs: a loser could see the winner's socket, believe it was its own, and hand the
    app a display that vanished with the other run.
    """
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            f"{SCREEN[0]}x{SCREEN[1]}x24",
            "-nolisten",
            "tcp",
            # An X server resets when its last client leaves and refuses connections meanwhile:
            # the app, started just after the check below or after an earlier app, lost that race.
            "-noreset",
        ],
        pass_fds=(write_fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        number = _read_display_number(read_fd, timeout)
        display = Display(process, f":{number}")
        _check_answers(display)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(5)
        raise
    return display


def _read_display_number(read_fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    text = b""
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while not text.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([pipe], [], [], max(left, 0.0))
            if not ready:
                raise RuntimeError(f"Xvfb did not open a display within {timeout:g} s.")
            chunk = pipe.read(16)
            if not chunk:
                raise RuntimeError("Xvfb exited before it opened a display.")
            text += chunk
    return text.decode().strip()


def _check_answers(display: Display) -> None:
    done = subprocess.run(
        ["xdotool", "getdisplaygeometry"],
        env={**os.environ, **display.env()},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    expected = f"{SCREEN[0]} {SCREEN[1]}"
    if done.returncode != 0 or done.stdout.strip() != expected:
        raise RuntimeError(
            f"Xvfb on {display.name} does not answer as the screen it should be: "
            f"{done.stdout.strip() or done.stderr.strip()!r}."
        )


class Screen:
    """Input events and screenshots on one X display."""

    def __init__(self, display: Display, shots: Path) -> None:
        self.display = display
        self.shots = shots
        self.published = os.environ.get(SHOTS_ENV)
        self._count = 0

    def _run(self, *argv: str, timeout: float = 10.0) -> str:
        done = subprocess.run(
            list(argv),
            env={**os.environ, **self.display.env()},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise JourneyFailure(
                f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed: {done.stderr.strip()}"
            )
        return done.stdout

    def xdotool(self, *args: str) -> str:
        return self._run("xdotool", *args)

    # -- input --

    def click(self, x: int, y: int, button: int = 1) -> None:
        self.move(x, y)
        self.xdotool("click", str(button))

    def move(self, x: int, y: int) -> None:
        # ``--sync`` waits for the pointer to move and never returns when it is there already
        # (the X server keeps it where the last journey left it: it runs with -noreset).
        if self.pointer() != (x, y):
            self.xdotool("mousemove", "--sync", str(x), str(y))

    def pointer(self) -> tuple[int, int]:
        where = dict(
            line.split("=", 1) for line in self.xdotool("getmouselocation", "--shell").split()
        )
        return int(where["X"]), int(where["Y"])

    def key(self, *keys: str) -> None:
        """Key chords as xdotool names them, e.g. ``ctrl+2``, ``Tab``, ``Return``."""
        self.xdotool("key", "--delay", "60", *keys)

    def key_down(self, key: str) -> None:
        self.xdotool("keydown", key)

    def key_up(self, key: str) -> None:
        self.xdotool("keyup", key)

    def type(self, text: str) -> None:
        self.xdotool("type", "--delay", "20", text)

    def clipboard(self) -> str:
        """The X clipboard's text, or "" while nobody owns it."""
        done = subprocess.run(
            ["xclip", "-o", "-selection", "clipboard", "-t", "UTF8_STRING"],
            env={**os.environ, **self.display.env()},
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout if done.returncode == 0 else ""

    # -- windows --

    def windows(self, name: str) -> list[str]:
        done = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", name],
            env={**os.environ, **self.display.env()},
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout.split()

    def window_named(self, name: str, timeout: float = 15.0) -> str:
        def found() -> str | None:
            ids = self.windows(name)
            return ids[-1] if ids else None

        return wait_until(found, f"a window '{name}'", timeout)

    def geometry(self, window: str) -> tuple[int, int, int, int]:
        """x, y, width, height of a window on the screen."""
        out = self.xdotool("getwindowgeometry", "--shell", window)
        values = dict(line.split("=", 1) for line in out.split() if "=" in line)
        return int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"])

    def focus(self, window: str) -> None:
        """Without a window manager the keyboard follows the pointer: point at the window."""
        x, y, w, h = self.geometry(window)
        self.move(x + w // 2, y + min(h - 5, 12))
        self.xdotool("windowfocus", "--sync", window)

    # -- eyes --

    def grab(self) -> Pixels:
        out = subprocess.run(
            ["import", "-window", "root", "-depth", "8", "rgb:-"],
            env={**os.environ, **self.display.env()},
            capture_output=True,
            timeout=20,
            check=True,
        ).stdout
        return np.frombuffer(out, dtype=np.uint8).reshape(SCREEN[1], SCREEN[0], 3)

    def shot(self, name: str, region: tuple[int, int, int, int] | None = None) -> Pixels:
        """A screenshot, kept under the test's folder (and published when SHOTS_ENV says where)."""
        pixels = self.grab()
        self._count += 1
        save_png(pixels, self.shots / f"{self._count:02d}-{name}.png")
        if self.published and region is not None and name in DOC_SHOTS:
            x, y, w, h = region
            save_png(pixels[y : y + h, x : x + w], Path(self.published) / f"{name}.png")
        return pixels

    def repaints(self, before: Pixels, what: str, timeout: float = 10.0) -> Pixels:
        """The next screenshot that differs from ``before``: the app is alive and drew ``what``."""

        def changed() -> Pixels | None:
            now = self.grab()
            return now if differs(before, now) else None

        return wait_until(changed, f"the screen to repaint after {what}", timeout, every=0.2)


def save_png(pixels: Pixels, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = pixels.shape[:2]
    subprocess.run(
        ["convert", "-size", f"{width}x{height}", "-depth", "8", "rgb:-", str(path)],
        input=np.ascontiguousarray(pixels).tobytes(),
        timeout=20,
        check=True,
    )


def differs(
    a: Pixels, b: Pixels, region: tuple[int, int, int, int] | None = None, min_px: int = 50
) -> bool:
    """At least ``min_px`` pixels changed (a caret blink alone is fewer)."""
    if region is not None:
        x, y, w, h = region
        a, b = a[y : y + h, x : x + w], b[y : y + h, x : x + w]
    return int(np.count_nonzero(np.any(a != b, axis=2))) >= min_px


def changed_share(a: Pixels, b: Pixels, region_a: Region, region_b: Region | None = None) -> float:
    """The share of pixels that differ between a region of ``a`` and one of ``b``."""
    one, two = crop(a, region_a), crop(b, region_b or region_a)
    changed = int(np.count_nonzero(np.any(one != two, axis=2)))
    return changed / int(one.shape[0] * one.shape[1])


def crop(pixels: Pixels, region: Region) -> Pixels:
    x, y, w, h = region
    return pixels[y : y + h, x : x + w]


def is_blank(pixels: Pixels, region: tuple[int, int, int, int] | None = None) -> bool:
    if region is not None:
        x, y, w, h = region
        pixels = pixels[y : y + h, x : x + w]
    flat = pixels.reshape(-1, 3)
    return len(np.unique(flat[:: max(1, len(flat) // 20000)], axis=0)) < 4


# -- the app ------------------------------------------------------------------------------------


def installed_command() -> Path:
    """The console script installed beside this Python, exactly what a user starts."""
    return Path(sys.executable).with_name("pplex-desktop")


@dataclass
class App:
    """One ``pplex-desktop`` process; its stderr goes to a file the journey reads."""

    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path
    screen: Screen
    started: float = field(default_factory=time.monotonic)
    exit_seconds: float | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 20.0, after: int = 0) -> str:
        def seen() -> str | None:
            log = self.log()
            if self.process.poll() is not None and text not in log[after:]:
                raise JourneyFailure(
                    f"The app exited ({self.process.returncode}) before logging {text!r}:\n"
                    + log[-3000:]
                )
            return log if text in log[after:] else None

        return wait_until(seen, f"the log line {text!r}", timeout)

    def window(self) -> str:
        def shown() -> str | None:
            if self.process.poll() is not None:
                raise JourneyFailure(
                    f"The app exited ({self.process.returncode}) before its window showed:\n"
                    + self.log()[-3000:]
                )
            ids = self.screen.windows("^pplex-desktop$")
            return ids[-1] if ids else None

        return wait_until(shown, "the main window", START_TIMEOUT_S)

    def gateway_url(self, timeout: float = 30.0) -> str:
        """From the log line a user reads too: 'The gateway listens on http://…'."""
        marker = "The gateway listens on "
        log = self.wait_log(marker, timeout)
        rest = log[log.rindex(marker) + len(marker) :]
        return rest.split()[0].rstrip(".,")

    def check_log(self) -> None:
        log = self.log()
        if "Traceback" in log:
            raise JourneyFailure("The app's log shows a traceback:\n" + log[-4000:])

    def stop(self, how: signal.Signals | None = signal.SIGTERM) -> float:
        """End the app (a signal, or ``None`` when the journey already quit it); seconds taken."""
        begin = time.monotonic()
        if how is not None and self.process.poll() is None:
            self.process.send_signal(how)
        try:
            code = self.process.wait(EXIT_BUDGET_S)
        except subprocess.TimeoutExpired:
            # Where it hangs: faulthandler prints every thread's stack to the log on SIGABRT.
            self.process.send_signal(signal.SIGABRT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            raise JourneyFailure(
                f"The app did not exit within {EXIT_BUDGET_S:g} s of "
                f"{how.name if how else 'Quit'}:\n" + self.log()[-12000:]
            ) from None
        self.exit_seconds = time.monotonic() - begin
        if code != 0:
            raise JourneyFailure(f"The app exited with {code}:\n" + self.log()[-3000:])
        self.check_log()
        return self.exit_seconds

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


SLOW_JOBS_ENV = "PPLEX_JOURNEY_SLOW_JOBS"  # seconds every thread-pool job of the app waits
SLOW_JOBS_DIR = Path(__file__).parent / "slow_jobs"  # its sitecustomize.py


def launch(
    screen: Screen,
    data_dir: Path,
    log_path: Path,
    home: Path,
    args: Sequence[str] = ("--demo",),
    env: dict[str, str] | None = None,
) -> App:
    """Start the installed command on ``data_dir``; UI state (QSettings) lives under ``home``."""
    command = installed_command()
    if not command.exists():
        raise JourneyFailure(f"{command} is not installed (pip install -e . in the venv).")
    full_env = {
        **os.environ,
        **screen.display.env(),
        "QT_QPA_PLATFORM": "xcb",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_RUNTIME_DIR": str(home / "run"),
        "PYTHONUNBUFFERED": "1",
        # A hung app is asked for every thread's stack (SIGABRT) before it is killed.
        "PYTHONFAULTHANDLER": "1",
        "NO_AT_BRIDGE": "1",
    }
    (home / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    full_env.pop("PPLEX_DATA_DIR", None)
    full_env.pop("PPLEX_DESKTOP_EXIT_WHEN_SHOWN", None)
    full_env.update(env or {})
    if full_env.get(SLOW_JOBS_ENV):
        # A probe for journeys that act before the app has done what they wait for.
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(SLOW_JOBS_DIR), full_env.get("PYTHONPATH", "")) if p
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(command), "--data-dir", str(data_dir), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
    return App(process, log_path, data_dir, screen)


@contextlib.contextmanager
def running(app: App) -> Iterator[App]:
    """Never leave an app behind, whatever the journey did."""
    try:
        yield app
    finally:
        app.kill()
