//! `RateLimiter` against a reference token bucket, plus its edge cases.

use std::time::Duration;

use proptest::prelude::*;
use weft_ratelimit::{Error, Quota, RateLimiter};
use weft_time::ManualClock;

/// A token bucket measured in nanoseconds of credit: it holds at most `tau` (= burst ×
/// interval), refills one unit per nanosecond, and a request for `n` cells costs
/// `n × interval`. Mathematically the same limiter as GCRA, written the other way round.
struct Bucket {
    level: u128,
    cap: u128,
    cost: u128,
    burst: u32,
}

impl Bucket {
    fn new(q: &Quota) -> Self {
        let cost = q.replenish_interval().as_nanos();
        Bucket {
            level: cost * u128::from(q.burst()),
            cap: cost * u128::from(q.burst()),
            cost,
            burst: q.burst(),
        }
    }
    fn advance(&mut self, ns: u64) {
        self.level = (self.level + u128::from(ns)).min(self.cap);
    }
    /// `Ok(remaining cells)` or `Err(nanoseconds to wait)`.
    fn take(&mut self, n: u32) -> Result<u32, u128> {
        let need = self.cost * u128::from(n);
        if self.level >= need {
            self.level -= need;
            Ok((self.level / self.cost) as u32)
        } else {
            Err(need - self.level)
        }
    }
}

proptest! {
    /// Any sequence of (time advance, request size) gets the same decisions from the
    /// limiter as from the token bucket, with the exact same retry-after and remaining.
    #[test]
    fn matches_token_bucket(
        cells in 1u32..20,
        period_ms in 1u64..5_000,
        burst in 1u32..10,
        steps in proptest::collection::vec((0u64..3_000_000_000, 0u32..12), 1..100),
    ) {
        let quota = Quota::per_period(cells, Duration::from_millis(period_ms))
            .unwrap()
            .allow_burst(burst)
            .unwrap();
        let clock = ManualClock::new();
        let limiter = RateLimiter::with_clock(quota, clock.clone());
        let mut bucket = Bucket::new(&quota);
        for (dt, n) in steps {
            clock.advance(Duration::from_nanos(dt));
            bucket.advance(dt);
            match limiter.check_n(n) {
                Err(Error::InsufficientCapacity { requested, burst: b }) => {
                    prop_assert!(n > bucket.burst);
                    prop_assert_eq!((requested, b), (n, bucket.burst));
                }
                Err(e) => prop_assert!(false, "unexpected error {e}"),
                Ok(got) => {
                    prop_assert!(n <= bucket.burst);
                    match (got, bucket.take(n)) {
                        (Ok(a), Ok(rem)) => prop_assert_eq!(a.remaining(), rem),
                        (Err(nu), Err(wait)) => {
                            prop_assert_eq!(nu.retry_after().as_nanos(), wait);
                        }
                        (got, want) => prop_assert!(false, "limiter {got:?} vs bucket {want:?}"),
                    }
                }
            }
        }
    }
}

#[test]
fn denied_requests_take_nothing() {
    let clock = ManualClock::new();
    let l = RateLimiter::with_clock(Quota::per_second(4).unwrap(), clock.clone());
    l.check_n(3).unwrap().unwrap();
    // 2 cells requested with 1 left: denied, and the 1 cell stays available.
    assert!(l.check_n(2).unwrap().is_err());
    assert_eq!(l.check().unwrap().remaining(), 0);
    let s = l.status();
    assert_eq!((s.admitted, s.rejected), (4, 1));
}

#[test]
fn zero_cells_always_pass() {
    let l = RateLimiter::with_clock(Quota::per_hour(1).unwrap(), ManualClock::new());
    l.check().unwrap();
    assert!(l.check_n(0).unwrap().is_ok());
}

#[test]
fn quota_validation() {
    assert_eq!(Quota::per_second(0), Err(Error::ZeroQuota));
    assert!(matches!(
        Quota::per_period(2, Duration::from_nanos(1)),
        Err(Error::RateTooHigh { .. })
    ));
    assert!(matches!(
        Quota::with_period(Duration::from_secs(u64::MAX / 4)).and_then(|q| q.allow_burst(u32::MAX)),
        Err(Error::QuotaOverflow { .. })
    ));
    assert_eq!(
        Quota::per_second(1).unwrap().allow_burst(0),
        Err(Error::ZeroQuota)
    );
}

#[test]
fn clock_far_in_the_future_does_not_overflow() {
    let clock = ManualClock::new();
    let l = RateLimiter::with_clock(Quota::per_second(1).unwrap(), clock.clone());
    clock.advance(Duration::from_secs(60 * 60 * 24 * 365 * 500)); // 500 years
    assert!(l.check().is_ok());
    assert!(l.check().is_err());
}

#[test]
fn concurrent_checks_never_exceed_the_burst() {
    // Frozen time: exactly `burst` admissions in total, however the threads interleave.
    let clock = ManualClock::new();
    let l = RateLimiter::with_clock(Quota::per_hour(100).unwrap(), clock);
    let admitted: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| (0..1000).filter(|_| l.check().is_ok()).count()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(admitted, 100);
}

#[test]
fn reservations_are_fifo_and_refund_on_drop() {
    let clock = ManualClock::new();
    let l = RateLimiter::with_clock(Quota::per_second(1).unwrap(), clock.clone());
    let a = l.reserve_n(1).unwrap();
    let b = l.reserve_n(1).unwrap();
    let c = l.reserve_n(1).unwrap();
    assert!(a.ready_at() < b.ready_at() && b.ready_at() < c.ready_at());
    assert_eq!(l.status().waiters, 2);
    drop(c); // cancelled: its slot goes back
    assert_eq!(l.status().waiters, 1);
    let c2 = l.reserve_n(1).unwrap();
    assert_eq!(c2.wait_time(), Duration::from_secs(2));
    // After its slot has come, dropping a reservation does not refund.
    clock.advance(Duration::from_secs(1));
    assert!(b.is_ready());
    drop(b);
    assert_eq!(l.reserve_n(1).unwrap().wait_time(), Duration::from_secs(2));
    a.consume();
}

#[test]
fn cancelling_a_middle_reservation_never_over_admits() {
    // Burst 1: at no instant may two cells be admitted. a, b, c book 0s, 1s, 2s; b gives
    // up. Moving the arrival time back for b would let a newcomer d share c's 2s slot;
    // instead b's slot passes unused and d gets 3s.
    let clock = ManualClock::new();
    let l = RateLimiter::with_clock(Quota::per_second(1).unwrap(), clock);
    let a = l.reserve_n(1).unwrap();
    let b = l.reserve_n(1).unwrap();
    let c = l.reserve_n(1).unwrap();
    drop(b);
    let d = l.reserve_n(1).unwrap();
    assert_eq!(c.wait_time(), Duration::from_secs(2));
    assert_eq!(d.wait_time(), Duration::from_secs(3));
    // The newest waiter (d) giving up is refunded: the next booking takes its slot.
    drop(d);
    assert_eq!(l.reserve_n(1).unwrap().wait_time(), Duration::from_secs(3));
    a.consume();
    c.consume();
}

#[test]
fn full_queue_is_refused_at_once_and_books_nothing() {
    let l =
        RateLimiter::with_clock(Quota::per_second(1).unwrap(), ManualClock::new()).max_waiters(1);
    let _now = l.reserve_n(1).unwrap(); // immediate: not a waiter
    let _waiting = l.reserve_n(1).unwrap(); // waits: takes the one place
    assert_eq!(l.reserve_n(1).unwrap_err(), Error::QueueFull { max: 1 });
    assert_eq!(l.status().waiters, 1);
    assert!(matches!(
        l.reserve_n(2),
        Err(Error::InsufficientCapacity { .. })
    ));
}
