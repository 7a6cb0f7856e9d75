// Streamer-only prompts: the latest tip, urgent alerts with their keywords, trending products.
// Rendered with textContent only (chat-derived keywords are untrusted).
const main = document.getElementById("streamer");
const room = main.dataset.room;
const token = main.dataset.token;
let since = 0;
let alertTimer = null;

function item(text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  return li;
}

async function poll() {
  const params = new URLSearchParams({ room, since: String(since) });
  if (token) params.set("token", token);
  const r = await fetch(`/api/bot/prompts?${params}`, { credentials: "same-origin" });
  if (!r.ok) return;
  const data = await r.json();
  for (const p of data.prompts) {
    since = Math.max(since, p.id);
    const time = new Date(p.ts * 1000).toLocaleTimeString();
    document.getElementById("log").prepend(item(`${time} ${p.text}`, p.kind));
    if (p.kind === "alert") {
      const box = document.getElementById("alert");
      box.textContent = p.text;
      box.hidden = false;
      clearTimeout(alertTimer);
      alertTimer = setTimeout(() => { box.hidden = true; }, 30000);
    } else {
      document.getElementById("tip").textContent = p.text;
    }
  }
  document.getElementById("trending").replaceChildren(...data.trending.map((t) => item(`🔥 ${t.text}`)));
}

poll();
setInterval(poll, 2000);
