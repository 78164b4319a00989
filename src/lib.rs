//! Weft: production-grade concurrency patterns, one crate per pattern.
//!
//! This umbrella crate re-exports each pattern crate behind a cargo feature of the same
//! name, so `weft = { version = "0.1", features = ["lockfree"] }` gives `weft::lockfree`.
//! Depending on a single pattern crate (`weft-lockfree`, ...) directly works just as well.
//! Two cross-cutting features switch on integrations in every enabled crate: `tokio`
//! (async waiting on tokio timers) and `tower` (middleware layers).
//!
//! | feature | module | crate |
//! |---|---|---|
//! | `actor` | [`actor`] | `weft-actor`: tokio actors with bounded mailboxes and overflow policies, dead letters, typed tell/ask with deadlines, OTP supervision, registry, routers, graceful shutdown |
//! | `analytics` | [`analytics`] | `weft-analytics`: streaming analytics engine composed from the patterns: sharded backpressured ingest, tumbling/hopping/session windows with watermarks and allowed lateness, mergeable sketches (DDSketch, HLL++, Space-Saving), a window store with downsampling tiers, queries and a live feed |
//! | `circuitbreaker` | [`circuitbreaker`] | `weft-circuitbreaker`: circuit breaker with count/time windows and exact half-open probing, retry with budgets, timeouts |
//! | `cqrs` | [`cqrs`] | `weft-cqrs`: command bus with middleware and per-key ordering, tracking projections with durable checkpoints, read-your-writes, blue/green rebuilds, subscription queries |
//! | `eventsourcing` | [`eventsourcing`] | `weft-eventsourcing`: aggregates, optimistic-concurrency event stores (in-memory, crash-safe file log with group commit), snapshots, upcasting, durable subscriptions |
//! | `lockfree` | [`lockfree`] | `weft-lockfree`: bounded MPMC queue, SPSC ring, Treiber stack, striped counter |
//! | `mapreduce` | [`mapreduce`] | `weft-mapreduce`: keyed parallel MapReduce with map-side combining, spilling to disk under a memory budget, deterministic mode |
//! | `pool` | [`pool`] | `weft-pool`: fair, cancellation-safe async and blocking object pool with `min_idle`, lifetime and idle reaping, create retries that fail fast, leak detection, keyed pools |
//! | `ratelimit` | [`ratelimit`] | `weft-ratelimit`: GCRA direct, multi-quota and keyed limiters, fair waiting, concurrency limits |
//! | `reactive` | [`reactive`] | `weft-reactive`: backpressured streams: Reactive Streams demand bridged to `futures::Stream`, bounded buffers with overflow policies, multicast with per-subscriber buffers, time operators on any runtime |
//! | `saga` | [`saga`] | `weft-saga`: durable orchestrated sagas: typed steps with compensations, parallel groups, retries and deadlines, a crash-safe journal that resumes in-flight sagas without repeating side effects, dead letters with manual resume |
//! | `time` | [`time`] | `weft-time`: the `Clock` trait, deadlines, backoff policies |
//! | `sync` | [`sync`] | `weft-sync`: the loom-swappable synchronisation facade |
//! | `workerpool` | [`workerpool`] | `weft-workerpool`: work-stealing thread pool with bounded queues, backpressure policies, dynamic scaling, cancellation, priorities, zero idle cost |
//!
//! ```
//! # #[cfg(feature = "lockfree")] {
//! let q = weft::lockfree::ArrayQueue::new(2).unwrap();
//! q.push(1).unwrap();
//! assert_eq!(q.pop(), Some(1));
//! # }
//! ```

#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

#[cfg(feature = "actor")]
#[doc(inline)]
pub use weft_actor as actor;

#[cfg(feature = "analytics")]
#[doc(inline)]
pub use weft_analytics as analytics;

#[cfg(feature = "circuitbreaker")]
#[doc(inline)]
pub use weft_circuitbreaker as circuitbreaker;

#[cfg(feature = "cqrs")]
#[doc(inline)]
pub use weft_cqrs as cqrs;
#[cfg(feature = "eventsourcing")]
#[doc(inline)]
pub use weft_eventsourcing as eventsourcing;

#[cfg(feature = "lockfree")]
#[doc(inline)]
pub use weft_lockfree as lockfree;

#[cfg(feature = "mapreduce")]
#[doc(inline)]
pub use weft_mapreduce as mapreduce;

#[cfg(feature = "pool")]
#[doc(inline)]
pub use weft_pool as pool;

#[cfg(feature = "ratelimit")]
#[doc(inline)]
pub use weft_ratelimit as ratelimit;

#[cfg(feature = "reactive")]
#[doc(inline)]
pub use weft_reactive as reactive;

#[cfg(feature = "saga")]
#[doc(inline)]
pub use weft_saga as saga;

#[cfg(feature = "sync")]
#[doc(inline)]
pub use weft_sync as sync;

#[cfg(feature = "time")]
#[doc(inline)]
pub use weft_time as time;

#[cfg(feature = "workerpool")]
#[doc(inline)]
pub use weft_workerpool as workerpool;

/// The teaching book in `docs/src`, compiled here so that every Rust snippet in it is
/// built and run by `cargo test` (`cargo xtask test`).
/// Each chapter is gated on the features its snippets use.
#[cfg(doctest)]
pub mod book {
    #[cfg(all(feature = "analytics", feature = "time"))]
    #[doc = include_str!("../docs/src/analytics.md")]
    pub struct Analytics;
    #[cfg(feature = "analytics")]
    #[doc = include_str!("../docs/src/platform.md")]
    pub struct Platform;
    #[cfg(feature = "analytics")]
    #[doc = include_str!("../docs/src/journey.md")]
    pub struct Journey;
    #[cfg(feature = "actor")]
    #[doc = include_str!("../docs/src/actor.md")]
    pub struct Actor;
    #[cfg(feature = "sync")]
    #[doc = include_str!("../docs/src/introduction.md")]
    pub struct Introduction;
    #[cfg(all(feature = "lockfree", feature = "sync"))]
    #[doc = include_str!("../docs/src/lockfree.md")]
    pub struct Lockfree;
    #[cfg(feature = "eventsourcing")]
    #[doc = include_str!("../docs/src/eventsourcing.md")]
    pub struct Eventsourcing;
    #[cfg(feature = "mapreduce")]
    #[doc = include_str!("../docs/src/mapreduce.md")]
    pub struct Mapreduce;
    #[cfg(all(feature = "circuitbreaker", feature = "time"))]
    #[doc = include_str!("../docs/src/circuitbreaker.md")]
    pub struct Circuitbreaker;
    #[cfg(feature = "cqrs")]
    #[doc = include_str!("../docs/src/cqrs.md")]
    pub struct Cqrs;
    #[cfg(all(feature = "pool", feature = "time", feature = "tokio"))]
    #[doc = include_str!("../docs/src/pool.md")]
    pub struct Pool;
    #[cfg(all(feature = "ratelimit", feature = "time"))]
    #[doc = include_str!("../docs/src/ratelimit.md")]
    pub struct Ratelimit;
    #[cfg(all(feature = "reactive", feature = "time", feature = "tokio"))]
    #[doc = include_str!("../docs/src/reactive.md")]
    pub struct Reactive;
    #[cfg(feature = "saga")]
    #[doc = include_str!("../docs/src/saga.md")]
    pub struct Saga;
    #[cfg(feature = "workerpool")]
    #[doc = include_str!("../docs/src/workerpool.md")]
    pub struct Workerpool;
}
