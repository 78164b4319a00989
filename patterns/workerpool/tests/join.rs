//! Fork/join (`ThreadPool::join`) and `install`: results, borrowing, panics, calls from
//! outside the pool, other pools' workers, and shutdowns racing fork/join work.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use weft_workerpool::ThreadPool;

/// A generous bound for waits that only guard against a hung test.
const HANG: Duration = Duration::from_secs(30);

fn pool(threads: usize) -> ThreadPool {
    ThreadPool::builder()
        .min_threads(threads)
        .max_threads(threads)
        .build()
        .unwrap()
}

/// Sums `v` by splitting it in halves down to `leaf` values, counting the leaves.
fn sum(pool: &ThreadPool, v: &[u64], leaf: usize, leaves: &AtomicUsize) -> u64 {
    if v.len() <= leaf {
        leaves.fetch_add(1, Ordering::Relaxed);
        return v.iter().sum();
    }
    let (l, r) = v.split_at(v.len() / 2);
    let (a, b) = pool.join(|| sum(pool, l, leaf, leaves), || sum(pool, r, leaf, leaves));
    a + b
}

#[test]
fn recursive_join_computes_every_leaf_once() {
    for threads in [1, 2, 4] {
        let pool = pool(threads);
        let v: Vec<u64> = (0..1 << 16).collect();
        for leaf in [1usize, 7, 64, 1 << 16] {
            let leaves = AtomicUsize::new(0);
            let total = pool.install(|| sum(&pool, &v, leaf, &leaves));
            assert_eq!(
                total,
                (1u64 << 16) * ((1 << 16) - 1) / 2,
                "{threads} threads"
            );
            let expected = v.len().div_ceil(leaf).next_power_of_two().min(v.len());
            assert_eq!(leaves.load(Ordering::Relaxed), expected, "leaf {leaf}");
        }
        assert_eq!(pool.status().panicked, 0);
    }
}

#[test]
fn join_borrows_mutably_from_the_caller() {
    let pool = pool(2);
    let mut left = vec![0u32; 100];
    let mut right = vec![0u32; 100];
    pool.install(|| {
        pool.join(
            || left.iter_mut().for_each(|x| *x += 1),
            || right.iter_mut().for_each(|x| *x += 2),
        )
    });
    assert!(left.iter().all(|&x| x == 1) && right.iter().all(|&x| x == 2));
}

#[test]
fn join_from_outside_the_pool_runs_both_halves() {
    let pool = pool(2);
    let caller = std::thread::current().id();
    let (a, b) = pool.join(|| std::thread::current().id(), || 40 + 2);
    assert_eq!((a, b), (caller, 42), "`a` runs on the calling thread");
}

#[test]
fn join_on_another_pools_worker_goes_through_this_pool() {
    let outer = pool(1);
    let inner = pool(2);
    let (a, b) = outer.install(|| inner.join(|| 1, || 2));
    assert_eq!((a, b), (1, 2));
}

#[test]
fn a_panic_in_either_half_resumes_after_both_finished() {
    let pool = pool(2);
    for panicking_half in [0, 1] {
        let finished = AtomicUsize::new(0);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            pool.install(|| {
                pool.join(
                    || {
                        finished.fetch_add(1, Ordering::SeqCst);
                        assert!(panicking_half != 0, "a failed");
                    },
                    || {
                        finished.fetch_add(1, Ordering::SeqCst);
                        assert!(panicking_half != 1, "b failed");
                    },
                )
            })
        }));
        let message = caught.expect_err("the panic resumes in the caller");
        let message = message
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| message.downcast_ref::<String>().map(String::as_str));
        let expected = if panicking_half == 0 {
            "a failed"
        } else {
            "b failed"
        };
        assert_eq!(message, Some(expected));
        assert_eq!(finished.load(Ordering::SeqCst), 2, "both halves ran");
    }
    // The workers survived.
    assert_eq!(pool.install(|| pool.join(|| 1, || 2)), (1, 2));
    assert_eq!(pool.status().threads, 2);
}

/// Waits (yielding, bounded by `HANG`) until `n` workers of `pool` are parked.
fn wait_idle(pool: &ThreadPool, n: usize) {
    let start = std::time::Instant::now();
    while pool.status().idle < n {
        assert!(start.elapsed() < HANG, "workers never parked");
        std::thread::yield_now();
    }
}

#[test]
fn a_fork_wakes_a_parked_worker_to_steal_it() {
    let pool = pool(2);
    wait_idle(&pool, 2);
    // `install` wakes one worker; the other stays parked, and the fork must wake it:
    // `a` waits until `b` has run, which, if nobody stole `b`, takes the whole `HANG`
    // (then `b` runs inline and the assertion below fails).
    let (tx, rx) = mpsc::channel();
    let pool = &pool;
    let (ra, ()) = pool.install(move || {
        pool.join(
            move || rx.recv_timeout(HANG).is_ok(),
            move || tx.send(()).unwrap(),
        )
    });
    assert!(ra, "the fork was stolen and run by the parked worker");
    assert!(pool.status().steals >= 1);
}

#[test]
fn install_from_a_worker_or_after_shutdown_runs_inline() {
    let pool = pool(1);
    let worker = pool.install(|| std::thread::current().id());
    assert_ne!(worker, std::thread::current().id());
    assert_eq!(
        pool.install(|| pool.install(|| std::thread::current().id())),
        worker
    );
    assert!(pool.shutdown(Some(HANG)).completed);
    assert_eq!(
        pool.install(|| std::thread::current().id()),
        std::thread::current().id()
    );
}

#[test]
fn immediate_shutdown_never_cancels_fork_join_work() {
    let pool = std::sync::Arc::new(pool(2));
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let p = std::sync::Arc::clone(&pool);
    let caller = std::thread::spawn(move || {
        let p = &p;
        p.install(move || {
            p.join(
                move || {
                    started_tx.send(()).unwrap();
                    go_rx.recv_timeout(HANG).unwrap();
                    1
                },
                || 2,
            )
        })
    });
    started_rx.recv_timeout(HANG).unwrap();
    // Shut down while the join is in flight, then let it finish.
    let stopper = {
        let p = std::sync::Arc::clone(&pool);
        std::thread::spawn(move || p.shutdown_now(Some(HANG)))
    };
    go_tx.send(()).unwrap();
    assert_eq!(caller.join().unwrap(), (1, 2));
    assert!(stopper.join().unwrap().completed);
}
