//! `MultiLimiter`: all quotas must admit, and a denial charges none.

use std::time::Duration;

use proptest::prelude::*;
use weft_ratelimit::{Error, MultiLimiter, Quota};
use weft_time::ManualClock;

proptest! {
    /// Two quotas behave like two token buckets checked together: admit iff both have
    /// the cells, and then charge both; never charge one alone.
    #[test]
    fn all_or_nothing_matches_two_buckets(
        steps in proptest::collection::vec((0u64..600_000_000, 1u32..3), 1..120),
    ) {
        let fast = Quota::per_second(4).unwrap();
        let slow = Quota::per_period(6, Duration::from_secs(3)).unwrap();
        let clock = ManualClock::new();
        let l = MultiLimiter::with_clock(&[fast, slow], clock.clone()).unwrap();
        let costs = [250_000_000u128, 500_000_000u128];
        let caps = [1_000_000_000u128, 3_000_000_000u128];
        let mut levels = caps;
        for (dt, n) in steps {
            clock.advance(Duration::from_nanos(dt));
            for i in 0..2 {
                levels[i] = (levels[i] + u128::from(dt)).min(caps[i]);
            }
            let need = [costs[0] * u128::from(n), costs[1] * u128::from(n)];
            let ok = levels[0] >= need[0] && levels[1] >= need[1];
            let got = l.check_n(n).unwrap();
            prop_assert_eq!(got.is_ok(), ok);
            if ok {
                levels[0] -= need[0];
                levels[1] -= need[1];
            } else {
                // The retry-after is when the slower of the two would admit.
                let wait = (0..2)
                    .map(|i| need[i].saturating_sub(levels[i]))
                    .max()
                    .unwrap();
                prop_assert_eq!(got.unwrap_err().retry_after().as_nanos(), wait);
            }
        }
    }
}

#[test]
fn rejects_empty_and_oversized() {
    assert_eq!(
        MultiLimiter::with_clock(&[], ManualClock::new()).unwrap_err(),
        Error::NoQuota
    );
    let l = MultiLimiter::with_clock(
        &[
            Quota::per_second(10).unwrap(),
            Quota::per_minute(3).unwrap(),
        ],
        ManualClock::new(),
    )
    .unwrap();
    assert_eq!(
        l.check_n(4).unwrap_err(),
        Error::InsufficientCapacity {
            requested: 4,
            burst: 3
        }
    );
}
