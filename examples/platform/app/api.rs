//! The HTTP API: routes, the tenant extractor, and every handler. The contract (status
//! codes, bodies) is the table in the README and `docs/src/platform.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use weft::analytics::{
    Aggregate, AlertEvent, AlertRule, AlertState, AlertStatus, Batch, Comparison, Condition,
    Error as EngineError, LiveKind, Query, QueryResult, RejectReason, Rejected, Resolve,
    RuleAggregate, Value,
};
use weft::reactive::Overflow;

use super::App;
use super::wire::{self, BodyError, Rejection};

/// The router over `app`.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.settings.max_body_bytes;
    Router::new()
        .route("/v1/events", axum::routing::post(ingest))
        .route("/v1/query", get(query))
        .route("/v1/series", get(series))
        .route("/v1/tail", get(tail))
        .route("/v1/live", get(super::live::live))
        .route("/v1/alerts", get(list_alerts).post(create_alert))
        .route("/v1/alerts/{name}", get(get_alert).delete(delete_alert))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/dashboard", get(super::dashboard::page))
        .route("/dashboard/{file}", get(super::dashboard::file))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such endpoint; see the README's API table",
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// A JSON error response `{"error": message}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

fn with_retry_after(mut r: Response, after: Duration) -> Response {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The `401` response to a request without a valid key.
pub(super) fn unauthorized(app: &App, e: super::auth::AuthError) -> Response {
    app.stats.unauthorized.incr();
    let mut r = error(StatusCode::UNAUTHORIZED, e.message());
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// The authenticated tenant of a request.
#[derive(Debug, Clone)]
pub struct Tenant(pub Arc<str>);

impl FromRequestParts<Arc<App>> for Tenant {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        app.tenants
            .authenticate(header)
            .map(Tenant)
            .map_err(|e| unauthorized(app, e))
    }
}

/// The query-string pairs, in order.
fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

fn flag(pairs: &[(String, String)], name: &str) -> Result<bool, String> {
    match pairs.iter().rev().find(|(k, _)| k == name) {
        None => Ok(false),
        Some((_, v)) => match v.as_str() {
            "" | "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(format!("`{name}={other}`: use true or false")),
        },
    }
}

pub(super) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn rejections_json(r: &[Rejection]) -> Json {
    Json::Array(
        r.iter()
            .map(|r| json!({ "index": r.index, "reason": r.reason, "error": r.error }))
            .collect(),
    )
}

fn reject_message(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::NonFiniteValue => "the value is not a finite number",
        RejectReason::InvalidMetric => "the metric name is empty or too long",
        RejectReason::TooManyDimensions => "too many dimensions",
        RejectReason::DimensionTooLong => "a dimension key is empty, or a key or value is too long",
        RejectReason::TimestampInFuture => "the timestamp is too far in the future",
        RejectReason::TimestampTooOld => "the timestamp is too old",
        RejectReason::Late => "the event's window is already final",
        _ => "rejected by the engine",
    }
}

/// Adds the engine's rejections (indexed within the parsed batch) to the parser's, by
/// request index (`index` maps one to the other), in request order.
fn merge_rejections(rejected: &mut Vec<Rejection>, engine: &[Rejected], index: &[usize]) {
    rejected.extend(engine.iter().map(|r| Rejection {
        index: index[r.index],
        reason: r.reason.as_str(),
        error: reject_message(r.reason).to_owned(),
    }));
    rejected.sort_by_key(|r| r.index);
}

/// `POST /v1/events`.
async fn ingest(
    State(app): State<Arc<App>>,
    Tenant(tenant): Tenant,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let stats = &app.stats;
    stats.ingest_requests.incr();
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            stats.too_large.incr();
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than {} bytes; split it into smaller requests",
                    app.settings.max_body_bytes
                ),
            );
        }
        Err(e) => return error(e.status(), e.body_text()),
    };
    stats.ingest_bytes.add(body.len() as u64);
    let q = pairs(raw.as_deref());
    let (wait, atomic) = match (flag(&q, "wait"), flag(&q, "atomic")) {
        (Ok(w), Ok(a)) => (w, a),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    let source = param(&q, "source").unwrap_or("default");
    if !super::auth::is_name(source, b"._-") {
        return error(
            StatusCode::BAD_REQUEST,
            "`source`: use 1-64 ASCII letters, digits, `.`, `_` or `-`",
        );
    }
    // Sources are per tenant: one tenant's timestamps never move another's source.
    let source = format!("{tenant}/{source}");
    if !app.engine.is_ready() {
        return with_retry_after(
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the engine is replaying its log after a restart; retry shortly (see /readyz)",
            ),
            Duration::from_secs(1),
        );
    }
    let parsed = match wire::parse(&body, now_ms(), app.settings.max_batch_events) {
        Ok(p) => p,
        Err(BodyError::Malformed(m)) => {
            stats.malformed.incr();
            return error(StatusCode::BAD_REQUEST, m);
        }
        Err(BodyError::TooManyEvents { max }) => {
            stats.too_large.incr();
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("more than {max} events in one request; split it"),
            );
        }
    };
    let mut rejected = parsed.rejected;
    let index = parsed.index;
    let refuse_all = |rejected: &[Rejection], why: &str| {
        stats.events_rejected.add(rejected.len() as u64);
        (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({ "error": why, "accepted": 0, "rejected": rejections_json(rejected) }),
            ),
        )
            .into_response()
    };
    let batch = Batch::new(parsed.events)
        .tenant(&*tenant)
        .source(source.as_str());
    if atomic {
        // Everything wrong with the request, parse and engine checks together.
        let invalid = app.engine.validate(&batch);
        if !invalid.is_empty() || !rejected.is_empty() {
            merge_rejections(&mut rejected, &invalid, &index);
            return refuse_all(
                &rejected,
                "atomic=true and some events are invalid; nothing was ingested",
            );
        }
    }
    if batch.is_empty() {
        return refuse_all(&rejected, "no valid event in the request; see `rejected`");
    }
    let report = match app.engine.try_ingest(batch).await {
        Ok(r) => r,
        Err(e) => return ingest_refused(&app, e.error),
    };
    if !report.rejected.is_empty() {
        merge_rejections(&mut rejected, &report.rejected, &index);
    }
    if report.accepted == 0 {
        return refuse_all(&rejected, "no valid event in the request; see `rejected`");
    }
    stats.events_accepted.add(report.accepted as u64);
    stats.events_rejected.add(rejected.len() as u64);
    let status = if wait {
        if let Err(e) = app.engine.sync_log().await {
            // The batch is in the log and the shards: answer what is true (accepted,
            // not known durable), so a client does not retry it and count it twice.
            stats.log_errors.incr();
            return (
                StatusCode::ACCEPTED,
                axum::Json(json!({
                    "accepted": report.accepted,
                    "rejected": rejections_json(&rejected),
                    "durable": false,
                    "error": format!("accepted, but the log could not be synced: {e}"),
                })),
            )
                .into_response();
        }
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    app.live.record_ingest(started.elapsed());
    (
        status,
        axum::Json(json!({
            "accepted": report.accepted,
            "rejected": rejections_json(&rejected),
            "durable": wait,
        })),
    )
        .into_response()
}

/// The response to an ingest the engine refused as a whole.
fn ingest_refused(app: &App, e: EngineError) -> Response {
    let stats = &app.stats;
    match &e {
        EngineError::Busy { .. }
        | EngineError::RateLimited { .. }
        | EngineError::SourceRateLimited { .. } => {
            if matches!(e, EngineError::Busy { .. }) {
                stats.busy.incr();
            } else {
                stats.rate_limited.incr();
            }
            let after = e.retry_after().unwrap_or(Duration::from_secs(1));
            let body = json!({
                "error": e.to_string(),
                "retry_after_ms": u64::try_from(after.as_millis()).unwrap_or(u64::MAX).max(1),
            });
            with_retry_after(
                (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response(),
                after,
            )
        }
        EngineError::BatchTooLarge { .. } => {
            stats.too_large.incr();
            error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        EngineError::Closed => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        ),
        _ => {
            stats.log_errors.incr();
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

/// A parsed aggregate with the name it is reported under.
fn parse_aggregate(s: &str) -> Result<(String, Aggregate), String> {
    let s = s.trim().to_ascii_lowercase();
    let agg = match s.as_str() {
        "count" => Aggregate::Count,
        "sum" => Aggregate::Sum,
        "min" => Aggregate::Min,
        "max" => Aggregate::Max,
        "mean" | "avg" => Aggregate::Mean,
        "distinct" => Aggregate::Distinct,
        _ => {
            if let Some(k) = s.strip_prefix("top") {
                let k: usize = k
                    .parse()
                    .map_err(|_| format!("aggregate `{s}`: top-k is `topN`, e.g. top5"))?;
                Aggregate::TopK(k)
            } else if let Some(p) = s.strip_prefix('p') {
                Aggregate::Quantile(parse_percentile(p).ok_or_else(|| {
                    format!("aggregate `{s}`: a percentile is pN with 0 <= N <= 100, e.g. p50, p99, p99.9 (or p999)")
                })?)
            } else {
                return Err(format!(
                    "unknown aggregate `{s}`; use count, sum, min, max, mean, pN, distinct, topN"
                ));
            }
        }
    };
    Ok((s, agg))
}

/// `50` → 0.5, `99.9` → 0.999, `999` → 0.999, `9999` → 0.9999.
fn parse_percentile(p: &str) -> Option<f64> {
    let x: f64 = p.parse().ok()?;
    if !p.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    if (0.0..=100.0).contains(&x) {
        // Via integers, so `99.9` gives the double nearest 0.999 (not 0.999…01).
        Some((x * 1e6).round() / 1e8)
    } else if p.len() >= 3 && p.bytes().all(|b| b == b'9') {
        Some(1.0 - 10f64.powi(-(p.len() as i32)))
    } else {
        None
    }
}

/// `now`, `-15m` (before now), or milliseconds since the epoch.
fn parse_time(s: &str, now: i64) -> Result<i64, String> {
    if s == "now" {
        return Ok(now);
    }
    if let Some(ago) = s.strip_prefix('-').filter(|r| {
        r.starts_with(|c: char| c.is_ascii_digit()) && r.contains(|c: char| c.is_ascii_alphabetic())
    }) {
        let d = humantime::parse_duration(ago).map_err(|e| format!("time `{s}`: {e}"))?;
        return Ok(now.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
    }
    s.parse::<i64>().map_err(|_| {
        format!("time `{s}`: use ms since the epoch, `now`, or `-15m`-style relative times")
    })
}

pub(super) fn parse_duration(name: &str, s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{name}={s}`: {e}"))?;
    if d.is_zero() {
        return Err(format!("`{name}` must be positive"));
    }
    Ok(d)
}

/// A query from the request's pairs: the engine query, the aggregate names, and the
/// group-by keys.
pub(super) struct ParsedQuery {
    pub(super) query: Query,
    pub(super) names: Vec<String>,
    pub(super) group_by: Vec<String>,
    pub(super) from: i64,
    pub(super) to: i64,
}

pub(super) fn build_query(
    tenant: &str,
    q: &[(String, String)],
    from: i64,
    to: i64,
) -> Result<ParsedQuery, String> {
    let metric = param(q, "metric").ok_or("`metric` is required")?;
    let mut query = Query::new(tenant, metric, from, to);
    let mut names = Vec::new();
    let mut aggs = Vec::new();
    if let Some(list) = param(q, "agg") {
        for a in list.split(',').filter(|a| !a.trim().is_empty()) {
            let (name, agg) = parse_aggregate(a)?;
            names.push(name);
            aggs.push(agg);
        }
    }
    if aggs.is_empty() {
        for (name, agg) in [
            ("count", Aggregate::Count),
            ("sum", Aggregate::Sum),
            ("min", Aggregate::Min),
            ("max", Aggregate::Max),
            ("mean", Aggregate::Mean),
        ] {
            names.push(name.to_owned());
            aggs.push(agg);
        }
    }
    query = query.aggregates(aggs);
    if let Some(step) = param(q, "step") {
        query = query.step(parse_duration("step", step)?);
    }
    let mut group_by = Vec::new();
    for (k, v) in q {
        match k.as_str() {
            "filter" => {
                let (fk, fv) = v
                    .split_once(':')
                    .ok_or_else(|| format!("`filter={v}`: use key:value"))?;
                query = query.filter(fk, fv);
            }
            "group_by" => {
                for g in v.split(',').filter(|g| !g.is_empty()) {
                    query = query.group_by(g);
                    group_by.push(g.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(ParsedQuery {
        query,
        names,
        group_by,
        from,
        to,
    })
}

fn num(x: f64) -> Json {
    serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number)
}

fn value_json(v: &Value) -> Json {
    match v {
        Value::Count(n) => json!(n),
        Value::Number(x) => x.map_or(Json::Null, num),
        Value::Estimate(Some(e)) => {
            let (lo, hi) = e.bounds();
            json!({ "value": num(e.value), "rel_error": num(e.rel_error), "lower": num(lo), "upper": num(hi) })
        }
        Value::Estimate(None) => Json::Null,
        Value::TopK(items) => Json::Array(
            items
                .iter()
                .map(|t| json!({ "item": t.item.as_str(), "count": t.count, "error": t.error }))
                .collect(),
        ),
        _ => Json::Null,
    }
}

/// The JSON of one result: groups with their points.
pub(super) fn result_json(
    p: &ParsedQuery,
    result: &QueryResult,
    open: Option<&QueryResult>,
) -> Json {
    let mut groups: BTreeMap<Vec<String>, Vec<Json>> = BTreeMap::new();
    let mut add = |r: &QueryResult, partial: bool| {
        for g in &r.groups {
            let points = groups.entry(g.group.clone()).or_default();
            for pt in &g.points {
                let values: serde_json::Map<String, Json> = p
                    .names
                    .iter()
                    .zip(&pt.values)
                    .map(|(n, v)| (n.clone(), value_json(v)))
                    .collect();
                let mut o = json!({ "start": pt.start, "end": pt.end, "values": values });
                if partial {
                    o["partial"] = Json::Bool(true);
                }
                points.push(o);
            }
        }
    };
    add(result, false);
    if let Some(open) = open {
        add(open, true);
    }
    let groups: Vec<Json> = groups
        .into_iter()
        .map(|(values, mut points)| {
            points.sort_by_key(|pt| pt["start"].as_i64());
            let group: serde_json::Map<String, Json> = p
                .group_by
                .iter()
                .cloned()
                .zip(values.into_iter().map(Json::String))
                .collect();
            json!({ "group": group, "points": points })
        })
        .collect();
    json!({
        "metric": p.query.metric_name(),
        "from": p.from,
        "to": p.to,
        "resolution_ms": result.resolution_ms,
        "aggregates": p.names,
        "groups": groups,
    })
}

/// `GET /v1/query`.
async fn query(
    State(app): State<Arc<App>>,
    Tenant(tenant): Tenant,
    RawQuery(raw): RawQuery,
) -> Response {
    let started = std::time::Instant::now();
    let q = pairs(raw.as_deref());
    let now = now_ms();
    let parsed = (|| {
        let to = param(&q, "to").map_or(Ok(now), |t| parse_time(t, now))?;
        let from =
            param(&q, "from").map_or(Ok(to.saturating_sub(3_600_000)), |f| parse_time(f, now))?;
        let open = flag(&q, "open")?;
        Ok::<_, String>((build_query(&tenant, &q, from, to)?, open))
    })();
    let (p, open) = match parsed {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let result = match app.engine.query(&p.query) {
        Ok(r) => r,
        Err(e) => return engine_error(e),
    };
    let open_result = if open {
        match app
            .engine
            .query_open(&p.query, Duration::from_secs(2))
            .await
        {
            Ok(r) => Some(r),
            Err(e) => return engine_error(e),
        }
    } else {
        None
    };
    let body = result_json(&p, &result, open_result.as_ref());
    app.stats.queries.incr();
    app.stats
        .query_micros
        .add(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    axum::Json(body).into_response()
}

fn engine_error(e: EngineError) -> Response {
    match e {
        EngineError::Query(m) => error(StatusCode::BAD_REQUEST, m),
        EngineError::Timeout(_) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        EngineError::Closed => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        ),
        other => error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

/// Most series listed by `GET /v1/series`; dimension values listed per key.
const SERIES_LIMIT: usize = 1000;
const VALUES_LIMIT: usize = 100;

/// `GET /v1/series`.
async fn series(
    State(app): State<Arc<App>>,
    Tenant(tenant): Tenant,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = pairs(raw.as_deref());
    let all = app.engine.series(&tenant, param(&q, "metric"));
    let mut metrics = BTreeSet::new();
    let mut dims: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in &all {
        metrics.insert(s.metric());
        for (k, v) in s.dims() {
            let vals = dims.entry(k).or_default();
            if vals.len() < VALUES_LIMIT {
                vals.insert(v);
            }
        }
    }
    let series: Vec<Json> = all
        .iter()
        .take(SERIES_LIMIT)
        .map(|s| {
            let d: serde_json::Map<String, Json> = s
                .dims()
                .map(|(k, v)| (k.to_owned(), Json::String(v.to_owned())))
                .collect();
            json!({ "metric": s.metric(), "dims": d })
        })
        .collect();
    axum::Json(json!({
        "metrics": metrics,
        "series": series,
        "series_total": all.len(),
        "truncated": all.len() > SERIES_LIMIT,
        "dimensions": dims,
    }))
    .into_response()
}

/// The shortest partial-result interval of a live query (`/v1/tail`, `/v1/live`).
pub(super) const MIN_LIVE_INTERVAL: Duration = Duration::from_millis(100);
/// The longest partial-result interval of a live query.
const MAX_LIVE_INTERVAL: Duration = Duration::from_secs(3_600);
/// The longest look-back window of a live query.
const MAX_LIVE_WINDOW: Duration = Duration::from_secs(7 * 86_400);

/// A live query's `interval` (default 1 s, at least `min_interval`, at most an hour)
/// and `window` (default 5 min, at most 7 days), shared by `/v1/tail` and `/v1/live`.
pub(super) fn live_timing(
    interval: Option<&str>,
    window: Option<&str>,
    min_interval: Duration,
) -> Result<(Duration, Duration), String> {
    let interval = interval.map_or(Ok(Duration::from_secs(1)), |s| {
        parse_duration("interval", s)
    })?;
    if interval < min_interval || interval > MAX_LIVE_INTERVAL {
        return Err(format!(
            "`interval` must be between {} and {}",
            humantime::format_duration(min_interval),
            humantime::format_duration(MAX_LIVE_INTERVAL)
        ));
    }
    let window = window.map_or(Ok(Duration::from_secs(300)), |s| {
        parse_duration("window", s)
    })?;
    if window > MAX_LIVE_WINDOW {
        return Err(format!(
            "`window` must be at most {}",
            humantime::format_duration(MAX_LIVE_WINDOW)
        ));
    }
    Ok((interval, window))
}

/// A live update's kind as the API names it (`/v1/tail` and `/v1/live`).
pub(super) fn kind_name(kind: LiveKind) -> &'static str {
    if kind == LiveKind::Final {
        "final"
    } else {
        "partial"
    }
}

/// `GET /v1/tail`: server-sent events of a live query.
async fn tail(
    State(app): State<Arc<App>>,
    Tenant(tenant): Tenant,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = pairs(raw.as_deref());
    let now = now_ms();
    let parsed = (|| {
        let (interval, window) = live_timing(
            param(&q, "interval"),
            param(&q, "window"),
            MIN_LIVE_INTERVAL,
        )?;
        let from = now.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        // Up to a day ahead: the feed follows new windows as they come.
        let p = build_query(&tenant, &q, from, now.saturating_add(86_400_000))?;
        Ok::<_, String>((p, interval))
    })();
    let (p, interval) = match parsed {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let feed = match app.engine.live(p.query.clone(), interval) {
        Ok(f) => f,
        Err(e) => return engine_error(e),
    };
    // Keep-latest: a slow reader skips to the newest update; the server never buffers
    // more than a few updates for it.
    let rx = match feed.subscribe(4, Overflow::KeepLatest) {
        Ok(rx) => rx,
        Err(e) => return engine_error(e),
    };
    app.stats.tails.incr();
    let p = Arc::new(p);
    let mut stopping = app.stopping.clone();
    let stop = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let stream = rx.take_until(stop).map(move |u| {
        // The stream owns the feed: dropping the response (the client went away)
        // drops the feed and stops its task.
        let _feed = &feed;
        let mut body = result_json(&p, &u.result, None);
        let kind = kind_name(u.kind);
        body["kind"] = Json::String(kind.to_owned());
        body["watermark"] = json!(u.watermark);
        Ok::<_, std::convert::Infallible>(SseEvent::default().event(kind).data(body.to_string()))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `POST /v1/alerts` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertBody {
    name: String,
    metric: String,
    aggregate: String,
    op: String,
    threshold: f64,
    #[serde(default)]
    filters: BTreeMap<String, String>,
    #[serde(default, rename = "for")]
    for_duration: Option<String>,
    #[serde(default)]
    resolve_after: Option<u32>,
    #[serde(default)]
    sinks: Vec<String>,
}

fn rule_from_body(tenant: &str, b: AlertBody) -> Result<AlertRule, String> {
    let (_, agg) = parse_aggregate(&b.aggregate)?;
    let aggregate = match agg {
        Aggregate::Count => RuleAggregate::Count,
        Aggregate::Sum => RuleAggregate::Sum,
        Aggregate::Min => RuleAggregate::Min,
        Aggregate::Max => RuleAggregate::Max,
        Aggregate::Mean => RuleAggregate::Mean,
        Aggregate::Quantile(q) => RuleAggregate::Quantile(q),
        Aggregate::Distinct => RuleAggregate::Distinct,
        _ => return Err(format!("aggregate `{}` cannot be alerted on", b.aggregate)),
    };
    let op = match b.op.as_str() {
        ">" => Comparison::Above,
        ">=" => Comparison::AtLeast,
        "<" => Comparison::Below,
        "<=" => Comparison::AtMost,
        other => return Err(format!("op `{other}`: use >, >=, < or <=")),
    };
    let mut rule = AlertRule::new(
        tenant,
        &b.name,
        &b.metric,
        aggregate,
        Condition::new(op, b.threshold),
    );
    for (k, v) in &b.filters {
        rule = rule.filter(k, v);
    }
    if let Some(d) = &b.for_duration {
        rule = rule.for_duration(humantime::parse_duration(d).map_err(|e| format!("`for`: {e}"))?);
    }
    if let Some(n) = b.resolve_after {
        rule = rule.resolve(Resolve::after_false(n));
    }
    for s in &b.sinks {
        rule = rule.sink(s);
    }
    rule.validate()?;
    Ok(rule)
}

fn op_str(c: Comparison) -> &'static str {
    match c {
        Comparison::Above => ">",
        Comparison::AtLeast => ">=",
        Comparison::Below => "<",
        Comparison::AtMost => "<=",
        _ => "?",
    }
}

fn rule_json(r: &AlertRule) -> Json {
    let filters: serde_json::Map<String, Json> = r
        .filters
        .iter()
        .map(|(k, v)| (k.clone(), Json::String(v.clone())))
        .collect();
    json!({
        "key": r.key(),
        "name": r.name,
        "metric": r.metric,
        "aggregate": r.aggregate.to_string(),
        "op": op_str(r.condition.op),
        "threshold": num(r.condition.threshold),
        "filters": filters,
        "for": humantime::format_duration(r.for_duration).to_string(),
        "resolve_windows": r.resolve.windows(),
        "sinks": r.sinks,
    })
}

fn status_str(s: AlertStatus) -> &'static str {
    match s {
        AlertStatus::Inactive => "inactive",
        AlertStatus::Pending => "pending",
        AlertStatus::Firing => "firing",
        AlertStatus::Resolved => "resolved",
        _ => "unknown",
    }
}

fn state_json(s: &AlertState) -> Json {
    json!({
        "status": status_str(s.status),
        "since": s.since,
        "last_window_end": s.last_end,
        "fired": s.fired,
    })
}

fn history_json(e: &AlertEvent) -> Json {
    match e {
        AlertEvent::Evaluated {
            start,
            end,
            value,
            breached,
            ..
        } => {
            json!({ "event": "evaluated", "start": start, "end": end, "value": value.map(num), "breached": breached })
        }
        AlertEvent::Pending { since } => json!({ "event": "pending", "at": since }),
        AlertEvent::Cleared { at } => json!({ "event": "cleared", "at": at }),
        AlertEvent::Firing { at, value } => {
            json!({ "event": "firing", "at": at, "value": value.map(num) })
        }
        AlertEvent::Resolved { at, value } => {
            json!({ "event": "resolved", "at": at, "value": value.map(num) })
        }
        _ => json!({ "event": "other" }),
    }
}

async fn tenant_rules(app: &App, tenant: &str) -> Result<Vec<AlertRule>, Response> {
    let mut rules: Vec<AlertRule> = app
        .alerts
        .rules()
        .await
        .map_err(engine_error)?
        .into_iter()
        .filter(|r| r.tenant == tenant)
        .collect();
    rules.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rules)
}

/// The tenant's rule `name`, or a 404.
async fn tenant_rule(app: &App, tenant: &str, name: &str) -> Result<AlertRule, Response> {
    tenant_rules(app, tenant)
        .await?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no alert rule `{name}`")))
}

/// `POST /v1/alerts`.
async fn create_alert(
    State(app): State<Arc<App>>,
    Tenant(tenant): Tenant,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let b: AlertBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid alert rule: {e}")),
    };
    let rule = match rule_from_body(&tenant, b) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid alert rule: {e}")),
    };
    match tenant_rules(&app, &tenant).await {
        Ok(rules) if rules.iter().any(|r| r.name == rule.name) => {
            return error(
                StatusCode::CONFLICT,
                format!("alert rule `{}` exists; delete it first", rule.name),
            );
        }
        Ok(_) => {}
        Err(r) => return r,
    }
    match app.alerts.create_rule(rule.clone()).await {
        Ok(_) => (
            StatusCode::CREATED,
            axum::Json(json!({ "key": rule.key(), "rule": rule_json(&rule) })),
        )
            .into_response(),
        // A concurrent create of the same name got in between the check and here.
        Err(EngineError::RuleCommand(m)) if m.contains("exists") => error(StatusCode::CONFLICT, m),
        Err(EngineError::RuleCommand(m)) => error(StatusCode::BAD_REQUEST, m),
        Err(e) => engine_error(e),
    }
}

/// `GET /v1/alerts`.
async fn list_alerts(State(app): State<Arc<App>>, Tenant(tenant): Tenant) -> Response {
    let rules = match tenant_rules(&app, &tenant).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut out = Vec::with_capacity(rules.len());
    for r in &rules {
        let state = app.alerts.state(&r.key()).unwrap_or_default();
        out.push(json!({ "rule": rule_json(r), "state": state_json(&state) }));
    }
    axum::Json(json!({ "alerts": out })).into_response()
}

/// `GET /v1/alerts/{name}`.
async fn get_alert(
    State(app): State<Arc<App>>,
    Tenant(tenant): Tenant,
    Path(name): Path<String>,
) -> Response {
    let rule = match tenant_rule(&app, &tenant, &name).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let key = rule.key();
    let state = app.alerts.state(&key).unwrap_or_default();
    let history: Vec<Json> = match app.alerts.history(&key) {
        Ok(h) => h.iter().map(history_json).collect(),
        Err(e) => return engine_error(e),
    };
    axum::Json(json!({ "rule": rule_json(&rule), "state": state_json(&state), "history": history }))
        .into_response()
}

/// `DELETE /v1/alerts/{name}`.
async fn delete_alert(
    State(app): State<Arc<App>>,
    Tenant(tenant): Tenant,
    Path(name): Path<String>,
) -> Response {
    let rule = match tenant_rule(&app, &tenant, &name).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match app.alerts.delete_rule(&rule.key()).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(EngineError::RuleCommand(m)) => error(StatusCode::NOT_FOUND, m),
        Err(e) => engine_error(e),
    }
}

/// `GET /readyz`.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.engine.readiness() {
        r if r.is_ready() => (StatusCode::OK, "ready\n").into_response(),
        weft::analytics::Readiness::Replaying { replayed } => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "replaying", "replayed": replayed })),
        )
            .into_response(),
        other => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "failed", "error": format!("{other:?}") })),
        )
            .into_response(),
    }
}

/// `GET /metrics`.
async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = super::prom::render(&app).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_parse_by_name() {
        assert_eq!(parse_aggregate("p99").unwrap().1, Aggregate::Quantile(0.99));
        assert_eq!(
            parse_aggregate("p99.9").unwrap().1,
            Aggregate::Quantile(0.999)
        );
        assert_eq!(
            parse_aggregate("p999").unwrap().1,
            Aggregate::Quantile(0.999)
        );
        assert_eq!(
            parse_aggregate("P50").unwrap(),
            ("p50".to_owned(), Aggregate::Quantile(0.5))
        );
        assert_eq!(parse_aggregate("top5").unwrap().1, Aggregate::TopK(5));
        assert_eq!(parse_aggregate("avg").unwrap().1, Aggregate::Mean);
        for bad in ["p101", "p-1", "pfoo", "topx", "median", "p"] {
            assert!(parse_aggregate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_parse_absolute_and_relative() {
        let now = 10_000_000;
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("-15m", now), Ok(now - 900_000));
        assert_eq!(parse_time("1234", now), Ok(1234));
        assert_eq!(parse_time("-5", now), Ok(-5));
        assert!(parse_time("yesterday", now).is_err());
    }
}
