"""The installed ``pplex-gateway``: its first-start notice names the port it was given."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.journeys.harness import EXIT_BUDGET_S


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_example_curl_uses_the_port_given(tmp_path: Path) -> None:
    port = free_port()
    command = Path(sys.executable).with_name("pplex-gateway")
    env = {k: v for k, v in os.environ.items() if k not in ("PPLEX_ADMIN_SECRET", "PPLEX_DATA_DIR")}
    process = subprocess.Popen(
        [str(command), "--demo", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "is listening on" in line:
                break
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=EXIT_BUDGET_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert f"curl -X POST http://localhost:{port}/admin/keys/generate" in output, output
    assert "localhost:8000" not in output
    assert "Traceback" not in output
