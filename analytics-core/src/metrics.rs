//! Self-metrics: weft-lockfree striped counters written by the ingest callers and the
//! shards without contention, summed into an [`EngineMetrics`] snapshot.

use weft_lockfree::StripedCounter;
use weft_sync::CachePadded;
use weft_sync::atomic::{AtomicUsize, Ordering};

use crate::error::RejectReason;
use crate::store::StoreStatus;
use crate::watermark::SourceStatus;

/// The engine's counters.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) batches: StripedCounter,
    pub(crate) accepted: StripedCounter,
    /// Indexed by [`RejectReason::index`].
    pub(crate) rejected: [StripedCounter; RejectReason::ALL.len()],
    pub(crate) late_streamed: StripedCounter,
    pub(crate) late_stream_dropped: StripedCounter,
    pub(crate) busy: StripedCounter,
    pub(crate) rate_limited: StripedCounter,
    pub(crate) windows_closed: StripedCounter,
    /// Series each shard holds (written by that shard only).
    series: Box<[CachePadded<AtomicUsize>]>,
}

impl Counters {
    pub(crate) fn set_series(&self, shard: usize, n: usize) {
        if let Some(c) = self.series.get(shard) {
            // Relaxed: a gauge read for metrics; no other memory depends on it.
            c.store(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn series(&self) -> Vec<usize> {
        self.series
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    pub(crate) fn new(shards: usize) -> Self {
        Counters {
            batches: StripedCounter::new(),
            accepted: StripedCounter::new(),
            rejected: std::array::from_fn(|_| StripedCounter::new()),
            late_streamed: StripedCounter::new(),
            late_stream_dropped: StripedCounter::new(),
            busy: StripedCounter::new(),
            rate_limited: StripedCounter::new(),
            windows_closed: StripedCounter::new(),
            series: (0..shards)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
        }
    }
}

/// A snapshot of the engine's counters and state ([`Engine::metrics`](crate::Engine::metrics)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EngineMetrics {
    /// Ingest calls that handed events to the shards.
    pub batches: u64,
    /// Events that passed validation and were handed to a shard.
    pub accepted: u64,
    /// Rejected events per reason (validation at ingest; `Late` in the shards).
    pub rejected: Vec<(RejectReason, u64)>,
    /// Late events handed to the late stream.
    pub late_streamed: u64,
    /// Late events the late stream dropped (full, or no reader).
    pub late_stream_dropped: u64,
    /// Ingest calls refused as busy.
    pub busy: u64,
    /// Ingest calls refused by a tenant rate limit.
    pub rate_limited: u64,
    /// Final windows the shards closed.
    pub windows_closed: u64,
    /// Series (with open windows, or recently) each shard holds.
    pub shard_series: Vec<usize>,
    /// Shards restarted by their supervisor after a panic (each lost its open windows).
    pub shard_restarts: u64,
    /// Batches queued in each shard's mailbox now.
    pub shard_queue: Vec<usize>,
    /// The engine watermark (ms; `i64::MIN` before any event).
    pub watermark: i64,
    /// How far the watermark lags the engine clock (ms; 0 before any event).
    pub watermark_lag_ms: i64,
    /// Per-source watermarks and idleness.
    pub sources: Vec<SourceStatus>,
    /// Closed-window log entries the store has not applied yet.
    pub store_backlog: usize,
    /// The store's counts.
    pub store: StoreStatus,
}

impl EngineMetrics {
    /// Rejections for one reason.
    ///
    /// ```
    /// # let m: Option<weft_analytics::EngineMetrics> = None;
    /// # if let Some(m) = m {
    /// let late = m.rejected(weft_analytics::RejectReason::Late);
    /// # let _ = late; }
    /// ```
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}
