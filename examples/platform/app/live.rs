//! `GET /v1/live`: live query results over a WebSocket (the protocol is in
//! `docs/src/platform.md`, "Live updates over WebSocket").
//!
//! The pieces:
//!
//! - [`Hub`]: one shared feed per (tenant, normalized query). The first subscription of
//!   a query starts an engine [`LiveFeed`](weft::analytics::LiveFeed); every later
//!   subscription of the same query, on any connection, joins it; the feed stops when
//!   its last subscriber leaves. 10K dashboards on one query cost one query per interval.
//! - A relay task per feed: takes the engine's updates, renders each one's JSON ONCE
//!   (with its `sent_at`), and multicasts a [`Round`] (the round's final windows, if
//!   any, and its partial windows) through a weft-reactive `Subject`.
//! - Per subscription, a `Subject` receiver with capacity 1 and `Overflow::KeepLatest`:
//!   a client that does not read costs one (shared) round per subscription, never a
//!   growing buffer; the rounds it skipped are counted
//!   (`weft_live_updates_skipped_total`).
//! - Per connection, one task: reads client messages, writes updates, pings every
//!   15 s, closes after 60 s without a message or pong, and ends at server shutdown.
//! - One stats task for the whole server: the `stats` push is computed once per second
//!   and shared by every connection that asked for it.
//!
//! Why a round and not single updates: the engine publishes a round's final update and
//! its partial update back to back; with a one-slot keep-latest buffer the partial would
//! replace the final before a healthy connection took it. A round keeps the two together
//! so only a client that falls a whole round behind skips finals (and that is counted).

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::sync::watch;
use tokio::time::Instant;
use weft::analytics::{AlertManager, Engine, LiveKind, LiveUpdate};
use weft::reactive::{Overflow, Receiver, Subject};

use super::App;
use super::api::{self, ParsedQuery};

/// The connection limits and timers.
#[derive(Debug, Clone, Copy)]
pub struct LiveLimits {
    /// Subscriptions one connection may hold.
    pub max_subscriptions: usize,
    /// How often the server pings.
    pub ping_every: Duration,
    /// A connection with no message or pong for this long is closed (and a write
    /// blocked this long, by a client that does not read, ends the connection too).
    pub idle_timeout: Duration,
    /// The smallest `interval` a subscription may ask for.
    pub min_interval: Duration,
    /// The WebSocket read buffer per connection (bytes; tungstenite allocates it up
    /// front, so it is most of a connection's memory: client messages are small, and a
    /// bigger one grows it).
    pub read_buffer: usize,
    /// The WebSocket write buffer per connection (bytes).
    pub write_buffer: usize,
    /// The largest message a client may send (bytes).
    pub max_message: usize,
}

impl Default for LiveLimits {
    fn default() -> Self {
        LiveLimits {
            max_subscriptions: 16,
            ping_every: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            min_interval: api::MIN_LIVE_INTERVAL,
            read_buffer: 1 << 10,
            write_buffer: 4 << 10,
            max_message: 64 << 10,
        }
    }
}

/// One round of a shared feed, rendered once for every subscriber: each string is the
/// tail of an `update` frame (everything after `"id":`).
#[derive(Debug)]
pub struct Round {
    final_tail: Option<String>,
    partial_tail: String,
    /// Whole frames by subscription id (`"id":` value as JSON), built by the first
    /// subscriber with that id and shared (refcounted) by the others: dashboards use
    /// the same ids, so 10K connections send one buffer, not 10K copies.
    frames: Mutex<Vec<RoundFrames>>,
}

/// One subscription id's frames of a round: the final update, if any, and the partial.
type RoundFrames = (String, Option<Utf8Bytes>, Utf8Bytes);

/// Distinct subscription ids a round keeps frames for (others render their own).
const FRAMES_KEPT: usize = 8;

impl Round {
    fn new(final_tail: Option<String>, partial_tail: String) -> Self {
        Round {
            final_tail,
            partial_tail,
            frames: Mutex::new(Vec::new()),
        }
    }

    /// The round's frames for the subscription `id_json`: the final update (if the
    /// round closed windows), then the partial.
    fn frames_for(&self, id_json: &str) -> Vec<Utf8Bytes> {
        let mut cache = lock(&self.frames);
        let (f, p) = match cache.iter().find(|(id, ..)| id == id_json) {
            Some((_, f, p)) => (f.clone(), p.clone()),
            None => {
                let f = self
                    .final_tail
                    .as_ref()
                    .map(|t| Utf8Bytes::from(update_frame(id_json, t)));
                let p = Utf8Bytes::from(update_frame(id_json, &self.partial_tail));
                if cache.len() < FRAMES_KEPT {
                    cache.push((id_json.to_owned(), f.clone(), p.clone()));
                }
                (f, p)
            }
        };
        f.into_iter().chain(std::iter::once(p)).collect()
    }
}

type FeedMap = Mutex<HashMap<String, Weak<Feed>>>;

/// A subscription's feed, its receiver, and whether the feed already existed.
type Joined = (Arc<Feed>, Receiver<Arc<Round>>, bool);

/// A feed shared by every subscription of one (tenant, normalized query).
#[derive(Debug)]
struct Feed {
    key: String,
    subject: Arc<Subject<Arc<Round>>>,
    relay: tokio::task::JoinHandle<()>,
    feeds: Arc<FeedMap>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        // The relay owns the engine feed: aborting it stops the engine's query task.
        self.relay.abort();
        self.subject.complete();
        let mut map = lock(&self.feeds);
        if map.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
            map.remove(&self.key);
        }
    }
}

fn ingest_histogram() -> hdrhistogram::Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits: valid bounds, so this cannot fail.
    hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3)
        .expect("1..600e6 with 3 significant digits are valid histogram bounds")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A snapshot of the hub's gauges and counters (`/metrics` and the tests read it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStatus {
    /// Open WebSocket connections.
    pub connections: u64,
    /// Subscriptions over all connections.
    pub subscriptions: u64,
    /// Distinct shared feeds.
    pub feeds: u64,
    /// Update frames sent.
    pub updates_sent: u64,
    /// Rounds skipped for subscribers that had not taken the previous one (keep-latest).
    pub updates_skipped: u64,
    /// Rounds buffered for subscribers now (at most one per subscription).
    pub buffered: u64,
}

/// The live hub: shared feeds, the shared stats push, and the counters.
#[derive(Debug)]
pub struct Hub {
    feeds: Arc<FeedMap>,
    /// Read by each connection as it opens.
    limits: Mutex<LiveLimits>,
    connections: AtomicU64,
    subscriptions: AtomicU64,
    updates_sent: AtomicU64,
    /// Skips of subscribers that have left (the live ones are read from their feeds).
    retired_skipped: AtomicU64,
    stats: watch::Receiver<Option<Utf8Bytes>>,
    stats_tx: watch::Sender<Option<Utf8Bytes>>,
    /// Ingest request latencies (µs) since the last stats push: its `ingest_p99_ms`.
    ingest: Mutex<hdrhistogram::Histogram<u64>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(LiveLimits::default())
    }
}

impl Hub {
    /// An empty hub.
    pub fn new(limits: LiveLimits) -> Self {
        let (stats_tx, stats) = watch::channel(None);
        Hub {
            feeds: Arc::new(Mutex::new(HashMap::new())),
            limits: Mutex::new(limits),
            connections: AtomicU64::new(0),
            subscriptions: AtomicU64::new(0),
            updates_sent: AtomicU64::new(0),
            retired_skipped: AtomicU64::new(0),
            stats,
            stats_tx,
            ingest: Mutex::new(ingest_histogram()),
        }
    }

    /// Records how long an accepted ingest request took (for the stats push).
    pub fn record_ingest(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        lock(&self.ingest).saturating_record(us);
    }

    /// The p99 of the ingest requests since the last call, ms (`None` without any).
    fn take_ingest_p99(&self) -> Option<f64> {
        let mut h = lock(&self.ingest);
        let p99 = (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1e3);
        h.reset();
        p99
    }

    /// The limits.
    pub fn limits(&self) -> LiveLimits {
        *lock(&self.limits)
    }

    /// Changes the limits of the connections opened from now on (the tests shorten
    /// the timers).
    #[allow(dead_code)] // only tests/platform_live.rs calls it
    pub fn set_limits(&self, limits: LiveLimits) {
        *lock(&self.limits) = limits;
    }

    /// The gauges and counters now.
    pub fn status(&self) -> LiveStatus {
        let map = lock(&self.feeds);
        let mut st = LiveStatus {
            connections: self.connections.load(Ordering::Relaxed),
            subscriptions: self.subscriptions.load(Ordering::Relaxed),
            updates_sent: self.updates_sent.load(Ordering::Relaxed),
            // Read under the map lock, as subscriptions retire under it: a skip moves
            // from a live subscriber to the retired sum atomically for this reader.
            updates_skipped: self.retired_skipped.load(Ordering::Relaxed),
            ..LiveStatus::default()
        };
        let feeds: Vec<Arc<Feed>> = map.values().filter_map(Weak::upgrade).collect();
        for feed in &feeds {
            st.feeds += 1;
            let m = feed.subject.metrics();
            st.updates_skipped += m.dropped;
            st.buffered += m.buffered;
        }
        // Unlock before the handles go: dropping the last one takes the lock.
        drop(map);
        drop(feeds);
        st
    }

    /// Subscribes to the shared feed of `key`, starting it (an engine live feed of
    /// `p` at `interval`) when there is none: the feed, the receiver, and whether the
    /// feed already existed.
    fn join(
        &self,
        key: String,
        engine: &Engine,
        p: &Arc<ParsedQuery>,
        interval: Duration,
    ) -> Result<Joined, String> {
        let mut map = lock(&self.feeds);
        // A feed whose engine query ended (the engine stopped or the query failed) is
        // replaced, not joined; its handle is dropped only after the lock (the last
        // handle's drop takes it).
        let mut ended = None;
        if let Some(feed) = map.get(&key).and_then(Weak::upgrade) {
            if feed.subject.is_complete() {
                ended = Some(feed);
            } else {
                let rx = feed.subject.subscribe(1, Overflow::KeepLatest);
                drop(map);
                let rx = rx.map_err(|e| e.to_string())?;
                self.subscriptions.fetch_add(1, Ordering::Relaxed);
                return Ok((feed, rx, true));
            }
        }
        let joined = self.start_feed(&mut map, key, engine, p, interval);
        drop(map);
        drop(ended);
        joined
    }

    /// Starts the feed of `key` (under the map lock).
    fn start_feed(
        &self,
        map: &mut HashMap<String, Weak<Feed>>,
        key: String,
        engine: &Engine,
        p: &Arc<ParsedQuery>,
        interval: Duration,
    ) -> Result<Joined, String> {
        let live = engine
            .live(p.query.clone(), interval)
            .map_err(|e| e.to_string())?;
        // The relay keeps up (it never waits: its own subscribers are keep-latest), so
        // `Block` here loses nothing and holds the engine feed back only if it could not.
        let updates = live
            .subscribe(2, Overflow::Block)
            .map_err(|e| e.to_string())?;
        let subject = Arc::new(Subject::new());
        let rx = subject
            .subscribe(1, Overflow::KeepLatest)
            .map_err(|e| e.to_string())?;
        let relay = tokio::spawn(relay(live, updates, Arc::clone(p), Arc::clone(&subject)));
        let feed = Arc::new(Feed {
            key: key.clone(),
            subject,
            relay,
            feeds: Arc::clone(&self.feeds),
        });
        map.insert(key, Arc::downgrade(&feed));
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
        Ok((feed, rx, false))
    }

    /// Ends a subscription and returns its id: drops its receiver and moves its skips to
    /// the retired sum under the map lock (so `status` never sees the count go down),
    /// then drops its feed handle outside it (the feed's drop takes the lock).
    fn retire(&self, sub: Sub) -> String {
        let Sub { id, rx, feed, .. } = sub;
        {
            let _map = lock(&self.feeds);
            self.retired_skipped
                .fetch_add(rx.lagged(), Ordering::Relaxed);
            drop(rx);
            self.subscriptions.fetch_sub(1, Ordering::Relaxed);
        }
        // After the lock: the last subscription's feed takes it on drop.
        drop(feed);
        id
    }

    /// The server's stats push, computed once per second for every connection that
    /// asked for it (the task ends when the hub is dropped or `stopping` turns true).
    pub fn spawn_stats(
        self: &Arc<Self>,
        engine: Engine,
        alerts: AlertManager,
        mut stopping: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut prev: Option<(Instant, u64)> = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                let Some(hub) = hub.upgrade() else { return };
                let m = engine.metrics();
                let now = Instant::now();
                let rate = prev.map_or(0.0, |(at, n): (Instant, u64)| {
                    let secs = now.duration_since(at).as_secs_f64();
                    if secs > 0.0 {
                        m.accepted.saturating_sub(n) as f64 / secs
                    } else {
                        0.0
                    }
                });
                prev = Some((now, m.accepted));
                let firing = alerts.metrics().await.map_or(0, |a| a.firing as u64);
                let body = json!({
                    "type": "stats",
                    "sent_at": api::now_ms(),
                    "events_per_s": (rate * 10.0).round() / 10.0,
                    "accepted_total": m.accepted,
                    "rejected_total": m.rejected.iter().map(|(_, n)| n).sum::<u64>(),
                    // Over the last second's accepted ingest requests; null without any.
                    "ingest_p99_ms": hub.take_ingest_p99().map(|ms| (ms * 1e3).round() / 1e3),
                    "connections": hub.connections.load(Ordering::Relaxed),
                    "alerts_firing": firing,
                });
                hub.stats_tx.send_replace(Some(body.to_string().into()));
            }
        })
    }
}

/// Takes the engine feed's updates, renders each once, and multicasts them in rounds.
/// Owns the engine feed: aborting the relay stops the engine's query task.
async fn relay(
    live: weft::analytics::LiveFeed,
    mut updates: Receiver<Arc<LiveUpdate>>,
    p: Arc<ParsedQuery>,
    out: Arc<Subject<Arc<Round>>>,
) {
    let _live = live;
    let mut pending_final = None;
    while let Some(u) = updates.next().await {
        let tail = update_tail(&p, &u.result, u.kind, u.watermark, api::now_ms());
        if u.kind == LiveKind::Final {
            // The engine sends a round's final update right before its partial one.
            pending_final = Some(tail);
            continue;
        }
        let round = Round::new(pending_final.take(), tail);
        if out.send(Arc::new(round)).await.is_err() {
            break;
        }
    }
    out.complete();
}

/// The tail of an `update` frame: everything after `"id":`.
fn update_tail(
    p: &ParsedQuery,
    result: &weft::analytics::QueryResult,
    kind: LiveKind,
    watermark: i64,
    sent_at: i64,
) -> String {
    let kind = api::kind_name(kind);
    let result = api::result_json(p, result, None);
    format!(
        ",\"kind\":\"{kind}\",\"watermark\":{watermark},\"sent_at\":{sent_at},\"result\":{result}}}"
    )
}

fn update_frame(id_json: &str, tail: &str) -> String {
    let mut s = String::with_capacity(26 + id_json.len() + tail.len());
    s.push_str("{\"type\":\"update\",\"id\":");
    s.push_str(id_json);
    s.push_str(tail);
    s
}

fn error_frame(id: Option<&str>, message: &str) -> String {
    json!({ "type": "error", "id": id, "error": message }).to_string()
}

/// Raises this process's open-files soft limit to its hard limit (10K sockets need
/// 10K descriptors; the usual soft limit is 1024) and logs the result.
pub fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(limit = n, "open-files limit (RLIMIT_NOFILE) raised"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
}

/// `GET /v1/live`: authenticates (header or `?token=`) and upgrades.
pub async fn live(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let token = raw.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| format!("Bearer {v}"))
    });
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|h| h.as_bytes())
        .or(token.as_deref().map(str::as_bytes));
    let tenant = match app.tenants.authenticate(auth) {
        Ok(t) => t,
        Err(e) => return api::unauthorized(&app, e),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => return r.into_response(),
    };
    let l = app.live.limits();
    ws.read_buffer_size(l.read_buffer)
        .write_buffer_size(l.write_buffer)
        .max_message_size(l.max_message)
        .max_frame_size(l.max_message)
        .on_upgrade(move |socket| connection(app, tenant, socket))
}

/// One subscription of a connection.
struct Sub {
    id: String,
    id_json: String,
    rx: Receiver<Arc<Round>>,
    feed: Arc<Feed>,
}

/// A subscribe message's query (the `GET /v1/tail` parameters).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubQuery {
    metric: String,
    #[serde(default)]
    agg: Option<OneOrMany>,
    #[serde(default)]
    group_by: Option<OneOrMany>,
    #[serde(default)]
    filter: Option<OneOrMany>,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    step: Option<String>,
}

/// A comma list as a string, or a JSON list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMsg {
    Subscribe { id: String, query: SubQuery },
    Unsubscribe { id: String },
    Stats { on: bool },
}

/// A parsed subscription: the query, its hub key, its interval.
struct SubSpec {
    parsed: Arc<ParsedQuery>,
    key: String,
    interval: Duration,
}

fn sub_spec(tenant: &str, q: &SubQuery, limits: &LiveLimits) -> Result<SubSpec, String> {
    let (interval, window) = api::live_timing(
        q.interval.as_deref(),
        q.window.as_deref(),
        limits.min_interval,
    )?;
    let mut pairs = vec![("metric".to_owned(), q.metric.clone())];
    if let Some(a) = &q.agg {
        pairs.push(("agg".to_owned(), a.items().join(",")));
    }
    if let Some(g) = &q.group_by {
        pairs.push(("group_by".to_owned(), g.items().join(",")));
    }
    let mut filters = q.filter.as_ref().map(OneOrMany::items).unwrap_or_default();
    filters.sort();
    filters.dedup();
    for f in &filters {
        pairs.push(("filter".to_owned(), f.clone()));
    }
    if let Some(s) = &q.step {
        pairs.push(("step".to_owned(), s.clone()));
    }
    let now = api::now_ms();
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    // Up to 30 days ahead: a shared feed follows new windows for as long as it lives.
    let parsed = api::build_query(
        tenant,
        &pairs,
        now.saturating_sub(window_ms),
        now.saturating_add(30 * 86_400_000),
    )?;
    let key = format!(
        "{tenant}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{window_ms}\u{0}{}\u{0}{}",
        q.metric,
        parsed.names.join(","),
        parsed.group_by.join(","),
        filters.join("\u{1}"),
        interval.as_millis(),
        q.step.as_deref().unwrap_or(""),
    );
    Ok(SubSpec {
        parsed: Arc::new(parsed),
        key,
        interval,
    })
}

/// Counts the connection while it lives.
struct ConnGuard<'a>(&'a Hub);

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the connection loop does next.
enum Step {
    Send(Vec<Utf8Bytes>),
    Ping,
    Nothing,
    Close(u16, &'static str),
    End,
}

/// The next round of any subscription (round-robin from `*next`, so a busy feed does
/// not starve the others); `None` when that subscription's feed ended.
fn poll_subs(
    subs: &mut [Sub],
    next: &mut usize,
    cx: &mut std::task::Context<'_>,
) -> Poll<(usize, Option<Arc<Round>>)> {
    let n = subs.len();
    for k in 0..n {
        let i = (*next + k) % n;
        if let Poll::Ready(item) = subs[i].rx.poll_next_unpin(cx) {
            *next = (i + 1) % n;
            return Poll::Ready((i, item));
        }
    }
    Poll::Pending
}

async fn connection(app: Arc<App>, tenant: Arc<str>, mut socket: WebSocket) {
    let hub = &*app.live;
    hub.connections.fetch_add(1, Ordering::Relaxed);
    let _guard = ConnGuard(hub);
    let limits = hub.limits();
    let mut subs: Vec<Sub> = Vec::new();
    let mut next = 0;
    let mut stats: Option<watch::Receiver<Option<Utf8Bytes>>> = None;
    let mut stopping = app.stopping.clone();
    let mut ping = tokio::time::interval_at(Instant::now() + limits.ping_every, limits.ping_every);
    // One timer, moved forward when the client speaks (not a new one per update).
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    loop {
        let step = tokio::select! {
            biased;
            _ = stopping.wait_for(|s| *s) => Step::Close(1001, "the server is shutting down"),
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Step::End,
                Some(Ok(m)) => {
                    idle.as_mut().reset(Instant::now() + limits.idle_timeout);
                    match m {
                        Message::Text(t) => Step::Send(
                            handle(&app, &tenant, t.as_str(), &mut subs, &mut stats)
                                .into_iter()
                                .map(Utf8Bytes::from)
                                .collect(),
                        ),
                        Message::Binary(_) => Step::Send(vec![error_frame(
                            None,
                            "binary messages are not understood; send JSON text",
                        ).into()]),
                        _ => Step::Nothing,
                    }
                }
            },
            (i, round) = poll_fn(|cx| poll_subs(&mut subs, &mut next, cx)) => match round {
                Some(round) => {
                    let frames = round.frames_for(&subs[i].id_json);
                    hub.updates_sent.fetch_add(frames.len() as u64, Ordering::Relaxed);
                    Step::Send(frames)
                }
                None => {
                    let id = hub.retire(subs.swap_remove(i));
                    Step::Send(vec![error_frame(
                        Some(&id),
                        "the live query ended (the server is stopping or the query failed); subscribe again",
                    ).into()])
                }
            },
            changed = async {
                match stats.as_mut() {
                    Some(rx) => rx.changed().await,
                    None => std::future::pending().await,
                }
            } => match (changed, stats.as_ref()) {
                (Ok(()), Some(rx)) => {
                    let text = rx.borrow().clone();
                    text.map_or(Step::Nothing, |t| Step::Send(vec![t]))
                }
                _ => Step::Nothing,
            },
            _ = ping.tick() => Step::Ping,
            () = &mut idle => Step::Close(1000, "idle timeout: no message or pong for too long"),
        };
        let frames = match step {
            Step::Send(frames) => frames.into_iter().map(Message::Text).collect(),
            Step::Ping => vec![Message::Ping(Default::default())],
            Step::Nothing => continue,
            Step::Close(code, reason) => vec![Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }))],
            Step::End => break,
        };
        let closing = frames.iter().any(|m| matches!(m, Message::Close(_)));
        // The frames go out together (a round's final and partial: one write). A client
        // that does not read blocks this write; past the idle timeout the connection
        // is dropped rather than held open, and shutdown does not wait for it either.
        let write = async {
            for f in frames {
                socket.feed(f).await?;
            }
            socket.flush().await
        };
        let sent = tokio::select! {
            biased;
            r = tokio::time::timeout(limits.idle_timeout, write) => matches!(r, Ok(Ok(()))),
            _ = stopping.wait_for(|s| *s) => false,
        };
        if !sent || closing {
            break;
        }
    }
    for s in subs {
        hub.retire(s);
    }
}

/// Handles one client text message: the frames to send back.
fn handle(
    app: &App,
    tenant: &str,
    text: &str,
    subs: &mut Vec<Sub>,
    stats: &mut Option<watch::Receiver<Option<Utf8Bytes>>>,
) -> Vec<String> {
    let hub = &*app.live;
    let value: Json = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![error_frame(None, &format!("not JSON: {e}"))],
    };
    let id = value.get("id").and_then(Json::as_str).map(str::to_owned);
    let msg: ClientMsg = match serde_json::from_value(value) {
        Ok(m) => m,
        Err(e) => {
            return vec![error_frame(
                id.as_deref(),
                &format!(
                    "invalid message ({e}); send {{\"type\": \"subscribe\" | \"unsubscribe\" | \"stats\", ...}}"
                ),
            )];
        }
    };
    match msg {
        ClientMsg::Subscribe { id, query } => {
            if id.is_empty() || id.chars().count() > 64 {
                return vec![error_frame(Some(&id), "`id` must be 1 to 64 characters")];
            }
            let existing = subs.iter().position(|s| s.id == id);
            let limits = hub.limits();
            if existing.is_none() && subs.len() >= limits.max_subscriptions {
                return vec![error_frame(
                    Some(&id),
                    &format!(
                        "at most {} subscriptions per connection; unsubscribe one first",
                        limits.max_subscriptions
                    ),
                )];
            }
            let spec = match sub_spec(tenant, &query, &limits) {
                Ok(s) => s,
                Err(e) => return vec![error_frame(Some(&id), &e)],
            };
            let (feed, rx, joined) =
                match hub.join(spec.key, &app.engine, &spec.parsed, spec.interval) {
                    Ok(x) => x,
                    Err(e) => return vec![error_frame(Some(&id), &e)],
                };
            let id_json = Json::String(id.clone()).to_string();
            let mut out = vec![json!({ "type": "subscribed", "id": id }).to_string()];
            if joined {
                // The feed's first round (long gone) carried the closed windows of the
                // last `window`: a subscriber joining later gets them from the store.
                if let Ok(r) = app.engine.query(&spec.parsed.query) {
                    let tail = update_tail(
                        &spec.parsed,
                        &r,
                        LiveKind::Final,
                        app.engine.watermark(),
                        api::now_ms(),
                    );
                    out.push(update_frame(&id_json, &tail));
                    hub.updates_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            let sub = Sub {
                id,
                id_json,
                rx,
                feed,
            };
            if let Some(i) = existing {
                hub.retire(std::mem::replace(&mut subs[i], sub));
            } else {
                subs.push(sub);
            }
            out
        }
        ClientMsg::Unsubscribe { id } => match subs.iter().position(|s| s.id == id) {
            Some(i) => {
                hub.retire(subs.swap_remove(i));
                Vec::new()
            }
            None => vec![error_frame(Some(&id), "no subscription with this id")],
        },
        ClientMsg::Stats { on } => {
            *stats = on.then(|| {
                let mut rx = hub.stats.clone();
                rx.mark_changed();
                rx
            });
            Vec::new()
        }
    }
}
