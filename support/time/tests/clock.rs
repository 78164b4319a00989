//! Integration tests of `Clock`, `SystemClock` and `ManualClock`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use weft_time::{Clock, Error, ManualClock, SystemClock};

/// Elapsed time on any clock, through the trait only (as a Weft primitive would read it).
fn since<C: Clock + ?Sized>(clock: &C, start: Instant) -> Duration {
    clock.now().duration_since(start)
}

#[test]
fn public_types_are_thread_safe() {
    fn assert_thread_safe<T: Send + Sync + Unpin + std::fmt::Debug + 'static>() {}
    assert_thread_safe::<ManualClock>();
    assert_thread_safe::<SystemClock>();
}

#[test]
fn system_clock_reads_real_time() {
    let clock = SystemClock;
    let a = clock.now();
    let b = clock.now();
    assert!(b >= a);
    let wall = clock.system_now();
    let real = SystemTime::now();
    let skew = real.duration_since(wall).unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_secs(60), "skew {skew:?}");
    assert!(wall.duration_since(UNIX_EPOCH).unwrap() > Duration::from_secs(1_600_000_000));
    // Default is what `#[derive(Default)]`-based configs of Weft primitives rely on.
    fn default_of<T: Default>() -> T {
        T::default()
    }
    assert_eq!(default_of::<SystemClock>(), SystemClock::new());
}

#[test]
fn manual_clock_stands_still_until_advanced() {
    let clock = ManualClock::new();
    let (t0, w0) = (clock.now(), clock.system_now());
    assert_eq!(clock.now(), t0);
    assert_eq!(clock.system_now(), w0);
    clock.advance(Duration::from_millis(10));
    assert_eq!(since(&clock, t0), Duration::from_millis(10));
    assert_eq!(
        clock.system_now().duration_since(w0).unwrap(),
        Duration::from_millis(10)
    );
}

#[test]
fn manual_clock_starting_at_a_fixed_wall_time() {
    let start = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let clock = ManualClock::starting_at(start);
    assert_eq!(clock.system_now(), start);
    clock.set_elapsed(Duration::from_secs(5)).unwrap();
    assert_eq!(clock.system_now(), start + Duration::from_secs(5));
}

#[test]
fn default_manual_clock_starts_at_zero_elapsed() {
    let clock = ManualClock::default();
    assert_eq!(clock.elapsed(), Duration::ZERO);
}

#[test]
fn clock_is_shareable_through_arc_box_and_static_refs() {
    static SYSTEM: SystemClock = SystemClock::new();
    let manual = ManualClock::new();
    let t0 = manual.now();

    let shared: Arc<dyn Clock> = Arc::new(manual.clone());
    let boxed: Box<dyn Clock> = Box::new(manual.clone());
    let arc_concrete = Arc::new(manual.clone());
    let by_ref: &'static SystemClock = &SYSTEM;

    manual.advance(Duration::from_secs(4));
    assert_eq!(since(&shared, t0), Duration::from_secs(4));
    assert_eq!(since(&boxed, t0), Duration::from_secs(4));
    assert_eq!(since(&arc_concrete, t0), Duration::from_secs(4));
    assert_eq!(since(&*shared, t0), Duration::from_secs(4));
    // `&'static C` is itself a `Clock` (can be stored by value in a generic primitive).
    fn takes_clock<C: Clock>(c: C) -> Instant {
        c.now()
    }
    let _ = takes_clock(by_ref);
}

#[test]
fn set_elapsed_backwards_is_an_error_with_an_actionable_message() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(3));
    let err = clock.set_elapsed(Duration::from_secs(1)).unwrap_err();
    assert_eq!(
        err,
        Error::ClockWentBackwards {
            current: Duration::from_secs(3),
            requested: Duration::from_secs(1)
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("cannot go backwards"), "{msg}");
    assert!(msg.contains("3s") && msg.contains("1s"), "{msg}");
    assert_eq!(clock.elapsed(), Duration::from_secs(3));
}

#[test]
fn concurrent_advances_are_all_counted() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 10_000;
    let clock = ManualClock::new();
    let t0 = clock.now();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let clock = clock.clone();
            s.spawn(move || {
                for _ in 0..PER_THREAD {
                    clock.advance(Duration::from_nanos(3));
                }
            });
        }
        // A reader racing the writers never sees time go backwards.
        let reader = clock.clone();
        s.spawn(move || {
            let mut last = reader.now();
            for _ in 0..PER_THREAD {
                let now = reader.now();
                assert!(now >= last);
                last = now;
            }
        });
    });
    let expected = Duration::from_nanos(3 * THREADS * PER_THREAD);
    assert_eq!(clock.elapsed(), expected);
    assert_eq!(clock.now() - t0, expected);
}

#[test]
fn racing_set_elapsed_never_undoes_an_advance() {
    let clock = ManualClock::new();
    std::thread::scope(|s| {
        let a = clock.clone();
        s.spawn(move || {
            for _ in 0..1_000 {
                a.advance(Duration::from_micros(1));
            }
        });
        let b = clock.clone();
        s.spawn(move || {
            for i in 0..1_000u64 {
                // May fail when the advancing thread is ahead; must never move time back.
                let _ = b.set_elapsed(Duration::from_nanos(i));
            }
        });
    });
    assert!(clock.elapsed() >= Duration::from_micros(1_000));
}

#[derive(Debug, Clone)]
enum Op {
    Advance(Duration),
    Set(Duration),
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..=10_000_000_000).prop_map(Duration::from_nanos),
        any::<u64>().prop_map(Duration::from_nanos),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        Just(Duration::MAX),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any_duration().prop_map(Op::Advance),
        1 => any_duration().prop_map(Op::Set),
    ]
}

proptest! {
    /// Under any sequence of advances and set_elapsed calls, both readings never decrease,
    /// move by the same amount, and match a saturating model of the elapsed time.
    #[test]
    fn manual_clock_is_monotonic_under_any_sequence(ops in prop::collection::vec(op(), 0..40)) {
        let clock = ManualClock::new();
        let (t0, w0) = (clock.now(), clock.system_now());
        let max = clock.max_elapsed().as_nanos();
        let mut model: u128 = 0;
        let (mut last, mut last_wall) = (t0, w0);
        for op in ops {
            match op {
                Op::Advance(d) => {
                    clock.advance(d);
                    model = (model + d.as_nanos()).min(max);
                }
                Op::Set(d) => {
                    let target = d.as_nanos().min(max);
                    let result = clock.set_elapsed(d);
                    if target < model {
                        let is_backwards = matches!(result, Err(Error::ClockWentBackwards { .. }));
                        prop_assert!(is_backwards);
                    } else {
                        prop_assert!(result.is_ok());
                        model = target;
                    }
                }
            }
            let (now, wall) = (clock.now(), clock.system_now());
            prop_assert!(now >= last);
            prop_assert!(wall >= last_wall);
            prop_assert_eq!(clock.elapsed().as_nanos(), model);
            prop_assert_eq!(now - t0, clock.elapsed());
            prop_assert_eq!(wall.duration_since(w0).unwrap(), clock.elapsed());
            last = now;
            last_wall = wall;
        }
    }
}
