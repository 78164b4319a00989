//! Quotas: how many cells, replenished how fast.

use std::time::Duration;

use crate::Error;

/// A rate: a burst of cells, each replenished after a fixed interval.
///
/// `Quota::per_second(100)` admits bursts of up to 100 cells and replenishes one cell
/// every 10 ms; [`allow_burst`](Quota::allow_burst) changes the burst without changing the
/// rate. Every constructor validates: zero rates, rates above one cell per nanosecond
/// and bursts whose total interval overflows are errors, never panics.
///
/// ```
/// use std::time::Duration;
/// use weft_ratelimit::Quota;
///
/// let q = Quota::per_second(100)?.allow_burst(10)?;
/// assert_eq!(q.burst(), 10);
/// assert_eq!(q.replenish_interval(), Duration::from_millis(10));
/// assert!(Quota::per_second(0).is_err());
/// # Ok::<(), weft_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Nanoseconds to replenish one cell (GCRA's emission interval `T`).
    interval_ns: u64,
    /// Cells admitted at once when fully replenished.
    burst: u32,
}

impl Quota {
    /// `cells` per second, with a burst of `cells`.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroQuota`] for zero, [`Error::RateTooHigh`] above 10⁹ per second.
    pub fn per_second(cells: u32) -> Result<Quota, Error> {
        Self::per_period(cells, Duration::from_secs(1))
    }

    /// `cells` per minute, with a burst of `cells`.
    ///
    /// ```
    /// let q = weft_ratelimit::Quota::per_minute(60)?;
    /// assert_eq!(q.replenish_interval(), std::time::Duration::from_secs(1));
    /// # Ok::<(), weft_ratelimit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`per_second`](Quota::per_second).
    pub fn per_minute(cells: u32) -> Result<Quota, Error> {
        Self::per_period(cells, Duration::from_secs(60))
    }

    /// `cells` per hour, with a burst of `cells`.
    ///
    /// # Errors
    ///
    /// As [`per_second`](Quota::per_second).
    pub fn per_hour(cells: u32) -> Result<Quota, Error> {
        Self::per_period(cells, Duration::from_secs(3600))
    }

    /// `cells` per `period`, with a burst of `cells`.
    ///
    /// ```
    /// let q = weft_ratelimit::Quota::per_period(5, std::time::Duration::from_secs(10))?;
    /// assert_eq!(q.burst(), 5);
    /// # Ok::<(), weft_ratelimit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::ZeroQuota`], [`Error::RateTooHigh`] (interval under 1 ns).
    pub fn per_period(cells: u32, period: Duration) -> Result<Quota, Error> {
        if cells == 0 {
            return Err(Error::ZeroQuota);
        }
        let interval = period.as_nanos() / u128::from(cells);
        if interval == 0 {
            return Err(Error::RateTooHigh { cells, period });
        }
        let interval_ns = u64::try_from(interval).map_err(|_| Error::QuotaOverflow {
            burst: cells,
            interval: period,
        })?;
        Self::new(interval_ns, cells)
    }

    /// One cell every `interval`, with a burst of 1.
    ///
    /// ```
    /// let q = weft_ratelimit::Quota::with_period(std::time::Duration::from_millis(250))?;
    /// assert_eq!(q.burst(), 1);
    /// # Ok::<(), weft_ratelimit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::RateTooHigh`] for an interval under 1 ns.
    pub fn with_period(interval: Duration) -> Result<Quota, Error> {
        Self::per_period(1, interval)
    }

    /// The same rate with a burst of `burst` cells.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroQuota`] for zero, [`Error::QuotaOverflow`] if the burst times the
    /// interval overflows.
    pub fn allow_burst(self, burst: u32) -> Result<Quota, Error> {
        if burst == 0 {
            return Err(Error::ZeroQuota);
        }
        Self::new(self.interval_ns, burst)
    }

    /// Validates the GCRA parameters: `interval * burst` must fit in `u64` nanoseconds.
    fn new(interval_ns: u64, burst: u32) -> Result<Quota, Error> {
        if interval_ns.checked_mul(u64::from(burst)).is_none() {
            return Err(Error::QuotaOverflow {
                burst,
                interval: Duration::from_nanos(interval_ns),
            });
        }
        Ok(Quota { interval_ns, burst })
    }

    /// The most cells admitted at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// How long one cell takes to replenish.
    pub fn replenish_interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// How long an empty bucket takes to refill completely (`burst x interval`).
    ///
    /// ```
    /// let q = weft_ratelimit::Quota::per_second(4)?;
    /// assert_eq!(q.full_replenish(), std::time::Duration::from_secs(1));
    /// # Ok::<(), weft_ratelimit::Error>(())
    /// ```
    pub fn full_replenish(&self) -> Duration {
        Duration::from_nanos(self.tau_ns())
    }

    /// The emission interval `T` in nanoseconds.
    pub(crate) fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// The delay tolerance `τ = T × burst` in nanoseconds (validated not to overflow).
    pub(crate) fn tau_ns(&self) -> u64 {
        self.interval_ns * u64::from(self.burst)
    }
}
