// The model's 24 kHz voice -> the speaker, through an adaptive jitter buffer.
//
// Playback starts once `target` samples are buffered; an underrun plays silence and waits for
// the target again. The target follows the measured arrival jitter: it grows at once when a
// chunk comes later than the ones before it promised, and shrinks slowly once that is out of
// the window. The buffer is steered towards what the worst recent arrival needed by skipping
// or repeating short stretches, crossfaded and only where the audio is quiet, so speech is
// never cut; only a buffer grown past `max` (a burst after a network stall) is cut back at
// once, because a live conversation must not fall behind.
const IN_RATE = 24000;
const WINDOW_S = 10; // how long a late arrival is remembered
// Lateness rises are measured against chunks at most this much older: a network stall shows in
// full, while the sender's clock running a little slow (which `excess` handles) adds little.
const HORIZON_S = 2;
const MAX_HISTORY = 1024;
const SAFETY = 480; // 20 ms kept in hand for the latest arrival in the window
const DEADBAND = 240; // 10 ms of excess is left alone: no hunting
const SHRINK_PER_S = 480; // the target falls by at most 20 ms per second
const SKIP = 240; // 10 ms removed per edit...
const SKIP_EVERY_S = 0.2; // ...at most five times a second: 50 ms/s in quiet stretches
const INSERT = 480; // up to 20 ms repeated per edit...
const INSERT_EVERY_S = 0.04; // ...every 40 ms at most: growing is the urgent direction
const XFADE = 120; // 5 ms crossfade at every edit

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.initialTarget = opts.targetSamples || 3840; // 160 ms
    this.minTarget = opts.minTargetSamples || 2400; // 100 ms
    this.maxTarget = opts.maxTargetSamples || 7200; // 300 ms
    this.max = opts.maxSamples || 9600; // 400 ms
    this.adaptive = opts.adaptive !== false;
    this.quietRms = opts.quietRms || 0.02; // about -34 dBFS: a pause, not a word
    this.buf = new Float32Array(IN_RATE * 8);
    this.step = IN_RATE / sampleRate; // input samples per output sample
    this.stats = {};
    this.reset();
    this.port.onmessage = (event) => {
      if (event.data === "reset") this.reset();
      else if (event.data === "stats") this.report(true); // answered: also a barrier
      else if (event.data instanceof Float32Array) this.push(event.data);
    };
  }

  reset() {
    this.read = 0;
    this.size = 0;
    this.t = 0;
    this.playing = false;
    this.started = false; // played since the reset: silence from now on is added delay
    this.target = this.initialTarget;
    this.jitter = 0;
    this.chunk = 0;
    this.firstArrival = 0;
    this.wanted = this.initialTarget; // what the window asks for; the target follows it down
    this.sent = 0; // stream samples received since the reset
    this.arrivals = []; // [time s, lateness in samples, chunk length, rise in samples]
    this.lows = []; // arrivals within HORIZON_S of the latest, lateness increasing
    this.margins = []; // [time s, buffer before arrival minus `adjust`]
    this.adjust = 0; // samples of delay added (silence, repeats) minus removed (skips)
    this.edit = null; // {offset, done}: a crossfade towards read + offset
    this.lastSkip = -1;
    this.lastInsert = -1;
    this.sinceReport = 0;
    Object.assign(this.stats, {
      chunks: 0, played: 0, underruns: 0, dropped: 0, skipped: 0, inserted: 0,
      buffered: 0, peak: 0, targetMs: 0, jitterMs: 0, time: 0,
    });
  }

  push(chunk) {
    const cap = this.buf.length;
    if (chunk.length >= cap / 2) chunk = chunk.subarray(chunk.length - cap / 2);
    if (this.size + chunk.length > cap / 2) this.cut(this.size + chunk.length - cap / 2);
    if (this.adaptive) this.measure(chunk.length);
    let write = (this.read + this.size) % cap;
    for (let i = 0; i < chunk.length; i++) {
      this.buf[write] = chunk[i];
      write = write + 1 === cap ? 0 : write + 1;
    }
    this.size += chunk.length;
    this.stats.chunks++;
    // Adaptive, the excess goes at the next render quantum, crossfaded (see plan()).
    if (!this.adaptive && this.size > this.max) this.cut(this.size - this.target);
  }

  // Drops the oldest `n` samples at once (a burst, or a stalled audio thread).
  cut(n) {
    if (this.edit) this.finishEdit(); // its positions are relative to `read`
    n = Math.min(n, this.size);
    this.read = (this.read + n) % this.buf.length;
    this.size -= n;
    this.adjust -= n;
    this.stats.dropped += n;
  }

  measure(length) {
    const now = currentTime;
    // Lateness: how far behind the sender's own schedule this chunk is. A rise from one
    // chunk to a later one is jitter the buffer must cover; a burst (lateness falling) is not.
    const lateness = now * IN_RATE - this.sent;
    this.sent += length;
    const lows = this.lows;
    while (lows.length && now - lows[0][0] > HORIZON_S) lows.shift();
    const rise = lows.length ? Math.max(0, lateness - lows[0][1]) : 0;
    while (lows.length && lows[lows.length - 1][1] >= lateness) lows.pop();
    lows.push([now, lateness]);
    const arrivals = this.arrivals;
    if (this.sent === length) this.firstArrival = now;
    arrivals.push([now, lateness, length, rise]);
    while (arrivals.length > MAX_HISTORY || now - arrivals[0][0] > WINDOW_S) arrivals.shift();
    let jitter = 0;
    let chunk = 0;
    for (const [, , n, r] of arrivals) {
      if (r > jitter) jitter = r;
      if (n > chunk) chunk = n;
    }
    this.jitter = jitter;
    this.chunk = chunk;
    const wanted = Math.min(this.maxTarget, Math.max(this.minTarget, chunk + jitter + SAFETY));
    if (wanted > this.target) this.target = wanted;
    this.wanted = wanted;
    // How much was in hand when this chunk came, in terms that stay true after later edits.
    if (this.playing) this.note(now, this.size - (this.edit ? this.edit.offset : 0));
    // Overdue: the silence played while waiting is already counted in `adjust`, so the
    // buffer as it is now is what a chunk this late finds: nothing.
    else if (this.started && this.size < 2) this.note(now, 0);
  }

  note(now, before) {
    const margins = this.margins;
    margins.push([now, before - this.adjust]);
    while (margins.length > MAX_HISTORY || now - margins[0][0] > WINDOW_S) margins.shift();
  }

  // What the latest arrival of the window would find in the buffer now, beyond what the
  // target keeps for it (SAFETY once the target has settled, more while it comes down):
  // positive is delay that can go, negative is delay that should be added.
  excess() {
    if (this.margins.length < 3) return 0;
    let low = Infinity;
    for (const [, m] of this.margins) if (m < low) low = m;
    return low + this.adjust - Math.max(SAFETY, this.target - this.chunk - this.jitter);
  }

  quiet(from, length) {
    const cap = this.buf.length;
    let energy = 0;
    let i = (((this.read + from) % cap) + cap) % cap;
    for (let k = 0; k < length; k++) {
      const s = this.buf[i];
      energy += s * s;
      i = i + 1 === cap ? 0 : i + 1;
    }
    return Math.sqrt(energy / length) < this.quietRms;
  }

  plan() {
    const now = currentTime;
    if (this.size > this.max) {
      this.startEdit(Math.max(0, Math.min(this.size - this.target, this.size - XFADE - 2)), true);
      return;
    }
    const excess = this.excess();
    if (excess > DEADBAND && now - this.lastSkip >= SKIP_EVERY_S) {
      const n = Math.min(SKIP, excess);
      if (this.size >= n + XFADE + 2 && this.quiet(0, n + XFADE)) {
        this.lastSkip = now;
        this.startEdit(n);
      }
    } else if (excess < 0 && now - this.lastInsert >= INSERT_EVERY_S) {
      const n = Math.min(INSERT, Math.max(48, Math.ceil(-excess)));
      if (this.size + n <= this.maxTarget && this.quiet(-n, n + XFADE)) {
        this.lastInsert = now;
        this.startEdit(-n);
      }
    }
  }

  startEdit(offset, forced = false) {
    if (offset === 0) return;
    this.edit = { offset, done: 0 };
    this.adjust -= offset;
    if (forced) this.stats.dropped += offset;
    else if (offset > 0) this.stats.skipped += offset;
    else this.stats.inserted -= offset;
  }

  sample(at) {
    const cap = this.buf.length;
    const i = (((this.read + at) % cap) + cap) % cap;
    const a = this.buf[i];
    const b = this.buf[i + 1 === cap ? 0 : i + 1];
    return a + (b - a) * this.t;
  }

  settle(dt) {
    // The target drifts down to what the window asks for, never faster than SHRINK_PER_S,
    // and only once a whole window has been seen: a rare late chunk must have had its chance.
    if (!this.adaptive || this.wanted >= this.target) return;
    if (!this.arrivals.length || currentTime - this.firstArrival < WINDOW_S) return;
    this.target = Math.max(this.wanted, this.target - SHRINK_PER_S * dt);
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    const cap = this.buf.length;
    if (!this.playing && this.size >= this.target) {
      this.playing = true;
      this.started = true;
    }
    if (this.playing && this.adaptive && !this.edit) this.plan();
    let j = 0;
    if (this.playing) {
      for (; j < out.length; j++) {
        const edit = this.edit;
        if (this.size < 2 + (edit && edit.offset > 0 ? edit.offset : 0)) {
          // The last sample is stale by the time more audio comes: start clean from it.
          if (edit) this.finishEdit();
          this.read = (((this.read + this.size) % cap) + cap) % cap;
          this.size = 0;
          this.t = 0;
          this.playing = false;
          this.stats.underruns++;
          break;
        }
        let y = this.sample(0);
        if (edit) {
          const w = edit.done / XFADE;
          y = y * (1 - w) + this.sample(edit.offset) * w;
        }
        out[j] = y;
        if (y > this.stats.peak) this.stats.peak = y;
        else if (-y > this.stats.peak) this.stats.peak = -y;
        this.t += this.step;
        while (this.t >= 1) {
          this.t -= 1;
          this.read = this.read + 1 === cap ? 0 : this.read + 1;
          this.size--;
          this.stats.played++;
          if (edit && ++edit.done >= XFADE) this.finishEdit();
        }
      }
    }
    if (j < out.length && this.started) {
      // Silence while a chunk is overdue or the buffer refills is delay added to the stream.
      this.adjust += (out.length - j) * this.step;
    }
    for (; j < out.length; j++) out[j] = 0;
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    this.settle(out.length / sampleRate);
    this.sinceReport += out.length;
    if (this.sinceReport >= sampleRate / 4) {
      this.sinceReport = 0;
      this.report();
    }
    return true;
  }

  finishEdit() {
    const offset = this.edit.offset;
    this.edit = null;
    const cap = this.buf.length;
    this.read = (((this.read + offset) % cap) + cap) % cap;
    this.size -= offset;
  }

  report(reply = false) {
    const s = this.stats;
    s.buffered = this.size;
    s.targetMs = Math.round((this.target / IN_RATE) * 1000);
    s.jitterMs = Math.round((this.jitter / IN_RATE) * 1000);
    s.time = currentTime;
    this.port.postMessage(reply ? { ...s, reply } : { ...s });
  }
}

registerProcessor("pplex-playback", PlaybackProcessor);
