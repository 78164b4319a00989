//! The [`Clock`] trait and its two implementations: [`SystemClock`] and [`ManualClock`].

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use weft_sync::Arc;
use weft_sync::atomic::{AtomicU64, Ordering};

use crate::Error;
use crate::util::largest_fitting;

/// A source of time: a monotonic [`Instant`] for measuring intervals and a wall-clock
/// [`SystemTime`] for timestamps.
///
/// Every time-based Weft primitive reads time only through the `Clock` it is given, so
/// production code runs on [`SystemClock`] and tests drive a [`ManualClock`] without ever
/// sleeping. Implementations must keep [`now`](Clock::now) monotonic (never decreasing);
/// [`system_now`](Clock::system_now) follows the wall clock and may jump on a real system.
///
/// The trait is object safe and implemented for [`Arc<C>`](weft_sync::Arc), `Box<C>` and
/// `&'static C`, so one clock can be shared by many primitives, including as
/// `Arc<dyn Clock>`.
///
/// # Examples
///
/// A component generic over its clock, tested without sleeping:
///
/// ```
/// use std::time::{Duration, Instant};
/// use weft_time::{Clock, ManualClock, SystemClock};
///
/// struct Stopwatch<C: Clock> {
///     clock: C,
///     started: Instant,
/// }
///
/// impl<C: Clock> Stopwatch<C> {
///     fn new(clock: C) -> Self {
///         let started = clock.now();
///         Stopwatch { clock, started }
///     }
///     fn elapsed(&self) -> Duration {
///         self.clock.now().duration_since(self.started)
///     }
/// }
///
/// let clock = ManualClock::new();
/// let watch = Stopwatch::new(clock.clone());
/// clock.advance(Duration::from_secs(3));
/// assert_eq!(watch.elapsed(), Duration::from_secs(3));
///
/// let _production = Stopwatch::new(SystemClock); // real time
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current monotonic instant; never earlier than a previous call's result.
    ///
    /// ```
    /// use weft_time::{Clock, SystemClock};
    /// let a = SystemClock.now();
    /// let b = SystemClock.now();
    /// assert!(b >= a);
    /// ```
    fn now(&self) -> Instant;

    /// The current wall-clock time (for timestamps, not for measuring intervals).
    ///
    /// ```
    /// use std::time::UNIX_EPOCH;
    /// use weft_time::{Clock, SystemClock};
    /// assert!(SystemClock.system_now() > UNIX_EPOCH);
    /// ```
    fn system_now(&self) -> SystemTime;

    /// A monotonic reading in nanoseconds from an arbitrary origin fixed for this clock
    /// (for the default implementation, the first such reading in the process); only
    /// differences between readings of the same clock mean anything.
    ///
    /// Hot paths that keep time as an integer (a rate limiter's arrival times, say) read
    /// this instead of [`now`](Clock::now). [`ManualClock`] counts from its creation,
    /// [`FastClock`](crate::FastClock) reads the CPU's counter. A clock whose `now` can
    /// return instants earlier than its first `monotonic_nanos` call should override it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::{Clock, ManualClock};
    /// let clock = ManualClock::new();
    /// let start = clock.monotonic_nanos();
    /// clock.advance(Duration::from_micros(3));
    /// assert_eq!(clock.monotonic_nanos() - start, 3_000);
    /// ```
    #[inline]
    fn monotonic_nanos(&self) -> u64 {
        crate::util::nanos_since_process_base(self.now())
    }
}

/// Forwards every `Clock` method through a smart pointer or reference.
macro_rules! forward_clock {
    ($($ty:ty),*) => {$(
        impl<C: Clock + ?Sized> Clock for $ty {
            #[inline]
            fn now(&self) -> Instant {
                (**self).now()
            }

            #[inline]
            fn system_now(&self) -> SystemTime {
                (**self).system_now()
            }

            #[inline]
            fn monotonic_nanos(&self) -> u64 {
                (**self).monotonic_nanos()
            }
        }
    )*};
}

forward_clock!(Arc<C>, Box<C>, &'static C);

/// The real clock: [`Instant::now`] and [`SystemTime::now`].
///
/// Zero-sized and `Copy`; the default clock of every Weft primitive.
///
/// ```
/// use std::time::Duration;
/// use weft_time::{Clock, SystemClock};
///
/// let clock = SystemClock;
/// let start = clock.now();
/// assert!(clock.now().duration_since(start) < Duration::from_secs(60));
/// assert_eq!(std::mem::size_of::<SystemClock>(), 0);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SystemClock;

impl SystemClock {
    /// Creates the system clock (the same as `SystemClock` or `SystemClock::default()`).
    ///
    /// ```
    /// use weft_time::SystemClock;
    /// const CLOCK: SystemClock = SystemClock::new();
    /// assert_eq!(CLOCK, SystemClock);
    /// ```
    pub const fn new() -> Self {
        SystemClock
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[inline]
    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to: the clock for deterministic tests.
///
/// It captures an [`Instant`] and a [`SystemTime`] when created and adds the same elapsed
/// offset to both, so [`now`](Clock::now) and [`system_now`](Clock::system_now) always move
/// together. Clones are cheap handles onto the same time: hand one clone to the code under
/// test and [`advance`](ManualClock::advance) another from the test.
///
/// The elapsed offset is held in nanoseconds in a `u64` and saturates at
/// [`max_elapsed`](ManualClock::max_elapsed) (about 584 years on common platforms); the
/// clock never panics and never goes backwards.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_time::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let handle = clock.clone(); // shares the same time
/// let (t0, w0) = (clock.now(), clock.system_now());
///
/// handle.advance(Duration::from_millis(1500));
///
/// assert_eq!(clock.now() - t0, Duration::from_millis(1500));
/// assert_eq!(clock.system_now().duration_since(w0).unwrap(), Duration::from_millis(1500));
/// assert_eq!(clock.elapsed(), Duration::from_millis(1500));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Inner>,
}

// Design: the whole mutable state is one `AtomicU64` of nanoseconds since creation. The
// base instants never change after construction, so every reading is `base + offset` and
// needs no lock. Writers only ever raise the offset (`advance` adds with a saturating CAS
// loop, `set_elapsed` uses `fetch_max`), so no interleaving of writers can lower it, and
// atomic coherence makes every thread's successive readings non-decreasing. The offset is
// capped at `max_nanos`, which `new` verified both bases can absorb, so `base + offset`
// can never overflow.
struct Inner {
    /// The monotonic instant the clock reads at elapsed zero.
    base: Instant,
    /// The wall-clock time the clock reads at elapsed zero.
    base_system: SystemTime,
    /// Nanoseconds elapsed since creation; only ever increases.
    offset_nanos: AtomicU64,
    /// The largest offset both bases can absorb without overflow.
    max_nanos: u64,
}

impl ManualClock {
    /// Creates a clock reading the current real instant and wall-clock time, with zero
    /// elapsed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::ManualClock;
    /// assert_eq!(ManualClock::new().elapsed(), Duration::ZERO);
    /// ```
    pub fn new() -> Self {
        Self::starting_at(SystemTime::now())
    }

    /// Creates a clock whose wall-clock time starts at `start` (its monotonic instant
    /// starts at the current real instant), so tests can use fixed timestamps.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use weft_time::{Clock, ManualClock};
    ///
    /// let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let clock = ManualClock::starting_at(start);
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(clock.system_now(), start + Duration::from_secs(60));
    /// ```
    pub fn starting_at(start: SystemTime) -> Self {
        let base = Instant::now();
        let max = largest_fitting(Duration::from_nanos(u64::MAX), |d| {
            base.checked_add(d).is_some() && start.checked_add(d).is_some()
        });
        // `max` is at most `u64::MAX` nanoseconds by construction.
        let max_nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        ManualClock {
            inner: Arc::new(Inner {
                base,
                base_system: start,
                offset_nanos: AtomicU64::new(0),
                max_nanos,
            }),
        }
    }

    /// Moves the clock (and every clone of it) forward by `by`, saturating at
    /// [`max_elapsed`](ManualClock::max_elapsed).
    ///
    /// Concurrent calls from several threads all take effect: the elapsed time becomes
    /// their sum.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_secs(1));
    /// clock.advance(Duration::from_millis(250));
    /// assert_eq!(clock.elapsed(), Duration::from_millis(1250));
    ///
    /// clock.advance(Duration::MAX); // saturates, never panics
    /// assert_eq!(clock.elapsed(), clock.max_elapsed());
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = nanos_u64(by);
        let max = self.inner.max_nanos;
        // AcqRel/Acquire: a reader that observes the new offset (Acquire load) also sees
        // every write the advancing thread made before advancing, so "set up state, then
        // advance time" is observed in that order. The offset's own monotonicity needs only
        // atomicity, which any ordering gives.
        let _ = self
            .inner
            .offset_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(cur.saturating_add(by).min(max))
            });
    }

    /// Sets the time elapsed since creation to `elapsed`, which must not be less than the
    /// current [`elapsed`](ManualClock::elapsed): a monotonic clock never goes backwards.
    ///
    /// Values beyond [`max_elapsed`](ManualClock::max_elapsed) saturate. Setting the
    /// current value again is a no-op.
    ///
    /// # Errors
    ///
    /// [`Error::ClockWentBackwards`] if `elapsed` is less than the current elapsed time;
    /// the clock is then left unchanged.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::{Error, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// clock.set_elapsed(Duration::from_secs(10))?;
    /// assert_eq!(clock.elapsed(), Duration::from_secs(10));
    ///
    /// let err = clock.set_elapsed(Duration::from_secs(5)).unwrap_err();
    /// assert!(matches!(err, Error::ClockWentBackwards { .. }));
    /// assert_eq!(clock.elapsed(), Duration::from_secs(10)); // unchanged
    /// # Ok::<(), Error>(())
    /// ```
    pub fn set_elapsed(&self, elapsed: Duration) -> Result<(), Error> {
        let requested = nanos_u64(elapsed).min(self.inner.max_nanos);
        // `fetch_max` never lowers the offset, so a backwards request changes nothing and
        // a racing `advance` is never undone. Orderings as in `advance`.
        let previous = self
            .inner
            .offset_nanos
            .fetch_max(requested, Ordering::AcqRel);
        if previous > requested {
            return Err(Error::ClockWentBackwards {
                current: Duration::from_nanos(previous),
                requested: elapsed,
            });
        }
        Ok(())
    }

    /// The time elapsed on this clock since it was created.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::ManualClock;
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_micros(7));
    /// assert_eq!(clock.elapsed(), Duration::from_micros(7));
    /// ```
    pub fn elapsed(&self) -> Duration {
        // Acquire pairs with the Release half of `advance`/`set_elapsed` (see `advance`).
        Duration::from_nanos(self.inner.offset_nanos.load(Ordering::Acquire))
    }

    /// The largest elapsed time this clock can reach; [`advance`](ManualClock::advance)
    /// and [`set_elapsed`](ManualClock::set_elapsed) saturate here. It is `u64::MAX`
    /// nanoseconds (about 584 years) unless the platform's time types cannot represent
    /// that far past the clock's start.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::ManualClock;
    /// assert!(ManualClock::new().max_elapsed() > Duration::from_secs(100 * 365 * 86_400));
    /// ```
    pub fn max_elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.max_nanos)
    }
}

impl Default for ManualClock {
    /// The same as [`ManualClock::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("elapsed", &self.elapsed())
            .finish_non_exhaustive()
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Instant {
        let inner = &*self.inner;
        // Cannot fail: the offset never exceeds `max_nanos`, which `starting_at` checked
        // `base` can absorb. The fallback only avoids a panic path.
        inner.base.checked_add(self.elapsed()).unwrap_or(inner.base)
    }

    #[inline]
    fn system_now(&self) -> SystemTime {
        let inner = &*self.inner;
        // Cannot fail, as in `now`.
        inner
            .base_system
            .checked_add(self.elapsed())
            .unwrap_or(inner.base_system)
    }

    #[inline]
    fn monotonic_nanos(&self) -> u64 {
        nanos_u64(self.elapsed())
    }
}

/// `d` in nanoseconds, saturating at `u64::MAX`.
fn nanos_u64(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_time_and_both_readings_move_together() {
        let clock = ManualClock::new();
        let other = clock.clone();
        let (t0, w0) = (clock.now(), clock.system_now());
        other.advance(Duration::from_secs(2));
        assert_eq!(clock.now() - t0, Duration::from_secs(2));
        assert_eq!(
            clock.system_now().duration_since(w0).unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(clock.elapsed(), other.elapsed());
    }

    #[test]
    fn advance_saturates_at_max_elapsed() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_nanos(u64::MAX - 1));
        clock.advance(Duration::from_secs(10));
        assert_eq!(clock.elapsed(), clock.max_elapsed());
        // Readings at the limit do not panic and stay put.
        let at_limit = clock.now();
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), at_limit);
        assert!(clock.system_now() > SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn set_elapsed_rejects_going_backwards_and_keeps_the_time() {
        let clock = ManualClock::new();
        clock.set_elapsed(Duration::from_secs(5)).unwrap();
        clock.set_elapsed(Duration::from_secs(5)).unwrap(); // same value is fine
        let err = clock.set_elapsed(Duration::from_secs(4)).unwrap_err();
        assert_eq!(
            err,
            Error::ClockWentBackwards {
                current: Duration::from_secs(5),
                requested: Duration::from_secs(4),
            }
        );
        assert_eq!(clock.elapsed(), Duration::from_secs(5));
    }

    #[test]
    fn set_elapsed_saturates_beyond_the_limit() {
        let clock = ManualClock::new();
        clock.set_elapsed(Duration::MAX).unwrap();
        assert_eq!(clock.elapsed(), clock.max_elapsed());
    }

    #[test]
    fn starting_at_near_the_end_of_time_shrinks_the_limit_instead_of_overflowing() {
        // 1000 s before the end of a 64-bit-seconds `SystemTime` (Unix platforms).
        let Some(start) =
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(i64::MAX as u64 - 1_000))
        else {
            return; // this platform's SystemTime ends earlier; nothing to check
        };
        let clock = ManualClock::starting_at(start);
        // 1000 s plus whatever sub-second room the platform's last second leaves.
        assert!(clock.max_elapsed() >= Duration::from_secs(1_000));
        assert!(clock.max_elapsed() < Duration::from_secs(1_001));
        clock.advance(Duration::MAX);
        assert_eq!(clock.elapsed(), clock.max_elapsed());
        assert_eq!(clock.system_now(), start + clock.max_elapsed());
    }

    #[test]
    fn debug_shows_elapsed() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_millis(3));
        assert_eq!(format!("{clock:?}"), "ManualClock { elapsed: 3ms, .. }");
    }

    #[test]
    fn forwarding_impls_read_the_same_clock() {
        let clock = ManualClock::new();
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let boxed: Box<dyn Clock> = Box::new(clock.clone());
        clock.advance(Duration::from_secs(1));
        assert_eq!(shared.now(), clock.now());
        assert_eq!(boxed.system_now(), clock.system_now());
    }
}
