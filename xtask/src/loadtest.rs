//! `cargo xtask loadtest`: the platform's load test, on loopback.
//!
//! Builds the server and the client (`cargo build --release --example platform --example
//! client`), starts the server on an ephemeral port with a fresh data directory and one
//! tenant with a random key, and runs the client (`--json`) through four phases:
//!
//! 1. **max ingest**: pre-encoded NDJSON batches of 1000 events over 4 connections, as
//!    fast as the server acknowledges; events/s, and events per second of server CPU
//!    (utime + stime from `/proc/<pid>/stat`), which is events/s per server core;
//! 2. **ack latency**: the p99 of the acknowledgement at half the measured max rate;
//! 3. **query latency**: `client query-load` at 100 queries/s while ingesting 100K
//!    events/s, with `open=true`, then over closed windows only (the API's default);
//! 4. **memory**: a fresh server ingesting 100K events/s over 10K series for 20 s; its
//!    peak RSS (`VmHWM`, and the largest `VmRSS` sampled, from `/proc/<pid>/status`),
//!    and the slope of `VmRSS` over the second half (MB/s: ~0 once memory levels off).
//!
//! Then two WebSocket phases (`GET /v1/live`, through `client ws-soak`), each on a fresh
//! server:
//!
//! 5. **10K clients**: 10,000 WebSocket clients, each subscribed to the same query at
//!    1 update/s (the hub shares one feed); the server RSS they add (largest `VmRSS`
//!    sampled while they are connected minus `VmRSS` before they connect) and the p99
//!    push lag (receive time minus the update's `sent_at`);
//! 6. **1K clients while ingesting**: 1,000 clients while ingesting 100K events/s; the
//!    server's total peak RSS (`VmHWM`).
//!
//! `--phases http,ws` picks the HTTP phases (1-4), the WebSocket ones (5-6), or both
//! (the default).
//!
//! It prints the figures against the targets of issues 15 and 16 (PASS/MISS) and writes
//! them to `<target>/criterion/weft-metrics/platform.json` (a run of some phases keeps
//! the other phases' rows already there), where `cargo xtask bench-report`
//! picks them up for `BENCHMARKS.md` (not in `--quick` mode, whose figures are only a
//! smoke test). The server is killed on every exit path (its guard's `Drop`).
//!
//! Linux only (it reads `/proc`), std only like the rest of the xtask.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The metric name the load test sends and queries.
const METRIC: &str = "load.latency_ms";

/// The tenant name the server is started with.
const TENANT: &str = "load";

/// How long the server may take to print its address and become ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// The options of `cargo xtask loadtest`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    /// Small counts and short phases: a smoke run, figures not written.
    quick: bool,
    /// Events of the max-ingest phase, overriding the default.
    events: Option<u64>,
    /// Run the HTTP phases (1-4).
    http: bool,
    /// Run the WebSocket phases (5-6).
    ws: bool,
}

/// Parses `--quick`, `--events N` / `--events=N`.
pub(crate) fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        events: None,
        http: true,
        ws: true,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let events = if arg == "--quick" {
            options.quick = true;
            continue;
        } else if arg == "--phases" || arg.starts_with("--phases=") {
            let list = match arg.strip_prefix("--phases=") {
                Some(list) => list,
                None => args
                    .next()
                    .ok_or("`--phases` needs a list, e.g. `--phases ws` or `--phases http,ws`")?,
            };
            (options.http, options.ws) = (false, false);
            for phase in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match phase {
                    "http" => options.http = true,
                    "ws" => options.ws = true,
                    other => {
                        return Err(format!(
                            "`--phases {list}`: unknown phase group `{other}`; use http, ws or http,ws"
                        ));
                    }
                }
            }
            if !options.http && !options.ws {
                return Err("`--phases` needs http, ws or http,ws".to_owned());
            }
            continue;
        } else if arg == "--events" {
            args.next()
                .ok_or("`--events` needs a number, e.g. `--events 2000000`")?
                .as_str()
        } else if let Some(n) = arg.strip_prefix("--events=") {
            n
        } else {
            return Err(format!("unknown option `{arg}` for `cargo xtask loadtest`"));
        };
        let n: u64 = events
            .replace('_', "")
            .parse()
            .ok()
            .filter(|n| *n >= 1000)
            .ok_or_else(|| format!("`--events {events}`: give a whole number of at least 1000"))?;
        options.events = Some(n);
    }
    Ok(options)
}

/// The sizes of the phases.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    /// Events of the max-ingest phase.
    max_events: u64,
    /// Events per request.
    batch: u64,
    /// Connections of the ingest phases.
    concurrency: u64,
    /// Series of the max-ingest, latency and query phases.
    series: u64,
    /// Seconds of the ack-latency phase...
    latency_secs: u64,
    /// ... but at most this many events (the client holds them all, encoded, in memory).
    latency_max_events: u64,
    /// Seconds of the query phase.
    query_secs: u64,
    /// Queries per second of the query phase.
    qps: u64,
    /// Events/s ingested during the query phase and the memory phase.
    steady_rate: u64,
    /// Seconds of the memory phase.
    memory_secs: u64,
    /// Series of the memory phase.
    memory_series: u64,
    /// WebSocket clients of phase 5.
    ws_clients: u64,
    /// WebSocket clients of phase 6 (while ingesting `steady_rate`).
    ws_ingest_clients: u64,
    /// Seconds each WebSocket phase measures.
    ws_secs: u64,
}

impl Plan {
    /// The full plan, or the `--quick` one; `events` overrides the max-ingest count.
    fn new(options: &Options) -> Plan {
        let (max_events, secs, latency_max_events) = if options.quick {
            (200_000, 3, 1_000_000)
        } else {
            (3_000_000, 10, 5_000_000)
        };
        Plan {
            max_events: options.events.unwrap_or(max_events),
            batch: 1000,
            concurrency: 4,
            series: 1000,
            latency_secs: secs,
            latency_max_events,
            query_secs: secs,
            qps: 100,
            steady_rate: 100_000,
            // Long enough to see whether memory levels off (windows close every 10 s).
            memory_secs: 2 * secs,
            memory_series: 10_000,
            ws_clients: if options.quick { 1_000 } else { 10_000 },
            ws_ingest_clients: if options.quick { 200 } else { 1_000 },
            ws_secs: if options.quick { 5 } else { 20 },
        }
    }
}

/// The figures the phases measured.
#[derive(Debug, Clone, PartialEq, Default)]
struct Figures {
    /// Accepted events/s at full speed.
    max_rate: f64,
    /// Server CPU seconds per wall second during the max-ingest phase.
    server_cores: f64,
    /// Accepted events per server CPU second.
    per_core: f64,
    /// The rate of the ack-latency phase (half of `max_rate`).
    half_rate: f64,
    /// The rate reached in that phase.
    half_rate_reached: f64,
    /// Ack latency p50 and p99 at half the max rate, ms.
    ack_p50_ms: f64,
    /// See `ack_p50_ms`.
    ack_p99_ms: f64,
    /// Queries of closed windows (the API's default) at 100 QPS while ingesting.
    query: QueryFigures,
    /// The same queries with `open=true` (still-open windows too).
    query_open: QueryFigures,
    /// Peak RSS (VmHWM) of the memory phase's server, MB.
    rss_peak_mb: f64,
    /// Largest VmRSS sampled during the memory phase, MB.
    rss_sampled_mb: f64,
    /// How fast VmRSS grew over the second half of the memory phase, MB/s.
    rss_growth_mb_per_s: f64,
    /// Problems the phases ran into (events not accepted, queries failed).
    warnings: Vec<String>,
    /// Whether the HTTP phases ran (their rows are reported).
    ran_http: bool,
    /// Phase 5, when it ran.
    ws: Option<WsFigures>,
    /// Phase 6, when it ran.
    ws_ingest: Option<WsFigures>,
}

/// What one WebSocket phase measured.
#[derive(Debug, Clone, PartialEq, Default)]
struct WsFigures {
    /// Clients connected (and subscribed).
    connected: u64,
    /// Server VmRSS before the clients connected, MB.
    rss_before_mb: f64,
    /// Largest server VmRSS sampled while they were connected, MB.
    rss_sampled_mb: f64,
    /// The server's peak RSS (VmHWM) at the end, MB.
    rss_peak_mb: f64,
    /// Push lag p50 and p99, ms.
    lag_p50_ms: f64,
    /// See `lag_p50_ms`.
    lag_p99_ms: f64,
    /// Updates per second over all clients.
    updates_per_s: f64,
}

impl WsFigures {
    /// RSS the clients added, MB.
    fn rss_added_mb(&self) -> f64 {
        (self.rss_sampled_mb - self.rss_before_mb).max(0.0)
    }
}

/// What one `client query-load` run measured.
#[derive(Debug, Clone, PartialEq, Default)]
struct QueryFigures {
    /// Latency p50, ms.
    p50_ms: f64,
    /// Latency p99, ms.
    p99_ms: f64,
    /// Queries that failed.
    failed: u64,
    /// Points (group × window) per answer, on average.
    points: f64,
}

impl QueryFigures {
    /// Reads a `query-load --json` summary.
    fn from_summary(summary: &Value) -> QueryFigures {
        QueryFigures {
            p50_ms: num(summary, &["latency_us", "p50"]) / 1000.0,
            p99_ms: num(summary, &["latency_us", "p99"]) / 1000.0,
            failed: num(summary, &["failed"]) as u64,
            points: num(summary, &["points_per_query"]),
        }
    }
}

/// A target of issue 15: the value must be at least (`higher_is_better`) or at most
/// the limit.
#[derive(Debug, Clone, Copy)]
struct Target {
    /// The limit.
    limit: f64,
    /// Whether the value must be at least the limit (else at most).
    higher_is_better: bool,
}

impl Target {
    /// `PASS` or `MISS`.
    fn verdict(self, value: f64) -> &'static str {
        let pass = if self.higher_is_better {
            value >= self.limit
        } else {
            value <= self.limit && value.is_finite()
        };
        if pass { "PASS" } else { "MISS" }
    }

    /// `≥ 500,000` / `≤ 5`.
    fn describe(self, unit: &str) -> String {
        format!(
            "{} {} {unit}",
            if self.higher_is_better { "≥" } else { "≤" },
            human(self.limit)
        )
    }
}

/// One row of the result: metrics-file workload name, label, value, unit, target.
struct Row {
    /// The workload name in `platform.json`.
    workload: &'static str,
    /// What the table calls it.
    label: String,
    /// The value.
    value: f64,
    /// Its unit.
    unit: &'static str,
    /// The target, if the issue sets one.
    target: Option<Target>,
}

/// The result rows of a run.
fn rows(figures: &Figures, plan: &Plan) -> Vec<Row> {
    let at_least = |limit| {
        Some(Target {
            limit,
            higher_is_better: true,
        })
    };
    let at_most = |limit| {
        Some(Target {
            limit,
            higher_is_better: false,
        })
    };
    let during = format!(
        "{} QPS while ingesting {} events/s",
        plan.qps,
        human(plan.steady_rate as f64)
    );
    let mut out = Vec::new();
    if figures.ran_http {
        out.extend(http_rows(figures, plan, at_least, at_most, &during));
    }
    if let Some(ws) = &figures.ws {
        let n = human(plan.ws_clients as f64);
        out.extend([
            Row {
                workload: "ws_clients_connected",
                label: format!("WebSocket clients connected (of {n})"),
                value: ws.connected as f64,
                unit: "clients",
                target: at_least(plan.ws_clients as f64),
            },
            Row {
                workload: "ws_rss_added_10k_clients",
                label: format!("server RSS added by {n} WebSocket clients"),
                value: ws.rss_added_mb(),
                unit: "MB",
                target: at_most(64.0),
            },
            Row {
                workload: "ws_rss_per_client",
                label: "server RSS per WebSocket client".to_owned(),
                value: if ws.connected > 0 {
                    ws.rss_added_mb() * 1e3 / ws.connected as f64
                } else {
                    f64::NAN
                },
                unit: "KB",
                target: None,
            },
            Row {
                workload: "ws_push_lag_p50_10k_clients",
                label: format!("push lag p50, {n} clients at 1 update/s"),
                value: ws.lag_p50_ms,
                unit: "ms",
                target: None,
            },
            Row {
                workload: "ws_push_lag_p99_10k_clients",
                label: format!("push lag p99, {n} clients at 1 update/s"),
                value: ws.lag_p99_ms,
                unit: "ms",
                target: at_most(100.0),
            },
        ]);
    }
    if let Some(ws) = &figures.ws_ingest {
        let n = human(plan.ws_ingest_clients as f64);
        let rate = human(plan.steady_rate as f64);
        out.extend([
            Row {
                workload: "ws_rss_total_1k_clients_100k_eps",
                label: format!("server peak RSS, {n} WebSocket clients at {rate} events/s"),
                value: ws.rss_peak_mb,
                unit: "MB",
                target: at_most(100.0),
            },
            Row {
                workload: "ws_push_lag_p99_1k_clients_100k_eps",
                label: format!("push lag p99, {n} clients at {rate} events/s"),
                value: ws.lag_p99_ms,
                unit: "ms",
                target: None,
            },
        ]);
    }
    out
}

/// The rows of the HTTP phases.
fn http_rows(
    figures: &Figures,
    plan: &Plan,
    at_least: impl Fn(f64) -> Option<Target>,
    at_most: impl Fn(f64) -> Option<Target>,
    during: &str,
) -> Vec<Row> {
    vec![
        Row {
            workload: "ingest_max",
            label: "max ingest (accepted events/s)".to_owned(),
            value: figures.max_rate,
            unit: "events/s",
            target: None,
        },
        Row {
            workload: "ingest_server_cores",
            label: "server cores used at max ingest".to_owned(),
            value: figures.server_cores,
            unit: "cores",
            target: None,
        },
        Row {
            workload: "ingest_per_server_core",
            label: "ingest per server core".to_owned(),
            value: figures.per_core,
            unit: "events/s/core",
            target: at_least(500_000.0),
        },
        Row {
            workload: "ack_p50_at_half_max",
            label: format!("ack p50 at {} events/s", human(figures.half_rate)),
            value: figures.ack_p50_ms,
            unit: "ms",
            target: None,
        },
        Row {
            workload: "ack_p99_at_half_max",
            label: format!("ack p99 at {} events/s", human(figures.half_rate)),
            value: figures.ack_p99_ms,
            unit: "ms",
            target: at_most(5.0),
        },
        Row {
            workload: "query_p50_at_100qps_ingesting",
            label: format!("query p50 (closed windows), {during}"),
            value: figures.query.p50_ms,
            unit: "ms",
            target: None,
        },
        Row {
            workload: "query_p99_at_100qps_ingesting",
            label: format!("query p99 (closed windows), {during}"),
            value: figures.query.p99_ms,
            unit: "ms",
            target: at_most(1.0),
        },
        Row {
            workload: "query_open_p50_at_100qps_ingesting",
            label: format!("query p50 (open=true), {during}"),
            value: figures.query_open.p50_ms,
            unit: "ms",
            target: None,
        },
        Row {
            workload: "query_open_p99_at_100qps_ingesting",
            label: format!("query p99 (open=true), {during}"),
            value: figures.query_open.p99_ms,
            unit: "ms",
            target: at_most(1.0),
        },
        Row {
            workload: "rss_peak_100k_eps_10k_series",
            label: format!(
                "server peak RSS at {} events/s over {} series",
                human(plan.steady_rate as f64),
                human(plan.memory_series as f64)
            ),
            value: figures.rss_peak_mb,
            unit: "MB",
            target: at_most(100.0),
        },
        Row {
            workload: "rss_growth_100k_eps_10k_series",
            label: format!(
                "server RSS growth, 2nd half of {} s at {} events/s",
                plan.memory_secs,
                human(plan.steady_rate as f64)
            ),
            value: figures.rss_growth_mb_per_s,
            unit: "MB/s",
            target: None,
        },
    ]
}

/// A number for people: `1,234,567`, or `1.23` / `0.456` below 100.
fn human(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".to_owned();
    }
    if value.abs() >= 100.0 {
        let digits = format!("{}", value.round() as i64);
        let (sign, digits) = match digits.strip_prefix('-') {
            Some(rest) => ("-", rest.to_owned()),
            None => ("", digits),
        };
        let mut out = String::from(sign);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// The result table: measure, value, target, PASS/MISS.
fn render_table(rows: &[Row]) -> String {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|row| {
            [
                row.label.clone(),
                format!("{} {}", human(row.value), row.unit),
                row.target
                    .map_or_else(|| "—".to_owned(), |t| t.describe(row.unit)),
                row.target
                    .map_or_else(String::new, |t| t.verdict(row.value).to_owned()),
            ]
        })
        .collect();
    let header = ["measure", "value", "target", "result"].map(str::to_owned);
    let width = |i: usize| {
        cells
            .iter()
            .chain(std::iter::once(&header))
            .map(|c| c[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2), width(3)];
    let line = |c: &[String; 4]| {
        let pad = |s: &str, w: usize| " ".repeat(w.saturating_sub(s.chars().count()));
        format!(
            "{}{}  {}{}  {}{}  {}",
            c[0],
            pad(&c[0], widths[0]),
            pad(&c[1], widths[1]),
            c[1],
            c[2],
            pad(&c[2], widths[2]),
            c[3]
        )
        .trim_end()
        .to_owned()
    };
    let mut out = line(&header);
    out.push('\n');
    for c in &cells {
        out.push_str(&line(c));
        out.push('\n');
    }
    out
}

/// The notes under the table: how the figures were taken, and the side figures.
fn render_notes(figures: &Figures) -> String {
    let mut notes = Vec::new();
    if figures.ran_http {
        notes.push(http_notes(figures));
    }
    if let Some(ws) = &figures.ws {
        notes.push(format!(
            "WebSocket phase: server VmRSS {:.1} MB before the clients connected, at most \
             {:.1} MB while connected (peak VmHWM {:.1} MB); {:.0} updates/s received in all; \
             push lag = client receive time - the update's sent_at (stamped when the hub \
             publishes the round, before the fan-out), ms resolution",
            ws.rss_before_mb, ws.rss_sampled_mb, ws.rss_peak_mb, ws.updates_per_s
        ));
    }
    if let Some(ws) = &figures.ws_ingest {
        notes.push(format!(
            "WebSocket phase while ingesting: {} clients connected, push lag p50 {:.1} ms, \
             largest VmRSS sampled {:.1} MB",
            ws.connected, ws.lag_p50_ms, ws.rss_sampled_mb
        ));
    }
    notes.join("\n")
}

/// The notes of the HTTP phases.
fn http_notes(figures: &Figures) -> String {
    format!(
        "notes: server cores used = server CPU seconds / wall seconds of the client's run; \
         ingest per core = accepted events / server CPU seconds (counted until the server \
         goes quiet after the last 202); the ack-latency phase reached {} events/s; query \
         answers held {:.1} (closed windows) and {:.1} (open=true) points (group x window) \
         on average, {} queries failed; the largest VmRSS sampled in the memory phase was \
         {:.1} MB",
        human(figures.half_rate_reached),
        figures.query.points,
        figures.query_open.points,
        figures.query.failed + figures.query_open.failed,
        figures.rss_sampled_mb
    )
}

/// `platform.json` in the format of `benches/common/mod.rs`'s `write_metrics`: our
/// figures as implementation `weft`, each target as implementation `target`. With
/// `keep` (the file as it was), the items of workloads this run did not measure stay.
fn metrics_json(rows: &[Row], keep: Option<&str>) -> String {
    let mut items: Vec<Value> = keep
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|item| {
            !rows
                .iter()
                .any(|r| item["workload"].as_str() == Some(r.workload))
        })
        .collect();
    for row in rows {
        if !row.value.is_finite() {
            continue;
        }
        items.push(serde_json::json!({
            "workload": row.workload,
            "implementation": "weft",
            "value": (row.value * 1000.0).round() / 1000.0,
            "unit": row.unit,
        }));
        if let Some(target) = row.target {
            items.push(serde_json::json!({
                "workload": row.workload,
                "implementation": "target",
                "value": target.limit,
                "unit": row.unit,
            }));
        }
    }
    format!(
        "{}\n",
        serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".to_owned())
    )
}

/// The URL in a server line `listening on http://127.0.0.1:PORT`.
fn parse_listening(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("listening on ")?;
    let url = rest.split_whitespace().next()?;
    url.starts_with("http://")
        .then(|| url.trim_end_matches('/').to_owned())
}

/// utime + stime (clock ticks) from a `/proc/<pid>/stat` text: fields 14 and 15, counted
/// after the parenthesised command name (which may hold spaces).
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): field N is at index N - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` field (`VmRSS`, `VmHWM`) of a `/proc/<pid>/status` text.
fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The server's CPU time so far, seconds.
fn cpu_seconds(pid: u32, ticks_per_sec: f64) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let ticks = parse_stat_cpu_ticks(&stat).ok_or_else(|| format!("cannot parse {path}"))?;
    Ok(ticks as f64 / ticks_per_sec)
}

/// The least-squares slope of RSS samples `(seconds, kB)` over the second half of the
/// run, in MB/s: about 0 once memory has levelled off, above 0 while it still grows.
fn growth_mb_per_s(samples: &[(f64, u64)]) -> f64 {
    let Some(&(end, _)) = samples.last() else {
        return 0.0;
    };
    let half: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(t, _)| *t >= end / 2.0)
        .map(|&(t, kb)| (t, kb as f64 * 1024.0 / 1e6))
        .collect();
    let n = half.len() as f64;
    if half.len() < 2 {
        return 0.0;
    }
    let (mean_t, mean_m) = (
        half.iter().map(|p| p.0).sum::<f64>() / n,
        half.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let var: f64 = half.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    if var == 0.0 {
        return 0.0;
    }
    half.iter()
        .map(|p| (p.0 - mean_t) * (p.1 - mean_m))
        .sum::<f64>()
        / var
}

/// The server's CPU time once it has gone quiet: sampled every 250 ms until an interval
/// adds under 5% of a core (at most 10 s).
fn settled_cpu_seconds(pid: u32, ticks_per_sec: f64) -> Result<f64, String> {
    let interval = Duration::from_millis(250);
    let mut last = cpu_seconds(pid, ticks_per_sec)?;
    for _ in 0..40 {
        std::thread::sleep(interval);
        let now = cpu_seconds(pid, ticks_per_sec)?;
        let busy = now - last;
        last = now;
        if busy < 0.05 * interval.as_secs_f64() {
            break;
        }
    }
    Ok(last)
}

/// A `kB` field of the server's `/proc/<pid>/status`.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kb(&status, field)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 if that fails, as on every Linux).
fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// A random API key (32 hex digits from std's randomly seeded hasher).
fn random_key() -> String {
    let mut key = String::new();
    for i in 0..2u64 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(i);
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let _ = write!(key, "{:016x}", hasher.finish());
    }
    key
}

/// A fresh directory for the run's data and logs, removed on drop.
struct RunDir(PathBuf);

impl RunDir {
    /// Creates `<tmp>/weft-loadtest-<pid>-<nanos>`.
    fn create() -> Result<RunDir, String> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("weft-loadtest-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(RunDir(dir))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (and reaped) when dropped, so no exit path leaves it running.
struct Guard(Option<Child>);

impl Guard {
    /// The child's pid.
    fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// Waits for the child and returns its stdout and whether it exited successfully.
    fn wait_output(mut self) -> Result<(String, bool), String> {
        let child = self.0.take().ok_or("the child is gone")?;
        let output = child
            .wait_with_output()
            .map_err(|e| format!("waiting for the client: {e}"))?;
        Ok((
            String::from_utf8_lossy(&output.stdout).into_owned(),
            output.status.success(),
        ))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The running server.
struct Server {
    /// The process, killed on drop.
    process: Guard,
    /// Its base URL.
    url: String,
    /// Its stderr log, for error messages.
    stderr_log: PathBuf,
}

/// A fresh server on its own data directory and a client pointed at it. Fields drop in
/// order: the server is killed before its directory is removed.
struct Run {
    server: Server,
    client: Client,
    _dir: RunDir,
}

impl Run {
    /// Starts `platform` on a new directory (see [`Server::start`]) with the client
    /// binary from `examples`.
    fn start(platform: &Path, examples: &Path, key: &str) -> Result<Run, String> {
        let dir = RunDir::create()?;
        let server = Server::start(platform, &dir.0, key)?;
        let client = Client {
            binary: examples.join("client"),
            url: server.url.clone(),
            key: key.to_owned(),
        };
        Ok(Run {
            server,
            client,
            _dir: dir,
        })
    }
}

impl Server {
    /// Starts `platform` on an ephemeral port with data in `dir/data`, waits for its
    /// `listening on` line and for `/readyz` to answer 200.
    fn start(binary: &Path, dir: &Path, key: &str) -> Result<Server, String> {
        let data = dir.join("data");
        let stderr_log = dir.join("server-stderr.log");
        let stdout_log = dir.join("server-stdout.log");
        let stderr = std::fs::File::create(&stderr_log)
            .map_err(|e| format!("cannot create {}: {e}", stderr_log.display()))?;
        let mut command = Command::new(binary);
        command
            .args(["--no-demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(["--tenant", &format!("{TENANT}={key}"), "--ack", "append"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        println!(
            "[xtask] $ {} (tenant key hidden)",
            crate::display_command(&command).replace(key, "<KEY>")
        );
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take();
        let mut process = Guard(Some(child));
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = stdout {
            std::thread::spawn(move || {
                // Drains the server's stdout for its whole life (a full pipe would block
                // it), copying it to a log and handing the address line over.
                let mut log = std::fs::File::create(stdout_log).ok();
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(log) = &mut log {
                        let _ = writeln!(log, "{line}");
                    }
                    if let Some(url) = parse_listening(&line) {
                        let _ = tx.send(url);
                    }
                }
            });
        }
        let started = Instant::now();
        let url = loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(url) => break url,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the server exited without printing `listening on`{}",
                        log_tail(&stderr_log)
                    ));
                }
            }
            if let Some(Ok(Some(status))) = process.0.as_mut().map(Child::try_wait) {
                return Err(format!(
                    "the server exited with {status} before listening{}",
                    log_tail(&stderr_log)
                ));
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                return Err(format!(
                    "the server printed no `listening on` line within {STARTUP_TIMEOUT:?}{}",
                    log_tail(&stderr_log)
                ));
            }
        };
        let server = Server {
            process,
            url,
            stderr_log,
        };
        while http_status(&server.url, "/readyz") != Some(200) {
            if started.elapsed() > STARTUP_TIMEOUT {
                return Err(format!(
                    "{} never answered 200 on /readyz{}",
                    server.url,
                    log_tail(&server.stderr_log)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        println!(
            "[xtask] server ready at {} (pid {})",
            server.url,
            server.pid()
        );
        Ok(server)
    }

    /// The server's pid.
    fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// The last lines of a log file, as a suffix for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    format!("; the server's stderr ends with:\n{tail}")
}

/// The status code of `GET path` on `url` (`http://host:port`), over a plain TCP
/// connection; `None` if it cannot be had.
fn http_status(url: &str, path: &str) -> Option<u16> {
    let authority = url.strip_prefix("http://")?.split('/').next()?;
    let mut stream = TcpStream::connect(authority).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    let text = std::str::from_utf8(&head[..n]).ok()?;
    text.strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?
        .get(..3)?
        .parse()
        .ok()
}

/// The client, ready to run against the server.
struct Client {
    /// The client binary.
    binary: PathBuf,
    /// The server's URL.
    url: String,
    /// The tenant's key.
    key: String,
}

impl Client {
    /// A client command with `args` and `--json`, URL and key in the environment.
    fn command(&self, args: &[String]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .arg("--json")
            .env("WEFT_URL", &self.url)
            .env("WEFT_TOKEN", &self.key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        command
    }

    /// Starts the client in the background.
    fn spawn(&self, args: &[String]) -> Result<Guard, String> {
        let mut command = self.command(args);
        println!("[xtask] $ client {}", args.join(" "));
        command
            .spawn()
            .map(|child| Guard(Some(child)))
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))
    }

    /// Runs the client to the end and returns its JSON summary.
    fn run(&self, args: &[String], warnings: &mut Vec<String>) -> Result<Value, String> {
        let guard = self.spawn(args)?;
        finish(guard, args, warnings)
    }
}

/// Waits for a client run and reads its JSON summary (the last line of its stdout).
/// A run that exits non-zero but printed a summary adds a warning (some events or
/// queries failed) and its figures still count.
fn finish(guard: Guard, args: &[String], warnings: &mut Vec<String>) -> Result<Value, String> {
    let (stdout, success) = guard.wait_output()?;
    let summary = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|line| serde_json::from_str::<Value>(line).ok())
        .ok_or_else(|| {
            format!(
                "`client {}` printed no JSON summary{}",
                args.join(" "),
                if success { "" } else { " and failed" }
            )
        })?;
    if !success {
        let errors = summary["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        warnings.push(format!(
            "`client {}` did not fully succeed: {}",
            args.first().map_or("", String::as_str),
            errors
        ));
    }
    Ok(summary)
}

/// A field of a summary as f64 (0 if missing).
fn num(summary: &Value, path: &[&str]) -> f64 {
    let mut value = summary;
    for key in path {
        value = &value[*key];
    }
    value.as_f64().unwrap_or(0.0)
}

/// The arguments of a `send-events` run.
fn send_args(count: u64, rate: f64, plan: &Plan, series: u64) -> Vec<String> {
    [
        "send-events".to_owned(),
        "--count".to_owned(),
        count.to_string(),
        "--rate".to_owned(),
        format!("{}", rate.round()),
        "--batch".to_owned(),
        plan.batch.to_string(),
        "--concurrency".to_owned(),
        plan.concurrency.to_string(),
        "--series".to_owned(),
        series.to_string(),
        "--metric".to_owned(),
        METRIC.to_owned(),
    ]
    .to_vec()
}

/// Runs the task.
pub(crate) fn run(root: &Path, options: &Options) -> Result<(), String> {
    if !Path::new("/proc/self/stat").exists() {
        return Err("the load test reads /proc: it runs on Linux only".to_owned());
    }
    let plan = Plan::new(options);
    let mut build = crate::cargo(root);
    build.args([
        "build",
        "--release",
        "--example",
        "platform",
        "--example",
        "client",
    ]);
    crate::test::run_command(&mut build)?;
    let examples = crate::target_dir(root).join("release").join("examples");
    let platform = examples.join("platform");
    let key = random_key();
    let ticks = clock_ticks_per_sec();
    let mut figures = Figures {
        ran_http: options.http,
        ..Figures::default()
    };
    if options.http {
        http_phases(&platform, &examples, &key, ticks, &plan, &mut figures)?;
    }
    if options.ws {
        ws_phases(&platform, &examples, &key, &plan, &mut figures)?;
    }
    report(root, options, &plan, &figures)
}

/// Phases 1-4.
fn http_phases(
    platform: &Path,
    examples: &Path,
    key: &str,
    ticks: f64,
    plan: &Plan,
    figures: &mut Figures,
) -> Result<(), String> {
    // Phases 1-3 on one server.
    {
        let Run { server, client, .. } = &Run::start(platform, examples, key)?;

        println!("[xtask] phase 1/4: max ingest ({} events)", plan.max_events);
        let cpu_before = cpu_seconds(server.pid(), ticks)?;
        let args = send_args(plan.max_events, 0.0, plan, plan.series);
        let summary = client.run(&args, &mut figures.warnings)?;
        // A 202 comes before the shards have aggregated the batch: count the server's CPU
        // until that work is done (it goes quiet), not just until the last answer.
        let cpu = settled_cpu_seconds(server.pid(), ticks)? - cpu_before;
        let elapsed = num(&summary, &["elapsed_s"]);
        figures.max_rate = num(&summary, &["events_per_s"]);
        figures.server_cores = if elapsed > 0.0 { cpu / elapsed } else { 0.0 };
        figures.per_core = if cpu > 0.0 {
            num(&summary, &["accepted"]) / cpu
        } else {
            0.0
        };

        figures.half_rate = (figures.max_rate / 2.0).round().max(1000.0);
        let count =
            ((figures.half_rate * plan.latency_secs as f64) as u64).min(plan.latency_max_events);
        println!(
            "[xtask] phase 2/4: ack latency at {} events/s ({count} events)",
            human(figures.half_rate)
        );
        let args = send_args(count, figures.half_rate, plan, plan.series);
        let summary = client.run(&args, &mut figures.warnings)?;
        figures.half_rate_reached = num(&summary, &["events_per_s"]);
        figures.ack_p50_ms = num(&summary, &["latency_us", "p50"]) / 1000.0;
        figures.ack_p99_ms = num(&summary, &["latency_us", "p99"]) / 1000.0;

        println!(
            "[xtask] phase 3/4: query latency at {} QPS while ingesting {} events/s",
            plan.qps,
            human(plan.steady_rate as f64)
        );
        // Ingest for a second more than the two query runs, on both sides of them.
        let count = plan.steady_rate * (2 * plan.query_secs + 2);
        let ingest_args = send_args(count, plan.steady_rate as f64, plan, plan.series);
        let ingest = client.spawn(&ingest_args)?;
        std::thread::sleep(Duration::from_secs(1));
        // Open windows first: by the closed-window run the watermark has closed more of
        // the windows the earlier phases filled.
        for open in [true, false] {
            let mut query_args: Vec<String> = [
                "query-load",
                "--qps",
                &plan.qps.to_string(),
                "--duration",
                &format!("{}s", plan.query_secs),
                "--metric",
                METRIC,
                "--agg",
                "count,mean,p99",
                "--from",
                "-5m",
            ]
            .map(str::to_owned)
            .to_vec();
            if open {
                query_args.push("--open".to_owned());
            }
            let summary = client.run(&query_args, &mut figures.warnings)?;
            let measured = QueryFigures::from_summary(&summary);
            if open {
                figures.query_open = measured;
            } else {
                figures.query = measured;
            }
        }
        finish(ingest, &ingest_args, &mut figures.warnings)?;
    }

    // Phase 4 on a fresh server, so its peak RSS is this phase's.
    {
        let Run { server, client, .. } = &Run::start(platform, examples, key)?;
        println!(
            "[xtask] phase 4/4: server memory at {} events/s over {} series",
            human(plan.steady_rate as f64),
            human(plan.memory_series as f64)
        );
        let count = plan.steady_rate * plan.memory_secs;
        let args = send_args(count, plan.steady_rate as f64, plan, plan.memory_series);
        let mut ingest = client.spawn(&args)?;
        let started = Instant::now();
        let mut samples = Vec::new();
        while ingest
            .0
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
        {
            if let Some(kb) = status_kb(server.pid(), "VmRSS") {
                samples.push((started.elapsed().as_secs_f64(), kb));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let sampled_kb = samples.iter().map(|s| s.1).max().unwrap_or(0);
        figures.rss_growth_mb_per_s = growth_mb_per_s(&samples);
        let peak_kb = status_kb(server.pid(), "VmHWM").unwrap_or(sampled_kb);
        finish(ingest, &args, &mut figures.warnings)?;
        figures.rss_sampled_mb = sampled_kb as f64 * 1024.0 / 1e6;
        figures.rss_peak_mb = peak_kb as f64 * 1024.0 / 1e6;
    }
    Ok(())
}

/// The arguments of a `ws-soak` run.
fn soak_args(clients: u64, secs: u64) -> Vec<String> {
    [
        "ws-soak",
        "--connections",
        &clients.to_string(),
        "--duration",
        &format!("{secs}s"),
        "--metric",
        METRIC,
        "--agg",
        "count,p99",
        "--interval",
        "1s",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs `ws-soak` to the end, sampling the server's VmRSS: the soak's figures.
fn soak(
    client: &Client,
    server: &Server,
    args: &[String],
    warnings: &mut Vec<String>,
) -> Result<WsFigures, String> {
    let mb = |kb: u64| kb as f64 * 1024.0 / 1e6;
    let before = status_kb(server.pid(), "VmRSS").unwrap_or(0);
    let mut run = client.spawn(args)?;
    let mut sampled = before;
    while run
        .0
        .as_mut()
        .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    {
        if let Some(kb) = status_kb(server.pid(), "VmRSS") {
            sampled = sampled.max(kb);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let summary = finish(run, args, warnings)?;
    Ok(WsFigures {
        connected: num(&summary, &["connected"]) as u64,
        rss_before_mb: mb(before),
        rss_sampled_mb: mb(sampled),
        rss_peak_mb: mb(status_kb(server.pid(), "VmHWM").unwrap_or(sampled)),
        lag_p50_ms: num(&summary, &["lag_us", "p50"]) / 1000.0,
        lag_p99_ms: num(&summary, &["lag_us", "p99"]) / 1000.0,
        updates_per_s: num(&summary, &["updates_per_s"]),
    })
}

/// Phases 5-6, each on a fresh server.
fn ws_phases(
    platform: &Path,
    examples: &Path,
    key: &str,
    plan: &Plan,
    figures: &mut Figures,
) -> Result<(), String> {
    {
        let Run { server, client, .. } = &Run::start(platform, examples, key)?;
        println!(
            "[xtask] phase 5/6: {} WebSocket clients at 1 update/s",
            human(plan.ws_clients as f64)
        );
        // Some data, so each update carries a result; then let the server settle.
        let args = send_args(100_000, 0.0, plan, plan.series);
        client.run(&args, &mut figures.warnings)?;
        let _ = settled_cpu_seconds(server.pid(), clock_ticks_per_sec())?;
        let args = soak_args(plan.ws_clients, plan.ws_secs);
        figures.ws = Some(soak(client, server, &args, &mut figures.warnings)?);
    }
    {
        let Run { server, client, .. } = &Run::start(platform, examples, key)?;
        println!(
            "[xtask] phase 6/6: {} WebSocket clients while ingesting {} events/s",
            human(plan.ws_ingest_clients as f64),
            human(plan.steady_rate as f64)
        );
        // Ingest for the whole soak, with a few seconds to spare for connecting.
        let count = plan.steady_rate * (plan.ws_secs + 5);
        let ingest_args = send_args(count, plan.steady_rate as f64, plan, plan.series);
        let ingest = client.spawn(&ingest_args)?;
        std::thread::sleep(Duration::from_secs(1));
        let args = soak_args(plan.ws_ingest_clients, plan.ws_secs);
        figures.ws_ingest = Some(soak(client, server, &args, &mut figures.warnings)?);
        finish(ingest, &ingest_args, &mut figures.warnings)?;
        if let Some(ws) = &mut figures.ws_ingest {
            // The peak over the whole ingest, not only while the clients were there.
            if let Some(kb) = status_kb(server.pid(), "VmHWM") {
                ws.rss_peak_mb = kb as f64 * 1024.0 / 1e6;
            }
        }
    }
    Ok(())
}

/// Prints the result table and writes `platform.json` (not for `--quick`).
fn report(root: &Path, options: &Options, plan: &Plan, figures: &Figures) -> Result<(), String> {
    let rows = rows(figures, plan);
    println!();
    let quick = if options.quick { " --quick" } else { "" };
    if options.http {
        println!(
            "[xtask] loadtest{quick}: {} events max-ingest phase, batches of {}, {} connections",
            human(plan.max_events as f64),
            plan.batch,
            plan.concurrency
        );
    }
    if options.ws {
        println!(
            "[xtask] loadtest{quick}: {} and {} WebSocket clients, {} s each",
            human(plan.ws_clients as f64),
            human(plan.ws_ingest_clients as f64),
            plan.ws_secs
        );
    }
    print!("{}", render_table(&rows));
    println!("{}", render_notes(figures));
    for warning in &figures.warnings {
        println!("[xtask] warning: {warning}");
    }
    if options.quick {
        println!("[xtask] --quick: figures not written (a smoke run)");
        return Ok(());
    }
    // Where `bench-report` reads extra figures from (it honours `$CRITERION_HOME`).
    let dir = crate::bench_report::criterion_dir(root).join("weft-metrics");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("platform.json");
    let keep = if options.http && options.ws {
        None
    } else {
        std::fs::read_to_string(&path).ok()
    };
    std::fs::write(&path, metrics_json(&rows, keep.as_deref()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!(
        "[xtask] wrote {} (`cargo xtask bench-report` puts it into BENCHMARKS.md)",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strings;

    #[test]
    fn options_parse() {
        assert_eq!(
            parse_options(&[]).unwrap(),
            Options {
                quick: false,
                events: None,
                http: true,
                ws: true,
            }
        );
        let options = parse_options(&strings(&["--quick", "--events", "2_000_000"])).unwrap();
        assert!(options.quick);
        assert_eq!(options.events, Some(2_000_000));
        assert_eq!(
            parse_options(&strings(&["--events=5000"])).unwrap().events,
            Some(5000)
        );
        for bad in [
            &["--events"][..],
            &["--events", "x"],
            &["--events", "10"],
            &["--fast"],
        ] {
            assert!(parse_options(&strings(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(Plan::new(&options).max_events, 2_000_000);
        assert!(
            Plan::new(&Options {
                quick: true,
                events: None,
                http: true,
                ws: true,
            })
            .max_events
                < 1_000_000
        );
    }

    #[test]
    fn server_lines_and_proc_files_parse() {
        assert_eq!(
            parse_listening("listening on http://127.0.0.1:41234").as_deref(),
            Some("http://127.0.0.1:41234")
        );
        assert_eq!(
            parse_listening(
                "2026-01-01T00:00:00Z INFO platform: listening on http://127.0.0.1:9/ (tls off)"
            )
            .as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(parse_listening("demo tenant key: abc"), None);
        let stat = "4242 (plat form) S 1 4242 4242 0 -1 4194304 500 0 0 0 1234 567 0 0 20 0 9 0 100 200000 3000";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
        let status = "Name:\tplatform\nVmHWM:\t   81234 kB\nVmRSS:\t   70000 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(70_000));
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(81_234));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
        // Our own process parses.
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat_cpu_ticks(&own).is_some());
    }

    #[test]
    fn targets_judge_and_render() {
        let figures = Figures {
            max_rate: 900_000.0,
            server_cores: 1.5,
            per_core: 600_000.0,
            half_rate: 450_000.0,
            half_rate_reached: 449_000.0,
            ack_p50_ms: 0.8,
            ack_p99_ms: 6.25,
            query: QueryFigures {
                p50_ms: 0.3,
                p99_ms: 0.9,
                failed: 0,
                points: 30.0,
            },
            query_open: QueryFigures {
                p50_ms: 4.0,
                p99_ms: 8.0,
                failed: 1,
                points: 31.0,
            },
            rss_peak_mb: 80.5,
            rss_sampled_mb: 79.0,
            rss_growth_mb_per_s: 0.5,
            warnings: Vec::new(),
            ran_http: true,
            ws: Some(WsFigures {
                connected: 10_000,
                rss_before_mb: 20.0,
                rss_sampled_mb: 60.0,
                rss_peak_mb: 61.0,
                lag_p50_ms: 12.0,
                lag_p99_ms: 120.0,
                updates_per_s: 10_000.0,
            }),
            ws_ingest: Some(WsFigures {
                connected: 1_000,
                rss_peak_mb: 90.0,
                ..WsFigures::default()
            }),
        };
        let plan = Plan::new(&Options {
            quick: false,
            events: None,
            http: true,
            ws: true,
        });
        let rows = rows(&figures, &plan);
        let table = render_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("measure"), "{table}");
        let line = |label: &str| {
            *lines
                .iter()
                .find(|l| l.starts_with(label))
                .unwrap_or_else(|| panic!("no `{label}` in\n{table}"))
        };
        assert!(line("ingest per server core").contains("600,000 events/s/core"));
        assert!(line("ingest per server core").ends_with("≥ 500,000 events/s/core  PASS"));
        assert!(line("ack p99 at 450,000 events/s").contains("6.250 ms  ≤ 5.000 ms"));
        assert!(line("ack p99 at 450,000 events/s").ends_with("MISS"));
        assert!(
            line("query p99 (closed windows), 100 QPS while ingesting 100,000").ends_with("PASS")
        );
        assert!(line("query p99 (open=true)").ends_with("MISS"));
        assert!(line("server peak RSS").contains("80.5 MB"));
        assert!(line("max ingest").trim_end().ends_with("—"));
        let notes = render_notes(&figures);
        assert!(notes.contains("reached 449,000 events/s"), "{notes}");
        assert!(
            notes.contains("30.0 (closed windows) and 31.0 (open=true)"),
            "{notes}"
        );
        assert!(notes.contains("1 queries failed"), "{notes}");
        assert_eq!(human(1_234_567.4), "1,234,567");
        assert_eq!(human(12.345), "12.3");
        assert_eq!(human(0.4567), "0.457");
        assert_eq!(human(-1500.0), "-1,500");

        // The metrics file is what bench-report reads: ours and the targets.
        assert!(
            line("server RSS added by 10,000 WebSocket clients").contains("40.0 MB"),
            "{table}"
        );
        assert!(
            line("server RSS per WebSocket client").contains("4.000 KB"),
            "{table}"
        );
        assert!(
            line("push lag p99, 10,000 clients").ends_with("MISS"),
            "{table}"
        );
        assert!(
            line("WebSocket clients connected (of 10,000)").ends_with("PASS"),
            "{table}"
        );
        assert!(
            line("server peak RSS, 1,000 WebSocket clients").ends_with("PASS"),
            "{table}"
        );
        let json: Value = serde_json::from_str(&metrics_json(&rows, None)).unwrap();
        let items = json.as_array().unwrap();
        assert!(items.iter().all(|i| i["workload"].is_string()
            && i["implementation"].is_string()
            && i["value"].is_f64()
            && i["unit"].is_string()));
        let find = |workload: &str, implementation: &str| {
            items
                .iter()
                .find(|i| i["workload"] == workload && i["implementation"] == implementation)
                .map(|i| i["value"].as_f64().unwrap())
        };
        assert_eq!(find("ack_p99_at_half_max", "weft"), Some(6.25));
        assert_eq!(find("ack_p99_at_half_max", "target"), Some(5.0));
        assert_eq!(find("ingest_max", "target"), None);
        assert_eq!(find("ws_rss_added_10k_clients", "weft"), Some(40.0));

        // A run of the WebSocket phases only keeps the HTTP rows already written.
        let ws_only = Figures {
            ran_http: false,
            ..figures.clone()
        };
        let ws_rows = super::rows(&ws_only, &plan);
        assert!(ws_rows.iter().all(|r| r.workload.starts_with("ws_")));
        let old = metrics_json(&rows, None).replace("40.0", "99.0");
        let merged: Value = serde_json::from_str(&metrics_json(&ws_rows, Some(&old))).unwrap();
        let merged = merged.as_array().unwrap();
        assert_eq!(merged.len(), items.len());
        let value = |w: &str| {
            merged
                .iter()
                .find(|i| i["workload"] == w && i["implementation"] == "weft")
                .map(|i| i["value"].as_f64().unwrap())
        };
        assert_eq!(value("ws_rss_added_10k_clients"), Some(40.0));
        assert_eq!(value("ack_p99_at_half_max"), Some(6.25));
    }

    #[test]
    fn phases_parse() {
        let o = parse_options(&strings(&["--phases", "ws"])).unwrap();
        assert!(o.ws && !o.http);
        let o = parse_options(&strings(&["--phases=http,ws", "--quick"])).unwrap();
        assert!(o.ws && o.http && o.quick);
        for bad in [&["--phases"][..], &["--phases", "tcp"], &["--phases", ","]] {
            assert!(parse_options(&strings(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rss_growth_is_the_slope_of_the_second_half() {
        // Flat at first, then 1 MB (976.5625 kB) per second.
        let samples: Vec<(f64, u64)> = (0..=20)
            .map(|t| {
                let kb = if t < 10 {
                    50_000.0
                } else {
                    50_000.0 + (t - 10) as f64 * 976.5625
                };
                (t as f64, kb as u64)
            })
            .collect();
        assert!(
            (growth_mb_per_s(&samples) - 1.0).abs() < 0.01,
            "{}",
            growth_mb_per_s(&samples)
        );
        let flat: Vec<(f64, u64)> = (0..10).map(|t| (t as f64, 70_000)).collect();
        assert_eq!(growth_mb_per_s(&flat), 0.0);
        assert_eq!(growth_mb_per_s(&[]), 0.0);
        assert_eq!(growth_mb_per_s(&[(1.0, 5)]), 0.0);
    }

    #[test]
    fn guards_kill_their_child() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        drop(Guard(Some(child)));
        // Reaped: the pid no longer names our child.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(!stat.contains("(sleep)") || stat.contains(" Z "), "{stat}");
    }

    #[test]
    fn keys_are_random_hex() {
        let (a, b) = (random_key(), random_key());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
