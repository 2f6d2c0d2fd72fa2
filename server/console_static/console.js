// inlet's operator console: reads /v1/admin/console every few seconds with the admin key the
// operator typed, runs /v1/context as a chosen user, and posts source actions. Every value from
// the server is written with textContent, never parsed as HTML. Two views: the overview (every
// source, search as a user) and a page per source (`#source=NAME`: runs, errors with their times,
// skipped items with reasons, change events).
// Text from synced documents is shown with its bidirectional overrides and control characters
// spelled out (`visible`, the command line's rule), so a title cannot reorder what the operator
// reads. Each refresh updates the page in place (`patch`): focus and a text selection stay.
// A refresh that fails keeps the last data on screen and retries with back-off; only a key the
// server refuses (401/403), or one a browser cannot send at all, stops it. An answer older than the
// one on screen (a poll overtaken by an action's refresh, an earlier search) is dropped, never shown.
// Changing view moves focus to the new view's heading (back: to the source's link) and names the
// view in the page's title. Times are UTC, written as `inlet status` writes them.
"use strict";

const REFRESH_MS = 5000;
const RETRY_MAX_MS = 60000;
const OUTCOMES = { ok: "#2e7d32", partial: "#f9a825", failed: "#c62828", interrupted: "#9e9e9e", running: "#1565c0" };
// `requests` / `shown`: the number of the last read of the console's data started / put on screen;
// `searches`: of the last search started; `view`: the source whose page is shown (null: the overview);
// `opener`: what had focus on the overview when a source's page was opened.
const state = { key: sessionStorage.getItem("inlet-key") || "", data: null, timer: null, generation: 0, failures: 0,
  loadedAt: null, requests: 0, shown: 0, searches: 0, view: null, opener: null };
const $ = (id) => document.getElementById(id);

// C0 controls but newline and tab, DEL, C1 controls, and the Unicode bidi marks, embeddings,
// overrides and isolates: written as \xNN / \uNNNN, as `inlet` writes them to a terminal.
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
function visible(text) {
  return String(text).replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? "\\x" + code.toString(16).padStart(2, "0") : "\\u" + code.toString(16).padStart(4, "0");
  });
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = visible(text);
  if (cls) node.className = cls;
  return node;
}

function setText(node, text) {   // only when it changed: a selection in it stays
  const shown = visible(text);
  if (node.textContent !== shown) node.textContent = shown;
}

// Make `parent`'s children look like `fresh` (nodes built by this script), reusing the nodes
// already there where the tag is the same: the focused button and selected text survive a refresh.
function patch(parent, fresh) {
  const old = Array.from(parent.childNodes);
  fresh.forEach((node, i) => {
    const current = old[i];
    if (!current) parent.append(node);
    else if (current.nodeType !== node.nodeType || current.nodeName !== node.nodeName) parent.replaceChild(node, current);
    else if (node.nodeType !== Node.ELEMENT_NODE) { if (current.nodeValue !== node.nodeValue) current.nodeValue = node.nodeValue; }
    else {
      for (const attr of Array.from(current.attributes)) if (!node.hasAttribute(attr.name)) current.removeAttribute(attr.name);
      for (const attr of Array.from(node.attributes)) {
        if (current.getAttribute(attr.name) !== attr.value) current.setAttribute(attr.name, attr.value);
      }
      patch(current, Array.from(node.childNodes));
    }
  });
  for (let i = fresh.length; i < old.length; i++) old[i].remove();
}

// A table cell whose label shows on narrow screens (each row is then a card of label: value lines).
function cell(label, content, cls) {
  const td = el("td");
  td.dataset.label = label;
  const value = el("div", undefined, cls);
  for (const part of Array.isArray(content) ? content : [content]) {
    if (part === undefined || part === null) continue;
    value.append(part instanceof Node ? part : document.createTextNode(visible(part)));
  }
  td.append(value);
  return td;
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

// `kind` "load" marks a message about loading the data: the next successful load clears it.
function say(text, bad, kind) {
  setText($("message"), text || "");
  $("message").className = bad ? "bad" : "";
  $("message").dataset.kind = kind || "";
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

// UTC, as `inlet status` and the API write times (to the second): 2026-12-07T16:57:37Z.
function when(stamp) {
  return stamp ? new Date(stamp).toISOString().replace(/\.\d+Z$/, "Z") : "—";
}

function clock(date) {   // the time of day, UTC: 16:57:37Z
  return date.toISOString().slice(11, 19) + "Z";
}

function health(source) {
  if (source.paused) return "paused";
  if (source.failure_streak > 0) return "failing";
  return "healthy";
}

function detailHref(name) {
  return "#source=" + encodeURIComponent(name);
}

function chosenSource() {
  const match = /^#source=(.+)$/s.exec(location.hash);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch (e) {   // a malformed escape (a link cut short): no source has that name, and the page says so
    return match[1];
  }
}

function runningText(run) {
  const parts = [];
  if (run.total !== null && run.total !== undefined) parts.push(`${run.done || 0} of ${run.total} ${run.unit || "items"}`);
  parts.push(`${run.items} items, ${run.upserted} indexed`);
  if (run.eta_seconds !== null && run.eta_seconds !== undefined) parts.push("about " + ago(run.eta_seconds) + " left");
  return parts.join(", ");
}

function indexedText(source) {   // how far back the source is searchable
  const since = source.indexed_since;
  if (since === "all") return "all history";
  if (!since) return "nothing complete yet";
  return "back to " + when(since);
}

function lastRunContent(source) {
  if (source.running) {
    return [el("span", source.running.kind + " running since " + when(source.running.started_at), "ok"),
      el("div", runningText(source.running), "muted")];
  }
  const last = source.last_run;
  if (!last) return ["never run"];
  const parts = [el("span", last.outcome, last.outcome === "failed" ? "bad" : last.outcome === "partial" ? "warn" : "ok"),
    el("div", last.kind + " · " + when(last.finished_at), "muted"),
    el("div", `${last.upserted} upserted, ${last.deleted} deleted, ${last.skipped} skipped, ${last.errors} errors`, "muted")];
  const skipped = (last.skipped_items || []).length;
  if (skipped) {
    const link = el("a", `${skipped} not indexed: see why`);
    link.href = detailHref(source.name);
    parts.push(el("div", undefined, "muted"));
    parts[parts.length - 1].append(link);
  }
  return parts;
}

function nextRunContent(source) {
  if (source.paused) return [el("span", "paused", "badge paused")];
  const parts = [];
  if (source.scheduled === false) {
    parts.push(el("span", "not scheduled: no daemon runs this source", "muted"));
  } else {
    parts.push(source.next_run ? when(source.next_run) : "on demand");
  }
  if (source.retry_not_before) {   // the service that failed the last run asked for no call before then
    parts.push(el("div", "the service allows calls again from " + when(source.retry_not_before), "warn"));
  }
  if (source.holder) {   // PostgreSQL: the daemon syncing it now, on any host, and its lease
    parts.push(el("div", "held by " + source.holder.holder + " until " + when(source.holder.lease_expires), "muted"));
  }
  return parts;
}

function eventsContent(source) {
  const events = source.events;
  if (!events) return [el("span", "—", "muted")];
  const parts = [el("span", events.live ? "live" : "down", events.live ? "ok" : "bad")];
  if (events.last_event_at) parts.push(el("div", "last " + when(events.last_event_at), "muted"));
  return parts;
}

function errorContent(source) {
  const current = source.current_error;
  if (!current) return [];
  return [el("div", current.error, "bad"), el("div", "at " + when(current.at), "muted")];
}

// Clicks reach `act` through one listener on the document (`data-action`, `data-source`), so a
// button kept across refreshes acts on the source its row shows now.
function actionButton(source, action, label) {
  const button = el("button", label);
  button.type = "button";
  button.dataset.action = action;
  button.dataset.source = source.name;
  button.setAttribute("aria-label", `${label}: ${source.name}`);
  const runs = action === "run" || action === "backfill";
  if (runs && state.data && !state.data.can_run) {
    button.disabled = true;
    button.title = "this process does not run sources (use inlet daemon --serve)";
  }
  return button;
}

function actions(source) {
  return [actionButton(source, "run", "Run now"), actionButton(source, "backfill", "Restart backfill"),
    source.paused ? actionButton(source, "resume", "Resume") : actionButton(source, "pause", "Pause")];
}

function nameContent(source) {
  const link = el("a", source.name);
  link.href = detailHref(source.name);
  link.title = "runs, errors and skipped items of " + source.name;
  const parts = [link];
  if (source.paused) parts.push(el("div", "Paused" + (source.paused_since ? " since " + when(source.paused_since) : ""), "badge paused"));
  else if (source.failure_streak > 0) parts.push(el("div", "Failing", "badge failing"));
  return parts;
}

function renderSources() {
  const rows = [];
  $("no-daemon").hidden = state.data.can_run || state.data.sources.some((s) => s.scheduled);
  for (const source of state.data.sources) {
    const row = el("tr");
    row.className = health(source);
    row.dataset.source = source.name;
    row.append(cell("Source", nameContent(source)), cell("Type", source.type), cell("Documents", [String(source.documents), el("div", indexedText(source), "muted")]),
      cell("Chunks", source.chunks), cell("Last run", lastRunContent(source)), cell("Lag", ago(source.lag_seconds)),
      cell("Next run", nextRunContent(source)),
      cell("Failures", source.failure_streak || 0, source.failure_streak ? "bad" : ""),
      cell("Events", eventsContent(source)), cell("Last error", errorContent(source), "error"),
      cell("Actions", actions(source)));
    rows.push(row);
  }
  patch($("sources").querySelector("tbody"), rows);
  renderUnconfigured(state.data.unconfigured || []);
}

// Documents of sources the configuration no longer names (removed or renamed): not served, kept
// until `inlet forget NAME` deletes them.
function renderUnconfigured(sources) {
  const list = $("unconfigured");
  list.hidden = sources.length === 0;
  patch(list, sources.map((source) => el("li", source.state_only
    ? `Not configured: ${source.name}, no documents left but its sync state (checkpoint, runs) is: an interrupted ` +
      `forget? \`${source.remove}\` finishes deleting it.`
    : `Not configured: ${source.name}, ${source.documents} documents (not served; ` +
      `removed or renamed in the config?). \`${source.remove}\` deletes them; put the source back in the config to keep them.`)));
}

function fact(list, term, value) {   // `list`: the nodes of a <dl>, built up
  list.push(el("dt", term));
  const dd = el("dd");
  for (const part of Array.isArray(value) ? value : [value]) dd.append(part instanceof Node ? part : visible(part));
  list.push(dd);
}

function renderDetail(source) {
  setText($("detail-title"), `${source.name} (${source.type})`);
  const banner = $("detail-paused");
  banner.hidden = !source.paused;
  setText(banner, source.paused ? "Paused" + (source.paused_since ? " since " + when(source.paused_since) : "")
    + ": its schedule runs nothing until resumed." : "");
  const facts = [];
  fact(facts, "Documents", `${source.documents} documents, ${source.chunks} chunks`);
  fact(facts, "Indexed", indexedText(source));
  fact(facts, "Last run", lastRunContent(source));
  fact(facts, "Last success", source.last_success ? when(source.last_success) + " (lag " + ago(source.lag_seconds) + ")" : "never");
  fact(facts, "Next run", nextRunContent(source));
  if (source.failure_streak) fact(facts, "Failing", el("span", `${source.failure_streak} failed run(s) in a row`, "bad"));
  if (source.current_error) fact(facts, "Current error", errorContent(source));
  patch($("detail-facts"), facts);
  patch($("detail-actions"), actions(source));

  const runs = source.history || [];
  drawChart([...runs].reverse());
  const runRows = [];
  for (const run of runs) {
    const row = el("tr");
    row.append(cell("Started", when(run.started_at)), cell("Finished", when(run.finished_at)), cell("Kind", run.kind),
      cell("Outcome", run.outcome, run.outcome === "failed" ? "bad" : run.outcome === "partial" ? "warn" : "ok"),
      cell("Seconds", run.seconds ?? "…"), cell("Upserted", run.upserted), cell("Deleted", run.deleted),
      cell("Skipped", run.skipped), cell("Errors", run.errors), cell("Error", run.error || "", "error"));
    runRows.push(row);
  }
  patch($("runs").querySelector("tbody"), runRows);
  const errorRows = [];   // a run's own error, and how many items it could not read
  for (const error of source.recent_errors || []) {
    const row = el("tr");
    row.append(cell("When", when(error.at)), cell("Run", error.kind || ""), cell("Error", error.error, "error"));
    errorRows.push(row);
  }
  if (!errorRows.length) errorRows.push(emptyRow(3, "no errors in the recent runs"));
  patch($("errors").querySelector("tbody"), errorRows);
  const skipRows = [];
  // the newest run that left items out, skipped by policy or unreadable (maybe not the last run)
  const skips = source.recent_skips;
  const items = skips ? skips.items : [];
  setText($("skipped-title"), skips ? `Not indexed by the ${skips.kind} that ended ${when(skips.finished_at)}` :
    "Items not indexed");
  for (const item of items) {
    const row = el("tr");
    row.dataset.itemId = item.id;
    const title = el("div", item.title);
    row.append(cell("Item", [title, el("div", item.id, "muted")], "item"), cell("Why", item.reason, "error"),
      cell("Kind", item.failed ? "could not be read" : "skipped by policy", item.failed ? "bad" : "muted"));
    skipRows.push(row);
  }
  if (!items.length) skipRows.push(emptyRow(3, "no recent run left an item out"));
  else if (skips.total > items.length) skipRows.push(emptyRow(3, `the first ${items.length} of ${skips.total} are shown`));
  patch($("skipped").querySelector("tbody"), skipRows);
  const events = source.events;
  setText($("events"), !events ? "no change events: the source syncs on its schedule" :
    `${events.live ? "live" : "down"}; last event ${events.last_event_at ? when(events.last_event_at) : "none yet"}` +
    (events.latency_seconds !== undefined && events.latency_seconds !== null ? `; event to searchable ${events.latency_seconds.toFixed(1)} s` : ""));
}

function emptyRow(columns, text) {
  const row = el("tr");
  const td = el("td", text, "muted");
  td.colSpan = columns;
  row.append(td);
  return row;
}

function niceMax(value) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400];
  return steps.find((s) => s >= value) || Math.ceil(value / 86400) * 86400;
}

function seconds(value) {
  if (value >= 3600) return (value / 3600).toFixed(value % 3600 ? 1 : 0) + " h";
  if (value >= 60) return (value / 60).toFixed(value % 60 ? 1 : 0) + " min";
  return value + " s";
}

function shortTime(stamp) {   // 12-07 16:57Z (UTC)
  return stamp ? new Date(stamp).toISOString().slice(5, 16).replace("T", " ") + "Z" : "";
}

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = visible(text);
  return node;
}

function drawChart(runs) {
  // Bars, oldest on the left: height = the run's duration (y axis in seconds), colour = its outcome.
  // Drawn at the width it is shown at, so its labels stay legible on a phone.
  const width = Math.max(300, Math.min(720, $("chart").clientWidth || 640)), height = 200;
  const left = 56, right = 10, top = 10, bottom = 42;
  const plotW = width - left - right, plotH = height - top - bottom;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "Run durations in seconds, oldest run on the left, coloured by outcome" });
  const max = niceMax(Math.max(1, ...runs.map((r) => r.seconds || 0)));
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotH - fraction * plotH;
    chart.append(svg("line", { x1: left, x2: width - right, y1: y, y2: y, class: fraction ? "grid" : "axis" }));
    chart.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, seconds(Math.round(max * fraction * 10) / 10)));
  }
  chart.append(svg("line", { x1: left, x2: left, y1: top, y2: top + plotH, class: "axis" }));
  chart.append(svg("text", { x: 12, y: top + plotH / 2, transform: `rotate(-90 12 ${top + plotH / 2})`,
    "text-anchor": "middle" }, "duration"));
  const gap = 3;
  const bar = runs.length ? Math.min(30, (plotW - gap * runs.length) / runs.length) : 0;
  runs.forEach((run, i) => {
    const h = Math.max(2, plotH * (run.seconds || 0) / max);
    const rect = svg("rect", { x: left + gap + i * (bar + gap), y: top + plotH - h, width: bar, height: h,
      fill: OUTCOMES[run.outcome] || OUTCOMES.running, "data-outcome": run.outcome });
    rect.append(svg("title", {}, `${run.kind} ${run.outcome} at ${when(run.started_at)}: ${run.seconds ?? "…"} s, ` +
      `${run.upserted} upserted, ${run.skipped} skipped, ${run.errors} errors`));
    chart.append(rect);
  });
  if (runs.length) {
    chart.append(svg("text", { x: left, y: height - 24, "text-anchor": "start" }, shortTime(runs[0].started_at)));
    chart.append(svg("text", { x: width - right, y: height - 24, "text-anchor": "end" }, shortTime(runs[runs.length - 1].started_at)));
  }
  chart.append(svg("text", { x: left + plotW / 2, y: height - 6, "text-anchor": "middle" },
    runs.length ? `run start (the last ${runs.length} run${runs.length === 1 ? "" : "s"})` : "no runs yet"));
  patch($("chart"), [chart]);
  patch($("legend"), Object.entries(OUTCOMES).map(([outcome, colour]) => {
    const item = el("span");
    const swatch = el("i");
    swatch.style.background = colour;
    item.append(swatch, outcome);
    return item;
  }));
}

// A source name as the config allows it (`[a-z0-9-]+`), short enough to quote.
const SOURCE_NAME = /^[a-z0-9-]{1,64}$/;

function render() {
  const name = chosenSource();
  const source = name === null ? null : state.data.sources.find((s) => s.name === name);
  if (name !== null && !source) {
    // Anyone can write a link's address: only a name that could be a source's is quoted, so a link
    // cannot put its own sentence in the console's status line.
    say(SOURCE_NAME.test(name) ? `No source named "${name}".` : "That link names no source.", true);
    location.hash = "";
  }
  state.view = source ? source.name : null;
  document.title = source ? `${visible(source.name)} — inlet console` : "inlet console";
  $("overview").hidden = Boolean(source);
  $("detail").hidden = !source;
  if (source) renderDetail(source);
  else renderSources();
}

// A new view (a source's page, or the overview again): focus goes to its heading, and back on the
// overview to the link that opened the source just left (else its name), so a keyboard or
// screen-reader user is where they were.
function viewChanged() {
  const left = state.view;
  const from = document.activeElement;
  if (state.data) render();
  window.scrollTo(0, 0);
  if (!state.data) return;
  if (state.view) {
    if (!left) state.opener = from;
    $("detail-title").focus();
  } else if (left) {
    const links = Array.from($("sources").querySelectorAll("a")).filter((a) => a.getAttribute("href") === detailHref(left));
    const back = links.includes(state.opener) ? state.opener : links[0];
    if (back) back.focus();
  }
}

function retryDelay(failures) {   // 5 s, 10 s, 20 s, 40 s, then every minute
  return Math.min(RETRY_MAX_MS, REFRESH_MS * 2 ** Math.max(0, failures - 1));
}

// One load of the console's data: "ok"; "refused" (the key: 401/403, polling stops until a key is
// typed again); "failed" (anything else: the daemon restarting, a 503 or 429; the last data stays
// on screen, marked stale, and the poll retries with back-off).
// "superseded": a later read answered first (the refresh after Pause, while a poll was under way);
// this older answer would undo what is on screen, so it is dropped.
async function refresh() {   // "stale": stopped (logged out) while it waited: it shows nothing
  const generation = state.generation;
  const request = ++state.requests;
  let data;
  try {
    data = await api("GET", "/v1/admin/console");
  } catch (error) {
    if (generation !== state.generation) return "stale";
    if (request < state.shown) return "superseded";
    if (error.status === 401 || error.status === 403) {
      stop();
      state.data = null;
      $("app").hidden = true;
      $("app").classList.remove("stale");
      say(error.status === 401 ? "That key is not valid. Type an admin key and press Connect." :
        "Refused: the console needs an admin key; type one and press Connect.", true, "load");
      return "refused";
    }
    state.failures += 1;
    const shown = state.loadedAt ? `showing the data of ${clock(state.loadedAt)}; ` : "";
    say(`Reconnecting: could not load the console (${error.message}); ${shown}next try in ` +
      `${Math.round(retryDelay(state.failures) / 1000)} s.`, true, "load");
    $("app").classList.toggle("stale", Boolean(state.data));
    return "failed";
  }
  if (generation !== state.generation) return "stale";
  if (request < state.shown) return "superseded";
  state.shown = request;
  state.data = data;
  state.failures = 0;
  state.loadedAt = new Date();
  if ($("message").dataset.kind === "load") say("");
  $("app").classList.remove("stale");
  $("app").hidden = false;
  $("logout").hidden = false;
  setText($("updated"), "updated " + clock(state.loadedAt));
  render();
  return "ok";
}

async function poll(generation) {
  const outcome = await refresh();
  if (generation !== state.generation || outcome === "refused") return;
  state.timer = setTimeout(() => poll(generation), outcome === "failed" ? retryDelay(state.failures) : REFRESH_MS);
}

const CONFIRM = {
  backfill: (name) => `Restart the backfill of ${name}? It reads the whole source again from the start ` +
    "(the documents already indexed stay searchable meanwhile).",
};

async function act(name, action) {
  if (CONFIRM[action] && !window.confirm(CONFIRM[action](name))) {
    say(`${action} of ${name}: cancelled.`);
    return;
  }
  try {
    await api("POST", `/v1/admin/sources/${encodeURIComponent(name)}/${action}`);
    say(`${action} of ${name}: requested.`);
  } catch (error) {
    say(`${action} of ${name} refused: ${error.message}`, true);
  }
  refresh();
}

// Only the last search started shows its answer: one sent before it (another user, another query)
// that answers later is dropped, so a list never holds two searches' passages under one user's name.
async function search(event) {
  event.preventDefault();
  const mine = ++state.searches;
  const body = { query: $("query").value, token_budget: Number($("budget").value) || 2000 };
  const user = $("as-user").value.trim();
  if (user) body.user = user;
  const list = $("passages");
  list.replaceChildren();   // a new search: nothing of the last one stays, whatever this one answers
  $("context").textContent = "";
  say("Searching as " + (user || "the operator") + "…");
  try {
    const answer = await api("POST", "/v1/context", body);
    if (mine !== state.searches) return;
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
    $("context").textContent = visible(answer.context);
    say(`${answer.results.length} passage(s), ${answer.citations.length} citation(s) for ${user || "the operator"}.`);
  } catch (error) {
    if (mine !== state.searches) return;
    say("Search refused: " + error.message, true);
  }
}

// Why a browser cannot send `key` as a header (it carries Latin-1 only, and no control characters),
// or null. Such a key (pasted with curly quotes or an invisible space) would make every request fail
// before it is sent, which reads like a server that does not answer: it is refused here instead.
function keyProblem(key) {
  const bad = /[\x00-\x1f\x7f]|[^\x00-\xff]/u.exec(key);
  if (!bad) return null;
  const code = "U+" + bad[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
  return `That key holds a character no key can have (${code}: a pasted quote or an invisible character?). ` +
    "Type the key again and press Connect.";
}

// Use `key` (typed, or kept by this tab): a key a browser cannot send is refused like a key the
// server refuses.
function connect(key) {
  const problem = keyProblem(key);
  if (problem) {
    forget();
    say(problem, true, "load");   // like a refused key's message: a key that works clears it
    return;
  }
  state.key = key;
  sessionStorage.setItem("inlet-key", key);
  start();
}

function forget() {
  sessionStorage.removeItem("inlet-key");
  state.key = "";
  stop();
  $("app").hidden = true;
  $("logout").hidden = true;
}

function start() {
  stop();
  state.failures = 0;
  poll(state.generation);
}

function stop() {   // a poll under way finds the generation changed and schedules nothing
  state.generation += 1;
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
}

document.addEventListener("click", (event) => {   // every source action button, once
  const button = event.target.closest ? event.target.closest("button[data-action]") : null;
  if (button && !button.disabled) act(button.dataset.source, button.dataset.action);
});

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    $("key").value = "";
    connect(key);
  });
  $("logout").addEventListener("click", () => {
    forget();
    say("Key forgotten.");
  });
  window.addEventListener("hashchange", viewChanged);
  $("search").addEventListener("submit", search);

  if (state.key) connect(state.key);
});
