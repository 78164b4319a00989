//! Fair waiting under `tokio::time::pause`: FIFO order, cancellation gives capacity back,
//! a full queue refuses at once.
#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use weft_ratelimit::{Error, Quota, RateLimiter};
use weft_time::TokioClock;

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_arrival_order() {
    let l = Arc::new(RateLimiter::with_clock(
        Quota::per_second(1).unwrap(),
        TokioClock,
    ));
    let start = Instant::now();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (l, order) = (Arc::clone(&l), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            l.until_ready().await.unwrap();
            order.lock().unwrap().push((i, start.elapsed()));
        }));
        // Let the task reach its `until_ready` before the next one starts.
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(
        order,
        (0..4)
            .map(|i| (i, Duration::from_secs(i as u64)))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn cancelled_waiter_gives_its_slot_back() {
    let l = RateLimiter::with_clock(Quota::per_second(1).unwrap(), TokioClock);
    let start = Instant::now();
    l.until_ready().await.unwrap(); // the burst
    // A waiter for the next slot (at 1s) gives up after 100ms.
    let gave_up = tokio::time::timeout(Duration::from_millis(100), l.until_ready()).await;
    assert!(gave_up.is_err());
    assert_eq!(l.status().waiters, 0);
    // The next caller gets the 1s slot, not the 2s one.
    l.until_ready().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn full_queue_refuses_at_once() {
    let l =
        Arc::new(RateLimiter::with_clock(Quota::per_second(1).unwrap(), TokioClock).max_waiters(1));
    l.until_ready().await.unwrap();
    let waiter = {
        let l = Arc::clone(&l);
        tokio::spawn(async move { l.until_ready().await })
    };
    tokio::task::yield_now().await;
    let before = Instant::now();
    assert_eq!(
        l.until_ready().await.unwrap_err(),
        Error::QueueFull { max: 1 }
    );
    assert_eq!(before.elapsed(), Duration::ZERO);
    waiter.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn jitter_never_wakes_early() {
    let l = RateLimiter::with_clock(Quota::per_second(1).unwrap(), TokioClock);
    let start = Instant::now();
    l.until_ready().await.unwrap();
    l.until_ready_jittered(1, Duration::from_millis(300))
        .await
        .unwrap();
    let e = start.elapsed();
    assert!(
        e >= Duration::from_secs(1) && e <= Duration::from_millis(1300),
        "{e:?}"
    );
}
