// The OBS scene automation panel: polls GET /api/obs, edits rules, pauses and resumes.
// Everything from the server is shown with textContent, never as HTML.

const EDIT_FIELDS = ["threshold", "exit_threshold", "for_seconds", "calm_seconds", "cooldown_seconds"];
const POLL_MS = 1500;

const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

async function call(method, url, body) {
  const headers = { "X-CSRF-Token": csrf };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || `${res.status} ${res.statusText}`);
  return data;
}

function showError(message) {
  const e = $("obs-error");
  e.textContent = message || "";
  e.hidden = !message;
}

// Rows are rebuilt only when the rule set changes, so an input being typed in is not wiped by a poll.
let rulesKey = "";

function renderRules(rules) {
  const body = $("obs-rules").tBodies[0];
  const key = JSON.stringify(rules.map((r) => [r.name, r.enabled, ...EDIT_FIELDS.map((f) => r[f])]));
  if (key !== rulesKey) {
    rulesKey = key;
    body.replaceChildren(...rules.map(ruleRow));
  }
  for (const r of rules) {
    const row = body.querySelector(`tr[data-rule="${CSS.escape(r.name)}"]`);
    if (!row) continue;
    row.classList.toggle("active", r.active_rooms.length > 0);
    row.querySelector(".now").textContent = r.active_rooms.length ? `active: ${r.active_rooms.join(", ")}` : "idle";
  }
}

function ruleRow(r) {
  const tr = el("tr");
  tr.dataset.rule = r.name;
  const on = el("input");
  on.type = "checkbox";
  on.checked = r.enabled;
  on.title = "enable or disable this rule";
  on.addEventListener("change", () => edit(r.name, { enabled: on.checked }));
  const tdOn = el("td");
  tdOn.append(on);
  tr.append(tdOn, el("td", r.name), el("td", r.room || "every room"), el("td", r.metric_label));
  const inputs = {};
  for (const f of EDIT_FIELDS) {
    const i = el("input");
    i.type = "number";
    i.min = "0";
    i.step = "any";
    i.value = r[f];
    i.name = f;
    inputs[f] = i;
    const td = el("td");
    td.append(i);
    tr.append(td);
  }
  tr.append(el("td", r.actions.join("; "), "actions"), el("td", "", "now"));
  const save = el("button", "Save");
  save.type = "button";
  save.addEventListener("click", () => {
    const changes = {};
    for (const f of EDIT_FIELDS) changes[f] = Number(inputs[f].value);
    edit(r.name, changes);
  });
  const tdSave = el("td");
  tdSave.append(save);
  tr.append(tdSave);
  return tr;
}

function renderRecent(items) {
  $("obs-recent").replaceChildren(
    ...items.map((e) => {
      const li = el("li");
      li.append(
        el("span", new Date(e.ts * 1000).toLocaleTimeString(), "time"),
        el("span", e.kind, "kind"),
        el("span", e.message),
      );
      return li;
    }),
  );
}

function render(s) {
  const chip = $("obs-state");
  chip.dataset.state = s.state;
  chip.textContent = s.state.replace("_", " ");
  $("obs-detail").textContent = s.detail || "";
  $("obs-scene").textContent = s.current_scene ? `live: ${s.current_scene}` : "";
  const mode = [];
  if (s.dry_run) mode.push("DRY RUN (nothing is changed in OBS)");
  if (s.paused) mode.push("PAUSED by the producer");
  $("obs-mode").textContent = mode.join(" · ");
  $("obs-pause").hidden = !s.enabled || s.paused;
  $("obs-resume").hidden = !s.enabled || !s.paused;
  $("obs-state-file").textContent = s.rules_state_file || "";
  renderRules(s.rules || []);
  renderRecent(s.recent || []);
}

async function refresh() {
  try {
    render(await call("GET", "/api/obs"));
    showError("");
  } catch (err) {
    showError(`cannot read the OBS state: ${err.message}`);
  }
}

async function edit(name, changes) {
  try {
    await call("POST", `/api/obs/rules/${encodeURIComponent(name)}`, changes);
    rulesKey = "";
    await refresh();
  } catch (err) {
    showError(`rule ${name}: ${err.message}`);
  }
}

async function setPaused(paused) {
  try {
    await call("POST", paused ? "/api/obs/pause" : "/api/obs/resume");
    await refresh();
  } catch (err) {
    showError(err.message);
  }
}

$("obs-pause").addEventListener("click", () => setPaused(true));
$("obs-resume").addEventListener("click", () => setPaused(false));
refresh();
setInterval(refresh, POLL_MS);
