// inlet's operator console: reads /v1/admin/console every few seconds with the admin key the
// operator typed, runs /v1/context as a chosen user, and posts source actions. Every value from
// the server is written with textContent, never parsed as HTML.
"use strict";

const REFRESH_MS = 5000;
const state = { key: sessionStorage.getItem("inlet-key") || "", data: null, timer: null };
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

// A link only for http, https and mailto URLs: a `javascript:` or `data:` URL in a synced
// document must not become something the operator can click.
const LINK_SCHEMES = ["http:", "https:", "mailto:"];
function safeHref(url) {
  try {
    const parsed = new URL(String(url));
    return LINK_SCHEMES.includes(parsed.protocol) ? parsed.href : null;
  } catch (e) {
    return null;
  }
}

function say(text, bad) {
  $("message").textContent = text || "";
  $("message").className = bad ? "bad" : "";
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "Authorization": "Bearer " + state.key, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let payload = null;
  try { payload = await response.json(); } catch (e) { payload = null; }
  if (!response.ok) {
    const message = payload && payload.error ? payload.error.message : response.statusText;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return payload;
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 90) return Math.round(seconds) + " s";
  if (seconds < 5400) return Math.round(seconds / 60) + " min";
  if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h";
  return (seconds / 86400).toFixed(1) + " d";
}

function when(stamp) {
  return stamp ? new Date(stamp).toLocaleString() : "—";
}

function health(source) {
  if (source.paused) return "paused";
  if (source.failure_streak > 0) return "failing";
  return "healthy";
}

function progressText(source) {
  const p = source.progress;
  if (!p) return "";
  const parts = [];
  if (p.items !== undefined) parts.push(p.items + (p.total ? " / " + p.total : "") + " items");
  if (p.chunks !== undefined) parts.push(p.chunks + " chunks");
  if (p.eta_seconds !== undefined && p.eta_seconds !== null) parts.push("ETA " + ago(p.eta_seconds));
  return parts.join(", ");
}

function lastRunCell(source) {
  const td = el("td");
  const running = (source.history || []).find((r) => r.outcome === "running");
  if (running) {
    td.append(el("span", "running since " + when(running.started_at), "ok"));
    const progress = progressText(source);
    if (progress) td.append(el("div", progress, "muted"));
    return td;
  }
  const last = source.last_run;
  if (!last) { td.textContent = "never run"; return td; }
  td.append(el("span", last.outcome, last.outcome === "failed" ? "bad" : "ok"));
  td.append(el("div", last.kind + " · " + when(last.finished_at), "muted"));
  td.append(el("div", `${last.upserted} upserted, ${last.deleted} deleted, ${last.errors} errors`, "muted"));
  return td;
}

function eventsCell(source) {
  const events = source.events;
  if (!events) return el("td", "—", "muted");
  const td = el("td", events.live ? "live" : "off", events.live ? "ok" : "muted");
  if (events.last_event_at) td.append(el("div", "last " + when(events.last_event_at), "muted"));
  return td;
}

function actionButton(source, action, label) {
  const button = el("button", label);
  button.type = "button";
  button.dataset.action = action;
  button.dataset.source = source.name;
  const runs = action === "run" || action === "backfill";
  if (runs && state.data && !state.data.can_run) {
    button.disabled = true;
    button.title = "this process does not run sources (use inlet daemon --serve)";
  }
  button.addEventListener("click", () => act(source.name, action));
  return button;
}

function renderSources() {
  const body = $("sources").querySelector("tbody");
  body.replaceChildren();
  for (const source of state.data.sources) {
    const row = el("tr");
    row.className = health(source);
    row.dataset.source = source.name;
    row.append(el("td", source.name), el("td", source.type), el("td", source.documents), el("td", source.chunks));
    row.append(lastRunCell(source));
    row.append(el("td", ago(source.lag_seconds)));
    const next = el("td", source.paused ? "paused" : when(source.next_run));
    if (source.holder) {   // PostgreSQL: the daemon syncing it now, on any host, and its lease
      next.append(el("div", "held by " + source.holder.holder + " until " + when(source.holder.lease_expires), "muted"));
    }
    row.append(next);
    const failures = el("td", source.failure_streak || 0, source.failure_streak ? "bad" : "");
    row.append(failures, eventsCell(source));
    const errors = source.recent_errors || [];
    row.append(el("td", errors.length ? errors[0].error : "", "error"));
    const actions = el("td");
    actions.append(actionButton(source, "run", "Run now"), actionButton(source, "backfill", "Restart backfill"));
    actions.append(source.paused ? actionButton(source, "resume", "Resume") : actionButton(source, "pause", "Pause"));
    row.append(actions);
    body.append(row);
  }
}

function renderHistory() {
  const select = $("history-source");
  const names = state.data.sources.map((s) => s.name);
  if (select.options.length !== names.length) {
    const chosen = select.value;
    select.replaceChildren(...names.map((n) => el("option", n)));
    if (names.includes(chosen)) select.value = chosen;
  }
  const source = state.data.sources.find((s) => s.name === select.value) || state.data.sources[0];
  const runs = source ? [...source.history].reverse() : [];
  drawChart(runs);
  const body = $("runs").querySelector("tbody");
  body.replaceChildren();
  for (const run of [...runs].reverse()) {
    const row = el("tr");
    row.append(el("td", when(run.started_at)), el("td", run.kind),
      el("td", run.outcome, run.outcome === "failed" ? "bad" : "ok"), el("td", run.seconds ?? "…"),
      el("td", run.upserted), el("td", run.deleted), el("td", run.skipped), el("td", run.errors),
      el("td", run.error || "", "error"));
    body.append(row);
  }
}

function drawChart(runs) {
  // Bars: height = duration (log scale), colour = outcome; newest on the right.
  const ns = "http://www.w3.org/2000/svg";
  const width = 640, height = 90, gap = 3;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const longest = Math.max(1, ...runs.map((r) => r.seconds || 0));
  const bar = runs.length ? Math.min(30, (width - gap * runs.length) / runs.length) : 0;
  runs.forEach((run, i) => {
    const seconds = run.seconds || 0;
    const h = Math.max(3, (height - 4) * Math.log1p(seconds) / Math.log1p(longest));
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", i * (bar + gap));
    rect.setAttribute("y", height - h);
    rect.setAttribute("width", bar);
    rect.setAttribute("height", h);
    const colour = { ok: "#2e7d32", partial: "#f9a825", failed: "#c62828", interrupted: "#9e9e9e" };
    rect.setAttribute("fill", colour[run.outcome] || "#1565c0");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${run.kind} ${run.outcome}: ${seconds} s, ${run.upserted} upserted, ${run.errors} errors`;
    rect.append(title);
    svg.append(rect);
  });
  $("chart").replaceChildren(svg);
}

async function refresh() {
  try {
    state.data = await api("GET", "/v1/admin/console");
  } catch (error) {
    stop();
    if (error.status === 401) say("That key is not valid.", true);
    else if (error.status === 403) say("Refused: the console needs an admin key.", true);
    else say("Could not load the console: " + error.message, true);
    $("app").hidden = true;
    return;
  }
  $("app").hidden = false;
  $("logout").hidden = false;
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  renderSources();
  renderHistory();
}

async function act(name, action) {
  try {
    await api("POST", `/v1/admin/sources/${encodeURIComponent(name)}/${action}`);
    say(`${action} of ${name}: requested.`);
  } catch (error) {
    say(`${action} of ${name} refused: ${error.message}`, true);
  }
  refresh();
}

async function search(event) {
  event.preventDefault();
  const body = { query: $("query").value, token_budget: Number($("budget").value) || 2000 };
  const user = $("as-user").value.trim();
  if (user) body.user = user;
  const list = $("passages");
  list.replaceChildren();
  $("context").textContent = "";
  try {
    const answer = await api("POST", "/v1/context", body);
    for (const hit of answer.results) {
      const item = el("li");
      item.dataset.docId = hit.doc_id;
      const title = el("a", hit.title || hit.doc_id);
      const href = safeHref(hit.url);
      if (href) {
        title.href = href;
        title.rel = "noopener noreferrer";
      }
      item.append(title);
      item.append(el("div", `${hit.source} · ${hit.source_type} · score ${hit.score.toFixed(3)} · ${hit.doc_id}`, "meta"));
      item.append(el("div", hit.text, "text"));
      list.append(item);
    }
    if (!answer.results.length) list.append(el("li", "no passages visible to " + (user || "the operator"), "muted"));
    $("context").textContent = answer.context;
    say(`${answer.results.length} passage(s), ${answer.citations.length} citation(s) for ${user || "the operator"}.`);
  } catch (error) {
    say("Search refused: " + error.message, true);
  }
}

function start() {
  stop();
  refresh();
  state.timer = setInterval(refresh, REFRESH_MS);
}

function stop() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("key").value.trim();
    sessionStorage.setItem("inlet-key", state.key);
    $("key").value = "";
    start();
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem("inlet-key");
    state.key = "";
    stop();
    $("app").hidden = true;
    $("logout").hidden = true;
    say("Key forgotten.");
  });
  $("history-source").addEventListener("change", renderHistory);
  $("search").addEventListener("submit", search);
  if (state.key) start();
});
