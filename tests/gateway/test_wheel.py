"""A wheel built from the checkout ships the resources: the talk page, icons and styles.

resources/ sits at the top of the repository and is mapped onto ``pplex_desktop.resources``
by setup.py; a mistake there shows only in an installed copy, never in the editable one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADMIN_SECRET = "wheel-test-admin-secret-0123"


@pytest.mark.timeout(300)
def test_an_installed_wheel_serves_the_talk_page_and_has_its_icons_and_styles(
    tmp_path: Path,
) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", str(wheels)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = wheels.glob("pplex_desktop-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in (
        "pplex_desktop/resources/web/index.html",
        "pplex_desktop/resources/web/talk.js",
        "pplex_desktop/resources/icons/pplex.svg",
        "pplex_desktop/resources/styles/app.qss",
        "pplex_desktop/py.typed",
    ):
        assert shipped in names, f"{shipped} is missing from the wheel"
    assert not any(n.startswith(("resources/", "tests/")) for n in names)

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), wheel],
        check=True,
        capture_output=True,
        timeout=120,
    )
    # The installed copy first on the path; its dependencies from this environment.
    env = {**os.environ, "PYTHONPATH": str(site), "PPLEX_ADMIN_SECRET": ADMIN_SECRET}
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pplex_desktop, pplex_desktop.ui.look as look; "
            "print(pplex_desktop.__file__); "
            "print(len(look.resource('icons', 'pplex.svg').read_bytes())); "
            "print(len(look.resource('styles', 'app.qss').read_text()))",
        ],
        env={**env, "QT_QPA_PLATFORM": "offscreen"},
        cwd=tmp_path,  # not the checkout, whose package would come first
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    where, icon, style = probe.stdout.split()
    assert where.startswith(str(site)), where
    assert int(icon) > 100 and int(style) > 100

    gateway = subprocess.Popen(
        [sys.executable, "-m", "pplex_desktop.gateway", "--demo", "--port", "0"],
        env={**env, "PPLEX_DATA_DIR": str(tmp_path / "data")},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert gateway.stderr is not None
        url = ""
        for line in gateway.stderr:
            if "The gateway listens on" in line:
                url = line.split("listens on ", 1)[1].strip().rstrip(".")
                break
        assert url, "the installed gateway did not start"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url + "/", timeout=10) as page:
            assert page.status == 200
            assert b"<html" in page.read().lower()
        with opener.open(url + "/web/talk.js", timeout=10) as script:
            assert script.status == 200
    finally:
        gateway.terminate()
        gateway.wait(20)
        assert gateway.stderr is not None
        gateway.stderr.close()
