// moodcast overlay: one room's mood in an OBS Browser Source, drawn from socket.io payloads.
// Payload shapes: overlay/wire.py (SnapshotPayload, EventPayload, TickerPayload); keep them in step.
// Nothing is drawn while the data stands still: frames are requested only on updates and animations.
import {
  DEFAULT_COLORS,
  EMOTIONS,
  LABELS,
  drawGauge,
  drawHeatmap,
  drawTimeline,
  fitCanvas,
  hexColor,
  sharesOf,
  shortWindow,
} from "./widgets.js";

const root = document.getElementById("overlay");
const statusChip = document.getElementById("status");
const settings = readSettings(readJson("overlay-settings") ?? {}, new URLSearchParams(location.search));
const $ = (id) => document.getElementById(id);

// What the benchmark and tests read; counting is cheaper than any profiler.
const perf = { frames: 0, updates: 0, drawMs: [], lastDrawMs: 0 };
window.__moodcast = perf;

let current = null; // the last SnapshotPayload applied
let frameRequested = false;
let gaugeFrom = EMOTIONS.map(() => 0);
let gaugeTo = EMOTIONS.map(() => 0);
let gaugeStart = 0;
const GAUGE_MS = 500;
const born = new Map(); // heatmap message key -> time it appeared
let seenFirst = false;
let alertTimer = 0;
let tickerKey = "";
let dataDirty = false;
let lastDrawAt = -1e9;
const ANIM_FRAME_MS = 30;

function readJson(id) {
  const el = document.getElementById(id);
  try {
    return el ? JSON.parse(el.textContent) : null;
  } catch (err) {
    console.error(`moodcast: bad #${id}`, err);
    return null;
  }
}

function intParam(params, name, fallback, lo, hi) {
  const v = Number.parseInt(params.get(name) ?? "", 10);
  return Number.isFinite(v) && v >= lo && v <= hi ? v : fallback;
}

function numParam(params, name, fallback, lo, hi) {
  const v = Number.parseFloat(params.get(name) ?? "");
  return Number.isFinite(v) && v >= lo && v <= hi ? v : fallback;
}

// OBS users configure a Browser Source by URL only: every setting can be overridden there.
function readSettings(defaults, params) {
  const colors = {};
  for (const e of EMOTIONS) {
    const base = hexColor(defaults.colors?.[e], DEFAULT_COLORS[e]);
    colors[e] = hexColor(params.get(`color.${e}`), base);
  }
  const theme = params.get("theme");
  const font = params.get("font");
  const lang = params.get("lang");
  return {
    colors,
    theme: ["dark", "light", "glass", "bare"].includes(theme) ? theme : defaults.theme ?? "dark",
    font: font && /^[\w \-]{1,64}$/.test(font) ? font : defaults.font ?? "",
    scale: numParam(params, "scale", Number(defaults.scale) || 1, 0.25, 4),
    rows: intParam(params, "rows", defaults.rows ?? 10, 1, 40),
    cols: intParam(params, "cols", defaults.cols ?? 10, 1, 40),
    minutes: intParam(params, "minutes", defaults.minutes ?? 30, 1, 120),
    alertMs: 1000 * numParam(params, "alert", Number(defaults.alert_seconds) || 8, 1, 120),
    allAlerts: params.get("alerts") === "all",
    titles: params.get("titles") !== "0",
    labels: LABELS[lang] ?? LABELS.en,
    lang: LABELS[lang] ? lang : "en",
    width: intParam(params, "w", 0, 50, 8000),
    height: intParam(params, "h", 0, 20, 8000),
    namespace: typeof defaults.namespace === "string" ? defaults.namespace : "/mood",
  };
}

function applyTheme() {
  root.dataset.theme = settings.theme;
  root.dataset.titles = settings.titles ? "on" : "off";
  document.documentElement.lang = settings.lang === "zh" ? "zh-CN" : "en";
  const style = root.style;
  style.setProperty("--scale", String(settings.scale));
  if (settings.font) style.setProperty("--font", `"${settings.font}", system-ui, sans-serif`);
  if (settings.width) style.setProperty("--w", `${settings.width}px`);
  if (settings.height) style.setProperty("--h", `${settings.height}px`);
  style.setProperty("--cols", String(settings.cols));
  style.setProperty("--rows", String(settings.rows));
  for (const e of EMOTIONS) style.setProperty(`--${e}`, settings.colors[e]);
  for (const el of document.querySelectorAll("[data-label]")) {
    const e = el.dataset.label;
    if (settings.labels[e]) el.textContent = settings.labels[e];
  }
  const heatTitle = $("heatmap-title");
  if (heatTitle) heatTitle.textContent = settings.lang === "zh" ? `最近 ${settings.rows * settings.cols} 条弹幕` : `Last ${settings.rows * settings.cols} messages`;
  const tlTitle = $("timeline-title");
  if (tlTitle) tlTitle.textContent = settings.lang === "zh" ? `近 ${settings.minutes} 分钟情绪` : `Mood · last ${settings.minutes} min`;
  const tickerLabel = $("ticker-label");
  if (tickerLabel && settings.lang === "zh") tickerLabel.textContent = "热词";
}

function setStatus(text) {
  root.dataset.connected = text === null ? "true" : "false";
  if (!statusChip) return;
  statusChip.hidden = text === null;
  if (text !== null) statusChip.textContent = text;
}

function messageKey(m, i) {
  return `${m.ts}|${m.user}|${m.emotion}|${m.confidence}|${typeof m.text === "string" ? m.text.length : 0}|${i}`;
}

function apply(snapshot) {
  if (!snapshot || typeof snapshot !== "object" || !Array.isArray(snapshot.emotions)) {
    return; // a malformed payload must not blank a live overlay
  }
  const now = performance.now();
  // Heatmap: key each message so the ones that are new since the last update can grow in.
  const recent = Array.isArray(snapshot.recent) ? snapshot.recent : [];
  const counts = new Map();
  const keys = new Set();
  for (const m of recent) {
    const base = messageKey(m, 0);
    const k = counts.get(base) ?? 0;
    counts.set(base, k + 1);
    m.__key = `${base}#${k}`;
    keys.add(m.__key);
    if (!born.has(m.__key)) born.set(m.__key, seenFirst ? now : -1e9);
  }
  for (const k of born.keys()) if (!keys.has(k)) born.delete(k);
  seenFirst = true;

  const shares = sharesOf(snapshot);
  // Restart the gauge's tween only when the shares really moved: a steady room must not animate.
  if (shares.some((v, i) => Math.abs(v - gaugeTo[i]) > 0.002)) {
    gaugeFrom = displayedShares(now);
    gaugeTo = shares;
    gaugeStart = now;
  }
  current = snapshot;
  perf.updates += 1;
  updateDom(snapshot, shares);
  dataDirty = true;
  invalidate();
}

function displayedShares(now) {
  const p = Math.min(1, (now - gaugeStart) / GAUGE_MS);
  const e = 1 - (1 - p) ** 3;
  return gaugeTo.map((to, i) => gaugeFrom[i] + (to - gaugeFrom[i]) * e);
}

function updateDom(snapshot, shares) {
  const win = shortWindow(snapshot);
  const dominant = $("dominant");
  if (dominant) {
    const d = EMOTIONS.includes(snapshot.dominant) ? snapshot.dominant : "neutral";
    dominant.textContent = settings.labels[d];
    dominant.dataset.emotion = d;
    dominant.style.setProperty("--c", settings.colors[d]);
  }
  const trend = $("trend");
  if (trend) {
    const t = Number(snapshot.trend) || 0;
    // trend > 0: the negative share is rising against the longer window.
    const dir = t > 0.05 ? "up" : t < -0.05 ? "down" : "flat";
    trend.dataset.trend = dir;
    trend.textContent = dir === "up" ? "▲" : dir === "down" ? "▼" : "▶";
    trend.title = dir === "up" ? "getting more negative" : dir === "down" ? "calming down" : "steady";
  }
  const rate = win ? Number(win.rate) || 0 : 0;
  const rateEl = $("rate");
  if (rateEl) {
    rateEl.textContent = rate.toFixed(1);
    rateEl.dataset.value = String(rate);
  }
  EMOTIONS.forEach((emotion, i) => {
    const el = $(`share-${emotion}`);
    if (!el) return;
    el.textContent = `${Math.round(shares[i] * 100)}%`;
    el.dataset.value = String(shares[i]);
  });
  root.dataset.ts = String(snapshot.ts);
  root.dataset.totalMessages = String(snapshot.total_messages);
  root.dataset.updates = String(perf.updates);
}

function invalidate() {
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(frame);
  }
}

function frame(now) {
  frameRequested = false;
  if (current === null) return;
  if (!dataDirty && now - lastDrawAt < ANIM_FRAME_MS) {
    // Animation-only frame too soon after the last one: skip it (animations run at ~30 fps).
    invalidate();
    return;
  }
  dataDirty = false;
  lastDrawAt = now;
  const t0 = performance.now();
  let again = false;
  const font = getComputedStyle(root).fontFamily;
  const gauge = $("gauge-canvas");
  if (gauge) {
    const [ctx, w, h] = fitCanvas(gauge);
    const shown = displayedShares(t0);
    drawGauge(ctx, w, h, shown, settings.colors, { track: settings.theme === "light" ? "rgba(0,0,0,0.08)" : undefined });
    if (t0 - gaugeStart < GAUGE_MS) again = true;
  }
  const heat = $("heatmap-canvas");
  if (heat) {
    const [ctx, w, h] = fitCanvas(heat);
    const recent = Array.isArray(current.recent) ? current.recent : [];
    const light = settings.theme === "light";
    again =
      drawHeatmap(ctx, w, h, recent, settings.rows, settings.cols, settings.colors, born, t0, {
        emptyColor: light ? "rgba(0,0,0,0.06)" : undefined,
      }) || again;
  }
  const tl = $("timeline-canvas");
  if (tl) {
    const [ctx, w, h] = fitCanvas(tl);
    const ts = Number(current.ts) || Date.now() / 1000;
    const light = settings.theme === "light";
    drawTimeline(ctx, w, h, current.minutes, Math.floor(ts / 60) * 60, settings.minutes, settings.colors, {
      font,
      nowLabel: settings.lang === "zh" ? "现在" : "now",
      axisColor: light ? "rgba(0,0,0,0.55)" : undefined,
      gridColor: light ? "rgba(0,0,0,0.08)" : undefined,
    });
  }
  const ms = performance.now() - t0;
  perf.frames += 1;
  perf.lastDrawMs = ms;
  perf.drawMs.push(ms);
  if (perf.drawMs.length > 2000) perf.drawMs.splice(0, 1000);
  if (again) invalidate();
}

function showEvent(event) {
  const box = $("event");
  if (!box || !event || typeof event.message !== "string") return;
  const kind = String(event.kind ?? "");
  if (!settings.allAlerts && !kind.includes("spike")) return;
  const share = Number(event.values?.negative_share);
  $("event-title").textContent = settings.lang === "zh" ? "弹幕情绪预警" : "Chat mood alert";
  $("event-share").textContent = Number.isFinite(share) ? `${Math.round(share * 100)}%` : "";
  $("event-text").textContent = event.message; // chat-derived text: never innerHTML
  box.dataset.kind = kind;
  box.hidden = false;
  // Restart the CSS entrance animation for a back-to-back alert.
  box.classList.remove("is-leaving");
  box.classList.remove("is-showing");
  void box.offsetWidth;
  box.classList.add("is-showing");
  clearTimeout(alertTimer);
  alertTimer = setTimeout(() => {
    box.classList.add("is-leaving");
    alertTimer = setTimeout(() => {
      box.hidden = true;
      box.classList.remove("is-leaving", "is-showing");
    }, 700);
  }, settings.alertMs);
}

function showTicker(payload) {
  const track = $("ticker-track");
  if (!track || !payload || !Array.isArray(payload.items)) return;
  const items = payload.items.filter((it) => it && typeof it.text === "string").slice(0, 20);
  const key = JSON.stringify(items.map((it) => [it.text, it.emotion]));
  if (key === tickerKey) return; // same words: leave the running animation alone
  tickerKey = key;
  const ticker = $("ticker");
  ticker.dataset.empty = items.length ? "false" : "true";
  const build = () => {
    const group = document.createElement("div");
    group.className = "ticker-group";
    for (const it of items) {
      const span = document.createElement("span");
      span.className = "tick";
      const dot = document.createElement("i");
      const emotion = EMOTIONS.includes(it.emotion) ? it.emotion : "neutral";
      dot.className = "dot";
      dot.style.setProperty("--c", settings.colors[emotion]);
      const text = document.createElement("b");
      text.textContent = it.text.slice(0, 40); // chat-derived: textContent only
      span.append(dot, text);
      group.append(span);
    }
    return group;
  };
  // Two copies side by side scroll as one seamless loop; a CSS transform animation runs on the
  // compositor, so the page's main thread stays idle.
  track.replaceChildren(...(items.length ? [build(), build()] : []));
  track.dataset.count = String(items.length);
  const seconds = Math.max(12, items.length * 4);
  track.style.setProperty("--ticker-seconds", `${seconds}s`);
}

function connect() {
  if (typeof io !== "function") {
    setStatus("socket.io client missing: run `make assets`");
    return;
  }
  const socket = io(settings.namespace, {
    auth: { room: root.dataset.room, token: new URLSearchParams(location.search).get("token") ?? "" },
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
  });
  let retry = 0;
  socket.on("connect", () => setStatus(null));
  socket.on("disconnect", (reason) => {
    setStatus(settings.lang === "zh" ? "连接中断，正在重连…" : "reconnecting…");
    // After a server-side disconnect socket.io does not retry by itself; a restarted server (or a
    // shutdown that said goodbye) must bring the overlay back without anyone touching OBS.
    if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000);
  });
  socket.on("connect_error", (err) => {
    if (err && err.message === "invalid overlay token") {
      setStatus(settings.lang === "zh" ? "此链接已失效" : "overlay link revoked: copy the new URL from the dashboard");
      root.dataset.revoked = "true";
      clearTimeout(retry);
      retry = setTimeout(() => socket.connect(), 15000);
    } else {
      setStatus(settings.lang === "zh" ? "连接中断，正在重连…" : "reconnecting…");
    }
  });
  socket.on("snapshot", apply);
  socket.on("mood", apply);
  socket.on("event", showEvent);
  socket.on("ticker", showTicker);
}

applyTheme();
apply(readJson("initial-snapshot"));
if ("ResizeObserver" in window) {
  new ResizeObserver(() => {
    dataDirty = true;
    invalidate();
  }).observe(root);
}
root.dataset.connected = "false"; // connecting: the chip stays hidden until a connection actually fails
connect();
