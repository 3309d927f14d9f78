// wharf status page: polls /api/status once a second and renders the
// tables. Cells carry data-field and data-value (the exact number) so
// scripts and tests can read them without parsing the formatting.
"use strict";

const REFRESH_MS = 1000;

function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function count(n) {
  return Math.round(n).toLocaleString("en-US");
}

function si(n, unit) {
  const units = ["", "k", "M", "G", "T"];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  const digits = i === 0 ? (n < 10 && n > 0 && n % 1 !== 0 ? 1 : 0) : (n < 10 ? 2 : n < 100 ? 1 : 0);
  return n.toFixed(digits) + units[i] + (unit ? " " + unit : "");
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
}

function duration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + (s % 60) + "s";
  return s + "s";
}

function num(field, value, text, cls) {
  return `<td class="num${cls ? " " + cls : ""}" data-field="${field}" data-value="${value}">${text}</td>`;
}

function text(field, value) {
  return `<td data-field="${field}">${esc(value)}</td>`;
}

function pill(field, state) {
  return `<td data-field="${field}" data-value="${esc(state)}"><span class="pill" data-state="${esc(state)}">${esc(state)}</span></td>`;
}

// reasons renders a total with the non-zero reasons under it.
function reasons(field, total, byReason, cls) {
  const parts = Object.keys(byReason || {}).sort().filter(k => byReason[k] > 0).map(k => esc(k) + " " + count(byReason[k]));
  const detail = parts.length ? `<span class="reasons">${parts.join(", ")}</span>` : "";
  return `<td class="num${total > 0 ? " " + cls : ""}" data-field="${field}" data-value="${total}">${count(total)}${detail}</td>`;
}

// sinkServers lists a syslog sink's downstream servers under its rate: the
// active one marked, down ones and failure counts shown.
function sinkServers(list) {
  if (!list || list.length === 0) return "";
  return `<span class="reasons" data-servers="">` + list.map(v =>
    `<span data-server="${esc(v.url)}" data-active="${v.active}" data-down="${v.down}">` +
    esc(v.url) + (v.active ? " (active)" : "") + (v.down ? " down" : "") +
    (v.failures > 0 ? ", " + count(v.failures) + " failed" : "") + `</span>`).join("<br>") + `</span>`;
}

function lastError(le) {
  if (!le) return `<td class="err" data-field="last_error"></td>`;
  const when = new Date(le.time).toLocaleTimeString();
  return `<td class="err" data-field="last_error" title="${esc(le.level)} at ${esc(le.time)}"><span class="when">${esc(when)}</span> ${esc(le.message)}</td>`;
}

// sparkline draws one series as an inline SVG: a line scaled to the
// series' own maximum (drops as bars, so a single spike shows). The svg
// carries data-series, data-points and data-max for scripts and tests.
function sparkline(series, points, stepSeconds, capacity, cls, unit) {
  const w = 120, h = 18;
  const n = points.length;
  const slots = Math.max(capacity || n, n, 2);
  const max = n ? Math.max(...points) : 0;
  const span = n ? duration(n * stepSeconds) : "";
  const title = n < 2 ? "collecting (one point every " + stepSeconds + " s)" :
    `${unit}: max ${si(max, "")}, now ${si(points[n - 1], "")} (last ${span})`;
  let body = "";
  if (n >= 2 && max > 0) {
    // The window spans capacity points; fewer sit at its right end.
    const x = i => (w * (slots - n + i) / (slots - 1)).toFixed(1);
    const y = v => (h - 1 - (h - 2) * v / max).toFixed(1);
    if (cls === "drops") {
      body = points.map((v, i) => v > 0 ? `<rect x="${x(i)}" y="${y(v)}" width="${Math.max(w / slots, 1.5).toFixed(1)}" height="${(h - 1 - y(v)).toFixed(1)}"/>` : "").join("");
    } else {
      body = `<polyline points="${points.map((v, i) => x(i) + "," + y(v)).join(" ")}"/>`;
    }
  } else if (n >= 2) {
    body = `<line x1="${(w * (slots - n) / (slots - 1)).toFixed(1)}" y1="${h - 1}" x2="${w}" y2="${h - 1}"/>`;
  }
  return `<svg class="spark ${cls}" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" data-series="${series}" data-points="${n}" data-max="${max}"><title>${esc(title)}</title>${body}</svg>`;
}

function sparkCell(sp, withQueue) {
  sp = sp || { step_seconds: 2, capacity: 0, msgs: [], dropped: [] };
  let cell = sparkline("msgs", sp.msgs || [], sp.step_seconds, sp.capacity, "msgs", "msg/s");
  if ((sp.dropped || []).some(v => v > 0)) cell += sparkline("dropped", sp.dropped, sp.step_seconds, sp.capacity, "drops", "drops/s");
  if (withQueue) cell += sparkline("queue", sp.queue || [], sp.step_seconds, sp.capacity, "queue", "queue depth");
  return `<td class="sparks" data-field="spark" data-value="${(sp.msgs || []).length}">${cell}</td>`;
}

// bindCell shows the bound address under its scheme; when the config said
// something else (port 0, a host name), that is shown dimmed below it.
function bindCell(b) {
  const scheme = b.bind.includes("://") ? b.bind.slice(0, b.bind.indexOf("://") + 3) : "";
  const shown = b.addr ? scheme + b.addr : b.bind;
  const configured = shown !== b.bind ? `<span class="reasons">configured ${esc(b.bind)}</span>` : "";
  return `<td data-field="bind" data-value="${esc(b.bind)}" data-addr="${esc(b.addr || "")}">${esc(shown)}${configured}</td>`;
}

// queueClass: amber once TCP senders are held back (the pause mark,
// backpressure_size or backpressure_bytes), red at 90% of queue_size or
// queue_bytes, where drops begin: in messages or bytes, whichever is
// reached first (large messages fill the bytes first).
function queueClass(s) {
  const at = (v, cap, frac) => cap > 0 && v >= frac * cap;
  if (at(s.queue_messages, s.queue_capacity, 0.9) || at(s.queue_bytes, s.queue_bytes_capacity, 0.9)) return "bad";
  if (at(s.queue_messages, s.queue_pause_at, 1) || at(s.queue_bytes, s.queue_pause_at_bytes, 1)) return "warn";
  return "";
}

function sum(obj) {
  return Object.values(obj || {}).reduce((a, b) => a + b, 0);
}

function setBody(id, rows, cols, emptyText) {
  const body = document.querySelector(`#${id} tbody`);
  body.innerHTML = rows.length ? rows.join("") : `<tr class="empty"><td colspan="${cols}">${emptyText}</td></tr>`;
}

function setStat(id, value, shown) {
  const el = document.getElementById(id);
  el.dataset.value = value;
  el.textContent = shown;
}

function render(st) {
  document.getElementById("version").textContent = st.version || "";
  const ready = document.getElementById("ready");
  ready.dataset.state = st.ready ? "ready" : "not ready";
  ready.textContent = st.ready ? "ready" : "not ready";
  document.getElementById("problems").innerHTML = (st.problems || []).map(p => `<li>${esc(p)}</li>`).join("");
  const t = st.totals;
  setStat("in-rate", t.received_rate.msgs, si(t.received_rate.msgs, "msg/s"));
  setStat("out-rate", t.sent_rate.msgs, si(t.sent_rate.msgs, "msg/s"));
  setStat("received", t.received, count(t.received));
  setStat("sent", t.sent, count(t.sent));
  setStat("dropped", t.frontend_dropped + t.sink_dropped, count(t.frontend_dropped + t.sink_dropped));
  setStat("queued", t.queued, count(t.queued));
  document.getElementById("uptime").textContent = duration(st.uptime_seconds);

  setBody("binds", st.binds.map(b => {
    const malformed = sum(b.malformed);
    return `<tr data-row="bind" data-frontend="${esc(b.frontend)}" data-bind="${esc(b.bind)}">` +
      text("frontend", b.frontend) + bindCell(b) + pill("state", b.state) +
      num("rate_msgs", b.rate.msgs, si(b.rate.msgs, "")) +
      num("rate_bytes", b.rate.bytes, bytes(b.rate.bytes) + "/s") +
      sparkCell(b.spark, false) +
      num("received", b.received, count(b.received)) +
      num("received_bytes", b.received_bytes, bytes(b.received_bytes)) +
      num("connections", b.connections, count(b.connections) + (b.relp ?
        `<span class="reasons">RELP ${count(b.relp.sessions)} sessions, ${count(b.relp.in_flight)} unacked, ${count(b.relp.acks_sent)} acked</span>` : "")) +
      reasons("malformed", malformed, b.malformed, "warn") +
      reasons("dropped", b.dropped_total, b.dropped, "bad") +
      lastError(b.last_error) + "</tr>";
  }), 12, "no syslog binds");

  setBody("sinks", st.sinks.map(s =>
    `<tr data-row="sink" data-sink="${esc(s.sink)}">` +
    text("sink", s.sink) + pill("state", s.state) +
    num("rate_msgs", s.rate.msgs, si(s.rate.msgs, "") + sinkServers(s.servers)) +
    num("rate_bytes", s.rate.bytes, bytes(s.rate.bytes) + "/s") +
    sparkCell(s.spark, true) +
    num("sent", s.sent, count(s.sent)) +
    num("sent_bytes", s.sent_bytes, bytes(s.sent_bytes)) +
    num("queue_messages", s.queue_messages, count(s.queue_messages), queueClass(s)) +
    num("queue_bytes", s.queue_bytes, bytes(s.queue_bytes) + (s.buffer ?
      `<span class="reasons" data-buffer="${s.buffer.writable ? "writable" : "unwritable"}" title="${esc(s.buffer.problem || s.buffer.dir)}">disk ${count(s.buffer.pending_records)} pending, ${bytes(s.buffer.bytes)}${s.buffer.writable ? "" : ", cannot be written"}</span>` : ""),
      s.buffer && !s.buffer.writable ? "bad" : "") +
    num("batches", s.batches, count(s.batches)) +
    num("write_errors", s.write_errors, count(s.write_errors) + (s.relp ?
      `<span class="reasons">RELP ${count(s.relp.acks_received)} acked, ${count(s.relp.in_flight)} unacked, ${count(s.relp.resent)} resent</span>` : ""),
      s.write_errors > 0 ? "bad" : "") +
    reasons("dropped", s.dropped_total, s.dropped, "bad") +
    lastError(s.last_error) + "</tr>"
  ), 13, "no sinks");

  // Proxy rows carry their metrics by name; {k=v} suffixes split a
  // metric by reason or result.
  const by = (metrics, name) => {
    const out = {};
    for (const k of Object.keys(metrics || {})) {
      if (k === name) out[""] = metrics[k];
      else if (k.startsWith(name + "{")) out[k.slice(name.length + 1, -1).replace(/^[a-z_]+=/, "")] = metrics[k];
    }
    return out;
  };
  const m = (row, name) => (row.metrics || {})[name] || 0;
  const r = (row, name) => (row.rates || {})[name] || 0;

  const proxies = st.proxies || [];
  document.getElementById("proxies-section").hidden = proxies.length === 0;
  setBody("proxies", proxies.map(p => {
    const rejected = by(p.metrics, "rejected_total"), errors = by(p.metrics, "http_errors_total");
    return `<tr data-row="proxy" data-frontend="${esc(p.frontend)}">` +
      text("frontend", p.frontend) +
      num("active", m(p, "active"), count(m(p, "active"))) +
      num("rate_connections", r(p, "connections_total"), si(r(p, "connections_total"), "")) +
      num("connections", m(p, "connections_total"), count(m(p, "connections_total"))) +
      num("rate_bytes_in", r(p, "bytes_in_total"), bytes(r(p, "bytes_in_total")) + "/s") +
      num("rate_bytes_out", r(p, "bytes_out_total"), bytes(r(p, "bytes_out_total")) + "/s") +
      reasons("rejected", sum(rejected), rejected, "warn") +
      reasons("errors", sum(errors), errors, "bad") +
      lastError(p.last_error) + "</tr>";
  }), 9, "");

  const servers = st.servers || [];
  document.getElementById("servers-section").hidden = servers.length === 0;
  setBody("servers", servers.map(s => {
    const checksFailed = m(s, "checks_total{result=fail}");
    return `<tr data-row="server" data-backend="${esc(s.backend)}" data-server="${esc(s.server)}">` +
      text("backend", s.backend) + text("server", s.backup ? s.server + " (backup)" : s.server) + pill("state", s.state) +
      pill("admin", s.admin || "ready") + num("weight", s.weight, String(s.weight)) +
      num("active", m(s, "active"), count(m(s, "active"))) +
      num("rate_connections", r(s, "connections_total"), si(r(s, "connections_total"), "")) +
      num("connections", m(s, "connections_total"), count(m(s, "connections_total"))) +
      num("rate_bytes_sent", r(s, "bytes_sent_total"), bytes(r(s, "bytes_sent_total")) + "/s") +
      num("rate_bytes_received", r(s, "bytes_received_total"), bytes(r(s, "bytes_received_total")) + "/s") +
      num("connect_errors", m(s, "connect_errors_total"), count(m(s, "connect_errors_total")), m(s, "connect_errors_total") > 0 ? "bad" : "") +
      num("checks_failed", checksFailed, count(checksFailed), checksFailed > 0 ? "warn" : "") +
      lastError(s.last_error) + "</tr>";
  }), 13, "");

  const upd = document.getElementById("updated");
  upd.dataset.state = "fresh";
  upd.textContent = "updated " + new Date(st.time).toLocaleTimeString();
}

async function refresh() {
  try {
    const resp = await fetch("/api/status", { cache: "no-store" });
    if (!resp.ok) throw new Error(resp.status + " " + resp.statusText);
    render(await resp.json());
  } catch (e) {
    const upd = document.getElementById("updated");
    upd.dataset.state = "stale";
    upd.textContent = "cannot reach wharf (" + e.message + "); retrying";
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
