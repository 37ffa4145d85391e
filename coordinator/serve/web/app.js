/* The page's behaviour: the chat and the cluster view.
 *
 * Chat: the conversation goes to POST /v1/chat/completions with stream:true
 * and the reply is read as server-sent events while it arrives; Stop aborts
 * the request (the server ends the session when the client hangs up). The
 * model name comes from GET /v1/models, since a request naming a model the
 * server does not serve is refused. When the server wants an API key (a 401)
 * the page asks once and keeps it in localStorage.
 *
 * Cluster: /health and /metrics are polled every 2 s, with the key when the
 * page has one (without it, /health says only ok or degraded); rates
 * (tokens/s, busy share, time per micro-batch) are the differences between
 * two polls, over the server's clock (/health's "time"). */
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "relais.apiKey";
const POLL_MS = 2000;

/* ---- the API key and requests ---- */

let keyWaiters = null;   // resolvers waiting for the key dialog

function apiKey() { return localStorage.getItem(KEY_STORE) || ""; }

function askKey() {
  if (!keyWaiters) {
    keyWaiters = [];
    $("key-input").value = "";
    $("key-dialog").showModal();
  }
  return new Promise((resolve) => keyWaiters.push(resolve));
}

function keyAnswered(key) {
  if (key !== null) localStorage.setItem(KEY_STORE, key);
  $("key-dialog").close();
  const waiters = keyWaiters || [];
  keyWaiters = null;
  waiters.forEach((w) => w(key));
}

// fetch with the key; on 401, asks for one and tries again once.
async function api(path, init = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = Object.assign({}, init.headers);
    if (apiKey()) headers.Authorization = "Bearer " + apiKey();
    const resp = await fetch(path, Object.assign({}, init, { headers }));
    if (resp.status !== 401 || attempt > 0) return resp;
    if ((await askKey()) === null) return resp;
  }
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    return (body.error && body.error.message) || resp.statusText;
  } catch (e) {
    return resp.status + " " + resp.statusText;
  }
}

/* ---- chat ---- */

const history = [];        // {role, content} of the conversation so far
let controller = null;     // the reply under way, to stop it

async function loadModels() {
  const select = $("model");
  const resp = await api("/v1/models");
  if (!resp.ok) {
    setStatus("models: " + (await errorText(resp)), "bad");
    return;
  }
  const list = (await resp.json()).data || [];
  select.replaceChildren(...list.map((m) => new Option(m.id, m.id)));
}

function addMessage(role, text) {
  const box = document.createElement("div");
  box.className = "message " + role;
  const who = document.createElement("div");
  who.className = "role";
  who.textContent = role;
  const body = document.createElement("div");
  body.className = "body";
  box.append(who, body);
  $("messages").appendChild(box);
  setBody(body, role, text);
  return body;
}

function setBody(body, role, text) {
  if (role === "assistant") body.replaceChildren(Markdown.render(text));
  else body.textContent = text;   // the user's own words, shown as typed
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

// The data lines of complete events in buf; returns what is left over.
function takeEvents(buf, onData) {
  let end;
  while ((end = buf.indexOf("\n\n")) >= 0) {
    const event = buf.slice(0, end);
    buf = buf.slice(end + 2);
    const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
    if (data) onData(data);
  }
  return buf;
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
  document.body.classList.toggle("busy", busy);
}

async function send(text) {
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  history.push({ role: "user", content: text });
  messages.push(...history);
  addMessage("user", text);
  const body = addMessage("assistant", "");
  body.classList.add("streaming");
  const request = {
    model: $("model").value,
    messages,
    stream: true,
    stream_options: { include_usage: true },
    temperature: +$("temperature").value,
    max_tokens: Math.max(1, parseInt($("max-tokens").value, 10) || 1),
  };
  controller = new AbortController();
  setBusy(true);
  let reply = "", finish = null, usage = null, err = null;
  const t0 = performance.now();
  let tFirst = null;
  try {
    const resp = await api("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
      signal: controller.signal,
    });
    if (!resp.ok) throw new Error(await errorText(resp));
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();   // keeps a character split between chunks
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf = takeEvents(buf + decoder.decode(value, { stream: true }), (data) => {
        if (data === "[DONE]") return;
        const ev = JSON.parse(data);
        if (ev.error) throw new Error(ev.error.message);
        if (ev.usage) usage = ev.usage;
        const choice = ev.choices && ev.choices[0];
        if (!choice) return;
        if (choice.delta && choice.delta.content) {
          if (tFirst === null) tFirst = performance.now();
          reply += choice.delta.content;
          setBody(body, "assistant", reply);
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      });
    }
  } catch (e) {
    err = e.name === "AbortError" ? "stopped" : e.message;
  } finally {
    controller = null;
    setBusy(false);
    body.classList.remove("streaming");
  }
  if (reply || err === "stopped") history.push({ role: "assistant", content: reply });
  else history.pop();   // a request that failed outright leaves no turn behind
  const box = body.parentElement;
  box.dataset.finish = finish || (err === "stopped" ? "stopped" : "error");
  if (err && err !== "stopped") {
    const note = document.createElement("div");
    note.className = "error";
    note.textContent = err;
    box.appendChild(note);
  }
  const secs = (performance.now() - t0) / 1000;
  const parts = [err === "stopped" ? "stopped" : finish ? "finished: " + finish : ""];
  if (tFirst !== null) parts.push("first token after " + ((tFirst - t0) / 1000).toFixed(2) + " s");
  if (usage) parts.push(usage.completion_tokens + " tokens, " + (usage.completion_tokens / secs).toFixed(1) + " tokens/s");
  $("chat-stats").textContent = parts.filter(Boolean).join(" · ");
}

function initChat() {
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("prompt").value.trim();
    if (!text || controller) return;
    $("prompt").value = "";
    send(text);
  });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => controller && controller.abort());
  $("clear").addEventListener("click", () => {
    if (controller) controller.abort();
    history.length = 0;
    $("messages").replaceChildren();
    $("chat-stats").textContent = "";
  });
  $("change-key").addEventListener("click", async () => {
    if ((await askKey()) !== null) loadModels();
  });
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    keyAnswered($("key-input").value.trim());
  });
  $("key-cancel").addEventListener("click", () => keyAnswered(null));
  $("key-dialog").addEventListener("cancel", (e) => {
    e.preventDefault();
    keyAnswered(null);
  });
}

/* ---- cluster view ---- */

let previous = null;   // the last poll: {t, health, metrics}

function setStatus(text, cls) {
  const s = $("server-status");
  s.textContent = text;
  s.className = "status " + (cls || "");
}

// Prometheus text -> {"name{labels}": value}
function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const sp = line.lastIndexOf(" ");
    out[line.slice(0, sp)] = +line.slice(sp + 1);
  }
  return out;
}

// A time in ms with two significant figures below 10 ms: a node holding
// one small layer spends well under 0.05 ms per micro-batch, which one
// decimal would show as 0.0.
function millis(ms) {
  return ms >= 10 ? ms.toFixed(0) : ms > 0 ? ms.toPrecision(2) : "0";
}

function bytes(n) {
  if (!(n > 0)) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return n.toFixed(u ? 1 : 0) + " " + units[u];
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function rate(now, before, dt) {
  return before === undefined || dt <= 0 ? null : (now - before) / dt;
}

function renderCluster(h, metrics, prev, dt) {
  const tokens = h.tokens || {};
  const ptok = prev && prev.health.tokens;
  const genRate = ptok ? rate(tokens.generated, ptok.generated, dt) : null;
  const summary = $("summary");
  const items = [
    ["Model", h.model],
    ["Status", h.status],
    ["Sessions", (h.sessions.active || 0) + " active / " + (h.sessions.max || "?") + ", " + (h.sessions.queued || 0) + " queued"],
    ["Context per session", h.sessions.ctx ? h.sessions.ctx + " positions" : "?"],
    ["Generated", (tokens.generated || 0) + " tokens" + (genRate !== null ? " (" + genRate.toFixed(1) + "/s now)" : "")],
    ["Up", h.uptime_seconds !== undefined ? Math.round(h.uptime_seconds) + " s" : "?"],
  ];
  summary.replaceChildren(...items.map(([k, v]) => {
    const d = document.createElement("div");
    const b = document.createElement("b");
    b.textContent = k;
    d.append(b, document.createTextNode(" " + v));
    return d;
  }));

  const tbody = $("nodes").tBodies[0];
  tbody.replaceChildren();
  const prevNodes = {};
  if (prev) for (const n of prev.health.nodes || []) prevNodes[n.name] = n;
  const tokensPerBatch = (() => {
    // every micro-batch goes through every stage: tokens of a node = its batches x the mean batch size
    const pm = prev && prev.metrics;
    const db = pm ? metrics["relais_batches_total"] - pm["relais_batches_total"] : 0;
    const dtok = pm ? metrics["relais_batch_tokens_total"] - pm["relais_batch_tokens_total"] : 0;
    return db > 0 ? dtok / db : null;
  })();
  for (const n of h.nodes || []) {
    const row = tbody.insertRow();
    row.dataset.node = n.name;
    const p = prevNodes[n.name];
    const batchRate = p ? rate(n.batches, p.batches, dt) : null;
    const busy = p ? rate(n.busy_seconds, p.busy_seconds, dt) : null;
    const db = p ? n.batches - p.batches : 0;
    cell(row, n.name, "name");
    cell(row, n.state, "state " + n.state);
    cell(row, n.layers || (h.nodes.length === 1 ? "all" : "none"));
    cell(row, String(n.sessions));
    cell(row, n.kv_bytes !== undefined ? bytes(n.kv_bytes) : "?");
    cell(row, batchRate !== null && tokensPerBatch !== null ? (batchRate * tokensPerBatch).toFixed(1) : batchRate === 0 ? "0.0" : "–");
    cell(row, busy !== null ? Math.round(Math.min(1, busy) * 100) + " %" : "–");
    cell(row, db > 0 ? millis((n.busy_seconds - p.busy_seconds) * 1000 / db) : "–");
    cell(row, bytes(n.bytes_in) + " / " + bytes(n.bytes_out));
  }
}

let polling = false;

async function poll() {
  if (polling) return;   // a slow answer is not overtaken by the next poll
  polling = true;
  try {
    const auth = apiKey() ? { headers: { Authorization: "Bearer " + apiKey() } } : {};
    const resp = await fetch("/health", auth);
    const h = await resp.json();
    if (h.status !== "ok" && h.status !== "degraded") {
      setStatus("server " + h.status, h.status === "loading" ? "warn" : "bad");
      return;
    }
    if (!h.nodes) {   // the server has a key and the page none yet
      setStatus("server " + h.status + " (the API key shows the nodes)", h.status === "ok" ? "good" : "warn");
      return;
    }
    let metrics = {};
    // /metrics wants the key when the server has one: without it, tokens per micro-batch are left out
    const m = await fetch("/metrics", auth);
    if (m.ok) metrics = parseMetrics(await m.text());
    const now = { t: h.time, health: h, metrics };
    // rates over at least a second of the server's clock: two answers close together would magnify noise
    const dt = previous ? now.t - previous.t : 0;
    renderCluster(h, metrics, dt >= 1 ? previous : null, dt);
    if (!previous || dt >= 1) previous = now;
    const down = (h.nodes || []).filter((n) => n.state !== "ready").length;
    setStatus((h.nodes || []).length + " node(s), " + (down ? down + " not ready" : "all ready"), down ? "warn" : "good");
  } catch (e) {
    setStatus("server unreachable", "bad");
  } finally {
    polling = false;
  }
}

/* ---- tabs and start ---- */

function show(tab) {
  for (const name of ["chat", "cluster"]) {
    $(name).hidden = name !== tab;
    $("tab-" + name).classList.toggle("active", name === tab);
  }
  location.hash = tab;
}

document.addEventListener("DOMContentLoaded", () => {
  $("tab-chat").addEventListener("click", () => show("chat"));
  $("tab-cluster").addEventListener("click", () => show("cluster"));
  show(location.hash === "#cluster" ? "cluster" : "chat");
  initChat();
  poll();
  setInterval(poll, POLL_MS);
  loadModels();
});
