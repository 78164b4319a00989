//! A clock that reads the CPU's timestamp counter (through quanta) instead of the OS.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use crate::Clock;

/// A monotonic clock backed by [quanta](https://docs.rs/quanta): on x86-64 with an
/// invariant TSC it reads the CPU's timestamp counter (a few nanoseconds) instead of
/// calling `clock_gettime` (tens of nanoseconds), and falls back to the OS clock where
/// the counter is not reliable.
///
/// Use it where time is read on every operation, as a rate limiter does; `now()` is
/// anchored to an [`Instant`] taken at construction, so its readings mix freely with
/// [`SystemClock`](crate::SystemClock)'s. [`system_now`](Clock::system_now) is the OS's
/// wall clock. Requires the `fast-clock` feature.
///
/// ```
/// use weft_time::{Clock, FastClock};
/// let clock = FastClock::new();
/// let a = clock.monotonic_nanos();
/// let b = clock.monotonic_nanos();
/// assert!(b >= a);
/// assert!(clock.now() >= std::time::Instant::now() - std::time::Duration::from_secs(1));
/// ```
#[derive(Clone)]
pub struct FastClock {
    /// The quanta clock (calibrated once per process).
    clock: quanta::Clock,
    /// The raw counter value at construction.
    base_raw: u64,
    /// The `Instant` at construction, which raw readings are added to.
    base: Instant,
}

impl FastClock {
    /// Creates a clock anchored at the current instant (the first call in a process also
    /// calibrates the counter against the OS clock).
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let base_raw = clock.raw();
        FastClock {
            clock,
            base_raw,
            base: Instant::now(),
        }
    }

    /// Nanoseconds since construction.
    #[inline]
    fn elapsed_nanos(&self) -> u64 {
        self.clock.delta_as_nanos(self.base_raw, self.clock.raw())
    }
}

impl Default for FastClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FastClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastClock")
            .field("elapsed", &Duration::from_nanos(self.elapsed_nanos()))
            .finish_non_exhaustive()
    }
}

impl Clock for FastClock {
    #[inline]
    fn now(&self) -> Instant {
        let elapsed = Duration::from_nanos(self.elapsed_nanos());
        self.base.checked_add(elapsed).unwrap_or(self.base)
    }

    #[inline]
    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }

    #[inline]
    fn monotonic_nanos(&self) -> u64 {
        self.elapsed_nanos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_the_os_clock() {
        let clock = FastClock::new();
        let origin = clock.monotonic_nanos();
        let os_start = Instant::now();
        let mut spin = 0u64;
        while os_start.elapsed() < Duration::from_millis(20) {
            spin = spin.wrapping_add(1);
        }
        let ours = clock.monotonic_nanos() - origin;
        let os = os_start.elapsed().as_nanos() as u64;
        // Within 5 ms of each other over a 20 ms interval (calibration error and the
        // reads not being simultaneous), and monotonic.
        assert!(
            ours.abs_diff(os) < 5_000_000,
            "fast {ours} vs os {os} ({spin})"
        );
        assert!(clock.now() >= clock.base);
    }
}
