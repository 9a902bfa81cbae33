// baileys-bridge dashboard: a thin client of the JSON API. The API key lives in sessionStorage only.
"use strict";
const KEY = "bridge.apiKey";
const $ = (id) => document.getElementById(id);
let qrSession = null;
let events = null;

function apiKey() { return sessionStorage.getItem(KEY) || ""; }

async function api(method, path, body) {
  const headers = { "X-API-Key": apiKey() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401) { showLogin("That key was refused."); throw new Error("unauthorized"); }
  if (!res.ok) {
    let message = res.statusText;
    try { message = (await res.json()).error.message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return res.status === 204 ? null : res.json();
}

function say(text, isError) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "muted";
}

function showLogin(reason) {
  $("login").hidden = false;
  $("panel").hidden = true;
  $("status").textContent = reason || "enter an API key";
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function button(label, onClick, primary) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (primary) b.className = "primary";
  b.addEventListener("click", onClick);
  return b;
}

async function act(label, fn) {
  try { say(label + "…"); await fn(); say(label + ": done"); } catch (e) { say(label + ": " + e.message, true); }
  await refresh();
}

function render(sessions) {
  const body = $("sessions");
  body.replaceChildren();
  if (sessions.length === 0) {
    const tr = document.createElement("tr");
    tr.appendChild(cell("No sessions yet: create one above.", "muted")).colSpan = 6;
    body.appendChild(tr);
  }
  for (const s of sessions) {
    const tr = document.createElement("tr");
    const name = cell(s.id);
    const st = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "state state-" + s.state;
    badge.textContent = s.state;
    st.appendChild(badge);
    const since = s.since ? new Date(s.since * 1000).toLocaleString() : "";
    tr.append(name, st, cell(s.me || s.phone || ""), cell(since), cell(String(s.restarts)));
    const actions = document.createElement("td");
    const base = "/api/v1/sessions/" + encodeURIComponent(s.id);
    if (["stopped", "failed", "logged_out", "banned"].includes(s.state)) {
      actions.append(button("Start", () => act("start " + s.id, () => api("POST", base + "/start")), true));
    } else {
      actions.append(button("Stop", () => act("stop " + s.id, () => api("POST", base + "/stop"))));
    }
    if (s.state === "qr") actions.append(" ", button("Show QR", () => showQr(s.id)));
    if (["qr", "pairing", "starting", "connecting"].includes(s.state)) {
      actions.append(" ", button("Pairing code", () => pairingCode(s)));
    }
    tr.appendChild(actions);
    body.appendChild(tr);
  }
  if (qrSession && !sessions.some((s) => s.id === qrSession && s.state === "qr")) hideQr();
}

async function pairingCode(s) {
  const phone = s.phone || prompt("Phone number (digits, international format)");
  if (!phone) return;
  await act("pairing code for " + s.id, async () => {
    const r = await api("POST", "/api/v1/sessions/" + encodeURIComponent(s.id) + "/pairing-code", { phone });
    showCode(s.id, r.code);
  });
}

async function showQr(id) {
  const res = await fetch("/api/v1/sessions/" + encodeURIComponent(id) + "/qr?format=png&scale=6",
    { headers: { "X-API-Key": apiKey() }, cache: "no-store" });
  if (!res.ok) { hideQr(); return; }
  const old = $("qr").src;
  $("qr").src = URL.createObjectURL(await res.blob());
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  qrSession = id;
  $("qr-session").textContent = id;
  $("qr-box").hidden = false;
}

function showCode(id, code) {
  $("code-session").textContent = id;
  $("code").textContent = code;
  $("code-box").hidden = false;
}

function hideQr() { qrSession = null; $("qr-box").hidden = true; }

async function refresh() {
  try {
    const data = await api("GET", "/api/v1/sessions");
    $("status").textContent = data.sessions.length + " session(s)";
    render(data.sessions);
    if (qrSession === null) {
      const waiting = data.sessions.find((s) => s.state === "qr");
      if (waiting) await showQr(waiting.id);
    }
  } catch (e) {
    if (e.message !== "unauthorized") say(e.message, true);
  }
}

// Live updates: EventSource cannot send headers, so stream with fetch and parse SSE by hand.
async function follow() {
  if (events) events.abort();
  events = new AbortController();
  try {
    const res = await fetch("/api/v1/events", { headers: { "X-API-Key": apiKey() }, signal: events.signal });
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const kind = (block.match(/^event: (.*)$/m) || [])[1];
        if (kind === "session.state") refresh();
        const data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || "{}");
        if (kind === "session.qr" && data.session && (qrSession === null || qrSession === data.session)) showQr(data.session);
        if (kind === "session.pairing_code" && data.session && data.data) showCode(data.session, data.data.code);
      }
    }
  } catch (_) { /* aborted or dropped */ }
  setTimeout(follow, 3000);
}

function start() {
  $("login").hidden = true;
  $("panel").hidden = false;
  refresh();
  follow();
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  start();
});
$("forget").addEventListener("click", () => { sessionStorage.removeItem(KEY); if (events) events.abort(); showLogin(); });
$("create").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const body = { id: $("new-id").value.trim(), login: $("new-login").value };
  const phone = $("new-phone").value.trim();
  if (phone) body.phone = phone;
  act("create " + body.id, () => api("POST", "/api/v1/sessions", body));
});

// A key in the URL fragment (#key=...) is taken once and removed from the address bar.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("key")) { sessionStorage.setItem(KEY, fragment.get("key")); history.replaceState(null, "", location.pathname); }
fetch("/api/v1/sessions", { headers: { "X-API-Key": apiKey() } }).then((r) => (r.status === 401 ? showLogin() : start()));
