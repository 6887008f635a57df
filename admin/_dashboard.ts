/**
 * The admin endpoint's live dashboard: one self-contained HTML page.
 *
 * @module
 */

/**
 * The dashboard page served at `/` by the admin endpoint: inline CSS and JS,
 * no external resources. It reads the bearer token from the URL fragment
 * (`#token=...`, never sent to the server), keeps it in `sessionStorage`,
 * removes it from the address bar, or asks for it in a small form. It reads
 * `GET /v1/events` with `fetch` (an `EventSource` cannot send the
 * `Authorization` header), parses the server-sent `snapshot` events, and
 * shows this node, its groups (with message rates computed from successive
 * counters), the Oracle and the locks. It reconnects with a backoff of 1 s
 * doubling up to 10 s, and shows "connected", "reconnecting" or
 * "unauthorized (401)". Data reaches the DOM only through `textContent`.
 *
 * Stable `data-testid`s: `status`, `node-id`, `groups` (table body),
 * `group-row` (with `data-group` and `data-member`), `view-members`, `rate`,
 * `oracle-leader`, `locks` (table body), `token-form`.
 *
 * @example Serving the page
 * ```ts
 * import assert from "node:assert/strict";
 * import { DASHBOARD_HTML } from "./_dashboard.ts";
 *
 * const response = new Response(DASHBOARD_HTML, {
 *   headers: { "content-type": "text/html; charset=utf-8" },
 * });
 * assert.match(await response.text(), /^<!doctype html>/);
 * ```
 */
export const DASHBOARD_HTML: string = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Cohort admin</title>
<style>
  :root { --fg: #1d2330; --muted: #6b7385; --line: #e3e6ec; --ok: #1a7f37;
    --warn: #9a6700; --bad: #cf222e; --bg: #f6f7f9; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg);
    background: var(--bg); }
  header { display: flex; align-items: center; gap: 16px; padding: 12px 20px;
    background: #fff; border-bottom: 1px solid var(--line); }
  h1 { font-size: 18px; margin: 0; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  main { padding: 16px 20px; display: grid; gap: 16px; }
  main.stale section { opacity: 0.55; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 6px;
    padding: 12px 14px; overflow-x: auto; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 10px 4px 0; white-space: nowrap;
    border-bottom: 1px solid var(--line); }
  th { color: var(--muted); font-weight: 600; font-size: 12px; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.members { white-space: normal; min-width: 14em; }
  .muted { color: var(--muted); }
  .kv { display: flex; flex-wrap: wrap; gap: 6px 24px; }
  .kv b { font-weight: 600; }
  .badge { padding: 2px 10px; border-radius: 10px; font-weight: 600;
    background: var(--line); }
  .badge[data-state="connected"] { background: #dafbe1; color: var(--ok); }
  .badge[data-state="reconnecting"], .badge[data-state="connecting"] {
    background: #fff8c5; color: var(--warn); }
  .badge[data-state="unauthorized"], .badge[data-state="no-token"] {
    background: #ffebe9; color: var(--bad); }
  .role-coordinator { color: var(--ok); font-weight: 600; }
  .role-excluded { color: var(--bad); }
  .role-joining, .role-flushing { color: var(--warn); }
  form { display: flex; gap: 8px; align-items: center; }
  form[hidden] { display: none; }
  input { font: inherit; padding: 4px 8px; width: 24em; }
</style>
</head>
<body>
<header>
  <h1>Cohort</h1>
  <span class="badge" data-testid="status" data-state="connecting">connecting</span>
  <span class="muted" data-testid="status-detail"></span>
  <form data-testid="token-form" hidden>
    <label for="token">Admin token</label>
    <input id="token" name="token" type="password" autocomplete="off" required>
    <button type="submit">Connect</button>
  </form>
</header>
<main>
  <section>
    <h2>This node</h2>
    <div class="kv">
      <span>id <b data-testid="node-id">&ndash;</b></span>
      <span>kind <b data-testid="node-kind">&ndash;</b></span>
      <span>version <b data-testid="node-version">&ndash;</b></span>
      <span>uptime <b data-testid="node-uptime">&ndash;</b></span>
      <span class="muted">updated <span data-testid="updated">never</span></span>
    </div>
  </section>
  <section>
    <h2>Groups</h2>
    <table>
      <thead><tr><th>path</th><th>member</th><th>role</th><th class="num">view</th>
        <th>members</th><th class="num">sent</th><th class="num">delivered</th>
        <th class="num" title="messages per second: delivered / sent">msg/s dlv / sent</th>
        <th class="num">unstable</th><th class="num">last flush ms</th><th>primary</th></tr></thead>
      <tbody data-testid="groups"></tbody>
    </table>
  </section>
  <section>
    <h2>Oracle</h2>
    <div class="kv">
      <span>leader <b data-testid="oracle-leader">&ndash;</b></span>
      <span>term <b data-testid="oracle-term">&ndash;</b></span>
      <span>commit index <b data-testid="oracle-commit">&ndash;</b></span>
      <span>sessions <b data-testid="oracle-sessions">&ndash;</b></span>
    </div>
    <table>
      <thead><tr><th>replica</th><th>address</th><th></th></tr></thead>
      <tbody data-testid="oracle-replicas"></tbody>
    </table>
  </section>
  <section>
    <h2>Locks</h2>
    <table>
      <thead><tr><th>path</th><th>holder</th><th class="num">token</th>
        <th class="num">waiters</th></tr></thead>
      <tbody data-testid="locks"></tbody>
    </table>
  </section>
</main>
<script>
"use strict";
(function () {
  var TOKEN_KEY = "cohort.adminToken";
  var MIN_BACKOFF_MS = 1000;
  var MAX_BACKOFF_MS = 10000;
  var backoffMs = MIN_BACKOFF_MS;
  var counters = new Map(); // "path\u0000member" -> { at, sent, delivered }

  function $(testid) {
    return document.querySelector('[data-testid="' + testid + '"]');
  }

  function el(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (var name in attrs || {}) node.setAttribute(name, attrs[name]);
    return node;
  }

  function dash(value) {
    return value === null || value === undefined ? "\u2013" : String(value);
  }

  function setStatus(state, label, detail) {
    var status = $("status");
    status.dataset.state = state;
    status.textContent = label;
    $("status-detail").textContent = detail || "";
    document.querySelector("main").classList.toggle("stale", state !== "connected");
  }

  function takeToken() {
    var params = new URLSearchParams(location.hash.slice(1));
    var fromFragment = params.get("token");
    if (fromFragment) {
      sessionStorage.setItem(TOKEN_KEY, fromFragment);
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function askForToken(state, label, detail) {
    setStatus(state, label, detail);
    var form = $("token-form");
    form.hidden = false;
    form.elements.token.focus();
  }

  $("token-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    var token = form.elements.token.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    form.elements.token.value = "";
    form.hidden = true;
    backoffMs = MIN_BACKOFF_MS;
    connect();
  });

  function formatUptime(seconds) {
    var s = Math.floor(seconds);
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
    var m = Math.floor(s / 60) % 60;
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return (d ? d + "d " : "") + pad(h) + ":" + pad(m) + ":" + pad(s % 60);
  }

  function rateOf(group, now) {
    var key = group.path + "\u0000" + group.member;
    var before = counters.get(key);
    counters.set(key, { at: now, sent: group.sent, delivered: group.delivered });
    if (!before) return "\u2013";
    var seconds = (now - before.at) / 1000;
    var dlv = group.delivered - before.delivered;
    var sent = group.sent - before.sent;
    if (seconds <= 0 || dlv < 0 || sent < 0) return "\u2013"; // restarted
    return (dlv / seconds).toFixed(1) + " / " + (sent / seconds).toFixed(1);
  }

  function renderGroups(groups, now) {
    var seen = new Set();
    var rows = groups.map(function (g) {
      seen.add(g.path + "\u0000" + g.member);
      var row = el("tr", null, {
        "data-testid": "group-row", "data-group": g.path, "data-member": g.member,
      });
      row.append(
        el("td", g.path),
        el("td", g.member),
        el("td", g.role, { class: "role-" + g.role }),
        el("td", g.view ? g.view.id : null, { class: "num" }),
        el("td", g.view ? g.view.members.join(", ") : "\u2013",
          { "data-testid": "view-members", class: "members" }),
        el("td", g.sent, { class: "num" }),
        el("td", g.delivered, { class: "num" }),
        el("td", rateOf(g, now), { class: "num", "data-testid": "rate" }),
        el("td", g.unstable, { class: "num" }),
        el("td", g.lastFlushMs === null ? "\u2013" : g.lastFlushMs.toFixed(1),
          { class: "num" }),
        el("td", g.primary ? "yes" : "no"),
      );
      return row;
    });
    for (var key of counters.keys()) if (!seen.has(key)) counters.delete(key);
    if (rows.length === 0) {
      rows = [el("tr", null, {})];
      rows[0].append(el("td", "no groups on this node", { colspan: "11", class: "muted" }));
    }
    $("groups").replaceChildren.apply($("groups"), rows);
  }

  function renderOracle(oracle) {
    $("oracle-leader").textContent = oracle ? dash(oracle.leader) : "no Oracle client";
    $("oracle-term").textContent = dash(oracle && oracle.term);
    $("oracle-commit").textContent = dash(oracle && oracle.commitIndex);
    $("oracle-sessions").textContent = dash(oracle && oracle.sessions);
    var replicas = oracle ? Object.entries(oracle.replicas) : [];
    $("oracle-replicas").replaceChildren.apply($("oracle-replicas"),
      replicas.map(function (entry) {
        var row = el("tr");
        row.append(el("td", entry[0]), el("td", entry[1]),
          el("td", entry[0] === oracle.leader ? "leader" : "", { class: "muted" }));
        return row;
      }));
  }

  function renderLocks(locks) {
    var rows = locks.map(function (l) {
      var row = el("tr", null, { "data-testid": "lock-row", "data-lock": l.path });
      row.append(el("td", l.path), el("td", l.holder === null ? "free" : l.holder),
        el("td", l.token, { class: "num" }), el("td", l.waiters, { class: "num" }));
      return row;
    });
    if (rows.length === 0) {
      rows = [el("tr")];
      rows[0].append(el("td", "no locks", { colspan: "4", class: "muted" }));
    }
    $("locks").replaceChildren.apply($("locks"), rows);
  }

  function render(snapshot) {
    var now = performance.now();
    $("node-id").textContent = snapshot.node.id;
    $("node-kind").textContent = snapshot.node.kind;
    $("node-version").textContent = snapshot.node.version;
    $("node-uptime").textContent = formatUptime(snapshot.node.uptimeSeconds);
    $("updated").textContent = new Date().toLocaleTimeString();
    renderGroups(snapshot.groups, now);
    renderOracle(snapshot.oracle);
    renderLocks(snapshot.locks);
  }

  // Server-sent events: lines end in CRLF, LF or CR; a blank line ends an
  // event; lines starting with ":" are comments.
  function sseParser(onEvent) {
    var buffer = "", type = "", data = [];
    var EOL = /\r\n|\r|\n/;
    return function (text) {
      buffer += text;
      for (;;) {
        var m = EOL.exec(buffer);
        if (!m || (m[0] === "\r" && m.index === buffer.length - 1)) return;
        var line = buffer.slice(0, m.index);
        buffer = buffer.slice(m.index + m[0].length);
        if (line === "") {
          if (data.length > 0) onEvent(type || "message", data.join("\n"));
          type = "";
          data = [];
          continue;
        }
        if (line[0] === ":") continue;
        var colon = line.indexOf(":");
        var field = colon < 0 ? line : line.slice(0, colon);
        var value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") type = value;
        else if (field === "data") data.push(value);
      }
    };
  }

  async function errorMessage(response) {
    try {
      var body = await response.json();
      return body.error.code + ": " + body.error.message;
    } catch (_) {
      return response.statusText;
    }
  }

  function retry(reason) {
    var delay = backoffMs;
    backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
    setStatus("reconnecting", "reconnecting",
      reason + "; retrying in " + delay / 1000 + " s");
    setTimeout(connect, delay);
  }

  async function connect() {
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return askForToken("no-token", "no token", "paste the admin token");
    setStatus(backoffMs === MIN_BACKOFF_MS ? "connecting" : "reconnecting",
      backoffMs === MIN_BACKOFF_MS ? "connecting" : "reconnecting", "");
    var response;
    try {
      response = await fetch("/v1/events", {
        headers: { Authorization: "Bearer " + token, Accept: "text/event-stream" },
        cache: "no-store",
      });
    } catch (error) {
      return retry("cannot reach the server (" + error.message + ")");
    }
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      return askForToken("unauthorized", "unauthorized (401)", await errorMessage(response));
    }
    if (!response.ok || !response.body) {
      return retry("HTTP " + response.status + " " + await errorMessage(response));
    }
    var parse = sseParser(function (type, data) {
      if (type !== "snapshot") return;
      var snapshot;
      try {
        snapshot = JSON.parse(data);
      } catch (error) {
        console.error("cohort dashboard: a snapshot is not JSON", error, data);
        return;
      }
      backoffMs = MIN_BACKOFF_MS;
      setStatus("connected", "connected", "");
      render(snapshot);
    });
    var reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) break;
        parse(chunk.value);
      }
    } catch (error) {
      return retry("the stream failed (" + error.message + ")");
    }
    retry("the server ended the stream");
  }

  takeToken();
  connect();
})();
</script>
</body>
</html>
`;
