//! The outcomes of a check.

use std::fmt;
use std::time::{Duration, Instant};

use weft_time::Epoch;

use crate::Quota;
use crate::gcra::Gcra;

/// A request that was admitted.
///
/// ```
/// let l = weft_ratelimit::RateLimiter::direct(weft_ratelimit::Quota::per_second(5)?);
/// let ok = l.check().unwrap();
/// assert_eq!(ok.remaining(), 4);
/// # Ok::<(), weft_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    remaining: Remaining,
}

/// The remaining capacity, computed only when asked for: the division it takes would
/// otherwise be a large share of a check's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Remaining {
    Known(u32),
    Lazy { gcra: Gcra, tat: u64, now: u64 },
}

impl Admitted {
    /// An admission whose remaining capacity is already known.
    pub(crate) fn known(remaining: u32) -> Self {
        Admitted {
            remaining: Remaining::Known(remaining),
        }
    }

    /// An admission that left the quota at `tat`, decided at `now`.
    #[inline]
    pub(crate) fn lazy(gcra: Gcra, tat: u64, now: u64) -> Self {
        Admitted {
            remaining: Remaining::Lazy { gcra, tat, now },
        }
    }

    /// Cells that could still be taken at once right after this admission (for an
    /// `X-RateLimit-Remaining` header).
    pub fn remaining(&self) -> u32 {
        match self.remaining {
            Remaining::Known(n) => n,
            Remaining::Lazy { gcra, tat, now } => gcra.remaining(tat, now),
        }
    }
}

/// A request that was denied, and when it would be admitted.
///
/// Carries the earliest instant at which the same request would succeed, so the caller
/// can wait exactly that long or answer `429 Too Many Requests` with `Retry-After`.
///
/// ```
/// use weft_ratelimit::{Quota, RateLimiter};
/// use weft_time::ManualClock;
///
/// let clock = ManualClock::new();
/// let l = RateLimiter::with_clock(Quota::per_second(1)?, clock.clone());
/// l.check().unwrap();
/// let denied = l.check().unwrap_err();
/// assert_eq!(denied.retry_after(), std::time::Duration::from_secs(1));
/// # Ok::<(), weft_ratelimit::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NotUntil {
    pub(crate) earliest: Instant,
    pub(crate) decided_at: Instant,
    pub(crate) quota: Quota,
}

impl NotUntil {
    /// A denial decided at `now` that would be admitted at `earliest` (nanoseconds since
    /// `epoch`), by `quota`.
    pub(crate) fn new(epoch: &Epoch, earliest: u64, now: u64, quota: Quota) -> Self {
        NotUntil {
            earliest: epoch.instant(earliest),
            decided_at: epoch.instant(now),
            quota,
        }
    }

    /// The earliest instant at which the request would be admitted (if nobody else takes
    /// the capacity first).
    pub fn earliest_possible(&self) -> Instant {
        self.earliest
    }

    /// How long after the decision the request would be admitted: the `Retry-After`.
    pub fn retry_after(&self) -> Duration {
        self.earliest.saturating_duration_since(self.decided_at)
    }

    /// How long from `now` until the request would be admitted (zero if already passed).
    pub fn wait_time_from(&self, now: Instant) -> Duration {
        self.earliest.saturating_duration_since(now)
    }

    /// `retry_after` rounded up to whole seconds, as the HTTP `Retry-After` header wants.
    ///
    /// ```
    /// # use weft_ratelimit::{Quota, RateLimiter};
    /// # let l = RateLimiter::with_clock(Quota::per_minute(1)?, weft_time::ManualClock::new());
    /// # l.check().unwrap();
    /// assert_eq!(l.check().unwrap_err().retry_after_secs(), 60);
    /// # Ok::<(), weft_ratelimit::Error>(())
    /// ```
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after();
        d.as_secs() + u64::from(d.subsec_nanos() > 0)
    }

    /// The quota that denied the request (for a multi-quota limiter, the one that will be
    /// last to admit it).
    pub fn quota(&self) -> &Quota {
        &self.quota
    }
}

impl fmt::Debug for NotUntil {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotUntil")
            .field("retry_after", &self.retry_after())
            .field("quota", &self.quota)
            .finish()
    }
}

impl fmt::Display for NotUntil {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limited; retry after {:?}", self.retry_after())
    }
}

impl std::error::Error for NotUntil {}
