//! Loom models of `weft-ratelimit`: admissions under concurrency never exceed the quota,
//! and a multi-quota decision is all or nothing.
#![cfg(loom)]

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use weft_ratelimit::{KeyedLimiter, MultiLimiter, Quota, RateLimiter};
use weft_time::ManualClock;

/// Three threads race `check_n` on a burst-2 quota at one frozen instant: exactly the
/// burst is admitted (never more: the CAS admits one decision per TAT value; never less:
/// a failed CAS retries with the fresh TAT).
#[test]
fn direct_never_admits_more_than_the_burst() {
    loom::model(|| {
        let clock = ManualClock::new();
        let l = Arc::new(RateLimiter::with_clock(Quota::per_hour(2).unwrap(), clock));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let l = Arc::clone(&l);
                thread::spawn(move || u32::from(l.check_n(1).unwrap().is_ok()))
            })
            .collect();
        let mine = u32::from(l.check_n(1).unwrap().is_ok());
        let total: u32 = mine + threads.into_iter().map(|t| t.join().unwrap()).sum::<u32>();
        assert_eq!(total, 2);
        assert_eq!(l.status().admitted, 2);
    });
}

/// Weighted requests race: 2 + 1 cells against a burst of 2. Whatever the order, the
/// cells admitted never exceed 2, and a denied request charged nothing.
#[test]
fn direct_weighted_requests_respect_the_burst() {
    loom::model(|| {
        let l = Arc::new(RateLimiter::with_clock(
            Quota::per_hour(2).unwrap(),
            ManualClock::new(),
        ));
        let t = {
            let l = Arc::clone(&l);
            thread::spawn(move || l.check_n(2).unwrap().is_ok())
        };
        let one = l.check_n(1).unwrap().is_ok();
        let two = t.join().unwrap();
        let cells = u32::from(one) + 2 * u32::from(two);
        assert!(cells <= 2);
        assert_eq!(u64::from(cells), l.status().admitted);
        // Whatever was not admitted is still there.
        assert_eq!(l.status().remaining, 2 - cells);
    });
}

/// Two threads race a two-quota limiter (2 per hour AND 1 per second). Exactly one is
/// admitted; the loser must not have charged the hourly quota, so after one second (the
/// per-second quota replenished) one more request still fits the hour.
#[test]
fn multi_quota_all_or_nothing() {
    loom::model(|| {
        let clock = ManualClock::new();
        let l = Arc::new(
            MultiLimiter::with_clock(
                &[Quota::per_hour(2).unwrap(), Quota::per_second(1).unwrap()],
                clock.clone(),
            )
            .unwrap(),
        );
        let t = {
            let l = Arc::clone(&l);
            thread::spawn(move || l.check().is_ok())
        };
        let mine = l.check().is_ok();
        let theirs = t.join().unwrap();
        assert!(mine ^ theirs, "exactly one admitted");
        clock.advance(Duration::from_secs(1));
        assert!(
            l.check().is_ok(),
            "the denied request charged the hourly quota"
        );
        assert!(l.check().is_err());
    });
}

/// Two threads insert different keys into a keyed limiter capped at one key: the cap
/// holds whatever the interleaving, and both requests are admitted (each key is new).
#[test]
fn keyed_cap_holds_under_concurrent_inserts() {
    loom::model(|| {
        let l = Arc::new(
            KeyedLimiter::builder(Quota::per_hour(1).unwrap())
                .max_keys(1)
                .shards(1)
                .clock(ManualClock::new())
                .build()
                .unwrap(),
        );
        let t = {
            let l = Arc::clone(&l);
            thread::spawn(move || l.check(&1u8).is_ok())
        };
        let mine = l.check(&2u8).is_ok();
        assert!(mine && t.join().unwrap());
        assert_eq!(l.len(), 1);
        assert_eq!(l.status().evicted_active, 1);
    });
}
