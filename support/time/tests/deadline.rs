//! Integration tests of `Deadline`.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use weft_time::{Clock, Deadline, ManualClock, SystemClock};

#[test]
fn public_types_are_thread_safe() {
    fn assert_thread_safe<T: Send + Sync + Unpin + std::fmt::Debug + 'static>() {}
    assert_thread_safe::<Deadline>();
}

#[test]
fn deadline_on_the_system_clock() {
    let deadline = Deadline::after(&SystemClock, Duration::from_secs(3600));
    assert!(!deadline.is_expired(&SystemClock));
    assert!(deadline.remaining(&SystemClock) > Duration::from_secs(3000));

    let past = Deadline::at(Instant::now());
    assert!(past.is_expired(&SystemClock));
    assert_eq!(past.remaining(&SystemClock), Duration::ZERO);
}

#[test]
fn deadline_through_a_dyn_clock() {
    let clock = ManualClock::new();
    let dyn_clock: &dyn Clock = &clock;
    let deadline = Deadline::after(dyn_clock, Duration::from_secs(1));
    clock.advance(Duration::from_millis(600));
    assert_eq!(deadline.remaining(dyn_clock), Duration::from_millis(400));
}

#[test]
fn a_deadline_before_the_clock_started_is_expired() {
    let clock = ManualClock::new();
    let earlier = clock
        .now()
        .checked_sub(Duration::from_secs(1))
        .unwrap_or_else(|| clock.now());
    let deadline = Deadline::at(earlier);
    assert!(deadline.is_expired(&clock));
    assert_eq!(deadline.remaining(&clock), Duration::ZERO);
}

#[test]
fn max_timeout_is_far_future_and_orders_last() {
    let clock = ManualClock::new();
    let never = Deadline::after(&clock, Duration::MAX);
    let soon = Deadline::after(&clock, Duration::from_secs(1));
    assert!(never > soon);
    assert_eq!(never.earliest(soon), soon);
    clock.advance(Duration::from_secs(1_000 * 365 * 86_400));
    assert!(!never.is_expired(&clock));
    assert!(soon.is_expired(&clock));
}

#[test]
fn deadlines_sort_earliest_first() {
    let clock = ManualClock::new();
    let mut ds: Vec<_> = [3u64, 1, 2]
        .iter()
        .map(|s| Deadline::after(&clock, Duration::from_secs(*s)))
        .collect();
    ds.sort();
    let order: Vec<_> = ds.iter().map(|d| d.remaining(&clock).as_secs()).collect();
    assert_eq!(order, [1, 2, 3]);
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..=100_000_000_000).prop_map(Duration::from_nanos),
        any::<u64>().prop_map(Duration::from_nanos),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        Just(Duration::MAX),
    ]
}

proptest! {
    /// `remaining` never underflows: it is `timeout - elapsed`, or zero once passed, and
    /// `is_expired` is true exactly when it is zero.
    #[test]
    fn remaining_never_underflows(
        timeout in (0u64..=1u64 << 62).prop_map(Duration::from_nanos),
        advances in prop::collection::vec(any_duration(), 0..10),
    ) {
        let clock = ManualClock::new();
        let deadline = Deadline::after(&clock, timeout);
        for a in advances {
            clock.advance(a);
            let remaining = deadline.remaining(&clock);
            prop_assert_eq!(remaining, timeout.saturating_sub(clock.elapsed()));
            prop_assert_eq!(deadline.is_expired(&clock), remaining.is_zero());
        }
    }

    /// Any timeout, however large, gives a deadline without panicking, no earlier than a
    /// smaller timeout's.
    #[test]
    fn after_never_panics_and_is_monotone_in_the_timeout(a in any_duration(), b in any_duration()) {
        let clock = ManualClock::new();
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let (d_lo, d_hi) = (Deadline::after(&clock, lo), Deadline::after(&clock, hi));
        prop_assert!(d_lo <= d_hi);
        prop_assert!(d_hi.remaining(&clock) <= hi);
        prop_assert_eq!(d_hi.is_expired(&clock), hi.is_zero());
    }

    /// `earliest` is the minimum: commutative, one of its arguments, no later than either.
    #[test]
    fn earliest_is_the_minimum(a in any_duration(), b in any_duration()) {
        let clock = ManualClock::new();
        let (da, db) = (Deadline::after(&clock, a), Deadline::after(&clock, b));
        let e = Deadline::earliest(da, db);
        prop_assert_eq!(e, db.earliest(da));
        prop_assert!(e == da || e == db);
        prop_assert!(e <= da && e <= db);
        prop_assert_eq!(e.remaining(&clock), da.remaining(&clock).min(db.remaining(&clock)));
    }
}
