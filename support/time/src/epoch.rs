//! A fixed starting point on a clock, for code that keeps time as integer nanoseconds.

use std::time::{Duration, Instant};

use crate::Clock;

/// A fixed starting point on a [`Clock`]: hot paths keep time as `u64` nanoseconds since
/// the epoch (one [`Clock::monotonic_nanos`] read, no `Instant` arithmetic) and turn
/// them back into [`Instant`]s only when they report a time to a caller.
///
/// ```
/// use std::time::Duration;
/// use weft_time::{Clock, Epoch, ManualClock};
///
/// let clock = ManualClock::new();
/// let epoch = Epoch::now(&clock);
/// clock.advance(Duration::from_millis(5));
/// let ns = epoch.nanos(&clock);
/// assert_eq!(ns, 5_000_000);
/// assert_eq!(epoch.instant(ns), clock.now());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    /// The instant of the epoch.
    origin: Instant,
    /// `clock.monotonic_nanos()` at the epoch.
    origin_ns: u64,
}

impl Epoch {
    /// An epoch at `clock`'s current time.
    pub fn now<C: Clock + ?Sized>(clock: &C) -> Self {
        Epoch {
            origin: clock.now(),
            origin_ns: clock.monotonic_nanos(),
        }
    }

    /// Nanoseconds from the epoch to `clock`'s current time (zero before the epoch).
    #[inline]
    pub fn nanos<C: Clock + ?Sized>(&self, clock: &C) -> u64 {
        clock.monotonic_nanos().saturating_sub(self.origin_ns)
    }

    /// The instant `ns` nanoseconds after the epoch (the epoch itself if that instant is
    /// beyond what `Instant` can represent).
    pub fn instant(&self, ns: u64) -> Instant {
        self.origin
            .checked_add(Duration::from_nanos(ns))
            .unwrap_or(self.origin)
    }
}
