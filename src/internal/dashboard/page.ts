/**
 * The dashboard's page: one HTML document with its style and script inline, no framework, charts
 * drawn as SVG. It holds no data and no secret: it reads the token from the URL's fragment (which a
 * browser never sends to a server), keeps it in `sessionStorage`, sends it in the `Authorization`
 * header only, and reads the server-sent events through `fetch` (an `EventSource` cannot send a
 * header). Every value from the server is written with `textContent`, never as HTML.
 *
 * With many sources (the server says `overview`) it shows a table of them, a page of `PAGE` rows at
 * a time, filtered and sorted by the server (`api/overview`), and cards only for the top sources by
 * backlog and those selected in the table: selecting opens its stream again with the selection.
 *
 * @internal
 */
export const page = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>effect-workpool dashboard</title>
<style>
  :root { color-scheme: light; --fg: #1d2330; --muted: #6b7385; --line: #e3e6ee; --bg: #f6f7fa; --card: #fff;
    --ok: #2f9e6b; --bad: #d9480f; --run: #3b6fd8; --wait: #9c6ade; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; align-items: center; gap: 12px; padding: 10px 20px; background: #1d2330; color: #fff; }
  header h1 { font-size: 16px; margin: 0; font-weight: 600; }
  #status { margin-left: auto; font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #444c5e; }
  #status[data-state="live"] { background: var(--ok); }
  #status[data-state="error"] { background: var(--bad); }
  main { padding: 16px 20px; display: grid; gap: 16px; }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
  .card h2 { font-size: 15px; margin: 0 0 8px; display: flex; gap: 8px; align-items: baseline; }
  .kind { font-size: 11px; text-transform: uppercase; color: var(--muted); letter-spacing: .05em; }
  .counts { display: flex; flex-wrap: wrap; gap: 6px 18px; margin-bottom: 10px; }
  .count b { display: block; font-size: 20px; font-variant-numeric: tabular-nums; }
  .count span { color: var(--muted); font-size: 12px; }
  .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 12px; }
  .chart h3, .list h3 { font-size: 12px; color: var(--muted); margin: 4px 0; font-weight: 600; }
  .chart svg { width: 100%; height: 120px; background: #fbfbfd; border: 1px solid var(--line); border-radius: 4px; }
  .legend { font-size: 12px; color: var(--muted); display: flex; gap: 12px; flex-wrap: wrap; }
  .legend i { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
  .lists { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 12px; margin-top: 10px; }
  .rows { max-height: 260px; overflow-y: auto; }
  table { width: 100%; border-collapse: collapse; font-size: 13px; table-layout: fixed; }
  td { overflow-wrap: anywhere; }
  td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { color: var(--muted); font-weight: 500; font-size: 12px; }
  td.error pre { margin: 0; max-height: 5.5em; overflow: auto; white-space: pre-wrap; font-size: 11px; color: var(--bad); }
  .empty { color: var(--muted); font-size: 12px; padding: 4px 0; }
  .bar { width: 60%; height: 8px; background: var(--line); border-radius: 4px; overflow: hidden; display: inline-block; vertical-align: middle; }
  .bar > div { height: 100%; background: var(--run); }
  button { white-space: nowrap; font: inherit; font-size: 12px; padding: 1px 8px; border: 1px solid #c4c9d6; border-radius: 4px; background: #fff; cursor: pointer; }
  button:hover { background: #eef1f7; }
  #message { min-height: 1.4em; font-size: 13px; }
  #message[data-ok="false"] { color: var(--bad); }
  #login { display: none; gap: 8px; align-items: center; }
  #login input { font: inherit; padding: 4px 8px; width: 320px; }
  #overview { margin-bottom: 16px; }
  #overview .controls { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-bottom: 8px; }
  #overview input, #overview select { font: inherit; padding: 2px 6px; }
  #overview td, #overview th { font-variant-numeric: tabular-nums; }
  #overview tr[data-selected="true"] { background: #eef3fd; }
  .tag { font-size: 11px; color: var(--muted); }
</style>
</head>
<body>
<header><h1>effect-workpool</h1><span id="status" data-state="connecting">connecting</span></header>
<main>
  <form id="login"><span>Token:</span><input id="token" type="password" autocomplete="off"><button>Open</button></form>
  <div id="message" role="status"></div>
  <div id="overview" class="card" hidden>
    <div class="controls">
      <input id="filter" type="search" placeholder="filter by name" autocomplete="off">
      <label>sort by <select id="order"><option value="backlog">backlog</option><option value="failed">failed</option>
        <option value="running">running</option><option value="name">name</option></select></label>
      <button type="button" data-page="-1">&lsaquo; previous</button><button type="button" data-page="1">next &rsaquo;</button>
      <span id="matched" class="tag"></span>
    </div>
    <table><thead><tr><th style="width: 34%">name</th><th>kind</th><th>backlog</th><th>running</th><th>failed</th><th>succeeded</th><th style="width: 70px"></th></tr></thead>
      <tbody id="rows"></tbody></table>
  </div>
  <div id="sources"></div>
</main>
<script>
"use strict";
(function () {
  var TOKEN_KEY = "workpool-dashboard-token";
  var fragment = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (fragment) {
    // a mangled URL (a stray %) must not stop the script: the token is then asked for
    try { sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(fragment[1])); } catch (e) { sessionStorage.removeItem(TOKEN_KEY); }
    history.replaceState(null, "", location.pathname + location.search); // not left in the address bar
  }
  var state = { sources: [], history: 300, interval: 1000, overview: false, top: [], readOnly: false };
  // the overview: its window and the sources selected in it (kept for this tab)
  var PAGE = 50, MAX_SELECTED = 20, SELECTED_KEY = "workpool-dashboard-selected";
  var view = { filter: "", order: "backlog", offset: 0, matched: 0, loading: false, again: false };
  var selected = [];
  try { selected = JSON.parse(sessionStorage.getItem(SELECTED_KEY) || "[]").slice(0, MAX_SELECTED); } catch (e) { selected = []; }
  var $ = function (id) { return document.getElementById(id); };

  function headers(extra) {
    var h = extra || {};
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (token) h["Authorization"] = "Bearer " + token;
    return h;
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") node.textContent = attrs[k]; else node.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c != null) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function setStatus(text, s) { var n = $("status"); n.textContent = text; n.setAttribute("data-state", s); }
  function message(text, ok) { var n = $("message"); n.textContent = text; n.setAttribute("data-ok", String(ok)); }

  // --- data --------------------------------------------------------------------------------------
  function keyOf(s) { return s.kind + ":" + s.name; }
  function onSnapshot(snap) {
    state.history = snap.history; state.interval = snap.interval; state.readOnly = snap.readOnly === true;
    state.sources = snap.sources;
    overviewOf(snap);
    render();
  }
  function onSample(snap) {
    var old = {};
    state.sources.forEach(function (s) { old[keyOf(s)] = s; });
    state.sources = snap.sources.map(function (s) {
      var before = old[keyOf(s)];
      var points = (before ? before.points : []).concat(s.points);
      if (points.length > state.history) points = points.slice(points.length - state.history);
      return Object.assign({}, s, { points: points });
    });
    overviewOf(snap);
    render();
  }

  // --- the overview: many sources, a window of them at a time ---------------------------------------
  function overviewOf(snap) {
    state.overview = !!snap.overview; state.top = snap.top || [];
    $("overview").hidden = !state.overview;
    if (state.overview) loadRows();
  }
  // one request at a time: a reply slower than the interval is not overtaken by the next
  function loadRows() {
    if (view.loading) { view.again = true; return; }
    view.loading = true; view.again = false;
    var query = "filter=" + encodeURIComponent(view.filter) + "&order=" + view.order + "&offset=" + view.offset + "&limit=" + PAGE;
    fetch("api/overview?" + query, { headers: headers(), cache: "no-store" })
      .then(function (r) { return r.json().then(function (body) { if (!r.ok) throw new Error(body.error); return body; }); })
      .then(drawRows)
      .catch(function (e) { message("overview: " + e.message, false); })
      .then(function () { view.loading = false; if (view.again) loadRows(); });
  }
  function sum(c, fields) { var n = 0; fields.forEach(function (f) { n += c[f] || 0; }); return n; }
  function drawRows(o) {
    view.matched = o.matched;
    $("matched").textContent = o.matched ? (o.offset + 1) + "-" + (o.offset + o.rows.length) + " of " + o.matched +
      (o.matched < o.total ? " (of " + o.total + ")" : "") : "none of " + o.total;
    $("rows").replaceChildren.apply($("rows"), o.rows.map(function (s) {
      var c = s.counts || {}, k = keyOf(s), pool = s.kind === "pool", on = selected.indexOf(k) >= 0;
      var cells = c.error ? [el("td", { colspan: "4", "class": "unread", text: "cannot read", title: c.error })] : [
        [pool ? ["queued", "waiting", "retrying"] : ["waiting", "delayed"], "backlog"], [["running"], "running"],
        [pool ? ["failed", "defects", "timedOut"] : ["dead"], "failed"], [["succeeded"], "succeeded"]
      ].map(function (f) { return el("td", { "data-count": f[1], text: s.counts ? String(sum(c, f[0])) : "-" }); });
      return el("tr", { "data-row": k, "data-selected": String(on) }, [
        el("td", { text: s.name }, [isPaused(s) ? el("span", { "class": "tag", text: " paused" }) : null,
          s.kind === "queue" && c.heldUntil ? el("span", { "class": "tag", "data-held": "", text: " held" }) : null,
          s.kind === "queue" && c.groupConcurrency ? el("span", { "class": "tag", "data-group-cap": "", text: " per key \u2264 " + c.groupConcurrency }) : null]),
        el("td", { "class": "tag", text: pool ? "pool" : "queue" })
      ].concat(cells).concat([el("td", {}, [el("button", { type: "button", "data-show": k, text: on ? "hide" : "show" })])]));
    }));
  }
  function toggle(k) {
    var i = selected.indexOf(k);
    if (i >= 0) selected.splice(i, 1);
    else if (selected.length >= MAX_SELECTED) { message("at most " + MAX_SELECTED + " sources can be shown at once: hide one first", false); return; }
    else selected.push(k);
    try { sessionStorage.setItem(SELECTED_KEY, JSON.stringify(selected)); } catch (e) { /* kept for this page only */ }
    connect();
  }
  var typing = null;
  $("filter").addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(function () { view.filter = $("filter").value; view.offset = 0; loadRows(); }, 150);
  });
  $("order").addEventListener("change", function () { view.order = $("order").value; view.offset = 0; loadRows(); });

  // --- rendering ---------------------------------------------------------------------------------
  // a third element: shown only when not 0 (most pools never have any)
  var POOL_COUNTS = [["queued", "queued"], ["waiting", "waiting for room", true], ["running", "running"],
    ["stopping", "stopping", true], ["retrying", "retrying"], ["succeeded", "succeeded"], ["failed", "failed"],
    ["defects", "defects"], ["timedOut", "timed out"], ["interrupted", "cancelled"], ["dropped", "dropped", true],
    ["rejected", "rejected", true], ["workers", "workers"]];
  var QUEUE_COUNTS = [["blocked", "blocked", true], ["waiting", "waiting"], ["delayed", "delayed"], ["running", "running"], ["succeeded", "succeeded"],
    ["dead", "dead"], ["cancelled", "cancelled"]];

  function counts(s) {
    if (s.counts && s.counts.error) return el("pre", { "class": "empty", text: "cannot read: " + s.counts.error });
    var list = s.kind === "pool" ? POOL_COUNTS : QUEUE_COUNTS;
    list = list.filter(function (c) { return !c[2] || (s.counts && s.counts[c[0]]); });
    return el("div", { "class": "counts" }, list.map(function (c) {
      var v = s.counts ? s.counts[c[0]] : undefined;
      return el("div", { "class": "count", "data-count": c[0] }, [el("b", { text: v === undefined ? "-" : String(v) }), el("span", { text: c[1] })]);
    }).concat(isPaused(s) ? [el("div", { "class": "count", "data-count": "paused" }, [el("b", { text: "paused" })])] : [])
      .concat(limiting(s)).concat(s.kind === "queue" ? settings(s.counts) : []));
  }

  // a queue's settings of the store: its cap with the jobs it runs, its per-key cap, its hold, its retention
  function settings(c) {
    if (!c || c.error) return [];
    var shown = [];
    if (c.concurrency) {
      var full = c.concurrency.running >= c.concurrency.limit;
      shown.push(el("div", { "class": "count", "data-count": "concurrency", "data-full": String(full) }, [
        el("b", { text: c.concurrency.running + "/" + c.concurrency.limit }),
        el("span", { text: full ? "running, at its cap: no claim until one ends" : "running (its cap)" })]));
    }
    // the store counts no keys: how many have jobs waiting or running is not known here (docs: Limits)
    if (c.groupConcurrency) {
      shown.push(el("div", { "class": "count", "data-count": "groupConcurrency" }, [
        el("b", { text: "per key \u2264 " + c.groupConcurrency }), el("span", { text: "running per group (its per-key cap)" })]));
    }
    if (c.heldUntil) {
      shown.push(el("div", { "class": "count", "data-count": "held", title: c.heldUntil }, [
        el("b", { text: "held until " + new Date(c.heldUntil).toLocaleTimeString() }),
        el("span", { text: "no consumer claims its jobs before (" + within(Date.parse(c.heldUntil) - Date.now()) + ")" })]));
    }
    if (c.retention) {
      var kept = ["succeeded", "dead", "cancelled"].filter(function (state) { return c.retention[state]; }).map(function (state) {
        var keep = c.retention[state], parts = [];
        if (keep.age != null) parts.push(within(keep.age));
        if (keep.count != null) parts.push("newest " + keep.count);
        return state + ": " + (parts.join(", ") || "no limit");
      });
      shown.push(el("div", { "class": "count", "data-count": "retention" }, [el("b", { text: "keeps" }), el("span", { text: kept.join("; ") })]));
    }
    return shown;
  }
  // a time span, roughly: "in 4m 10s" is what an operator reads
  function within(ms) {
    if (!(ms > 0)) return "0s";
    var s = Math.round(ms / 1000), units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]], out = [];
    units.forEach(function (u) { if (s >= u[1] && out.length < 2) { out.push(Math.floor(s / u[1]) + u[0]); s %= u[1]; } });
    return out.length ? out.join(" ") : ms + "ms";
  }

  // a rate limit, where one is set: a pool's jobs it holds back now, a queue's limit and free slots
  function limiting(s) {
    var c = s.counts;
    if (!c) return [];
    if (s.kind === "pool" && c.rateLimited > 0) {
      return [el("div", { "class": "count", "data-count": "rateLimited" }, [el("b", { text: String(c.rateLimited) }), el("span", { text: "rate limited" })])];
    }
    if (s.kind === "queue" && c.rateLimit) {
      var r = c.rateLimit;
      return [el("div", { "class": "count", "data-count": "rateLimit" }, [el("b", { text: r.available + "/" + r.limit }),
        el("span", { text: "free per " + r.interval + " ms" })])];
    }
    return [];
  }

  function isPaused(s) {
    return !!s.counts && (s.kind === "pool" ? s.counts.state === "paused" : s.counts.paused === true);
  }
  // pauses or resumes dispatch (a pool) or claims (a queue, for all its consumers); running jobs go on
  function pauseButton(s) {
    if (state.readOnly || !s.counts || s.counts.error || (s.kind === "pool" && s.counts.state !== "running" && s.counts.state !== "paused")) return null;
    var action = isPaused(s) ? "resume" : "pause";
    return el("button", { type: "button", "data-action": action, "data-kind": s.kind, "data-source": s.name, text: action });
  }
  // a queue's hold (lifted, or asked for), its cap and its per-key cap: each asks for its value, but a lift
  function settingButtons(s) {
    if (state.readOnly || s.kind !== "queue" || !s.counts || s.counts.error) return [];
    var b = function (text, action, extra) {
      var attrs = { type: "button", "data-action": action, "data-kind": s.kind, "data-source": s.name, text: text };
      for (var k in extra) attrs[k] = extra[k];
      return el("button", attrs);
    };
    return [s.counts.heldUntil ? b("lift hold", "hold", { "data-body": '{"duration":0}' }) : b("hold\u2026", "hold", { "data-ask": "hold" }),
      b("cap\u2026", "concurrency", { "data-ask": "concurrency" }), b("per-key cap\u2026", "group-concurrency", { "data-ask": "group-concurrency" })];
  }
  // what a setting's button asks for: its body's field, the question, and the answer as sent (null: the operator backed out)
  // a number typed is sent as one (milliseconds, a cap), for the server to check; other text as it is
  var number = function (a) { return a !== "" && !isNaN(Number(a)) ? Number(a) : a; };
  var cap = function (a) { return a === "" ? null : number(a); };
  var ASK = {
    hold: ["duration", "Hold the queue for how long? (15 minutes, 2 hours; 0 lifts its hold)", number],
    concurrency: ["limit", "Cap on its running jobs, across every consumer? (a whole number; empty or 0: no cap)", cap],
    "group-concurrency": ["limit", "Cap on the running jobs of each group key, across every consumer? (a whole number; empty or 0: no cap)", cap]
  };
  function bodyFor(b, name) {
    var fixed = b.getAttribute("data-body");
    if (fixed !== null) return fixed;
    var ask = ASK[b.getAttribute("data-ask")];
    if (!ask) return undefined;
    var answer = window.prompt(ask[1] + "\n" + name, "");
    if (answer === null) return null;
    var body = {};
    body[ask[0]] = ask[2](answer.trim());
    return JSON.stringify(body);
  }

  function chart(name, title, points, series, unit) {
    var W = 400, H = 120, P = 4;
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("preserveAspectRatio", "none");
    var max = 0;
    points.forEach(function (p) { series.forEach(function (s) { var v = p[s.field]; if (v != null && v > max) max = v; }); });
    max = max <= 0 ? 1 : max * 1.1;
    var t1 = points.length ? points[points.length - 1].t : 0;
    // the x axis spans the points there are (at least 30 intervals), up to the whole history
    var span = Math.max(points.length ? t1 - points[0].t : 0, state.interval * 30, 1);
    series.forEach(function (s) {
      var path = "", pen = false, alone = [];
      points.forEach(function (p, i) {
        var v = p[s.field];
        if (v == null) { pen = false; return; }
        var x = W - P - (t1 - p.t) / span * (W - 2 * P), y = H - P - v / max * (H - 2 * P);
        path += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
        // a value between intervals without one (a quiet queue's latency) is a dot, not an invisible line
        if (!pen && (i + 1 >= points.length || points[i + 1][s.field] == null)) alone.push([x, y]);
        pen = true;
      });
      alone.forEach(function (at) {
        var dot = document.createElementNS(ns, "circle");
        dot.setAttribute("cx", at[0].toFixed(1));
        dot.setAttribute("cy", at[1].toFixed(1));
        dot.setAttribute("r", "2.5");
        dot.setAttribute("fill", s.color);
        svg.appendChild(dot);
      });
      var line = document.createElementNS(ns, "path");
      line.setAttribute("d", path || "M0 0");
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", s.color);
      line.setAttribute("stroke-width", "1.5");
      line.setAttribute("vector-effect", "non-scaling-stroke");
      svg.appendChild(line);
    });
    var legend = el("div", { "class": "legend" }, series.map(function (s) {
      var v = null; // the latest value: an interval without attempts has no latency
      for (var i = points.length - 1; i >= 0 && v == null; i--) v = points[i][s.field];
      var i = el("i"); i.style.background = s.color;
      return el("span", {}, [i, s.label + " " + (v == null ? "-" : (Math.round(v * 10) / 10) + unit)]);
    }).concat([el("span", { text: "max " + (Math.round(max / 1.1 * 10) / 10) + unit })]));
    return el("div", { "class": "chart", "data-chart": name }, [el("h3", { text: title }), svg, legend]);
  }

  function progress(p) {
    if (p == null) return "";
    var fraction = null;
    if (typeof p === "number" && p >= 0 && p <= 1) fraction = p;
    else if (p && typeof p === "object" && typeof p.done === "number") {
      var total = typeof p.of === "number" ? p.of : p.total;
      if (typeof total === "number" && total > 0) fraction = Math.min(1, p.done / total);
    }
    var text = typeof p === "string" ? p : JSON.stringify(p);
    if (fraction === null) return el("span", { text: text });
    var bar = el("div", { "class": "bar" }, [el("div")]);
    bar.firstChild.style.width = (fraction * 100).toFixed(1) + "%";
    return el("span", { title: text }, [bar, " " + Math.round(fraction * 100) + "%"]);
  }

  function button(label, action, s, job) {
    if (state.readOnly) return null;
    return el("button", { type: "button", "data-action": action, "data-kind": s.kind, "data-source": s.name, "data-id": job.id, text: label });
  }

  function table(title, name, s, jobs, columns) {
    var box = el("div", { "class": "list", "data-list": name }, [el("h3", { text: title + " (" + jobs.length + (jobs.length >= 50 ? "+" : "") + ")" })]);
    if (!jobs.length) { box.appendChild(el("div", { "class": "empty", text: "none" })); return box; }
    box.appendChild(el("div", { "class": "rows" }, [el("table", {}, [
      el("tr", {}, columns.map(function (c) { return el("th", c[2] ? { text: c[0], style: "width: " + c[2] } : { text: c[0] }); })),
    ].concat(jobs.map(function (job) {
      return el("tr", { "data-job": job.id, "data-status": job.status }, columns.map(function (c) { return c[1](job); }));
    })))]));
    return box;
  }

  function lists(s) {
    var d = s.detail;
    if (!d) return el("div", { "class": "empty", text: "loading jobs..." });
    // a durable job's id is a UUID: its first characters tell jobs apart on a page
    var id = function (job) {
      return el("td", { text: "#" + (job.id.length > 12 ? job.id.slice(0, 8) + "\u2026" : job.id), title: job.id },
        [job.dedupKey ? el("div", { "class": "tag", "data-dedup": "", text: "key " + job.dedupKey }) : null,
          job.group ? el("div", { "class": "tag", "data-group": "", text: "group " + job.group }) : null,
          // a durable job's expiry while it waits unstarted (EnqueueOptions.expireIn)
          job.expiresAt ? el("div", { "class": "tag", "data-expires": "", text: "expires " + new Date(job.expiresAt).toLocaleTimeString() }) : null]);
    };
    var td = function (f) { return function (job) { return el("td", { text: String(f(job)) }); }; };
    // a durable job's snoozes spend no attempt: shown beside them, so that a job snoozing for ever is seen
    var snoozed = function (job) { return job.snoozes ? ", snoozed " + job.snoozes + "\u00d7" : ""; };
    var failedTitle = s.kind === "pool" ? "Failed" : "Dead / expired";
    return el("div", { "class": "lists" }, [
      table("Running", "running", s, d.running, [["job", id, "25%"], ["attempt", td(function (j) { return j.attempt + snoozed(j); }), "15%"],
        ["progress", function (j) { return el("td", {}, [progress(j.progress)]); }],
        ["", function (j) { return el("td", {}, [button("cancel", "cancel", s, j)]); }, "70px"]]),
      table("Queued", "queued", s, d.queued, [["job", id, "25%"], ["status", td(function (j) { return j.status + snoozed(j); })],
        ["priority", td(function (j) { return j.priority; })],
        ["", function (j) { return el("td", {}, [button("cancel", "cancel", s, j)]); }, "70px"]]),
      table(failedTitle, "failed", s, d.failed, [["job", id, "25%"], ["attempt", td(function (j) { return j.attempt + snoozed(j); }), "15%"],
        ["error", function (j) { return el("td", { "class": "error" }, [el("pre", { text: j.error || "" })]); }]]
        .concat(s.kind === "queue" ? [["", function (j) { return el("td", {}, [button("redrive", "redrive", s, j)]); }, "80px"]] : []))
    ]);
  }

  function render() {
    var root = $("sources");
    // the sources selected first, in the order they were: the top ones follow
    var rank = function (s) { var i = selected.indexOf(keyOf(s)); return i < 0 ? MAX_SELECTED : i; };
    var shown = state.overview ? state.sources.slice().sort(function (a, b) { return rank(a) - rank(b); }) : state.sources;
    var cards = shown.map(function (s) {
      var charts = [chart("throughput", "Throughput (jobs/s)", s.points, [
        { field: "done", label: "ended", color: "var(--ok)" }, { field: "failed", label: "failed", color: "var(--bad)" }], "/s")];
      // a pool's: every attempt of the interval; a queue's: the last attempts of the jobs that ended in it
      charts.push(chart("latency", s.kind === "pool" ? "Latency (ms, per interval)" : "Latency (ms, jobs that ended per interval)", s.points, [
        { field: "waitP50", label: "wait p50", color: "#b9a2e8" }, { field: "waitP99", label: "wait p99", color: "var(--wait)" },
        { field: "runP50", label: "run p50", color: "#8fb0ee" }, { field: "runP99", label: "run p99", color: "var(--run)" }], " ms"));
      charts.push(chart("depth", "Depth", s.points, [
        { field: "queued", label: "queued", color: "var(--wait)" }, { field: "running", label: "running", color: "var(--run)" }], ""));
      var k = keyOf(s), chosen = selected.indexOf(k) >= 0;
      return el("section", { "class": "card", "data-source": k }, [
        el("h2", {}, [el("span", { text: s.name }), el("span", { "class": "kind", text: s.kind === "pool" ? "pool" : "durable queue" }),
          pauseButton(s)].concat(settingButtons(s)).concat([
          state.overview && state.top.indexOf(k) >= 0 ? el("span", { "class": "tag", text: "top backlog" }) : null,
          state.overview && chosen ? el("button", { type: "button", "data-show": k, text: "hide" }) : null])),
        counts(s), el("div", { "class": "charts" }, charts), lists(s)
      ]);
    });
    if (!cards.length) {
      cards = [el("div", { "class": "card empty", text: state.overview
        ? "No source has a backlog: show one from the table to see its charts and jobs."
        : "No pool or queue is on this dashboard yet." })];
    }
    root.replaceChildren.apply(root, cards);
  }

  // --- actions -----------------------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var show = event.target.closest && event.target.closest("button[data-show]");
    if (show) { toggle(show.getAttribute("data-show")); return; }
    var paging = event.target.closest && event.target.closest("button[data-page]");
    if (paging) {
      var to = view.offset + Number(paging.getAttribute("data-page")) * PAGE;
      if (to >= 0 && to < view.matched) { view.offset = to; loadRows(); }
      return;
    }
    var b = event.target.closest && event.target.closest("button[data-action]");
    if (!b) return;
    var kind = b.getAttribute("data-kind"), name = b.getAttribute("data-source"), id = b.getAttribute("data-id"), action = b.getAttribute("data-action");
    var url = "api/" + (kind === "pool" ? "pools/" : "queues/") + encodeURIComponent(name) +
      (id === null ? "" : "/jobs/" + encodeURIComponent(id)) + "/" + action;
    var body = bodyFor(b, name);
    if (body === null) return;
    b.disabled = true;
    var init = { method: "POST", headers: headers(body === undefined ? { "X-Workpool-Dashboard": "1" } : { "X-Workpool-Dashboard": "1", "Content-Type": "application/json" }) };
    if (body !== undefined) init.body = body;
    fetch(url, init)
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (r) {
        var what = action + " " + name + (id === null ? "" : " #" + id);
        // refused: nothing changed, so no sample draws the button again soon (a slow interval: never
        // before the next); it is pressed again at once, with another answer. Done: the sample the
        // change brings (at once) draws it as the change left it
        if (!r.ok) b.disabled = false;
        message(r.ok ? what + ": done" : what + ": " + r.body.error, r.ok);
      })
      .catch(function (e) { b.disabled = false; message(action + " failed: " + e, false); });
  });

  // --- live updates: server-sent events read through fetch ------------------------------------------
  function showLogin() {
    setStatus("token needed", "error");
    $("login").style.display = "flex";
  }
  $("login").addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("login").style.display = "none";
    connect();
  });

  function handle(block) {
    var name = "message", data = "";
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) name = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
    });
    if (!data) return;
    var snap = JSON.parse(data);
    if (name === "snapshot") onSnapshot(snap); else onSample(snap);
  }

  // the open stream's: connecting again (a new selection) ends it, without a retry
  var current = null;
  function connect() {
    if (current) current.abort();
    var controller = current = new AbortController();
    setStatus("connecting", "connecting");
    var url = "api/events" + (selected.length ? "?" + selected.map(function (k) { return "show=" + encodeURIComponent(k); }).join("&") : "");
    fetch(url, { headers: headers(), cache: "no-store", signal: controller.signal }).then(function (response) {
      if (response.status === 401) { showLogin(); return; }
      // the server's reason, when it gives one (at most so many sources shown across the open pages)
      if (!response.ok || !response.body) return response.json().then(function (body) { throw new Error(body && body.error || "HTTP " + response.status); }, function () { throw new Error("HTTP " + response.status); });
      setStatus("live", "live");
      var reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      var buffer = "";
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) throw new Error("the server closed the stream");
          buffer += r.value;
          var i;
          while (!controller.signal.aborted && (i = buffer.indexOf("\n\n")) >= 0) { handle(buffer.slice(0, i)); buffer = buffer.slice(i + 2); }
          return pump();
        });
      }
      return pump();
    }).catch(function (e) {
      if (controller.signal.aborted) return;
      setStatus("reconnecting (" + e.message + ")", "error");
      setTimeout(connect, 2000);
    });
  }
  connect();
})();
</script>
</body>
</html>
`
