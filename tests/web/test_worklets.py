"""The page's two AudioWorklets in Chromium's own audio engine, rendered offline (no clock).

Capture: 48 kHz microphone -> 24 kHz blocks, pitch kept, what would alias filtered out.
Playback: 24 kHz chunks -> 48 kHz speaker through the adaptive jitter buffer, fed scripted
arrival schedules (steady, jittery, stalled, a slow sender) and compared with the fixed buffer
it replaced (``adaptive: false``): it waits for its target, plays silence on an underrun, cuts
a burst back, grows its target at once on late arrivals and shrinks it slowly, and only ever
skips or repeats audio in pauses.
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from tests.signals import Pcm, dominant_frequency, rms, tone
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

# Chunks are posted while rendering is suspended at chosen times, like packets arriving; a
# "stats" request is the barrier that says the worklet has taken them before rendering goes on.
# The stream is one signal sent as bytes, each delivery naming how many samples of it come.
PLAYBACK = """async (plan) => {
  const bytes = Uint8Array.from(atob(plan.signal), (c) => c.charCodeAt(0));
  const signal = new Float32Array(bytes.buffer);
  const ctx = new OfflineAudioContext(1, Math.round(48000 * plan.seconds), 48000);
  await ctx.audioWorklet.addModule("/web/playback-worklet.js");
  const node = new AudioWorkletNode(ctx, "pplex-playback", {
    numberOfInputs: 0, outputChannelCount: [1], processorOptions: plan.options,
  });
  node.connect(ctx.destination);
  const timeline = [];
  let replied = null;
  node.port.onmessage = (e) => {
    timeline.push(e.data);
    if (e.data.reply && replied) replied();
  };
  let pos = 0;
  for (const [at, counts] of plan.deliveries) {
    ctx.suspend(at).then(async () => {
      for (const n of counts) { node.port.postMessage(signal.slice(pos, pos + n)); pos += n; }
      await new Promise((r) => { replied = r; node.port.postMessage("stats"); });
      ctx.resume();
    });
  }
  const rendered = (await ctx.startRendering()).getChannelData(0);
  await new Promise((r) => { replied = r; node.port.postMessage("stats"); });
  const out = new Uint8Array(rendered.buffer);
  let text = "";
  for (let i = 0; i < out.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, out.subarray(i, i + 0x8000));
  }
  return {out: btoa(text), timeline};
}"""
PAGE_OPTIONS = {
    "targetSamples": 3840,
    "minTargetSamples": 2400,
    "maxTargetSamples": 7200,
    "maxSamples": 9600,
}
QUANTUM_S = 128 / 48_000


@dataclass
class Played:
    out: Pcm  # 48 kHz
    timeline: list[dict[str, Any]]  # the worklet's stats, in the order it sent them

    @property
    def stats(self) -> dict[str, Any]:
        return self.timeline[-1]

    def at(self, time_s: float) -> dict[str, Any]:
        """The stats the worklet reported last before ``time_s`` of audio time."""
        return [s for s in self.timeline if s["time"] <= time_s][-1]

    def underruns_between(self, start_s: float, end_s: float) -> int:
        return int(self.at(end_s)["underruns"] - self.at(start_s)["underruns"])


async def play(
    page: Any,
    signal: Pcm,
    arrivals: list[tuple[float, int]],
    seconds: float,
    options: dict[str, Any] | None = None,
) -> Played:
    """Render ``signal`` sent as (arrival time, samples) chunks through the playback worklet."""
    grouped: dict[float, list[int]] = {}
    for at, count in arrivals:
        # Rendering can only stop at a render quantum, and only once at each.
        grouped.setdefault(round(round(at / QUANTUM_S) * QUANTUM_S, 6), []).append(count)
    plan = {
        "signal": base64.b64encode(np.asarray(signal, dtype="<f4").tobytes()).decode(),
        "deliveries": sorted(grouped.items()),
        "seconds": seconds,
        "options": options or PAGE_OPTIONS,
    }
    result = await page.evaluate(PLAYBACK, plan)
    out = np.frombuffer(base64.b64decode(result["out"]), dtype="<f4").astype(np.float32)
    return Played(out, result["timeline"])


def on_time(seconds: float, chunk: int = 1920, start: float = 0.0) -> list[tuple[float, int]]:
    return [(start + i * chunk / 24_000, chunk) for i in range(int(seconds * 24_000 / chunk))]


def speech_like(seconds: float, word_s: float = 0.3, pause_s: float = 0.2) -> Pcm:
    """Tone bursts ("words") with silent pauses between them, at 24 kHz."""
    word = tone(440, word_s, amplitude=0.3)
    period = np.concatenate([word, np.zeros(int(pause_s * 24_000), dtype=np.float32)])
    return np.tile(period, int(np.ceil(seconds / (word_s + pause_s))))[: int(seconds * 24_000)]


def words(out: Pcm, rate: int = 48_000) -> list[tuple[int, int]]:
    """(start, length) of every stretch where the output is audible, in samples."""
    loud = np.abs(out) > 0.02
    # Bridge the tone's own zero crossings: a word is loud within every 2 ms.
    window = int(0.002 * rate)
    bridged = np.convolve(loud.astype(np.int32), np.ones(window, dtype=np.int32), "same") > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], bridged.astype(np.int8), [0]])))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


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
    signal = tone(440, 0.8, amplitude=0.5)
    played = await play(gateway_page, signal, on_time(0.8), seconds=1)  # 800 ms, on time
    out = played.out
    start = int(np.argmax(np.abs(out) > 0.01))
    # Playback begins once 160 ms are buffered: the chunks of 0 and 80 ms.
    assert 0.079 * 48_000 <= start <= 0.09 * 48_000
    assert dominant_frequency(out[start : start + 24_000], rate=48_000) == pytest.approx(440, abs=3)
    assert played.stats["underruns"] <= 1  # at most the end of the stream


FIXED = {**PAGE_OPTIONS, "adaptive": False}  # the buffer as it was: a fixed 160 ms target
WORD = 14_400  # 300 ms at 48 kHz
BRIDGE = 96  # what words() adds by bridging


def whole_words(played: Played, after_s: float = 0.0) -> bool:
    """Every word played in full: nothing was cut out of speech or cut off by an underrun."""
    lengths = [n for at, n in words(played.out) if at >= after_s * 48_000]
    return bool(lengths) and all(abs(n - WORD - BRIDGE) <= 4 for n in lengths[:-1])


async def test_playback_underruns_play_silence_and_bursts_are_cut_back(gateway_page: Any) -> None:
    signal = tone(440, 1.0, amplitude=0.5)
    # 240 ms arrive, then nothing for 400 ms (an underrun), then a 720 ms burst at once.
    arrivals = [(0.0, 1920)] * 3 + [(0.64, 1920)] * 9
    played = await play(gateway_page, signal, arrivals, seconds=1.5)
    out, stats = played.out, played.stats
    assert stats["underruns"] >= 1
    gap = out[int(0.30 * 48_000) : int(0.62 * 48_000)]
    assert np.max(np.abs(gap)) == 0.0  # silence, not garbage, while starved
    # The stall shows as jitter at once: the target jumps to its ceiling (300 ms)...
    assert played.at(0.65)["jitterMs"] >= 390 and played.at(0.65)["targetMs"] == 300
    # ...and the 720 ms burst, past the 400 ms limit, is cut back to it in one crossfade.
    assert stats["dropped"] == 9 * 1920 - 7200 and stats["skipped"] == 0
    after = out[int(0.62 * 48_000) :]
    audible = np.flatnonzero(np.abs(after) > 0.01)
    assert audible.size and 0.29 < (audible[-1] - audible[0]) / 48_000 < 0.33  # not 720 ms
    # The cut is a crossfade between two stretches of the same tone: no step steeper than the
    # tone's own slope, from where playback resumed to where the stream ends.
    resumed = after[audible[0] + 4 : audible[-1] - 4]
    assert np.max(np.abs(np.diff(resumed))) < 2 * np.pi * 440 / 48_000 * 0.5 * 1.05


async def test_a_steady_stream_loses_its_extra_delay_in_pauses_only(gateway_page: Any) -> None:
    signal = speech_like(16)
    adaptive = await play(gateway_page, signal, on_time(16), seconds=16)
    fixed = await play(gateway_page, signal, on_time(16), seconds=16, options=FIXED)
    # No underrun either way until the stream ends: steadiness costs nothing.
    assert adaptive.underruns_between(0, 15.9) == fixed.underruns_between(0, 15.9) == 0
    # With no jitter the target falls from 160 ms to 100 ms (a chunk and 20 ms): only once a
    # whole 10 s window has been seen, then by 20 ms a second at most, and the buffer with it.
    targets = [s["targetMs"] for s in adaptive.timeline]
    assert targets[0] == 160 and adaptive.stats["targetMs"] == 100
    assert all(b <= a for a, b in itertools.pairwise(targets))
    assert adaptive.at(10.0)["targetMs"] == 160 and adaptive.at(10.0)["skipped"] == 0
    assert adaptive.at(11.0)["targetMs"] >= 135
    # The excess went out of the pauses, 10 ms at a time: every word is whole and comes
    # earlier than with the fixed buffer by exactly what was skipped.
    skipped = adaptive.stats["skipped"]
    assert 40 * 24 <= skipped <= 70 * 24 and adaptive.stats["dropped"] == 0
    assert whole_words(adaptive) and whole_words(fixed)
    lead = words(fixed.out)[-2][0] - words(adaptive.out)[-2][0]
    assert lead == pytest.approx(skipped * 2, abs=4)


def jittery(
    seconds: float, start: float, end: float, late_s: float, seed: int = 7
) -> list[tuple[float, int]]:
    """80 ms chunks; those due between ``start`` and ``end`` come up to ``late_s`` late, in order."""
    rng = np.random.default_rng(seed)
    arrivals, last = [], 0.0
    for due, count in on_time(seconds):
        at = due + (float(rng.uniform(0, late_s)) if start <= due < end else 0.0)
        last = max(last, at)
        arrivals.append((last, count))
    return arrivals


async def test_jitter_grows_the_target_at_once_and_calm_shrinks_it_slowly(
    gateway_page: Any,
) -> None:
    signal = speech_like(24)
    arrivals = jittery(24, start=2, end=6, late_s=0.15)  # 4 s of up to 150 ms late
    adaptive = await play(gateway_page, signal, arrivals, seconds=24)
    fixed = await play(gateway_page, signal, arrivals, seconds=24, options=FIXED)
    assert adaptive.at(1.9)["targetMs"] == 160
    # The first late chunks are not foreseeable; from then on the buffer covers them.
    assert adaptive.at(2.4)["targetMs"] >= 200 and adaptive.at(2.4)["jitterMs"] >= 100
    assert adaptive.underruns_between(2.5, 23.9) == 0
    assert adaptive.underruns_between(0, 23.9) <= fixed.underruns_between(0, 23.9)
    assert whole_words(adaptive, after_s=2.5)
    # Calm again at 6 s: the target holds while the late chunks are in the 10 s window, then
    # falls by at most 20 ms a second, back to 100 ms.
    held = adaptive.at(6.0)["targetMs"]
    assert adaptive.at(15.5)["targetMs"] >= held - 20
    late = [s for s in adaptive.timeline if s["time"] >= 15.5]
    for a, b in itertools.pairwise(late):
        assert a["targetMs"] - b["targetMs"] <= 20 * (b["time"] - a["time"]) + 1
    assert adaptive.stats["targetMs"] == 100
    # The fixed buffer kept the delay its underrun added for good; this one gave it back.
    lead = words(fixed.out)[-2][0] - words(adaptive.out)[-2][0]
    assert lead >= 0.08 * 48_000


async def test_a_slow_sender_is_absorbed_by_stretching_pauses(gateway_page: Any) -> None:
    signal = speech_like(16)
    period = 1920 / 24_000 * 1.01  # the sender's clock 1 % slow: 150 ms behind after 15 s
    arrivals = [(i * period, 1920) for i in range(int(15 / period))]
    adaptive = await play(gateway_page, signal, arrivals, seconds=15)
    fixed = await play(gateway_page, signal, arrivals, seconds=15, options=FIXED)
    end = arrivals[-1][0]
    assert fixed.underruns_between(0, end) >= 1  # its 80 ms of slack runs out
    assert adaptive.underruns_between(0, end) == 0
    assert adaptive.stats["inserted"] >= 100 * 24  # silence repeated in the pauses
    assert whole_words(adaptive)
    assert adaptive.stats["targetMs"] <= 130  # a slow clock is not mistaken for jitter
