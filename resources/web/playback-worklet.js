// The model's 24 kHz voice -> the speaker, through a small jitter buffer.
// Playback starts once `target` samples are buffered; an underrun plays silence and waits for
// the target again; a buffer grown past `max` (a burst after a network stall) drops the oldest
// audio to get back to the target, because a live conversation must not fall behind.
const IN_RATE = 24000;

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.target = opts.targetSamples || 3840; // 160 ms
    this.max = opts.maxSamples || 9600; // 400 ms
    this.buf = new Float32Array(IN_RATE * 8);
    this.read = 0;
    this.size = 0;
    this.t = 0;
    this.step = IN_RATE / sampleRate; // input samples per output sample
    this.playing = false;
    this.stats = { chunks: 0, played: 0, underruns: 0, dropped: 0, buffered: 0, peak: 0 };
    this.sinceReport = 0;
    this.port.onmessage = (event) => {
      if (event.data === "reset") {
        this.read = 0; this.size = 0; this.t = 0; this.playing = false;
      } else if (event.data instanceof Float32Array) {
        this.push(event.data);
      }
    };
  }

  push(chunk) {
    const cap = this.buf.length;
    if (chunk.length >= cap) chunk = chunk.subarray(chunk.length - cap + 1);
    let write = (this.read + this.size) % cap;
    for (let i = 0; i < chunk.length; i++) {
      this.buf[write] = chunk[i];
      write = write + 1 === cap ? 0 : write + 1;
    }
    this.size += chunk.length;
    this.stats.chunks++;
    if (this.size > this.max) {
      const drop = this.size - this.target;
      this.read = (this.read + drop) % cap;
      this.size -= drop;
      this.stats.dropped += drop;
    }
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    const cap = this.buf.length;
    if (!this.playing && this.size >= this.target) this.playing = true;
    let j = 0;
    if (this.playing) {
      for (; j < out.length; j++) {
        if (this.size < 2) {
          // The last sample is stale by the time more audio comes: start clean from it.
          this.read = (this.read + this.size) % cap;
          this.size = 0;
          this.t = 0;
          this.playing = false;
          this.stats.underruns++;
          break;
        }
        const a = this.buf[this.read];
        const b = this.buf[this.read + 1 === cap ? 0 : this.read + 1];
        const y = a + (b - a) * this.t;
        out[j] = y;
        if (y > this.stats.peak) this.stats.peak = y;
        else if (-y > this.stats.peak) this.stats.peak = -y;
        this.t += this.step;
        while (this.t >= 1) {
          this.t -= 1;
          this.read = this.read + 1 === cap ? 0 : this.read + 1;
          this.size--;
          this.stats.played++;
        }
      }
    }
    for (; j < out.length; j++) out[j] = 0;
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    this.sinceReport += out.length;
    if (this.sinceReport >= sampleRate / 4) {
      this.sinceReport = 0;
      this.stats.buffered = this.size;
      this.port.postMessage({ ...this.stats });
    }
    return true;
  }
}

registerProcessor("pplex-playback", PlaybackProcessor);
