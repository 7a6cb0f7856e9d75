// The bot's moderator panel: approval queue, template-type modes, pause and kill switch.
// Chat text is untrusted: everything is rendered with textContent, never as HTML.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
const $ = (id) => document.getElementById(id);
let state = null;

async function api(path, body) {
  const opts = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.headers["X-CSRF-Token"] = csrf;
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function button(label, onClick) {
  const b = el("button", label);
  b.type = "button";
  b.addEventListener("click", () => onClick().then(refresh).catch(showError));
  return b;
}

function showError(err) { $("error").textContent = String(err.message || err); }

function renderStatus(s) {
  state = s;
  $("kill-state").textContent = s.killed ? "KILLED: nothing is posted" : "live";
  $("restored").hidden = !s.restored;
  $("kill-state").className = s.killed ? "on" : "";
  $("kill").textContent = s.killed ? "Turn kill switch off" : "Kill switch";
  $("kill").classList.toggle("on", s.killed);
  $("sender").textContent = `sender: ${s.sender.sender} ${s.sender.ok ? "ok" : "(" + (s.sender.last_error || "down") + ")"}`;
  const sel = $("room");
  const current = sel.value;
  const rooms = ["", ...s.rooms];
  if (sel.options.length !== rooms.length) {
    sel.replaceChildren(...rooms.map((r) => { const o = el("option", r || "all rooms"); o.value = r; return o; }));
    sel.value = current;
  }
  const room = sel.value;
  $("pause").disabled = !room;
  $("pause").textContent = room && s.paused.includes(room) ? "Resume room" : "Pause room";
  const body = $("modes").querySelector("tbody");
  body.replaceChildren(...s.types.map((t) => {
    const tr = el("tr");
    tr.append(el("td", t));
    for (const m of ["queue", "auto", "off"]) {
      const td = el("td");
      const input = document.createElement("input");
      input.type = "radio"; input.name = `mode-${t}`; input.value = m; input.checked = s.modes[t] === m;
      input.dataset.type = t;
      input.addEventListener("change", () => api("/api/bot/modes", { type: t, mode: m }).then(refresh).catch(showError));
      td.append(input); tr.append(td);
    }
    return tr;
  }));
}

function renderDrafts(drafts) {
  const pending = drafts.filter((d) => d.status === "pending");
  $("no-pending").hidden = pending.length > 0;
  $("pending").replaceChildren(...pending.map((d) => {
    const li = el("li"); li.dataset.id = d.id;
    li.append(el("span", `${d.room} · ${d.type}`, "type"));
    const text = document.createElement("textarea");
    text.value = d.text; text.rows = 2;
    li.append(text,
      button("Approve", () => api(`/api/bot/drafts/${d.id}/approve`, text.value !== d.text ? { text: text.value } : {})),
      button("Reject", () => api(`/api/bot/drafts/${d.id}/reject`, {})));
    return li;
  }));
  $("history").replaceChildren(...drafts.filter((d) => d.status !== "pending").slice(0, 30).map((d) => {
    const li = el("li", "", `status-${d.status}`);
    li.append(el("span", `${d.status} · ${d.room} · ${d.type}`, "type"), el("span", d.text));
    if (d.reason) li.append(el("span", ` (${d.reason})`, "type"));
    return li;
  }));
}

function renderPrompts(prompts) {
  $("prompts").replaceChildren(...prompts.slice(-10).reverse().map((p) => el("li", `${p.room}: ${p.text}`, p.kind)));
}

async function refresh() {
  const room = $("room").value;
  const q = room ? `?room=${encodeURIComponent(room)}` : "";
  const [s, d, p] = await Promise.all([api("/api/bot/status"), api(`/api/bot/drafts${q}`), api(`/api/bot/prompts${q}`)]);
  renderStatus(s); renderDrafts(d.drafts); renderPrompts(p.prompts);
  $("error").textContent = "";
}

$("kill").addEventListener("click", () => api("/api/bot/kill", { on: !state?.killed }).then(refresh).catch(showError));
$("pause").addEventListener("click", () => {
  const room = $("room").value;
  if (room) api("/api/bot/pause", { room, paused: !state?.paused.includes(room) }).then(refresh).catch(showError);
});
$("room").addEventListener("change", () => refresh().catch(showError));
refresh().catch(showError);
// Editing a draft must not be overwritten by the refresh: skip while a textarea has focus.
setInterval(() => { if (document.activeElement?.tagName !== "TEXTAREA") refresh().catch(showError); }, 2000);
