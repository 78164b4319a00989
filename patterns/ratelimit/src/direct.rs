//! The direct (un-keyed) limiter: one quota, one atomic word.

use std::fmt;
use std::time::{Duration, Instant};

use weft_sync::CachePadded;
use weft_sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use weft_time::{Clock, Epoch, FastClock};

use crate::gcra::Gcra;
use crate::{Admitted, Error, NotUntil, Quota};

/// The state every check touches, on its own cache line: the theoretical arrival time and
/// the counters bumped right after updating it.
#[derive(Debug)]
struct Hot {
    /// GCRA's theoretical arrival time, in nanoseconds since the epoch.
    tat: AtomicU64,
    /// Cells admitted.
    admitted: AtomicU64,
    /// Requests denied.
    rejected: AtomicU64,
}

/// A GCRA rate limiter for one stream of requests (not keyed), lock-free.
///
/// The whole state is one `AtomicU64` updated by a compare-and-swap loop, so `check` is
/// wait-free in the uncontended case and never blocks. Time is read through a
/// [`Clock`]: [`FastClock`] (the CPU's timestamp counter) by default, a
/// [`ManualClock`](weft_time::ManualClock) in tests.
///
/// Besides checking, the limiter can *reserve* capacity for a caller willing to wait
/// ([`reserve_n`](RateLimiter::reserve_n), and `until_ready` with the `tokio` feature):
/// reservations book consecutive future slots, so waiters are served in arrival order
/// with no retry loop and no thundering herd, and a dropped reservation gives its cells
/// back.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_ratelimit::{Quota, RateLimiter};
/// use weft_time::ManualClock;
///
/// let clock = ManualClock::new();
/// let limiter = RateLimiter::with_clock(Quota::per_second(2)?, clock.clone());
/// assert!(limiter.check().is_ok());
/// assert!(limiter.check().is_ok());
/// let denied = limiter.check().unwrap_err(); // burst of 2 used up
/// assert_eq!(denied.retry_after(), Duration::from_millis(500));
/// clock.advance(Duration::from_millis(500));
/// assert!(limiter.check().is_ok());
/// # Ok::<(), weft_ratelimit::Error>(())
/// ```
pub struct RateLimiter<C: Clock = FastClock> {
    /// TAT and counters.
    hot: CachePadded<Hot>,
    /// Callers currently waiting on a reservation.
    waiters: AtomicUsize,
    /// The most waiters allowed at once.
    max_waiters: usize,
    /// The quota's arithmetic.
    gcra: Gcra,
    /// The quota.
    quota: Quota,
    /// The time source.
    clock: C,
    /// Where the limiter's nanosecond times count from.
    epoch: Epoch,
}

/// A snapshot of a limiter's counters and state.
///
/// ```
/// let l = weft_ratelimit::RateLimiter::direct(weft_ratelimit::Quota::per_second(1)?);
/// let _ = l.check();
/// let _ = l.check();
/// let s = l.status();
/// assert_eq!((s.admitted, s.rejected), (1, 1));
/// # Ok::<(), weft_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// Cells admitted since creation (reservations count when booked).
    pub admitted: u64,
    /// Requests denied since creation (including rejected reservations).
    pub rejected: u64,
    /// Cells that could be taken at once right now.
    pub remaining: u32,
    /// Callers waiting on a reservation right now.
    pub waiters: usize,
}

impl RateLimiter<FastClock> {
    /// A limiter for `quota` on the default clock ([`FastClock`]).
    ///
    /// ```
    /// let l = weft_ratelimit::RateLimiter::direct(weft_ratelimit::Quota::per_second(10)?);
    /// assert!(l.check().is_ok());
    /// # Ok::<(), weft_ratelimit::Error>(())
    /// ```
    pub fn direct(quota: Quota) -> Self {
        Self::with_clock(quota, FastClock::new())
    }
}

impl<C: Clock> RateLimiter<C> {
    /// The default bound on concurrent waiters: `until_ready` beyond it fails at once with
    /// [`Error::QueueFull`].
    pub const DEFAULT_MAX_WAITERS: usize = 1024;

    /// A limiter for `quota` reading time from `clock`, starting fully replenished.
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        let epoch = Epoch::now(&clock);
        RateLimiter {
            hot: CachePadded::new(Hot {
                tat: AtomicU64::new(0),
                admitted: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
            }),
            waiters: AtomicUsize::new(0),
            max_waiters: Self::DEFAULT_MAX_WAITERS,
            gcra: Gcra::new(&quota),
            quota,
            clock,
            epoch,
        }
    }

    /// Sets how many callers may wait on reservations at once (default
    /// [`DEFAULT_MAX_WAITERS`](Self::DEFAULT_MAX_WAITERS)); more fail at once with
    /// [`Error::QueueFull`] instead of queueing without bound.
    ///
    /// ```
    /// let l = weft_ratelimit::RateLimiter::direct(weft_ratelimit::Quota::per_second(1)?)
    ///     .max_waiters(16);
    /// assert_eq!(l.status().waiters, 0);
    /// # Ok::<(), weft_ratelimit::Error>(())
    /// ```
    pub fn max_waiters(mut self, max: usize) -> Self {
        self.max_waiters = max;
        self
    }

    /// The quota.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Nanoseconds since the epoch, now.
    #[inline]
    fn now_ns(&self) -> u64 {
        self.epoch.nanos(&self.clock)
    }

    /// Admits one cell, or says when it would be admitted.
    ///
    /// ```
    /// let l = weft_ratelimit::RateLimiter::direct(weft_ratelimit::Quota::per_minute(1)?);
    /// assert!(l.check().is_ok());
    /// assert!(l.check().is_err());
    /// # Ok::<(), weft_ratelimit::Error>(())
    /// ```
    #[inline]
    pub fn check(&self) -> Result<Admitted, NotUntil> {
        self.check_cells(1)
    }

    /// Admits `n` cells at once (a weighted request: bytes, rows, cost units), or says
    /// when all `n` would be admitted. All or nothing: a denied request takes no cells.
    ///
    /// # Errors
    ///
    /// The outer `Err` is [`Error::InsufficientCapacity`] when `n` exceeds the burst: such
    /// a request can never succeed, and saying so beats waiting forever.
    ///
    /// ```
    /// use weft_ratelimit::{Error, Quota, RateLimiter};
    /// let l = RateLimiter::direct(Quota::per_second(10)?);
    /// assert_eq!(l.check_n(4)?.unwrap().remaining(), 6);
    /// assert!(matches!(l.check_n(11), Err(Error::InsufficientCapacity { requested: 11, burst: 10 })));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn check_n(&self, n: u32) -> Result<Result<Admitted, NotUntil>, Error> {
        if n > self.quota.burst() {
            return Err(Error::InsufficientCapacity {
                requested: n,
                burst: self.quota.burst(),
            });
        }
        Ok(self.check_cells(n))
    }

    /// The CAS loop; `n <= burst`.
    #[inline]
    fn check_cells(&self, n: u32) -> Result<Admitted, NotUntil> {
        let now = self.now_ns();
        // Relaxed everywhere: the TAT is the limiter's only state and publishes no other
        // memory; read-modify-writes of one atomic are totally ordered (its modification
        // order), which is all that mutual exclusion of admissions needs. A stale `now`
        // (another thread's CAS from a later instant wins first) only makes the test
        // stricter, since `max(tat, now)` then takes the newer `tat`.
        let mut tat = self.hot.tat.load(Ordering::Relaxed);
        loop {
            match self.gcra.test(tat, now, n) {
                Ok(new_tat) => {
                    match self.hot.tat.compare_exchange_weak(
                        tat,
                        new_tat,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            self.hot.admitted.fetch_add(u64::from(n), Ordering::Relaxed);
                            return Ok(Admitted::lazy(self.gcra, new_tat, now));
                        }
                        Err(current) => tat = current,
                    }
                }
                Err(earliest) => {
                    self.hot.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(NotUntil::new(&self.epoch, earliest, now, self.quota));
                }
            }
        }
    }

    /// Books `n` cells now, whether or not they are available yet, and says when they are
    /// admitted. Consecutive reservations get consecutive slots, so callers that wait for
    /// their slot are served in the order they reserved (fair FIFO, no retry loop).
    ///
    /// Dropping the latest [`Reservation`] before its slot arrives gives the cells back
    /// (see [`Reservation`] for an earlier one); calling [`Reservation::consume`] (or
    /// letting the slot pass) keeps them used.
    ///
    /// # Errors
    ///
    /// [`Error::InsufficientCapacity`] if `n` exceeds the burst; [`Error::QueueFull`] if
    /// the reservation would wait and `max_waiters` callers are already waiting (nothing
    /// is booked then).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_ratelimit::{Quota, RateLimiter};
    /// use weft_time::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let l = RateLimiter::with_clock(Quota::per_second(1)?, clock.clone());
    /// let first = l.reserve_n(1)?;
    /// let second = l.reserve_n(1)?;
    /// assert_eq!(first.wait_time(), Duration::ZERO);
    /// assert_eq!(second.wait_time(), Duration::from_secs(1)); // next slot, in order
    /// first.consume();
    /// drop(second); // cancelled before its slot: the cell is given back
    /// assert_eq!(l.reserve_n(1)?.wait_time(), Duration::from_secs(1));
    /// # Ok::<(), weft_ratelimit::Error>(())
    /// ```
    pub fn reserve_n(&self, n: u32) -> Result<Reservation<'_, C>, Error> {
        if n > self.quota.burst() {
            return Err(Error::InsufficientCapacity {
                requested: n,
                burst: self.quota.burst(),
            });
        }
        let now = self.now_ns();
        // Claim a waiter place first if the request may have to wait; it is returned at
        // once if the booking turns out to be immediate.
        let mut tat = self.hot.tat.load(Ordering::Relaxed);
        let (ready, waits, end_tat) = loop {
            let (new_tat, ready) = self.gcra.reserve(tat, now, n);
            let waits = ready > now;
            if waits && !self.enter_queue() {
                self.hot.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(Error::QueueFull {
                    max: self.max_waiters,
                });
            }
            match self.hot.tat.compare_exchange_weak(
                tat,
                new_tat,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break (ready, waits, new_tat),
                Err(current) => {
                    if waits {
                        self.leave_queue();
                    }
                    tat = current;
                }
            }
        };
        self.hot.admitted.fetch_add(u64::from(n), Ordering::Relaxed);
        Ok(Reservation {
            limiter: self,
            n,
            ready_ns: ready,
            end_tat,
            waiting: waits,
            settled: false,
        })
    }

    /// Takes a waiter place if one is free.
    fn enter_queue(&self) -> bool {
        // Relaxed: the count only bounds the queue; it guards no other memory.
        self.waiters
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                (w < self.max_waiters).then_some(w + 1)
            })
            .is_ok()
    }

    /// Returns a waiter place.
    fn leave_queue(&self) {
        self.waiters.fetch_sub(1, Ordering::Relaxed);
    }

    /// Gives back `n` booked cells whose booking left the arrival time at `end_tat`, if
    /// nothing was booked after them; returns whether it did.
    ///
    /// Only the latest booking can be undone: the waiters booked after a cancelled one
    /// already sleep until their own slots, so moving the arrival time back under them
    /// would hand the freed slot to a newcomer *and* keep theirs, admitting more than the
    /// burst at one instant. A cancelled booking with later ones behind it leaves its slot
    /// unused instead (never over-admitting).
    fn refund(&self, n: u32, end_tat: u64) -> bool {
        let now = self.now_ns();
        let refunded = self
            .hot
            .tat
            .compare_exchange(
                end_tat,
                self.gcra.refund(end_tat, now, n),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        if refunded {
            self.hot.admitted.fetch_sub(u64::from(n), Ordering::Relaxed);
        }
        refunded
    }

    /// A snapshot of the counters and state.
    pub fn status(&self) -> Status {
        let now = self.now_ns();
        Status {
            admitted: self.hot.admitted.load(Ordering::Relaxed),
            rejected: self.hot.rejected.load(Ordering::Relaxed),
            remaining: self
                .gcra
                .remaining(self.hot.tat.load(Ordering::Relaxed), now),
            waiters: self.waiters.load(Ordering::Relaxed),
        }
    }
}

impl<C: Clock> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("quota", &self.quota)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Cells booked by [`RateLimiter::reserve_n`], admitted at [`ready_at`](Self::ready_at).
///
/// Dropped before that instant, it gives its cells back to the limiter if it is still the
/// latest booking (the usual case: the newest waiter gives up); if later bookings were
/// made behind it, its slot passes unused, since handing it to a newcomer while the later
/// waiters keep theirs would admit more than the burst at one instant. Consumed, or
/// dropped after its instant, the cells stay used. While it waits it holds one of the
/// limiter's `max_waiters` places.
#[must_use = "dropping a reservation before its slot cancels it"]
pub struct Reservation<'a, C: Clock> {
    limiter: &'a RateLimiter<C>,
    n: u32,
    ready_ns: u64,
    /// The arrival time this booking left behind (to undo it if it is still the latest).
    end_tat: u64,
    waiting: bool,
    settled: bool,
}

impl<C: Clock> Reservation<'_, C> {
    /// The instant the booked cells are admitted.
    pub fn ready_at(&self) -> Instant {
        self.limiter.epoch.instant(self.ready_ns)
    }

    /// How long from now until [`ready_at`](Self::ready_at) (zero if already passed).
    pub fn wait_time(&self) -> Duration {
        Duration::from_nanos(self.ready_ns.saturating_sub(self.limiter.now_ns()))
    }

    /// `true` once the booked cells are admitted.
    pub fn is_ready(&self) -> bool {
        self.limiter.now_ns() >= self.ready_ns
    }

    /// Keeps the booked cells used (whether or not their slot has come) and releases the
    /// waiter place.
    pub fn consume(mut self) -> Admitted {
        self.settle(false);
        let limiter = self.limiter;
        Admitted::known(
            limiter
                .gcra
                .remaining(limiter.hot.tat.load(Ordering::Relaxed), limiter.now_ns()),
        )
    }

    /// Releases the waiter place and, if `cancel` and the slot has not come, refunds.
    fn settle(&mut self, cancel: bool) {
        if self.settled {
            return;
        }
        self.settled = true;
        if self.waiting {
            self.limiter.leave_queue();
        }
        if cancel && self.limiter.now_ns() < self.ready_ns {
            self.limiter.refund(self.n, self.end_tat);
        }
    }
}

impl<C: Clock> Drop for Reservation<'_, C> {
    fn drop(&mut self) {
        self.settle(true);
    }
}

impl<C: Clock> fmt::Debug for Reservation<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("cells", &self.n)
            .field("wait_time", &self.wait_time())
            .finish()
    }
}
