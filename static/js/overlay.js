// moodcast overlay: one room's mood, drawn from socket.io payloads.
// The payload shapes are defined in overlay/wire.py (SnapshotPayload, EventPayload); keep the two in step.

const DEFAULT_COLORS = Object.freeze({
  happy: "#43a047",
  excited: "#fb8c00",
  angry: "#e53935",
  sad: "#1e88e5",
  anxious: "#8e24aa",
  neutral: "#9e9e9e",
});
const GRID = 10; // 10 x 10 heatmap cells: the last 100 messages
const EVENT_SHOW_MS = 8000;
const CSS_WIDTH = 480;
const CSS_HEIGHT = 240;

const root = document.getElementById("overlay");
const canvas = document.getElementById("mood-canvas");
const statusChip = document.getElementById("status");
const eventBox = document.getElementById("event");
const colors = readColors(new URLSearchParams(location.search));

let current = null; // the last SnapshotPayload applied
let drawScheduled = false;
let updates = 0;
let eventTimer = 0;

// OBS users configure a Browser Source by URL only, so colours are overridable as ?color.angry=ff0000.
function readColors(params) {
  const out = { ...DEFAULT_COLORS };
  for (const name of Object.keys(out)) {
    const value = params.get(`color.${name}`);
    if (value && /^#?[0-9a-f]{6}$/i.test(value)) {
      out[name] = value.startsWith("#") ? value : `#${value}`;
    }
  }
  return out;
}

function colorOf(emotion) {
  return colors[emotion] ?? DEFAULT_COLORS.neutral;
}

function shortWindow(snapshot) {
  const windows = Array.isArray(snapshot.windows) ? snapshot.windows : [];
  let best = null;
  for (const w of windows) {
    if (best === null || w.seconds < best.seconds) best = w;
  }
  return best;
}

function setStatus(text) {
  root.dataset.connected = text === null ? "true" : "false";
  if (text === null) {
    statusChip.hidden = true;
  } else {
    statusChip.textContent = text;
    statusChip.hidden = false;
  }
}

function apply(snapshot) {
  if (!snapshot || typeof snapshot !== "object" || !Array.isArray(snapshot.emotions)) {
    return; // a malformed payload must not blank a live overlay
  }
  current = snapshot;
  updates += 1;
  updateDom(snapshot);
  if (!drawScheduled) {
    // Coalesce bursts into one paint per frame; nothing is drawn while the data stands still.
    drawScheduled = true;
    requestAnimationFrame(draw);
  }
}

function updateDom(snapshot) {
  const win = shortWindow(snapshot);
  const dominant = document.getElementById("dominant");
  dominant.textContent = snapshot.dominant;
  dominant.dataset.emotion = snapshot.dominant;
  dominant.style.color = colorOf(snapshot.dominant);

  const rate = win ? Number(win.rate) || 0 : 0;
  const rateEl = document.getElementById("rate");
  rateEl.textContent = rate.toFixed(1);
  rateEl.dataset.value = String(rate);

  snapshot.emotions.forEach((emotion, i) => {
    const el = document.getElementById(`share-${emotion}`);
    if (!el) return;
    const share = win ? Number(win.shares[i]) || 0 : 0;
    el.textContent = `${Math.round(share * 100)}%`;
    el.dataset.value = String(share);
    el.parentElement.style.setProperty("--swatch", colorOf(emotion));
  });

  root.dataset.ts = String(snapshot.ts);
  root.dataset.totalMessages = String(snapshot.total_messages);
  root.dataset.updates = String(updates);
}

function draw() {
  drawScheduled = false;
  if (current === null) return;
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== CSS_WIDTH * dpr) {
    canvas.width = CSS_WIDTH * dpr;
    canvas.height = CSS_HEIGHT * dpr;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, CSS_WIDTH, CSS_HEIGHT);
  drawBars(ctx, current, 0, 0, 224, CSS_HEIGHT);
  drawHeatmap(ctx, current, 240, 0, CSS_HEIGHT);
}

// Six horizontal bars: the short window's share of each emotion.
function drawBars(ctx, snapshot, x, y, width, height) {
  const win = shortWindow(snapshot);
  const n = snapshot.emotions.length;
  const row = height / n;
  const barH = Math.max(4, row - 8);
  snapshot.emotions.forEach((emotion, i) => {
    const top = y + i * row + (row - barH) / 2;
    ctx.fillStyle = "rgba(0, 0, 0, 0.25)"; // the track: faint, so a 0% bar still shows its place
    ctx.fillRect(x, top, width, barH);
    const share = win ? Math.min(1, Math.max(0, Number(win.shares[i]) || 0)) : 0;
    ctx.fillStyle = colorOf(emotion);
    ctx.fillRect(x, top, Math.round(width * share), barH);
  });
}

// The last GRID*GRID messages, oldest first: colour = emotion, opacity = the classifier's confidence.
function drawHeatmap(ctx, snapshot, x, y, size) {
  const recent = Array.isArray(snapshot.recent) ? snapshot.recent.slice(-GRID * GRID) : [];
  const cell = size / GRID;
  for (let i = 0; i < GRID * GRID; i += 1) {
    const cx = x + (i % GRID) * cell;
    const cy = y + Math.floor(i / GRID) * cell;
    const msg = recent[i];
    if (msg) {
      ctx.globalAlpha = Math.min(1, Math.max(0.1, Number(msg.confidence) || 0));
      ctx.fillStyle = colorOf(msg.emotion);
    } else {
      ctx.globalAlpha = 1;
      ctx.fillStyle = "rgba(255, 255, 255, 0.06)";
    }
    ctx.fillRect(cx + 1, cy + 1, cell - 2, cell - 2);
  }
  ctx.globalAlpha = 1;
}

function showEvent(event) {
  if (!event || typeof event.message !== "string") return;
  eventBox.textContent = event.message; // chat-derived text: never innerHTML
  eventBox.dataset.kind = String(event.kind);
  eventBox.hidden = false;
  clearTimeout(eventTimer);
  eventTimer = setTimeout(() => {
    eventBox.hidden = true;
  }, EVENT_SHOW_MS);
}

function connect() {
  if (typeof io !== "function") {
    setStatus("socket.io client missing: run `npm ci && npm run build`");
    return;
  }
  const socket = io(root.dataset.namespace, { auth: { room: root.dataset.room } });
  socket.on("connect", () => setStatus(null));
  socket.on("disconnect", (reason) => {
    setStatus("disconnected");
    // After a server-side disconnect socket.io does not retry by itself; a restarted server should
    // bring the overlay back without anyone touching OBS.
    if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000);
  });
  socket.on("connect_error", () => setStatus("disconnected"));
  socket.on("snapshot", apply);
  socket.on("mood", apply);
  socket.on("event", showEvent);
}

const initial = document.getElementById("initial-snapshot");
try {
  apply(JSON.parse(initial.textContent));
} catch (err) {
  console.error("moodcast: bad initial snapshot", err);
}
root.dataset.connected = "false"; // connecting: the chip stays hidden until a connection actually fails
connect();
