//! Stage metrics: a cheap snapshot ([`StageMetrics`]) and the shared handle that stages
//! update ([`Meter`]).

use std::fmt;
use std::task::Poll;

use weft_sync::Arc;
use weft_sync::atomic::{AtomicU64, Ordering};

/// A snapshot of one stage's counters.
///
/// What each field means for each stage is listed in the stage's docs; in short:
///
/// - `items_in`: items the stage took from upstream (or from producers);
/// - `items_out`: items it handed downstream (a batch or a window counts once);
/// - `buffered`: items it holds now;
/// - `demand`: outstanding demand it has signalled upstream (Reactive Streams stages), or
///   the free room of a bounded buffer;
/// - `dropped`: items it discarded by policy (overflow, superseded by a newer item, or
///   outside every window). Nothing is discarded without being counted here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageMetrics {
    /// Items taken in.
    pub items_in: u64,
    /// Items handed downstream.
    pub items_out: u64,
    /// Items held now.
    pub buffered: u64,
    /// Outstanding demand, or free room of a bounded buffer.
    pub demand: u64,
    /// Items discarded by policy.
    pub dropped: u64,
}

/// A shared, cheaply readable set of stage counters.
///
/// Each operator stage owns one and updates it as it runs; clone the handle (via the
/// stage's `meter()` method) to read [`snapshot`](Meter::snapshot)s from another thread,
/// for a metrics exporter say. Updates come from the one task polling the stage, so they
/// are plain loads and stores of relaxed atomics (no read-modify-write on the hot path);
/// readers see each counter's latest value, not a consistent cut across counters.
///
/// ```
/// use futures_util::StreamExt;
/// use weft_reactive::ReactiveExt;
///
/// let stage = futures_util::stream::iter(1..=3).metered();
/// let meter = stage.meter();
/// let all: Vec<i32> = futures_executor::block_on(stage.collect());
/// assert_eq!(all, [1, 2, 3]);
/// assert_eq!(meter.snapshot().items_out, 3);
/// ```
#[derive(Clone, Default)]
pub struct Meter {
    inner: Arc<Counters>,
}

/// The counters behind a [`Meter`].
#[derive(Default)]
struct Counters {
    items_in: AtomicU64,
    items_out: AtomicU64,
    buffered: AtomicU64,
    demand: AtomicU64,
    dropped: AtomicU64,
}

/// Adds `n` to a counter that only the owning stage writes.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    // Relaxed load + store: only the polling task writes, so no update is lost; readers
    // need no happens-before edge for a monotone statistic.
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl Meter {
    /// A meter with every counter at zero.
    pub fn new() -> Self {
        Meter::default()
    }

    /// The counters now.
    pub fn snapshot(&self) -> StageMetrics {
        let c = &*self.inner;
        StageMetrics {
            items_in: c.items_in.load(Ordering::Relaxed),
            items_out: c.items_out.load(Ordering::Relaxed),
            buffered: c.buffered.load(Ordering::Relaxed),
            demand: c.demand.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    #[inline]
    pub(crate) fn add_in(&self, n: u64) {
        bump(&self.inner.items_in, n);
    }

    #[inline]
    pub(crate) fn add_out(&self, n: u64) {
        bump(&self.inner.items_out, n);
    }

    #[inline]
    pub(crate) fn add_dropped(&self, n: u64) {
        bump(&self.inner.dropped, n);
    }

    #[inline]
    pub(crate) fn set_buffered(&self, n: usize) {
        self.inner.buffered.store(n as u64, Ordering::Relaxed);
    }

    /// Hands `out` downstream: counts it (if any) and records what is left buffered.
    #[inline]
    pub(crate) fn emit<T>(&self, out: Option<T>, buffered: usize) -> Poll<Option<T>> {
        if out.is_some() {
            self.add_out(1);
        }
        self.set_buffered(buffered);
        Poll::Ready(out)
    }

    #[inline]
    pub(crate) fn set_demand(&self, n: u64) {
        self.inner.demand.store(n, Ordering::Relaxed);
    }
}

impl fmt::Debug for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Meter").field(&self.snapshot()).finish()
    }
}
