//! Alert notifications: [`Sink`]s (an HTTP webhook over a weft-pool of keep-alive
//! connections, or anything implementing the trait), and the [`Notifier`] that delivers
//! to them through one weft-circuitbreaker breaker per sink with retry and backoff,
//! keeping a [`DeadLetter`] for every notification whose delivery finally failed.
//!
//! Delivery of one notification to one sink:
//!
//! 1. an attempt asks the sink's breaker for a permit; an open breaker refuses it at
//!    once (the sink is not called);
//! 2. a failed or refused attempt is retried after the policy's backoff (exponential
//!    with jitter by default), so a breaker that half-opens during the backoff gets a
//!    trial call;
//! 3. when the policy gives up (attempts or elapsed time), the notification, the sink,
//!    the attempts and the last error become a dead letter: counted, queryable with
//!    [`Notifier::dead_letters`], never dropped silently.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_circuitbreaker::retry::{Retry, RetryBudget, RetryError, RetryPolicy};
use weft_circuitbreaker::{CallError, CircuitBreaker, SlidingWindow, State};
use weft_pool::{Manager, Pool};
use weft_sync::Mutex;
use weft_sync::atomic::{AtomicU64, Ordering};
use weft_time::{Backoff, Clock, Jitter, TokioClock};

use crate::Error;
use crate::alert::AlertStatus;

/// What a sink is told when an alert fires or resolves (serialised as the webhook's
/// JSON body).
///
/// ```
/// use weft_analytics::{AlertStatus, Notification};
/// let n = Notification { rule: "acme/errors".into(), status: AlertStatus::Firing,
///     at: 60_000, value: Some(12.0), metric: "http.errors".into(), threshold: 10.0 };
/// assert!(n.to_json().contains("\"Firing\""));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The rule's key, `tenant/name`.
    pub rule: String,
    /// `Firing` or `Resolved`.
    pub status: AlertStatus,
    /// The end of the window that caused it (event time, ms).
    pub at: i64,
    /// That window's value.
    pub value: Option<f64>,
    /// The metric.
    pub metric: String,
    /// The firing threshold.
    pub threshold: f64,
}

impl Notification {
    /// The JSON body.
    pub fn to_json(&self) -> String {
        // A struct of strings and numbers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Connecting, writing or reading failed.
    #[error("webhook I/O failed: {0}; the endpoint may be down")]
    Io(String),
    /// The endpoint answered with a non-2xx status.
    #[error("webhook answered HTTP {0}")]
    Status(u16),
    /// The endpoint's answer was not HTTP/1.1 we understand.
    #[error("webhook answered malformed HTTP: {0}")]
    Protocol(String),
    /// The attempt took longer than the sink's timeout.
    #[error("webhook did not answer within {0:?}")]
    Timeout(Duration),
}

/// A boxed delivery future.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// Where notifications go. Implement it for an in-process fake in tests, or a
/// transport of your own; [`HttpSink`] posts JSON webhooks.
///
/// ```
/// use weft_analytics::{Notification, Sink, SinkFuture};
/// #[derive(Debug)]
/// struct Stdout;
/// impl Sink for Stdout {
///     fn deliver<'a>(&'a self, n: &'a Notification) -> SinkFuture<'a> {
///         Box::pin(async move { println!("{}", n.to_json()); Ok(()) })
///     }
/// }
/// let notifier = weft_analytics::Notifier::builder().sink("stdout", Stdout).build()?;
/// assert!(notifier.has_sink("stdout"));
/// # Ok::<(), weft_analytics::Error>(())
/// ```
pub trait Sink: Send + Sync + fmt::Debug + 'static {
    /// One delivery attempt (no retries: the notifier retries).
    fn deliver<'a>(&'a self, notification: &'a Notification) -> SinkFuture<'a>;
}

/// The weft-pool manager of [`HttpSink`]'s connections: plain TCP to one address.
#[derive(Debug)]
pub struct HttpConnector {
    addr: String,
}

impl Manager for HttpConnector {
    type Object = TcpStream;
    type Error = std::io::Error;

    async fn create(&self) -> Result<TcpStream, std::io::Error> {
        let s = TcpStream::connect(&self.addr).await?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    /// An idle connection the server has closed (or that has unread bytes) is not
    /// reused: the checkout opens a new one instead of failing a delivery attempt.
    async fn recycle(
        &self,
        s: &mut TcpStream,
        _metrics: &weft_pool::Metrics,
    ) -> Result<(), weft_pool::RecycleError<std::io::Error>> {
        let mut byte = [0u8; 1];
        match s.try_read(&mut byte) {
            Ok(0) => Err(weft_pool::RecycleError::Message(
                "closed by the server".into(),
            )),
            Ok(_) => Err(weft_pool::RecycleError::Message(
                "unexpected bytes on an idle connection".into(),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(weft_pool::RecycleError::Backend(e)),
        }
    }
}

/// A webhook: `POST`s each notification as JSON to an `http://` URL over HTTP/1.1
/// keep-alive connections from a weft-pool. A connection that fails or that the server
/// closes is taken out of the pool.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sink = weft_analytics::HttpSink::new("http://127.0.0.1:9/alerts")?;
/// assert_eq!(sink.path(), "/alerts");
/// assert!(weft_analytics::HttpSink::new("https://example.com").is_err(), "plain http only");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct HttpSink {
    host: String,
    path: String,
    pool: Pool<HttpConnector>,
    timeout: Duration,
}

impl HttpSink {
    /// A sink posting to `url` (`http://host:port/path`), with up to 4 connections and a
    /// 10 s timeout per attempt.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a URL that is not plain `http://host:port[/path]`, or
    /// when called outside a tokio runtime.
    pub fn new(url: &str) -> Result<Self, Error> {
        Self::with_options(url, 4, Duration::from_secs(10))
    }

    /// A sink with `connections` pooled connections and a per-attempt `timeout`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and for zero connections or timeout.
    pub fn with_options(url: &str, connections: usize, timeout: Duration) -> Result<Self, Error> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| Error::Config(format!("webhook URL {url:?} must start with http://")))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_empty() || !host.contains(':') {
            return Err(Error::Config(format!(
                "webhook URL {url:?} needs host:port"
            )));
        }
        if timeout.is_zero() {
            return Err(Error::Config("the webhook timeout must be positive".into()));
        }
        let pool = Pool::builder(HttpConnector {
            addr: host.to_owned(),
        })
        .max_size(connections)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .build()
        .map_err(|e| Error::Config(e.to_string()))?;
        Ok(HttpSink {
            host: host.to_owned(),
            path: path.to_owned(),
            pool,
            timeout,
        })
    }

    /// The request path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The connection pool's status (open and idle connections, waiters).
    pub fn pool_status(&self) -> weft_pool::Status {
        self.pool.status()
    }

    async fn post(&self, body: &str) -> Result<(), SinkError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| SinkError::Io(e.to_string()))?;
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{}",
            self.path,
            self.host,
            body.len(),
            body
        );
        let outcome = exchange(&mut conn, request.as_bytes()).await;
        match outcome {
            Ok((status, keep)) => {
                if !keep {
                    drop(weft_pool::Object::take(conn));
                }
                if (200..300).contains(&status) {
                    Ok(())
                } else {
                    Err(SinkError::Status(status))
                }
            }
            Err(e) => {
                // The connection's state is unknown: close it.
                drop(weft_pool::Object::take(conn));
                Err(e)
            }
        }
    }
}

/// Writes `request`, reads one response; returns its status and whether the connection
/// may be reused.
async fn exchange(conn: &mut TcpStream, request: &[u8]) -> Result<(u16, bool), SinkError> {
    let io = |e: std::io::Error| SinkError::Io(e.to_string());
    conn.write_all(request).await.map_err(io)?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(SinkError::Protocol("response head over 64 KiB".into()));
        }
        let n = conn.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Err(SinkError::Io("connection closed before a response".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| SinkError::Protocol("response head is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(SinkError::Protocol(format!("status line {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| SinkError::Protocol(format!("status line {status_line:?}")))?;
    let mut length: Option<usize> = None;
    let mut keep = version == "HTTP/1.1";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse()
                    .map_err(|_| SinkError::Protocol(format!("content-length {value:?}")))?,
            );
        } else if name.eq_ignore_ascii_case("connection") {
            keep = !value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // No chunked decoding: read what is there and do not reuse the connection.
            keep = false;
        }
    }
    let have = buf.len() - head_end;
    match length {
        Some(len) => {
            let mut left = len.saturating_sub(have);
            while left > 0 {
                let n = conn.read(&mut chunk).await.map_err(io)?;
                if n == 0 {
                    return Err(SinkError::Io("connection closed mid-body".into()));
                }
                left = left.saturating_sub(n);
            }
            if have > len {
                keep = false; // bytes past the body: not a conversation we follow
            }
        }
        None => keep = false,
    }
    Ok((status, keep))
}

impl Sink for HttpSink {
    fn deliver<'a>(&'a self, n: &'a Notification) -> SinkFuture<'a> {
        Box::pin(async move {
            let body = n.to_json();
            match tokio::time::timeout(self.timeout, self.post(&body)).await {
                Ok(r) => r,
                Err(_) => Err(SinkError::Timeout(self.timeout)),
            }
        })
    }
}

/// A notification whose delivery finally failed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The sink's name.
    pub sink: String,
    /// What was to be delivered.
    pub notification: Notification,
    /// Attempts made (refusals by an open breaker included).
    pub attempts: u32,
    /// The last attempt's error.
    pub error: String,
}

/// A snapshot of the notifier's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NotifierMetrics {
    /// Notifications delivered (one per sink).
    pub delivered: u64,
    /// Attempts made, first attempts included.
    pub attempts: u64,
    /// Attempts an open breaker refused (the sink was not called).
    pub refused_by_breaker: u64,
    /// Deliveries that became dead letters.
    pub dead_lettered: u64,
    /// Dead letters discarded, oldest first, because more than the configured
    /// maximum were kept (see [`NotifierBuilder::max_dead_letters`]).
    pub dead_letters_discarded: u64,
}

struct SinkEntry {
    sink: Arc<dyn Sink>,
    breaker: CircuitBreaker<Arc<dyn Clock>>,
}

impl fmt::Debug for SinkEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkEntry")
            .field("sink", &self.sink)
            .field("breaker", &self.breaker.state())
            .finish()
    }
}

/// Builds a [`Notifier`].
///
/// Defaults: 4 attempts over at most 60 s with exponential backoff from 200 ms (full
/// jitter, at most 10 s); per sink a breaker over the last 10 calls that opens at a
/// 50 % failure rate after 4 calls, for 5 s; tokio's clock.
pub struct NotifierBuilder {
    sinks: BTreeMap<String, Arc<dyn Sink>>,
    retry: Option<RetryPolicy>,
    budget: Option<RetryBudget<Arc<dyn Clock>>>,
    max_dead: usize,
    min_calls: u32,
    open_for: Duration,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for NotifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifierBuilder")
            .field("sinks", &self.sinks.keys().collect::<Vec<_>>())
            .field("retry", &self.retry)
            .field("budget", &self.budget.as_ref().map(RetryBudget::status))
            .finish_non_exhaustive()
    }
}

impl NotifierBuilder {
    /// Adds (or replaces) the sink called `name`.
    pub fn sink(mut self, name: &str, sink: impl Sink) -> Self {
        self.sinks.insert(name.to_owned(), Arc::new(sink));
        self
    }

    /// The retry policy of every delivery.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// A retry budget shared by every delivery: retries may add at most this share of
    /// recent deliveries (see weft-circuitbreaker's `RetryBudget`), so an outage of
    /// every sink cannot multiply the notifier's traffic. A delivery whose retry the
    /// budget refuses is dead-lettered at once.
    pub fn retry_budget(mut self, budget: RetryBudget<Arc<dyn Clock>>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Keeps at most `n` dead letters (default 10 000); beyond that the oldest is
    /// discarded and counted (`NotifierMetrics::dead_letters_discarded`), so a sink
    /// down for days cannot exhaust memory.
    pub fn max_dead_letters(mut self, n: usize) -> Self {
        self.max_dead = n;
        self
    }

    /// Each sink's breaker opens after `min_calls` calls of which half failed, for
    /// `open_for`.
    pub fn breaker(mut self, min_calls: u32, open_for: Duration) -> Self {
        self.min_calls = min_calls;
        self.open_for = open_for;
        self
    }

    /// The breakers' clock (default: tokio's, so `tokio::time::pause` drives them).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the notifier.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid retry or breaker setting.
    pub fn build(self) -> Result<Notifier, Error> {
        let cfg = |e: &dyn fmt::Display| Error::Config(e.to_string());
        if self.max_dead == 0 {
            return Err(Error::Config(
                "keep at least one dead letter (max_dead_letters > 0)".into(),
            ));
        }
        let retry = match self.retry {
            Some(r) => r,
            None => RetryPolicy::builder()
                .max_attempts(4)
                .max_elapsed(Duration::from_secs(60))
                .backoff(
                    Backoff::exponential(Duration::from_millis(200))
                        .max_delay(Duration::from_secs(10))
                        .jitter(Jitter::Full)
                        .build()
                        .map_err(|e| cfg(&e))?,
                )
                .build()
                .map_err(|e| cfg(&e))?,
        };
        let mut sinks = BTreeMap::new();
        for (name, sink) in self.sinks {
            let sink_name = name.clone();
            let breaker = CircuitBreaker::builder()
                .name("weft-analytics-webhook")
                .sliding_window(SlidingWindow::count(self.min_calls.max(1) * 2))
                .minimum_calls(self.min_calls.max(1))
                .failure_rate_threshold(0.5)
                .half_open_permits(1)
                .open_for(self.open_for)
                .on_transition(move |t| {
                    tracing::warn!(sink = %sink_name, from = ?t.from, to = ?t.to, "webhook circuit breaker changed state");
                })
                .clock(Arc::clone(&self.clock))
                .build()
                .map_err(|e| cfg(&e))?;
            sinks.insert(name, SinkEntry { sink, breaker });
        }
        Ok(Notifier {
            inner: Arc::new(NotifierInner {
                sinks,
                retry,
                budget: self.budget,
                dead: Mutex::new(VecDeque::new()),
                max_dead: self.max_dead,
                discarded: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                attempts: AtomicU64::new(0),
                dead_lettered: AtomicU64::new(0),
            }),
        })
    }
}

/// Delivers notifications to named sinks with a breaker per sink, retry with backoff,
/// and dead letters. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use weft_analytics::{AlertStatus, Notification, Notifier, Sink, SinkError, SinkFuture};
/// #[derive(Debug)]
/// struct Down;
/// impl Sink for Down {
///     fn deliver<'a>(&'a self, _: &'a Notification) -> SinkFuture<'a> {
///         Box::pin(async { Err(SinkError::Status(503)) })
///     }
/// }
/// let notifier = Notifier::builder().sink("ops", Down).build()?;
/// let n = Notification { rule: "t/r".into(), status: AlertStatus::Firing, at: 0,
///     value: None, metric: "m".into(), threshold: 1.0 };
/// assert!(notifier.deliver("ops", &n).await.is_err());
/// assert_eq!(notifier.dead_letters().len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Notifier {
    inner: Arc<NotifierInner>,
}

#[derive(Debug)]
struct NotifierInner {
    sinks: BTreeMap<String, SinkEntry>,
    retry: RetryPolicy,
    budget: Option<RetryBudget<Arc<dyn Clock>>>,
    dead: Mutex<VecDeque<DeadLetter>>,
    max_dead: usize,
    discarded: AtomicU64,
    delivered: AtomicU64,
    attempts: AtomicU64,
    dead_lettered: AtomicU64,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier::builder()
            .build()
            .expect("the default notifier settings are valid")
    }
}

impl Notifier {
    /// A builder with no sinks.
    pub fn builder() -> NotifierBuilder {
        NotifierBuilder {
            sinks: BTreeMap::new(),
            retry: None,
            budget: None,
            max_dead: 10_000,
            min_calls: 4,
            open_for: Duration::from_secs(5),
            clock: Arc::new(TokioClock),
        }
    }

    /// Whether a sink called `name` is configured.
    pub fn has_sink(&self, name: &str) -> bool {
        self.inner.sinks.contains_key(name)
    }

    /// The state of `name`'s breaker.
    pub fn breaker_state(&self, name: &str) -> Option<State> {
        self.inner.sinks.get(name).map(|s| s.breaker.state())
    }

    /// Delivers `n` to sink `name`: breaker, retries with backoff, dead letter on final
    /// failure. Returns the attempts made.
    ///
    /// # Errors
    ///
    /// The [`DeadLetter`] (also kept in [`dead_letters`](Self::dead_letters)).
    pub async fn deliver(&self, name: &str, n: &Notification) -> Result<u32, DeadLetter> {
        let inner = &self.inner;
        let Some(entry) = inner.sinks.get(name) else {
            return Err(self.dead_letter(name, n, 0, format!("no sink named `{name}`")));
        };
        let mut made = 0u32;
        let mut retry = Retry::new(&inner.retry);
        if let Some(b) = &inner.budget {
            retry = retry.budget(b);
        }
        let result = retry
            .retry_on(|_: &CallError<SinkError>| true)
            .call_async(|_attempt| {
                made += 1;
                inner.attempts.fetch_add(1, Ordering::Relaxed);
                entry.breaker.call_async(entry.sink.deliver(n))
            })
            .await;
        match result {
            Ok(()) => {
                inner.delivered.fetch_add(1, Ordering::Relaxed);
                Ok(made)
            }
            Err(e) => {
                let attempts = e.attempts();
                let last = match e {
                    RetryError::Exhausted { last, .. }
                    | RetryError::BudgetExhausted { last, .. }
                    | RetryError::Rejected { error: last, .. } => last,
                    _ => CallError::Inner(SinkError::Protocol("retry gave up".into())),
                };
                let error = match last {
                    CallError::NotPermitted(p) => {
                        format!("the circuit breaker is open: {p}")
                    }
                    CallError::Inner(e) => e.to_string(),
                };
                Err(self.dead_letter(name, n, attempts, error))
            }
        }
    }

    fn dead_letter(
        &self,
        sink: &str,
        n: &Notification,
        attempts: u32,
        error: String,
    ) -> DeadLetter {
        tracing::warn!(sink, rule = %n.rule, attempts, %error, "alert notification dead-lettered");
        let d = DeadLetter {
            sink: sink.to_owned(),
            notification: n.clone(),
            attempts,
            error,
        };
        {
            let mut dead = self.inner.dead.lock();
            dead.push_back(d.clone());
            while dead.len() > self.inner.max_dead {
                dead.pop_front();
                self.inner.discarded.fetch_add(1, Ordering::Relaxed);
                tracing::error!("dead-letter list full; the oldest dead letter was discarded");
            }
        }
        self.inner.dead_lettered.fetch_add(1, Ordering::Relaxed);
        d
    }

    /// Every dead letter so far, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.inner.dead.lock().iter().cloned().collect()
    }

    /// Removes and returns the dead letters (to redeliver or archive them).
    pub fn take_dead_letters(&self) -> Vec<DeadLetter> {
        std::mem::take(&mut *self.inner.dead.lock()).into()
    }

    /// Delivers every dead letter again (each under the full retry policy); those that
    /// fail again are dead letters again (and counted again). Returns how many were
    /// delivered.
    pub async fn redeliver(&self) -> usize {
        let mut delivered = 0;
        for d in self.take_dead_letters() {
            if self.deliver(&d.sink, &d.notification).await.is_ok() {
                delivered += 1;
            }
        }
        delivered
    }

    /// The counters.
    pub fn metrics(&self) -> NotifierMetrics {
        let i = &self.inner;
        let refused = i
            .sinks
            .values()
            .map(|s| s.breaker.metrics().not_permitted)
            .sum();
        NotifierMetrics {
            delivered: i.delivered.load(Ordering::Relaxed),
            attempts: i.attempts.load(Ordering::Relaxed),
            refused_by_breaker: refused,
            dead_lettered: i.dead_lettered.load(Ordering::Relaxed),
            dead_letters_discarded: i.discarded.load(Ordering::Relaxed),
        }
    }
}
