// The talk page: key handling, persona and voice, microphone -> /ws/stream -> speaker.
// Every failure ends as a sentence in the alert region; counters for tests and diagnostics
// live on document.body.dataset (framesReceived, framesPlayed, underruns, targetMs, ...).

const KEY_STORE = "pplex.key";
const PREFS_STORE = "pplex.talk";
const FRAME_SAMPLES = 1920; // 80 ms at 24 kHz, what the gateway sends per message
const MAX_BUFFERED_BYTES = 96000; // ~3 s of f32 audio queued in the socket: the network is stuck
// A live model sends audio every 80 ms. Silence this long means the network is gone, which a
// WebSocket on a phone that left the Wi-Fi may not notice for minutes.
const STALL_MS = 5000;
// The gateway limits a persona by its size in the URL, where a CJK character takes 9 bytes:
// the box's 2,000 characters do not fit. /v1/info tells the limit; this is its usual value.
let personaLimitBytes = 6144;

const $ = (id) => document.getElementById(id);
const ui = {
  keySection: $("key-section"),
  keyForm: $("key-form"),
  keyInput: $("key-input"),
  keyOk: $("key-ok"),
  keyName: $("key-name"),
  keyExpiry: $("key-expiry"),
  forgetKey: $("forget-key"),
  setup: $("setup"),
  setupSummary: $("setup-summary"),
  preset: $("persona-preset"),
  persona: $("persona-text"),
  voice: $("voice"),
  talk: $("talk-button"),
  talkLabel: $("talk-label"),
  status: $("status"),
  error: $("error"),
  transcript: $("transcript"),
  stats: $("stats"),
  speaker: $("speaker"),
};

const counters = {
  framesReceived: 0,
  framesPlayed: 0,
  underruns: 0,
  droppedSamples: 0,
  peakPlayed: 0, // loudest sample played: an echo of speech is far above silence
  targetMs: 0, // what the adaptive playback buffer aims to hold after a chunk arrives
  bufferedMs: 0,
  jitterMs: 0,
  skippedMs: 0, // delay taken out of pauses, and put into them
  insertedMs: 0,
  blocksSent: 0,
  textPieces: 0,
};
window.pplexTalk = { counters };

let key = null; // the key in use; also in localStorage so a paired phone stays paired
let presets = [];
let session = null; // the live session, or null

// -- small helpers ---------------------------------------------------------------------------

function store(name, value) {
  try {
    if (value === null) localStorage.removeItem(name);
    else localStorage.setItem(name, value);
  } catch {
    // Private browsing may refuse storage; the page still works for this visit.
  }
}

function load(name) {
  try {
    return localStorage.getItem(name);
  } catch {
    return null;
  }
}

function setStatus(text) {
  ui.status.textContent = text;
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = false;
  document.body.dataset.error = text;
  // On a phone the message can sit below the fold; screen readers hear it via role=alert.
  ui.error.scrollIntoView({ block: "nearest" });
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = "";
  delete document.body.dataset.error;
}

function setState(state) {
  document.body.dataset.state = state;
  // The label says what a press does; a toggle state on top would contradict it.
  ui.talkLabel.textContent = state === "idle" ? "Talk" : "Stop";
}

function publishCounters() {
  for (const [name, value] of Object.entries(counters)) document.body.dataset[name] = value;
  // Here and not in the status line: that one is read aloud, and these change four times a second.
  ui.stats.textContent =
    `received ${counters.framesReceived} · played ${counters.framesPlayed} · ` +
    `underruns ${counters.underruns} · buffer ${counters.bufferedMs} ms ` +
    `(target ${counters.targetMs} ms)`;
}

class GatewayError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// A JSON API call with the key; failures become GatewayError with the gateway's own sentence.
async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  if (options.key) headers["X-API-Key"] = options.key;
  let response;
  try {
    response = await fetch(path, { headers, cache: "no-store" });
  } catch {
    throw new GatewayError(
      "The gateway cannot be reached. Check that this device is on the same network and that " +
        "pplex-desktop is still serving.",
      "unreachable",
      0,
    );
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const err = body && body.error;
    const message = err && err.message ? err.message : `The gateway answered ${response.status}.`;
    throw new GatewayError(message, (err && err.code) || "http_error", response.status);
  }
  return body;
}

function explainRefusal(error) {
  if (error.status === 401) {
    return `This key was refused: ${error.message} Pair again from pplex-desktop or paste a new key.`;
  }
  if (error.code === "queue_full") return `The queue is full. ${error.message}`;
  if (error.code === "backend_unavailable") return `The model is not available. ${error.message}`;
  return error.message;
}

// -- key -------------------------------------------------------------------------------------

function takeKeyFromAddress() {
  // A pairing URL carries the key in the fragment, which never reaches the server; it is kept
  // in localStorage and removed from the address bar so it is not shared or bookmarked.
  if (!location.hash) return;
  const params = new URLSearchParams(location.hash.slice(1));
  const fromUrl = params.get("key");
  if (fromUrl) {
    store(KEY_STORE, fromUrl.trim());
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function showKeyForm(prefill) {
  ui.keySection.classList.remove("paired");
  ui.keyForm.hidden = false;
  ui.keyOk.hidden = true;
  ui.keyInput.value = prefill || "";
}

function describeExpiry(expiresAt) {
  if (!expiresAt) return "Access key in use";
  const hours = (expiresAt * 1000 - Date.now()) / 3600000;
  if (hours < 1) return "Expires within the hour";
  if (hours < 48) return `Expires in ${Math.round(hours)} h`;
  return `Expires in ${Math.round(hours / 24)} days`;
}

async function useKey(candidate, { quiet = false } = {}) {
  if (!candidate) {
    showKeyForm("");
    return false;
  }
  try {
    const info = await api("/v1/info", { key: candidate });
    key = candidate;
    store(KEY_STORE, candidate);
    ui.keySection.classList.add("paired");
    ui.keyForm.hidden = true;
    ui.keyOk.hidden = false;
    ui.keyName.textContent = info.key.name;
    ui.keyExpiry.textContent = describeExpiry(info.key.expires_at);
    if (info.limits && info.limits.max_prompt_encoded_bytes > 0) {
      personaLimitBytes = info.limits.max_prompt_encoded_bytes;
    }
    fillVoices(info.voices, info.defaults.voice);
    if (!info.backends.some((b) => b.reachable)) {
      showError(
        "No model server is reachable right now; the gateway keeps retrying. You can still " +
          "press Talk and wait.",
      );
    } else if (!quiet) {
      clearError();
    }
    return true;
  } catch (error) {
    key = null;
    showKeyForm(candidate);
    showError(explainRefusal(error));
    return false;
  }
}

// -- persona and voice -----------------------------------------------------------------------

function prefs() {
  try {
    return JSON.parse(load(PREFS_STORE) || "{}");
  } catch {
    return {};
  }
}

function savePrefs() {
  store(PREFS_STORE, JSON.stringify({ persona: ui.persona.value, voice: ui.voice.value }));
  updateSummary();
}

function updateSummary() {
  const preset = presets.find((p) => p.text === ui.persona.value);
  const name = preset ? preset.title : "Custom persona";
  ui.setupSummary.textContent = `${name} · ${ui.voice.value || "default voice"}`;
}

function fillPresets(list, fallback) {
  presets = list;
  ui.preset.replaceChildren();
  for (const [i, p] of list.entries()) ui.preset.add(new Option(p.title, String(i)));
  ui.preset.add(new Option("Custom…", "custom"));
  const saved = prefs().persona;
  ui.persona.value = saved || fallback || (list[0] && list[0].text) || "";
  syncPreset();
}

function syncPreset() {
  const index = presets.findIndex((p) => p.text === ui.persona.value);
  ui.preset.value = index >= 0 ? String(index) : "custom";
  updateSummary();
}

function fillVoices(voices, fallback) {
  const current = ui.voice.value || prefs().voice || fallback;
  ui.voice.replaceChildren();
  for (const v of voices) ui.voice.add(new Option(v.label, v.id));
  if (voices.some((v) => v.id === current)) ui.voice.value = current;
  else if (voices.some((v) => v.id === fallback)) ui.voice.value = fallback;
  updateSummary();
}

// -- transcript ------------------------------------------------------------------------------

function newTurn() {
  ui.transcript.querySelector(".placeholder")?.remove();
  const p = document.createElement("p");
  p.className = "turn";
  p.dataset.voice = ui.voice.value || "model";
  ui.transcript.append(p);
  return p;
}

function addText(turn, piece) {
  turn.textContent = (turn.textContent + piece).replace(/^\s+/, "");
  counters.textPieces++;
  const t = ui.transcript;
  if (t.scrollHeight - t.scrollTop - t.clientHeight < 80) t.scrollTop = t.scrollHeight;
}

// -- audio -----------------------------------------------------------------------------------

let audioContext = null;
let modulesLoaded = null;
let speakerStream = null; // the playback worklet's output, played by the <audio> element
let speakerPlaying = null;

function contextInGesture() {
  // Safari and Chrome only start audio from a user gesture: create and resume it right here,
  // before the first await of the click handler.
  if (!audioContext) {
    const Ctor = window.AudioContext || window.webkitAudioContext;
    audioContext = new Ctor({ latencyHint: "interactive" });
    // The model's voice leaves through an <audio> element playing a MediaStream, not through
    // Web Audio's own output: Safari plays MediaStream audio through the voice-processing unit
    // that cancels echo from the microphone, and Web Audio beside it. Desktop Chromium cancels
    // all it plays either way; Android leaves it to the phone's own canceller.
    speakerStream = audioContext.createMediaStreamDestination();
    speakerStream.channelCount = 1;
    ui.speaker.srcObject = speakerStream.stream;
  }
  // In the gesture as well: a media element may only start playing sound from one.
  speakerPlaying = ui.speaker.play().then(
    () => null,
    (error) => error, // told in start(), after the checks that come first
  );
  if (navigator.audioSession) {
    try {
      // iOS: play through the speaker while recording, even with the ringer switched off.
      navigator.audioSession.type = "play-and-record";
    } catch {
      // Not every browser lets the page choose; the default still works with headphones.
    }
  }
  return audioContext.resume();
}

function loadModules() {
  modulesLoaded ??= Promise.all([
    audioContext.audioWorklet.addModule("/web/capture-worklet.js"),
    audioContext.audioWorklet.addModule("/web/playback-worklet.js"),
  ]);
  return modulesLoaded;
}

function microphoneError(error) {
  const name = error && error.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return (
      "The browser was not allowed to use the microphone. Allow the microphone for this site " +
      "(in the address bar or the browser's site settings) and press Talk again."
    );
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No microphone was found. Connect one and press Talk again.";
  }
  if (name === "NotReadableError" || name === "AbortError") {
    return "The microphone is in use by another app or could not be opened. Close that app and press Talk again.";
  }
  return `The microphone could not be started (${name || error}).`;
}

// -- the session -----------------------------------------------------------------------------

function encodedLength(text) {
  // Counted as the gateway counts: every UTF-8 byte outside A-Z a-z 0-9 - . _ ~ takes three.
  let size = 0;
  for (const b of new TextEncoder().encode(text)) {
    const plain =
      (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) ||
      b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
    size += plain ? 1 : 3;
  }
  return size;
}

function personaProblem() {
  const size = encodedLength(ui.persona.value.trim());
  if (size <= personaLimitBytes) return null;
  return (
    `The persona is too long: it takes ${size} bytes once encoded for the web address, and ` +
    `the limit is ${personaLimitBytes} (about ${Math.floor(personaLimitBytes / 9)} Chinese, ` +
    "Japanese or Korean characters, or 2,000 in English). Shorten it and press Talk again."
  );
}

function sessionParams() {
  return new URLSearchParams({
    format: "f32le",
    persona: ui.persona.value.trim(),
    voice: ui.voice.value,
  });
}

async function start() {
  clearError();
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError(insecureMessage());
    return;
  }
  if (!key) {
    showError("Enter an access key first: pair this device from pplex-desktop or paste a key.");
    ui.keyInput.focus();
    return;
  }
  const tooLong = personaProblem();
  if (tooLong) {
    showError(tooLong);
    ui.persona.focus();
    return;
  }
  const resumed = contextInGesture();
  for (const name of Object.keys(counters)) counters[name] = 0;
  const s = { ws: null, stream: null, nodes: [], opened: false, ended: null, stopping: false };
  session = s;
  setState("connecting");
  setStatus("Checking the key and the queue…");
  try {
    await resumed;
    await api(`/v1/stream/check?${sessionParams()}`, { key });
    if (s.stopping) return;
    setStatus("Waiting for the microphone…");
    try {
      s.stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: 1,
          echoCancellation: true, // the speaker must not talk to the model through the mic
          noiseSuppression: true,
          autoGainControl: true,
        },
        video: false,
      });
    } catch (error) {
      throw new Error(microphoneError(error));
    }
    if (s.stopping) return finish(s);
    // iOS may suspend the context while the microphone prompt is up; it is unlocked now.
    await audioContext.resume();
    await loadModules();
    if (s.stopping) return finish(s);
    const refused = await speakerPlaying;
    if (refused) {
      throw new Error(
        `The browser did not let this page play sound (${refused.name || refused}). Allow ` +
          "sound for this site and press Talk again.",
      );
    }
    buildGraph(s);
    openSocket(s);
  } catch (error) {
    if (error instanceof GatewayError) showError(explainRefusal(error));
    else showError(error.message || `The conversation could not start (${error}).`);
    finish(s);
  }
}

function buildGraph(s) {
  const ctx = audioContext;
  const source = ctx.createMediaStreamSource(s.stream);
  const capture = new AudioWorkletNode(ctx, "pplex-capture", {
    numberOfInputs: 1,
    numberOfOutputs: 1,
    outputChannelCount: [1],
  });
  const playback = new AudioWorkletNode(ctx, "pplex-playback", {
    numberOfInputs: 0,
    numberOfOutputs: 1,
    outputChannelCount: [1],
    // Start at 160 ms, follow the jitter between 100 and 300 ms, cut bursts back past 400 ms.
    processorOptions: {
      targetSamples: 3840,
      minTargetSamples: 2400,
      maxTargetSamples: 7200,
      maxSamples: 9600,
    },
  });
  source.connect(capture);
  capture.connect(ctx.destination); // silent; keeps the capture node pulled by the graph
  playback.connect(speakerStream); // and not to ctx.destination: once, through the element
  capture.port.onmessage = ({ data }) => {
    ui.talk.style.setProperty("--level", Math.min(1, data.level * 8).toFixed(2));
    const ws = s.ws;
    if (!s.live || !ws || ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) return; // the network is stuck: stay live
    ws.send(data.pcm.buffer);
    counters.blocksSent++;
  };
  playback.port.onmessage = ({ data }) => {
    counters.framesPlayed = Math.floor(data.played / FRAME_SAMPLES);
    counters.underruns = data.underruns;
    counters.droppedSamples = data.dropped;
    counters.peakPlayed = Number(data.peak.toFixed(3));
    counters.targetMs = data.targetMs;
    counters.bufferedMs = Math.round(data.buffered / 24);
    counters.jitterMs = data.jitterMs;
    counters.skippedMs = Math.round(data.skipped / 24);
    counters.insertedMs = Math.round(data.inserted / 24);
    publishCounters();
  };
  s.nodes = [source, capture, playback];
  s.playback = playback;
}

function openSocket(s) {
  const url = new URL("/ws/stream", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const params = sessionParams();
  params.set("api_key", key);
  url.search = params.toString();
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  s.ws = ws;
  s.turn = null;
  setStatus("Connecting…");
  setState("connecting");
  ws.onopen = () => {
    s.opened = true;
  };
  s.watchdog = setInterval(() => {
    if (s.live && session === s && performance.now() - s.lastHeard > STALL_MS) {
      showError(
        `The connection to the gateway was lost: nothing arrived for ${STALL_MS / 1000} s. ` +
          "Check the network and press Talk to try again.",
      );
      finish(s);
    }
  }, 1000);
  ws.onmessage = (event) => onMessage(s, event);
  ws.onclose = (event) => onClose(s, event);
}

function onMessage(s, event) {
  s.lastHeard = performance.now();
  if (event.data instanceof ArrayBuffer) {
    counters.framesReceived++;
    s.playback.port.postMessage(new Float32Array(event.data), [event.data]);
    return;
  }
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    return;
  }
  if (message.type === "queue") {
    setState("queued");
    const eta = message.eta_s ? `, about ${Math.max(1, Math.round(message.eta_s))} s` : "";
    setStatus(`The model is busy: you are number ${message.position} in the queue${eta}.`);
    document.body.dataset.queuePosition = message.position;
  } else if (message.type === "ready") {
    s.live = true;
    s.lastHeard = performance.now();
    setState("live");
    ui.setup.open = false;
    setStatus("Live: speak now. Press Stop to end.");
    delete document.body.dataset.queuePosition;
  } else if (message.type === "text") {
    s.turn ??= newTurn();
    addText(s.turn, message.text);
  } else if (message.type === "error") {
    // The model's own complaint says more than the gateway's closing sentence after it.
    if (message.code === "model_error") s.modelError = message.message;
    s.errorMessage ??= message.message;
  } else if (message.type === "end") {
    s.ended = message;
  }
  publishCounters();
}

async function onClose(s, event) {
  if (session === s && !s.stopping) {
    if (s.ended) {
      const model = s.modelError ? ` The model said: “${s.modelError}”.` : "";
      if (s.errorMessage || event.code !== 1000) {
        showError(`The session ended: ${s.ended.message}${model}`);
      } else {
        setStatus(`The session ended: ${s.ended.message}`);
      }
    } else if (!s.opened) {
      showError(await diagnoseRefusal());
    } else if (s.errorMessage) {
      showError(`The session ended: ${s.errorMessage}`);
    } else {
      showError(
        `The connection to the gateway was lost${event.reason ? ` (${event.reason})` : ""}. ` +
          "Check the network and press Talk to try again.",
      );
    }
  }
  finish(s);
}

// Browsers hide why an upgrade failed; the same checks over plain HTTP tell the reason.
async function diagnoseRefusal() {
  try {
    await api(`/v1/stream/check?${sessionParams()}`, { key });
  } catch (error) {
    return explainRefusal(error);
  }
  return (
    "The gateway refused the connection before the session started. If this page was not " +
    "opened from the gateway's own address, open it from there and try again."
  );
}

function finish(s) {
  // Resources are released on every call: a microphone granted after Stop was pressed must
  // still be switched off.
  s.live = false;
  clearInterval(s.watchdog);
  ui.talk.style.setProperty("--level", "0");
  if (s.ws && s.ws.readyState <= WebSocket.OPEN) s.ws.close(1000, "The user ended the session.");
  for (const node of s.nodes.splice(0)) node.disconnect();
  if (session === s || !session) ui.speaker.pause();
  if (s.stream) for (const track of s.stream.getTracks()) track.stop();
  if (s.finished) return;
  s.finished = true;
  if (session === s) {
    session = null;
    setState("idle");
    if (ui.error.hidden && !/ended/.test(ui.status.textContent)) setStatus("Press Talk to start.");
    else if (!ui.error.hidden) setStatus("Not connected.");
  }
  publishCounters();
}

function stop() {
  const s = session;
  if (!s) return;
  s.stopping = true;
  setStatus("Session ended.");
  finish(s);
}

function insecureMessage() {
  return (
    "The browser only shares the microphone with secure pages, and this page was opened over " +
    `plain HTTP (${location.origin}). Open the gateway's https:// address instead; on the ` +
    "computer running pplex-desktop, http://localhost works too."
  );
}

// -- wiring ----------------------------------------------------------------------------------

async function init() {
  takeKeyFromAddress();
  ui.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    useKey(ui.keyInput.value.trim());
  });
  ui.forgetKey.addEventListener("click", () => {
    store(KEY_STORE, null);
    key = null;
    showKeyForm("");
    ui.keyInput.focus();
  });
  ui.preset.addEventListener("change", () => {
    const p = presets[Number(ui.preset.value)];
    if (p) ui.persona.value = p.text;
    else ui.persona.focus();
    savePrefs();
  });
  ui.persona.addEventListener("input", () => {
    syncPreset();
    savePrefs();
  });
  ui.voice.addEventListener("change", savePrefs);
  ui.talk.addEventListener("click", () => (session ? stop() : start()));
  publishCounters();

  if (!window.isSecureContext) showError(insecureMessage());
  try {
    const [personas, voices] = await Promise.all([
      api("/web/personas.json"),
      api("/v1/voices"),
    ]);
    fillPresets(personas.presets, personas.default);
    fillVoices(voices.voices, voices.default);
  } catch (error) {
    showError(error.message);
  }
  const saved = load(KEY_STORE);
  if (saved) await useKey(saved, { quiet: !window.isSecureContext });
  else showKeyForm("");
  document.body.dataset.ready = "1";
}

init();
