//! `GET /metrics`: the Prometheus text exposition of the engine's, the alerting's, the
//! webhook sinks' and the HTTP layer's counters, read at scrape time.

use std::fmt::Write as _;

use weft::analytics::RejectReason;

use super::App;

/// A Prometheus text writer: `# HELP`/`# TYPE` once per family, then its samples.
struct Prom(String);

impl Prom {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// Renders every metric.
pub async fn render(app: &App) -> String {
    let mut p = Prom(String::with_capacity(8 << 10));
    let m = app.engine.metrics();
    let s = &app.stats;
    p.one(
        "weft_http_ingest_requests_total",
        "counter",
        "POST /v1/events requests received.",
        s.ingest_requests.sum() as f64,
    );
    p.one(
        "weft_http_ingest_bytes_total",
        "counter",
        "Ingest request body bytes received.",
        s.ingest_bytes.sum() as f64,
    );
    p.one(
        "weft_ingest_events_accepted_total",
        "counter",
        "Events accepted over HTTP (logged and handed to the shards).",
        s.events_accepted.sum() as f64,
    );
    p.one(
        "weft_ingest_events_rejected_total",
        "counter",
        "Events rejected over HTTP (unparsable or invalid), reported by index.",
        s.events_rejected.sum() as f64,
    );
    p.family(
        "weft_http_refused_total",
        "counter",
        "Requests refused as a whole, by reason.",
    );
    for (reason, c) in [
        ("rate_limited", &s.rate_limited),
        ("busy", &s.busy),
        ("too_large", &s.too_large),
        ("malformed", &s.malformed),
        ("unauthorized", &s.unauthorized),
        ("log_error", &s.log_errors),
    ] {
        p.sample(
            "weft_http_refused_total",
            &[("reason", reason)],
            c.sum() as f64,
        );
    }
    p.one(
        "weft_http_queries_total",
        "counter",
        "GET /v1/query requests answered.",
        s.queries.sum() as f64,
    );
    p.one(
        "weft_http_query_seconds_total",
        "counter",
        "Time spent answering queries (divide by weft_http_queries_total for the mean).",
        s.query_micros.sum() as f64 / 1e6,
    );
    p.one(
        "weft_http_tails_total",
        "counter",
        "GET /v1/tail live streams opened.",
        s.tails.sum() as f64,
    );

    p.one(
        "weft_engine_batches_total",
        "counter",
        "Ingest calls that handed events to the shards.",
        m.batches as f64,
    );
    p.one(
        "weft_engine_events_accepted_total",
        "counter",
        "Events the engine accepted (all sources, including the demo).",
        m.accepted as f64,
    );
    p.family(
        "weft_engine_events_rejected_total",
        "counter",
        "Events the engine rejected, by reason.",
    );
    for r in RejectReason::ALL {
        p.sample(
            "weft_engine_events_rejected_total",
            &[("reason", r.as_str())],
            m.rejected(r) as f64,
        );
    }
    p.one(
        "weft_engine_busy_total",
        "counter",
        "Ingest calls refused because shard mailboxes were full (backpressure).",
        m.busy as f64,
    );
    p.one(
        "weft_engine_rate_limited_total",
        "counter",
        "Ingest calls refused by a tenant or source rate limit.",
        m.rate_limited as f64,
    );
    p.one(
        "weft_engine_windows_closed_total",
        "counter",
        "Final windows the shards closed.",
        m.windows_closed as f64,
    );
    p.one(
        "weft_engine_shard_restarts_total",
        "counter",
        "Shards restarted by their supervisor.",
        m.shard_restarts as f64,
    );
    for (name, help, per_shard) in [
        (
            "weft_engine_shard_queue_depth",
            "Batches queued in each shard's mailbox.",
            &m.shard_queue,
        ),
        (
            "weft_engine_shard_series",
            "Series each shard holds open windows for.",
            &m.shard_series,
        ),
    ] {
        p.family(name, "gauge", help);
        for (i, n) in per_shard.iter().enumerate() {
            p.sample(name, &[("shard", &i.to_string())], *n as f64);
        }
    }
    p.one(
        "weft_engine_watermark_lag_seconds",
        "gauge",
        "How far the event-time watermark lags the clock.",
        m.watermark_lag_ms as f64 / 1e3,
    );
    p.one(
        "weft_engine_store_backlog",
        "gauge",
        "Closed windows not yet applied to the query store.",
        m.store_backlog as f64,
    );
    p.one(
        "weft_engine_store_series",
        "gauge",
        "Series in the query store.",
        m.store.series as f64,
    );
    p.one(
        "weft_engine_store_cells",
        "gauge",
        "Window cells in the query store (all tiers).",
        m.store.cells as f64,
    );
    let (appended, replayed) = app.engine.log_counts();
    p.one(
        "weft_log_appended_batches_total",
        "counter",
        "Batches appended to the durable log since start-up.",
        appended as f64,
    );
    p.one(
        "weft_log_replayed_batches",
        "gauge",
        "Batches replayed from the durable log at start-up (replay progress while not ready).",
        replayed as f64,
    );
    p.one(
        "weft_ready",
        "gauge",
        "1 once the log replay has finished.",
        if app.engine.is_ready() { 1.0 } else { 0.0 },
    );

    if let Ok(a) = app.alerts.metrics().await {
        p.one("weft_alert_rules", "gauge", "Alert rules.", a.rules as f64);
        p.one(
            "weft_alerts_firing",
            "gauge",
            "Alert rules firing now.",
            a.firing as f64,
        );
        p.one(
            "weft_alerts_pending",
            "gauge",
            "Alert rules pending now.",
            a.pending as f64,
        );
        p.one(
            "weft_alert_rounds_total",
            "counter",
            "Alert evaluation rounds.",
            a.rounds as f64,
        );
    }
    let n = app.alerts.notifier().metrics();
    p.one(
        "weft_webhook_delivered_total",
        "counter",
        "Alert notifications delivered.",
        n.delivered as f64,
    );
    p.one(
        "weft_webhook_attempts_total",
        "counter",
        "Webhook delivery attempts (retries included).",
        n.attempts as f64,
    );
    p.one(
        "weft_webhook_refused_by_breaker_total",
        "counter",
        "Deliveries refused by an open circuit breaker.",
        n.refused_by_breaker as f64,
    );
    p.one(
        "weft_webhook_dead_lettered_total",
        "counter",
        "Notifications given up on after retries (kept as dead letters).",
        n.dead_lettered as f64,
    );
    p.family(
        "weft_webhook_breaker_state",
        "gauge",
        "1 for each sink's current circuit-breaker state.",
    );
    for (name, _) in &app.sinks {
        if let Some(state) = app.alerts.notifier().breaker_state(name) {
            let state = format!("{state:?}").to_ascii_lowercase();
            p.sample(
                "weft_webhook_breaker_state",
                &[("sink", name), ("state", &state)],
                1.0,
            );
        }
    }
    p.family(
        "weft_webhook_pool_connections",
        "gauge",
        "Each sink's connection pool: connections by state.",
    );
    for (name, sink) in &app.sinks {
        let st = sink.0.pool_status();
        for (state, v) in [
            ("idle", st.idle),
            ("in_use", st.in_use),
            ("max", st.max_size),
        ] {
            p.sample(
                "weft_webhook_pool_connections",
                &[("sink", name), ("state", state)],
                v as f64,
            );
        }
    }
    let live = app.live.status();
    p.one(
        "weft_live_connections",
        "gauge",
        "Open GET /v1/live WebSocket connections.",
        live.connections as f64,
    );
    p.one(
        "weft_live_subscriptions",
        "gauge",
        "Live subscriptions over all connections.",
        live.subscriptions as f64,
    );
    p.one(
        "weft_live_feeds",
        "gauge",
        "Distinct shared live feeds (one engine query per interval each).",
        live.feeds as f64,
    );
    p.one(
        "weft_live_updates_sent_total",
        "counter",
        "Live update frames sent.",
        live.updates_sent as f64,
    );
    p.one(
        "weft_live_updates_skipped_total",
        "counter",
        "Live rounds skipped for slow subscribers (keep-latest: each keeps only the newest).",
        live.updates_skipped as f64,
    );
    if let Some(demo) = &app.demo {
        p.one(
            "weft_demo_events_total",
            "counter",
            "Events the built-in demo source sent.",
            demo.sent.sum() as f64,
        );
        p.one(
            "weft_demo_refused_total",
            "counter",
            "Demo batches the engine refused (busy or rate-limited); counted, not retried.",
            demo.refused.sum() as f64,
        );
    }
    p.0
}
