//! The blocking API with a `ManualClock`: threads, deadlines, reaping, leaks, and a
//! conservation stress test.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Things, check};
use weft_pool::{Error, Pool, TimeoutKind};
use weft_time::{Backoff, ManualClock};

/// Checkouts per thread in the stress test.
const ROUNDS: usize = 2_000;

fn no_retries() -> weft_time::BackoffPolicy {
    Backoff::constant(Duration::ZERO)
        .max_retries(0)
        .build()
        .unwrap()
}

/// Waits (yielding) until `cond` holds: for a thread to reach a state, never for time.
fn until(cond: impl Fn() -> bool) {
    while !cond() {
        std::thread::yield_now();
    }
}

#[test]
fn blocked_threads_are_served_in_order() {
    let (things, _) = Things::new();
    let pool = Pool::builder(things).max_size(1).build().unwrap();
    let held = pool.get_blocking().unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for i in 0..3 {
        let (pool2, order) = (pool.clone(), Arc::clone(&order));
        threads.push(std::thread::spawn(move || {
            let obj = pool2.get_blocking().unwrap();
            order.lock().unwrap().push(i);
            drop(obj);
        }));
        until(|| pool.status().waiters == i + 1);
    }
    drop(held);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
    let s = pool.status();
    check(&s);
    assert_eq!((s.size, s.stats.gets_waited), (1, 3));
}

#[test]
fn a_blocked_thread_times_out_on_the_pool_clock() {
    let (things, _) = Things::new();
    let clock = ManualClock::new();
    let pool = Pool::builder(things)
        .max_size(1)
        .clock(clock.clone())
        .wait_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let _held = pool.get_blocking().unwrap();
    let waiter = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.get_blocking().map(|o| o.id))
    };
    until(|| pool.status().waiters == 1);
    clock.advance(Duration::from_secs(4));
    assert_eq!(pool.maintain_blocking().expired_waiters, 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(pool.maintain_blocking().expired_waiters, 1);
    let err = waiter.join().unwrap().unwrap_err();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Wait)), "{err:?}");
    let s = pool.status();
    assert_eq!((s.waiters, s.stats.gets_timed_out), (0, 1));
}

#[test]
fn a_zero_wait_timeout_fails_at_once() {
    let (things, _) = Things::new();
    let pool = Pool::builder(things)
        .max_size(1)
        .wait_timeout(Duration::ZERO)
        .build()
        .unwrap();
    let _held = pool.get_blocking().unwrap();
    assert!(matches!(
        pool.get_blocking(),
        Err(Error::Timeout(TimeoutKind::Wait))
    ));
    assert!(matches!(
        pool.try_get_blocking(),
        Err(Error::Exhausted { .. })
    ));
}

#[test]
fn blocking_creation_retries_then_reports() {
    let (things, script) = Things::new();
    script.fail_next.store(2, Ordering::SeqCst);
    let policy = Backoff::constant(Duration::ZERO)
        .max_retries(2)
        .build()
        .unwrap();
    let pool = Pool::builder(things)
        .create_retries(policy)
        .build()
        .unwrap();
    assert_eq!(pool.get_blocking().unwrap().id, 2);
    script.fail_all.store(true, Ordering::SeqCst);
    drop(pool.get_blocking().unwrap()); // the idle one: no creation needed
    let a = pool.get_blocking().unwrap();
    let err = pool.get_blocking().unwrap_err();
    assert!(matches!(err, Error::Create(_)), "{err:?}");
    drop(a);
    assert_eq!(pool.status().stats.create_failures, 2 + 3);
}

#[test]
fn warm_up_and_maintenance_keep_min_idle() {
    let (things, _) = Things::new();
    let clock = ManualClock::new();
    let pool = Pool::builder(things)
        .clock(clock.clone())
        .max_size(5)
        .min_idle(2)
        .idle_timeout(Duration::from_secs(60))
        .max_lifetime(Duration::from_secs(600))
        .create_retries(no_retries())
        .build()
        .unwrap();
    pool.warm_up_blocking().unwrap();
    assert_eq!(pool.status().idle, 2);
    let held: Vec<_> = (0..4).map(|_| pool.get_blocking().unwrap()).collect();
    drop(held);
    assert_eq!(pool.status().idle, 4);
    clock.advance(Duration::from_secs(60));
    let pass = pool.maintain_blocking();
    assert_eq!((pass.closed, pass.created), (2, 0));
    assert_eq!(pool.status().idle, 2, "idle reaping stops at min_idle");
    clock.advance(Duration::from_secs(600));
    let pass = pool.maintain_blocking();
    assert_eq!(
        (pass.closed, pass.created),
        (2, 2),
        "expired ones are replaced"
    );
    let s = pool.status();
    assert_eq!(
        (s.idle, s.stats.closed.expired, s.stats.closed.idle_timeout),
        (2, 2, 2)
    );
}

#[test]
fn leak_detection_on_the_manual_clock() {
    let (things, _) = Things::new();
    let clock = ManualClock::new();
    let pool = Pool::builder(things)
        .clock(clock.clone())
        .leak_threshold(Duration::from_secs(30))
        .build()
        .unwrap();
    let held = pool.get_blocking().unwrap();
    clock.advance(Duration::from_secs(31));
    let fresh = pool.get_blocking().unwrap();
    assert_eq!(pool.maintain_blocking().leaks, 1, "only the old checkout");
    drop(held);
    clock.advance(Duration::from_secs(31));
    assert_eq!(pool.maintain_blocking().leaks, 1, "now the second one");
    drop(fresh);
    clock.advance(Duration::from_secs(31));
    assert_eq!(
        pool.maintain_blocking().leaks,
        0,
        "returned checkouts are forgotten"
    );
    assert_eq!(pool.status().stats.leaks, 2);
}

#[test]
fn close_releases_blocked_threads() {
    let (things, _) = Things::new();
    let pool = Pool::builder(things).max_size(1).build().unwrap();
    let _held = pool.get_blocking().unwrap();
    let waiter = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.get_blocking().map(|o| o.id))
    };
    until(|| pool.status().waiters == 1);
    pool.close();
    assert!(matches!(waiter.join().unwrap(), Err(Error::Closed)));
}

/// Four threads hammer a pool of 3: never more than 3 objects in use at once, every
/// checkout returns, and the books balance at the end.
#[test]
fn threads_never_exceed_max_size_and_lose_nothing() {
    let (things, script) = Things::new();
    let pool = Pool::builder(things).max_size(3).build().unwrap();
    let in_use = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..4 {
            let (pool, in_use, peak) = (&pool, &in_use, &peak);
            s.spawn(move || {
                for i in 0..ROUNDS {
                    let mut obj = pool.get_blocking().unwrap();
                    let now = in_use.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    if (i + t) % 97 == 0 {
                        obj.broken = true; // closed on return, replaced later
                    }
                    in_use.fetch_sub(1, Ordering::SeqCst);
                    drop(obj);
                }
            });
        }
    });
    assert!(peak.load(Ordering::SeqCst) <= 3);
    let s = pool.status();
    check(&s);
    assert_eq!((s.in_use, s.waiters, s.creating), (0, 0, 0));
    assert_eq!(s.stats.gets_direct + s.stats.gets_waited, 4 * ROUNDS as u64);
    // Every object created is either still in the pool or was closed (and dropped).
    let created = script.creates.load(Ordering::SeqCst);
    let dropped = script.dropped.load(Ordering::SeqCst);
    assert_eq!(created, s.size + dropped);
    assert_eq!(s.stats.closed.total() as usize, dropped);
}

/// Collects the `location` field of every event, to check what leak reports say.
#[derive(Default)]
struct Locations(std::sync::Mutex<Vec<String>>);

impl tracing::field::Visit for &Locations {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "location" {
            self.0.lock().unwrap().push(format!("{value:?}"));
        }
    }
}

impl tracing::Subscriber for Locations {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut visitor = self;
        event.record(&mut visitor);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_leak_report_names_the_line_that_took_the_object() {
    let (things, _) = Things::new();
    let clock = ManualClock::new();
    let pool = Pool::builder(things)
        .clock(clock.clone())
        .leak_threshold(Duration::from_secs(1))
        .build()
        .unwrap();
    let line = line!() + 1;
    let held = pool.get_blocking().unwrap();
    clock.advance(Duration::from_secs(1));
    let seen = Arc::new(Locations::default());
    tracing::subscriber::with_default(Arc::clone(&seen), || {
        assert_eq!(pool.maintain_blocking().leaks, 1);
    });
    let seen = seen.0.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].contains(&format!("tests/blocking.rs:{line}:")),
        "the report points at the checkout: {seen:?}"
    );
    drop(held);
}
