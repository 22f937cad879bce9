// Tributary's dashboard: a client of the public REST API and its event stream, nothing
// else. The session cookie (HttpOnly) authenticates; every change sends the session's
// anti-CSRF token. Text from the API is only ever set as text (never as HTML).
"use strict";

const state = { me: null, events: null, listeners: new Set() };
let refreshTimer = null;
const main = () => document.getElementById("main");

// ---- DOM helpers ------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function show(...nodes) {
  const m = main();
  m.replaceChildren(...nodes);
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(1)) + " " + u[i];
}

function when(t) {
  if (!t) return "–";
  const d = new Date(t);
  return isNaN(d) ? t : d.toLocaleString();
}

function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function canOperate() {
  return state.me && (state.me.role === "operator" || state.me.role === "admin");
}

// ---- API ----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.me && state.me.csrf_token) headers["X-CSRF-Token"] = state.me.csrf_token;
  const resp = await fetch("/api/v1" + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (resp.status === 401 && path !== "/session") {
    signedOut("Your session has ended: sign in again.");
    throw new ApiError(401, data);
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/// Runs `load`, showing a loading state, and an error state that says what to do.
async function page(title, load) {
  show(h("h1", { text: title }), h("p", { class: "muted", text: "Loading…" }));
  try {
    const nodes = await load();
    show(h("h1", { text: title }), ...nodes);
  } catch (e) {
    if (e.status === 401) return;
    show(
      h("h1", { text: title }),
      h("p", { class: "error", role: "alert", text: `Could not load this page: ${e.message}` }),
      h("p", { class: "muted", text: "Check that the daemon is running and reachable, then reload the page." }),
    );
  }
}

// ---- events ---------------------------------------------------------------------------

function startEvents() {
  if (state.events) return;
  const es = new EventSource("/api/v1/events");
  state.events = es;
  const types = ["job.queued", "job.started", "job.progress", "job.finished", "item.failed", "item.recovered",
    "conflict.opened", "conflict.resolved", "connector.created", "connector.changed", "connector.paused",
    "connector.resumed", "connector.removed", "config.reloaded", "vectorizer.state", "gap"];
  for (const t of types) {
    es.addEventListener(t, (m) => {
      let data;
      try { data = JSON.parse(m.data); } catch { return; }
      for (const l of [...state.listeners]) l(data);
    });
  }
}

function stopEvents() {
  if (state.events) state.events.close();
  state.events = null;
}

/// Listens to events while the current page is shown.
function onEvent(fn) {
  state.listeners.add(fn);
}

// ---- sign in / out ----------------------------------------------------------------------

function signedOut(message) {
  state.me = null;
  stopEvents();
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  const token = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true });
  const err = h("p", { class: "error", role: "alert" });
  if (message) err.textContent = message;
  const form = h("form", { class: "signin", onsubmit: async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    try {
      state.me = await api("POST", "/session", { token: token.value });
      token.value = "";
      signedIn();
    } catch (e) {
      err.textContent = e.status === 401 ? "That token is not valid." : e.message;
    }
  } },
  h("h1", { text: "Sign in" }),
  err,
  state.signInUrl
    ? h("div", { class: "actions" },
      h("a", { class: "button primary", id: "idp-sign-in", href: state.signInUrl, text: "Sign in with your identity provider" }))
    : null,
  state.signInUrl ? h("p", { class: "muted", text: "Or with a token:" }) : null,
  h("label", { for: "token", text: "API token or access token" }),
  token,
  h("div", { class: "actions" }, h("button", { class: state.signInUrl ? "" : "primary", type: "submit", text: "Sign in" })),
  h("p", { class: "muted", text: "Use a token from api.tokens in the configuration file, or an access token of your identity provider." }),
  );
  show(form);
  const idp = document.getElementById("idp-sign-in");
  (idp || token).focus();
}

/// The reason a sign-in through the identity provider failed, when the daemon sent the
/// browser back with one (`#/signin?error=…`); the address is cleaned up.
function signInError() {
  const m = location.hash.match(/^#\/signin\?error=(.*)$/);
  if (!m) return null;
  history.replaceState(null, "", location.pathname + location.search);
  try { return decodeURIComponent(m[1]); } catch { return m[1]; }
}

function signedIn() {
  document.getElementById("nav").hidden = false;
  document.getElementById("who").hidden = false;
  document.getElementById("principal").textContent = `${state.me.principal} (${state.me.role})`;
  startEvents();
  route();
}

// ---- pages --------------------------------------------------------------------------------

function progressBar(job, finished) {
  const p = job.progress || {};
  const planned = p.bytes_planned || 0;
  const done = p.bytes_done !== undefined ? p.bytes_done : p.bytes_read || 0;
  // a job that succeeded is complete, whatever it had to read (its counts say what)
  const max = Math.max(planned, 1);
  const value = finished === "succeeded" || (finished && planned === 0) ? max : Math.min(done, max);
  const bar = h("progress", { max, value, "aria-label": `job ${job.id ?? job.job_id} progress` });
  const files = `${p.files_done || 0} of ${p.files_planned || 0} files`;
  const rate = p.throughput_bytes_per_second ? `, ${bytes(p.throughput_bytes_per_second)}/s` : "";
  const eta = p.eta_seconds !== undefined && p.eta_seconds !== null ? `, ETA ${seconds(p.eta_seconds)}` : "";
  return h("div", { class: "bar" }, bar, h("span", { class: "muted", text: `${files}, ${bytes(done)} of ${bytes(planned)}${rate}${eta}` }));
}

function statusClass(s) {
  return { succeeded: "ok", failed: "bad", interrupted: "warn", cancelled: "warn" }[s] || "";
}

async function runButtons(c) {
  if (!canOperate()) return [];
  const act = (label, fn) => h("button", { type: "button", onclick: async (ev) => {
    ev.target.disabled = true;
    try { await fn(); } catch (e) { alert(e.message); }
    ev.target.disabled = false;
    route();
  } }, label);
  return [
    act("Run", () => api("POST", `/connectors/${encodeURIComponent(c.id)}/runs`, { kind: "incremental" })),
    act("Full run", () => api("POST", `/connectors/${encodeURIComponent(c.id)}/runs`, { kind: "full" })),
    c.paused
      ? act("Resume", () => api("POST", `/connectors/${encodeURIComponent(c.id)}/resume`))
      : act("Pause", () => api("POST", `/connectors/${encodeURIComponent(c.id)}/pause`)),
  ];
}

function throughputChart(jobs) {
  const done = jobs.filter((j) => j.status === "succeeded" && j.started_at && j.finished_at).slice(0, 20).reverse();
  if (done.length === 0) return h("p", { class: "muted", text: "No finished jobs yet." });
  const rates = done.map((j) => {
    const secs = Math.max((new Date(j.finished_at) - new Date(j.started_at)) / 1000, 0.001);
    return (j.progress && j.progress.bytes_read ? j.progress.bytes_read : 0) / secs;
  });
  const max = Math.max(...rates, 1);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", `0 0 ${done.length * 12} 100`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "throughput of recent jobs");
  rates.forEach((r, i) => {
    const bar = document.createElementNS(ns, "rect");
    const hgt = Math.max((r / max) * 100, 1);
    bar.setAttribute("x", i * 12 + 1);
    bar.setAttribute("y", 100 - hgt);
    bar.setAttribute("width", 10);
    bar.setAttribute("height", hgt);
    bar.setAttribute("fill", "#1f6feb");
    const title = document.createElementNS(ns, "title");
    title.textContent = `job ${done[i].id}: ${bytes(r)}/s`;
    bar.append(title);
    svg.append(bar);
  });
  return h("div", {}, svg, h("p", { class: "muted", text: `Read throughput of the last ${done.length} jobs (highest ${bytes(max)}/s).` }));
}

async function overview() {
  await page("Overview", async () => {
    const [connectors, jobs, conflicts, failed, usage] = await Promise.all([
      api("GET", "/connectors?per_page=500"),
      api("GET", "/jobs?per_page=100"),
      api("GET", "/conflicts?per_page=1"),
      api("GET", "/items?status=failed&per_page=10"),
      api("GET", "/usage"),
    ]);
    // the vectorizer's queue, when a connector is vectorized (else the route is 503)
    const vectorized = connectors.items.some((c) => c.config && c.config.vectorize);
    const queue = vectorized ? await api("GET", "/queue").catch(() => null) : null;
    const usageOf = Object.fromEntries(usage.items.map((u) => [u.connector, u]));
    const latest = {};
    for (const j of jobs.items) if (!latest[j.connector]) latest[j.connector] = j;
    const logical = usage.items.reduce((a, u) => a + (u.bytes || 0), 0);
    const stored = usage.items.reduce((a, u) => a + (u.stored_bytes || 0), 0);
    const tiles = h("div", { class: "tiles" },
      h("div", { class: "tile" }, h("b", { text: connectors.meta.total }), "connectors"),
      h("div", { class: "tile" }, h("a", { href: "#/conflicts" }, h("b", { text: conflicts.meta.total })), "open conflicts"),
      h("div", { class: "tile" }, h("b", { text: failed.meta.total }), "failed items"),
      h("div", { class: "tile" }, h("b", { text: queue ? queue.pending : "off" }), queue ? `vectorizer ${queue.state}, queued` : "vectorization"),
      h("div", { class: "tile" }, h("b", { text: bytes(stored) }), `stored for ${bytes(logical)} of files` + (logical ? ` (${Math.round((1 - stored / logical) * 100)} % saved)` : "")),
    );
    const rows = connectors.items.map((c) => {
      const last = latest[c.id];
      const u = usageOf[c.id] || {};
      return h("tr", { "data-connector": c.id },
        h("td", {}, h("a", { href: `#/connectors/${encodeURIComponent(c.id)}`, text: c.id })),
        h("td", { text: c.kind }),
        h("td", { text: c.paused ? "paused" : c.state }),
        h("td", {}, last ? h("a", { href: `#/jobs/${last.id}`, class: statusClass(last.status), text: last.status }) : "never ran"),
        h("td", { class: "hide-narrow", text: c.next_run ? when(c.next_run) : "–" }),
        h("td", { text: u.files ?? "–" }),
        h("td", { text: bytes(u.bytes) }),
      );
    });
    const table = connectors.items.length
      ? h("table", {}, h("thead", {}, h("tr", {}, ["Connector", "Kind", "State", "Last job", "Next run", "Items", "Bytes"].map((t, i) => h("th", { class: i === 4 ? "hide-narrow" : null, text: t })))), h("tbody", {}, rows))
      : h("p", { class: "muted", text: "No connectors: add one to the YAML file (then reload) or create one through the API (POST /api/v1/connectors)." });
    const running = jobs.items.filter((j) => j.status === "running" || j.status === "queued");
    const runningBox = h("div", { id: "running" });
    const drawRunning = () => {
      runningBox.replaceChildren(...(running.length
        ? running.map((j) => h("div", { "data-job": j.id }, h("p", {}, h("a", { href: `#/jobs/${j.id}`, text: `Job ${j.id}` }), ` ${j.connector}, ${j.kind}, ${j.status}`), progressBar(j)))
        : [h("p", { class: "muted", text: "No job is running." })]));
    };
    drawRunning();
    onEvent((e) => {
      if (e.type === "job.progress") {
        const j = running.find((r) => r.id === e.job_id);
        if (j) { j.progress = e; j.status = "running"; drawRunning(); }
      } else if (e.type === "job.queued" || e.type === "job.started") {
        if (!running.find((r) => r.id === e.job_id)) running.push({ id: e.job_id, connector: e.connector, kind: e.kind, status: e.type === "job.queued" ? "queued" : "running", progress: {} });
        else running.find((r) => r.id === e.job_id).status = "running";
        drawRunning();
      } else if (e.type === "job.finished" || e.type.startsWith("connector.") || e.type === "gap") {
        scheduleRefresh();
      }
    });
    const failedList = failed.items.length
      ? h("table", {}, h("tbody", {}, failed.items.map((i) => h("tr", {}, h("td", { class: "mono", text: i.path }), h("td", { class: "bad", text: i.last_error || "" }), h("td", { text: `retry ${i.retry_count}` })))))
      : h("p", { class: "muted", text: "No failed items." });
    return [
      tiles,
      h("section", { class: "card" }, h("h2", { text: "Connectors" }), table),
      h("section", { class: "card" }, h("h2", { text: "Running jobs" }), runningBox),
      h("section", { class: "card" }, h("h2", { text: "Failed items" }), failedList),
      h("section", { class: "card" }, h("h2", { text: "Throughput" }), throughputChart(jobs.items)),
    ];
  });
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => route(), 300);
}

async function connectorPage(id) {
  await page(`Connector ${id}`, async () => {
    const [c, jobs, failed] = await Promise.all([
      api("GET", `/connectors/${encodeURIComponent(id)}`),
      api("GET", `/jobs?connector=${encodeURIComponent(id)}&per_page=20`),
      api("GET", `/items?status=failed&connector=${encodeURIComponent(id)}&per_page=50`),
    ]);
    const { status: live, ...spec } = c;
    const status = live || {};
    // as written, secrets shown as {"set": true}
    const settings = h("pre", { class: "log", text: JSON.stringify(spec, null, 2) });
    onEvent((e) => { if (e.connector === id && (e.type === "job.finished" || e.type === "job.queued" || e.type.startsWith("connector."))) scheduleRefresh(); });
    return [
      h("p", {}, `${c.kind || ""} · `, status.paused ? "paused" : status.state || "", status.next_run ? ` · next run ${when(status.next_run)}` : ""),
      h("div", { class: "actions" }, await runButtons({ id, paused: status.paused })),
      h("section", { class: "card" }, h("h2", { text: "Recent jobs" }), jobs.items.length
        ? h("table", {}, h("tbody", {}, jobs.items.map((j) => h("tr", {},
          h("td", {}, h("a", { href: `#/jobs/${j.id}`, text: `#${j.id}` })), h("td", { text: j.kind }),
          h("td", { class: statusClass(j.status), text: j.status }), h("td", { text: when(j.started_at) }), h("td", { text: `${j.error_count} errors` })))))
        : h("p", { class: "muted", text: "No jobs yet: start one with Run." })),
      h("section", { class: "card" }, h("h2", { text: "Failed items" }), failed.items.length
        ? h("table", {}, h("tbody", {}, failed.items.map((i) => h("tr", {}, h("td", { class: "mono", text: i.path }), h("td", { class: "bad", text: i.last_error || "" }), h("td", { text: `retries: ${i.retry_count}` })))))
        : h("p", { class: "muted", text: "No failed items." })),
      h("section", { class: "card" }, h("h2", { text: "Settings (secrets redacted)" }), settings),
    ];
  });
}

async function jobPage(id) {
  await page(`Job ${id}`, async () => {
    const [job, log] = await Promise.all([api("GET", `/jobs/${id}`), api("GET", `/jobs/${id}/log`)]);
    const statusEl = h("p", { id: "job-status", class: statusClass(job.status), text: job.status });
    const over = (s) => !["queued", "running"].includes(s);
    const barBox = h("div", { id: "job-progress" }, progressBar(job, over(job.status) && job.status));
    const logEl = h("pre", { class: "log", id: "job-log" });
    const drawLog = (lines) => {
      const items = lines.items || lines.lines || lines;
      logEl.textContent = (Array.isArray(items) ? items : []).map((l) => `${when(l.at)} ${l.level} ${l.message}`).join("\n") || "(no log lines yet)";
      logEl.scrollTop = logEl.scrollHeight;
    };
    drawLog(log);
    let pending = false;
    const refreshLog = async () => {
      if (pending) return;
      pending = true;
      try { drawLog(await api("GET", `/jobs/${id}/log`)); } finally { setTimeout(() => { pending = false; }, 1000); }
    };
    onEvent(async (e) => {
      if (e.job_id !== Number(id)) return;
      if (e.type === "job.progress") { barBox.replaceChildren(progressBar({ id, progress: e })); statusEl.textContent = "running"; refreshLog(); }
      if (e.type === "job.finished") {
        if (cancel) cancel.remove();
        // the final counts and log first, then the status that says it is over
        const [j, lines] = await Promise.all([api("GET", `/jobs/${id}`), api("GET", `/jobs/${id}/log`)]);
        barBox.replaceChildren(progressBar({ id, progress: { ...j.progress, bytes_done: j.progress.bytes_read } }, j.status));
        drawLog(lines);
        statusEl.textContent = e.status;
        statusEl.className = statusClass(e.status);
      }
    });
    var cancel = canOperate() && (job.status === "running" || job.status === "queued")
      ? h("button", { type: "button", onclick: () => api("POST", `/jobs/${id}/cancel`).catch((e) => alert(e.message)) }, "Cancel")
      : null;
    return [
      h("p", {}, h("a", { href: `#/connectors/${encodeURIComponent(job.connector)}`, text: job.connector }), ` · ${job.kind} · trigger ${job.trigger} · started ${when(job.started_at)}`),
      statusEl,
      h("section", { class: "card" }, h("h2", { text: "Progress" }), barBox, job.last_error ? h("p", { class: "bad", text: job.last_error }) : null, h("div", { class: "actions" }, cancel)),
      h("section", { class: "card" }, h("h2", { text: "Log" }), logEl),
    ];
  });
}

async function conflictsPage() {
  await page("Conflicts", async () => {
    const list = await api("GET", "/conflicts?per_page=50");
    onEvent((e) => { if (e.type.startsWith("conflict.")) scheduleRefresh(); });
    if (!list.items.length) return [h("p", { class: "muted", text: "No open conflicts: nothing waits for a decision." })];
    const cards = await Promise.all(list.items.map(async (c) => {
      const full = await api("GET", `/conflicts/${c.id}`);
      const claims = (full.claims || []).map((cl) => h("div", { class: "claim" },
        h("b", { text: `${cl.role}: ${cl.connector}` }),
        h("div", { class: "mono", text: cl.path }),
        h("div", { text: `size ${bytes(cl.size)}, ${cl.state}` }),
        h("div", { class: "muted", text: cl.mtime_ns ? when(new Date(cl.mtime_ns / 1e6).toISOString()) : "" }),
        h("div", { class: "mono muted", text: cl.digest || "" })));
      const buttons = canOperate() ? (full.resolutions || []).map((r) => h("button", { type: "button", onclick: async () => {
        try { await api("POST", `/conflicts/${c.id}/resolve`, { resolution: r }); } catch (e) { alert(e.message); }
        route();
      } }, r.replaceAll("_", " "))) : [];
      return h("section", { class: "card", "data-conflict": c.id },
        h("h2", { text: `#${c.id} ${full.kind} at ${full.path}` }),
        full.detail ? h("p", { text: full.detail }) : null,
        h("div", { class: "claims" }, claims),
        h("div", { class: "actions" }, buttons));
    }));
    return cards;
  });
}

async function searchPage() {
  await page("Search", async () => {
    const q = h("input", { type: "search", id: "q", "aria-label": "search query", placeholder: "What are you looking for?" });
    const out = h("div", { id: "hits" });
    const form = h("form", { onsubmit: async (ev) => {
      ev.preventDefault();
      out.replaceChildren(h("p", { class: "muted", text: "Searching…" }));
      try {
        const r = await api("GET", `/search?q=${encodeURIComponent(q.value)}&k=10`);
        out.replaceChildren(...(r.items.length ? r.items.map((hit) => h("div", { class: "hit" },
          h("a", { href: `/api/v1/items/${hit.item_id}/content`, text: hit.path }),
          h("span", { class: "muted", text: ` · ${hit.location || `passage ${hit.passage}`} · score ${Number(hit.score).toFixed(3)}` }),
          h("p", { text: hit.text }))) : [h("p", { class: "muted", text: "Nothing matched." })]));
      } catch (e) {
        out.replaceChildren(h("p", { class: "error", text: e.status === 503 ? `Search is not available: ${e.message}` : e.message }));
      }
    } }, h("div", { class: "actions" }, q, h("button", { class: "primary", type: "submit", text: "Search" })));
    return [form, out];
  });
  const q = document.getElementById("q");
  if (q) q.focus();
}

async function itemsPage(prefix) {
  await page("Items", async () => {
    const input = h("input", { type: "text", id: "prefix", "aria-label": "path prefix", value: prefix || "/" });
    const list = await api("GET", `/items?status=completed&per_page=100&prefix=${encodeURIComponent(prefix || "/")}`);
    const form = h("form", { onsubmit: (ev) => { ev.preventDefault(); location.hash = `#/items?prefix=${encodeURIComponent(input.value)}`; } },
      h("div", { class: "actions" }, input, h("button", { type: "submit", text: "Browse" })));
    return [form, list.items.length
      ? h("table", {}, h("tbody", {}, list.items.map((i) => h("tr", {}, h("td", {}, h("a", { href: `#/items/${i.id}`, class: "mono", text: i.path })), h("td", { text: bytes(i.size) }), h("td", { text: when(i.mtime) })))))
      : h("p", { class: "muted", text: "No stored items under this prefix." })];
  });
}

async function itemPage(id) {
  await page(`Item ${id}`, async () => {
    const item = await api("GET", `/items/${id}`);
    const versions = item.versions || [];
    return [h("p", { class: "mono", text: item.path }),
      h("section", { class: "card" }, h("h2", { text: "Versions" }), h("table", {}, h("tbody", {}, versions.map((v) => h("tr", {},
        h("td", { text: `#${v.id}` }), h("td", { text: v.deleted ? "deleted" : bytes(v.size) }), h("td", { text: when(v.committed_at || v.mtime) }),
        h("td", {}, v.deleted ? "" : h("a", { href: `/api/v1/items/${id}/content?version=${v.id}`, text: "download" })))))))];
  });
}

// ---- routing ----------------------------------------------------------------------------

function route() {
  if (!state.me) return;
  // the page being left: its event listeners and a refresh it asked for
  state.listeners.clear();
  clearTimeout(refreshTimer);
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return overview();
  if (parts[0] === "connectors" && parts[1]) return connectorPage(parts[1]);
  if (parts[0] === "jobs" && /^\d+$/.test(parts[1] || "")) return jobPage(parts[1]);
  if (parts[0] === "conflicts") return conflictsPage();
  if (parts[0] === "search") return searchPage();
  if (parts[0] === "items" && /^\d+$/.test(parts[1] || "")) return itemPage(parts[1]);
  if (parts[0] === "items") return itemsPage(params.get("prefix"));
  show(h("h1", { text: "Not found" }), h("p", {}, "No such page. ", h("a", { href: "#/", text: "Back to the overview" })));
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("signout").addEventListener("click", async () => {
    try { await api("DELETE", "/session"); } catch { /* signed out either way */ }
    signedOut("Signed out.");
  });
  try {
    const resp = await fetch("/api/v1/session", { credentials: "same-origin" });
    const me = resp.ok ? await resp.json() : null;
    const failed = signInError();
    state.signInUrl = (me && me.sign_in_url) || null;
    if (me && me.signed_in) {
      state.me = me;
      signedIn();
    } else {
      signedOut(failed ? `Signing in with your identity provider failed: ${failed}` : "");
    }
  } catch {
    signedOut("The daemon could not be reached.");
  }
});
