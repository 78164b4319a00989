//! The engine: configuration, ingest (validation, rate limits, backpressure,
//! partitioning, watermarks), ticks, flushes, queries and metrics.

use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use weft_actor::{
    ActorMetrics, ActorRef, ChildSpec, Overflow as MailboxOverflow, Restart, SendError,
    SpawnOptions, Strategy, Supervisor, System,
};
use weft_cqrs::ProjectionHandle;
use weft_ratelimit::{KeyedLimiter, Quota, RateLimiter};
use weft_reactive::{Overflow as StreamOverflow, Receiver};
use weft_sync::CachePadded;
use weft_sync::Mutex;
use weft_sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use weft_time::{Clock, SystemClock};

use crate::agg::AggregateConfig;
use crate::error::{Error, IngestError, RejectReason, shard_unanswered};
use crate::event::{Batch, Limits, MAX_SPAN, SeriesKey, millis, now_ms, series_hash};
use crate::log::CellLog;
use crate::metrics::{Counters, EngineMetrics};
use crate::query::{Query, QueryResult};
use crate::shard::{Advance, Barrier, Ingest, LateEvent, Shard, ShardConfig};
use crate::store::{Tier, WindowStore, tiers_ms};
use crate::watermark::{TimeMode, Watermarks};
use crate::window::WindowSpec;

/// What happens to an event whose window is already final.
///
/// ```
/// use weft_analytics::LatePolicy;
/// assert_eq!(LatePolicy::default(), LatePolicy::DropAndCount);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LatePolicy {
    /// Counted (`RejectReason::Late`) and dropped.
    #[default]
    DropAndCount,
    /// Counted and sent to the late stream ([`Engine::late_events`]), a bounded
    /// weft-reactive channel of `capacity` that drops its oldest entry when full (and
    /// counts it).
    Stream {
        /// The late stream's capacity.
        capacity: usize,
    },
}

/// One event rejected by validation, by its index in the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// The event's index in the batch.
    pub index: usize,
    /// Why.
    pub reason: RejectReason,
}

/// What an accepted ingest call did: the valid events were handed to the shards, the
/// invalid ones are listed by index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestReport {
    /// Events handed to the shards.
    pub accepted: usize,
    /// Events rejected by validation.
    pub rejected: Vec<Rejected>,
}

/// Builds an [`Engine`]; every setting is validated by [`build`](EngineBuilder::build).
///
/// Defaults: 2 shards, tumbling 1-minute windows, event time with 5 s out-of-orderness
/// and a 60 s idle timeout, no allowed lateness, drop-and-count, default
/// [`AggregateConfig`] and [`Limits`], 64 batches per shard mailbox, no rate limit,
/// one tier keeping windows for an hour, the system clock, a tick every second.
#[derive(Debug)]
pub struct EngineBuilder {
    shards: usize,
    spec: WindowSpec,
    time: TimeMode,
    lateness: Duration,
    late: LatePolicy,
    agg: AggregateConfig,
    limits: Limits,
    mailbox: usize,
    quota: Option<Quota>,
    source_quota: Option<Quota>,
    tiers: Vec<Tier>,
    clock: Arc<dyn Clock>,
    tick: Option<Duration>,
    durability: Option<crate::durable::Durability>,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            shards: 2,
            spec: WindowSpec::tumbling(Duration::from_secs(60)),
            time: TimeMode::default(),
            lateness: Duration::ZERO,
            late: LatePolicy::default(),
            agg: AggregateConfig::default(),
            limits: Limits::default(),
            mailbox: 64,
            quota: None,
            source_quota: None,
            tiers: Vec::new(),
            clock: Arc::new(SystemClock),
            tick: Some(Duration::from_secs(1)),
            durability: None,
        }
    }
}

impl EngineBuilder {
    /// The number of shards (actors; each owns the series hashed to it).
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n;
        self
    }

    /// The windows.
    pub fn window(mut self, spec: WindowSpec) -> Self {
        self.spec = spec;
        self
    }

    /// Event time (with watermark settings) or processing time.
    pub fn time(mut self, mode: TimeMode) -> Self {
        self.time = mode;
        self
    }

    /// How long after the watermark passes a window's end it still accepts events.
    pub fn allowed_lateness(mut self, d: Duration) -> Self {
        self.lateness = d;
        self
    }

    /// What happens to events beyond the allowed lateness.
    pub fn late_policy(mut self, p: LatePolicy) -> Self {
        self.late = p;
        self
    }

    /// Which sketches each cell keeps.
    pub fn aggregates(mut self, a: AggregateConfig) -> Self {
        self.agg = a;
        self
    }

    /// Event validation limits.
    pub fn limits(mut self, l: Limits) -> Self {
        self.limits = l;
        self
    }

    /// Batches queued per shard before ingest waits (or reports busy).
    pub fn mailbox_capacity(mut self, n: usize) -> Self {
        self.mailbox = n;
        self
    }

    /// A per-tenant rate limit in events (a batch of n valid events takes n cells).
    pub fn tenant_quota(mut self, q: Quota) -> Self {
        self.quota = Some(q);
        self
    }

    /// A rate limit per (tenant, source) in events, checked before the tenant quota
    /// (a source refused spends nothing of its tenant's budget).
    pub fn source_quota(mut self, q: Quota) -> Self {
        self.source_quota = Some(q);
        self
    }

    /// Retention and downsampling tiers of the window store (see [`Tier`]).
    pub fn tiers(mut self, tiers: impl IntoIterator<Item = Tier>) -> Self {
        self.tiers = tiers.into_iter().collect();
        self
    }

    /// The clock (validation, idle detection, processing time, rate limits).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How often a background task advances the watermark by the clock (idle sources,
    /// processing time); `None` for no task (call [`Engine::tick`] yourself).
    pub fn tick_interval(mut self, every: Option<Duration>) -> Self {
        self.tick = every;
        self
    }

    /// Makes the engine durable: every accepted batch is appended to a weft-eventsourcing
    /// log in the data directory before it is acknowledged, and building the engine
    /// replays that log (see [`Durability`](crate::Durability)).
    pub fn durable(mut self, durability: crate::durable::Durability) -> Self {
        self.durability = Some(durability);
        self
    }

    /// Validates the settings and starts the shards and the store projection.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for invalid settings or when called outside a tokio runtime.
    pub fn build(self) -> Result<Engine, Error> {
        if self.shards == 0 || self.shards > 1024 {
            return Err(Error::Config(format!(
                "shards must be in 1..=1024, got {}",
                self.shards
            )));
        }
        if self.mailbox == 0 {
            return Err(Error::Config(
                "the mailbox capacity must be positive".into(),
            ));
        }
        if matches!(self.late, LatePolicy::Stream { capacity: 0 }) {
            return Err(Error::Config(
                "the late stream needs a positive capacity".into(),
            ));
        }
        if matches!(self.tick, Some(d) if d.is_zero()) {
            return Err(Error::Config("the tick interval must be positive".into()));
        }
        self.spec.validate()?;
        if millis(self.lateness) > MAX_SPAN {
            return Err(Error::Config(
                "allowed lateness above 2^40 ms is not supported".into(),
            ));
        }
        if let TimeMode::EventTime {
            max_out_of_orderness,
            ..
        } = self.time
        {
            if millis(max_out_of_orderness) > MAX_SPAN {
                return Err(Error::Config(
                    "out-of-orderness above 2^40 ms is not supported".into(),
                ));
            }
        }
        self.agg.validate()?;
        self.limits.validate_config()?;
        let tiers = tiers_ms(&self.tiers, self.spec.size_ms(), self.spec.is_tumbling())?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Config(
                "build the engine inside a tokio runtime".into(),
            ));
        }
        let limiter = keyed_limiter(self.quota, &self.clock)?;
        let source_limiter = keyed_limiter(self.source_quota, &self.clock)?;
        let durable = match &self.durability {
            Some(d) => {
                let fingerprint = format!(
                    "shards={} window={:?} lateness={:?} aggregates={:?} tiers={:?}",
                    self.shards, self.spec, self.lateness, self.agg, tiers
                );
                Some(crate::durable::Durable::open(d, fingerprint)?)
            }
            None => None,
        };
        let counters = Arc::new(Counters::new(self.shards));
        let applied = Arc::new(AtomicU64::new(0));
        let log = Arc::new(CellLog::new(Arc::clone(&applied)));
        let mut window_store = WindowStore::new(self.agg.clone(), tiers, applied);
        if let Some(d) = &durable {
            d.restore_store(&mut window_store)?;
        }
        let store = weft_cqrs::projection("weft-analytics-store", Arc::clone(&log), window_store)
            // Four log entries (at most 4 x 64 closed windows) per hold of the model's
            // lock: queries never wait behind a whole watermark step's windows.
            .batch_size(4)
            .start()
            .map_err(|e| Error::Config(e.to_string()))?;
        let (late_tx, late_rx) = match self.late {
            LatePolicy::Stream { capacity } => {
                let (tx, rx) = weft_reactive::channel(capacity, StreamOverflow::DropOldest)
                    .map_err(|e| Error::Config(e.to_string()))?;
                (Some(tx), Some(rx))
            }
            LatePolicy::DropAndCount => (None, None),
        };
        let shard_cfg = Arc::new(ShardConfig {
            spec: self.spec,
            lateness: millis(self.lateness),
            agg: self.agg.clone(),
            top_k_dim: self.agg.top_k_dimension().map(CompactString::from),
        });
        // The shards run under a one-for-one supervisor: a shard whose handler panics
        // (a bug) is restarted with empty state behind the same mailbox and `ActorRef`
        // — its open windows are lost and counted in `shard_restarts` — instead of
        // taking the engine down. Too many restarts (10 a minute) stop the engine.
        let system = System::new();
        let mut sup = Supervisor::builder(Strategy::OneForOne)
            .name("weft-analytics-shards")
            .max_restarts(10, Duration::from_secs(60));
        for i in 0..self.shards {
            let (cfg, log, counters, late) = (
                Arc::clone(&shard_cfg),
                Arc::clone(&log),
                Arc::clone(&counters),
                late_tx.clone(),
            );
            let factory = move || {
                Shard::new(
                    i,
                    Arc::clone(&cfg),
                    Arc::clone(&log),
                    Arc::clone(&counters),
                    late.clone(),
                )
            };
            sup = sup.child(
                ChildSpec::new(format!("shard-{i}"), factory)
                    .restart(Restart::Transient)
                    .options(
                        SpawnOptions::new()
                            .capacity(self.mailbox)
                            .overflow(MailboxOverflow::Wait),
                    ),
            );
        }
        let supervisor = sup
            .spawn(&system)
            .map_err(|e| Error::Config(e.to_string()))?;
        let shards = (0..self.shards)
            .map(|i| {
                supervisor
                    .child::<Shard>(&format!("shard-{i}"))
                    .ok_or_else(|| Error::Config("a shard failed to start".into()))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let (ooo, idle) = match self.time {
            TimeMode::EventTime {
                max_out_of_orderness,
                idle_timeout,
            } => (max_out_of_orderness, idle_timeout),
            TimeMode::ProcessingTime => (Duration::ZERO, Duration::MAX),
        };
        let inner = Arc::new(Inner {
            shards,
            system,
            cfg: shard_cfg,
            time: self.time,
            limits: self.limits,
            limiter,
            source_limiter,
            tenant_quotas: Mutex::new(std::collections::HashMap::new()),
            own_quotas: AtomicUsize::new(0),
            clock: self.clock,
            watermarks: Mutex::new(Watermarks::new(ooo, idle)),
            counters,
            log,
            store,
            late: Mutex::new(late_rx),
            sent_watermark: (0..self.shards)
                .map(|_| CachePadded::new(AtomicI64::new(i64::MIN)))
                .collect(),
            durable,
        });
        crate::durable::start_replay(&inner);
        if let Some(every) = self.tick {
            let weak = Arc::downgrade(&inner);
            tokio::spawn(async move {
                let mut iv = tokio::time::interval(every);
                iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    iv.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    if inner.tick().await.is_err() {
                        break;
                    }
                }
            });
        }
        tracing::info!(shards = inner.shards.len(), "analytics engine started");
        Ok(Engine { inner })
    }
}

/// The per-(tenant, source) limiter.
type SourceLimiter = Limiter<(CompactString, CompactString)>;

/// A tenant's own limiter (`Engine::set_tenant_quota`).
type TenantLimiter = RateLimiter<Arc<dyn Clock>>;

/// A keyed limiter on the engine's clock.
type Limiter<K> = KeyedLimiter<K, Arc<dyn Clock>>;

/// A keyed limiter for `quota` on the engine's clock, if a quota is set.
fn keyed_limiter<K: std::hash::Hash + Eq>(
    quota: Option<Quota>,
    clock: &Arc<dyn Clock>,
) -> Result<Option<Limiter<K>>, Error> {
    quota
        .map(|q| {
            KeyedLimiter::builder(q)
                .clock(Arc::clone(clock))
                .build()
                .map_err(|e| Error::Config(e.to_string()))
        })
        .transpose()
}

pub(crate) struct Inner {
    pub(crate) shards: Vec<ActorRef<Shard>>,
    system: System,
    pub(crate) cfg: Arc<ShardConfig>,
    time: TimeMode,
    limits: Limits,
    limiter: Option<Limiter<CompactString>>,
    source_limiter: Option<SourceLimiter>,
    /// Tenants with a quota of their own (`Engine::set_tenant_quota`), in place of
    /// `limiter`'s shared per-tenant quota.
    tenant_quotas: Mutex<std::collections::HashMap<CompactString, Arc<TenantLimiter>>>,
    /// How many tenants have a quota of their own: while none has, ingest does not
    /// take the `tenant_quotas` lock.
    own_quotas: AtomicUsize,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) watermarks: Mutex<Watermarks>,
    counters: Arc<Counters>,
    log: Arc<CellLog>,
    pub(crate) store: ProjectionHandle<WindowStore>,
    late: Mutex<Option<Receiver<LateEvent>>>,
    /// The largest watermark sent to each shard.
    pub(crate) sent_watermark: Box<[CachePadded<AtomicI64>]>,
    /// The durable input log, when the engine has a data directory.
    pub(crate) durable: Option<crate::durable::Durable>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("shards", &self.shards.len())
            .field("cfg", &self.cfg)
            .field("time", &self.time)
            .finish_non_exhaustive()
    }
}

/// The streaming analytics engine. Cheap to clone (a handle).
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// A batch checked and ready to hand to the shards.
pub(crate) struct Prepared {
    pub(crate) report: IngestReport,
    /// Series hash per event (`None` for rejected ones).
    pub(crate) hashes: Vec<Option<u64>>,
    /// The shards that receive events.
    pub(crate) targets: Vec<bool>,
    pub(crate) max_ts: Option<i64>,
}

impl Engine {
    /// A builder with the defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Ingests a batch, waiting while the shards it needs are full (backpressure).
    ///
    /// Invalid events are rejected individually (by index in the report) and the rest
    /// accepted. The batch comes back in the error if nothing was accepted: tenant over
    /// its rate limit, batch larger than the tenant burst, engine shut down.
    ///
    /// # Errors
    ///
    /// [`Error::RateLimited`], [`Error::BatchTooLarge`], [`Error::Closed`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits for a full shard leaves the batch partly
    /// ingested: the shards already handed their part keep it (and the events count as
    /// accepted), the rest is dropped with the future. Use
    /// [`try_ingest`](Self::try_ingest) where callers may time out.
    ///
    /// A durable engine runs the call in a task of its own, so dropping the future
    /// never splits a batch between the log and the shards: once logged, a batch is
    /// placed in full (and counts, acknowledged or not).
    pub async fn ingest(&self, batch: Batch) -> Result<IngestReport, IngestError> {
        crate::durable::ingest(&self.inner, batch, true).await
    }

    /// Like [`ingest`](Self::ingest), but returns [`Error::Busy`] with a retry-after hint
    /// (and the batch) instead of waiting when a shard it needs is full.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] besides those of [`ingest`](Self::ingest).
    pub async fn try_ingest(&self, batch: Batch) -> Result<IngestReport, IngestError> {
        crate::durable::ingest(&self.inner, batch, false).await
    }

    /// Checks `batch` against the engine's [`Limits`] at the engine clock, as ingest
    /// would, without ingesting anything: the events ingest would reject, by index.
    /// Use it to refuse a batch as a whole (all-or-nothing ingest). In processing-time
    /// mode timestamps are not checked (ingest replaces them). Rate limits and lateness
    /// are not part of it (they depend on the moment of ingest).
    ///
    /// ```
    /// use weft_analytics::{Batch, Engine, Event, RejectReason};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let engine = Engine::builder().build()?;
    /// let now = std::time::UNIX_EPOCH.elapsed()?.as_millis() as i64;
    /// let batch = Batch::new(vec![Event::new("m", now, 1.0), Event::new("m", now, f64::NAN)]);
    /// let rejected = engine.validate(&batch);
    /// assert_eq!(rejected.len(), 1);
    /// assert_eq!((rejected[0].index, rejected[0].reason), (1, RejectReason::NonFiniteValue));
    /// # Ok(()) }
    /// ```
    pub fn validate(&self, batch: &Batch) -> Vec<Rejected> {
        let inner = &self.inner;
        let bounds = if inner.time == TimeMode::ProcessingTime {
            (i64::MIN, i64::MAX)
        } else {
            inner.limits.ts_bounds(now_ms(inner.clock.as_ref()))
        };
        batch
            .events
            .iter()
            .enumerate()
            .filter_map(|(index, e)| {
                inner
                    .limits
                    .check_within(e, bounds)
                    .err()
                    .map(|reason| Rejected { index, reason })
            })
            .collect()
    }

    /// Advances the watermark by the clock (idle sources drop out; in processing time
    /// the watermark is the clock) and lets the shards close what became final. The
    /// background tick calls this; call it yourself with `tick_interval(None)`.
    /// Returns the watermark.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown.
    pub async fn tick(&self) -> Result<i64, Error> {
        self.inner.tick().await
    }

    /// Waits until every batch handed in before the call is placed, the windows it
    /// closed are in the store, and queries see them.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown, [`Error::Timeout`] if the store does not catch
    /// up within `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), Error> {
        self.inner.flush(timeout).await
    }

    /// End of input: advances every shard's watermark to the end of time so every open
    /// window becomes final, then flushes. Events ingested afterwards are late.
    ///
    /// # Errors
    ///
    /// As [`flush`](Self::flush).
    pub async fn finish(&self, timeout: Duration) -> Result<(), Error> {
        let _order = match &self.inner.durable {
            Some(d) => Some(d.order().await),
            None => None,
        };
        self.inner.watermarks.lock().advance_to_end();
        for s in &self.inner.shards {
            s.tell(Advance(i64::MAX)).await.map_err(|_| Error::Closed)?;
        }
        self.inner.flush(timeout).await
    }

    /// Answers `query` from the store's read model (final windows). Never waits for
    /// ingest: it reads the projection's model, which the shards do not touch.
    ///
    /// # Errors
    ///
    /// [`Error::Query`] for a malformed query.
    pub fn query(&self, query: &Query) -> Result<QueryResult, Error> {
        query.validate(&self.inner.cfg.agg)?;
        self.inner.store.query(|s| s.run(query))
    }

    /// The series keys stored for `tenant` (one metric, or all), sorted.
    pub fn series(&self, tenant: &str, metric: Option<&str>) -> Vec<Arc<SeriesKey>> {
        self.inner.store.query(|s| s.series_of(tenant, metric))
    }

    /// The late stream (with [`LatePolicy::Stream`]); `None` with drop-and-count or
    /// once taken.
    pub fn late_events(&self) -> Option<Receiver<LateEvent>> {
        self.inner.late.lock().take()
    }

    /// Gives `tenant` a rate limit of its own (`Some`), in place of the engine-wide
    /// per-tenant quota ([`EngineBuilder::tenant_quota`]), or removes it (`None`, back to
    /// the engine-wide quota). Tenant provisioning sets it; it applies from the next
    /// batch.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use weft_analytics::{Batch, Engine, Error, Event};
    /// use weft_ratelimit::Quota;
    /// let engine = Engine::builder().build()?;
    /// engine.set_tenant_quota("acme", Some(Quota::per_second(10)?.allow_burst(2)?));
    /// let now = std::time::UNIX_EPOCH.elapsed()?.as_millis() as i64;
    /// let two = || Batch::new(vec![Event::new("cpu", now, 1.0), Event::new("cpu", now, 2.0)]);
    /// assert_eq!(engine.ingest(two().tenant("acme")).await?.accepted, 2);
    /// let refused = engine.ingest(two().tenant("acme")).await.unwrap_err();
    /// assert!(matches!(refused.error, Error::RateLimited { .. }));
    /// engine.ingest(two().tenant("other")).await?; // no limit of its own, none shared
    /// assert!(engine.tenant_quota("acme").is_some());
    /// engine.set_tenant_quota("acme", None);
    /// # Ok(()) }
    /// ```
    pub fn set_tenant_quota(&self, tenant: &str, quota: Option<Quota>) {
        let mut quotas = self.inner.tenant_quotas.lock();
        match quota {
            Some(q) => {
                let limiter = RateLimiter::with_clock(q, Arc::clone(&self.inner.clock));
                quotas.insert(CompactString::from(tenant), Arc::new(limiter));
            }
            None => {
                quotas.remove(tenant);
            }
        }
        // Written under the lock, so the count matches the map it guards.
        self.inner.own_quotas.store(quotas.len(), Ordering::Release);
    }

    /// `tenant`'s own quota, if [`set_tenant_quota`](Self::set_tenant_quota) gave it one.
    pub fn tenant_quota(&self, tenant: &str) -> Option<Quota> {
        self.inner
            .tenant_quotas
            .lock()
            .get(tenant)
            .map(|l| *l.quota())
    }

    /// The engine watermark (ms; `i64::MIN` before any event).
    pub fn watermark(&self) -> i64 {
        self.inner.watermarks.lock().current()
    }

    /// A snapshot of the counters and state.
    pub fn metrics(&self) -> EngineMetrics {
        let c = &self.inner.counters;
        let now = self.inner.clock.now();
        let (wm, sources) = {
            let w = self.inner.watermarks.lock();
            (w.current(), w.status(now))
        };
        let lag = if wm == i64::MIN || wm == i64::MAX {
            0
        } else {
            now_ms(self.inner.clock.as_ref()).saturating_sub(wm).max(0)
        };
        EngineMetrics {
            batches: c.batches.sum(),
            accepted: c.accepted.sum(),
            rejected: RejectReason::ALL
                .iter()
                .map(|r| (*r, c.rejected[r.index()].sum()))
                .collect(),
            late_streamed: c.late_streamed.sum(),
            late_stream_dropped: c.late_stream_dropped.sum(),
            busy: c.busy.sum(),
            rate_limited: c.rate_limited.sum(),
            windows_closed: c.windows_closed.sum(),
            shard_series: c.series(),
            shard_restarts: self.inner.shards.iter().map(|s| s.metrics().restarts).sum(),
            shard_queue: self
                .inner
                .shards
                .iter()
                .map(|s| s.metrics().mailbox_len)
                .collect(),
            watermark: wm,
            watermark_lag_ms: lag,
            sources,
            store_backlog: self.inner.log.backlog(),
            store: self.inner.store.query(|s| s.status()),
        }
    }

    /// The window spec.
    pub fn window(&self) -> WindowSpec {
        self.inner.cfg.spec
    }

    /// Stops the shards (queued batches are handled first) and the store projection.
    pub async fn shutdown(&self, timeout: Duration) {
        let _ = self
            .inner
            .system
            .shutdown(weft_actor::ShutdownMode::Drain, timeout)
            .await;
        self.inner.store.shutdown().await;
    }
}

impl Inner {
    pub(crate) fn log_head(&self) -> u64 {
        self.log.head()
    }

    /// Validates a batch against the limits at the engine clock (stamping it first in
    /// processing-time mode) and prepares it.
    fn check(&self, batch: &mut Batch) -> Prepared {
        let now = now_ms(self.clock.as_ref());
        if self.time == TimeMode::ProcessingTime {
            for e in &mut batch.events {
                e.ts = now;
            }
        }
        self.prepare(batch, Some(now))
    }

    /// Prepares a batch that was validated when it was first ingested (one read back
    /// from the durable log): every event counts.
    pub(crate) fn prepare_trusted(&self, batch: &Batch) -> Prepared {
        self.prepare(batch, None)
    }

    /// Hashes each event's series and marks the shards the batch goes to. With
    /// `validate_at` (the engine clock), an event the limits refuse is rejected by
    /// index; without, every event counts.
    fn prepare(&self, batch: &Batch, validate_at: Option<i64>) -> Prepared {
        let n = self.shards.len() as u64;
        let skip = self.cfg.top_k_dim.as_deref();
        let bounds = validate_at.map(|now| self.limits.ts_bounds(now));
        let mut report = IngestReport::default();
        let mut hashes = Vec::with_capacity(batch.events.len());
        let mut targets = vec![false; self.shards.len()];
        let mut max_ts: Option<i64> = None;
        for (index, e) in batch.events.iter().enumerate() {
            if let Some(Err(reason)) = bounds.map(|b| self.limits.check_within(e, b)) {
                hashes.push(None);
                report.rejected.push(Rejected { index, reason });
                continue;
            }
            let h = series_hash(&batch.tenant, e, skip);
            targets[shard_of(h, n)] = true;
            hashes.push(Some(h));
            max_ts = Some(max_ts.map_or(e.ts, |m| m.max(e.ts)));
            report.accepted += 1;
        }
        Prepared {
            report,
            hashes,
            targets,
            max_ts,
        }
    }

    fn refuse(&self, error: Error, batch: Batch) -> IngestError {
        match &error {
            Error::Busy { .. } => self.counters.busy.incr(),
            Error::RateLimited { .. } | Error::SourceRateLimited { .. } => {
                self.counters.rate_limited.incr()
            }
            _ => {}
        }
        IngestError { error, batch }
    }

    /// The rate limits: a batch of `n` valid events takes `n` cells of its source's
    /// quota, then of its tenant's. Both bursts are checked first, so an oversized batch
    /// spends nothing; a batch the tenant quota refuses after its source quota admitted
    /// it has spent those source cells (GCRA cells cannot be handed back).
    fn admit(&self, batch: &Batch, valid: usize) -> Result<(), Error> {
        let n = u32::try_from(valid).unwrap_or(u32::MAX);
        // Acquire pairs with `set_tenant_quota`'s release: a quota set before this
        // batch was admitted is seen.
        let own = if self.own_quotas.load(Ordering::Acquire) == 0 {
            None
        } else {
            self.tenant_quotas.lock().get(&batch.tenant).cloned()
        };
        let bursts = [
            self.source_limiter.as_ref().map(|l| l.quota().burst()),
            match &own {
                Some(t) => Some(t.quota().burst()),
                None => self.limiter.as_ref().map(|l| l.quota().burst()),
            },
        ];
        if let Some(max) = bursts.into_iter().flatten().min() {
            if n > max {
                return Err(Error::BatchTooLarge {
                    events: valid,
                    max: max as usize,
                });
            }
        }
        if let Some(l) = &self.source_limiter {
            let key = (batch.tenant.clone(), batch.source.clone());
            match l.check_n(&key, n) {
                Ok(Ok(_)) => {}
                Ok(Err(not_until)) => {
                    return Err(Error::SourceRateLimited {
                        tenant: batch.tenant.to_string(),
                        source_name: batch.source.to_string(),
                        retry_after: not_until.retry_after(),
                    });
                }
                Err(e) => return Err(Error::Config(e.to_string())),
            }
        }
        let checked = match (&own, &self.limiter) {
            (Some(t), _) => t.check_n(n),
            (None, Some(l)) => l.check_n(&batch.tenant, n),
            (None, None) => return Ok(()),
        };
        match checked {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(not_until)) => Err(Error::RateLimited {
                tenant: batch.tenant.to_string(),
                retry_after: not_until.retry_after(),
            }),
            Err(e) => Err(Error::Config(e.to_string())),
        }
    }

    /// How long until `shard`'s queue has likely drained by one batch.
    fn retry_after(m: &ActorMetrics) -> Duration {
        let per_batch = m.latency_mean().max(Duration::from_micros(100));
        per_batch * u32::try_from(m.mailbox_len.saturating_sub(m.mailbox_capacity) + 1).unwrap_or(1)
    }

    pub(crate) async fn ingest(
        &self,
        mut batch: Batch,
        wait: bool,
    ) -> Result<IngestReport, IngestError> {
        if batch.len() > u32::MAX as usize {
            let e = Error::BatchTooLarge {
                events: batch.len(),
                max: u32::MAX as usize,
            };
            return Err(self.refuse(e, batch));
        }
        let prep = self.check(&mut batch);
        // Busy first (nothing charged to the tenant when refusing).
        if !wait {
            for (i, s) in self.shards.iter().enumerate() {
                if !prep.targets[i] {
                    continue;
                }
                let m = s.metrics();
                if m.mailbox_len >= m.mailbox_capacity {
                    let retry_after = Self::retry_after(&m);
                    return Err(self.refuse(Error::Busy { retry_after }, batch));
                }
            }
        }
        let valid = prep.report.accepted;
        if valid > 0 {
            if let Err(e) = self.admit(&batch, valid) {
                return Err(self.refuse(e, batch));
            }
        }
        for r in &prep.report.rejected {
            self.counters.rejected[r.reason.index()].incr();
        }
        if valid == 0 {
            // Still a sign of life from the source (for idle detection).
            self.watermarks
                .lock()
                .observe(&batch.source, None, self.clock.now());
            return Ok(prep.report);
        }
        // Durable engines log the accepted events first and keep the log order until
        // the batch is placed (see `durable.rs`).
        let mut prep = prep;
        let _order = match &self.durable {
            Some(d) => match d.log_batch(&mut batch, &mut prep.hashes).await {
                Ok(guard) => Some(guard),
                Err(e) => return Err(self.refuse(e, batch)),
            },
            None => None,
        };
        self.place(prep, batch, false).await
    }

    /// Hands a checked batch to the shards: the watermark step, the partition, one
    /// message per shard. `replay` for batches read back from the durable log (no
    /// counters; in processing time the logged timestamps drive the watermark).
    pub(crate) async fn place(
        &self,
        prep: Prepared,
        batch: Batch,
        replay: bool,
    ) -> Result<IngestReport, IngestError> {
        let valid = prep.report.accepted;
        let watermark = match self.time {
            TimeMode::ProcessingTime => {
                let now = match (replay, prep.max_ts) {
                    (true, Some(ts)) => ts,
                    _ => now_ms(self.clock.as_ref()),
                };
                self.watermarks.lock().observe_processing(now)
            }
            TimeMode::EventTime { .. } => {
                let mut w = self.watermarks.lock();
                w.observe(&batch.source, prep.max_ts, self.clock.now())
            }
        };
        // Partition: one list of (index, hash) and one message per shard; the events
        // stay in the batch, shared by the shards.
        let n = self.shards.len() as u64;
        let per = valid / self.shards.len() + 16;
        let mut parts: Vec<Vec<(u32, u64)>> = (0..self.shards.len())
            .map(|i| {
                if prep.targets[i] {
                    Vec::with_capacity(per)
                } else {
                    Vec::new()
                }
            })
            .collect();
        for (at, h) in prep.hashes.iter().enumerate() {
            if let Some(h) = *h {
                // Batches hold at most 2^32 - 1 events (checked above).
                parts[shard_of(h, n)].push((at as u32, h));
            }
        }
        let tenant = batch.tenant.clone();
        let events = Arc::new(batch.events);
        if !replay {
            self.counters.batches.incr();
            self.counters.accepted.add(valid as u64);
        }
        for (i, picks) in parts.into_iter().enumerate() {
            // Every shard gets the watermark, events or not, so windows close everywhere;
            // a shard without events only when the watermark moved past what it was
            // last sent (Relaxed: the max is all that matters; the message carries it).
            let sent = self.sent_watermark[i].fetch_max(watermark, Ordering::Relaxed);
            if picks.is_empty() && sent >= watermark {
                continue;
            }
            let msg = Ingest {
                tenant: tenant.clone(),
                events: Arc::clone(&events),
                picks,
                watermark,
            };
            let shard = &self.shards[i];
            let watermark_only = msg.picks.is_empty();
            let sent = match shard.try_tell(msg) {
                Ok(()) => Ok(()),
                // A full shard that gets no events of this batch is not waited for: it
                // gets the watermark with its next message or the next tick. Undo the
                // mark unless someone sent a newer watermark since.
                Err(SendError::Full(_)) if watermark_only => {
                    let _ = self.sent_watermark[i].compare_exchange(
                        watermark,
                        sent,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    Ok(())
                }
                // Full: wait (the busy check above passed, so only a race with another
                // caller gets here in try mode; the wait is one batch long).
                Err(SendError::Full(msg)) => shard.tell(msg).await,
                Err(e) => Err(e),
            };
            if sent.is_err() {
                // A shard stopped mid-batch: what was handed to others stays accepted;
                // the rest is lost with the engine, which is shut down.
                tracing::error!(
                    shard = i,
                    "analytics shard is gone; the engine is shut down"
                );
                return Err(IngestError {
                    error: Error::Closed,
                    batch: Batch::new(Vec::new()).tenant(tenant),
                });
            }
        }
        Ok(prep.report)
    }

    async fn tick(&self) -> Result<i64, Error> {
        // A durable engine's watermark does not move while a batch is being logged and
        // placed, a replay runs or a snapshot is captured: the tick skips a beat.
        let _order = match &self.durable {
            Some(d) => match d.try_order() {
                Some(g) => Some(g),
                None => return Ok(self.watermarks.lock().current()),
            },
            None => None,
        };
        let wm = match self.time {
            TimeMode::ProcessingTime => {
                let now = now_ms(self.clock.as_ref());
                let mut w = self.watermarks.lock();
                w.observe_processing(now)
            }
            TimeMode::EventTime { .. } => self.watermarks.lock().advance(self.clock.now()),
        };
        if wm == i64::MIN {
            return Ok(wm);
        }
        for (i, s) in self.shards.iter().enumerate() {
            // Ticks never queue behind a full mailbox: skip a busy shard, the next
            // batch it gets carries a newer watermark anyway.
            match s.try_tell(Advance(wm)) {
                Ok(()) => {
                    self.sent_watermark[i].fetch_max(wm, Ordering::Relaxed);
                }
                Err(SendError::Full(_)) => {}
                Err(_) => return Err(Error::Closed),
            }
        }
        Ok(wm)
    }

    pub(crate) async fn flush(&self, timeout: Duration) -> Result<(), Error> {
        self.barrier(timeout).await?;
        let head = self.log.head();
        self.store
            .wait_for(head, timeout)
            .await
            .map_err(|e| match e {
                weft_cqrs::Error::WaitTimeout { .. } => Error::Timeout(timeout),
                _ => Error::Closed,
            })?;
        Ok(())
    }
}

impl Inner {
    /// Asks every shard for a barrier (each answers once it has placed everything sent
    /// before) and returns the lowest shard watermark.
    pub(crate) async fn barrier(&self, timeout: Duration) -> Result<i64, Error> {
        let mut wm = i64::MAX;
        for s in &self.shards {
            let (w, _) = s
                .ask(Barrier, timeout)
                .await
                .map_err(shard_unanswered(timeout))?;
            wm = wm.min(w);
        }
        Ok(wm)
    }
}

/// The shard of a series hash (multiply-shift: uniform for any shard count).
#[inline]
pub(crate) fn shard_of(hash: u64, shards: u64) -> usize {
    ((u128::from(hash) * u128::from(shards)) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::query::{Aggregate, Query};
    use crate::shard::Crash;
    use crate::window::WindowSpec;
    use std::time::UNIX_EPOCH;
    use weft_time::ManualClock;

    #[tokio::test]
    async fn a_panicking_shard_is_restarted_and_the_engine_goes_on() {
        let t0 = 1_700_000_000_000_i64;
        let clock = ManualClock::starting_at(UNIX_EPOCH + Duration::from_millis(t0 as u64));
        let engine = Engine::builder()
            .shards(1)
            .window(WindowSpec::tumbling(Duration::from_secs(10)))
            .time(TimeMode::event_time(
                Duration::ZERO,
                Duration::from_secs(60),
            ))
            .clock(clock)
            .tick_interval(None)
            .build()
            .unwrap();
        let e = |s: i64| Event::new("m", t0 + s * 1000, 1.0);
        engine.ingest(Batch::new(vec![e(1), e(2)])).await.unwrap();
        engine.inner.shards[0].tell(Crash).await.unwrap();
        // The same ref answers once the supervisor has restarted the shard.
        let (wm, series) = loop {
            match engine.inner.shards[0]
                .ask(Barrier, Duration::from_secs(5))
                .await
            {
                Ok(r) => break r,
                Err(_) => tokio::task::yield_now().await,
            }
        };
        assert_eq!((wm, series), (i64::MIN, 0), "fresh state");
        assert_eq!(engine.metrics().shard_restarts, 1);
        // The open window [0, 10) was lost with the shard; later windows work.
        engine.ingest(Batch::new(vec![e(21), e(22)])).await.unwrap();
        engine.finish(Duration::from_secs(5)).await.unwrap();
        let q = Query::new("default", "m", t0 - 60_000, t0 + 60_000).aggregates([Aggregate::Count]);
        let r = engine.query(&q).unwrap();
        let starts: Vec<i64> = r.groups[0].points.iter().map(|p| p.start - t0).collect();
        assert_eq!(starts, [20_000]);
    }
}
