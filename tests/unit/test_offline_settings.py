from __future__ import annotations

from pathlib import Path

import pytest

from pplex_desktop.core.errors import ConfigError
from pplex_desktop.core.settings import Settings, load_settings


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"offline_silence_s": 31.0}, "trailing silence"),
        ({"offline_silence_s": -1.0}, "trailing silence"),
        ({"job_retention_h": 0.0}, "job retention"),
        ({"local_engine_timeout_s": 0.0}, "local engine timeout"),
        ({"offline_engine": "gpu"}, "stream or local"),
        ({"offline_engine": "local"}, "needs PERSONAPLEX_REPO"),
    ],
)
def test_offline_settings_are_validated(changes: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Settings(**changes)  # type: ignore[arg-type]


def test_the_original_environment_names_reach_the_local_engine(tmp_path: Path) -> None:
    env = {"PERSONAPLEX_REPO": "/opt/personaplex", "PERSONAPLEX_PYTHON": "/opt/venv/bin/python"}
    settings = load_settings(tmp_path, env).replace(offline_engine="local")
    assert (settings.personaplex_repo, settings.personaplex_python) == (
        "/opt/personaplex",
        "/opt/venv/bin/python",
    )
    assert (settings.offline_engine, settings.offline_silence_s) == ("local", 3.0)
