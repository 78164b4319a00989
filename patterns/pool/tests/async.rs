//! The async API under `tokio::time::pause`: every config item, fairness, cancellation.
#![cfg(feature = "tokio")]

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{Things, check};
use tokio::time::Instant;
use weft_pool::{Builder, Error, HookError, HookKind, Object, Pool, QueueMode, TimeoutKind};
use weft_time::{Backoff, TokioClock};

fn builder(things: Things) -> Builder<Things> {
    Pool::builder(things).clock(TokioClock).create_retries(
        Backoff::constant(Duration::ZERO)
            .max_retries(0)
            .build()
            .unwrap(),
    )
}

/// Checks an object out on a new task; the task's result is the object's id.
fn spawn_get(pool: &Pool<Things>) -> tokio::task::JoinHandle<Result<usize, Error<common::Down>>> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.get().await.map(|o| o.id) })
}

/// Polls a future once with a no-op waker.
fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test(start_paused = true)]
async fn objects_are_reused_and_counted() {
    let (things, script) = Things::new();
    let pool = builder(things).max_size(2).build().unwrap();
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    assert_eq!((a.id, b.id), (0, 1));
    check(&pool.status());
    drop(a);
    let c = pool.get().await.unwrap();
    assert_eq!(c.id, 0, "the idle object is reused");
    drop((b, c));
    let s = pool.status();
    check(&s);
    assert_eq!((s.size, s.idle, s.in_use), (2, 2, 0));
    assert_eq!(s.stats.created, 2);
    assert_eq!(s.stats.gets_direct, 3);
    assert_eq!(s.stats.recycled, 1);
    assert_eq!(script.recycles.load(Ordering::SeqCst), 1);
    assert_eq!(s.stats.wait_time.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_arrival_order() {
    let (things, _) = Things::new();
    let pool = builder(things).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..4 {
        let (pool, tx) = (pool.clone(), tx.clone());
        tokio::spawn(async move {
            let obj = pool.get().await.unwrap();
            tx.send(i).unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(obj);
        });
        tokio::task::yield_now().await; // queue it before the next one
    }
    assert_eq!(pool.status().waiters, 4);
    drop(held);
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(rx.recv().await.unwrap());
    }
    assert_eq!(order, [0, 1, 2, 3]);
    let s = pool.status();
    assert_eq!((s.stats.gets_waited, s.stats.created), (4, 1));
}

#[tokio::test(start_paused = true)]
async fn a_newcomer_never_overtakes_a_waiter() {
    let (things, _) = Things::new();
    let pool = builder(things).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    let mut waiter = pin!(pool.get());
    assert!(poll_once(waiter.as_mut()).is_pending());
    drop(held); // granted to the waiter, which has not run yet
    assert!(
        matches!(pool.try_get().await, Err(Error::Exhausted { max_size: 1 })),
        "the returned object belongs to the waiter"
    );
    assert!(waiter.await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn wait_timeout_gives_up_and_leaves_nothing_behind() {
    let (things, _) = Things::new();
    let pool = builder(things)
        .max_size(1)
        .wait_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();
    let start = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Wait)), "{err:?}");
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    let s = pool.status();
    assert_eq!((s.waiters, s.stats.gets_timed_out), (0, 1));
    drop(held);
    assert_eq!(pool.status().idle, 1);
}

#[tokio::test(start_paused = true)]
async fn zero_wait_timeout_never_queues() {
    let (things, _) = Things::new();
    let pool = builder(things)
        .max_size(1)
        .wait_timeout(Duration::ZERO)
        .build()
        .unwrap();
    let _held = pool.get().await.unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Wait)));
    assert_eq!(pool.status().waiters, 0);
}

#[tokio::test(start_paused = true)]
async fn try_get_never_waits() {
    let (things, _) = Things::new();
    let pool = builder(things).max_size(1).build().unwrap();
    let held = pool.try_get().await.unwrap();
    let start = Instant::now();
    assert!(matches!(
        pool.try_get().await,
        Err(Error::Exhausted { max_size: 1 })
    ));
    assert_eq!(start.elapsed(), Duration::ZERO);
    drop(held);
    assert!(pool.try_get().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_passes_its_turn_on() {
    let (things, _) = Things::new();
    let pool = builder(things).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    // A waiter that gives up (a select with a deadline, as an application would).
    let gave_up = tokio::time::timeout(Duration::from_millis(5), pool.get()).await;
    assert!(gave_up.is_err());
    let next = spawn_get(&pool);
    tokio::task::yield_now().await;
    assert_eq!(pool.status().waiters, 1);
    drop(held);
    assert_eq!(next.await.unwrap().unwrap(), 0);
    check(&pool.status());
}

#[tokio::test(start_paused = true)]
async fn a_waiter_cancelled_after_its_grant_hands_the_object_on() {
    let (things, _) = Things::new();
    let pool = builder(things).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    let mut first = Box::pin(pool.get());
    assert!(poll_once(first.as_mut()).is_pending());
    let mut second = Box::pin(pool.get());
    assert!(poll_once(second.as_mut()).is_pending());
    drop(held); // granted to `first`...
    drop(first); // ...which is cancelled before it runs: the object goes to `second`
    let obj = second.await.unwrap();
    assert_eq!(obj.id, 0);
    let s = pool.status();
    assert_eq!((s.size, s.in_use, s.waiters), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_checkout_cancelled_while_creating_frees_its_slot() {
    let (things, script) = Things::new();
    script.create_delay_ms.store(1_000, Ordering::SeqCst);
    let pool = builder(things).max_size(1).build().unwrap();
    let slow = tokio::time::timeout(Duration::from_millis(10), pool.get()).await;
    assert!(slow.is_err());
    let s = pool.status();
    assert_eq!((s.size, s.creating, s.waiters), (0, 0, 0));
    script.create_delay_ms.store(0, Ordering::SeqCst);
    assert!(pool.try_get().await.is_ok(), "the slot is free again");
}

#[tokio::test(start_paused = true)]
async fn a_checkout_cancelled_while_recycling_closes_the_object() {
    let (things, script) = Things::new();
    let pool = builder(things).max_size(1).build().unwrap();
    drop(pool.get().await.unwrap());
    script.recycle_delay_ms.store(1_000, Ordering::SeqCst);
    let slow = tokio::time::timeout(Duration::from_millis(10), pool.get()).await;
    assert!(slow.is_err());
    let s = pool.status();
    assert_eq!((s.size, s.in_use, s.stats.closed.cancelled), (0, 0, 1));
    assert_eq!(script.dropped.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn create_timeout_fails_the_checkout() {
    let (things, script) = Things::new();
    script.create_delay_ms.store(10_000, Ordering::SeqCst);
    let pool = builder(things)
        .create_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let start = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout(TimeoutKind::Create)),
        "{err:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    let s = pool.status();
    assert_eq!((s.size, s.creating, s.stats.create_failures), (0, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn recycle_timeout_closes_the_slow_object_and_moves_on() {
    let (things, script) = Things::new();
    let pool = builder(things)
        .max_size(1)
        .recycle_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    script.recycle_delay_ms.store(1_000, Ordering::SeqCst);
    let start = Instant::now();
    let obj = pool.get().await.unwrap();
    assert_eq!(obj.id, 1, "a new object replaced the slow one");
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    let s = pool.status();
    assert_eq!(
        (s.stats.recycle_failures, s.stats.closed.recycle_failed),
        (1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn create_failures_are_retried_with_backoff() {
    let (things, script) = Things::new();
    script.fail_next.store(2, Ordering::SeqCst);
    let pool = Pool::builder(things)
        .clock(TokioClock)
        .create_retries(
            Backoff::exponential(Duration::from_millis(100))
                .max_retries(3)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let start = Instant::now();
    let obj = pool.get().await.unwrap();
    assert_eq!(obj.id, 2);
    assert_eq!(start.elapsed(), Duration::from_millis(100 + 200));
    let s = pool.status();
    assert_eq!((s.stats.create_failures, s.stats.created), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_return_the_backend_error() {
    let (things, script) = Things::new();
    script.fail_all.store(true, Ordering::SeqCst);
    let pool = Pool::builder(things)
        .clock(TokioClock)
        .create_retries(
            Backoff::constant(Duration::from_millis(10))
                .max_retries(2)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, Error::Create(common::Down(2))), "{err:?}");
    assert_eq!(pool.status().stats.create_failures, 3);
}

#[tokio::test(start_paused = true)]
async fn repeated_create_failure_releases_waiters_at_once() {
    let (things, script) = Things::new();
    script.fail_all.store(true, Ordering::SeqCst);
    let pool = Pool::builder(things)
        .clock(TokioClock)
        .max_size(1)
        .wait_timeout(Duration::from_secs(30))
        .create_retries(
            Backoff::constant(Duration::from_secs(1))
                .max_retries(2)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = (0..4).map(|_| spawn_get(&pool)).collect();
    let mut errors = Vec::new();
    for t in tasks {
        errors.push(t.await.unwrap().unwrap_err());
    }
    // The creator retried for 2 s; the three queued behind it learned at once, not after
    // their 30 s wait timeout.
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(matches!(errors[0], Error::Create(_)), "{:?}", errors[0]);
    for e in &errors[1..] {
        match e {
            Error::Unavailable {
                failures,
                last_error,
            } => {
                assert_eq!(*failures, 3);
                assert!(last_error.contains("backend down"), "{last_error}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    let s = pool.status();
    assert_eq!((s.waiters, s.size, s.stats.gets_failed_fast), (0, 0, 3));
    // The backend comes back: the next checkout creates normally.
    script.fail_all.store(false, Ordering::SeqCst);
    assert!(pool.get().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn failing_fast_releases_only_the_waiters_no_object_in_use_can_serve() {
    let (things, script) = Things::new();
    let pool = builder(things).max_size(2).build().unwrap();
    let _held = pool.get().await.unwrap();
    script.fail_all.store(true, Ordering::SeqCst);
    script.create_delay_ms.store(100, Ordering::SeqCst);
    let spawn_get = |pool: &Pool<Things>| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let r = pool.get().await.map(|o| o.id);
            (r, Instant::now())
        })
    };
    let start = Instant::now();
    let creator = spawn_get(&pool);
    tokio::task::yield_now().await;
    let first = spawn_get(&pool);
    tokio::task::yield_now().await;
    let second = spawn_get(&pool);
    tokio::task::yield_now().await;
    assert_eq!(pool.status().waiters, 2);
    let (creator, failed_at) = creator.await.unwrap();
    assert!(matches!(creator, Err(Error::Create(_))));
    assert_eq!(failed_at - start, Duration::from_millis(100));
    // One object is in use and could come back for the first waiter, so only the second
    // is released at once...
    let (second, released_at) = second.await.unwrap();
    assert!(
        matches!(second, Err(Error::Unavailable { failures: 1, .. })),
        "{second:?}"
    );
    assert_eq!(released_at - start, Duration::from_millis(100));
    // ...while the first takes the freed slot and tries a creation of its own.
    let (first, _) = first.await.unwrap();
    assert!(matches!(first, Err(Error::Create(_))), "{first:?}");
    assert_eq!(pool.status().stats.gets_failed_fast, 1);
}

#[tokio::test(start_paused = true)]
async fn min_idle_is_pre_warmed_and_maintained() {
    let (things, _) = Things::new();
    let pool = builder(things).max_size(4).min_idle(2).build().unwrap();
    pool.warm_up().await.unwrap();
    assert_eq!(pool.status().idle, 2);
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let _ = Object::take(a); // detached: the pool lost one
    drop(b);
    let pass = pool.maintain().await;
    assert_eq!(pass.created, 1);
    let s = pool.status();
    assert_eq!((s.idle, s.size, s.stats.detached), (2, 2, 1));
}

#[tokio::test(start_paused = true)]
async fn warm_up_reports_a_backend_that_is_down() {
    let (things, script) = Things::new();
    script.fail_all.store(true, Ordering::SeqCst);
    let pool = builder(things).min_idle(2).build().unwrap();
    assert!(matches!(pool.warm_up().await, Err(Error::Create(_))));
    let s = pool.status();
    assert_eq!((s.size, s.creating), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn background_maintenance_pre_warms_and_replaces_closed_objects() {
    let (things, _) = Things::new();
    let pool = builder(things)
        .max_size(4)
        .min_idle(2)
        .maintenance_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(pool.status().idle, 2, "pre-warmed by the first pass");
    let mut obj = pool.get().await.unwrap();
    obj.broken = true;
    drop(obj); // closed below min_idle: maintenance is kicked, not left for 60 s
    tokio::time::sleep(Duration::from_millis(1)).await;
    let s = pool.status();
    assert_eq!((s.idle, s.stats.closed.broken, s.stats.created), (2, 1, 3));
}

#[tokio::test(start_paused = true)]
async fn background_maintenance_stops_when_the_pool_is_dropped() {
    let (things, script) = Things::new();
    let pool = builder(things)
        .min_idle(1)
        .maintenance_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    drop(pool);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        script.dropped.load(Ordering::SeqCst),
        1,
        "the pool and its object are gone"
    );
    assert_eq!(script.creates.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_reaps_but_never_below_min_idle() {
    let (things, _) = Things::new();
    let pool = builder(things)
        .max_size(4)
        .min_idle(1)
        .idle_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let objs: Vec<_> = (0..3).map(|_| pool.get()).collect();
    let mut held = Vec::new();
    for f in objs {
        held.push(f.await.unwrap());
    }
    drop(held);
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(pool.maintain().await.closed, 0);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(pool.maintain().await.closed, 2);
    let s = pool.status();
    assert_eq!((s.idle, s.stats.closed.idle_timeout), (1, 2));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(pool.maintain().await.closed, 0, "min_idle is kept");
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_closes_objects_on_return_at_checkout_and_in_maintenance() {
    let (things, _) = Things::new();
    let pool = builder(things)
        .max_size(3)
        .max_lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let c = pool.get().await.unwrap();
    drop(b);
    drop(c);
    tokio::time::advance(Duration::from_secs(60)).await;
    drop(a); // on return
    assert_eq!(pool.status().stats.closed.expired, 1);
    let fresh = pool.get().await.unwrap(); // at checkout: the two idle ones are too old
    assert_eq!(fresh.id, 3);
    let s = pool.status();
    assert_eq!((s.stats.closed.expired, s.size), (3, 1));
    assert_eq!(s.stats.recycled, 0, "expired objects are not recycled");
    drop(fresh);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(pool.maintain().await.closed, 1); // in maintenance
    assert_eq!(pool.status().size, 0);
}

#[tokio::test(start_paused = true)]
async fn leaks_are_reported_once_with_their_location() {
    let (things, _) = Things::new();
    let pool = builder(things)
        .leak_threshold(Duration::from_secs(5))
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();
    let brief = pool.get().await.unwrap();
    drop(brief);
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(pool.maintain().await.leaks, 0);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(pool.maintain().await.leaks, 1);
    assert_eq!(pool.maintain().await.leaks, 0, "reported once");
    assert_eq!(pool.status().stats.leaks, 1);
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn close_wakes_waiters_and_closes_everything() {
    let (things, script) = Things::new();
    let pool = builder(things).max_size(2).build().unwrap();
    let held = pool.get().await.unwrap();
    drop(pool.get().await.unwrap()); // one idle
    let _other = pool.get().await.unwrap();
    let waiter = spawn_get(&pool);
    tokio::task::yield_now().await;
    pool.close();
    assert!(matches!(waiter.await.unwrap(), Err(Error::Closed)));
    assert!(matches!(pool.get().await, Err(Error::Closed)));
    assert!(pool.is_closed());
    drop(held);
    let s = pool.status();
    assert_eq!((s.size, s.stats.closed.pool_closed), (1, 1));
    assert_eq!(script.dropped.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn resize_shrinks_and_grows() {
    let (things, _) = Things::new();
    let pool = builder(things).max_size(3).build().unwrap();
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let c = pool.get().await.unwrap();
    drop(c);
    pool.resize(1).unwrap();
    assert_eq!(pool.status().size, 2, "the idle one closed at once");
    drop(a); // over the new size: closed on return
    let s = pool.status();
    assert_eq!((s.size, s.stats.closed.resized), (1, 2));
    let waiter = spawn_get(&pool);
    tokio::task::yield_now().await;
    assert_eq!(pool.status().waiters, 1);
    pool.resize(2).unwrap(); // growing serves the waiter with a new object
    assert_eq!(waiter.await.unwrap().unwrap(), 3);
    drop(b);
    assert!(pool.resize(0).is_err());
}

#[tokio::test(start_paused = true)]
async fn retain_closes_rejected_idle_objects() {
    let (things, _) = Things::new();
    let pool = builder(things).max_size(4).build().unwrap();
    let objs = (
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
    );
    drop(objs);
    assert_eq!(pool.retain(|t, _| t.id != 1), 1);
    let s = pool.status();
    assert_eq!((s.idle, s.stats.closed.retained), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn fifo_takes_the_longest_idle_and_lifo_the_latest() {
    for (mode, expected) in [(QueueMode::Fifo, 0), (QueueMode::Lifo, 2)] {
        let (things, _) = Things::new();
        let pool = builder(things)
            .max_size(3)
            .queue_mode(mode)
            .build()
            .unwrap();
        let objs = [
            pool.get().await.unwrap(),
            pool.get().await.unwrap(),
            pool.get().await.unwrap(),
        ];
        for o in objs {
            drop(o); // returned in order 0, 1, 2
        }
        assert_eq!(pool.get().await.unwrap().id, expected, "{mode:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn test_on_checkout_runs_recycle_only_when_on() {
    for (on, expected) in [(true, 2), (false, 0)] {
        let (things, script) = Things::new();
        let pool = builder(things).test_on_checkout(on).build().unwrap();
        drop(pool.get().await.unwrap());
        drop(pool.get().await.unwrap());
        drop(pool.get().await.unwrap());
        assert_eq!(script.recycles.load(Ordering::SeqCst), expected);
        assert_eq!(pool.status().stats.recycled, expected as u64);
    }
}

#[tokio::test(start_paused = true)]
async fn recycle_rejections_close_the_object_and_move_on() {
    let (things, _) = Things::new();
    let pool = builder(things).max_size(2).build().unwrap();
    let mut a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    a.stale = true;
    drop(a);
    drop(b);
    // FIFO: `a` comes first, is rejected, and `b` is taken.
    assert_eq!(pool.get().await.unwrap().id, 1);
    assert_eq!(pool.status().stats.closed.recycle_failed, 1);
}

#[tokio::test(start_paused = true)]
async fn has_broken_closes_on_return() {
    let (things, _) = Things::new();
    let pool = builder(things).build().unwrap();
    let mut a = pool.get().await.unwrap();
    a.broken = true;
    drop(a);
    let s = pool.status();
    assert_eq!((s.size, s.stats.closed.broken), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn hooks_run_and_can_reject() {
    let (things, _) = Things::new();
    let pool = builder(things)
        .post_create(|t, _| {
            t.tag = 7;
            Ok(())
        })
        .pre_recycle(|t, _| {
            if t.tag == 99 {
                Err(HookError::new("tagged 99"))
            } else {
                Ok(())
            }
        })
        .post_recycle(|t, m| {
            t.tag += 1;
            assert!(m.recycle_count < 10);
            Ok(())
        })
        .build()
        .unwrap();
    let mut a = pool.get().await.unwrap();
    assert_eq!(a.tag, 7);
    drop(pool.get().await.unwrap()); // a second object, idle
    a.tag = 99;
    drop(a);
    // FIFO: object 1 (idle longest) comes first, passes, and post_recycle bumps its tag.
    let b = pool.get().await.unwrap();
    assert_eq!((b.id, b.tag), (1, 8));
    assert_eq!(Object::metrics(&b).recycle_count, 1);
    drop(b);
    // Object 0 (tag 99) is next in line and is rejected by pre_recycle.
    let c = pool.get().await.unwrap();
    assert_eq!(c.id, 1);
    assert_eq!(pool.status().stats.closed.recycle_failed, 1);

    let (things, _) = Things::new();
    let rejecting = builder(things)
        .post_create(|_, _| Err(HookError::new("no")))
        .build()
        .unwrap();
    let err = rejecting.get().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Hook {
                kind: HookKind::PostCreate,
                ..
            }
        ),
        "{err:?}"
    );
    let s = rejecting.status();
    assert_eq!((s.size, s.creating, s.stats.create_failures), (0, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn expired_waiters_are_released_by_maintenance() {
    let (things, _) = Things::new();
    let pool = builder(things)
        .max_size(1)
        .wait_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let _held = pool.get().await.unwrap();
    let mut waiter = Box::pin(pool.get());
    assert!(poll_once(waiter.as_mut()).is_pending());
    // Time passes without the waiter's own timer being polled (its task is starved).
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(pool.maintain().await.expired_waiters, 1);
    assert!(matches!(
        poll_once(waiter.as_mut()),
        Poll::Ready(Err(Error::Timeout(TimeoutKind::Wait)))
    ));
}

#[test]
fn without_a_timer_timeouts_are_reported_not_ignored() {
    let (things, _) = Things::new();
    // Built outside any runtime: no timer.
    let pool = Pool::builder(things)
        .max_size(1)
        .wait_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let _held = pool.get().await.unwrap();
        assert!(matches!(pool.get().await, Err(Error::NoTimer)));
    });
}

#[tokio::test(start_paused = true)]
async fn objects_made_elsewhere_can_be_added() {
    let (things, script) = Things::new();
    let pool = builder(things.clone()).max_size(2).build().unwrap();
    let waiter = {
        let pool = pool.clone();
        let _a = pool.get().await.unwrap();
        let _b = pool.get().await.unwrap();
        let w = spawn_get(&pool);
        tokio::task::yield_now().await;
        w
    }; // both returned: the waiter took one
    assert!(waiter.await.unwrap().is_ok());
    pool.resize(3).unwrap();
    let made = weft_pool::Manager::create(&things).await.unwrap();
    let id = made.id;
    pool.add(made).unwrap();
    let extra = weft_pool::Manager::create(&things).await.unwrap();
    let refused = pool.add(extra).unwrap_err();
    assert!(matches!(refused, weft_pool::AddError::Full(_)));
    assert_eq!(refused.into_inner().id, id + 1, "the object is handed back");
    let s = pool.status();
    check(&s);
    assert_eq!((s.size, s.idle), (3, 3));
    pool.close();
    let extra = weft_pool::Manager::create(&things).await.unwrap();
    assert!(matches!(
        pool.add(extra),
        Err(weft_pool::AddError::Closed(_))
    ));
    assert_eq!(script.creates.load(Ordering::SeqCst), 5);
}

/// bb8 #167: when every returned object is broken, waiters must still be served (by new
/// objects), not time out.
#[tokio::test(start_paused = true)]
async fn waiters_are_served_when_every_object_breaks() {
    let (things, script) = Things::new();
    let pool = builder(things)
        .max_size(5)
        .wait_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut obj = pool.get().await?;
                tokio::task::yield_now().await;
                obj.broken = true;
                Ok::<_, Error<common::Down>>(())
            })
        })
        .collect();
    let start = Instant::now();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "nobody waited for a timeout"
    );
    let s = pool.status();
    assert_eq!(
        (s.size, s.stats.closed.broken, s.stats.created),
        (0, 10, 10)
    );
    assert_eq!(script.creates.load(Ordering::SeqCst), 10);
}
