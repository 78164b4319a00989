//! Several quotas at once: all must admit, and none is charged unless all do.

use std::fmt;

use weft_sync::Mutex;
use weft_sync::atomic::{AtomicU64, Ordering};
use weft_time::{Clock, Epoch, FastClock};

use crate::gcra::Gcra;
use crate::{Admitted, Error, NotUntil, Quota};

/// A limiter enforcing several quotas together, such as 10 per second *and* 100 per
/// minute: a request is admitted only if every quota admits it, and a denied request
/// charges none of them (all or nothing).
///
/// The quotas' arrival times sit under one short lock, so the all-or-nothing decision is
/// atomic by construction (the loom model `multi_quota_all_or_nothing` checks it); a
/// check holds the lock for a few comparisons, never across a wait.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_ratelimit::{MultiLimiter, Quota};
/// use weft_time::ManualClock;
///
/// let clock = ManualClock::new();
/// let l = MultiLimiter::with_clock(
///     &[Quota::per_second(2)?, Quota::per_minute(3)?],
///     clock.clone(),
/// )?;
/// assert!(l.check().is_ok());
/// assert!(l.check().is_ok());
/// assert!(l.check().is_err()); // per-second quota exhausted
/// clock.advance(Duration::from_secs(1));
/// assert!(l.check().is_ok()); // third of the minute
/// clock.advance(Duration::from_secs(1));
/// let denied = l.check().unwrap_err(); // per-minute quota exhausted
/// assert_eq!(denied.quota(), &Quota::per_minute(3)?);
/// # Ok::<(), weft_ratelimit::Error>(())
/// ```
pub struct MultiLimiter<C: Clock = FastClock> {
    /// The arrival time of each quota.
    tats: Mutex<Vec<u64>>,
    /// Each quota's arithmetic, in the order given.
    gcras: Vec<Gcra>,
    /// The quotas.
    quotas: Vec<Quota>,
    /// The smallest burst: the largest request that can ever be admitted.
    burst: u32,
    /// Cells admitted.
    admitted: AtomicU64,
    /// Requests denied.
    rejected: AtomicU64,
    /// The time source.
    clock: C,
    /// Where the limiter's nanosecond times count from.
    epoch: Epoch,
}

impl MultiLimiter<FastClock> {
    /// A limiter for all of `quotas` on the default clock.
    ///
    /// # Errors
    ///
    /// [`Error::NoQuota`] for an empty slice.
    pub fn new(quotas: &[Quota]) -> Result<Self, Error> {
        Self::with_clock(quotas, FastClock::new())
    }
}

impl<C: Clock> MultiLimiter<C> {
    /// A limiter for all of `quotas`, reading time from `clock`.
    ///
    /// # Errors
    ///
    /// [`Error::NoQuota`] for an empty slice.
    pub fn with_clock(quotas: &[Quota], clock: C) -> Result<Self, Error> {
        let burst = quotas
            .iter()
            .map(Quota::burst)
            .min()
            .ok_or(Error::NoQuota)?;
        let epoch = Epoch::now(&clock);
        Ok(MultiLimiter {
            tats: Mutex::new(vec![0; quotas.len()]),
            gcras: quotas.iter().map(Gcra::new).collect(),
            quotas: quotas.to_vec(),
            burst,
            admitted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            clock,
            epoch,
        })
    }

    /// Admits one cell if every quota does.
    pub fn check(&self) -> Result<Admitted, NotUntil> {
        self.check_cells(1)
    }

    /// Admits `n` cells if every quota does; otherwise charges none and says when all
    /// would admit.
    ///
    /// # Errors
    ///
    /// [`Error::InsufficientCapacity`] if `n` exceeds the smallest burst.
    pub fn check_n(&self, n: u32) -> Result<Result<Admitted, NotUntil>, Error> {
        if n > self.burst {
            return Err(Error::InsufficientCapacity {
                requested: n,
                burst: self.burst,
            });
        }
        Ok(self.check_cells(n))
    }

    fn check_cells(&self, n: u32) -> Result<Admitted, NotUntil> {
        let now = self.epoch.nanos(&self.clock);
        let mut tats = self.tats.lock();
        // First decide for every quota, then commit all or none.
        let mut latest: Option<(u64, usize)> = None;
        for (i, (g, &tat)) in self.gcras.iter().zip(tats.iter()).enumerate() {
            if let Err(earliest) = g.test(tat, now, n) {
                if latest.is_none_or(|(e, _)| earliest > e) {
                    latest = Some((earliest, i));
                }
            }
        }
        if let Some((earliest, i)) = latest {
            drop(tats);
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(NotUntil::new(&self.epoch, earliest, now, self.quotas[i]));
        }
        let mut remaining = u32::MAX;
        for (g, tat) in self.gcras.iter().zip(tats.iter_mut()) {
            // Cannot fail: tested above under the same lock.
            if let Ok(new_tat) = g.test(*tat, now, n) {
                *tat = new_tat;
                remaining = remaining.min(g.remaining(new_tat, now));
            }
        }
        drop(tats);
        // Relaxed: statistics only.
        self.admitted.fetch_add(u64::from(n), Ordering::Relaxed);
        Ok(Admitted::known(remaining))
    }

    /// The quotas, in the order given.
    pub fn quotas(&self) -> &[Quota] {
        &self.quotas
    }

    /// Cells admitted and requests denied since creation.
    ///
    /// ```
    /// let l = weft_ratelimit::MultiLimiter::new(&[weft_ratelimit::Quota::per_second(1)?])?;
    /// let _ = l.check();
    /// assert_eq!(l.counters(), (1, 0));
    /// # Ok::<(), weft_ratelimit::Error>(())
    /// ```
    pub fn counters(&self) -> (u64, u64) {
        (
            self.admitted.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed),
        )
    }
}

impl<C: Clock> fmt::Debug for MultiLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiLimiter")
            .field("quotas", &self.quotas)
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}
