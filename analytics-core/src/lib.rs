//! A streaming analytics engine composed from the Weft patterns: events in, windowed
//! aggregates out, queryable while ingest runs.
//!
//! Use it to turn a stream of measurements (timestamp, metric name, a few dimensions, a
//! value, an optional entity) into per-series, per-window aggregates — count, sum, min,
//! max, mean, percentiles, distinct entities, top-k — over tumbling, hopping or session
//! windows in event time, with watermarks and allowed lateness, and to query them or
//! follow them live. It embeds in a tokio service (the platform example serves it over
//! HTTP).
//!
//! How it is built (see the book chapter `docs/src/analytics.md` for the data flow):
//!
//! - **Shards are weft-actor actors.** A batch is validated, partitioned by series hash
//!   into one vector per shard and sent as one message per shard; each shard owns its
//!   series' open windows, so the hot path takes no shared lock. The bounded mailboxes
//!   are the backpressure: [`Engine::ingest`] waits, [`Engine::try_ingest`] answers
//!   [`Error::Busy`] with a retry-after hint. A one-for-one weft-actor supervisor
//!   restarts a shard that panics (its open windows are lost and counted).
//! - **Per-tenant and per-source rate limits** are weft-ratelimit `KeyedLimiter`s (a
//!   batch of n valid events takes n cells).
//! - **Self-metrics** are weft-lockfree `StripedCounter`s written by callers and shards
//!   without contention ([`Engine::metrics`]).
//! - **Closed windows** go to a log that a weft-cqrs projection applies to the window
//!   store (the read model, with retention and downsampling [`Tier`]s); queries read the
//!   model, never the shards, so they never wait for ingest.
//! - **The push-side stream, the late stream and the live feed** are weft-reactive: a
//!   bounded blocking channel of batches in front of ingest ([`Engine::batch_sink`]), a
//!   bounded drop-oldest channel for late events, a `Subject` with per-subscriber buffers and overflow
//!   policies for [`LiveFeed`] subscribers.
//! - **Sketches** come from well-kept crates: `sketches-ddsketch` (percentiles, relative
//!   error α) and `hyperloglogplus` (HLL++ distinct counts); top-k is Space-Saving with
//!   the mergeable-summaries merge. All merge across panes, shards and tiers.
//! - **Alerts** (rules as weft-cqrs commands, alert state as weft-eventsourcing
//!   aggregates) are evaluated on closed windows; notifications go to webhook sinks
//!   over a weft-pool behind a weft-circuitbreaker, with retry and dead letters.
//!   **Tenant provisioning** is a weft-saga saga with compensations.
//! - **Time** is read through a `weft_time::Clock` (validation, idle sources, processing
//!   time, rate limits), so tests run on a manual clock.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::{Duration, UNIX_EPOCH};
//! use weft_analytics::{Aggregate, Batch, Engine, Event, Query, TimeMode, Value, WindowSpec};
//! use weft_time::ManualClock;
//!
//! let t0: i64 = 1_700_000_000_000; // ms since the epoch
//! let clock = ManualClock::starting_at(UNIX_EPOCH + Duration::from_millis(t0 as u64));
//! let engine = Engine::builder()
//!     .shards(2)
//!     .window(WindowSpec::tumbling(Duration::from_secs(60)))
//!     .time(TimeMode::event_time(Duration::from_secs(5), Duration::from_secs(60)))
//!     .clock(clock)
//!     .build()?;
//!
//! let events = (0..100)
//!     .map(|i| {
//!         Event::new("http.latency_ms", t0 + i * 1_000, (i % 10) as f64 + 1.0)
//!             .dim("route", if i % 2 == 0 { "/a" } else { "/b" })
//!             .entity(&format!("user-{}", i % 7))
//!     })
//!     .collect();
//! let report = engine.ingest(Batch::new(events)).await?;
//! assert_eq!(report.accepted, 100);
//!
//! engine.finish(Duration::from_secs(5)).await?; // end of input: close every window
//! let q = Query::new("default", "http.latency_ms", t0, t0 + 120_000)
//!     .group_by("route")
//!     .aggregates([Aggregate::Count, Aggregate::Quantile(0.5), Aggregate::Distinct]);
//! let result = engine.query(&q)?;
//! let a = result.group(&["/a"]).unwrap();
//! // Windows align to the epoch: the first one starting in the range is
//! // [t0 + 40 s, t0 + 100 s), with 60 events, 30 of them on /a.
//! assert_eq!(a.points[0].start, t0 + 40_000);
//! assert_eq!(a.points[0].values[0], Value::Count(30));
//! # Ok(()) }
//! ```
//!
//! # Contents
//!
//! - [`Engine`] built by [`EngineBuilder`]: [`ingest`](Engine::ingest) /
//!   [`try_ingest`](Engine::try_ingest) → [`IngestReport`] (per-event [`Rejected`]) or
//!   [`IngestError`] (the batch handed back), [`tick`](Engine::tick),
//!   [`flush`](Engine::flush), [`finish`](Engine::finish), [`query`](Engine::query)
//!   (final windows) and [`query_open`](Engine::query_open) (open windows so far),
//!   [`series`](Engine::series), [`live`](Engine::live), [`late_events`](Engine::late_events),
//!   [`batch_sink`](Engine::batch_sink) (a push-side weft-reactive stream of batches),
//!   [`metrics`](Engine::metrics) → [`EngineMetrics`], [`shutdown`](Engine::shutdown).
//! - Input: [`Event`], [`Batch`], [`Limits`], [`SeriesKey`].
//! - Windows and time: [`WindowSpec`] (tumbling, hopping, session), [`TimeMode`]
//!   (event time with watermarks, processing time), [`LatePolicy`], [`LateEvent`],
//!   [`SourceStatus`].
//! - Aggregates: [`AggregateConfig`], [`WindowAggregate`], [`Estimate`], [`TopItem`].
//! - Store and queries: [`Tier`], [`Query`], [`Aggregate`], [`QueryResult`],
//!   [`GroupResult`], [`Point`], [`Value`], [`StoreStatus`].
//! - Live: [`LiveFeed`], [`LiveUpdate`], [`LiveKind`].
//! - Alerts: [`AlertManager`] built by [`AlertManagerBuilder`] (rule commands
//!   [`CreateRule`], [`ChangeRule`], [`DeleteRule`] recorded as [`RuleEvent`]s;
//!   [`evaluate`](AlertManager::evaluate) → [`EvalReport`];
//!   [`history`](AlertManager::history), [`metrics`](AlertManager::metrics) →
//!   [`AlertMetrics`]), [`AlertRule`] with [`RuleAggregate`],
//!   [`Condition`], [`Comparison`], [`Resolve`]; the event-sourced [`AlertState`]
//!   ([`AlertStatus`], [`AlertEvent`], [`Observe`] of [`ObservedWindow`]s).
//! - Notifications: [`Notifier`] built by [`NotifierBuilder`] (a weft-circuitbreaker
//!   breaker per sink, retry with backoff, [`DeadLetter`]s, [`NotifierMetrics`]),
//!   [`Sink`] ([`SinkFuture`], [`SinkError`]), [`HttpSink`] over a weft-pool of
//!   [`HttpConnector`] connections, [`Notification`].
//! - Provisioning: [`Provisioner`] (a weft-saga saga) → [`Provisioned`], over a
//!   [`TenantDirectory`] with [`TenantSpec`] and [`TenantQuota`].
//! - Errors: [`Error`], [`IngestError`], [`RejectReason`]; [`Error`] for alerting
//!   and provisioning.

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]
#![deny(missing_docs)]

mod agg;
mod alert;
mod backfill;
mod compaction;
mod durable;
mod engine;
mod error;
mod event;
mod live;
mod log;
mod metrics;
mod provision;
mod query;
mod shard;
mod sink;
mod snapshot;
mod store;
mod topk;
mod watermark;
mod webhook;
mod window;

pub use agg::{AggregateConfig, Estimate, WindowAggregate};
pub use alert::{
    AlertEvent, AlertManager, AlertManagerBuilder, AlertMetrics, AlertRule, AlertState,
    AlertStatus, ChangeRule, Comparison, Condition, CreateRule, DeleteRule, EvalReport, Observe,
    ObservedWindow, Resolve, RuleAggregate, RuleEvent,
};
pub use backfill::{
    BackfillHandle, BackfillProgress, BackfillRange, Backfilled, BackfilledWindow, CancelToken,
};
pub use compaction::{Compacted, Compactor};
pub use durable::{Ack, Durability, Readiness};
pub use engine::{Engine, EngineBuilder, IngestReport, LatePolicy, Rejected};
pub use error::{Error, IngestError, RejectReason};
pub use event::{Batch, Event, Limits, SeriesKey};
pub use live::{LiveFeed, LiveKind, LiveUpdate};
pub use metrics::EngineMetrics;
pub use provision::{Provisioned, Provisioner, TenantDirectory, TenantQuota, TenantSpec};
pub use query::{Aggregate, GroupResult, Point, Query, QueryResult, Value};
pub use shard::LateEvent;
pub use snapshot::SnapshotInfo;
pub use store::{StoreStatus, Tier};
pub use topk::TopItem;
pub use watermark::{SourceStatus, TimeMode};
pub use webhook::{
    DeadLetter, HttpConnector, HttpSink, Notification, Notifier, NotifierBuilder, NotifierMetrics,
    Sink, SinkError, SinkFuture,
};
pub use window::WindowSpec;
