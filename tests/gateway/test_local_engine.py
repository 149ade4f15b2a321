"""engine=local: PersonaPlex's own offline script, here a stand-in with the real script's flags
and file formats (the GPU model is the one thing tests may replace)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from tests.gateway.conftest import GatewayFactory
from tests.gateway.offline_support import error_of, form, tone_wav, wav_of
from tests.signals import tone

STAND_IN = '''
"""Stand-in for PersonaPlex's moshi/offline.py: same flags, same output formats."""
import argparse, json, time
import numpy as np
import soundfile as sf

p = argparse.ArgumentParser()
p.add_argument("--input-wav", required=True)
p.add_argument("--output-wav", required=True)
p.add_argument("--output-text", required=True)
p.add_argument("--text-prompt", default="You are a wise and friendly teacher.")
p.add_argument("--voice-prompt", required=True)
p.add_argument("--seed", type=int, default=-1)
args = p.parse_args()
if "CRASH" in args.text_prompt:
    raise RuntimeError("the stand-in model ran out of GPU memory")
if "HANG" in args.text_prompt:
    time.sleep(600)
user, rate = sf.read(args.input_wav, dtype="float32")
assert rate == 24000, rate
words = [" " + w for w in args.text_prompt.split()] + [" " + args.voice_prompt]
if args.seed != -1:
    words.append(f" seed={args.seed}")
tokens = []
for i in range(-(-len(user) // 1920)):
    token = words.pop(0) if i % 2 and words else ("EPAD" if i % 3 else "PAD")
    print(f"[Info] text token '{token}'", flush=True)
    tokens.append(token)
sf.write(args.output_wav, -user, 24000, subtype="FLOAT")  # "the model": an inverted echo
with open(args.output_text, "w") as f:
    json.dump(tokens, f, ensure_ascii=False)
'''


def stand_in_repo(root: Path, *, nested: bool) -> Path:
    """A checkout like NVIDIA/personaplex (moshi/moshi/offline.py) or a bare package."""
    package = root / "moshi" / "moshi" if nested else root / "moshi"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "offline.py").write_text(STAND_IN)
    return root


@pytest.mark.parametrize("nested", [True, False])
async def test_the_local_engine_runs_the_offline_script(
    make_gateway: GatewayFactory, tmp_path: Path, nested: bool
) -> None:
    repo = stand_in_repo(tmp_path / "personaplex", nested=nested)
    gw = await make_gateway(personaplex_repo=str(repo))
    async with gw.http.post(
        gw.url + "/v1/inference",
        headers={"X-API-Key": gw.new_key()},
        data=form(
            tone_wav(1.5), engine="local", persona="Hello local model", seed="42", voice="NATF1"
        ),
    ) as resp:
        assert resp.status == 200, await resp.text()
        transcript = unquote(resp.headers["X-Transcript"])
        pcm, rate, _subtype, _channels = wav_of(await resp.read())
    assert transcript == "Hello local model NATF1.pt seed=42"
    assert (len(pcm), rate) == (round(4.5 * 24_000), 24_000)
    assert np.corrcoef(pcm[:36_000], tone(440, 1.5))[0, 1] < -0.99
    assert gw.sims[0].stats.sessions_started == 0


async def test_local_can_be_the_configured_engine(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    repo = stand_in_repo(tmp_path / "personaplex", nested=True)
    gw = await make_gateway(personaplex_repo=str(repo), offline_engine="local")
    key = gw.new_key()
    async with gw.http.post(
        gw.url + "/v1/inference",
        headers={"X-API-Key": key},
        data=form(tone_wav(1.0), persona="Configured", format="json"),
    ) as resp:
        body = await resp.json()
    assert body["transcript"] == "Configured NATF2.pt"
    async with gw.http.get(body["transcript_url"], headers={"X-API-Key": key}) as resp:
        pieces = (await resp.json())["pieces"]
    assert pieces == [
        {"start_s": 0.08, "text": " Configured"},
        {"start_s": 0.24, "text": " NATF2.pt"},
    ]


async def test_a_failing_script_reports_its_output(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    repo = stand_in_repo(tmp_path / "personaplex", nested=True)
    gw = await make_gateway(personaplex_repo=str(repo))
    async with gw.http.post(
        gw.url + "/v1/inference",
        headers={"X-API-Key": gw.new_key()},
        data=form(tone_wav(1.0), engine="local", persona="CRASH please"),
    ) as resp:
        error = await error_of(resp)
        assert resp.status == 502
    assert error["code"] == "local_engine_failed"
    assert error["message"].startswith("The local PersonaPlex engine failed (exit status 1): ")
    assert error["message"].endswith("RuntimeError: the stand-in model ran out of GPU memory")


async def test_a_hanging_script_is_stopped_at_the_timeout(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    repo = stand_in_repo(tmp_path / "personaplex", nested=True)
    gw = await make_gateway(personaplex_repo=str(repo), local_engine_timeout_s=1.0)
    async with gw.http.post(
        gw.url + "/v1/inference",
        headers={"X-API-Key": gw.new_key()},
        data=form(tone_wav(1.0), engine="local", persona="HANG forever"),
    ) as resp:
        error = await error_of(resp)
        assert resp.status == 504
    assert error == {
        "code": "local_engine_timeout",
        "message": "The local engine did not finish within 1 s.",
    }


async def test_a_repo_without_the_script_is_a_clear_failure(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gw = await make_gateway(personaplex_repo=str(tmp_path))
    async with gw.http.post(
        gw.url + "/v1/inference",
        headers={"X-API-Key": gw.new_key()},
        data=form(tone_wav(1.0), engine="local"),
    ) as resp:
        error = await error_of(resp)
        assert resp.status == 503
    assert error["code"] == "engine_unavailable"
    assert "holds no moshi/offline.py" in error["message"]
