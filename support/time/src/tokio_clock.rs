//! A clock that reads tokio's time, so that `tokio::time::pause` drives it.

use std::time::{Instant, SystemTime};

use crate::Clock;

/// Reads [`tokio::time::Instant::now`]: real time normally, and the paused, manually or
/// automatically advanced time inside a runtime where `tokio::time::pause()` was called.
/// Code that both reads a [`Clock`] and sleeps on tokio timers uses it so the two agree
/// in tests. Requires the `tokio` feature.
///
/// [`system_now`](Clock::system_now) is the OS's wall clock (tokio does not pause it).
///
/// ```
/// use weft_time::{Clock, TokioClock};
/// let a = TokioClock.now();
/// assert!(TokioClock.now() >= a);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokioClock;

impl Clock for TokioClock {
    #[inline]
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    #[inline]
    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }
}
