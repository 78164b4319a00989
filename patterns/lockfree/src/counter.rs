//! A striped counter for hot metrics (Java's `LongAdder` design).
//!
//! # Design
//!
//! A single `AtomicU64` updated by many threads is a contention point: every
//! `fetch_add` needs the cache line in exclusive state, so the line ping-pongs between
//! cores and each add costs a cross-core transfer. A striped counter spreads the adds over
//! several cells, each on its own cache line ([`CachePadded`]); a thread adds to "its"
//! cell (chosen by [`weft_sync::thread::index`]), so threads that run at the same time
//! usually write different lines. Reading sums all cells: reads are rarer and slower.
//!
//! `sum` is not an atomic snapshot (neither is `LongAdder.sum`): an add concurrent with a
//! sum may or may not be counted. But every add that completed before the sum started is
//! counted, and with only non-negative adds, successive sums never decrease (each cell only
//! grows, and reads of one cell are coherent). The loom models `counter_sum_after_adds`
//! and `counter_sum_monotonic_and_take_exact` check both.

use std::fmt;

use weft_sync::CachePadded;
use weft_sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;

/// A `u64` counter striped over cache-padded cells, for many concurrent writers.
///
/// Adds wrap around at `u64::MAX`, like `AtomicU64::fetch_add`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use weft_lockfree::StripedCounter;
///
/// let c = Arc::new(StripedCounter::new());
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| {
///             for _ in 0..1000 {
///                 c.incr();
///             }
///         });
///     }
/// });
/// assert_eq!(c.sum(), 4000);
/// ```
pub struct StripedCounter {
    /// The cells; the length is a power of two so a thread's cell is `index & mask`.
    cells: Box<[CachePadded<AtomicU64>]>,
    /// `cells.len() - 1`.
    mask: usize,
}

impl StripedCounter {
    /// The most cells a counter will use.
    pub const MAX_SHARDS: usize = 256;

    /// A counter with a cell count suited to this machine: twice the available
    /// parallelism, rounded up to a power of two (at least 2, at most 64).
    ///
    /// ```
    /// let c = weft_lockfree::StripedCounter::new();
    /// assert!(c.shards() >= 2);
    /// ```
    pub fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self::build((cpus * 2).clamp(2, 64))
    }

    /// A counter with `shards` cells (rounded up to a power of two, at most
    /// [`MAX_SHARDS`](Self::MAX_SHARDS)). One cell per concurrently writing thread avoids
    /// contention; each costs a cache line (128 bytes on most x86-64 and aarch64).
    ///
    /// # Errors
    ///
    /// [`Error::ZeroShards`] for zero.
    ///
    /// ```
    /// let c = weft_lockfree::StripedCounter::with_shards(3).unwrap();
    /// assert_eq!(c.shards(), 4);
    /// assert!(weft_lockfree::StripedCounter::with_shards(0).is_err());
    /// ```
    pub fn with_shards(shards: usize) -> Result<Self, Error> {
        if shards == 0 {
            return Err(Error::ZeroShards);
        }
        Ok(Self::build(shards.min(Self::MAX_SHARDS)))
    }

    /// Builds with `n` (non-zero, at most `MAX_SHARDS`) rounded up to a power of two.
    fn build(n: usize) -> Self {
        let n = n.next_power_of_two();
        StripedCounter {
            cells: (0..n)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            mask: n - 1,
        }
    }

    /// Adds `n` to the counter.
    ///
    /// ```
    /// let c = weft_lockfree::StripedCounter::new();
    /// c.add(5);
    /// assert_eq!(c.sum(), 5);
    /// ```
    #[inline]
    pub fn add(&self, n: u64) {
        let cell = &self.cells[weft_sync::thread::index() & self.mask];
        // Relaxed: the counter publishes nothing but its own value; each add is atomic and
        // every completed add is visible to a later `sum` through cell coherence.
        cell.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    ///
    /// ```
    /// let c = weft_lockfree::StripedCounter::new();
    /// c.incr();
    /// assert_eq!(c.sum(), 1);
    /// ```
    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }

    /// The sum of all cells (see the module docs for what concurrent adds it includes).
    ///
    /// ```
    /// let c = weft_lockfree::StripedCounter::new();
    /// c.add(2);
    /// c.add(3);
    /// assert_eq!(c.sum(), 5);
    /// ```
    pub fn sum(&self) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |acc, c| acc.wrapping_add(c.load(Ordering::Relaxed)))
    }

    /// Returns the sum and resets every cell to zero. Each add is counted exactly once
    /// across successive calls: a concurrent add lands either in this sum or in a later one.
    ///
    /// ```
    /// let c = weft_lockfree::StripedCounter::new();
    /// c.add(4);
    /// assert_eq!(c.take(), 4);
    /// assert_eq!(c.sum(), 0);
    /// ```
    pub fn take(&self) -> u64 {
        // `swap` takes each cell's value atomically: no add is lost between read and reset.
        self.cells.iter().fold(0u64, |acc, c| {
            acc.wrapping_add(c.swap(0, Ordering::Relaxed))
        })
    }

    /// The number of cells.
    pub fn shards(&self) -> usize {
        self.cells.len()
    }
}

impl Default for StripedCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for StripedCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripedCounter")
            .field("sum", &self.sum())
            .field("shards", &self.cells.len())
            .finish()
    }
}
