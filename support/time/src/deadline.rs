//! [`Deadline`]: an absolute point in monotonic time by which something must finish.

use std::time::{Duration, Instant};

use crate::Clock;
use crate::util::largest_fitting;

/// An absolute monotonic instant by which an operation must finish.
///
/// A deadline is fixed once, then passed down through retries, queues and nested calls,
/// each asking how much time is [`remaining`](Deadline::remaining) on the caller's
/// [`Clock`]; unlike a timeout, it does not restart at every hop.
///
/// Nothing here panics: a timeout too large to represent (such as [`Duration::MAX`])
/// saturates to the farthest instant the platform can represent, and
/// [`remaining`](Deadline::remaining) is zero, never negative, once the deadline passed.
///
/// Deadlines order by instant, earliest first.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_time::{Deadline, ManualClock};
///
/// let clock = ManualClock::new();
/// let deadline = Deadline::after(&clock, Duration::from_secs(5));
///
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(deadline.remaining(&clock), Duration::from_secs(3));
/// assert!(!deadline.is_expired(&clock));
///
/// clock.advance(Duration::from_secs(10));
/// assert_eq!(deadline.remaining(&clock), Duration::ZERO);
/// assert!(deadline.is_expired(&clock));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// A deadline `timeout` from now on `clock`.
    ///
    /// A `timeout` beyond what [`Instant`] can represent saturates to the farthest
    /// representable instant (so `Duration::MAX` means "effectively never").
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::{Clock, Deadline, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let deadline = Deadline::after(&clock, Duration::from_millis(250));
    /// assert_eq!(deadline.instant(), clock.now() + Duration::from_millis(250));
    ///
    /// let never = Deadline::after(&clock, Duration::MAX); // no overflow panic
    /// assert!(never > deadline);
    /// ```
    pub fn after<C: Clock + ?Sized>(clock: &C, timeout: Duration) -> Self {
        let now = clock.now();
        let offset = largest_fitting(timeout, |d| now.checked_add(d).is_some());
        Deadline {
            // Cannot fail: `largest_fitting` returned an offset that fits.
            at: now.checked_add(offset).unwrap_or(now),
        }
    }

    /// A deadline at the given instant.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use weft_time::Deadline;
    ///
    /// let at = Instant::now() + Duration::from_secs(1);
    /// assert_eq!(Deadline::at(at).instant(), at);
    /// ```
    pub const fn at(instant: Instant) -> Self {
        Deadline { at: instant }
    }

    /// The instant this deadline falls at (for `sleep_until`-style APIs).
    ///
    /// ```
    /// use std::time::Instant;
    /// use weft_time::Deadline;
    /// let now = Instant::now();
    /// assert_eq!(Deadline::at(now).instant(), now);
    /// ```
    pub const fn instant(&self) -> Instant {
        self.at
    }

    /// The time left until the deadline on `clock`; [`Duration::ZERO`] once it has passed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::{Deadline, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let deadline = Deadline::after(&clock, Duration::from_secs(1));
    /// clock.advance(Duration::from_millis(400));
    /// assert_eq!(deadline.remaining(&clock), Duration::from_millis(600));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(deadline.remaining(&clock), Duration::ZERO);
    /// ```
    pub fn remaining<C: Clock + ?Sized>(&self, clock: &C) -> Duration {
        self.at.saturating_duration_since(clock.now())
    }

    /// Whether the deadline has been reached on `clock` (the deadline instant itself
    /// counts as expired). Exactly when this is `true`,
    /// [`remaining`](Deadline::remaining) is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::{Deadline, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let deadline = Deadline::after(&clock, Duration::from_secs(1));
    /// assert!(!deadline.is_expired(&clock));
    /// clock.advance(Duration::from_secs(1));
    /// assert!(deadline.is_expired(&clock));
    /// ```
    pub fn is_expired<C: Clock + ?Sized>(&self, clock: &C) -> bool {
        clock.now() >= self.at
    }

    /// The earlier of two deadlines: the one a caller with both must honour.
    ///
    /// Call it as `Deadline::earliest(a, b)` or `a.earliest(b)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::{Deadline, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let request = Deadline::after(&clock, Duration::from_secs(30));
    /// let per_try = Deadline::after(&clock, Duration::from_secs(2));
    /// assert_eq!(Deadline::earliest(request, per_try), per_try);
    /// assert_eq!(per_try.earliest(request), per_try);
    /// ```
    #[must_use]
    pub fn earliest(self, other: Deadline) -> Deadline {
        self.min(other)
    }
}

impl From<Instant> for Deadline {
    /// The same as [`Deadline::at`].
    fn from(instant: Instant) -> Self {
        Deadline::at(instant)
    }
}

impl From<Deadline> for Instant {
    /// The same as [`Deadline::instant`].
    fn from(deadline: Deadline) -> Self {
        deadline.instant()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn after_adds_the_timeout_to_now() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_secs(7));
        let d = Deadline::after(&clock, Duration::from_secs(3));
        assert_eq!(d.instant() - clock.now(), Duration::from_secs(3));
    }

    #[test]
    fn huge_timeouts_saturate_to_a_far_future_instant() {
        let clock = ManualClock::new();
        let never = Deadline::after(&clock, Duration::MAX);
        let century = Deadline::after(&clock, Duration::from_secs(100 * 365 * 86_400));
        assert!(never > century);
        assert!(never.remaining(&clock) > Duration::from_secs(100 * 365 * 86_400));
        assert!(!never.is_expired(&clock));
        // Saturation is monotone: two unrepresentable timeouts give the same instant.
        let also_never = Deadline::after(&clock, Duration::MAX - Duration::from_secs(1));
        assert_eq!(also_never, never);
    }

    #[test]
    fn the_deadline_instant_itself_is_expired() {
        let clock = ManualClock::new();
        let d = Deadline::after(&clock, Duration::from_nanos(10));
        clock.advance(Duration::from_nanos(9));
        assert!(!d.is_expired(&clock));
        assert_eq!(d.remaining(&clock), Duration::from_nanos(1));
        clock.advance(Duration::from_nanos(1));
        assert!(d.is_expired(&clock));
        assert_eq!(d.remaining(&clock), Duration::ZERO);
    }

    #[test]
    fn conversions_round_trip() {
        let now = Instant::now();
        let d: Deadline = now.into();
        assert_eq!(Instant::from(d), now);
    }
}
