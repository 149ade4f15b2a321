// Microphone -> 24 kHz mono Float32 blocks of 80 ms for /ws/stream?format=f32le.
// Runs on the audio rendering thread: no allocation per call beyond the posted block.
const OUT_RATE = 24000;
const BLOCK = 1920; // 80 ms, one model frame: fewer, larger WebSocket messages

// A 2nd-order Butterworth low-pass (RBJ cookbook); two in series keep what folds back above
// 12 kHz well down before the interpolation decimates.
function lowPass(cutoff, rate) {
  const w = (2 * Math.PI * cutoff) / rate;
  const alpha = Math.sin(w) / Math.SQRT2;
  const cos = Math.cos(w);
  const a0 = 1 + alpha;
  return {
    b0: (1 - cos) / 2 / a0, b1: (1 - cos) / a0, b2: (1 - cos) / 2 / a0,
    a1: (-2 * cos) / a0, a2: (1 - alpha) / a0,
    x1: 0, x2: 0, y1: 0, y2: 0,
  };
}

function filter(f, x) {
  const y = f.b0 * x + f.b1 * f.x1 + f.b2 * f.x2 - f.a1 * f.y1 - f.a2 * f.y2;
  f.x2 = f.x1; f.x1 = x; f.y2 = f.y1; f.y1 = y;
  return y;
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / OUT_RATE; // input samples per output sample
    this.filters = this.step > 1.01 ? [lowPass(10000, sampleRate), lowPass(10000, sampleRate)] : [];
    this.t = 0; // read position in the current input block; -1 is the previous block's last sample
    this.prev = 0;
    this.mono = new Float32Array(128);
    this.block = new Float32Array(BLOCK);
    this.fill = 0;
    this.energy = 0;
  }

  process(inputs, outputs) {
    const input = inputs[0];
    for (const out of outputs[0] || []) out.fill(0); // connected only to keep the node pulled
    if (!input || input.length === 0 || input[0].length === 0) return true;
    const n = input[0].length;
    if (this.mono.length < n) this.mono = new Float32Array(n);
    const mono = this.mono;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < input.length; c++) s += input[c][i];
      s /= input.length;
      for (const f of this.filters) s = filter(f, s);
      mono[i] = s;
    }
    while (this.t <= n - 1) {
      const i = Math.floor(this.t);
      const frac = this.t - i;
      const a = i < 0 ? this.prev : mono[i];
      const b = i + 1 < n ? mono[i + 1] : a;
      const y = a + (b - a) * frac;
      this.block[this.fill++] = y;
      this.energy += y * y;
      if (this.fill === BLOCK) this.flush();
      this.t += this.step;
    }
    this.t -= n;
    this.prev = mono[n - 1];
    return true;
  }

  flush() {
    const block = this.block;
    const level = Math.sqrt(this.energy / BLOCK);
    this.port.postMessage({ pcm: block, level }, [block.buffer]);
    this.block = new Float32Array(BLOCK);
    this.fill = 0;
    this.energy = 0;
  }
}

registerProcessor("pplex-capture", CaptureProcessor);
