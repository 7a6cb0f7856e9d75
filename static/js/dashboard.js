// moodcast dashboard: live mood of one room for producers and moderators.
// Live data arrives over socket.io (/mood, authorised by the session cookie); counters and health are
// polled from /dashboard/api/state; the five-minute chart is backfilled from /dashboard/api/history on
// load and after each reconnect. Every chat-derived string is written with textContent only.
import {
  DEFAULT_COLORS,
  EMOTIONS,
  clamp01,
  drawArea,
  drawGauge,
  drawTimeline,
  fitCanvas,
  hexColor,
  sharesOf,
  shortWindow,
} from "./widgets.js";

const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const main = $("dashboard");
const room = main?.dataset.room ?? null;
const colors = (() => {
  let raw = {};
  try {
    raw = JSON.parse($("dash-colors")?.textContent ?? "{}");
  } catch {
    raw = {};
  }
  const out = {};
  for (const e of EMOTIONS) out[e] = hexColor(raw[e], DEFAULT_COLORS[e]);
  return out;
})();

const AREA_CAPACITY = 300; // one point a second: five minutes
const RECENT_SHOWN = 40;
const MAX_TEXT_SHOWN = 400;
// Oldest first, one {sec, shares} per second of server time (the snapshot's ts, floored): the server
// keeps the same points (engine/aggregate.py SecondSeries), so history and live merge by second.
const area = [];
let current = null;
let frameRequested = false;
let lastRecentKey = "";
const seenEvents = new Set();

for (const e of EMOTIONS) document.documentElement.style.setProperty(`--${e}`, colors[e]);

async function post(url, body) {
  const res = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body ?? {}),
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (res.status === 401) location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  return { ok: res.ok, status: res.status, data };
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function emotionChip(emotion) {
  const e = EMOTIONS.includes(emotion) ? emotion : "neutral";
  const chip = el("span", "chip", e);
  chip.dataset.emotion = e;
  return chip;
}

function setConn(state, text) {
  const c = $("conn");
  c.dataset.state = state;
  c.textContent = text;
}

// -- live mood -------------------------------------------------------------------------------------
function apply(snapshot) {
  if (!snapshot || typeof snapshot !== "object" || !Array.isArray(snapshot.emotions)) return;
  current = snapshot;
  const shares = sharesOf(snapshot);
  const sec = Math.floor(Number(snapshot.ts));
  if (sec > 0) addLivePoint(sec, shares); // ts 0: the placeholder of a room with no data yet
  const win = shortWindow(snapshot);
  const d = EMOTIONS.includes(snapshot.dominant) ? snapshot.dominant : "neutral";
  const dom = $("dominant");
  dom.textContent = d;
  dom.dataset.emotion = d;
  const t = Number(snapshot.trend) || 0;
  const trend = $("trend");
  trend.dataset.trend = t > 0.05 ? "up" : t < -0.05 ? "down" : "flat";
  trend.textContent = t > 0.05 ? "▲ more negative" : t < -0.05 ? "▼ calming" : "▶ steady";
  EMOTIONS.forEach((e, i) => {
    $(`share-${e}`).textContent = `${Math.round(shares[i] * 100)}%`;
    $(`bar-${e}`).style.setProperty("--v", String(shares[i]));
  });
  $("kpi-rate").textContent = (win ? Number(win.rate) || 0 : 0).toFixed(1);
  $("kpi-negative").textContent = `${Math.round((Number(snapshot.negative_share) || 0) * 100)}%`;
  $("kpi-spike").textContent = (Number(snapshot.spike_score) || 0).toFixed(1);
  $("kpi-total").textContent = String(snapshot.total_messages ?? 0);
  main.dataset.totalMessages = String(snapshot.total_messages ?? 0);
  renderRecent(Array.isArray(snapshot.recent) ? snapshot.recent : []);
  invalidate();
}

// The last snapshot of a second wins, as on the server, so the point of a second is the same whether it
// was drawn live or fetched later.
function addLivePoint(sec, shares) {
  const last = area[area.length - 1];
  if (last && last.sec === sec) {
    last.shares = shares;
  } else if (!last || sec > last.sec) {
    area.push({ sec, shares });
    if (area.length > AREA_CAPACITY) area.splice(0, area.length - AREA_CAPACITY);
  } else {
    return; // a late snapshot of a second already drawn
  }
  areaChanged();
}

// History fills only the seconds the page has not drawn itself (a live point is never replaced).
function mergeHistory(data) {
  const points = Array.isArray(data?.points) ? data.points : [];
  const order = Array.isArray(data?.emotions) ? data.emotions : EMOTIONS;
  const have = new Set(area.map((p) => p.sec));
  let added = 0;
  for (const p of points) {
    const sec = Number(p?.ts);
    if (!Number.isInteger(sec) || sec <= 0 || have.has(sec) || !Array.isArray(p.shares)) continue;
    have.add(sec);
    area.push({ sec, shares: EMOTIONS.map((e) => clamp01(p.shares[order.indexOf(e)])) });
    added += 1;
  }
  if (added === 0) return 0;
  area.sort((a, b) => a.sec - b.sec);
  if (area.length > AREA_CAPACITY) area.splice(0, area.length - AREA_CAPACITY);
  areaChanged();
  return added;
}

function areaChanged() {
  // For tests and anyone inspecting the page: how many seconds the chart holds, and which.
  const canvas = $("area-canvas");
  canvas.dataset.points = String(area.length);
  canvas.dataset.first = String(area[0]?.sec ?? 0);
  canvas.dataset.last = String(area[area.length - 1]?.sec ?? 0);
  invalidate();
}

async function loadHistory() {
  let res;
  try {
    res = await fetch(`/dashboard/api/history?room=${encodeURIComponent(room)}&seconds=${AREA_CAPACITY}`, {
      credentials: "same-origin",
    });
  } catch {
    return; // the server is away: the socket's reconnect will ask again
  }
  if (res.status === 401) {
    location.assign("/login");
    return;
  }
  if (!res.ok) return;
  let data = null;
  try {
    data = await res.json();
  } catch {
    return;
  }
  const added = mergeHistory(data);
  const canvas = $("area-canvas");
  canvas.dataset.history = String(Number(canvas.dataset.history ?? 0) + added);
}

function renderRecent(recent) {
  const last = recent[recent.length - 1];
  const key = last ? `${recent.length}|${last.ts}|${last.user}|${last.text?.length}` : "";
  if (key === lastRecentKey) return;
  lastRecentKey = key;
  const list = $("recent");
  const items = recent.slice(-RECENT_SHOWN).reverse().map((m) => {
    const li = el("li", "msg");
    const meta = el("span", "msg-meta");
    meta.append(emotionChip(m.emotion), el("span", "conf", `${Math.round((Number(m.confidence) || 0) * 100)}%`));
    const user = el("span", "msg-user", String(m.user ?? "").slice(0, 64));
    const text = el("span", "msg-text", String(m.text ?? "").slice(0, MAX_TEXT_SHOWN));
    if (Number(m.weight) === 0) li.dataset.flooded = "true";
    li.append(meta, user, text);
    return li;
  });
  list.replaceChildren(...items);
}

function invalidate() {
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(draw);
  }
}

function draw() {
  frameRequested = false;
  const [actx, aw, ah] = fitCanvas($("area-canvas"));
  drawArea(actx, aw, ah, area.map((p) => p.shares), colors, { capacity: AREA_CAPACITY });
  if (!current) return; // history can arrive before the first snapshot
  const [gctx, gw, gh] = fitCanvas($("gauge-canvas"));
  drawGauge(gctx, gw, gh, sharesOf(current), colors);
  const [tctx, tw, th] = fitCanvas($("timeline-canvas"));
  const ts = Number(current.ts) || Date.now() / 1000;
  drawTimeline(tctx, tw, th, current.minutes, Math.floor(ts / 60) * 60, 30, colors);
}

// -- alerts ----------------------------------------------------------------------------------------
function addAlert(event) {
  if (!event || typeof event.message !== "string") return;
  const key = `${event.ts}|${event.kind}|${event.message}`;
  if (seenEvents.has(key)) return;
  seenEvents.add(key);
  $("no-alerts")?.remove();
  const li = el("li", "alert-row");
  li.dataset.kind = String(event.kind);
  const when = new Date((Number(event.ts) || 0) * 1000);
  li.append(
    el("time", "when", when.toLocaleTimeString()),
    el("span", "kind", String(event.kind)),
    el("span", "text", event.message.slice(0, MAX_TEXT_SHOWN)),
  );
  const list = $("alerts");
  list.prepend(li);
  while (list.children.length > 50) list.lastElementChild.remove();
}

// -- health ----------------------------------------------------------------------------------------
function kv(dl, pairs) {
  dl.replaceChildren(
    ...pairs.flatMap(([k, v]) => {
      const wrap = el("div");
      wrap.append(el("dt", "", k), el("dd", "", String(v)));
      return [wrap];
    }),
  );
}

async function pollState() {
  if (document.hidden) return;
  let res;
  try {
    res = await fetch(`/dashboard/api/state?room=${encodeURIComponent(room)}`, { credentials: "same-origin" });
  } catch {
    return;
  }
  if (res.status === 401) {
    location.assign("/login");
    return;
  }
  if (!res.ok) return;
  const s = await res.json();
  const p = s.pipeline ?? {};
  $("c-dropped").textContent = String(p.dropped ?? 0);
  $("c-queued").textContent = String(p.queued ?? 0);
  $("c-flooded").textContent = String(s.room_stats?.flooded_messages ?? 0);
  $("c-overlays").textContent = String(s.room_stats?.overlays_connected ?? 0);
  main.dataset.dropped = String(p.dropped ?? 0);
  kv($("model-health"), [
    ["model", p.model ?? "?"],
    ["errors", p.model_errors ?? 0],
    ["ms / batch", p.classify_ms_per_batch ?? 0],
    ["avg batch", p.avg_batch ?? 0],
    ["cache hits", `${Math.round((Number(p.cache_hit_rate) || 0) * 100)}%`],
    ["classified", p.classified ?? 0],
  ]);
  const rows = (Array.isArray(s.sources) ? s.sources : []).map((src) => {
    const tr = el("tr");
    tr.dataset.status = String(src.status ?? "");
    for (const v of [src.name, src.room, src.status, src.messages, src.errors]) tr.append(el("td", "", String(v ?? "")));
    if (src.detail) tr.title = String(src.detail);
    return tr;
  });
  if (rows.length === 0) {
    const tr = el("tr");
    const td = el("td", "muted", "no sources (ingest only)");
    td.colSpan = 5;
    tr.append(td);
    rows.push(tr);
  }
  $("sources").replaceChildren(...rows);
  for (const e of Array.isArray(s.events) ? s.events : []) addAlert(e); // oldest first: newest ends on top
}

// -- overlay URLs, copy, preview, rotate ------------------------------------------------------------
async function copy(input, button) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(input.value);
    ok = true;
  } catch {
    input.select();
    ok = document.execCommand("copy");
  }
  button.textContent = ok ? "Copied ✓" : "Select + Ctrl+C";
  button.dataset.copied = ok ? "true" : "false";
  setTimeout(() => {
    button.textContent = "Copy";
  }, 1800);
}

function wireUrls() {
  for (const b of document.querySelectorAll("button.copy")) {
    b.addEventListener("click", () => copy($(b.dataset.copy), b));
  }
  for (const b of document.querySelectorAll("button.preview")) {
    b.addEventListener("click", () => {
      $("preview").src = $(`url-${b.dataset.preview}`).value;
      for (const o of document.querySelectorAll("button.preview")) o.dataset.active = String(o === b);
    });
  }
  const rotate = $("rotate");
  let armed = 0;
  rotate.addEventListener("click", async () => {
    if (!armed) {
      // Two clicks, no confirm(): a rotation breaks the URL in OBS, so it must be deliberate.
      rotate.textContent = "Click again to rotate";
      rotate.dataset.armed = "true";
      armed = setTimeout(() => {
        armed = 0;
        rotate.textContent = "Rotate token";
        rotate.dataset.armed = "false";
      }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = 0;
    rotate.dataset.armed = "false";
    rotate.disabled = true;
    const { ok, data } = await post(`/api/overlay/${encodeURIComponent(room)}/rotate-token`);
    rotate.disabled = false;
    rotate.textContent = "Rotate token";
    if (!ok || !data?.urls) {
      $("rotate-note").textContent = `Rotation failed: ${data?.error ?? "server error"}`;
      return;
    }
    for (const [name, url] of Object.entries(data.urls)) {
      const input = $(`url-${name}`);
      if (input) input.value = url;
    }
    $("preview").src = data.urls.all;
    $("rotate-note").textContent = `New token issued; ${data.disconnected} overlay(s) on the old URL were cut off.`;
    main.dataset.rotations = String(Number(main.dataset.rotations ?? 0) + 1);
  });
}

// -- try a message ---------------------------------------------------------------------------------
function wireTry() {
  $("try-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const texts = $("try-text").value.split("\n").map((t) => t.trim()).filter(Boolean).slice(0, 20);
    if (!texts.length) return;
    const out = $("try-results");
    out.replaceChildren(el("li", "muted", "classifying…"));
    const { ok, data } = await post("/dashboard/api/classify", { texts, model: $("try-model").value || null });
    if (!ok) {
      out.replaceChildren(el("li", "error", data?.error ?? "classification failed"));
      return;
    }
    out.replaceChildren(
      ...data.results.map((r) => {
        const li = el("li", "try-row");
        li.dataset.emotion = r.emotion;
        const head = el("div", "try-head");
        head.append(emotionChip(r.emotion), el("span", "conf", `${Math.round(r.confidence * 100)}%`), el("span", "try-text", r.text));
        const bars = el("div", "try-bars");
        for (const e of EMOTIONS) {
          const bar = el("span", "try-bar");
          bar.dataset.emotion = e;
          bar.style.setProperty("--v", String(r.scores?.[e] ?? 0));
          bar.title = `${e} ${Math.round((r.scores?.[e] ?? 0) * 100)}%`;
          bars.append(bar);
        }
        li.append(head, bars);
        return li;
      }),
    );
  });
}

// -- wiring ----------------------------------------------------------------------------------------
$("room-select")?.addEventListener("change", (ev) => {
  location.assign(`/dashboard?room=${encodeURIComponent(ev.target.value)}`);
});
$("logout")?.addEventListener("click", async () => {
  await post("/logout");
  location.assign("/login");
});

if (room !== null) {
  wireUrls();
  wireTry();
  if (typeof io === "function") {
    const socket = io("/mood", { auth: { room }, reconnectionDelayMax: 5000 });
    let connectedBefore = false;
    socket.on("connect", () => {
      setConn("live", "live");
      // A reconnect leaves a gap of seconds no snapshot reached us for: fill it from the server.
      if (connectedBefore) loadHistory();
      connectedBefore = true;
    });
    socket.on("disconnect", (reason) => {
      setConn("down", "reconnecting…");
      if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000);
    });
    socket.on("connect_error", () => setConn("down", "reconnecting…"));
    socket.on("snapshot", apply);
    socket.on("mood", apply);
    socket.on("event", addAlert);
  } else {
    setConn("down", "socket.io client missing");
  }
  loadHistory();
  pollState();
  setInterval(pollState, 3000);
  if ("ResizeObserver" in window) new ResizeObserver(() => invalidate()).observe(main);
} else {
  setConn("live", "no rooms");
}
