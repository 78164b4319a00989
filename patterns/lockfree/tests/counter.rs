//! Integration tests of `StripedCounter`: concurrent adds are all counted, `take`
//! counts each add exactly once.

mod common;

use common::scaled;
use proptest::prelude::*;
use weft_lockfree::{Error, StripedCounter};

proptest! {
    /// The sum is the wrapping sum of all adds, whatever the shard count.
    #[test]
    fn sum_matches_model(shards in 1usize..9, adds in proptest::collection::vec(any::<u64>(), 0..50)) {
        let c = StripedCounter::with_shards(shards).unwrap();
        for &a in &adds {
            c.add(a);
        }
        let expect = adds.iter().fold(0u64, |acc, &a| acc.wrapping_add(a));
        prop_assert_eq!(c.sum(), expect);
        prop_assert_eq!(c.take(), expect);
        prop_assert_eq!(c.sum(), 0);
    }
}

#[test]
fn concurrent_adds_all_counted() {
    let per = scaled(100_000) as u64;
    let c = StripedCounter::new();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let c = &c;
            s.spawn(move || {
                for _ in 0..per {
                    c.add(t + 1);
                }
            });
        }
    });
    assert_eq!(c.sum(), per * (1 + 2 + 3 + 4));
}

#[test]
fn take_counts_each_add_once_under_concurrency() {
    let per = scaled(100_000) as u64;
    let c = StripedCounter::with_shards(4).unwrap();
    let taken: u64 = std::thread::scope(|s| {
        for _ in 0..2 {
            let c = &c;
            s.spawn(move || {
                for _ in 0..per {
                    c.incr();
                }
            });
        }
        let c = &c;
        s.spawn(move || (0..1000).map(|_| c.take()).sum::<u64>())
            .join()
            .unwrap()
    });
    assert_eq!(taken + c.take(), 2 * per);
}

#[test]
fn shard_count_validated_and_rounded() {
    assert_eq!(
        StripedCounter::with_shards(0).unwrap_err(),
        Error::ZeroShards
    );
    assert_eq!(StripedCounter::with_shards(5).unwrap().shards(), 8);
    assert_eq!(
        StripedCounter::with_shards(10_000).unwrap().shards(),
        StripedCounter::MAX_SHARDS
    );
}
