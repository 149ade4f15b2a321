"""The ``openai`` SDK warmed up at import: its first connection and first parsed event build
pydantic models and load modules (about 0.3 s of CPU), which would otherwise land in one
callback of the first test's event loop and trip the slow-callback check."""

from __future__ import annotations

import json

from openai import AsyncOpenAI
from openai.lib import _websocket  # noqa: F401 (imported by the first connect otherwise)
from openai.resources.realtime.realtime import AsyncRealtimeConnection

_SAMPLE = {"type": "session.created", "event_id": "event_0", "session": {"type": "realtime"}}


def warm_up() -> None:
    AsyncOpenAI(api_key="warm-up", websocket_base_url="ws://127.0.0.1:9/v1").realtime  # noqa: B018
    AsyncRealtimeConnection.parse_event(None, json.dumps(_SAMPLE))  # type: ignore[arg-type]


warm_up()
