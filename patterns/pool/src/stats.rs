//! What [`Pool::status`](crate::Pool::status) reports: sizes, counters by outcome and
//! reason, and a wait-time histogram.

use std::time::Duration;

/// Why the pool closed an object (dropped it and freed its place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`Manager::has_broken`](crate::Manager::has_broken) said so on return.
    Broken,
    /// [`Manager::recycle`](crate::Manager::recycle) or a recycle hook rejected it (or
    /// recycling timed out).
    RecycleFailed,
    /// It outlived [`max_lifetime`](crate::Builder::max_lifetime).
    Expired,
    /// It sat idle longer than [`idle_timeout`](crate::Builder::idle_timeout).
    IdleTimeout,
    /// [`Pool::retain`](crate::Pool::retain) rejected it.
    Retained,
    /// [`Pool::resize`](crate::Pool::resize) shrank the pool below it.
    Resized,
    /// The pool was closed.
    PoolClosed,
    /// Its checkout was cancelled while the object was being recycled, leaving its state
    /// unknown.
    Cancelled,
    /// A keyed pool closed it to free global capacity for another key.
    Evicted,
}

/// Objects closed, by [`CloseReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Closes {
    /// [`CloseReason::Broken`].
    pub broken: u64,
    /// [`CloseReason::RecycleFailed`].
    pub recycle_failed: u64,
    /// [`CloseReason::Expired`].
    pub expired: u64,
    /// [`CloseReason::IdleTimeout`].
    pub idle_timeout: u64,
    /// [`CloseReason::Retained`].
    pub retained: u64,
    /// [`CloseReason::Resized`].
    pub resized: u64,
    /// [`CloseReason::PoolClosed`].
    pub pool_closed: u64,
    /// [`CloseReason::Cancelled`].
    pub cancelled: u64,
    /// [`CloseReason::Evicted`].
    pub evicted: u64,
}

impl Closes {
    pub(crate) fn count(&mut self, reason: CloseReason) {
        let slot = match reason {
            CloseReason::Broken => &mut self.broken,
            CloseReason::RecycleFailed => &mut self.recycle_failed,
            CloseReason::Expired => &mut self.expired,
            CloseReason::IdleTimeout => &mut self.idle_timeout,
            CloseReason::Retained => &mut self.retained,
            CloseReason::Resized => &mut self.resized,
            CloseReason::PoolClosed => &mut self.pool_closed,
            CloseReason::Cancelled => &mut self.cancelled,
            CloseReason::Evicted => &mut self.evicted,
        };
        *slot += 1;
    }

    /// All closes, whatever the reason.
    pub fn total(&self) -> u64 {
        self.broken
            + self.recycle_failed
            + self.expired
            + self.idle_timeout
            + self.retained
            + self.resized
            + self.pool_closed
            + self.cancelled
            + self.evicted
    }
}

/// The number of buckets of a [`Histogram`].
const BUCKETS: usize = 32;

/// A fixed-bucket histogram of durations: bucket 0 holds waits under 1 µs, bucket `i`
/// waits in `[2^(i-1), 2^i)` µs, the last bucket everything longer (about 36 minutes and
/// up). Percentiles are reported as the upper bound of their bucket, so they are exact to
/// within a factor of two, which is what a wait-time alarm needs, at 32 counters of cost.
///
/// ```
/// use std::time::Duration;
/// use weft_pool::Histogram;
///
/// let mut h = Histogram::default();
/// for _ in 0..99 {
///     h.record(Duration::ZERO);
/// }
/// h.record(Duration::from_millis(3));
/// assert_eq!(h.count(), 100);
/// assert_eq!(h.percentile(0.5), Some(Duration::from_micros(1)));
/// assert_eq!(h.percentile(1.0), Some(Duration::from_micros(4096)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    buckets: [u64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: [0; BUCKETS],
        }
    }
}

impl Histogram {
    /// Counts one duration.
    pub fn record(&mut self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let bucket = (u64::BITS - micros.leading_zeros()) as usize;
        self.buckets[bucket.min(BUCKETS - 1)] += 1;
    }

    /// How many durations were counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper bound of bucket `i`.
    fn bound(i: usize) -> Duration {
        if i >= BUCKETS - 1 {
            Duration::MAX
        } else {
            Duration::from_micros(1 << i)
        }
    }

    /// The duration below which a fraction `q` (0.0 to 1.0) of the counted durations
    /// fall, rounded up to a bucket bound (`Duration::MAX` for the open last bucket);
    /// `None` when nothing was counted.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        // The rank of the wanted value, 1-based: at least the first.
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Self::bound(i));
            }
        }
        Some(Duration::MAX)
    }

    /// The counts per bucket, with each bucket's upper bound.
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, n)| (Self::bound(i), *n))
    }
}

/// Counters since the pool was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Checkouts served without queueing.
    pub gets_direct: u64,
    /// Checkouts served after queueing.
    pub gets_waited: u64,
    /// Checkouts whose wait timed out (including waiters expired by
    /// [`Pool::maintain`](crate::Pool::maintain)).
    pub gets_timed_out: u64,
    /// Queued checkouts released with [`Error::Unavailable`](crate::Error::Unavailable)
    /// after other checkouts' creations failed.
    pub gets_failed_fast: u64,
    /// Objects created.
    pub created: u64,
    /// Creation attempts that failed or timed out (each retry counts).
    pub create_failures: u64,
    /// Recycle checks run at checkout, accepted or not (the rejected ones are also in
    /// `recycle_failures`).
    pub recycled: u64,
    /// Objects rejected at checkout (by recycle, a recycle hook, or a recycle timeout).
    pub recycle_failures: u64,
    /// Objects closed, by reason.
    pub closed: Closes,
    /// Objects detached with [`Object::take`](crate::Object::take).
    pub detached: u64,
    /// Checkouts held past [`leak_threshold`](crate::Builder::leak_threshold) (each
    /// reported once).
    pub leaks: u64,
    /// Time from a checkout's call to getting its slot, for every checkout that got one
    /// (zero for direct ones).
    pub wait_time: Histogram,
}

/// A snapshot of a pool: its sizes now and its counters.
///
/// `idle + in_use == size` always holds, and `size + creating <= max_size` except
/// briefly after [`Pool::resize`](crate::Pool::resize) shrank the pool below the objects
/// in use (they are closed as they come back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The most objects the pool holds.
    pub max_size: usize,
    /// Objects that exist: idle plus in use.
    pub size: usize,
    /// Objects waiting in the pool.
    pub idle: usize,
    /// Objects checked out (or being recycled for a checkout).
    pub in_use: usize,
    /// Creations in progress.
    pub creating: usize,
    /// Checkouts queued for an object.
    pub waiters: usize,
    /// Whether [`Pool::close`](crate::Pool::close) was called.
    pub closed: bool,
    /// Counters and the wait-time histogram.
    pub stats: Stats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_round_up_to_bucket_bounds() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(0.5), None);
        for micros in [0, 1, 2, 3, 4, 1000] {
            h.record(Duration::from_micros(micros));
        }
        assert_eq!(h.count(), 6);
        assert_eq!(h.percentile(0.0), Some(Duration::from_micros(1)));
        assert_eq!(h.percentile(0.5), Some(Duration::from_micros(4))); // 2 and 3 share [2, 4)
        assert_eq!(h.percentile(5.0 / 6.0), Some(Duration::from_micros(8)));
        assert_eq!(h.percentile(1.0), Some(Duration::from_micros(1024)));
        assert_eq!(h.percentile(f64::NAN), Some(Duration::from_micros(1024)));
    }

    #[test]
    fn huge_durations_land_in_the_open_last_bucket() {
        let mut h = Histogram::default();
        h.record(Duration::MAX);
        assert_eq!(h.percentile(1.0), Some(Duration::MAX));
        assert_eq!(h.buckets().last(), Some((Duration::MAX, 1)));
    }

    #[test]
    fn closes_are_counted_by_reason() {
        let mut c = Closes::default();
        c.count(CloseReason::Broken);
        c.count(CloseReason::Evicted);
        c.count(CloseReason::Broken);
        assert_eq!((c.broken, c.evicted, c.total()), (2, 1, 3));
    }
}
