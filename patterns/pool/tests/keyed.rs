//! Keyed pools: per-key caps, the global cap with eviction, idle keys dropped.
#![cfg(feature = "tokio")]

mod common;

use std::time::Duration;

use common::{Things, check};
use weft_pool::{Error, KeyedPool, TimeoutKind};
use weft_time::{ManualClock, TokioClock};

fn keyed(max_size: usize, max_total: usize) -> KeyedPool<&'static str, Things> {
    let (things, _) = Things::new();
    KeyedPool::builder(move |_: &&'static str| things.clone())
        .clock(TokioClock)
        .max_size(max_size)
        .max_total(max_total)
        .wait_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_cap() {
    let pool = keyed(1, 10);
    let a = pool.get(&"a").await.unwrap();
    let err = pool.get(&"a").await.unwrap_err();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Wait)), "{err:?}");
    let b = pool.get(&"b").await.unwrap();
    assert_eq!(pool.keyed_status().keys, 2);
    assert_eq!(pool.total_size(), 2);
    check(&pool.status(&"a").unwrap());
    drop((a, b));
    assert_eq!(pool.status(&"a").unwrap().idle, 1);
    assert!(pool.status(&"zzz").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_full_global_cap_evicts_the_least_recently_used_idle_object() {
    let pool = keyed(2, 2);
    drop(pool.get(&"a").await.unwrap());
    tokio::time::advance(Duration::from_millis(10)).await;
    drop(pool.get(&"b").await.unwrap());
    assert_eq!(pool.total_size(), 2);
    // "c" needs an object; "a" has the least recently used idle one.
    let c = pool.get(&"c").await.unwrap();
    assert_eq!(pool.total_size(), 2);
    assert_eq!(pool.status(&"a").unwrap().size, 0);
    assert_eq!(pool.status(&"a").unwrap().stats.closed.evicted, 1);
    assert_eq!(pool.status(&"b").unwrap().size, 1);
    drop(c);
}

#[tokio::test(start_paused = true)]
async fn a_checkout_waits_for_global_capacity_and_gets_it_on_return() {
    let pool = keyed(2, 1);
    let a = pool.get(&"a").await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get(&"b").await.map(|o| o.id) }
    });
    tokio::task::yield_now().await;
    assert_eq!(pool.keyed_status().waiting_for_capacity, 1);
    // "a" has no waiter of its own, so its object is closed to make room for "b".
    drop(a);
    assert_eq!(waiter.await.unwrap().unwrap(), 1);
    assert_eq!(pool.status(&"a").unwrap().stats.closed.evicted, 1);
    assert_eq!(pool.total_size(), 1);
    assert_eq!(pool.keyed_status().waiting_for_capacity, 0);
}

#[tokio::test(start_paused = true)]
async fn waiting_for_global_capacity_times_out_cleanly() {
    let pool = keyed(2, 1);
    let _a = pool.get(&"a").await.unwrap();
    let err = pool.get(&"b").await.unwrap_err();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Wait)), "{err:?}");
    let s = pool.keyed_status();
    assert_eq!((s.total_size, s.waiting_for_capacity), (1, 0));
    let b = pool.status(&"b").unwrap();
    assert_eq!((b.size, b.creating, b.in_use), (0, 0, 0));
}

#[test]
fn idle_keys_are_dropped_and_their_capacity_freed() {
    let (things, _) = Things::new();
    let clock = ManualClock::new();
    let pool = KeyedPool::builder(move |_: &u32| things.clone())
        .clock(clock.clone())
        .max_total(4)
        .key_idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    drop(pool.get_blocking(&1).unwrap());
    let held = pool.get_blocking(&2).unwrap();
    clock.advance(Duration::from_secs(59));
    assert_eq!(pool.maintain_blocking(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(pool.maintain_blocking(), 1, "key 2 is in use, key 1 goes");
    let s = pool.keyed_status();
    assert_eq!((s.keys, s.total_size), (1, 1));
    drop(held);
    clock.advance(Duration::from_secs(60));
    assert_eq!(pool.maintain_blocking(), 1);
    assert_eq!(pool.total_size(), 0);
    // A dropped key comes back on its next use.
    assert!(pool.get_blocking(&1).is_ok());
}

#[tokio::test(start_paused = true)]
async fn close_fails_later_checkouts() {
    let pool = keyed(1, 2);
    drop(pool.get(&"a").await.unwrap());
    pool.close();
    assert!(matches!(pool.get(&"a").await, Err(Error::Closed)));
    assert_eq!(pool.total_size(), 0);
}

#[test]
fn invalid_settings_are_refused() {
    let (things, _) = Things::new();
    let err = KeyedPool::builder(move |_: &u8| things.clone())
        .max_total(0)
        .build()
        .unwrap_err();
    assert_eq!(err, weft_pool::ConfigError::ZeroMaxTotal);
}
