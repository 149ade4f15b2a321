"""The page's two AudioWorklets in Chromium's own audio engine, rendered offline (no clock).

Capture: 48 kHz microphone -> 24 kHz blocks, pitch kept, what would alias filtered out.
Playback: 24 kHz chunks -> 48 kHz speaker through the jitter buffer: it waits for its target,
plays silence on an underrun, and drops old audio after a burst.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from tests.signals import dominant_frequency, rms, tone
from tests.skips import skip_or_fail
from tests.web.conftest import WebGatewayFactory

if importlib.util.find_spec("playwright") is None:
    skip_or_fail("playwright is not installed (pip install -e '.[test]').", allow_module_level=True)
pytestmark = pytest.mark.asyncio(loop_scope="session")

CAPTURE = """async (freq) => {
  const ctx = new OfflineAudioContext(1, 48000, 48000);
  await ctx.audioWorklet.addModule("/web/capture-worklet.js");
  const node = new AudioWorkletNode(ctx, "pplex-capture", {outputChannelCount: [1]});
  const blocks = [];
  node.port.onmessage = (e) => blocks.push(Array.from(e.data.pcm));
  const osc = new OscillatorNode(ctx, {frequency: freq});
  const gain = new GainNode(ctx, {gain: 0.5});
  osc.connect(gain).connect(node).connect(ctx.destination);
  osc.start();
  await ctx.startRendering();
  while (blocks.length < 12) await new Promise((r) => setTimeout(r, 10));
  return blocks;
}"""

# Chunks are posted while rendering is suspended at chosen times, like packets arriving.
PLAYBACK = """async (plan) => {
  const ctx = new OfflineAudioContext(1, 48000 * plan.seconds, 48000);
  await ctx.audioWorklet.addModule("/web/playback-worklet.js");
  const node = new AudioWorkletNode(ctx, "pplex-playback", {
    numberOfInputs: 0, outputChannelCount: [1],
    processorOptions: {targetSamples: 3840, maxSamples: 9600},
  });
  node.connect(ctx.destination);
  let stats = null;
  node.port.onmessage = (e) => { stats = e.data; };
  for (const [at, chunks] of plan.deliveries) {
    ctx.suspend(at).then(async () => {
      for (const samples of chunks) node.port.postMessage(new Float32Array(samples));
      await new Promise((r) => setTimeout(r, 20));  // let the message reach the audio thread
      ctx.resume();
    });
  }
  const rendered = await ctx.startRendering();
  await new Promise((r) => setTimeout(r, 50));
  return {out: Array.from(rendered.getChannelData(0)), stats};
}"""


@pytest_asyncio.fixture(loop_scope="session")
async def gateway_page(make_web_gateway: WebGatewayFactory, page_factory: Any) -> Any:
    gateway = await make_web_gateway()
    page = await page_factory()
    await page.goto(gateway.https_url + "/")  # same origin as the worklet files
    return page


async def test_capture_resamples_to_24khz_and_keeps_the_pitch(gateway_page: Any) -> None:
    blocks = await gateway_page.evaluate(CAPTURE, 1000)
    assert all(len(b) == 1920 for b in blocks)  # 80 ms blocks
    pcm = np.concatenate([np.asarray(b, dtype=np.float32) for b in blocks])
    assert len(pcm) >= 23_000  # one second in, about 24000 samples out
    assert dominant_frequency(pcm[1920:]) == pytest.approx(1000, abs=3)
    assert rms(pcm[1920:]) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)

    # 20 kHz cannot exist at 24 kHz; unfiltered it would fold back to 4 kHz at full level.
    folded = np.concatenate(
        [np.asarray(b, dtype=np.float32) for b in await gateway_page.evaluate(CAPTURE, 20_000)]
    )
    assert rms(folded[1920:]) < 0.05 * 0.5 / np.sqrt(2)


async def test_playback_waits_for_its_target_then_plays_at_pitch(gateway_page: Any) -> None:
    chunk = tone(440, 0.08, amplitude=0.5)
    deliveries = [[round(0.08 * i, 4), [chunk.tolist()]] for i in range(10)]  # 800 ms, on time
    result = await gateway_page.evaluate(PLAYBACK, {"seconds": 1, "deliveries": deliveries})
    out = np.asarray(result["out"], dtype=np.float32)
    start = int(np.argmax(np.abs(out) > 0.01))
    # Playback begins once 160 ms are buffered: the chunks of 0 and 80 ms.
    assert 0.079 * 48_000 <= start <= 0.09 * 48_000
    assert dominant_frequency(out[start : start + 24_000], rate=48_000) == pytest.approx(440, abs=3)
    assert result["stats"]["underruns"] <= 1  # at most the end of the stream


async def test_playback_underruns_play_silence_and_bursts_are_dropped(gateway_page: Any) -> None:
    chunk = tone(440, 0.08, amplitude=0.5).tolist()
    # 240 ms arrive, then nothing for 400 ms (an underrun), then a 720 ms burst at once.
    deliveries = [[0.0, [chunk] * 3], [0.64, [chunk] * 9]]
    result = await gateway_page.evaluate(PLAYBACK, {"seconds": 1.5, "deliveries": deliveries})
    out = np.asarray(result["out"], dtype=np.float32)
    stats = result["stats"]
    assert stats["underruns"] >= 1
    gap = out[int(0.30 * 48_000) : int(0.62 * 48_000)]
    assert np.max(np.abs(gap)) == 0.0  # silence, not garbage, while starved
    # The burst passes the 400 ms limit at its sixth chunk (11520 samples), which falls back
    # to the 160 ms target; the last three chunks then bring it to 400 ms again.
    assert stats["dropped"] == 6 * 1920 - 3840
    audible = np.flatnonzero(np.abs(out[int(0.62 * 48_000) :]) > 0.01)
    assert audible.size and 0.38 < audible[-1] / 48_000 < 0.44  # 400 ms, not 720 ms
