"""Sessions recorded from real servers, kept in ``tests/data`` for tests that run without them."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

KYUTAI_SESSION = Path(__file__).resolve().parent / "data" / "kyutai_session.jsonl"


@dataclass(frozen=True)
class Recording:
    meta: dict[str, str]
    sent: list[bytes]  # client to server, whole messages with their kind byte
    received: list[bytes]  # server to client


def load_recording(path: Path = KYUTAI_SESSION) -> Recording:
    """Read the format ``tests/conformance/record_fixture.py`` writes."""
    lines = path.read_text(encoding="utf-8").splitlines()
    meta = json.loads(lines[0])["meta"]
    sent: list[bytes] = []
    received: list[bytes] = []
    for line in lines[1:]:
        entry = json.loads(line)
        data = base64.b64decode(entry["data"], validate=True)
        (sent if entry["dir"] == "in" else received).append(data)
    return Recording(meta, sent, received)
