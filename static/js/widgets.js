// moodcast widgets: canvas drawing shared by the overlay and the dashboard.
// Every function here only paints what it is given; none reads the DOM or the network.
// Payload shapes are defined in overlay/wire.py (SnapshotPayload, TickerPayload).

export const EMOTIONS = Object.freeze(["happy", "excited", "angry", "sad", "anxious", "neutral"]);
export const NEGATIVE = new Set(["angry", "sad", "anxious"]);
export const DEFAULT_COLORS = Object.freeze({
  happy: "#43a047",
  excited: "#fb8c00",
  angry: "#e53935",
  sad: "#1e88e5",
  anxious: "#8e24aa",
  neutral: "#9e9e9e",
});
export const LABELS = Object.freeze({
  en: { happy: "happy", excited: "excited", angry: "angry", sad: "sad", anxious: "anxious", neutral: "neutral" },
  zh: { happy: "开心", excited: "兴奋", angry: "生气", sad: "难过", anxious: "焦虑", neutral: "平静" },
});

const HEX = /^#?[0-9a-f]{6}$/i;

export function hexColor(value, fallback) {
  if (typeof value === "string" && HEX.test(value)) return value.startsWith("#") ? value : `#${value}`;
  return fallback;
}

export function rgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

export function clamp01(x) {
  const v = Number(x);
  return Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
}

export function easeOut(t) {
  return 1 - (1 - t) ** 3;
}

// The shortest rolling window: the "now" of the room.
export function shortWindow(snapshot) {
  const windows = Array.isArray(snapshot?.windows) ? snapshot.windows : [];
  let best = null;
  for (const w of windows) if (best === null || w.seconds < best.seconds) best = w;
  return best;
}

export function sharesOf(snapshot) {
  const win = shortWindow(snapshot);
  return EMOTIONS.map((_, i) => (win && Array.isArray(win.shares) ? clamp01(win.shares[i]) : 0));
}

// Size a canvas's backing store to its CSS box at the device pixel ratio; returns [ctx, width, height].
export function fitCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, canvas.clientWidth);
  const h = Math.max(1, canvas.clientHeight);
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return [ctx, w, h];
}

function roundRect(ctx, x, y, w, h, r) {
  const rr = Math.max(0, Math.min(r, w / 2, h / 2));
  ctx.beginPath();
  ctx.moveTo(x + rr, y);
  ctx.arcTo(x + w, y, x + w, y + h, rr);
  ctx.arcTo(x + w, y + h, x, y + h, rr);
  ctx.arcTo(x, y + h, x, y, rr);
  ctx.arcTo(x, y, x + w, y, rr);
  ctx.closePath();
}

// Donut of the six shares, largest segments drawn in emotion order, with a soft track.
export function drawGauge(ctx, w, h, shares, colors, opts = {}) {
  const size = Math.min(w, h);
  const cx = w / 2;
  const cy = h / 2;
  const thick = size * 0.13;
  const r = size / 2 - thick / 2 - 2;
  ctx.lineCap = "butt";
  ctx.lineWidth = thick;
  ctx.strokeStyle = opts.track ?? "rgba(255, 255, 255, 0.08)";
  ctx.beginPath();
  ctx.arc(cx, cy, r, 0, Math.PI * 2);
  ctx.stroke();
  const total = shares.reduce((a, b) => a + b, 0);
  if (total <= 0) return;
  const gap = 0.035;
  let angle = -Math.PI / 2;
  EMOTIONS.forEach((emotion, i) => {
    const sweep = (shares[i] / total) * Math.PI * 2;
    if (sweep <= 0.001) return;
    ctx.strokeStyle = colors[emotion];
    ctx.beginPath();
    ctx.arc(cx, cy, r, angle + (sweep > gap * 2 ? gap / 2 : 0), angle + sweep - (sweep > gap * 2 ? gap / 2 : 0));
    ctx.stroke();
    angle += sweep;
  });
}

// Per-minute stacked bars of the last `count` minutes ending at `endMinute` (Unix seconds, floored).
export function drawTimeline(ctx, w, h, minutes, endMinute, count, colors, opts = {}) {
  const axis = opts.axisColor ?? "rgba(255, 255, 255, 0.55)";
  const grid = opts.gridColor ?? "rgba(255, 255, 255, 0.08)";
  const labelH = opts.labels === false ? 0 : 16;
  const plotH = h - labelH;
  const slot = w / count;
  const barW = Math.max(2, slot * 0.72);
  const byMinute = new Map();
  for (const m of Array.isArray(minutes) ? minutes : []) byMinute.set(Number(m.minute), m);
  let peak = 1;
  for (const m of byMinute.values()) {
    const sum = (m.counts || []).reduce((a, b) => a + (Number(b) || 0), 0);
    peak = Math.max(peak, sum);
  }
  ctx.fillStyle = grid;
  for (const f of [0.25, 0.5, 0.75]) ctx.fillRect(0, Math.round(plotH * (1 - f)), w, 1);
  for (let k = 0; k < count; k += 1) {
    const minute = endMinute - (count - 1 - k) * 60;
    const m = byMinute.get(minute);
    const x = k * slot + (slot - barW) / 2;
    if (!m) {
      ctx.fillStyle = grid;
      ctx.fillRect(x, plotH - 2, barW, 2);
      continue;
    }
    let y = plotH;
    EMOTIONS.forEach((emotion, i) => {
      const v = Number(m.counts?.[i]) || 0;
      if (v <= 0) return;
      const bh = (v / peak) * (plotH - 4);
      ctx.fillStyle = colors[emotion];
      ctx.fillRect(x, y - bh, barW, bh);
      y -= bh;
    });
  }
  if (labelH) {
    ctx.fillStyle = axis;
    ctx.font = `600 11px ${opts.font ?? "system-ui, sans-serif"}`;
    ctx.textBaseline = "bottom";
    ctx.textAlign = "left";
    ctx.fillText(`−${count}m`, 0, h);
    ctx.textAlign = "center";
    ctx.fillText(`−${Math.round(count / 2)}m`, w / 2, h);
    ctx.textAlign = "right";
    ctx.fillText(opts.nowLabel ?? "now", w, h);
  }
}

// Stacked area of share vectors over time (oldest first), for the dashboard's live chart.
export function drawArea(ctx, w, h, series, colors, opts = {}) {
  const grid = opts.gridColor ?? "rgba(255, 255, 255, 0.08)";
  ctx.fillStyle = grid;
  for (const f of [0.25, 0.5, 0.75]) ctx.fillRect(0, Math.round(h * (1 - f)), w, 1);
  const n = series.length;
  if (n < 2) return;
  const step = w / (opts.capacity ? opts.capacity - 1 : n - 1);
  const x0 = w - (n - 1) * step;
  const base = new Array(n).fill(0);
  EMOTIONS.forEach((emotion, i) => {
    const top = series.map((s, k) => base[k] + clamp01(s[i]));
    ctx.beginPath();
    for (let k = 0; k < n; k += 1) ctx.lineTo(x0 + k * step, h - top[k] * h);
    for (let k = n - 1; k >= 0; k -= 1) ctx.lineTo(x0 + k * step, h - base[k] * h);
    ctx.closePath();
    ctx.fillStyle = colors[emotion];
    ctx.fill();
    for (let k = 0; k < n; k += 1) base[k] = top[k];
  });
}

// The last rows*cols messages, oldest top-left: colour = emotion, opacity = confidence.
// `born` maps a cell's message key to the time it appeared, so new cells grow in; returns true while
// an animation is still running (the caller asks for another frame only then).
export function drawHeatmap(ctx, w, h, recent, rows, cols, colors, born, now, opts = {}) {
  const n = rows * cols;
  const cells = recent.slice(-n);
  const gap = Math.max(1, Math.min(w / cols, h / rows) * 0.12);
  const cw = (w - gap * (cols - 1)) / cols;
  const ch = (h - gap * (rows - 1)) / rows;
  const radius = Math.min(cw, ch) * 0.22;
  const empty = opts.emptyColor ?? "rgba(255, 255, 255, 0.07)";
  const duration = opts.animMs ?? 450;
  let animating = false;
  for (let i = 0; i < n; i += 1) {
    const x = (i % cols) * (cw + gap);
    const y = Math.floor(i / cols) * (ch + gap);
    const msg = cells[i];
    ctx.globalAlpha = 1;
    ctx.fillStyle = empty;
    roundRect(ctx, x, y, cw, ch, radius);
    ctx.fill();
    if (!msg) continue;
    const t0 = born.get(msg.__key);
    let p = 1;
    if (t0 !== undefined) {
      p = Math.min(1, (now - t0) / duration);
      if (p < 1) animating = true;
    }
    const e = easeOut(p);
    const s = 0.35 + 0.65 * e;
    const cx = x + cw / 2;
    const cy = y + ch / 2;
    ctx.globalAlpha = (0.25 + 0.75 * clamp01(msg.confidence)) * e;
    ctx.fillStyle = colors[msg.emotion] ?? colors.neutral;
    roundRect(ctx, cx - (cw * s) / 2, cy - (ch * s) / 2, cw * s, ch * s, radius * s);
    ctx.fill();
    if (p < 1) {
      // A bright ring flashes around a cell as it lands, so a new message catches the eye.
      ctx.globalAlpha = (1 - p) * 0.9;
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 1.5;
      roundRect(ctx, x + 0.75, y + 0.75, cw - 1.5, ch - 1.5, radius);
      ctx.stroke();
    }
  }
  ctx.globalAlpha = 1;
  return animating;
}
