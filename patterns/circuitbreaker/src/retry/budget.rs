//! [`RetryBudget`]: retries capped at a fraction of recent calls (Finagle's and linkerd's
//! retry budget).

use std::fmt;
use std::time::Duration;

use weft_sync::Mutex;
use weft_time::{Clock, FastClock};

use super::RetryConfigError;

// Design
//
// The budget answers one question per retry: "may this call retry now?". Its guarantee,
// for every withdrawal made at time `t`:
//
//     withdrawals in (t - ttl, t]  <=  floor + ratio * deposits in (t - ttl, t]
//
// where `floor = min_retries_per_sec * ttl` (in seconds). So over any ttl-long window that
// ends with a retry, retries are at most `ratio` times the calls plus the floor: retries
// cannot multiply load on a failing service beyond `1 + ratio` (plus a trickle).
//
// Time is cut into buckets of `ttl / BUCKETS`, numbered from the clock's monotonic
// nanoseconds; a ring of `BUCKETS + 1` slots holds each recent bucket's deposit and
// withdrawal counts, indexed by bucket number modulo `RING`. A bucket leaves the ring
// when the clock reaches a bucket number `RING` higher, which reuses (clears) its slot.
// Because an event's exact time inside its bucket is forgotten, the budget errs on the
// stingy side on both counts:
//
// - deposits count over the newest `BUCKETS` buckets, which all lie inside (t - ttl, t]:
//   a deposit expires between `ttl - ttl/BUCKETS` and `ttl` after it was made;
// - withdrawals count over all `BUCKETS + 1` buckets, which cover (t - ttl, t]: a
//   withdrawal keeps counting for between `ttl` and `ttl + ttl/BUCKETS`.
//
// With counted deposits a subset and counted withdrawals a superset of the true ones, the
// check `(withdrawals + 1) <= floor + ratio * deposits` on the counted values implies the
// guarantee above.
//
// Arithmetic is exact integer fixed point in micro-retries (`UNIT` per retry): the ratio is
// rounded to six decimals once, at construction, so 0.1 or 0.57 are exact and no product
// rounds down (or up) per call. `u128` leaves no room for overflow: counts are `u64`, the
// ratio at most 10^9 micro-retries per deposit.
//
// Concurrency: one short `weft_sync::Mutex` guards the ring. A withdrawal must compare
// and update the same sums atomically (two threads must not both take the last retry), and
// the critical section is a few dozen instructions, so a lock is both exact and cheap;
// the clock is read inside it so bucket numbers never go backwards under the lock.

/// Buckets a ttl is split into: the granularity of expiry.
const BUCKETS: u64 = 10;
/// Ring slots: the `BUCKETS` buckets that hold live deposits plus one older bucket whose
/// withdrawals still count.
const RING: usize = BUCKETS as usize + 1;
/// Micro-retries per retry: the fixed-point scale of balances.
const UNIT: u128 = 1_000_000;
/// The shortest accepted ttl.
const MIN_TTL: Duration = Duration::from_millis(1);
/// The longest accepted ttl.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// The largest accepted retry ratio.
const MAX_RATIO: f64 = 1000.0;

/// A retry budget: retries limited to a fraction of recent calls, so that retrying cannot
/// amplify an outage.
///
/// Every original call [`deposit`](RetryBudget::deposit)s once; every retry must
/// [`try_withdraw`](RetryBudget::try_withdraw) first and is skipped if that fails. A
/// deposit makes `retry_ratio` retries available for `ttl`, and `min_retries_per_sec`
/// retries per second are always available on top (averaged over the ttl: `min × ttl`
/// retries per window), so a service with little traffic can still retry. This is the
/// design of Finagle's `RetryBudget` and linkerd's retry budgets.
///
/// Guarantee: for every retry the budget allows at time `t`, the retries allowed in
/// `(t - ttl, t]` number at most `min_retries_per_sec × ttl + retry_ratio × deposits` in
/// that same window. Expiry has a granularity of `ttl / 10`, and the budget rounds
/// towards refusing: a deposit stops counting up to `ttl / 10` early, a withdrawal up to
/// `ttl / 10` late. The ratio is kept to six decimal places.
///
/// One budget is meant to be shared (behind an [`Arc`](std::sync::Arc)) by every caller of
/// one service; all methods take `&self`. A short lock guards a ring of 11 counters, so
/// every method is O(1).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_circuitbreaker::retry::RetryBudget;
/// use weft_time::ManualClock;
///
/// let clock = ManualClock::new();
/// // Retries may add at most 10% to the load, with no floor.
/// let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 0.1, clock.clone())?;
///
/// for _ in 0..100 {
///     budget.deposit(); // 100 calls...
/// }
/// let retries = (0..100).filter(|_| budget.try_withdraw()).count();
/// assert_eq!(retries, 10); // ...fund 10 retries
///
/// // Ten seconds later the deposits have expired.
/// clock.advance(Duration::from_secs(10));
/// assert!(!budget.try_withdraw());
/// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
/// ```
pub struct RetryBudget<C: Clock = FastClock> {
    clock: C,
    /// The window, a multiple of `BUCKETS` nanoseconds.
    ttl: Duration,
    /// The width of one bucket in nanoseconds (at least 100 000).
    bucket_nanos: u64,
    min_retries_per_sec: u32,
    retry_ratio: f64,
    /// Micro-retries one deposit adds.
    ratio_micro: u128,
    /// Micro-retries always available per window.
    floor_micro: u128,
    state: Mutex<State>,
}

/// The mutable part, under the lock.
#[derive(Debug)]
struct State {
    /// The bucket number of the newest bucket; its slot is `head % RING`.
    head: u64,
    /// Slot `n % RING` holds bucket `n`, for `n` in `head - BUCKETS ..= head`.
    ring: [Bucket; RING],
    /// Deposits since creation.
    total_deposits: u64,
    /// Withdrawals since creation.
    total_withdrawals: u64,
    /// Refused withdrawals since creation.
    total_rejections: u64,
}

/// The events of one bucket.
#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    deposits: u64,
    withdrawals: u64,
    rejections: u64,
}

/// Window sums, as the budget counts them (see the design notes).
#[derive(Debug, Clone, Copy)]
struct Sums {
    /// Deposits in the newest `BUCKETS` buckets.
    deposits: u64,
    /// Withdrawals in all `RING` buckets.
    withdrawals: u64,
    /// Rejections in the newest `BUCKETS` buckets.
    rejections: u64,
}

impl State {
    /// Moves the ring forward to bucket `now` (never backwards), clearing the slots of the
    /// buckets that fall out. At most `RING` slots are cleared, however far time jumped.
    fn advance(&mut self, now: u64) {
        if now <= self.head {
            return;
        }
        let steps = now - self.head;
        if steps >= RING as u64 {
            self.ring = [Bucket::default(); RING];
        } else {
            for n in self.head + 1..=now {
                self.ring[slot(n)] = Bucket::default();
            }
        }
        self.head = now;
    }

    fn sums(&self) -> Sums {
        // The oldest bucket (`head - BUCKETS`) sits in the slot after the head.
        let oldest = slot(self.head.wrapping_add(1));
        let mut sums = Sums {
            deposits: 0,
            withdrawals: 0,
            rejections: 0,
        };
        for (i, b) in self.ring.iter().enumerate() {
            sums.withdrawals = sums.withdrawals.saturating_add(b.withdrawals);
            if i != oldest {
                sums.deposits = sums.deposits.saturating_add(b.deposits);
                sums.rejections = sums.rejections.saturating_add(b.rejections);
            }
        }
        sums
    }

    fn newest(&mut self) -> &mut Bucket {
        &mut self.ring[slot(self.head)]
    }
}

/// The ring slot of bucket `n`.
fn slot(n: u64) -> usize {
    // `RING` is 11, so the remainder fits any usize.
    (n % RING as u64) as usize
}

/// A snapshot of a [`RetryBudget`]: its balance, the counts it is based on, and counters
/// since creation.
///
/// ```
/// use std::time::Duration;
/// use weft_circuitbreaker::retry::RetryBudget;
/// use weft_time::ManualClock;
///
/// let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 0.5, ManualClock::new())?;
/// budget.deposit();
/// budget.deposit();
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw());
///
/// let s = budget.status();
/// assert_eq!((s.balance, s.deposits, s.withdrawals, s.rejections), (0, 2, 1, 1));
/// assert_eq!((s.total_deposits, s.total_withdrawals, s.total_rejections), (2, 1, 1));
/// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryBudgetStatus {
    /// Retries that would be allowed right now, one after another.
    pub balance: u64,
    /// Deposits still counting (made within the last ttl).
    pub deposits: u64,
    /// Withdrawals still counting against the balance.
    pub withdrawals: u64,
    /// Refused withdrawals within the last ttl.
    pub rejections: u64,
    /// Deposits since the budget was created.
    pub total_deposits: u64,
    /// Retries allowed since the budget was created.
    pub total_withdrawals: u64,
    /// Retries refused since the budget was created.
    pub total_rejections: u64,
}

impl RetryBudget<FastClock> {
    /// A budget on the default clock ([`FastClock`]): each deposit funds `retry_ratio`
    /// retries for `ttl`, and `min_retries_per_sec` retries per second are always allowed.
    ///
    /// # Errors
    ///
    /// - [`RetryConfigError::InvalidTtl`]: `ttl` below 1 ms or above 1 h;
    /// - [`RetryConfigError::InvalidRetryRatio`]: `retry_ratio` not in `[0, 1000]`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::{RetryBudget, RetryConfigError};
    ///
    /// // linkerd's defaults: 20% extra load from retries, 10 retries/s floor, 10 s window.
    /// let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2)?;
    /// assert!(budget.try_withdraw()); // the floor allows retries before any call
    ///
    /// let err = RetryBudget::new(Duration::from_secs(10), 10, -0.5).unwrap_err();
    /// assert!(matches!(err, RetryConfigError::InvalidRetryRatio { .. }));
    /// # Ok::<(), RetryConfigError>(())
    /// ```
    pub fn new(
        ttl: Duration,
        min_retries_per_sec: u32,
        retry_ratio: f64,
    ) -> Result<Self, RetryConfigError> {
        Self::with_clock(ttl, min_retries_per_sec, retry_ratio, FastClock::new())
    }
}

impl Default for RetryBudget<FastClock> {
    /// A 10 s window, a floor of 10 retries per second and a ratio of 0.2 (the defaults
    /// of Finagle and linkerd).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryBudget;
    ///
    /// let budget = RetryBudget::default();
    /// assert_eq!(budget.ttl(), Duration::from_secs(10));
    /// assert_eq!(budget.status().balance, 100); // 10 per second over 10 s
    /// ```
    fn default() -> Self {
        let clock = FastClock::new();
        let bucket_nanos = 1_000_000_000; // 10 s / 10 buckets
        RetryBudget::from_parts(clock, bucket_nanos, 10, 0.2)
    }
}

impl<C: Clock> RetryBudget<C> {
    /// A budget reading time from `clock` (a [`ManualClock`](weft_time::ManualClock) in
    /// tests): each deposit funds `retry_ratio` retries for `ttl`, and
    /// `min_retries_per_sec` retries per second are always allowed (`min × ttl` per
    /// window). `ttl` is rounded down to a multiple of 10 ns (see
    /// [`ttl`](RetryBudget::ttl)); `retry_ratio` is kept to six decimals.
    ///
    /// A ratio of 0 leaves only the floor; a floor and a ratio of 0 allow no retry at all
    /// (a way to switch retries off at run time by swapping budgets).
    ///
    /// # Errors
    ///
    /// - [`RetryConfigError::InvalidTtl`]: `ttl` below 1 ms or above 1 h;
    /// - [`RetryConfigError::InvalidRetryRatio`]: `retry_ratio` not in `[0, 1000]` (or NaN).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryBudget;
    /// use weft_time::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// // No ratio, a floor of 2 retries per second over a 1 s window.
    /// let budget = RetryBudget::with_clock(Duration::from_secs(1), 2, 0.0, clock.clone())?;
    /// assert!(budget.try_withdraw());
    /// assert!(budget.try_withdraw());
    /// assert!(!budget.try_withdraw());
    ///
    /// clock.advance(Duration::from_millis(1100)); // a withdrawal counts for up to ttl + ttl/10
    /// assert!(budget.try_withdraw());
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn with_clock(
        ttl: Duration,
        min_retries_per_sec: u32,
        retry_ratio: f64,
        clock: C,
    ) -> Result<Self, RetryConfigError> {
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(RetryConfigError::InvalidTtl { ttl });
        }
        if !(0.0..=MAX_RATIO).contains(&retry_ratio) {
            // Also catches NaN, which no range contains.
            return Err(RetryConfigError::InvalidRetryRatio { ratio: retry_ratio });
        }
        // At most 3.6e12 ns, so the conversion cannot fail; the fallback avoids a panic path.
        let ttl_nanos = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        let bucket_nanos = ttl_nanos / BUCKETS;
        Ok(Self::from_parts(
            clock,
            bucket_nanos,
            min_retries_per_sec,
            retry_ratio,
        ))
    }

    /// Builds a budget from validated settings.
    fn from_parts(clock: C, bucket_nanos: u64, min_retries_per_sec: u32, retry_ratio: f64) -> Self {
        let ttl_nanos = bucket_nanos * BUCKETS;
        // `retry_ratio` is in [0, 1000], so this is in [0, 1e9] and exact for any ratio
        // written with up to six decimals.
        let ratio_micro = (retry_ratio * UNIT as f64).round() as u128;
        // min * ttl_secs retries, in micro-retries: min * ttl_nanos * 1e6 / 1e9. Rounded
        // down, so the floor never exceeds what was configured.
        let floor_micro = u128::from(min_retries_per_sec) * u128::from(ttl_nanos) / 1_000;
        let head = clock.monotonic_nanos() / bucket_nanos;
        RetryBudget {
            clock,
            ttl: Duration::from_nanos(ttl_nanos),
            bucket_nanos,
            min_retries_per_sec,
            retry_ratio,
            ratio_micro,
            floor_micro,
            state: Mutex::new(State {
                head,
                ring: [Bucket::default(); RING],
                total_deposits: 0,
                total_withdrawals: 0,
                total_rejections: 0,
            }),
        }
    }

    /// Records one original call (not a retry): it funds `retry_ratio` retries for the
    /// next `ttl`. Call it once per call, before or after the first attempt.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryBudget;
    /// use weft_time::ManualClock;
    ///
    /// let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 1.0, ManualClock::new())?;
    /// assert!(!budget.try_withdraw());
    /// budget.deposit();
    /// assert!(budget.try_withdraw());
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn deposit(&self) {
        let mut state = self.state.lock();
        state.advance(self.bucket_now());
        let bucket = state.newest();
        bucket.deposits = bucket.deposits.saturating_add(1);
        state.total_deposits = state.total_deposits.saturating_add(1);
    }

    /// Takes one retry from the budget: `true` if the caller may retry now, `false` if the
    /// budget is spent (the caller should give up and return the error).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryBudget;
    /// use weft_time::ManualClock;
    ///
    /// let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 0.5, ManualClock::new())?;
    /// budget.deposit();
    /// assert!(!budget.try_withdraw()); // half a retry is not a retry
    /// budget.deposit();
    /// assert!(budget.try_withdraw());
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn try_withdraw(&self) -> bool {
        let mut state = self.state.lock();
        state.advance(self.bucket_now());
        let sums = state.sums();
        let allowed = self.available_micro(sums) >= UNIT;
        if allowed {
            let bucket = state.newest();
            bucket.withdrawals = bucket.withdrawals.saturating_add(1);
            state.total_withdrawals = state.total_withdrawals.saturating_add(1);
        } else {
            let bucket = state.newest();
            bucket.rejections = bucket.rejections.saturating_add(1);
            state.total_rejections = state.total_rejections.saturating_add(1);
        }
        drop(state);
        if !allowed {
            tracing::debug!(
                deposits = sums.deposits,
                withdrawals = sums.withdrawals,
                "retry budget exhausted: retry refused"
            );
        }
        allowed
    }

    /// A snapshot of the balance and counters.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryBudget;
    /// use weft_time::ManualClock;
    ///
    /// let budget = RetryBudget::with_clock(Duration::from_secs(10), 1, 0.2, ManualClock::new())?;
    /// for _ in 0..10 {
    ///     budget.deposit();
    /// }
    /// // 1 retry/s over 10 s, plus 0.2 × 10 deposits.
    /// assert_eq!(budget.status().balance, 12);
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn status(&self) -> RetryBudgetStatus {
        let mut state = self.state.lock();
        state.advance(self.bucket_now());
        let sums = state.sums();
        let balance = self.available_micro(sums) / UNIT;
        RetryBudgetStatus {
            balance: u64::try_from(balance).unwrap_or(u64::MAX),
            deposits: sums.deposits,
            withdrawals: sums.withdrawals,
            rejections: sums.rejections,
            total_deposits: state.total_deposits,
            total_withdrawals: state.total_withdrawals,
            total_rejections: state.total_rejections,
        }
    }

    /// The window deposits count for (the ttl given, rounded down to a multiple of 10 ns).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryBudget;
    ///
    /// let budget = RetryBudget::new(Duration::from_secs(5), 10, 0.2)?;
    /// assert_eq!(budget.ttl(), Duration::from_secs(5));
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The retries per second always allowed, whatever the traffic.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryBudget;
    /// let budget = RetryBudget::new(Duration::from_secs(10), 3, 0.2)?;
    /// assert_eq!(budget.min_retries_per_sec(), 3);
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn min_retries_per_sec(&self) -> u32 {
        self.min_retries_per_sec
    }

    /// The retries each deposit funds, as configured.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryBudget;
    /// let budget = RetryBudget::new(Duration::from_secs(10), 3, 0.25)?;
    /// assert_eq!(budget.retry_ratio(), 0.25);
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn retry_ratio(&self) -> f64 {
        self.retry_ratio
    }

    /// The budget's clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryBudget;
    /// use weft_time::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let budget = RetryBudget::with_clock(Duration::from_secs(1), 0, 0.1, clock.clone())?;
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(budget.clock().elapsed(), Duration::from_secs(2));
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The current bucket number.
    fn bucket_now(&self) -> u64 {
        self.clock.monotonic_nanos() / self.bucket_nanos
    }

    /// Micro-retries available given the counted sums (zero when overdrawn).
    fn available_micro(&self, sums: Sums) -> u128 {
        let funded = self.floor_micro + self.ratio_micro * u128::from(sums.deposits);
        funded.saturating_sub(UNIT * u128::from(sums.withdrawals))
    }
}

impl<C: Clock> fmt::Debug for RetryBudget<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ttl", &self.ttl)
            .field("min_retries_per_sec", &self.min_retries_per_sec)
            .field("retry_ratio", &self.retry_ratio)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_time::ManualClock;

    fn budget(ttl_ms: u64, min: u32, ratio: f64) -> (RetryBudget<ManualClock>, ManualClock) {
        let clock = ManualClock::new();
        let b = RetryBudget::with_clock(Duration::from_millis(ttl_ms), min, ratio, clock.clone())
            .unwrap();
        (b, clock)
    }

    #[test]
    fn deposits_expire_early_and_withdrawals_late_by_at_most_one_bucket() {
        let (b, clock) = budget(1_000, 0, 1.0);
        b.deposit(); // bucket 0, at its very start
        clock.advance(Duration::from_millis(999));
        assert_eq!(b.status().deposits, 1, "still within ttl");
        clock.advance(Duration::from_millis(1));
        assert_eq!(b.status().deposits, 0, "gone at exactly ttl");

        let (b, clock) = budget(1_000, 1, 0.0); // floor: one retry per window
        assert!(b.try_withdraw());
        clock.advance(Duration::from_millis(1_099));
        assert!(!b.try_withdraw(), "the withdrawal still counts");
        clock.advance(Duration::from_millis(1));
        assert!(b.try_withdraw(), "it stops counting at ttl + ttl/10");
    }

    #[test]
    fn a_long_jump_clears_the_whole_ring() {
        let (b, clock) = budget(100, 0, 1.0);
        for _ in 0..5 {
            b.deposit();
            clock.advance(Duration::from_millis(3));
        }
        clock.advance(Duration::from_secs(3600));
        let s = b.status();
        assert_eq!((s.deposits, s.withdrawals, s.balance), (0, 0, 0));
        assert_eq!(s.total_deposits, 5);
    }

    #[test]
    fn fixed_point_ratio_is_exact_for_decimal_ratios() {
        let (b, _clock) = budget(10_000, 0, 0.57);
        for _ in 0..100 {
            b.deposit();
        }
        assert_eq!(b.status().balance, 57); // 0.57 * 100 is 56.99999999999999 in f64
    }

    #[test]
    fn validation_rejects_out_of_range_settings() {
        let clock = ManualClock::new();
        for ttl in [
            Duration::ZERO,
            Duration::from_micros(999),
            Duration::from_secs(3601),
        ] {
            assert_eq!(
                RetryBudget::with_clock(ttl, 1, 0.1, clock.clone()).unwrap_err(),
                RetryConfigError::InvalidTtl { ttl }
            );
        }
        for ratio in [-0.1, 1000.5, f64::INFINITY] {
            assert_eq!(
                RetryBudget::with_clock(Duration::from_secs(1), 1, ratio, clock.clone())
                    .unwrap_err(),
                RetryConfigError::InvalidRetryRatio { ratio }
            );
        }
        assert!(matches!(
            RetryBudget::with_clock(Duration::from_secs(1), 1, f64::NAN, clock.clone()),
            Err(RetryConfigError::InvalidRetryRatio { .. })
        ));
        assert!(RetryBudget::with_clock(Duration::from_secs(1), u32::MAX, 1000.0, clock).is_ok());
    }

    #[test]
    fn huge_floor_and_ratio_do_not_overflow() {
        let (b, _clock) = budget(3_600_000, u32::MAX, 1000.0);
        for _ in 0..1000 {
            b.deposit();
            assert!(b.try_withdraw());
        }
        let expected = u64::from(u32::MAX) * 3600 + 1000 * 1000 - 1000;
        assert_eq!(b.status().balance, expected);
    }
}
