//! `KeyedLimiter`: per-key decisions match per-key token buckets, the key cap holds, and
//! eviction is reported.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use weft_ratelimit::{Error, KeyedLimiter, Quota};
use weft_time::ManualClock;

proptest! {
    /// With room for every key, dropping replenished keys is invisible: decisions match
    /// one token bucket per key exactly, whatever the interleaving of keys and time.
    #[test]
    fn matches_per_key_buckets(
        shards in 1usize..8,
        steps in proptest::collection::vec((0u8..12, 0u64..400_000_000, 1u32..3), 1..200),
    ) {
        let quota = Quota::per_second(4).unwrap().allow_burst(2).unwrap();
        let clock = ManualClock::new();
        let l = KeyedLimiter::builder(quota)
            .max_keys(64)
            .shards(shards)
            .clock(clock.clone())
            .build()
            .unwrap();
        let cost = 250_000_000u128;
        let cap = 500_000_000u128;
        let mut last = 0u128;
        let mut now = 0u128;
        let mut levels: HashMap<u8, (u128, u128)> = HashMap::new(); // key -> (level, at)
        for (key, dt, n) in steps {
            clock.advance(Duration::from_nanos(dt));
            now += u128::from(dt);
            let (level, at) = levels.get(&key).copied().unwrap_or((cap, now));
            let level = (level + (now - at)).min(cap);
            let need = cost * u128::from(n);
            let got = l.check_n(&key, n).unwrap();
            if level >= need {
                prop_assert!(got.is_ok(), "key {key} should pass");
                levels.insert(key, (level - need, now));
            } else {
                prop_assert_eq!(got.unwrap_err().retry_after().as_nanos(), need - level);
                levels.insert(key, (level, now));
            }
            last = now;
        }
        let _ = last;
        prop_assert_eq!(l.status().evicted_active, 0);
    }

    /// However many distinct keys arrive, the limiter never holds more than `max_keys`.
    #[test]
    fn never_exceeds_the_cap(
        max_keys in 1usize..40,
        shards in 1usize..16,
        keys in proptest::collection::vec((0u32..10_000, 0u64..50_000_000), 1..400),
    ) {
        let clock = ManualClock::new();
        let l = KeyedLimiter::builder(Quota::per_second(1).unwrap())
            .max_keys(max_keys)
            .shards(shards)
            .clock(clock.clone())
            .build()
            .unwrap();
        for (k, dt) in keys {
            clock.advance(Duration::from_nanos(dt));
            let _ = l.check(&k);
            prop_assert!(l.len() <= max_keys, "{} keys held, cap {}", l.len(), max_keys);
        }
    }
}

#[test]
fn key_rotation_stays_bounded_and_counts_evictions() {
    let clock = ManualClock::new();
    let l = KeyedLimiter::builder(Quota::per_hour(10).unwrap())
        .max_keys(1000)
        .clock(clock.clone())
        .build()
        .unwrap();
    // An attacker rotating through 100 000 addresses, none of them replenished.
    for ip in 0u32..100_000 {
        let _ = l.check(&ip);
    }
    let s = l.status();
    assert!(s.keys <= 1000, "{} keys", s.keys);
    assert_eq!(s.evicted_active as usize, 100_000 - s.keys);
    assert!(
        s.memory_bytes < 1000 * 4 * l.memory_per_key(),
        "{} bytes",
        s.memory_bytes
    );
}

#[test]
fn idle_keys_are_dropped_as_new_ones_arrive() {
    let clock = ManualClock::new();
    let l = KeyedLimiter::builder(Quota::per_second(10).unwrap())
        .max_keys(1 << 20)
        .shards(1)
        .clock(clock.clone())
        .build()
        .unwrap();
    for k in 0u32..1000 {
        let _ = l.check(&k);
    }
    clock.advance(Duration::from_secs(1)); // all replenished
    for k in 1000u32..3000 {
        let _ = l.check(&k);
    }
    // Each insertion examined one random entry and dropped it if idle: the first thousand
    // are largely gone without any sweep.
    let s = l.status();
    assert!(s.keys < 2600, "{} keys held", s.keys);
    assert!(s.evicted_idle > 400);
    assert_eq!(s.evicted_active, 0);
    clock.advance(Duration::from_secs(1));
    l.retain_recent();
    assert!(l.is_empty());
    l.shrink_to_fit();
    assert!(l.status().memory_bytes < 1024);
}

#[test]
fn validation() {
    assert_eq!(
        KeyedLimiter::<u8>::builder(Quota::per_second(1).unwrap())
            .max_keys(0)
            .build()
            .unwrap_err(),
        Error::ZeroKeys
    );
    let l = KeyedLimiter::<u8>::new(Quota::per_second(2).unwrap()).unwrap();
    assert!(matches!(
        l.check_n(&1, 3),
        Err(Error::InsufficientCapacity {
            requested: 3,
            burst: 2
        })
    ));
}

#[test]
fn concurrent_keys_never_exceed_per_key_burst() {
    let clock = ManualClock::new();
    let l = KeyedLimiter::builder(Quota::per_hour(5).unwrap())
        .clock(clock)
        .build()
        .unwrap();
    let admitted: Vec<usize> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut per_key = vec![0; 10];
                    for round in 0..100 {
                        let k = round % 10;
                        if l.check(&k).is_ok() {
                            per_key[k] += 1;
                        }
                    }
                    per_key
                })
            })
            .collect();
        let mut total = vec![0; 10];
        for h in hs {
            for (t, n) in total.iter_mut().zip(h.join().unwrap()) {
                *t += n;
            }
        }
        total
    });
    assert_eq!(admitted, vec![5; 10]);
}
