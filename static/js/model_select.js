// moodcast dashboard panel "Model for this room" (overlay/model_select.py): shows the model reading the
// room and switches it with POST /api/rooms/{room}/model (session cookie + CSRF header).
const form = document.getElementById("model-select-form");
const select = document.getElementById("room-model");
const note = document.getElementById("room-model-note");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

function url(room) {
  return `/api/rooms/${encodeURIComponent(room)}/model`;
}

function show(data) {
  if (!data || typeof data.model_id !== "string") return;
  const known = new Set(Array.from(select.options, (o) => o.value));
  for (const id of data.models ?? []) {
    if (!known.has(id)) select.add(new Option(id, id));
  }
  select.value = data.model_id;
  form.dataset.current = data.model_id;
}

async function load() {
  const res = await fetch(url(form.dataset.room), { credentials: "same-origin" });
  if (res.ok) show(await res.json());
}

if (form && select && note) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await fetch(url(form.dataset.room), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ model_id: select.value }),
    });
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    if (res.ok) {
      show(data);
      note.textContent = `Now reading with ${data.model_id}.`;
    } else {
      note.textContent = `Not switched: ${data?.error ?? res.status}`;
    }
  });
  load().catch(() => {});
}
