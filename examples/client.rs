//! The Weft platform's command-line client and load generator.
//!
//! ```text
//! cargo run --release --example client -- send-events --count 1000000 --rate 200000
//! cargo run --release --example client -- query --metric load.latency_ms --agg count,p99 --step 1m
//! cargo run --release --example client -- tail --metric load.latency_ms --group-by series
//! cargo run --release --example client -- query-load --qps 100 --duration 10s --metric load.latency_ms
//! cargo run --release --example client -- ws-soak --connections 10000 --duration 30s
//! ```
//!
//! It speaks the platform's HTTP API (`POST /v1/events`, `GET /v1/query`, `GET /v1/tail`)
//! over plain HTTP/1.1 keep-alive connections. The server's URL comes from `--url` or
//! `WEFT_URL` (default `http://127.0.0.1:8080`), the tenant's key from `--token` or
//! `WEFT_TOKEN`.
//!
//! - `send-events` encodes every NDJSON batch before the clock starts, then sends them over
//!   `--concurrency` connections paced to `--rate` events/s in total (0: as fast as the
//!   server acknowledges), retries a batch answered 429/503 after the server's
//!   `Retry-After`, and prints the throughput, the accepted/rejected/429 counts and the
//!   ack-latency percentiles of the acknowledged requests (`--json`: one JSON object).
//! - `query` prints a `/v1/query` answer as an aligned table: one row per group and
//!   window, one column per aggregate, estimates as `value ±rel_error%`.
//! - `tail` follows `/v1/tail` (server-sent events) and prints each update as it comes,
//!   until Ctrl-C.
//! - `query-load` issues `/v1/query` at a steady rate and prints the latency percentiles
//!   (what `cargo xtask loadtest` uses for "query p99 at 100 QPS while ingesting").
//! - `ws-soak` opens N WebSocket clients on `GET /v1/live` (raising its own open-files
//!   limit), subscribes each to the same query (so the server shares one feed), and
//!   reports the connected/failed counts, the updates received, and the push lag
//!   percentiles (receive time minus the update's `sent_at`).
//!
//! Exit code 0 on success, 1 on failure (server unreachable, wrong token, an error
//! answer, events not accepted), 2 on a usage error.
//!
//! The pure parts (event encoding, pacing, response classification, percentiles and
//! summaries, table rendering, SSE parsing) are plain functions with unit tests at the
//! bottom; they run with `cargo test --workspace` (`test = true` on this example).

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Method, Request, Response, StatusCode, header};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long one request may take before the client gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest response body the client reads (a bigger one is an error, not an OOM).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How often one batch is retried after 429/503 answers before it counts as failed.
const MAX_RETRIES_PER_BATCH: u32 = 1000;

/// How many distinct error messages a load run keeps for its report.
const MAX_ERRORS_KEPT: usize = 5;

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

/// Client and load generator for the Weft platform (`cargo run --example platform`).
#[derive(Debug, Parser)]
#[command(name = "client", version)]
struct Cli {
    /// The server's base URL (plain http).
    #[arg(
        long,
        env = "WEFT_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// The tenant's API key, sent as `Authorization: Bearer <KEY>`.
    #[arg(long, env = "WEFT_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Send generated events (pre-encoded NDJSON batches) and report throughput and
    /// ack latency.
    SendEvents(SendArgs),
    /// Run one query and print the result as a table.
    Query(QueryArgs),
    /// Follow live window results (server-sent events) until Ctrl-C.
    Tail(TailArgs),
    /// Issue queries at a steady rate and report their latency percentiles.
    QueryLoad(QueryLoadArgs),
    /// Open many WebSocket clients on `/v1/live` and report push lag and failures.
    WsSoak(WsSoakArgs),
}

/// Options of `send-events`.
#[derive(Debug, Args)]
struct SendArgs {
    /// How many events to send.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Target rate in events/s over all connections (0: as fast as possible).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    rate: f64,
    /// Events per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: u64,
    /// Distinct series (values of the `series` dimension) the events are spread over.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    series: u64,
    /// The metric name of the events.
    #[arg(long, default_value = "load.latency_ms")]
    metric: String,
    /// Ask for the durable acknowledgement (`?wait=true`: 200 after the fsync).
    #[arg(long)]
    wait: bool,
    /// Print one JSON object instead of the progress bar and text summary.
    #[arg(long)]
    json: bool,
}

/// Query parameters shared by `query`, `tail` and `query-load`.
#[derive(Debug, Args)]
struct QueryParams {
    /// The metric to query.
    #[arg(long)]
    metric: String,
    /// Comma list of aggregates, e.g. `count,mean,p99,distinct,top5`
    /// (server default: count,sum,min,max,mean).
    #[arg(long)]
    agg: Option<String>,
    /// Group by this dimension (repeatable, or a comma list).
    #[arg(long = "group-by")]
    group_by: Vec<String>,
    /// Keep only events whose dimension KEY equals VALUE (`KEY:VALUE`, repeatable, AND).
    #[arg(long, value_parser = parse_filter)]
    filter: Vec<String>,
    /// Bucket width, e.g. `10s`, `1m`.
    #[arg(long)]
    step: Option<String>,
}

/// Options of `query`.
#[derive(Debug, Args)]
struct QueryArgs {
    #[command(flatten)]
    params: QueryParams,
    /// Start: ms since the epoch or relative (`-15m`); server default `to` - 1h.
    #[arg(long, allow_hyphen_values = true)]
    from: Option<String>,
    /// End: ms since the epoch or `now`; server default `now`.
    #[arg(long, allow_hyphen_values = true)]
    to: Option<String>,
    /// Also return still-open windows (partial results).
    #[arg(long)]
    open: bool,
    /// Print the server's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
}

/// Options of `tail`.
#[derive(Debug, Args)]
struct TailArgs {
    #[command(flatten)]
    params: QueryParams,
    /// How often the server sends an update, e.g. `1s`.
    #[arg(long)]
    interval: Option<String>,
    /// How far back each update looks, e.g. `5m`.
    #[arg(long)]
    window: Option<String>,
}

/// Options of `query-load`.
#[derive(Debug, Args)]
struct QueryLoadArgs {
    #[command(flatten)]
    params: QueryParams,
    /// Queries per second.
    #[arg(long, default_value_t = 100.0, value_parser = parse_positive_rate)]
    qps: f64,
    /// How long to keep querying, e.g. `10s`.
    #[arg(long, default_value = "10s")]
    duration: humantime::Duration,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=256))]
    concurrency: u64,
    /// Start of each query (see `query --from`).
    #[arg(long, allow_hyphen_values = true)]
    from: Option<String>,
    /// Also return still-open windows.
    #[arg(long)]
    open: bool,
    /// Print one JSON object instead of the text summary.
    #[arg(long)]
    json: bool,
}

/// Options of `ws-soak`.
#[derive(Debug, Args)]
struct WsSoakArgs {
    /// WebSocket clients to open.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=200_000))]
    connections: u64,
    /// Subscriptions per client (all to the same query).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    subscriptions: u64,
    /// How long to measure once every client is connected, e.g. `30s`.
    #[arg(long, default_value = "30s")]
    duration: humantime::Duration,
    /// The metric of the query.
    #[arg(long, default_value = "load.latency_ms")]
    metric: String,
    /// Comma list of aggregates.
    #[arg(long, default_value = "count,p99")]
    agg: String,
    /// Group by this dimension.
    #[arg(long = "group-by")]
    group_by: Option<String>,
    /// The partial-result period the clients ask for.
    #[arg(long, default_value = "1s")]
    interval: humantime::Duration,
    /// Connections opened at once while connecting.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    connect_concurrency: u64,
    /// Print one JSON object instead of the text summary.
    #[arg(long)]
    json: bool,
}

/// Parses a rate in events/s: a finite number ≥ 0.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a rate: give events per second, 0 for as fast as possible"
        )),
    }
}

/// Parses a rate that must be above zero.
fn parse_positive_rate(text: &str) -> Result<f64, String> {
    match parse_rate(text) {
        Ok(rate) if rate > 0.0 => Ok(rate),
        _ => Err(format!("`{text}` is not a rate above 0")),
    }
}

/// Checks a `KEY:VALUE` filter.
fn parse_filter(text: &str) -> Result<String, String> {
    match text.split_once(':') {
        Some((key, _)) if !key.is_empty() => Ok(text.to_owned()),
        _ => Err(format!(
            "`{text}` is not a filter: write KEY:VALUE, e.g. route:/a"
        )),
    }
}

impl QueryParams {
    /// The URL parameters these options stand for, in a stable order.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("metric", self.metric.clone())];
        if let Some(agg) = &self.agg {
            pairs.push(("agg", agg.clone()));
        }
        let groups: Vec<&str> = self
            .group_by
            .iter()
            .flat_map(|g| g.split(','))
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .collect();
        if !groups.is_empty() {
            pairs.push(("group_by", groups.join(",")));
        }
        for filter in &self.filter {
            pairs.push(("filter", filter.clone()));
        }
        if let Some(step) = &self.step {
            pairs.push(("step", step.clone()));
        }
        pairs
    }
}

/// Encodes URL query parameters (`application/x-www-form-urlencoded`).
fn query_string(pairs: &[(&str, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        serializer.append_pair(key, value);
    }
    serializer.finish()
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum ClientError {
    /// `--url` is not a plain `http://host[:port]` URL.
    #[error("bad --url `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    /// Nothing answers at the server's address.
    #[error(
        "cannot reach the server at {url}: {source} \
         (is `cargo run --release --example platform` running? see --url / WEFT_URL)"
    )]
    Unreachable { url: String, source: std::io::Error },
    /// 401: the key is wrong or missing.
    #[error("wrong or missing token (--token / WEFT_TOKEN)")]
    Unauthorized,
    /// Any other non-2xx answer.
    #[error("the server answered {status}: {message}")]
    Status { status: StatusCode, message: String },
    /// The HTTP exchange broke off.
    #[error("HTTP error talking to {url}: {message}")]
    Http { url: String, message: String },
    /// The answer is not what the API contract says.
    #[error("unexpected answer from the server: {0}")]
    BadResponse(String),
    /// The server took longer than the request timeout.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    /// A load run finished, but not every event or query succeeded.
    #[error("{0}")]
    Incomplete(String),
}

/// The message of an error answer: the `error` field of its JSON body, else the body
/// text (shortened), else the status's reason.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(message) = value.get("error").and_then(Value::as_str) {
            return message.to_owned();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        let short: String = text.chars().take(300).collect();
        if short.len() < text.len() {
            format!("{short}...")
        } else {
            short
        }
    }
}

/// Turns a non-2xx answer into the error the user sees.
fn status_error(status: StatusCode, body: &[u8]) -> ClientError {
    if status == StatusCode::UNAUTHORIZED {
        ClientError::Unauthorized
    } else {
        ClientError::Status {
            status,
            message: error_message(status, body),
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// Where the server is and how to authenticate to it.
#[derive(Debug, Clone)]
struct Endpoint {
    /// The URL as given, for messages.
    url: String,
    /// The `Host` header value (`host:port`).
    authority: String,
    /// The host to connect to (IPv6 without brackets).
    host: String,
    /// The port to connect to.
    port: u16,
    /// A path prefix from the URL (`""` or `/prefix`), put before `/v1/...`.
    base_path: String,
    /// The tenant's key.
    token: Option<String>,
}

impl Endpoint {
    /// Parses `http://host[:port][/prefix]`.
    fn parse(url: &str, token: Option<String>) -> Result<Endpoint, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: hyper::Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(bad("https is not supported; use http://")),
            _ => return Err(bad("write it as http://HOST:PORT")),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Endpoint {
            url: url.to_owned(),
            authority: authority.as_str().to_owned(),
            host,
            port: authority.port_u16().unwrap_or(80),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
        })
    }

    /// A request for `path_and_query` (starting with `/v1/...`), with `Host` and
    /// `Authorization` set.
    fn request(&self, method: Method, path_and_query: &str, body: Bytes) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base_path))
            .header(header::HOST, &self.authority);
        if let Some(token) = &self.token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if !body.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, "application/x-ndjson");
        }
        let mut request = Request::new(Full::new(body));
        let (parts, _) = builder
            .body(())
            .unwrap_or_else(|_| Request::new(()))
            .into_parts();
        *request.method_mut() = parts.method;
        *request.uri_mut() = parts.uri;
        *request.headers_mut() = parts.headers;
        request
    }

    /// Opens one keep-alive HTTP/1.1 connection.
    async fn connect(&self) -> Result<Conn, ClientError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.url.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| self.http_error(&e))?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it;
            // a broken connection shows up as an error on the next request.
            let _ = connection.await;
        });
        Ok(Conn { sender })
    }

    /// Wraps a hyper error.
    fn http_error(&self, error: &hyper::Error) -> ClientError {
        ClientError::Http {
            url: self.url.clone(),
            message: error.to_string(),
        }
    }

    /// Sends a request on `conn` and reads the whole answer, with the request timeout.
    async fn exchange(
        &self,
        conn: &mut Conn,
        request: Request<Full<Bytes>>,
    ) -> Result<Answer, ClientError> {
        let work = async {
            let response = conn.send(request).await.map_err(|e| self.http_error(&e))?;
            read_answer(response).await
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| ClientError::Timeout(REQUEST_TIMEOUT))?
    }

    /// One GET on a fresh connection; a non-2xx answer is an error.
    async fn get(&self, path_and_query: &str) -> Result<Bytes, ClientError> {
        let mut conn = self.connect().await?;
        let request = self.request(Method::GET, path_and_query, Bytes::new());
        let answer = self.exchange(&mut conn, request).await?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(status_error(answer.status, &answer.body))
        }
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    /// hyper's handle to send requests on it, one at a time.
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Sends one request once the connection is ready for it.
    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        self.sender.ready().await?;
        self.sender.send_request(request).await
    }
}

/// A whole answer: status, `Retry-After` header, body.
#[derive(Debug)]
struct Answer {
    /// The status code.
    status: StatusCode,
    /// The `Retry-After` header, if any and readable.
    retry_after: Option<String>,
    /// The body (at most [`MAX_RESPONSE_BYTES`]).
    body: Bytes,
}

/// Reads a response's body (bounded) into an [`Answer`].
async fn read_answer(response: Response<Incoming>) -> Result<Answer, ClientError> {
    let (parts, body) = response.into_parts();
    let retry_after = parts
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| ClientError::BadResponse(format!("reading the body: {e}")))?
        .to_bytes();
    Ok(Answer {
        status: parts.status,
        retry_after,
        body,
    })
}

// ---------------------------------------------------------------------------
// Event generation and pacing (pure)
// ---------------------------------------------------------------------------

/// What `send-events` generates.
#[derive(Debug, Clone)]
struct EventSpec {
    /// The metric name.
    metric: String,
    /// How many events.
    count: u64,
    /// Events per batch.
    batch: u64,
    /// Distinct values of the `series` dimension.
    series: u64,
    /// The target rate (0: as fast as possible), which spaces the timestamps.
    rate: f64,
    /// The first event's timestamp, ms since the epoch.
    start_ms: u64,
    /// Seed of the value generator (the same seed gives the same bodies).
    seed: u64,
}

/// One pre-encoded request body.
#[derive(Debug, Clone)]
struct Batch {
    /// NDJSON, one event per line.
    body: Bytes,
    /// How many events it holds.
    events: u64,
}

/// The rate the timestamps assume when `--rate 0` gives none: events as fast as a
/// server could take them, so the timestamps stay near now.
const TIMESTAMP_RATE_WHEN_UNPACED: f64 = 1_000_000.0;

/// The timestamp of event `index`: `start_ms` plus its due time at the target rate,
/// so timestamps advance with the send schedule and stay near the wall clock.
fn event_timestamp(spec: &EventSpec, index: u64) -> u64 {
    let rate = if spec.rate > 0.0 {
        spec.rate
    } else {
        TIMESTAMP_RATE_WHEN_UNPACED
    };
    spec.start_ms + (index as f64 * 1000.0 / rate) as u64
}

/// Appends event `index` as one NDJSON line. `metric_json` is the metric name already
/// JSON-encoded (quoted and escaped).
fn encode_event(out: &mut Vec<u8>, spec: &EventSpec, metric_json: &str, index: u64, value: f64) {
    use std::io::Write as _;
    let series = index % spec.series;
    // Writing into a Vec cannot fail.
    let _ = writeln!(
        out,
        r#"{{"metric":{metric_json},"timestamp":{},"value":{value:.2},"dims":{{"series":"s{series}"}}}}"#,
        event_timestamp(spec, index),
    );
}

/// Encodes every batch of `spec` up front, so the send loop only writes bytes. Values are
/// drawn from a long-tailed distribution (like request latencies) in 0..~1000.
fn encode_batches(spec: &EventSpec) -> Vec<Batch> {
    let metric_json = serde_json::to_string(&spec.metric).unwrap_or_else(|_| "\"m\"".to_owned());
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let batches = spec.count.div_ceil(spec.batch);
    let mut out = Vec::with_capacity(batches as usize);
    let mut index = 0;
    while index < spec.count {
        let events = spec.batch.min(spec.count - index);
        let mut body = Vec::with_capacity(events as usize * (90 + spec.metric.len()));
        for i in index..index + events {
            let u = rng.f64();
            let value = 1.0 + 999.0 * u * u * u;
            encode_event(&mut body, spec, &metric_json, i, value);
        }
        out.push(Batch {
            body: Bytes::from(body),
            events,
        });
        index += events;
    }
    out
}

/// When the batch whose first event is `events_before` is due, from the start of the
/// run, at `rate` events/s in total (0: at once).
fn due_offset(events_before: u64, rate: f64) -> Duration {
    if rate > 0.0 {
        Duration::from_secs_f64(events_before as f64 / rate)
    } else {
        Duration::ZERO
    }
}

// ---------------------------------------------------------------------------
// Answers to POST /v1/events (pure)
// ---------------------------------------------------------------------------

/// What an answer to one batch means for the sender.
#[derive(Debug, PartialEq)]
enum BatchOutcome {
    /// 200/202: the server took the batch; some events may have been rejected.
    Acked {
        /// Events accepted.
        accepted: u64,
        /// Events rejected by validation.
        rejected: u64,
        /// The first rejection, for the report.
        first_rejection: Option<String>,
    },
    /// 429 (`throttled`) or 503: nothing was ingested; send again after `after`.
    Retry {
        /// How long the server asks us to wait.
        after: Duration,
        /// 429 rather than 503.
        throttled: bool,
    },
    /// Another error answer: the batch's events count as failed.
    Failed(String),
    /// 401: no point in going on.
    Unauthorized,
}

/// How long the server asks us to wait before retrying: the body's `retry_after_ms`,
/// else the `Retry-After` header's seconds, clamped to 1 ms..60 s; `None` if it says
/// neither.
fn retry_hint(retry_after_header: Option<&str>, body: &[u8]) -> Option<Duration> {
    let from_body = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("retry_after_ms").and_then(Value::as_u64))
        .map(Duration::from_millis);
    let from_header = retry_after_header
        .and_then(|h| h.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    from_body
        .or(from_header)
        .map(|d| d.clamp(Duration::from_millis(1), Duration::from_secs(60)))
}

/// Classifies the answer to one batch of `events` events.
fn classify_events_answer(
    status: StatusCode,
    retry_after_header: Option<&str>,
    body: &[u8],
    events: u64,
) -> BatchOutcome {
    match status.as_u16() {
        200 | 202 => {
            let Ok(value) = serde_json::from_slice::<Value>(body) else {
                return BatchOutcome::Failed(format!(
                    "{status} with a body that is not JSON: {}",
                    error_message(status, body)
                ));
            };
            let Some(accepted) = value.get("accepted").and_then(Value::as_u64) else {
                return BatchOutcome::Failed(format!("{status} without an `accepted` count"));
            };
            let rejections = value
                .get("rejected")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let first_rejection = rejections.first().map(|r| {
                let field = |name: &str| r.get(name).map(|v| v.to_string()).unwrap_or_default();
                format!(
                    "event {}: {} {}",
                    field("index"),
                    r.get("reason").and_then(Value::as_str).unwrap_or("?"),
                    r.get("error").and_then(Value::as_str).unwrap_or("")
                )
                .trim_end()
                .to_owned()
            });
            // Trust the counts, but never claim more than the batch held.
            let accepted = accepted.min(events);
            let rejected = (rejections.len() as u64).min(events - accepted);
            BatchOutcome::Acked {
                accepted,
                rejected,
                first_rejection,
            }
        }
        401 => BatchOutcome::Unauthorized,
        // 429 always means "later" (1 s if the server does not say how much later).
        429 => BatchOutcome::Retry {
            after: retry_hint(retry_after_header, body).unwrap_or(Duration::from_secs(1)),
            throttled: true,
        },
        // 503 with a retry hint is "not ready yet" (replaying); without one (shutting
        // down) waiting would not help.
        503 => match retry_hint(retry_after_header, body) {
            Some(after) => BatchOutcome::Retry {
                after,
                throttled: false,
            },
            None => BatchOutcome::Failed(format!("{status}: {}", error_message(status, body))),
        },
        _ => BatchOutcome::Failed(format!("{status}: {}", error_message(status, body))),
    }
}

// ---------------------------------------------------------------------------
// Percentiles and summaries (pure)
// ---------------------------------------------------------------------------

/// A new latency histogram in microseconds (1 µs to 1 h, 3 significant digits).
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap())
}

/// Records a latency in microseconds (at least 1).
fn record_latency(histogram: &mut Histogram<u64>, latency: Duration) {
    histogram.saturating_record((latency.as_micros() as u64).max(1));
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Percentiles {
    /// How many requests were measured.
    count: u64,
    /// Mean.
    mean: f64,
    /// Median.
    p50: u64,
    /// 90th percentile.
    p90: u64,
    /// 99th percentile.
    p99: u64,
    /// 99.9th percentile.
    p999: u64,
    /// Slowest.
    max: u64,
}

impl Percentiles {
    /// Reads the percentiles off a histogram (all zero when it is empty).
    fn of(histogram: &Histogram<u64>) -> Percentiles {
        if histogram.is_empty() {
            return Percentiles {
                count: 0,
                mean: 0.0,
                p50: 0,
                p90: 0,
                p99: 0,
                p999: 0,
                max: 0,
            };
        }
        Percentiles {
            count: histogram.len(),
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }

    /// `p50 1.23 ms, p90 ..., p99 ..., p99.9 ..., max ...`.
    fn describe(&self) -> String {
        if self.count == 0 {
            return "no request measured".to_owned();
        }
        format!(
            "p50 {}, p90 {}, p99 {}, p99.9 {}, max {} ({} requests)",
            format_micros(self.p50),
            format_micros(self.p90),
            format_micros(self.p99),
            format_micros(self.p999),
            format_micros(self.max),
            self.count
        )
    }
}

/// A latency in microseconds in human units: `812 µs`, `1.23 ms`, `4.5 s`.
fn format_micros(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// A count with thousands separators: `1,234,567`.
fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What one `send-events` run did (also its `--json` output).
#[derive(Debug, Clone, Serialize)]
struct SendSummary {
    /// Always `send-events`.
    kind: &'static str,
    /// Events generated.
    events: u64,
    /// Requests answered 200/202.
    requests: u64,
    /// Events the server accepted.
    accepted: u64,
    /// Events the server rejected (validation), counted by index.
    rejected: u64,
    /// Events of batches that failed (error answers, broken connections).
    failed: u64,
    /// 429 answers (each retried after `Retry-After`).
    throttled: u64,
    /// 503 answers (each retried after `Retry-After`).
    unavailable: u64,
    /// Seconds from the first send to the last answer.
    elapsed_s: f64,
    /// Accepted events per second.
    events_per_s: f64,
    /// The target rate (0: as fast as possible).
    target_rate: f64,
    /// Ack latency of the acknowledged requests, µs.
    latency_us: Percentiles,
    /// The first few distinct errors and rejections.
    errors: Vec<String>,
}

impl SendSummary {
    /// The human summary printed after the progress bar.
    fn describe(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "sent {} events in {:.2} s: {} events/s accepted{}",
            group_thousands(self.events),
            self.elapsed_s,
            group_thousands(self.events_per_s.round() as u64),
            if self.target_rate > 0.0 {
                format!(
                    " (target {} events/s)",
                    group_thousands(self.target_rate.round() as u64)
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "accepted {}, rejected {}, failed {}, 429 (retried) {}, 503 (retried) {}",
            group_thousands(self.accepted),
            group_thousands(self.rejected),
            group_thousands(self.failed),
            group_thousands(self.throttled),
            group_thousands(self.unavailable)
        );
        let _ = writeln!(out, "ack latency: {}", self.latency_us.describe());
        for error in &self.errors {
            let _ = writeln!(out, "error: {error}");
        }
        out
    }

    /// Whether every event was accepted.
    fn all_accepted(&self) -> bool {
        self.accepted == self.events
    }
}

/// What one `query-load` run did (also its `--json` output).
#[derive(Debug, Clone, Serialize)]
struct QueryLoadSummary {
    /// Always `query-load`.
    kind: &'static str,
    /// Queries issued.
    queries: u64,
    /// Queries answered 200.
    ok: u64,
    /// Queries that failed.
    failed: u64,
    /// Seconds from the first query to the last answer.
    elapsed_s: f64,
    /// Answered queries per second.
    qps: f64,
    /// The target rate.
    target_qps: f64,
    /// Points (group × window) per answered query, on average: shows the queries
    /// found data.
    points_per_query: f64,
    /// Latency of the answered queries, µs.
    latency_us: Percentiles,
    /// The first few distinct errors.
    errors: Vec<String>,
}

impl QueryLoadSummary {
    /// The human summary.
    fn describe(&self) -> String {
        let mut out = format!(
            "{} queries in {:.2} s ({:.1}/s, target {:.1}/s): {} ok, {} failed, \
             {:.1} points per answer\nlatency: {}\n",
            self.queries,
            self.elapsed_s,
            self.qps,
            self.target_qps,
            self.ok,
            self.failed,
            self.points_per_query,
            self.latency_us.describe()
        );
        for error in &self.errors {
            let _ = writeln!(out, "error: {error}");
        }
        out
    }
}

/// Keeps the first few distinct messages.
fn keep_error(errors: &mut Vec<String>, message: String) {
    if errors.len() < MAX_ERRORS_KEPT && !errors.contains(&message) {
        errors.push(message);
    }
}

// ---------------------------------------------------------------------------
// Tables (pure)
// ---------------------------------------------------------------------------

/// Formats a number: integers plainly, others with up to 3 decimals, no trailing zeros.
fn format_number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let text = format!("{x:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" || text.is_empty() {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// One aggregate value as a cell: numbers plainly, `null` as `-`, estimates as
/// `value ±rel%`, top-k lists as `item:count` pairs.
fn format_value(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => format_number(f),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            if items.is_empty() {
                return "-".to_owned();
            }
            items
                .iter()
                .map(|item| match item.get("item") {
                    Some(name) => {
                        let name = match name {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        let count = item.get("count").map(format_value).unwrap_or_default();
                        match item.get("error").and_then(Value::as_f64) {
                            Some(error) if error > 0.0 => {
                                format!("{name}:{count}±{}", format_number(error))
                            }
                            _ => format!("{name}:{count}"),
                        }
                    }
                    None => format_value(item),
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
        Value::Object(fields) => match fields.get("value") {
            Some(Value::Null) => "-".to_owned(),
            Some(inner) => {
                let text = format_value(inner);
                match fields.get("rel_error").and_then(Value::as_f64) {
                    Some(rel) if rel > 0.0 => format!("{text} ±{}%", format_number(rel * 100.0)),
                    _ => text,
                }
            }
            None => Value::Object(fields.clone()).to_string(),
        },
    }
}

/// A timestamp in ms since the epoch as RFC 3339 (seconds, or ms when not whole).
fn format_timestamp(ms: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms);
    if ms % 1000 == 0 {
        humantime::format_rfc3339_seconds(time).to_string()
    } else {
        humantime::format_rfc3339_millis(time).to_string()
    }
}

/// Lays out rows under a header: left-aligned text columns, right-aligned columns from
/// `right_from` on, two spaces between columns, a rule under the header.
fn render_table(header: &[String], rows: &[Vec<String>], right_from: usize) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(width(cell));
            }
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, w) in widths.iter().enumerate() {
            let cell = cells.get(i).map(String::as_str).unwrap_or("");
            let pad = w.saturating_sub(width(cell));
            if i > 0 {
                out.push_str("  ");
            }
            if i >= right_from {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(header);
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&rule.join("  "));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// Renders a `/v1/query` answer (or a `/v1/tail` update, same fields) as a table: one
/// column per group dimension, the window's start and width, one column per aggregate.
fn render_query_table(answer: &Value) -> Result<String, String> {
    let groups = answer
        .get("groups")
        .and_then(Value::as_array)
        .ok_or("no `groups` array")?;
    let mut aggregates: Vec<String> = answer
        .get("aggregates")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut keys: Vec<String> = Vec::new();
    for group in groups {
        if let Some(dims) = group.get("group").and_then(Value::as_object) {
            for key in dims.keys() {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
        if aggregates.is_empty() {
            // No `aggregates` list: take the value names as they come.
            for point in group
                .get("points")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for name in point
                    .get("values")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    if !aggregates.contains(name.0) {
                        aggregates.push(name.0.clone());
                    }
                }
            }
        }
    }
    let mut rows = Vec::new();
    for group in groups {
        let dims = group.get("group");
        for point in group
            .get("points")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut row: Vec<String> = keys
                .iter()
                .map(|key| {
                    dims.and_then(|d| d.get(key))
                        .map(format_value)
                        .unwrap_or_else(|| "-".to_owned())
                })
                .collect();
            let start = point.get("start").and_then(Value::as_u64);
            let end = point.get("end").and_then(Value::as_u64);
            row.push(start.map_or_else(|| "-".to_owned(), format_timestamp));
            row.push(match (start, end) {
                (Some(s), Some(e)) if e >= s => {
                    humantime::format_duration(Duration::from_millis(e - s)).to_string()
                }
                _ => "-".to_owned(),
            });
            let values = point.get("values");
            for name in &aggregates {
                row.push(
                    values
                        .and_then(|v| v.get(name))
                        .map(format_value)
                        .unwrap_or_else(|| "-".to_owned()),
                );
            }
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return Ok("(no data)\n".to_owned());
    }
    let mut header = keys.clone();
    header.push("start".to_owned());
    header.push("window".to_owned());
    header.extend(aggregates);
    Ok(render_table(&header, &rows, keys.len() + 2))
}

// ---------------------------------------------------------------------------
// Server-sent events (pure)
// ---------------------------------------------------------------------------

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SseEvent {
    /// The `event:` field (`message` when absent).
    event: String,
    /// The `data:` lines joined by newlines.
    data: String,
}

/// The longest line the parser buffers (a server that never ends a line is an error).
const MAX_SSE_LINE: usize = 16 << 20;

/// An incremental parser of a `text/event-stream` body (the WHATWG rules: fields
/// `event`, `data`, others ignored; `:` comments; a blank line dispatches; lines end in
/// `\n` or `\r\n`).
#[derive(Debug, Default)]
struct SseParser {
    /// Bytes of the line not yet ended.
    partial: Vec<u8>,
    /// The current event's name.
    event: Option<String>,
    /// The current event's data lines.
    data: Vec<String>,
}

impl SseParser {
    /// Feeds a chunk of the body; returns the events it completed.
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, String> {
        let mut events = Vec::new();
        let mut rest = chunk;
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..at]);
            rest = &rest[at + 1..];
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(event) = self.line(&String::from_utf8_lossy(&line)) {
                events.push(event);
            }
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_SSE_LINE {
            return Err(format!(
                "an event-stream line longer than {MAX_SSE_LINE} bytes"
            ));
        }
        Ok(events)
    }

    /// Handles one line; a blank line dispatches the event gathered so far.
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take();
            if self.data.is_empty() {
                return None;
            }
            return Some(SseEvent {
                event: event.unwrap_or_else(|| "message".to_owned()),
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

/// Renders one `/v1/tail` update: a heading line with its kind and watermark, then the
/// table.
fn render_tail_update(event: &SseEvent) -> String {
    let Ok(update) = serde_json::from_str::<Value>(&event.data) else {
        return format!("[{}] (not JSON) {}\n", event.event, event.data);
    };
    let kind = update
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or(&event.event);
    let watermark = update
        .get("watermark")
        .and_then(Value::as_u64)
        .map_or_else(|| "-".to_owned(), format_timestamp);
    let table = render_query_table(&update).unwrap_or_else(|e| format!("(bad update: {e})\n"));
    format!("[{kind}] watermark {watermark}\n{table}")
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// Counters of one `send-events` worker.
struct SendStats {
    /// Ack latency of acknowledged requests.
    latency: Histogram<u64>,
    /// Requests answered 200/202.
    requests: u64,
    /// Events accepted.
    accepted: u64,
    /// Events rejected by validation.
    rejected: u64,
    /// Events of failed batches.
    failed: u64,
    /// 429 answers.
    throttled: u64,
    /// 503 answers.
    unavailable: u64,
    /// First distinct errors.
    errors: Vec<String>,
}

impl SendStats {
    /// Empty counters.
    fn new() -> SendStats {
        SendStats {
            latency: latency_histogram(),
            requests: 0,
            accepted: 0,
            rejected: 0,
            failed: 0,
            throttled: 0,
            unavailable: 0,
            errors: Vec::new(),
        }
    }

    /// Adds another worker's counters.
    fn merge(&mut self, other: SendStats) {
        let _ = self.latency.add(&other.latency);
        self.requests += other.requests;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.failed += other.failed;
        self.throttled += other.throttled;
        self.unavailable += other.unavailable;
        for error in other.errors {
            keep_error(&mut self.errors, error);
        }
    }
}

/// What the `send-events` workers share.
struct SendShared {
    /// The server.
    endpoint: Endpoint,
    /// The pre-encoded batches.
    batches: Vec<Batch>,
    /// Events before each batch (for the pacing schedule).
    events_before: Vec<u64>,
    /// The next batch to send.
    next: AtomicUsize,
    /// Set on 401: every worker stops.
    abort: AtomicBool,
    /// The request path with its query string.
    path: String,
    /// Target rate.
    rate: f64,
    /// When the clock started.
    start: Instant,
    /// The progress bar (hidden in `--json` mode).
    progress: ProgressBar,
}

/// One `send-events` worker: takes batches in order, waits for each one's due time,
/// sends it on its connection, and retries it after 429/503.
async fn send_worker(shared: Arc<SendShared>, mut conn: Option<Conn>) -> SendStats {
    let mut stats = SendStats::new();
    loop {
        if shared.abort.load(Ordering::Relaxed) {
            break;
        }
        let index = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(batch) = shared.batches.get(index) else {
            break;
        };
        let due = shared.start + due_offset(shared.events_before[index], shared.rate);
        tokio::time::sleep_until(due).await;
        let mut retries = 0;
        let mut connect_failures = 0;
        loop {
            if shared.abort.load(Ordering::Relaxed) {
                break;
            }
            let mut current = match conn.take() {
                Some(c) => c,
                None => match shared.endpoint.connect().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Nothing was sent: try again a few times, then give up on the batch.
                        connect_failures += 1;
                        if connect_failures >= 3 {
                            stats.failed += batch.events;
                            keep_error(&mut stats.errors, e.to_string());
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let request = shared
                .endpoint
                .request(Method::POST, &shared.path, batch.body.clone());
            let sent = Instant::now();
            let answer = match shared.endpoint.exchange(&mut current, request).await {
                Ok(answer) => answer,
                Err(e) => {
                    // The batch may or may not have reached the server: not retried (it
                    // would risk counting events twice); the connection is replaced.
                    stats.failed += batch.events;
                    keep_error(&mut stats.errors, e.to_string());
                    break;
                }
            };
            let latency = sent.elapsed();
            conn = Some(current);
            match classify_events_answer(
                answer.status,
                answer.retry_after.as_deref(),
                &answer.body,
                batch.events,
            ) {
                BatchOutcome::Acked {
                    accepted,
                    rejected,
                    first_rejection,
                } => {
                    record_latency(&mut stats.latency, latency);
                    stats.requests += 1;
                    stats.accepted += accepted;
                    stats.rejected += rejected;
                    stats.failed += batch.events - accepted - rejected;
                    if let Some(r) = first_rejection {
                        keep_error(&mut stats.errors, format!("rejected {r}"));
                    }
                    break;
                }
                BatchOutcome::Retry { after, throttled } => {
                    if throttled {
                        stats.throttled += 1;
                    } else {
                        stats.unavailable += 1;
                    }
                    retries += 1;
                    if retries > MAX_RETRIES_PER_BATCH {
                        stats.failed += batch.events;
                        keep_error(
                            &mut stats.errors,
                            format!("a batch was refused {retries} times (429/503); gave up"),
                        );
                        break;
                    }
                    tokio::time::sleep(after).await;
                }
                BatchOutcome::Failed(message) => {
                    stats.failed += batch.events;
                    keep_error(&mut stats.errors, message);
                    break;
                }
                BatchOutcome::Unauthorized => {
                    stats.failed += batch.events;
                    keep_error(&mut stats.errors, ClientError::Unauthorized.to_string());
                    shared.abort.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        shared.progress.inc(batch.events);
    }
    stats
}

/// A progress bar on stderr over `len` units, hidden when `hidden` or stderr is not a
/// terminal.
fn progress_bar(len: u64, hidden: bool, unit: &str) -> ProgressBar {
    if hidden || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = format!(
        "{{elapsed_precise}} [{{bar:40}}] {{human_pos}}/{{human_len}} {unit} ({{rate}}/s, eta {{eta}})"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        let style = style.with_key(
            "rate",
            |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{}", group_thousands(state.per_sec() as u64));
            },
        );
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// `send-events`.
async fn send_events(endpoint: Endpoint, args: SendArgs) -> Result<(), ClientError> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let spec = EventSpec {
        metric: args.metric.clone(),
        count: args.count,
        batch: args.batch,
        series: args.series,
        rate: args.rate,
        start_ms: now_ms,
        seed: 0x5eed_3ef7,
    };
    let batches = encode_batches(&spec);
    let mut events_before = Vec::with_capacity(batches.len());
    let mut sum = 0;
    for batch in &batches {
        events_before.push(sum);
        sum += batch.events;
    }
    // Open every connection before the clock starts: an unreachable server fails here.
    let workers = (args.concurrency as usize).min(batches.len()).max(1);
    let mut conns = Vec::with_capacity(workers);
    for _ in 0..workers {
        conns.push(endpoint.connect().await?);
    }
    let path = if args.wait {
        "/v1/events?wait=true"
    } else {
        "/v1/events"
    };
    let shared = Arc::new(SendShared {
        endpoint,
        batches,
        events_before,
        next: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
        path: path.to_owned(),
        rate: args.rate,
        start: Instant::now(),
        progress: progress_bar(args.count, args.json, "events"),
    });
    let handles: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::spawn(send_worker(Arc::clone(&shared), Some(conn))))
        .collect();
    let mut total = SendStats::new();
    for handle in handles {
        match handle.await {
            Ok(stats) => total.merge(stats),
            Err(e) => keep_error(&mut total.errors, format!("a sender task failed: {e}")),
        }
    }
    let elapsed = shared.start.elapsed().as_secs_f64();
    shared.progress.finish_and_clear();
    let unauthorized = shared.abort.load(Ordering::Relaxed);
    // Events never sent (after an abort) count as failed.
    let unsent = args
        .count
        .saturating_sub(total.accepted + total.rejected + total.failed);
    let summary = SendSummary {
        kind: "send-events",
        events: args.count,
        requests: total.requests,
        accepted: total.accepted,
        rejected: total.rejected,
        failed: total.failed + unsent,
        throttled: total.throttled,
        unavailable: total.unavailable,
        elapsed_s: elapsed,
        events_per_s: if elapsed > 0.0 {
            total.accepted as f64 / elapsed
        } else {
            0.0
        },
        target_rate: args.rate,
        latency_us: Percentiles::of(&total.latency),
        errors: total.errors,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary).unwrap_or_else(|_| "{}".to_owned())
        );
    } else {
        print!("{}", summary.describe());
    }
    if unauthorized {
        Err(ClientError::Unauthorized)
    } else if !summary.all_accepted() {
        Err(ClientError::Incomplete(format!(
            "{} of {} events were not accepted",
            summary.events - summary.accepted,
            summary.events
        )))
    } else {
        Ok(())
    }
}

/// The `/v1/query` path for these options.
fn query_path(params: &QueryParams, from: Option<&str>, to: Option<&str>, open: bool) -> String {
    let mut pairs = params.pairs();
    if let Some(from) = from {
        pairs.push(("from", from.to_owned()));
    }
    if let Some(to) = to {
        pairs.push(("to", to.to_owned()));
    }
    if open {
        pairs.push(("open", "true".to_owned()));
    }
    format!("/v1/query?{}", query_string(&pairs))
}

/// `query`.
async fn query(endpoint: Endpoint, args: QueryArgs) -> Result<(), ClientError> {
    let path = query_path(
        &args.params,
        args.from.as_deref(),
        args.to.as_deref(),
        args.open,
    );
    let body = endpoint.get(&path).await?;
    let answer: Value = serde_json::from_slice(&body)
        .map_err(|e| ClientError::BadResponse(format!("the query answer is not JSON: {e}")))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        return Ok(());
    }
    let table = render_query_table(&answer).map_err(ClientError::BadResponse)?;
    print!("{table}");
    Ok(())
}

/// `tail`: follows the event stream until Ctrl-C or the server ends it.
async fn tail(endpoint: Endpoint, args: TailArgs) -> Result<(), ClientError> {
    let mut pairs = args.params.pairs();
    if let Some(interval) = &args.interval {
        pairs.push(("interval", interval.clone()));
    }
    if let Some(window) = &args.window {
        pairs.push(("window", window.clone()));
    }
    let path = format!("/v1/tail?{}", query_string(&pairs));
    let mut conn = endpoint.connect().await?;
    let mut request = endpoint.request(Method::GET, &path, Bytes::new());
    request.headers_mut().insert(
        header::ACCEPT,
        header::HeaderValue::from_static("text/event-stream"),
    );
    let response = tokio::time::timeout(REQUEST_TIMEOUT, conn.send(request))
        .await
        .map_err(|_| ClientError::Timeout(REQUEST_TIMEOUT))?
        .map_err(|e| endpoint.http_error(&e))?;
    if !response.status().is_success() {
        let answer = read_answer(response).await?;
        return Err(status_error(answer.status, &answer.body));
    }
    let mut body = response.into_body();
    let mut parser = SseParser::default();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let frame = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            frame = body.frame() => frame,
        };
        let Some(frame) = frame else {
            eprintln!("the server ended the stream");
            return Ok(());
        };
        let frame = frame.map_err(|e| endpoint.http_error(&e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for event in parser.push(&data).map_err(ClientError::BadResponse)? {
            print!("{}", render_tail_update(&event));
            println!();
        }
    }
}

/// Counters of one `query-load` worker.
struct QueryStats {
    /// Latency of answered queries.
    latency: Histogram<u64>,
    /// Queries answered 200.
    ok: u64,
    /// Points in those answers.
    points: u64,
    /// Failed queries.
    failed: u64,
    /// First distinct errors.
    errors: Vec<String>,
}

/// How many points (group × window) a query answer holds (0 for anything unexpected).
fn count_points(body: &[u8]) -> u64 {
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return 0;
    };
    answer
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.get("points").and_then(Value::as_array))
        .map(|points| points.len() as u64)
        .sum()
}

/// `query-load`: `qps × duration` queries on a fixed schedule over `concurrency`
/// connections.
async fn query_load(endpoint: Endpoint, args: QueryLoadArgs) -> Result<(), ClientError> {
    let total = ((args.qps * args.duration.as_secs_f64()).round() as u64).max(1);
    let path: Arc<str> = query_path(&args.params, args.from.as_deref(), None, args.open).into();
    let workers = (args.concurrency).min(total) as usize;
    let mut conns = Vec::with_capacity(workers);
    for _ in 0..workers {
        conns.push(endpoint.connect().await?);
    }
    let endpoint = Arc::new(endpoint);
    let next = Arc::new(AtomicUsize::new(0));
    let abort = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let qps = args.qps;
    let handles: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            let (endpoint, next, abort, path) = (
                Arc::clone(&endpoint),
                Arc::clone(&next),
                Arc::clone(&abort),
                Arc::clone(&path),
            );
            tokio::spawn(async move {
                let mut conn = Some(conn);
                let mut stats = QueryStats {
                    latency: latency_histogram(),
                    ok: 0,
                    points: 0,
                    failed: 0,
                    errors: Vec::new(),
                };
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed) as u64;
                    if index >= total || abort.load(Ordering::Relaxed) {
                        break;
                    }
                    tokio::time::sleep_until(start + due_offset(index, qps)).await;
                    let mut current = match conn.take() {
                        Some(c) => c,
                        None => match endpoint.connect().await {
                            Ok(c) => c,
                            Err(e) => {
                                stats.failed += 1;
                                keep_error(&mut stats.errors, e.to_string());
                                continue;
                            }
                        },
                    };
                    let request = endpoint.request(Method::GET, &path, Bytes::new());
                    let sent = Instant::now();
                    match endpoint.exchange(&mut current, request).await {
                        Ok(answer) if answer.status.is_success() => {
                            record_latency(&mut stats.latency, sent.elapsed());
                            stats.ok += 1;
                            stats.points += count_points(&answer.body);
                            conn = Some(current);
                        }
                        Ok(answer) => {
                            stats.failed += 1;
                            let error = status_error(answer.status, &answer.body);
                            if matches!(error, ClientError::Unauthorized) {
                                abort.store(true, Ordering::Relaxed);
                            }
                            keep_error(&mut stats.errors, error.to_string());
                            conn = Some(current);
                        }
                        Err(e) => {
                            stats.failed += 1;
                            keep_error(&mut stats.errors, e.to_string());
                        }
                    }
                }
                stats
            })
        })
        .collect();
    let mut latency = latency_histogram();
    let (mut ok, mut points, mut failed, mut errors) = (0, 0, 0, Vec::new());
    for handle in handles {
        match handle.await {
            Ok(stats) => {
                let _ = latency.add(&stats.latency);
                ok += stats.ok;
                points += stats.points;
                failed += stats.failed;
                for e in stats.errors {
                    keep_error(&mut errors, e);
                }
            }
            Err(e) => keep_error(&mut errors, format!("a query task failed: {e}")),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let summary = QueryLoadSummary {
        kind: "query-load",
        queries: total,
        ok,
        failed: total - ok,
        elapsed_s: elapsed,
        qps: if elapsed > 0.0 {
            ok as f64 / elapsed
        } else {
            0.0
        },
        target_qps: qps,
        points_per_query: if ok > 0 {
            points as f64 / ok as f64
        } else {
            0.0
        },
        latency_us: Percentiles::of(&latency),
        errors,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary).unwrap_or_else(|_| "{}".to_owned())
        );
    } else {
        print!("{}", summary.describe());
    }
    if abort.load(Ordering::Relaxed) {
        Err(ClientError::Unauthorized)
    } else if failed > 0 || ok < total {
        Err(ClientError::Incomplete(format!(
            "{} of {total} queries failed",
            total - ok
        )))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// ws-soak
// ---------------------------------------------------------------------------

/// What one `ws-soak` run did (also its `--json` output).
#[derive(Debug, Clone, Serialize)]
struct WsSoakSummary {
    /// Always `ws-soak`.
    kind: &'static str,
    /// Clients asked for.
    connections: u64,
    /// Clients that connected and were subscribed.
    connected: u64,
    /// Clients that could not connect or subscribe.
    failed: u64,
    /// Clients the server closed (or that broke) during the measurement.
    dropped: u64,
    /// Subscriptions per client.
    subscriptions: u64,
    /// The open-files soft limit after raising it.
    fd_limit: u64,
    /// Seconds to open and subscribe every client.
    connect_s: f64,
    /// Seconds measured.
    measured_s: f64,
    /// Update frames received while measuring.
    updates: u64,
    /// Updates per second over all clients.
    updates_per_s: f64,
    /// Push lag (receive time minus the update's `sent_at`), µs (ms resolution).
    lag_us: Percentiles,
    /// Time between consecutive partial updates of one subscription, µs: the
    /// subscription's interval when every round arrives on schedule.
    gap_us: Percentiles,
    /// The first few distinct errors.
    errors: Vec<String>,
}

impl WsSoakSummary {
    /// The human summary.
    fn describe(&self) -> String {
        let mut out = format!(
            "{} of {} clients connected in {:.2} s ({} failed, {} dropped while measuring; \
             open-files limit {})\n{} updates in {:.2} s ({:.0}/s)\npush lag: {}\n\
             gap between partial updates: {}\n",
            group_thousands(self.connected),
            group_thousands(self.connections),
            self.connect_s,
            group_thousands(self.failed),
            group_thousands(self.dropped),
            self.fd_limit,
            group_thousands(self.updates),
            self.measured_s,
            self.updates_per_s,
            self.lag_us.describe(),
            self.gap_us.describe()
        );
        for error in &self.errors {
            let _ = writeln!(out, "error: {error}");
        }
        out
    }
}

/// The counters the clients share (histograms behind one lock: a few thousand
/// records a second, so one lock costs less than 10K histograms of memory).
struct SoakShared {
    lag: std::sync::Mutex<Histogram<u64>>,
    gap: std::sync::Mutex<Histogram<u64>>,
    updates: std::sync::atomic::AtomicU64,
    measuring: AtomicBool,
    errors: std::sync::Mutex<Vec<String>>,
}

impl SoakShared {
    fn error(&self, message: String) {
        let mut errors = self
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keep_error(&mut errors, message);
    }
}

/// Milliseconds since the epoch, as a float with µs precision.
fn epoch_ms_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// The id, kind and `sent_at` of an update frame as the server writes it
/// (`{"type":"update","id":"s0","kind":"partial","watermark":..,"sent_at":..,..}`), or
/// `None` for anything else (then the frame is parsed as JSON).
fn update_head(text: &str) -> Option<(&str, &str, i64)> {
    let rest = text.strip_prefix("{\"type\":\"update\",\"id\":\"")?;
    let (id, rest) = rest.split_once('"')?;
    if id.contains('\\') {
        return None;
    }
    let rest = rest.strip_prefix(",\"kind\":\"")?;
    let (kind, rest) = rest.split_once('"')?;
    let rest = rest.strip_prefix(",\"watermark\":")?;
    let at = rest.find(",\"sent_at\":")?;
    let rest = &rest[at + ",\"sent_at\":".len()..];
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    Some((id, kind, rest[..end].parse().ok()?))
}

/// The ways a soak client ends.
enum SoakEnd {
    /// It could not connect or subscribe.
    Failed,
    /// The server closed it (or it broke) while measuring.
    Dropped,
    /// It ran until told to stop.
    Done,
}

type SoakStream = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Connects one client and subscribes it: `Err` with a message on failure.
async fn soak_connect(endpoint: &Endpoint, subscribe: &[String]) -> Result<SoakStream, String> {
    use futures_util::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut request = format!("ws://{}{}/v1/live", endpoint.authority, endpoint.base_path)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    if let Some(token) = &endpoint.token {
        if let Ok(v) = format!("Bearer {token}").parse() {
            request.headers_mut().insert(header::AUTHORIZATION, v);
        }
    }
    // Small buffers: 10K clients in one process.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4 << 10)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => {
                format!("the upgrade was refused: HTTP {}", r.status())
            }
            e => format!("handshake: {e}"),
        })?;
    for s in subscribe {
        ws.send(Message::text(s.clone()))
            .await
            .map_err(|e| format!("subscribe: {e}"))?;
    }
    Ok(ws)
}

/// Reads one client's frames until `stop`, recording lag and gaps while measuring.
async fn soak_read(
    mut ws: SoakStream,
    shared: Arc<SoakShared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    subscriptions: usize,
) -> SoakEnd {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let mut last_partial: Vec<Option<f64>> = vec![None; subscriptions];
    loop {
        let frame = tokio::select! {
            f = ws.next() => f,
            () = async { let _ = stop.wait_for(|s| *s).await; } => {
                let _ = ws.close(None).await;
                return SoakEnd::Done;
            }
        };
        let text = match frame {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => return SoakEnd::Dropped,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                shared.error(format!("read: {e}"));
                return SoakEnd::Dropped;
            }
        };
        let now = epoch_ms_f64();
        // Only the fields needed; the result itself is not parsed.
        #[derive(serde::Deserialize)]
        struct Frame<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            #[serde(default)]
            id: Option<&'a str>,
            #[serde(default, rename = "kind")]
            update_kind: Option<&'a str>,
            #[serde(default)]
            sent_at: Option<i64>,
            #[serde(default)]
            error: Option<String>,
        }
        // The server's update frames start with a fixed head: read it without parsing
        // the result, so the load generator spends its CPU on receiving, not parsing.
        let f = match update_head(text.as_str()) {
            Some((id, kind, sent_at)) => Frame {
                kind: "update",
                id: Some(id),
                update_kind: Some(kind),
                sent_at: Some(sent_at),
                error: None,
            },
            None => match serde_json::from_str::<Frame<'_>>(text.as_str()) {
                Ok(f) => f,
                Err(_) => {
                    shared.error("a frame that is not JSON".to_owned());
                    continue;
                }
            },
        };
        match f.kind {
            "update" => {
                if !shared.measuring.load(Ordering::Relaxed) {
                    continue;
                }
                shared.updates.fetch_add(1, Ordering::Relaxed);
                if let Some(sent) = f.sent_at {
                    let lag_us = ((now - sent as f64) * 1e3).max(1.0) as u64;
                    if let Ok(mut h) = shared.lag.lock() {
                        h.saturating_record(lag_us);
                    }
                }
                if f.update_kind == Some("partial") {
                    let slot =
                        f.id.and_then(|id| id.strip_prefix('s'))
                            .and_then(|n| n.parse::<usize>().ok())
                            .filter(|i| *i < subscriptions);
                    if let Some(i) = slot {
                        if let Some(prev) = last_partial[i].replace(now) {
                            if let Ok(mut h) = shared.gap.lock() {
                                h.saturating_record(((now - prev) * 1e3).max(1.0) as u64);
                            }
                        }
                    }
                }
            }
            "error" => shared.error(format!(
                "server: {}",
                f.error.unwrap_or_else(|| "error frame".to_owned())
            )),
            _ => {}
        }
    }
}

async fn ws_soak(endpoint: Endpoint, args: WsSoakArgs) -> Result<(), ClientError> {
    // Each client is one descriptor; the usual soft limit is 1024.
    let fd_limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    if fd_limit < args.connections + 64 && !args.json {
        eprintln!(
            "warning: the open-files limit is {fd_limit}; {} clients need more (raise the hard limit: ulimit -Hn)",
            args.connections
        );
    }
    let mut query = serde_json::json!({
        "metric": args.metric,
        "agg": args.agg,
        "interval": humantime::format_duration(*args.interval).to_string(),
    });
    if let Some(g) = &args.group_by {
        query["group_by"] = Value::String(g.clone());
    }
    let subscribe: Arc<Vec<String>> = Arc::new(
        (0..args.subscriptions)
            .map(|i| {
                serde_json::json!({"type": "subscribe", "id": format!("s{i}"), "query": query})
                    .to_string()
            })
            .collect(),
    );
    let shared = Arc::new(SoakShared {
        lag: std::sync::Mutex::new(latency_histogram()),
        gap: std::sync::Mutex::new(latency_histogram()),
        updates: std::sync::atomic::AtomicU64::new(0),
        measuring: AtomicBool::new(false),
        errors: std::sync::Mutex::new(Vec::new()),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let endpoint = Arc::new(endpoint);
    let started = Instant::now();
    let progress = progress_bar(args.connections, args.json, "clients");
    let permits = Arc::new(tokio::sync::Semaphore::new(
        args.connect_concurrency as usize,
    ));
    let mut handles = Vec::with_capacity(args.connections as usize);
    for _ in 0..args.connections {
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .map_err(|e| ClientError::Incomplete(e.to_string()))?;
        let (endpoint, shared, subscribe, stop, progress) = (
            Arc::clone(&endpoint),
            Arc::clone(&shared),
            Arc::clone(&subscribe),
            stop_rx.clone(),
            progress.clone(),
        );
        let subscriptions = args.subscriptions as usize;
        handles.push(tokio::spawn(async move {
            let connected =
                tokio::time::timeout(REQUEST_TIMEOUT, soak_connect(&endpoint, &subscribe)).await;
            drop(permit);
            progress.inc(1);
            match connected {
                Ok(Ok(ws)) => soak_read(ws, shared, stop, subscriptions).await,
                Ok(Err(e)) => {
                    shared.error(e);
                    SoakEnd::Failed
                }
                Err(_) => {
                    shared.error(format!("no connection within {REQUEST_TIMEOUT:?}"));
                    SoakEnd::Failed
                }
            }
        }));
    }
    // Wait for the last connection attempts.
    let _ = permits
        .acquire_many(args.connect_concurrency as u32)
        .await
        .map(|p| p.forget());
    progress.finish_and_clear();
    let connect_s = started.elapsed().as_secs_f64();
    if !args.json {
        eprintln!("connected; measuring for {}", args.duration);
    }
    shared.measuring.store(true, Ordering::Relaxed);
    let measure = Instant::now();
    tokio::time::sleep(*args.duration).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let measured_s = measure.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let (mut connected, mut failed, mut dropped) = (0, 0, 0);
    for h in handles {
        match h.await {
            Ok(SoakEnd::Done) => connected += 1,
            Ok(SoakEnd::Dropped) => {
                connected += 1;
                dropped += 1;
            }
            Ok(SoakEnd::Failed) | Err(_) => failed += 1,
        }
    }
    let updates = shared.updates.load(Ordering::Relaxed);
    let lag = Percentiles::of(
        &shared
            .lag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let gap = Percentiles::of(
        &shared
            .gap
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let errors = std::mem::take(
        &mut *shared
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let summary = WsSoakSummary {
        kind: "ws-soak",
        connections: args.connections,
        connected,
        failed,
        dropped,
        subscriptions: args.subscriptions,
        fd_limit,
        connect_s,
        measured_s,
        updates,
        updates_per_s: if measured_s > 0.0 {
            updates as f64 / measured_s
        } else {
            0.0
        },
        lag_us: lag,
        gap_us: gap,
        errors,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary).unwrap_or_else(|_| "{}".to_owned())
        );
    } else {
        print!("{}", summary.describe());
    }
    if failed > 0 || dropped > 0 {
        Err(ClientError::Incomplete(format!(
            "{failed} of {} clients failed to connect, {dropped} dropped",
            args.connections
        )))
    } else {
        Ok(())
    }
}

/// Parses the command line and runs the command; exit code 1 on failure (clap exits
/// with 2 on a usage error).
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let endpoint = match Endpoint::parse(&cli.url, cli.token) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match cli.command {
        Command::SendEvents(args) => send_events(endpoint, args).await,
        Command::Query(args) => query(endpoint, args).await,
        Command::Tail(args) => tail(endpoint, args).await,
        Command::QueryLoad(args) => query_load(endpoint, args).await,
        Command::WsSoak(args) => ws_soak(endpoint, args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_heads_read_without_parsing_the_result() {
        let frame = r#"{"type":"update","id":"s3","kind":"final","watermark":-9223372036854775808,"sent_at":1767225600412,"result":{"groups":[]}}"#;
        assert_eq!(update_head(frame), Some(("s3", "final", 1_767_225_600_412)));
        for other in [
            r#"{"type":"subscribed","id":"s0"}"#,
            r#"{"type":"update","id":"a\"b","kind":"partial","watermark":1,"sent_at":2,"result":{}}"#,
            r#"{"type":"update","id":"s0","kind":"partial","sent_at":2,"result":{}}"#,
            "not json",
        ] {
            assert_eq!(update_head(other), None, "{other}");
        }
    }
    use clap::CommandFactory as _;

    fn spec(count: u64, batch: u64, series: u64, rate: f64) -> EventSpec {
        EventSpec {
            metric: "m\"x".to_owned(),
            count,
            batch,
            series,
            rate,
            start_ms: 1_700_000_000_000,
            seed: 7,
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn send_events_args_parse_with_defaults_and_limits() {
        let cli = Cli::try_parse_from([
            "client",
            "send-events",
            "--count",
            "10",
            "--url",
            "http://localhost:9",
            "--token",
            "k",
        ])
        .unwrap();
        assert_eq!(cli.url, "http://localhost:9");
        assert_eq!(cli.token.as_deref(), Some("k"));
        let Command::SendEvents(args) = cli.command else {
            panic!("not send-events");
        };
        assert_eq!(
            (
                args.count,
                args.rate,
                args.batch,
                args.concurrency,
                args.series
            ),
            (10, 0.0, 1000, 4, 100)
        );
        assert!(!args.wait && !args.json);
        for bad in [
            &["--count", "0"][..],
            &["--count", "5", "--rate", "-1"],
            &["--count", "5", "--rate", "inf"],
            &["--count", "5", "--batch", "0"],
            &["--count", "5", "--concurrency", "0"],
            &[],
        ] {
            let mut argv = vec!["client", "send-events"];
            argv.extend_from_slice(bad);
            assert!(Cli::try_parse_from(&argv).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn query_args_become_url_parameters() {
        let cli = Cli::try_parse_from([
            "client",
            "query",
            "--metric",
            "http latency",
            "--agg",
            "count,p99",
            "--group-by",
            "route",
            "--group-by",
            "host,region",
            "--filter",
            "route:/a b",
            "--from",
            "-15m",
            "--step",
            "1m",
            "--open",
        ])
        .unwrap();
        let Command::Query(args) = cli.command else {
            panic!("not query");
        };
        let path = query_path(
            &args.params,
            args.from.as_deref(),
            args.to.as_deref(),
            args.open,
        );
        assert_eq!(
            path,
            "/v1/query?metric=http+latency&agg=count%2Cp99&group_by=route%2Chost%2Cregion\
             &filter=route%3A%2Fa+b&step=1m&from=-15m&open=true"
        );
        assert!(
            Cli::try_parse_from(["client", "query", "--metric", "m", "--filter", "nocolon"])
                .is_err()
        );
    }

    #[test]
    fn urls_parse_to_host_port_and_prefix() {
        let e = Endpoint::parse("http://127.0.0.1:8080", Some("key".into())).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8080));
        assert_eq!(e.authority, "127.0.0.1:8080");
        let e = Endpoint::parse("http://[::1]:9/weft/", None).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9));
        assert_eq!(e.base_path, "/weft");
        let request = e.request(Method::GET, "/v1/query?metric=m", Bytes::new());
        assert_eq!(request.uri(), "/weft/v1/query?metric=m");
        assert_eq!(request.headers()[header::HOST], "[::1]:9");
        assert!(request.headers().get(header::AUTHORIZATION).is_none());
        let e = Endpoint::parse("http://h", Some(String::new())).unwrap();
        assert_eq!(e.port, 80);
        assert!(e.token.is_none(), "an empty token is no token");
        let request = Endpoint::parse("http://h", Some("s3cret".into()))
            .unwrap()
            .request(Method::POST, "/v1/events", Bytes::from_static(b"{}"));
        assert_eq!(request.headers()[header::AUTHORIZATION], "Bearer s3cret");
        assert_eq!(request.method(), Method::POST);
        for bad in ["https://h", "127.0.0.1:8080", "http://", "not a url"] {
            assert!(Endpoint::parse(bad, None).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn batches_hold_every_event_once_as_valid_ndjson() {
        let spec = spec(2_500, 1_000, 7, 1_000.0);
        let batches = encode_batches(&spec);
        assert_eq!(
            batches.iter().map(|b| b.events).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        let mut index = 0;
        let mut series_seen = std::collections::BTreeSet::new();
        for batch in &batches {
            let text = std::str::from_utf8(&batch.body).unwrap();
            assert!(text.ends_with('\n'));
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len() as u64, batch.events);
            for line in lines {
                let event: Value = serde_json::from_str(line).unwrap();
                assert_eq!(event["metric"], "m\"x");
                assert_eq!(
                    event["timestamp"].as_u64().unwrap(),
                    1_700_000_000_000 + index
                );
                let value = event["value"].as_f64().unwrap();
                assert!((1.0..=1000.0).contains(&value), "{value}");
                series_seen.insert(event["dims"]["series"].as_str().unwrap().to_owned());
                index += 1;
            }
        }
        assert_eq!(index, 2_500);
        assert_eq!(series_seen.len(), 7);
        // The same seed gives the same bodies.
        assert_eq!(encode_batches(&spec)[2].body, batches[2].body);
    }

    #[test]
    fn unpaced_timestamps_stay_near_the_start() {
        let spec = spec(3_000_000, 1000, 1, 0.0);
        assert_eq!(event_timestamp(&spec, 0), spec.start_ms);
        assert_eq!(event_timestamp(&spec, 2_999_999), spec.start_ms + 2_999);
    }

    #[test]
    fn pacing_spreads_batches_over_the_rate() {
        assert_eq!(due_offset(0, 1000.0), Duration::ZERO);
        assert_eq!(due_offset(500, 1000.0), Duration::from_millis(500));
        assert_eq!(due_offset(3_000_000, 1_000_000.0), Duration::from_secs(3));
        assert_eq!(
            due_offset(123_456, 0.0),
            Duration::ZERO,
            "rate 0: no waiting"
        );
    }

    #[test]
    fn accepted_answers_count_accepted_and_rejected() {
        let body = br#"{"accepted": 8, "rejected": [{"index": 3, "reason": "invalid_json", "error": "expected value"}, {"index": 5, "reason": "missing_metric"}]}"#;
        assert_eq!(
            classify_events_answer(StatusCode::ACCEPTED, None, body, 10),
            BatchOutcome::Acked {
                accepted: 8,
                rejected: 2,
                first_rejection: Some("event 3: invalid_json expected value".to_owned()),
            }
        );
        assert_eq!(
            classify_events_answer(
                StatusCode::OK,
                None,
                br#"{"accepted": 10, "rejected": []}"#,
                10
            ),
            BatchOutcome::Acked {
                accepted: 10,
                rejected: 0,
                first_rejection: None
            }
        );
        // A server claiming more than was sent is capped.
        assert!(matches!(
            classify_events_answer(StatusCode::OK, None, br#"{"accepted": 99}"#, 10),
            BatchOutcome::Acked {
                accepted: 10,
                rejected: 0,
                ..
            }
        ));
    }

    #[test]
    fn bad_and_error_answers_never_panic() {
        for body in [
            &b""[..],
            b"not json",
            b"[1,2]",
            br#"{"accepted": "x"}"#,
            b"\xff\xfe",
        ] {
            assert!(
                matches!(
                    classify_events_answer(StatusCode::ACCEPTED, None, body, 5),
                    BatchOutcome::Failed(_)
                ),
                "{body:?}"
            );
        }
        assert_eq!(
            classify_events_answer(
                StatusCode::BAD_REQUEST,
                None,
                br#"{"error": "expected `,` at line 1 column 9"}"#,
                5
            ),
            BatchOutcome::Failed("400 Bad Request: expected `,` at line 1 column 9".to_owned())
        );
        assert_eq!(
            classify_events_answer(StatusCode::PAYLOAD_TOO_LARGE, None, b"", 5),
            BatchOutcome::Failed("413 Payload Too Large: Payload Too Large".to_owned())
        );
        assert_eq!(
            classify_events_answer(StatusCode::UNAUTHORIZED, None, b"{}", 5),
            BatchOutcome::Unauthorized
        );
    }

    #[test]
    fn throttled_answers_wait_as_told() {
        let body = br#"{"error": "slow down", "retry_after_ms": 250}"#;
        assert_eq!(
            classify_events_answer(StatusCode::TOO_MANY_REQUESTS, Some("1"), body, 5),
            BatchOutcome::Retry {
                after: Duration::from_millis(250),
                throttled: true
            }
        );
        assert_eq!(
            classify_events_answer(StatusCode::SERVICE_UNAVAILABLE, Some("2"), b"{}", 5),
            BatchOutcome::Retry {
                after: Duration::from_secs(2),
                throttled: false
            }
        );
        assert_eq!(
            classify_events_answer(StatusCode::TOO_MANY_REQUESTS, None, b"", 5),
            BatchOutcome::Retry {
                after: Duration::from_secs(1),
                throttled: true
            }
        );
        assert_eq!(
            classify_events_answer(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                br#"{"error": "the server is shutting down"}"#,
                5
            ),
            BatchOutcome::Failed("503 Service Unavailable: the server is shutting down".to_owned())
        );
        assert_eq!(retry_hint(None, b""), None);
        assert_eq!(retry_hint(Some("junk"), b"x"), None);
        assert_eq!(
            retry_hint(Some("86400"), b""),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_hint(None, br#"{"retry_after_ms": 0}"#),
            Some(Duration::from_millis(1))
        );
    }

    #[test]
    fn error_messages_come_from_the_body() {
        let status = StatusCode::BAD_REQUEST;
        assert_eq!(error_message(status, br#"{"error": "bad agg"}"#), "bad agg");
        assert_eq!(error_message(status, b"  plain text \n"), "plain text");
        assert_eq!(error_message(status, b""), "Bad Request");
        let long = "x".repeat(1000);
        assert_eq!(error_message(status, long.as_bytes()).len(), 303);
        assert!(matches!(
            status_error(StatusCode::UNAUTHORIZED, b""),
            ClientError::Unauthorized
        ));
        assert_eq!(
            ClientError::Unauthorized.to_string(),
            "wrong or missing token (--token / WEFT_TOKEN)"
        );
    }

    #[test]
    fn percentiles_and_summaries_read_well() {
        let mut h = latency_histogram();
        for us in 1..=1000 {
            record_latency(&mut h, Duration::from_micros(us));
        }
        record_latency(&mut h, Duration::from_nanos(10));
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1001);
        assert_eq!(p.p50, 500);
        assert!((989..=991).contains(&p.p99), "{}", p.p99);
        assert_eq!(p.max, 1000);
        assert_eq!(Percentiles::of(&latency_histogram()).count, 0);
        assert_eq!(format_micros(812), "812 µs");
        assert_eq!(format_micros(1_234), "1.23 ms");
        assert_eq!(format_micros(4_500_000), "4.50 s");
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
        assert_eq!(group_thousands(100_000), "100,000");

        let summary = SendSummary {
            kind: "send-events",
            events: 1_000_000,
            requests: 1000,
            accepted: 999_000,
            rejected: 1000,
            failed: 0,
            throttled: 3,
            unavailable: 0,
            elapsed_s: 2.0,
            events_per_s: 499_500.0,
            target_rate: 0.0,
            latency_us: p,
            errors: vec!["rejected event 0: invalid_json".to_owned()],
        };
        let text = summary.describe();
        assert!(text.starts_with("sent 1,000,000 events in 2.00 s: 499,500 events/s accepted\n"));
        assert!(text.contains("accepted 999,000, rejected 1,000, failed 0, 429 (retried) 3"));
        assert!(text.contains("ack latency: p50 500 µs, p90 "));
        assert!(text.contains("error: rejected event 0"));
        assert!(!summary.all_accepted());
        let json: Value = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["kind"], "send-events");
        assert_eq!(json["accepted"], 999_000);
        assert_eq!(json["latency_us"]["p50"], 500);
        assert_eq!(json["latency_us"]["max"], 1000);
    }

    #[test]
    fn query_answers_count_their_points() {
        let body =
            br#"{"groups": [{"group": {}, "points": [{}, {}]}, {"points": [{}]}, {"x": 1}]}"#;
        assert_eq!(count_points(body), 3);
        assert_eq!(count_points(b"nope"), 0);
        assert_eq!(count_points(br#"{"groups": 5}"#), 0);
    }

    #[test]
    fn values_format_as_cells() {
        assert_eq!(format_value(&Value::Null), "-");
        assert_eq!(format_value(&serde_json::json!(30)), "30");
        assert_eq!(format_value(&serde_json::json!(12.5)), "12.5");
        assert_eq!(format_value(&serde_json::json!(2.0)), "2");
        assert_eq!(format_value(&serde_json::json!(0.123456)), "0.123");
        assert_eq!(
            format_value(
                &serde_json::json!({"value": 9.9, "rel_error": 0.01, "lower": 9.8, "upper": 10.0})
            ),
            "9.9 ±1%"
        );
        assert_eq!(
            format_value(&serde_json::json!({"value": 4, "rel_error": 0})),
            "4"
        );
        assert_eq!(
            format_value(&serde_json::json!({"value": null, "rel_error": 0.01})),
            "-"
        );
        assert_eq!(
            format_value(
                &serde_json::json!([{"item": "x", "count": 10, "error": 0}, {"item": "y", "count": 7, "error": 2}])
            ),
            "x:10 y:7±2"
        );
        assert_eq!(format_value(&serde_json::json!([])), "-");
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(1_500), "1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn query_answers_render_as_aligned_tables() {
        let answer = serde_json::json!({
            "metric": "m", "from": 0, "to": 120000, "resolution_ms": 60000,
            "aggregates": ["count", "p99", "top2"],
            "groups": [
                {"group": {"route": "/a"}, "points": [
                    {"start": 0, "end": 60000, "values": {
                        "count": 30,
                        "p99": {"value": 9.9, "rel_error": 0.01, "lower": 9.8, "upper": 10.0},
                        "top2": [{"item": "x", "count": 10, "error": 0}]}},
                    {"start": 60000, "end": 120000, "values": {"count": 1234, "p99": {"value": null}}}]},
                {"group": {"route": "/longer"}, "points": [
                    {"start": 0, "end": 60000, "values": {"count": 5}}]}
            ]
        });
        let table = render_query_table(&answer).unwrap();
        let expected = "\
route    start                 window  count      p99  top2
-------  --------------------  ------  -----  -------  ----
/a       1970-01-01T00:00:00Z  1m         30  9.9 ±1%  x:10
/a       1970-01-01T00:01:00Z  1m       1234        -     -
/longer  1970-01-01T00:00:00Z  1m          5        -     -
";
        assert_eq!(table, expected, "\n{table}");
        assert_eq!(
            render_query_table(&serde_json::json!({"groups": []})).unwrap(),
            "(no data)\n"
        );
        assert!(render_query_table(&serde_json::json!({"error": "x"})).is_err());
        // Without an `aggregates` list the value names are used; junk never panics.
        let table = render_query_table(&serde_json::json!({"groups": [
            {"group": null, "points": [{"start": "x", "values": {"sum": 1.5}}, 7]}]}))
        .unwrap();
        assert!(table.starts_with("start  window  sum\n"), "{table}");
        assert!(table.contains("-      -       1.5"), "{table}");
    }

    #[test]
    fn sse_parser_handles_split_chunks_comments_and_crlf() {
        let mut parser = SseParser::default();
        let stream = b": keep-alive\n\nevent: partial\r\ndata: {\"kind\":\"partial\",\r\ndata:\"watermark\":5}\r\n\r\nid: 3\ndata: plain\n\n";
        let mut events = Vec::new();
        // Feed it byte by byte: chunk boundaries can fall anywhere.
        for byte in stream.iter() {
            events.extend(parser.push(std::slice::from_ref(byte)).unwrap());
        }
        assert_eq!(
            events,
            [
                SseEvent {
                    event: "partial".to_owned(),
                    data: "{\"kind\":\"partial\",\n\"watermark\":5}".to_owned()
                },
                SseEvent {
                    event: "message".to_owned(),
                    data: "plain".to_owned()
                }
            ]
        );
        // All at once gives the same.
        let mut parser = SseParser::default();
        assert_eq!(parser.push(stream).unwrap(), events);
        // An event is only dispatched at its blank line.
        let mut parser = SseParser::default();
        assert!(parser.push(b"event: final\ndata: {}\n").unwrap().is_empty());
        assert_eq!(parser.push(b"\n").unwrap()[0].event, "final");
    }

    #[test]
    fn sse_parser_bounds_its_buffer() {
        let mut parser = SseParser::default();
        let chunk = vec![b'x'; 1 << 20];
        let mut result = Ok(Vec::new());
        for _ in 0..17 {
            result = parser.push(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert!(result.is_err());
    }

    #[test]
    fn tail_updates_render_with_kind_and_watermark() {
        let event = SseEvent {
            event: "final".to_owned(),
            data: r#"{"kind": "final", "watermark": 60000, "aggregates": ["count"],
                      "groups": [{"group": {}, "points": [{"start": 0, "end": 60000, "values": {"count": 3}}]}]}"#
                .to_owned(),
        };
        let text = render_tail_update(&event);
        assert!(
            text.starts_with("[final] watermark 1970-01-01T00:01:00Z\nstart"),
            "{text}"
        );
        assert!(text.contains("1m          3"), "{text}");
        let junk = SseEvent {
            event: "partial".to_owned(),
            data: "nope".to_owned(),
        };
        assert_eq!(render_tail_update(&junk), "[partial] (not JSON) nope\n");
    }
}
