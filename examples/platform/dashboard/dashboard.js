// Weft live dashboard. No build step, no dependencies: plain ES2017 served by the
// platform binary (GET /dashboard). Data comes from two places:
//
// - the WebSocket `GET /v1/live?token=KEY` (protocol: docs/src/platform.md, "Live
//   updates"): the server's stats once per second, and one subscription per panel whose
//   `partial` updates move the newest (open) window's point and whose `final` updates
//   fix closed windows;
// - the HTTP API with `Authorization: Bearer KEY`: `/v1/query` to backfill the charts
//   on (re)connect and for the query box, `/v1/alerts` polled every 3 s, `/v1/series`
//   for the metric names.
//
// The key comes from the URL fragment `#token=KEY` (a fragment is never sent to the
// server, so it is not in any access log) or from the key form, and is kept in
// sessionStorage (this tab only). A lost connection is retried with capped, jittered
// exponential backoff and every subscription is sent again when it comes back; a
// refused key stops the retries and asks for a new one.
"use strict";

(function () {
  const LATENCY_METRIC = "http.request_ms";
  const KEY_STORAGE = "weft.dashboard.token";
  const THROUGHPUT_POINTS = 180; // seconds of stats kept
  const WINDOWS_KEPT = 120; // windows kept per chart
  const ROUTE_SPAN_MS = 60000; // the top-series panel sums the last minute
  const ALERT_POLL_MS = 3000;
  const SILENCE_MS = 20000; // stats come every second: this much silence means a dead link
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;

  // The subscriptions, sent on every (re)connect. `id` is ours (the protocol echoes it).
  const SUBSCRIPTIONS = {
    latency: { metric: LATENCY_METRIC, agg: "p50,p90,p99", window: "5m", interval: "1s" },
    routes: { metric: LATENCY_METRIC, agg: "count", group_by: "route", window: "2m", interval: "1s" },
    paths: { metric: LATENCY_METRIC, agg: "top8", window: "2m", interval: "1s" },
  };

  // Everything a test (or a curious user in the console) may want to read.
  const debug = {
    state: "connecting",
    connects: 0,
    messages: 0,
    updates: { latency: 0, routes: 0, paths: 0 },
    finals: { latency: 0, routes: 0, paths: 0 },
    stats: 0,
    alertPolls: 0,
    alerts: 0,
    queryRows: 0,
    charts: { throughput: 0, latency: 0, routes: 0, paths: 0 },
    lastLatency: null,
    closedWindows: 0,
    pushLagMs: null,
    lastRate: null,
    errors: [],
  };
  window.__weft = debug;

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- the key

  // Returns whether the fragment held a key.
  function takeKeyFromFragment() {
    const hash = window.location.hash.replace(/^#/, "");
    if (!hash) return false;
    const token = new URLSearchParams(hash).get("token");
    if (!token) return false;
    sessionStorage.setItem(KEY_STORAGE, token);
    // Out of the address bar and the history: screenshots and shoulder-surfers.
    history.replaceState(null, "", window.location.pathname + window.location.search);
    return true;
  }
  const getKey = () => sessionStorage.getItem(KEY_STORAGE);

  function askForKey(message) {
    $("key-form").classList.remove("hidden");
    $("key-error").textContent = message || "";
    $("key-input").focus();
  }

  // ---------------------------------------------------------------- status

  const STATUS_TEXT = {
    connecting: "connecting",
    connected: "connected",
    reconnecting: "reconnecting",
    "auth-failed": "auth failed",
    "no-key": "no key",
  };

  function setStatus(state, detail) {
    debug.state = state;
    const el = $("status");
    el.className = "status " + state;
    el.dataset.state = state;
    $("status-text").textContent = STATUS_TEXT[state] + (detail ? " " + detail : "");
  }

  function noteError(message) {
    debug.errors.push(String(message));
    if (debug.errors.length > 20) debug.errors.shift();
  }

  // ---------------------------------------------------------------- HTTP

  class AuthError extends Error {}

  async function api(path) {
    const key = getKey();
    if (!key) throw new AuthError("no key");
    const res = await fetch(path, { headers: { Authorization: "Bearer " + key }, cache: "no-store" });
    if (res.status === 401) throw new AuthError("the server refused the key");
    let body = null;
    try {
      body = await res.json();
    } catch (_) {
      body = null;
    }
    if (!res.ok) throw new Error((body && body.error) || res.status + " " + res.statusText);
    return body;
  }

  // ---------------------------------------------------------------- values

  // A result value: a plain number, null, or an estimate {value, rel_error, lower, upper}.
  function num(v) {
    if (typeof v === "number") return v;
    if (v && typeof v.value === "number") return v.value;
    return null;
  }

  function fmt(x) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    const a = Math.abs(x);
    if (a >= 1e9) return (x / 1e9).toFixed(2) + "G";
    if (a >= 1e6) return (x / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return (x / 1e3).toFixed(1) + "k";
    if (a >= 100 || Number.isInteger(x)) return String(Math.round(x));
    if (a >= 1) return x.toFixed(1);
    return x.toFixed(3);
  }

  function fmtValue(v) {
    if (Array.isArray(v)) return v.map((t) => t.item + " (" + t.count + ")").join(", ");
    if (v && typeof v === "object" && typeof v.value === "number") {
      return fmt(v.value) + (v.rel_error ? " ±" + (v.rel_error * 100).toFixed(1) + "%" : "");
    }
    return fmt(typeof v === "number" ? v : null);
  }

  const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });

  // ---------------------------------------------------------------- charts

  // A hand-written canvas time-series chart: grid, y labels, time labels, one line per
  // series, a legend with the newest values. The newest point is hollow while its
  // window is still open (partial).
  class LineChart {
    constructor(canvas, series, opts) {
      this.canvas = canvas;
      this.series = series; // [{key, label, color}]
      this.opts = opts || {};
      this.points = []; // [{t, partial, values: {key: number|null}}], sorted by t
      this.dirty = true;
    }

    set(points) {
      this.points = points;
      this.dirty = true;
      schedule();
    }

    drawn() {
      return this.points.filter((p) => this.series.some((s) => p.values[s.key] != null)).length;
    }

    draw() {
      if (!this.dirty) return;
      this.dirty = false;
      const c = this.canvas;
      const dpr = window.devicePixelRatio || 1;
      const w = c.clientWidth || 600;
      const h = c.clientHeight || 220;
      if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
        c.width = Math.round(w * dpr);
        c.height = Math.round(h * dpr);
      }
      const g = c.getContext("2d");
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, w, h);
      const pad = { l: 52, r: 12, t: 24, b: 22 };
      const pw = w - pad.l - pad.r;
      const ph = h - pad.t - pad.b;
      g.font = "11px system-ui, sans-serif";

      const pts = this.points;
      let ymax = 0;
      for (const p of pts) for (const s of this.series) {
        const v = p.values[s.key];
        if (v != null && v > ymax) ymax = v;
      }
      ymax = niceCeil(ymax || 1);
      const t1 = pts.length ? pts[pts.length - 1].t : Date.now();
      const t0 = pts.length > 1 ? pts[0].t : t1 - 60000;
      const span = Math.max(t1 - t0, 1);
      const x = (t) => pad.l + ((t - t0) / span) * pw;
      const y = (v) => pad.t + ph - (v / ymax) * ph;

      // grid and y labels
      g.strokeStyle = "#2a2e35";
      g.fillStyle = "#8e9199";
      g.lineWidth = 1;
      g.textAlign = "right";
      g.textBaseline = "middle";
      for (let i = 0; i <= 4; i++) {
        const v = (ymax * i) / 4;
        const yy = Math.round(y(v)) + 0.5;
        g.beginPath();
        g.moveTo(pad.l, yy);
        g.lineTo(pad.l + pw, yy);
        g.stroke();
        g.fillText(fmt(v) + (this.opts.unit ? " " + this.opts.unit : ""), pad.l - 4, yy);
      }
      // time labels
      g.textAlign = "center";
      g.textBaseline = "top";
      if (pts.length) {
        for (let i = 0; i <= 3; i++) {
          const t = t0 + (span * i) / 3;
          g.fillText(clock(t), Math.min(Math.max(x(t), pad.l + 24), pad.l + pw - 24), pad.t + ph + 5);
        }
      } else {
        g.textBaseline = "middle";
        g.fillText("waiting for data…", pad.l + pw / 2, pad.t + ph / 2);
      }
      // lines
      for (const s of this.series) {
        g.strokeStyle = s.color;
        g.lineWidth = 2;
        g.beginPath();
        let started = false;
        for (const p of pts) {
          const v = p.values[s.key];
          if (v == null) {
            started = false;
            continue;
          }
          if (started) g.lineTo(x(p.t), y(v));
          else g.moveTo(x(p.t), y(v));
          started = true;
        }
        g.stroke();
        const last = pts.length ? pts[pts.length - 1] : null;
        if (last && last.values[s.key] != null) {
          g.beginPath();
          g.arc(x(last.t), y(last.values[s.key]), 3, 0, 2 * Math.PI);
          if (last.partial) {
            g.fillStyle = "#181b1f";
            g.fill();
            g.stroke();
          } else {
            g.fillStyle = s.color;
            g.fill();
          }
        }
      }
      // legend with the newest values
      g.textAlign = "left";
      g.textBaseline = "top";
      let lx = pad.l;
      const newest = pts.length ? pts[pts.length - 1] : null;
      for (const s of this.series) {
        const v = newest ? newest.values[s.key] : null;
        const label = s.label + " " + fmt(v) + (this.opts.unit ? " " + this.opts.unit : "");
        g.fillStyle = s.color;
        g.fillRect(lx, 6, 10, 10);
        g.fillStyle = "#d8d9da";
        g.fillText(label, lx + 14, 5);
        lx += g.measureText(label).width + 30;
      }
      c.dataset.points = String(this.drawn());
    }
  }

  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  let frame = 0;
  function schedule() {
    if (frame) return;
    const run = () => {
      frame = 0;
      throughputChart.draw();
      latencyChart.draw();
      debug.charts.throughput = throughputChart.drawn();
      debug.charts.latency = latencyChart.drawn();
    };
    // requestAnimationFrame does not run in a hidden tab; the timeout keeps the charts
    // (and the debug counters) current there too.
    frame = 1;
    const raf = requestAnimationFrame(() => {
      clearTimeout(timer);
      run();
    });
    const timer = setTimeout(() => {
      cancelAnimationFrame(raf);
      run();
    }, 250);
  }
  window.addEventListener("resize", () => {
    throughputChart.dirty = true;
    latencyChart.dirty = true;
    schedule();
  });

  const throughputChart = new LineChart(
    $("chart-throughput"),
    [{ key: "rate", label: "events/s", color: "#73bf69" }],
    {},
  );
  const latencyChart = new LineChart(
    $("chart-latency"),
    [
      { key: "p50", label: "p50", color: "#73bf69" },
      { key: "p90", label: "p90", color: "#f2cc0c" },
      { key: "p99", label: "p99", color: "#f2495c" },
    ],
    { unit: "ms" },
  );

  // ---------------------------------------------------------------- panel state

  const throughput = []; // [{t, partial:false, values:{rate}}]
  const latency = new Map(); // window start -> {t, partial, values}
  const routes = new Map(); // route -> Map(window start -> {end, count})
  let paths = { start: -1, final: false, items: [] };

  // Merges one result's points into `latency`: a partial moves an open window's point,
  // a final fixes it (and a later partial never overwrites a final).
  function mergeLatency(result, final) {
    const group = (result.groups || [])[0];
    if (!group) return;
    for (const p of group.points) {
      const old = latency.get(p.start);
      if (old && !old.partial && !final) continue;
      latency.set(p.start, {
        t: p.start,
        partial: !final,
        values: { p50: num(p.values.p50), p90: num(p.values.p90), p99: num(p.values.p99) },
      });
    }
    const keys = [...latency.keys()].sort((a, b) => a - b);
    while (keys.length > WINDOWS_KEPT) latency.delete(keys.shift());
    const pts = keys.map((k) => latency.get(k));
    latencyChart.set(pts);
    const newest = pts[pts.length - 1];
    if (newest) debug.lastLatency = newest.values.p99;
    debug.closedWindows = pts.filter((p) => !p.partial).length;
  }

  function mergeRoutes(result) {
    for (const gr of result.groups || []) {
      const route = (gr.group && gr.group.route) || "(none)";
      let m = routes.get(route);
      if (!m) routes.set(route, (m = new Map()));
      for (const p of gr.points) m.set(p.start, { end: p.end, count: num(p.values.count) || 0 });
    }
    renderRoutes();
  }

  function renderRoutes() {
    const since = Date.now() - ROUTE_SPAN_MS;
    const rows = [];
    for (const [route, m] of routes) {
      let n = 0;
      for (const [start, w] of m) {
        if (w.end < since - ROUTE_SPAN_MS) m.delete(start);
        else if (w.end > since) n += w.count;
      }
      if (n > 0) rows.push([route, n]);
    }
    rows.sort((a, b) => b[1] - a[1]);
    const max = rows.length ? rows[0][1] : 1;
    const el = $("bars-routes");
    el.replaceChildren(
      ...rows.slice(0, 10).map(([route, n]) => {
        const row = document.createElement("div");
        row.className = "bar";
        row.dataset.route = route;
        const name = document.createElement("span");
        name.textContent = route;
        const track = document.createElement("div");
        track.className = "track";
        const fill = document.createElement("div");
        fill.className = "fill";
        fill.style.width = ((100 * n) / max).toFixed(1) + "%";
        track.append(fill);
        const count = document.createElement("span");
        count.className = "n";
        count.textContent = fmt(n);
        row.append(name, track, count);
        return row;
      }),
    );
    if (!rows.length) el.innerHTML = '<span class="muted">waiting for data…</span>';
    el.dataset.points = String(rows.length);
    debug.charts.routes = rows.length;
  }

  // The newest closed window's top paths (or the open one until a window closes).
  function mergePaths(result, final) {
    const group = (result.groups || [])[0];
    if (!group) return;
    for (const p of group.points) {
      const items = Array.isArray(p.values.top8) ? p.values.top8 : [];
      const better = final ? !paths.final || p.start >= paths.start : !paths.final && p.start >= paths.start;
      if (better && items.length) paths = { start: p.start, final, items };
    }
    const el = $("top-paths");
    el.replaceChildren(
      ...paths.items.map((t) => {
        const li = document.createElement("li");
        li.textContent = t.item;
        const n = document.createElement("span");
        n.className = "n";
        n.textContent = fmt(t.count);
        li.append(n);
        return li;
      }),
    );
    el.dataset.points = String(paths.items.length);
    debug.charts.paths = paths.items.length;
  }

  function onStats(m) {
    debug.stats++;
    debug.lastRate = m.events_per_s;
    throughput.push({ t: m.sent_at || Date.now(), partial: false, values: { rate: m.events_per_s } });
    while (throughput.length > THROUGHPUT_POINTS) throughput.shift();
    throughputChart.set(throughput.slice());
    $("tile-rate").textContent = fmt(m.events_per_s);
    $("tile-accepted").textContent = fmt(m.accepted_total);
    $("tile-rejected").textContent = fmt(m.rejected_total);
    $("tile-conns").textContent = fmt(m.connections);
    $("tile-firing").textContent = fmt(m.alerts_firing);
    $("tile-firing").classList.toggle("alerting", m.alerts_firing > 0);
  }

  // Fills the charts with the closed windows the server already has, so a (re)connect
  // does not start from an empty chart.
  async function backfill() {
    try {
      const lat = await api("/v1/query?metric=" + encodeURIComponent(LATENCY_METRIC) + "&agg=p50,p90,p99&from=-5m");
      mergeLatency(lat, true);
      const r = await api("/v1/query?metric=" + encodeURIComponent(LATENCY_METRIC) + "&agg=count&group_by=route&from=-2m");
      mergeRoutes(r);
    } catch (e) {
      if (e instanceof AuthError) authFailed(e.message);
      else noteError("backfill: " + e.message);
    }
  }

  // ---------------------------------------------------------------- the WebSocket

  let ws = null;
  let attempt = 0;
  let retryTimer = 0;
  let lastMessageAt = 0;
  let stopped = false;

  function liveUrl(key) {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + "/v1/live?token=" + encodeURIComponent(key);
  }

  function connect() {
    clearTimeout(retryTimer);
    const key = getKey();
    if (!key) {
      setStatus("no-key");
      askForKey();
      return;
    }
    stopped = false;
    setStatus(attempt === 0 ? "connecting" : "reconnecting");
    let opened = false;
    const sock = new WebSocket(liveUrl(key));
    ws = sock;
    sock.onopen = () => {
      opened = true;
      attempt = 0;
      debug.connects++;
      lastMessageAt = Date.now();
      setStatus("connected");
      sock.send(JSON.stringify({ type: "stats", on: true }));
      for (const [id, query] of Object.entries(SUBSCRIPTIONS)) {
        sock.send(JSON.stringify({ type: "subscribe", id, query }));
      }
      backfill();
      pollAlerts();
    };
    sock.onmessage = (ev) => {
      if (sock !== ws) return;
      lastMessageAt = Date.now();
      debug.messages++;
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch (_) {
        noteError("not JSON: " + String(ev.data).slice(0, 80));
        return;
      }
      switch (m.type) {
        case "stats":
          onStats(m);
          break;
        case "update":
          onUpdate(m);
          break;
        case "error":
          noteError((m.id ? m.id + ": " : "") + m.error);
          break;
        default:
          break;
      }
    };
    sock.onclose = () => {
      if (sock !== ws || stopped) return;
      ws = null;
      if (!opened) {
        // The upgrade failed: a refused key (401) or a server that is down. Only
        // an HTTP request can tell which.
        api("/v1/alerts").then(
          () => retry(),
          (e) => (e instanceof AuthError ? authFailed(e.message) : retry()),
        );
      } else {
        retry();
      }
    };
  }

  function retry() {
    if (stopped) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, attempt));
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    attempt++;
    setStatus("reconnecting", "in " + (delay / 1000).toFixed(1) + " s");
    retryTimer = setTimeout(connect, delay);
  }

  function authFailed(message) {
    disconnect();
    setStatus("auth-failed");
    askForKey((message || "the server refused the key") + ": enter a valid key");
  }

  // Push lag: our receive time minus the server's `sent_at` (meaningful when the two
  // clocks agree, e.g. on one machine), the median of the last few updates.
  const lags = [];
  function noteLag(sentAt) {
    if (typeof sentAt !== "number") return;
    lags.push(Math.max(0, Date.now() - sentAt));
    if (lags.length > 20) lags.shift();
    const sorted = lags.slice().sort((a, b) => a - b);
    debug.pushLagMs = sorted[sorted.length >> 1];
    $("tile-lag").textContent = fmt(debug.pushLagMs);
  }

  function onUpdate(m) {
    const final = m.kind === "final";
    if (!m.result) return;
    noteLag(m.sent_at);
    if (m.id in debug.updates) debug.updates[m.id]++;
    if (final && m.id in debug.finals) debug.finals[m.id]++;
    if (m.id === "latency") mergeLatency(m.result, final);
    else if (m.id === "routes") mergeRoutes(m.result);
    else if (m.id === "paths") mergePaths(m.result, final);
  }

  // A connection that went silent (a dead peer the OS has not noticed) is dropped and
  // retried like any other.
  setInterval(() => {
    if (ws && ws.readyState === WebSocket.OPEN && Date.now() - lastMessageAt > SILENCE_MS) {
      noteError("no message for " + SILENCE_MS / 1000 + " s: reconnecting");
      ws.close();
    }
    renderRoutes();
  }, 5000);

  // ---------------------------------------------------------------- alerts

  async function pollAlerts() {
    if (!getKey() || debug.state === "auth-failed") return;
    try {
      const body = await api("/v1/alerts");
      debug.alertPolls++;
      renderAlerts(body.alerts || []);
    } catch (e) {
      if (e instanceof AuthError) authFailed(e.message);
      else noteError("alerts: " + e.message);
    }
  }

  function renderAlerts(alerts) {
    const order = { firing: 0, pending: 1 };
    alerts.sort((a, b) => (order[a.state.status] ?? 2) - (order[b.state.status] ?? 2));
    const tbody = $("alerts-body");
    if (!alerts.length) {
      tbody.innerHTML = '<tr><td colspan="4" class="muted">no alert rules</td></tr>';
    } else {
      tbody.replaceChildren(
        ...alerts.map((a) => {
          const r = a.rule;
          const st = a.state.status;
          const tr = document.createElement("tr");
          tr.className = st;
          const filters = Object.entries(r.filters || {}).map(([k, v]) => k + "=" + v).join(",");
          const cells = [
            r.name,
            r.aggregate + "(" + r.metric + (filters ? "{" + filters + "}" : "") + ") " + r.op + " " + r.threshold,
            null,
            a.state.since ? clock(a.state.since) : "",
          ];
          for (const text of cells) {
            const td = document.createElement("td");
            if (text === null) {
              const b = document.createElement("span");
              b.className = "badge " + st;
              b.textContent = st;
              td.append(b);
            } else td.textContent = text;
            tr.append(td);
          }
          return tr;
        }),
      );
    }
    debug.alerts = alerts.length;
  }
  setInterval(pollAlerts, ALERT_POLL_MS);

  // ---------------------------------------------------------------- query box

  async function runQuery(ev) {
    if (ev) ev.preventDefault();
    const q = new URLSearchParams();
    q.set("metric", $("q-metric").value.trim());
    const agg = $("q-agg").value.trim();
    if (agg) q.set("agg", agg);
    const group = $("q-group").value.trim();
    if (group) q.set("group_by", group);
    for (const f of $("q-filter").value.split(/[\s,]+/).filter(Boolean)) q.append("filter", f);
    const from = $("q-from").value.trim();
    if (from) q.set("from", from);
    if ($("q-open").checked) q.set("open", "true");
    const meta = $("query-meta");
    const table = $("query-result");
    meta.className = "muted";
    meta.textContent = "running…";
    const started = performance.now();
    try {
      const r = await api("/v1/query?" + q.toString());
      const n = renderQuery(r);
      meta.textContent =
        n + " rows · " + (r.groups || []).length + " groups · resolution " + r.resolution_ms / 1000 + " s · " +
        Math.round(performance.now() - started) + " ms";
    } catch (e) {
      if (e instanceof AuthError) authFailed(e.message);
      meta.className = "error";
      meta.textContent = e.message;
      table.tHead.replaceChildren();
      table.tBodies[0].replaceChildren();
      table.dataset.rows = "0";
      debug.queryRows = 0;
    }
  }

  function renderQuery(r) {
    const table = $("query-result");
    const groups = r.groups || [];
    const keys = [...new Set(groups.flatMap((g) => Object.keys(g.group || {})))];
    const aggs = r.aggregates || [];
    const head = document.createElement("tr");
    for (const h of [...keys, "window", ...aggs]) {
      const th = document.createElement("th");
      th.textContent = h;
      head.append(th);
    }
    table.tHead.replaceChildren(head);
    const rows = [];
    for (const g of groups) {
      for (const p of g.points.slice().reverse()) {
        const tr = document.createElement("tr");
        if (p.partial) tr.className = "partial";
        const cells = [
          ...keys.map((k) => (g.group || {})[k] || ""),
          clock(p.start) + "–" + clock(p.end) + (p.partial ? " (open)" : ""),
          ...aggs.map((a) => fmtValue(p.values[a])),
        ];
        for (const text of cells) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.append(td);
        }
        rows.push(tr);
        if (rows.length >= 500) break;
      }
    }
    table.tBodies[0].replaceChildren(...rows);
    table.dataset.rows = String(rows.length);
    debug.queryRows = rows.length;
    return rows.length;
  }

  async function loadMetrics() {
    try {
      const s = await api("/v1/series");
      $("metrics").replaceChildren(
        ...(s.metrics || []).map((m) => {
          const o = document.createElement("option");
          o.value = m;
          return o;
        }),
      );
    } catch (_) {
      // Only a convenience: the box works without the list.
    }
  }

  // ---------------------------------------------------------------- start

  $("query-form").addEventListener("submit", runQuery);
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("key-input").value = "";
    $("key-form").classList.add("hidden");
    attempt = 0;
    connect();
    loadMetrics();
  });
  // Drops the connection (no retry): the key changed or was forgotten.
  function disconnect() {
    stopped = true;
    clearTimeout(retryTimer);
    if (ws) {
      const s = ws;
      ws = null;
      s.close();
    }
  }
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    disconnect();
    setStatus("no-key");
    askForKey();
  });
  // A new `#token=` pasted into the address bar of an open page: use it.
  window.addEventListener("hashchange", () => {
    if (!takeKeyFromFragment()) return;
    disconnect();
    $("key-form").classList.add("hidden");
    attempt = 0;
    connect();
    loadMetrics();
  });

  takeKeyFromFragment();
  renderRoutes();
  schedule();
  connect();
  if (getKey()) loadMetrics();
})();
