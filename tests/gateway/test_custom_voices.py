"""Custom voices: WAV prompts through every endpoint to pplex-sim, and the voice library
(upload with consent, checks, atomic storage, removal, permissions)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import numpy as np
import pytest
import soundfile as sf

from pplex_desktop.core.db import Database
from pplex_desktop.core.errors import ConfigError, ValidationError
from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.keystore.schema import MIGRATIONS
from pplex_desktop.core.settings import BackendConfig, Settings, load_settings, save_settings
from pplex_desktop.core.voices import resolve_voice
from pplex_desktop.gateway.api.voice_library import CONSENT_STATEMENT
from pplex_desktop.gateway.cli import build_parser, resolve_settings
from pplex_desktop.moshi.client import MoshiSession, SessionOptions
from pplex_desktop.sim.sim import SimConfig
from tests import talk
from tests.gateway.conftest import Gateway, GatewayFactory
from tests.gateway.offline_support import form, tone_wav
from tests.gateway.test_live_stream import stream_session
from tests.gateway.test_local_engine import STAND_IN
from tests.gateway.test_realtime import events_until, realtime, send_paced
from tests.signals import tone
from tests.sim.process import sim_process
from tests.voice_samples import clipped, speechlike, wav_bytes

PERSONA = "You are a calm narrator."


def voice_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "voices"
    folder.mkdir(exist_ok=True)
    return folder


async def voice_gateway(make_gateway: GatewayFactory, folder: Path, **kwargs: Any) -> Gateway:
    """A gateway whose backend (pplex-sim) reads WAV voices from ``folder``, as PersonaPlex's
    --voice-prompt-dir, and whose voice library writes there."""
    return await make_gateway(
        sim_config=SimConfig(voice_dir=str(folder)), voice_dir=str(folder), **kwargs
    )


def put_voice(folder: Path, name: str) -> None:
    (folder / name).write_bytes(wav_bytes(speechlike(8.0)))


async def upload(
    gw: Gateway,
    audio: bytes | None,
    *,
    path: str = "/admin/voices",
    key: str | None = None,
    **fields: str,
) -> tuple[int, dict[str, Any]]:
    headers = {"X-API-Key": key} if key else {"X-Admin-Secret": "test-admin-secret-0123456789"}
    async with gw.http.post(
        gw.url + path, headers=headers, data=form(audio, "take1.wav", **fields)
    ) as resp:
        return resp.status, await resp.json()


async def listed(gw: Gateway) -> dict[str, dict[str, Any]]:
    async with gw.http.get(gw.url + "/v1/voices") as resp:
        body = await resp.json()
    return {v["id"]: v for v in body["voices"]}


GOOD = wav_bytes(speechlike(12.0, 48_000, level=0.1), 48_000)


# -- WAV voices reach the model server as name.wav ------------------------------------------


@pytest.mark.parametrize("asked", ["my-voice.wav", "my-voice"])
async def test_a_wav_voice_through_api_chat(
    make_gateway: GatewayFactory, tmp_path: Path, asked: str
) -> None:
    folder = voice_folder(tmp_path)
    put_voice(folder, "my-voice.wav")
    gw = await voice_gateway(make_gateway, folder)
    options = SessionOptions(
        text_prompt=PERSONA, voice_prompt=asked, api_key=gw.new_key(), handshake_timeout=10
    )
    async with await MoshiSession.connect(gw.url, options) as session:
        await talk.converse(session, tone(440, 0.8), expected_frames=10, lead_s=0.5)
    assert gw.sims[0].stats.queries[-1] == {"text_prompt": PERSONA, "voice_prompt": "my-voice.wav"}
    await gw.sims[0].wait_until(lambda s: s.sessions_finished == 1)


async def test_a_wav_voice_through_ws_stream(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    folder = voice_folder(tmp_path)
    put_voice(folder, "narrator.wav")
    gw = await voice_gateway(make_gateway, folder)
    y, _messages = await stream_session(
        gw, gw.new_key(), tone(440, 1.0), params={"voice": "narrator.wav"}
    )
    assert len(y) > 0
    assert gw.sims[0].stats.queries[-1]["voice_prompt"] == "narrator.wav"


async def test_a_wav_voice_through_v1_inference(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = voice_folder(tmp_path)
    put_voice(folder, "narrator.wav")
    gw = await voice_gateway(make_gateway, folder)
    async with gw.http.post(
        gw.url + "/v1/inference",
        headers={"X-API-Key": gw.new_key()},
        data=form(tone_wav(1.0), "in.wav", persona=PERSONA, voice="narrator.wav", silence_s="0.5"),
    ) as resp:
        body = await resp.read()
        assert resp.status == 200, body[:300]
    assert gw.sims[0].stats.queries[-1]["voice_prompt"] == "narrator.wav"


async def test_a_wav_voice_through_v1_realtime(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = voice_folder(tmp_path)
    put_voice(folder, "narrator.wav")
    gw = await voice_gateway(make_gateway, folder)
    async with realtime(gw, gw.new_key(), voice="narrator.wav") as conn:
        created = await events_until(conn, "session.created")
        assert created[-1].session.audio.output.voice == "narrator.wav"
        sender = asyncio.create_task(send_paced(conn, tone(440, 1.0)))
        await events_until(conn, "response.done")
        await sender
    assert gw.sims[0].stats.queries[-1]["voice_prompt"] == "narrator.wav"
    await gw.sessions_done()


async def test_an_unknown_voice_is_refused_naming_the_voices_that_exist(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = voice_folder(tmp_path)
    put_voice(folder, "narrator.wav")
    gw = await voice_gateway(make_gateway, folder)
    # NATF2 is a .pt voice: NATF2.wav is another file, and says so instead of "NATF2".
    async with gw.http.get(
        gw.url + "/ws/stream", params={"api_key": gw.new_key(), "voice": "NATF2.wav"}
    ) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["code"] == "unknown_voice"
    assert "'NATF2.wav' is not available" in error["message"]
    assert "NATF0" in error["message"] and "narrator.wav" in error["message"]


async def test_a_wav_voice_through_the_local_engine(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = voice_folder(tmp_path)
    put_voice(folder, "narrator.wav")
    script = STAND_IN.replace(
        'p.add_argument("--seed"', 'p.add_argument("--voice-prompt-dir")\np.add_argument("--seed"'
    ).replace(
        "args = p.parse_args()\n",
        "args = p.parse_args()\nimport os\n"
        "assert os.path.isfile(os.path.join(args.voice_prompt_dir, args.voice_prompt))\n",
    )
    repo = tmp_path / "personaplex"
    (repo / "moshi").mkdir(parents=True)
    (repo / "moshi" / "__init__.py").write_text("")
    (repo / "moshi" / "offline.py").write_text(script)
    gw = await voice_gateway(make_gateway, folder, personaplex_repo=str(repo))
    async with gw.http.post(
        gw.url + "/v1/inference",
        headers={"X-API-Key": gw.new_key()},
        data=form(tone_wav(1.0), engine="local", persona="Hello", voice="narrator"),
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert unquote(resp.headers["X-Transcript"]) == "Hello narrator.wav"


# -- the voice library --------------------------------------------------------------------


async def test_an_upload_is_prepared_stored_listed_and_survives_a_restart(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = voice_folder(tmp_path)
    gw = await voice_gateway(make_gateway, folder)
    status, body = await upload(gw, GOOD, name="grandpa", consent="true")
    assert status == 201, body
    assert body["voice"] == "grandpa.wav"
    assert body["consent"]["by"] == "admin"
    assert sorted(p.name for p in folder.iterdir()) == ["grandpa.wav", "grandpa.wav.consent.json"]
    info = sf.info(str(folder / "grandpa.wav"))
    assert (info.samplerate, info.channels) == (24_000, 1)
    if sys.platform != "win32":  # the model server may be another user: it must read the voice
        assert (folder / "grandpa.wav").stat().st_mode & 0o777 == 0o644
        assert (folder / "grandpa.wav.consent.json").stat().st_mode & 0o077 == 0
    record = json.loads((folder / "grandpa.wav.consent.json").read_text())
    assert record["consent"]["statement"] == CONSENT_STATEMENT
    assert record["consent"]["at"] == gw.clock.wall()
    voices = await listed(gw)
    assert voices["grandpa.wav"]["custom"] is True
    assert voices["NATF2"]["custom"] is False
    # The new voice is usable at once, then after a restart from the files alone.
    _y, _m = await stream_session(gw, gw.new_key(), tone(440, 0.5), params={"voice": "grandpa"})
    assert gw.sims[0].stats.queries[-1]["voice_prompt"] == "grandpa.wav"
    again = await voice_gateway(make_gateway, folder)
    assert "grandpa.wav" in await listed(again)
    async with again.http.get(
        again.url + "/admin/voices", headers={"X-Admin-Secret": "test-admin-secret-0123456789"}
    ) as resp:
        library = (await resp.json())["backends"][0]
    assert library["writable"] is True
    assert library["voices"][0]["consent"]["by"] == "admin"


async def test_an_upload_replaces_nothing_until_it_is_complete(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """The voice appears by rename: the folder never holds a partly written grandpa.wav."""
    folder = voice_folder(tmp_path)
    gw = await voice_gateway(make_gateway, folder)
    seen: list[list[str]] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            names = sorted(p.name for p in folder.iterdir())
            seen.append(names)
            if "grandpa.wav" in names:
                # Whatever moment we look, the file is whole and readable.
                assert sf.info(str(folder / "grandpa.wav")).frames == 12 * 24_000
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    status, _body = await upload(gw, GOOD, name="grandpa", consent=CONSENT_STATEMENT)
    done.set()
    await watcher
    assert status == 201
    assert all(not n.startswith(".voice-") or n.endswith((".wav", ".tmp")) for s in seen for n in s)
    assert sorted(p.name for p in folder.iterdir()) == ["grandpa.wav", "grandpa.wav.consent.json"]


@pytest.mark.parametrize(
    ("audio", "fields", "status", "code"),
    [
        (wav_bytes(speechlike(3.0)), {"consent": "true"}, 422, "voice_too_short"),
        (wav_bytes(np.zeros(24_000 * 10, np.float32)), {"consent": "true"}, 422, "voice_silent"),
        (wav_bytes(clipped(10.0)), {"consent": "true"}, 422, "voice_clipped"),
        (b"this is not a recording, just text" * 50, {"consent": "true"}, 415, "not_audio"),
        (GOOD, {}, 400, "consent_required"),
        (GOOD, {"consent": "yes, sure"}, 400, "consent_required"),
        (None, {"consent": "true"}, 400, "missing_audio"),
    ],
    ids=["short", "silent", "clipped", "not-audio", "no-consent", "vague-consent", "no-file"],
)
async def test_bad_uploads_are_refused_with_a_sentence_and_store_nothing(
    make_gateway: GatewayFactory,
    tmp_path: Path,
    audio: bytes | None,
    fields: dict[str, str],
    status: int,
    code: str,
) -> None:
    folder = voice_folder(tmp_path)
    gw = await voice_gateway(make_gateway, folder)
    got, body = await upload(gw, audio, name="grandpa", **fields)
    assert (got, body["error"]["code"]) == (status, code), body
    message = body["error"]["message"]
    assert message.endswith((".", ")")) and message[0].isupper()
    assert str(tmp_path) not in message and "/tmp" not in message
    assert list(folder.iterdir()) == []
    assert "grandpa.wav" not in await listed(gw)


@pytest.mark.parametrize(
    "name",
    [
        "../escape",
        "../../etc/passwd",
        "/etc/passwd",
        "sub/dir",
        "back\\slash",
        "nul\x00byte",
        "v\u043eice",  # a Cyrillic o
        "ｆｕｌｌｗｉｄｔｈ",
        "CON",
        "lpt1",
        ".hidden",
        "two.dots",
        "",
        "x" * 49,
    ],
)
async def test_path_tricks_in_voice_names_are_refused(
    make_gateway: GatewayFactory, tmp_path: Path, name: str
) -> None:
    folder = voice_folder(tmp_path)
    gw = await voice_gateway(make_gateway, folder)
    status, body = await upload(gw, GOOD, name=name, consent="true")
    assert status == 400, body
    assert body["error"]["code"] in ("invalid_voice_name", "missing_name")
    assert list(folder.iterdir()) == []


async def test_a_name_taken_by_a_builtin_or_stored_voice_is_refused(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = voice_folder(tmp_path)
    put_voice(folder, "narrator.wav")
    gw = await voice_gateway(make_gateway, folder)
    for name in ("NATF2", "natf2", "narrator", "Narrator"):
        status, body = await upload(gw, GOOD, name=name, consent="true")
        assert (status, body["error"]["code"]) == (409, "voice_exists")


async def test_two_uploads_of_one_name_at_once_store_one_voice(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = voice_folder(tmp_path)
    gw = await voice_gateway(make_gateway, folder)
    results = await asyncio.gather(
        upload(gw, GOOD, name="twin", consent="true"),
        upload(gw, GOOD, name="twin", consent="true"),
    )
    assert sorted(status for status, _body in results) == [201, 409]
    assert sorted(p.name for p in folder.iterdir()) == ["twin.wav", "twin.wav.consent.json"]


async def test_a_key_needs_the_voices_permission(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = voice_folder(tmp_path)
    gw = await voice_gateway(make_gateway, folder)
    made = gw.store.create("tablet")
    status, body = await upload(
        gw, GOOD, path="/v1/voices", key=made.key, name="mine", consent="true"
    )
    assert (status, body["error"]["code"]) == (403, "voices_permission_required")
    async with gw.http.delete(gw.url + "/v1/voices/mine", headers={"X-API-Key": made.key}) as r:
        assert r.status == 403
    assert gw.store.get(made.record.id).can_manage_voices is False
    resp = await gw.admin(
        "PATCH", f"/admin/keys/{made.record.id}", json={"can_manage_voices": True}
    )
    assert (await resp.json())["permissions"] == {"voices": True}
    status, body = await upload(
        gw, GOOD, path="/v1/voices", key=made.key, name="mine", consent="true"
    )
    assert status == 201, body
    assert (body["consent"]["by"], body["consent"]["key_id"]) == ("tablet", made.record.id)
    async with gw.http.delete(gw.url + "/v1/voices/mine", headers={"X-API-Key": made.key}) as r:
        assert r.status == 200
    assert list(folder.iterdir()) == []


async def test_delete_removes_the_voice_and_its_record(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = voice_folder(tmp_path)
    gw = await voice_gateway(make_gateway, folder)
    assert (await upload(gw, GOOD, name="grandpa", consent="true"))[0] == 201
    resp = await gw.admin("DELETE", "/admin/voices/grandpa.wav")
    assert resp.status == 200
    assert list(folder.iterdir()) == []
    assert "grandpa.wav" not in await listed(gw)
    async with gw.http.get(
        gw.url + "/ws/stream", params={"api_key": gw.new_key(), "voice": "grandpa.wav"}
    ) as r:
        assert (await r.json())["error"]["code"] == "unknown_voice"
    resp = await gw.admin("DELETE", "/admin/voices/grandpa")
    assert resp.status == 404
    resp = await gw.admin("DELETE", "/admin/voices/CON")
    assert resp.status == 400


async def test_without_a_writable_voice_folder_uploads_are_refused_with_the_reason(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gw = await make_gateway()
    status, body = await upload(gw, GOOD, name="grandpa", consent="true")
    assert (status, body["error"]["code"]) == (403, "no_voice_folder")
    resp = await gw.admin("GET", "/admin/voices")
    library = (await resp.json())["backends"][0]
    assert library["writable"] is False
    assert library["reason"] == "No voice folder is set for this model server."
    missing = await voice_gateway(make_gateway, tmp_path / "not-there")
    resp = await missing.admin("GET", "/admin/voices")
    assert (await resp.json())["backends"][0]["reason"] == (
        "The voice folder does not exist on this machine."
    )


async def test_the_upload_size_is_capped(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    folder = voice_folder(tmp_path)
    gw = await voice_gateway(make_gateway, folder)
    # 44 MB, made off the loop: the test's own work must not hold the gateway's loop.
    half = await asyncio.to_thread(
        lambda: wav_bytes(speechlike(29.0, 192_000, level=0.1), 192_000, subtype="FLOAT")
    )
    big = half + half
    status, body = await upload(gw, big, name="grandpa", consent="true")
    assert status == 413, body
    assert list(folder.iterdir()) == []


async def test_pplex_sim_serves_wav_voices_from_its_voice_dir(tmp_path: Path) -> None:
    folder = voice_folder(tmp_path)
    put_voice(folder, "narrator.wav")
    async with sim_process("--voice-dir", str(folder)) as sim:
        url = sim.url.replace("http", "ws", 1) + "/api/chat"
        async with aiohttp.ClientSession() as http:
            for voice, first in (("narrator.wav", b"\x00"), ("other.wav", None)):
                query = {"voice_prompt": voice, "text_prompt": "Hi"}
                async with http.ws_connect(url, params=query) as ws:
                    msg = await asyncio.wait_for(ws.receive(), 10)
                    assert (msg.data if msg.type is aiohttp.WSMsgType.BINARY else None) == first


# -- names, settings and the key store ------------------------------------------------------


def test_names_are_matched_with_their_extension() -> None:
    voices = ("NATF2.pt", "twin.pt", "twin.wav", "solo.wav")
    assert resolve_voice("NATF2", voices) == "NATF2.pt"
    assert resolve_voice("NATF2.pt", voices) == "NATF2.pt"
    assert resolve_voice("solo.wav", voices) == "solo.wav"
    assert resolve_voice("solo", voices) == "solo.wav"  # unambiguous
    assert resolve_voice("twin", voices) == "twin.pt"  # the .pt of the same name wins
    assert resolve_voice("twin.wav", voices) == "twin.wav"
    with pytest.raises(ValidationError) as caught:
        resolve_voice("NATF2.wav", voices)
    assert "twin.wav, solo.wav, NATF2, twin (GET" in caught.value.message


def test_voice_dir_is_kept_in_the_settings_file_and_must_be_absolute(tmp_path: Path) -> None:
    folder = str(tmp_path / "voices")
    settings = Settings(backends=(BackendConfig("ws://gpu:8998", voice_dir=folder),))
    save_settings(tmp_path, settings)
    assert load_settings(tmp_path, env={}).backends[0].voice_dir == folder
    plain = Settings()
    assert "voice_dir" not in plain.to_json()["backends"][0]
    with pytest.raises(ConfigError) as caught:
        BackendConfig("ws://gpu:8998", voice_dir="voices")
    assert "absolute path" in caught.value.message


def test_keys_made_before_the_permission_existed_do_not_have_it(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = Database(path, MIGRATIONS[:2])
    with old.transaction() as conn:
        conn.execute(
            "INSERT INTO api_keys (name, prefix, digest, kind, created_at, rpm, max_sessions)"
            " VALUES ('old', 'pk_x', 'digest', 'user', 0, 60, 1)"
        )
    old.close()
    store = KeyStore(path)
    try:
        (record,) = store.list_keys()
        assert record.can_manage_voices is False
        assert record.to_public(0)["permissions"] == {"voices": False}
        assert store.update(record.id, can_manage_voices=True).can_manage_voices is True
        assert store.create("new").record.can_manage_voices is False
    finally:
        store.close()


def test_the_gateway_command_line_sets_the_voice_folder(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--backend", "ws://gpu:8998", "--voice-dir", "voices"])
    settings = resolve_settings(args, tmp_path, env={}).settings
    assert settings.backends[0].voice_dir == str(Path("voices").resolve())
