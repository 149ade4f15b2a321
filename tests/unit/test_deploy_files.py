"""The systemd unit, the Dockerfile and the compose example: checked as far as this machine can."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pplex_desktop.core.admin_secret import CREDENTIAL_NAME

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "pplex-gateway.service"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"


def _unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file, keys in order (systemd allows a key more than once)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        assert current is not None, f"a key outside any section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line}"
        current.append((key, value))
    return sections


def _service() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in _unit(UNIT.read_text())["Service"]:
        out.setdefault(key, []).append(value)
    return out


def test_the_unit_runs_the_way_servers_are_run() -> None:
    service = _service()
    expected = {
        "DynamicUser": "yes",
        "StateDirectory": "pplex-gateway",
        "Restart": "on-failure",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
    }
    for key, value in expected.items():
        assert service.get(key) == [value], key
    assert "PPLEX_DATA_DIR=%S/pplex-gateway" in service["Environment"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["EnvironmentFile"][0].startswith("-/etc/")  # optional: the unit starts bare
    assert service["RestartPreventExitStatus"] == ["2"]  # a bad setting: retrying cannot help
    assert service["ExecStart"][0].endswith("/pplex-gateway")
    # The documented credential is the one the gateway reads.
    assert f"#LoadCredential={CREDENTIAL_NAME}:" in UNIT.read_text()
    assert _unit(UNIT.read_text())["Install"] == [("WantedBy", "multi-user.target")]


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (./dev.sh test installs systemd)")
    gateway = Path(sys.executable).parent / "pplex-gateway"
    if not gateway.exists():
        pytest.skip(f"no pplex-gateway next to {sys.executable} to stand in for ExecStart")
    # verify checks that ExecStart exists: point it at this checkout's script.
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={gateway}", UNIT.read_text())
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    done = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    lines = [x for x in (done.stdout + done.stderr).splitlines() if UNIT.name in x]
    assert done.returncode == 0, done.stderr
    # An unknown or misspelt key is only a warning to verify; here it fails.
    assert lines == [], lines


def test_the_credential_is_read_from_systemds_folder(tmp_path: Path) -> None:
    from pplex_desktop.core.admin_secret import use_env_admin_secret
    from pplex_desktop.core.keystore import KeyStore

    (tmp_path / CREDENTIAL_NAME).write_text("a-credential-secret-0123456789\n")
    store = KeyStore(tmp_path / "keys.sqlite3")
    try:
        assert use_env_admin_secret(store, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
        assert store.check_admin_secret("a-credential-secret-0123456789")
        assert not use_env_admin_secret(store, {"CREDENTIALS_DIRECTORY": str(tmp_path / "x")})
    finally:
        store.close()


def _dockerfile_line(prefix: str) -> str:
    lines = DOCKERFILE.read_text().replace("\\\n", " ").splitlines()
    found = [x for x in lines if x.startswith(prefix)]
    assert len(found) == 1, f"{prefix}: {found}"
    return found[0]


def test_the_dockerfile_is_small_non_root_with_a_volume() -> None:
    assert re.fullmatch(r"FROM python:3\.1\d-slim", _dockerfile_line("FROM "))
    user = _dockerfile_line("USER ").split()[1]
    assert user not in ("root", "0")
    assert _dockerfile_line("VOLUME ") == 'VOLUME ["/data"]'
    assert "PPLEX_DATA_DIR=/data" in DOCKERFILE.read_text()
    health = _dockerfile_line("HEALTHCHECK ")
    assert "urllib.request" in health and "/healthz" in health and "curl" not in health


def _healthcheck_argv() -> list[str]:
    health = _dockerfile_line("HEALTHCHECK ")
    cmd = health.split(" CMD ", 1)[1].strip()
    argv = re.findall(r'"((?:[^"\\]|\\.)*)"', cmd)
    assert argv[:2] == ["python", "-c"]
    return [sys.executable, "-c", argv[2]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gateway_port(tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PPLEX_", "MOSHI_"))}
    env |= {"PPLEX_DATA_DIR": str(tmp_path), "PPLEX_PORT": str(port), "PPLEX_DEMO": "true"}
    env |= {"PPLEX_ADMIN_SECRET": "healthcheck-admin-secret-0123"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pplex_desktop.gateway", "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the gateway says where it listens
        assert "is listening on" in line, (line, proc.stderr.read() if proc.stderr else "")
        yield port
    finally:
        proc.terminate()
        proc.wait(15)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_the_healthcheck_command_passes_against_a_running_gateway(gateway_port: int) -> None:
    env = os.environ | {"PPLEX_PORT": str(gateway_port)}
    done = subprocess.run(
        _healthcheck_argv(), env=env, capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_healthcheck_command_fails_when_nothing_answers() -> None:
    env = os.environ | {"PPLEX_PORT": str(_free_port())}
    done = subprocess.run(
        _healthcheck_argv(), env=env, capture_output=True, timeout=30, check=False
    )
    assert done.returncode != 0


def test_the_image_needs_no_desktop_packages() -> None:
    """The image installs pyproject's dependencies minus Qt and audio: the gateway, the
    simulator and the CLI must import without them."""
    blocked = ("PySide6", "qasync", "sounddevice", "segno")
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {blocked!r}:\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pplex_desktop.gateway.cli, pplex_desktop.gateway.server, pplex_desktop.sim.sim\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    for name in blocked:
        assert f"'{name.lower()}'" in DOCKERFILE.read_text()


def test_compose_puts_the_gateway_in_front_of_a_model_server() -> None:
    text = COMPOSE.read_text()
    assert "\n  personaplex:\n" in text and "\n  gateway:\n" in text
    assert "PPLEX_BACKENDS: ws://personaplex:8998" in text
    assert "dockerfile: Dockerfile" in text and "- gateway-data:/data" in text
    # Only the gateway is published; the model server has no keys of its own.
    personaplex = text.split("\n  personaplex:\n", 1)[1].split("\n  gateway:\n", 1)[0]
    assert "ports:" not in personaplex


def _docker_available() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    info = subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False)
    return docker if info.returncode == 0 else None


def test_the_image_builds_and_becomes_healthy() -> None:
    docker = _docker_available()
    if docker is None:
        pytest.skip("No Docker daemon is reachable here; the image build was not tested.")
    tag = f"pplex-gateway-test:{uuid.uuid4().hex[:8]}"
    name = f"pplex-gateway-test-{uuid.uuid4().hex[:8]}"
    build = subprocess.run(
        [docker, "build", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=900,
        check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    try:
        run = [docker, "run", "-d", "--name", name, "--health-interval=1s", tag, "--demo"]
        subprocess.run(run, check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 120
        status = ""
        while time.monotonic() < deadline and status != "healthy":
            status = subprocess.run(
                [docker, "inspect", "--format", "{{.State.Health.Status}}", name],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout.strip()  # fmt: skip
            time.sleep(1)  # docker reports health by polling only
        assert status == "healthy"
    finally:
        subprocess.run([docker, "rm", "-f", name], capture_output=True, timeout=60, check=False)
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=60, check=False)
