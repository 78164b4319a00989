//! Loom models of `weft-circuitbreaker`: half-open permits are exact, the open-timeout
//! expiry racing calls loses or doubles no transition, and the window conserves calls.
#![cfg(loom)]

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use weft_circuitbreaker::{CircuitBreaker, SlidingWindow, State};
use weft_time::ManualClock;

/// A breaker opened by two failures, with its open period already over.
fn expired_open(permits: u32) -> (Arc<CircuitBreaker<ManualClock>>, ManualClock) {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .sliding_window(SlidingWindow::count(2))
        .minimum_calls(2)
        .half_open_permits(permits)
        .open_for(Duration::from_secs(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = b.call(|| Err::<(), _>(()));
    let _ = b.call(|| Err::<(), _>(()));
    assert_eq!(b.state(), State::Open);
    clock.advance(Duration::from_secs(1));
    (Arc::new(b), clock)
}

/// Takes a permit and keeps it (neither settled nor returned); whether it was a trial.
fn holds_trial(b: &CircuitBreaker<ManualClock>) -> bool {
    match b.try_acquire() {
        Ok(permit) => {
            let trial = permit.is_trial();
            std::mem::forget(permit);
            trial
        }
        Err(_) => false,
    }
}

/// Two callers race the expiry of the open period with one trial permit: exactly one
/// Open→HalfOpen transition happens, exactly one caller gets the permit, the other is
/// refused.
#[test]
fn open_expiry_races_calls() {
    loom::model(|| {
        let (b, _clock) = expired_open(1);
        let t = {
            let b = Arc::clone(&b);
            thread::spawn(move || holds_trial(&b))
        };
        let mine = holds_trial(&b);
        let theirs = t.join().unwrap();
        assert!(mine ^ theirs, "exactly one trial permit");
        // Closed→Open, then exactly one Open→HalfOpen.
        assert_eq!(b.metrics().transitions, 2);
        assert_eq!(b.state(), State::HalfOpen);
    });
}

/// Three callers in half-open with two permits: exactly two get one; a trial that is
/// cancelled gives its permit back.
#[test]
fn exactly_n_half_open_permits() {
    loom::model(|| {
        let (b, _clock) = expired_open(2);
        // Enter half-open first, so the model explores the permit CAS itself.
        drop(b.try_acquire().unwrap()); // a cancelled trial: permit returned
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let b = Arc::clone(&b);
                thread::spawn(move || holds_trial(&b))
            })
            .collect();
        let mine = holds_trial(&b);
        let total = usize::from(mine)
            + threads
                .into_iter()
                .map(|t| usize::from(t.join().unwrap()))
                .sum::<usize>();
        assert_eq!(total, 2);
    });
}

/// Two threads record into one count window: with room for both, it holds exactly the
/// two calls and the one failure; with room for one, both calls land in the same slot
/// and the totals still count exactly one call (the evicted outcome is subtracted by the
/// call that evicts it, whatever the interleaving).
#[test]
fn window_conserves_calls() {
    loom::model(|| {
        let m = race_one_failure_one_success(4, 4);
        assert_eq!((m.calls, m.failed_in_window), (2, 1));
    });
    loom::model(|| {
        let m = race_one_failure_one_success(1, 2);
        assert_eq!(m.calls, 1);
        assert!(m.failed_in_window <= 1);
    });
}

/// A failing call on another thread races a succeeding one here, through a count window
/// of `size` calls; the window's metrics afterwards.
fn race_one_failure_one_success(size: u32, minimum: u32) -> weft_circuitbreaker::Metrics {
    let b = Arc::new(
        CircuitBreaker::builder()
            .sliding_window(SlidingWindow::count(size))
            .minimum_calls(minimum)
            .clock(ManualClock::new())
            .build()
            .unwrap(),
    );
    let t = {
        let b = Arc::clone(&b);
        thread::spawn(move || {
            let _ = b.call(|| Err::<(), _>(()));
        })
    };
    let _ = b.call(|| Ok::<_, ()>(()));
    t.join().unwrap();
    b.metrics()
}
