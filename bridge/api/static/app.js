// baileys-bridge dashboard: a thin client of the JSON API. The API key lives in sessionStorage only.
// Live data comes from the SSE stream (events since the page opened, resumed by sequence number);
// sandbox bridges add the virtual phone (GET /api/v1/sandbox answers 404 in production).
"use strict";
const KEY = "bridge.apiKey";
const MAX_EVENTS = 30;
const MAX_MESSAGES = 50;
const $ = (id) => document.getElementById(id);
let qrSession = null;
let events = null;
let lastSeq = null;
let sessions = [];
let selected = null;
let sandbox = null;
const perSession = new Map(); // id -> {events: [], messages: Map(id -> message row)}
const alerts = [];

function apiKey() { return sessionStorage.getItem(KEY) || ""; }
const enc = encodeURIComponent;

async function api(method, path, body) {
  const headers = { "X-API-Key": apiKey() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401) { showLogin("That key was refused."); throw new Error("unauthorized"); }
  if (!res.ok) {
    let message = res.statusText;
    try { message = (await res.json()).error.message; } catch (_) { /* not JSON */ }
    const err = new Error(message);
    err.status = res.status;
    throw err;
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

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function cell(text, cls) { return el("td", text, cls); }

function button(label, onClick, primary) {
  const b = el("button", label, primary ? "primary" : "");
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

function when(ts) { return ts ? new Date(ts * 1000).toLocaleString() : ""; }
function clock(ts) { return ts ? new Date(ts * 1000).toLocaleTimeString() : ""; }

async function act(label, fn) {
  try { say(label + "…"); await fn(); say(label + ": done"); } catch (e) { say(label + ": " + e.message, true); }
  await refresh();
}

function bucket(id) {
  if (!perSession.has(id)) perSession.set(id, { events: [], messages: new Map() });
  return perSession.get(id);
}

function stateBadge(state) {
  const badge = el("span", state, "state state-" + state);
  return badge;
}

function render() {
  const body = $("sessions");
  body.replaceChildren();
  if (sessions.length === 0) {
    const tr = document.createElement("tr");
    tr.appendChild(cell("No sessions yet: create one above.", "muted")).colSpan = 6;
    body.appendChild(tr);
  }
  for (const s of sessions) {
    const tr = document.createElement("tr");
    if (s.id === selected) tr.className = "selected";
    const st = document.createElement("td");
    st.appendChild(stateBadge(s.state));
    tr.append(cell(s.id), st, cell(s.me || s.phone || ""), cell(when(s.since)), cell(String(s.restarts)));
    const actions = document.createElement("td");
    const base = "/api/v1/sessions/" + enc(s.id);
    actions.append(button("Details", () => select(s.id)), " ");
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
  renderPhoneChoices();
  renderDetail();
}

async function pairingCode(s) {
  const phone = s.phone || prompt("Phone number (digits, international format)");
  if (!phone) return;
  await act("pairing code for " + s.id, async () => {
    const r = await api("POST", "/api/v1/sessions/" + enc(s.id) + "/pairing-code", { phone });
    showCode(s.id, r.code, phone);
  });
}

async function showQr(id) {
  const res = await fetch("/api/v1/sessions/" + enc(id) + "/qr?format=png&scale=6",
    { headers: { "X-API-Key": apiKey() }, cache: "no-store" });
  if (!res.ok) { hideQr(); return; }
  const old = $("qr").src;
  $("qr").src = URL.createObjectURL(await res.blob());
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  qrSession = id;
  $("qr-session").textContent = id;
  $("qr-box").hidden = false;
}

function showCode(id, code, phone) {
  $("code-session").textContent = id;
  $("code").textContent = code;
  $("code-box").hidden = false;
  if (sandbox) {
    $("pair-code").value = code;
    const s = sessions.find((x) => x.id === id);
    if (phone || (s && s.phone)) $("pair-phone").value = phone || s.phone;
  }
}

function hideQr() { qrSession = null; $("qr-box").hidden = true; }

async function refresh() {
  try {
    const data = await api("GET", "/api/v1/sessions");
    sessions = data.sessions;
    $("status").textContent = sessions.length + " session(s)";
    render();
    if (qrSession === null) {
      const waiting = sessions.find((s) => s.state === "qr");
      if (waiting) await showQr(waiting.id);
    }
  } catch (e) {
    if (e.message !== "unauthorized") say(e.message, true);
  }
}

// --- one session ---
function select(id) {
  selected = id;
  $("detail").hidden = false;
  render();
  loadSnapshots();
  $("detail-title").scrollIntoView({ block: "nearest" });
}

function renderDetail() {
  if (!selected) return;
  const s = sessions.find((x) => x.id === selected);
  $("detail-id").textContent = selected;
  $("detail-state").textContent = s ? s.state : "gone";
  $("detail-state").className = "state state-" + (s ? s.state : "stopped");
  $("detail-me").textContent = s && s.me ? "account " + s.me : "not linked yet";
  const b = bucket(selected);
  const rows = $("messages");
  rows.replaceChildren();
  const list = [...b.messages.values()].sort((a, c) => c.ts - a.ts).slice(0, MAX_MESSAGES);
  if (list.length === 0) rows.append(emptyRow("No messages since this page opened.", 5));
  for (const m of list) {
    const tr = document.createElement("tr");
    tr.append(cell(clock(m.ts)), cell(m.from_me ? "sent" : "received"), cell(m.chat || ""),
      cell(m.text || "[" + (m.kind || "message") + "]"), cell(m.status || (m.from_me ? "pending" : "")));
    tr.dataset.id = m.id;
    rows.append(tr);
  }
  const evs = $("events");
  evs.replaceChildren();
  for (const e of b.events.slice().reverse()) evs.append(el("li", clock(e.ts) + " " + e.kind + " " + summary(e)));
}

function emptyRow(text, span) {
  const tr = document.createElement("tr");
  tr.appendChild(cell(text, "muted")).colSpan = span;
  return tr;
}

function summary(e) {
  const d = e.data || {};
  if (e.kind === "session.state") return (d.previous || "") + " → " + d.state + (d.reason ? " (" + d.reason + ")" : "");
  if (e.kind === "message") return (d.from_me ? "to " : "from ") + (d.chat || "") + ": " + (d.text || d.kind || "");
  if (e.kind === "message.status") return d.id + " " + d.status;
  if (e.kind === "alert") return d.severity + " " + d.alert + ": " + d.message;
  if (e.kind === "snapshot") return d.reason || "";
  if (e.kind === "session.qr") return "new QR";
  return "";
}

async function loadSnapshots() {
  if (!selected) return;
  const id = selected;
  const rows = $("snapshots");
  try {
    const data = await api("GET", "/api/v1/sessions/" + enc(id) + "/snapshots");
    rows.replaceChildren();
    if (data.snapshots.length === 0) rows.append(emptyRow("No snapshot yet.", 4));
    for (const snap of data.snapshots) {
      const tr = document.createElement("tr");
      tr.className = "snapshot";
      const base = "/api/v1/sessions/" + enc(id) + "/snapshots/" + enc(snap.id);
      const actions = document.createElement("td");
      actions.append(button("Verify", () => act("verify " + snap.id, async () => {
        const r = await api("POST", base + "/verify");
        if (!r.ok) throw new Error("problems: " + r.problems.join("; "));
        say("verify " + snap.id + ": " + r.checked + " files OK");
      })), " ", button("Restore…", () => {
        if (!confirm("Restore snapshot " + snap.id + " into session " + id + "?\n" +
          "The session must be stopped; what is there now is snapshotted first.")) return;
        act("restore " + snap.id, () => api("POST", base + "/restore"));
      }));
      tr.append(cell(when(snap.created_at)), cell(snap.reason), cell(String(snap.files.length)), actions);
      rows.append(tr);
    }
  } catch (e) { say("snapshots: " + e.message, true); }
}

// --- webhooks ---
async function loadHooks() {
  const rows = $("hooks");
  try {
    const data = await api("GET", "/api/v1/webhooks");
    rows.replaceChildren();
    if (data.webhooks.length === 0) rows.append(emptyRow("No webhook configured.", 6));
    for (const h of data.webhooks) {
      const base = "/api/v1/webhooks/" + enc(h.id);
      const [pending, failed] = await Promise.all([
        api("GET", base + "/deliveries?state=pending&limit=100"), api("GET", base + "/deliveries?state=failed&limit=100")]);
      const count = (list) => (list.length >= 100 ? "100+" : String(list.length));
      const worst = failed.deliveries[0] || pending.deliveries.find((d) => d.last_error);
      const tr = document.createElement("tr");
      const actions = document.createElement("td");
      if (failed.deliveries.length) {
        actions.append(button("Redeliver failed", () => act("redeliver " + h.id, async () => {
          await api("POST", base + "/redeliver", {});
          await loadHooks();
        })));
      }
      tr.append(cell(h.id), cell(h.url), cell(count(pending.deliveries)), cell(count(failed.deliveries),
        failed.deliveries.length ? "error" : ""), cell(worst ? worst.last_error : ""), actions);
      rows.append(tr);
    }
  } catch (e) { if (e.message !== "unauthorized") say("webhooks: " + e.message, true); }
}

// --- live events ---
function onEvent(kind, data) {
  if (typeof data.seq === "number") lastSeq = data.seq;
  const session = data.session;
  const d = data.data || {};
  if (session) {
    const b = bucket(session);
    b.events.push(data);
    if (b.events.length > MAX_EVENTS) b.events.shift();
    if (kind === "message" && d.id) {
      const old = b.messages.get(d.id) || {};
      b.messages.set(d.id, { ...old, ...d, ts: d.timestamp || data.ts, status: old.status || d.status });
    }
    if (kind === "message.status" && d.id) {
      const old = b.messages.get(d.id) || { id: d.id, chat: d.chat, from_me: d.from_me, ts: data.ts };
      b.messages.set(d.id, { ...old, status: d.status });
    }
  }
  if (kind === "alert" || kind === "incident") {
    alerts.unshift(data);
    if (alerts.length > MAX_EVENTS) alerts.pop();
    const list = $("alerts");
    list.replaceChildren(...alerts.map((a) => el("li", clock(a.ts) + " " + (a.session || "bridge") + " " + a.kind +
      " " + summary(a), a.data && a.data.severity === "critical" ? "error" : "")));
  }
  if (kind === "session.state") refresh();
  else if (session && session === selected) renderDetail();
  if (kind === "session.qr" && session && (qrSession === null || qrSession === session)) showQr(session);
  if (kind === "session.pairing_code" && session && d.code) showCode(session, d.code);
  if (kind === "snapshot" && session === selected) loadSnapshots();
}

// EventSource cannot send headers, so stream with fetch and parse SSE by hand.
async function follow() {
  if (events) events.abort();
  events = new AbortController();
  try {
    const path = "/api/v1/events" + (lastSeq === null ? "" : "?after=" + lastSeq);
    const res = await fetch(path, { headers: { "X-API-Key": apiKey() }, signal: events.signal });
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
        if (!kind) continue;
        const data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || "{}");
        onEvent(kind, data);
      }
    }
  } catch (_) { /* aborted or dropped */ }
  setTimeout(follow, 3000);
}

// --- virtual phone (sandbox bridges only) ---
async function detectSandbox() {
  try {
    sandbox = await api("GET", "/api/v1/sandbox");
  } catch (e) {
    sandbox = null;
    return;
  }
  $("sandbox-banner").hidden = false;
  $("sandbox-root").textContent = sandbox.auth_root;
  document.title = "SANDBOX · baileys-bridge";
  $("phone").hidden = false;
  $("chat-contact").replaceChildren(...sandbox.contacts.map((c) => {
    const o = el("option", c.name + " (" + c.phone + ")" + (c.echo ? ": answers everything" : ""));
    o.value = c.phone;
    return o;
  }));
  renderPhoneChoices();
  setInterval(loadChat, 2000);
}

function renderPhoneChoices() {
  if (!sandbox) return;
  const keep = (select, options) => {
    const old = select.value;
    select.replaceChildren(...options);
    if ([...select.options].some((o) => o.value === old)) select.value = old;
  };
  keep($("scan-session"), sessions.filter((s) => s.state === "qr").map((s) => { const o = el("option", s.id); o.value = s.id; return o; }));
  keep($("chat-to"), sessions.filter((s) => s.me).map((s) => {
    const phone = s.me.split("@")[0].split(":")[0];
    const o = el("option", phone + " (" + s.id + ")");
    o.value = phone;
    return o;
  }));
  if (selected && !$("send-to").value && sandbox.contacts.length) $("send-to").value = sandbox.contacts[0].phone;
}

async function loadChat() {
  const contact = $("chat-contact").value;
  if (!sandbox || !contact || $("panel").hidden) return;
  try {
    const data = await api("GET", "/api/v1/sandbox/contacts/" + enc(contact) + "/chat");
    const log = $("chat-log");
    const items = data.messages.map((m) => {
      const who = m.direction === "in" ? "from " + (m.from || "").split("@")[0] : "to " + (m.to || "").split("@")[0];
      const li = el("li", "", "bubble " + m.direction);
      li.append(el("span", who + " · " + clock(m.t), "muted"), el("span", m.text || "[" + m.kind + "]"));
      return li;
    });
    if (items.length === 0) items.push(el("li", "No messages for this contact yet.", "muted"));
    log.replaceChildren(...items);
  } catch (e) { /* shown on the next action */ }
}

function start() {
  $("login").hidden = true;
  $("panel").hidden = false;
  refresh();
  follow();
  loadHooks();
  detectSandbox();
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
  act("create " + body.id, async () => { await api("POST", "/api/v1/sessions", body); select(body.id); });
});
$("send").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = selected;
  act("send to " + $("send-to").value, async () => {
    const r = await api("POST", "/api/v1/sessions/" + enc(id) + "/messages", { to: $("send-to").value.trim(), text: $("send-text").value });
    const b = bucket(id);
    const old = b.messages.get(r.id) || {};
    b.messages.set(r.id, { id: r.id, from_me: true, chat: $("send-to").value.trim(), text: $("send-text").value,
      ts: Date.now() / 1000, ...old, status: old.status || "sent" });
    renderDetail();
  });
});
$("snap-refresh").addEventListener("click", loadSnapshots);
$("snap-take").addEventListener("click", () => act("snapshot " + selected, async () => {
  await api("POST", "/api/v1/sessions/" + enc(selected) + "/snapshots", { reason: "dashboard" });
  await loadSnapshots();
}));
$("hooks-refresh").addEventListener("click", loadHooks);
$("phone-scan").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const session = $("scan-session").value;
  if (!session) { say("no session is showing a QR: create one with login QR first", true); return; }
  act("virtual phone scans " + session, async () => {
    const r = await api("POST", "/api/v1/sandbox/scan", { session });
    say("linked " + session + " as +" + r.phone);
  });
});
$("phone-pair").addEventListener("submit", (ev) => {
  ev.preventDefault();
  act("virtual phone enters the code", () => api("POST", "/api/v1/sandbox/pair-code",
    { phone: $("pair-phone").value.trim(), code: $("pair-code").value.trim() }));
});
$("phone-chat").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const contact = $("chat-contact").value;
  act("contact " + contact + " sends", async () => {
    await api("POST", "/api/v1/sandbox/contacts/" + enc(contact) + "/send", { to: $("chat-to").value, text: $("chat-text").value });
    $("chat-text").value = "";
    await loadChat();
  });
});
$("chat-contact").addEventListener("change", loadChat);

// A key in the URL fragment (#key=...) is taken once and removed from the address bar.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("key")) { sessionStorage.setItem(KEY, fragment.get("key")); history.replaceState(null, "", location.pathname); }
fetch("/api/v1/sessions", { headers: { "X-API-Key": apiKey() } }).then((r) => (r.status === 401 ? showLogin() : start()));
