"""The talk page in a real browser: pairing, talking to pplex-sim over HTTPS, and every refusal."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from playwright.async_api import expect

from pplex_desktop.gateway.events import BackendHealthChanged
from pplex_desktop.gateway.lan.pairing import make_pairing
from pplex_desktop.sim.sim import SimConfig
from tests.web.conftest import INSECURE_HOST, WebGateway, WebGatewayFactory

pytestmark = pytest.mark.asyncio(loop_scope="session")
PageFactory = Any
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "talk-page-phone.png"
WAIT_MS = 20_000


async def wait_js(page: Any, condition: str, limit_ms: int = WAIT_MS) -> None:
    # A function, not an expression: the page's CSP forbids eval of strings.
    await page.wait_for_function(f"() => {condition}", timeout=limit_ms)


async def dataset(page: Any) -> dict[str, str]:
    data: dict[str, str] = await page.evaluate("() => ({...document.body.dataset})")
    return data


async def open_page(page: Any, url: str) -> None:
    await page.goto(url)
    await wait_js(page, "document.body.dataset.ready === '1'")


async def test_pair_then_talk_and_listen_on_a_phone(
    make_web_gateway: WebGatewayFactory, page_factory: PageFactory, tmp_path: Path
) -> None:
    gateway = await make_web_gateway()
    pairing = make_pairing(
        gateway.store, base_url=gateway.https_url, name="Kitchen phone", rpm=120, ttl_s=11 * 3600
    )
    page = await page_factory(**PHONE, has_touch=True)
    await open_page(page, pairing.url)

    # The key left the address bar for localStorage, and the gateway accepted it.
    assert page.url == gateway.https_url + "/"
    assert await page.evaluate("() => localStorage.getItem('pplex.key')") == pairing.key
    await expect(page.locator("#key-name")).to_have_text("Kitchen phone")
    await expect(page.locator("#key-expiry")).to_have_text("Expires in 11 h")
    await expect(page.get_by_role("alert")).to_be_hidden()

    await page.select_option("#persona-preset", label="Customer service: bike shop")
    await page.select_option("#voice", "NATM1")
    await page.tap("#talk-button")
    await wait_js(page, "document.body.dataset.state === 'live'")
    await expect(page.get_by_role("button", name="Stop")).to_be_focused()
    await expect(page.get_by_role("status")).to_contain_text("Live: speak now")

    # pplex-sim speaks the persona's words and echoes the microphone two frames later.
    await expect(page.locator("#transcript")).to_contain_text(
        "You work for Riverside Cycles which is a bicycle repair shop and your name is Mara",
        timeout=WAIT_MS,
    )
    await wait_js(page, "Number(document.body.dataset.framesPlayed) >= 30")
    stats = await dataset(page)
    assert int(stats["framesReceived"]) >= int(stats["framesPlayed"]) >= 30
    assert int(stats["blocksSent"]) >= 25
    assert float(stats["peakPlayed"]) > 0.05, stats  # the echo of speech, not silence
    live = list(gateway.ctx.sessions.sessions.values())
    assert [s.key_name for s in live] == ["Kitchen phone"]
    assert live[0].audio_in_s > 1.5 and live[0].audio_out_s > 1.5

    await page.screenshot(path=str(tmp_path / "talk-page-phone.png"))
    if os.environ.get("PPLEX_SCREENSHOTS"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "talk-page-phone.png", SCREENSHOT)

    await page.tap("#talk-button")
    await wait_js(page, "document.body.dataset.state === 'idle'")
    await expect(page.get_by_role("status")).to_have_text("Session ended.")
    await expect(page.get_by_role("alert")).to_be_hidden()
    await asyncio.wait_for(gateway.ctx.sessions.wait_empty(), 10)


async def test_a_refused_key_is_explained(
    make_web_gateway: WebGatewayFactory, page_factory: PageFactory
) -> None:
    gateway = await make_web_gateway()
    revoked = gateway.store.create("old tablet")
    gateway.store.revoke(revoked.record.id)
    page = await page_factory()
    await open_page(page, gateway.https_url + "/")
    alert = page.get_by_role("alert")

    await page.get_by_label("Key from the desktop app").fill(revoked.key)
    await page.get_by_role("button", name="Use key").click()
    await expect(alert).to_have_text(
        "This key was refused: The API key 'old tablet' has been revoked. Pair again from "
        "pplex-desktop or paste a new key."
    )
    await page.get_by_label("Key from the desktop app").fill("pplx_typo")
    await page.get_by_role("button", name="Use key").click()
    await expect(alert).to_contain_text("The API key is malformed")
    await page.get_by_role("button", name="Talk").click()
    await expect(alert).to_contain_text("Enter an access key first")

    # Accepted on entry, revoked before Talk: the pre-flight check tells the user why.
    tablet = gateway.store.create("tablet")
    await page.get_by_label("Key from the desktop app").fill(tablet.key)
    await page.get_by_role("button", name="Use key").click()
    await expect(page.locator("#key-name")).to_have_text("tablet")
    await expect(alert).to_be_hidden()
    gateway.store.revoke(tablet.record.id)
    await page.get_by_role("button", name="Talk").click()
    await expect(alert).to_have_text(
        "This key was refused: The API key 'tablet' has been revoked. Pair again from "
        "pplex-desktop or paste a new key."
    )
    assert (await dataset(page))["state"] == "idle"
    assert not gateway.ctx.sessions.sessions


FOREIGN_PAGE = """<!doctype html><meta charset="utf-8"><title>elsewhere</title><script>
const ws = new WebSocket(new URLSearchParams(location.search).get("ws"));
ws.onopen = () => { document.body.dataset.opened = "1"; };
ws.onmessage = (e) => { document.body.dataset.first ??= JSON.parse(e.data).type; };
ws.onclose = (e) => { document.body.dataset.closed = String(e.code); };
</script><body>"""


async def _foreign_site() -> tuple[web.AppRunner, str]:
    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=FOREIGN_PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def test_a_page_from_a_foreign_origin_is_refused(
    make_web_gateway: WebGatewayFactory, page_factory: PageFactory
) -> None:
    allowed_site, allowed_origin = await _foreign_site()
    foreign_site, foreign_origin = await _foreign_site()
    try:
        gateway = await make_web_gateway(allowed_origins=(allowed_origin,))
        key = gateway.new_key("shared", max_sessions=2)
        lan = gateway.runner.lan_address
        assert lan is not None
        target = f"wss://localhost:{lan.port}/ws/stream?api_key={key}"
        query = "?" + urlencode({"ws": target})

        page = await page_factory()
        socket_errors: list[str] = []

        def watch(ws: Any) -> None:
            ws.on("socketerror", lambda message: socket_errors.append(str(message)))

        page.on("websocket", watch)
        await page.goto(foreign_origin + "/" + query)
        await wait_js(page, "document.body.dataset.closed !== undefined")
        data = await dataset(page)
        assert data == {"closed": "1006"}, data  # never opened
        refusals = [
            r
            for r in gateway.runner.events.recent_requests
            if r.path.startswith("/ws/stream") and r.status == 403
        ]
        assert len(refusals) == 1 and refusals[0].key_id is None  # refused before the key
        assert any("403" in e for e in socket_errors), socket_errors

        allowed = await page_factory()
        await allowed.goto(allowed_origin + "/" + query)
        await wait_js(allowed, "document.body.dataset.first !== undefined")
        assert (await dataset(allowed))["opened"] == "1"
        await allowed.close()
        await asyncio.wait_for(gateway.ctx.sessions.wait_empty(), 10)
    finally:
        await allowed_site.cleanup()
        await foreign_site.cleanup()


async def test_plain_http_from_another_device_explains_https(
    make_web_gateway: WebGatewayFactory, page_factory: PageFactory
) -> None:
    # The stand-in for this machine's LAN name must be one the gateway answers to.
    gateway = await make_web_gateway(public_hosts=(INSECURE_HOST,))
    pairing = make_pairing(gateway.store, base_url=gateway.https_url, ttl_s=600)
    port = gateway.plain_url.rsplit(":", 1)[1]
    page = await page_factory()
    await open_page(page, f"http://{INSECURE_HOST}:{port}/#key={pairing.key}")
    assert await page.evaluate("() => window.isSecureContext") is False
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text(
        "The browser only shares the microphone with secure pages, and this page was opened "
        f"over plain HTTP (http://{INSECURE_HOST}:{port})."
    )
    await page.get_by_role("button", name="Talk").click()
    await expect(alert).to_contain_text("Open the gateway's https:// address instead")
    assert not gateway.ctx.sessions.sessions


async def test_the_queue_position_is_shown_until_the_model_is_free(
    make_web_gateway: WebGatewayFactory, page_factory: PageFactory
) -> None:
    gateway = await make_web_gateway()
    pairing = make_pairing(gateway.store, base_url=gateway.https_url, ttl_s=600)
    page = await page_factory()
    await open_page(page, pairing.url)
    desk = gateway.new_key("desk")
    ws_url = gateway.plain_url.replace("http", "ws", 1) + "/ws/stream"
    async with gateway.http.ws_connect(ws_url, params={"api_key": desk}) as holder:
        assert json.loads((await asyncio.wait_for(holder.receive(), 10)).data)["type"] == "ready"
        await page.get_by_role("button", name="Talk").click()
        await expect(page.get_by_role("status")).to_contain_text(
            "The model is busy: you are number 1 in the queue", timeout=WAIT_MS
        )
        assert (await dataset(page))["state"] == "queued"
        assert (await dataset(page))["queuePosition"] == "1"
    # The first caller hung up: the page's session is served next.
    await wait_js(page, "document.body.dataset.state === 'live'")
    await page.get_by_role("button", name="Stop").click()
    await wait_js(page, "document.body.dataset.state === 'idle'")


async def _until_unreachable(gateway: WebGateway) -> None:
    seen = asyncio.Event()

    def listener(event: object) -> None:
        if isinstance(event, BackendHealthChanged) and not event.healthy:
            seen.set()

    gateway.runner.events.subscribe(listener)
    try:
        if gateway.ctx.backends.statuses()[0].healthy is not False:
            await asyncio.wait_for(seen.wait(), 15)
    finally:
        gateway.runner.events.unsubscribe(listener)


async def test_a_model_server_that_is_down_is_explained(
    make_web_gateway: WebGatewayFactory, page_factory: PageFactory
) -> None:
    gateway = await make_web_gateway(backends=("ws://127.0.0.1:9",))
    await _until_unreachable(gateway)
    pairing = make_pairing(gateway.store, base_url=gateway.https_url, ttl_s=600)
    page = await page_factory()
    await open_page(page, pairing.url)
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("No model server is reachable right now")
    await page.get_by_role("button", name="Talk").click()
    await expect(alert).to_contain_text(
        "The model is not available. No model server is reachable right now"
    )
    assert (await dataset(page))["state"] == "idle"


async def test_a_session_the_model_ends_shows_why(
    make_web_gateway: WebGatewayFactory, page_factory: PageFactory
) -> None:
    gateway = await make_web_gateway(
        sim_config=SimConfig(echo_delay_frames=1, error_after_frames=8)
    )
    pairing = make_pairing(gateway.store, base_url=gateway.https_url, ttl_s=600)
    page = await page_factory()
    await open_page(page, pairing.url)
    await page.get_by_role("button", name="Talk").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("The session ended:", timeout=WAIT_MS)
    await expect(alert).to_contain_text("The model said: “simulated model failure”.")
    await wait_js(page, "document.body.dataset.state === 'idle'")
    await expect(page.get_by_role("button", name="Talk")).to_be_visible()


async def test_a_lost_connection_is_explained(
    make_web_gateway: WebGatewayFactory, page_factory: PageFactory
) -> None:
    # The gateway side of a vanished phone ends by the idle limit (audio stops arriving).
    gateway = await make_web_gateway(idle_timeout_s=2)
    pairing = make_pairing(gateway.store, base_url=gateway.https_url, ttl_s=600)
    page = await page_factory()
    await open_page(page, pairing.url)
    await page.get_by_role("button", name="Talk").click()
    await wait_js(page, "document.body.dataset.state === 'live'")
    # The Wi-Fi drops: nothing arrives any more and the socket does not notice by itself.
    await page.context.set_offline(True)
    await expect(page.get_by_role("alert")).to_have_text(
        "The connection to the gateway was lost: nothing arrived for 5 s. Check the network "
        "and press Talk to try again.",
        timeout=WAIT_MS,
    )
    assert (await dataset(page))["state"] == "idle"
    await asyncio.wait_for(gateway.ctx.sessions.wait_empty(), 10)


# Before the page's own scripts: what it asks of the microphone, and any CSP refusal.
WATCH_PAGE = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
});
const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = async (constraints) => {
  window.__asked = constraints;
  const stream = await getUserMedia(constraints);
  window.__granted = stream.getAudioTracks()[0].getSettings();
  return stream;
};
"""
SPEAKER = """() => {
  const a = document.getElementById("speaker");
  const s = a.srcObject;
  return {
    stream: s instanceof MediaStream,
    tracks: s ? s.getAudioTracks().map((t) => [t.readyState, t.enabled, t.muted]) : [],
    paused: a.paused,
    time: a.currentTime,
  };
}"""
# What the element is given, read beside it from the same track (no second audio context to
# compete with the page's for the audio thread): the loudest sample in about two seconds.
LOUDEST_AT_SPEAKER = """async () => {
  const [track] = document.getElementById("speaker").srcObject.getAudioTracks();
  const reader = new MediaStreamTrackProcessor({track: track.clone()}).readable.getReader();
  let peak = 0;
  let seconds = 0;
  const quiet = () => new Promise((r) => setTimeout(() => r({done: true}), 3000));
  while (seconds < 2 && peak < 0.05) {
    // A track given nothing may deliver nothing: that is an answer too, not a hang.
    const {value: frame, done} = await Promise.race([reader.read(), quiet()]);
    if (done) break;
    const data = new Float32Array(frame.numberOfFrames);
    frame.copyTo(data, {planeIndex: 0, format: "f32-planar"});
    seconds += frame.numberOfFrames / frame.sampleRate;
    frame.close();
    for (const v of data) peak = Math.max(peak, Math.abs(v));
  }
  reader.cancel();
  return peak;
}"""


async def test_the_model_is_heard_through_an_audio_element(
    make_web_gateway: WebGatewayFactory, page_factory: PageFactory
) -> None:
    gateway = await make_web_gateway()
    pairing = make_pairing(gateway.store, base_url=gateway.https_url, ttl_s=600)
    page = await page_factory()
    await page.add_init_script(WATCH_PAGE)
    await open_page(page, pairing.url)
    await page.get_by_role("button", name="Talk").click()
    await wait_js(page, "document.body.dataset.state === 'live'")
    await wait_js(page, "Number(document.body.dataset.framesPlayed) >= 10")

    # The microphone is asked for, and given, echo cancellation.
    assert (await page.evaluate("() => window.__asked.audio.echoCancellation")) is True
    assert (await page.evaluate("() => window.__granted.echoCancellation")) is True

    # The model's voice is a live MediaStream track, playing in the <audio> element...
    speaker = await page.evaluate(SPEAKER)
    assert speaker["stream"] and speaker["tracks"] == [["live", True, False]], speaker
    assert speaker["paused"] is False
    await wait_js(page, f"document.getElementById('speaker').currentTime > {speaker['time'] + 1.0}")
    # ...and what reaches it is the model's voice (the echo of speech), not silence.
    assert await page.evaluate(LOUDEST_AT_SPEAKER) > 0.05

    # A steady stream from pplex-sim plays without an underrun for 12 s, past the 10 s after
    # which the buffer may shrink; the fixed buffer this one replaced had none here either.
    steady = await dataset(page)
    await wait_js(
        page,
        f"Number(document.body.dataset.framesPlayed) >= {int(steady['framesPlayed']) + 150}",
    )
    later = await dataset(page)
    assert later["underruns"] == steady["underruns"], (steady, later)
    assert 100 <= int(later["targetMs"]) <= 300
    stats_line = await page.locator("#stats").text_content()
    assert stats_line is not None and f"target {later['targetMs']} ms" in stats_line
    assert await page.evaluate("() => window.__csp") == []

    await page.get_by_role("button", name="Stop").click()
    await wait_js(page, "document.body.dataset.state === 'idle'")
    assert (await page.evaluate(SPEAKER))["paused"] is True
    await asyncio.wait_for(gateway.ctx.sessions.wait_empty(), 10)
