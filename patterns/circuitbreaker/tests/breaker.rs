//! The circuit breaker against a reference model, and every transition one by one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use weft_circuitbreaker::{
    CallError, CircuitBreaker, ConfigError, Outcome, SlidingWindow, State, Transition,
};
use weft_time::{Backoff, ManualClock};

const WINDOW: usize = 6;
const MIN_CALLS: usize = 4;
const PERMITS: u32 = 2;
const OPEN: Duration = Duration::from_secs(10);
const SLOW: Duration = Duration::from_millis(100);

fn breaker(clock: &ManualClock) -> CircuitBreaker<ManualClock> {
    CircuitBreaker::builder()
        .sliding_window(SlidingWindow::count(WINDOW as u32))
        .minimum_calls(MIN_CALLS as u32)
        .failure_rate_threshold(0.5)
        .slow_calls(SLOW, 0.75)
        .half_open_permits(PERMITS)
        .open_for(OPEN)
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// The spec, written as plainly as possible: single-threaded, every call finishes before
/// the next starts.
#[derive(Debug)]
struct Model {
    state: State,
    window: std::collections::VecDeque<(bool, bool)>,
    open_until: Duration,
    trials: Vec<(bool, bool)>,
    now: Duration,
}

impl Model {
    fn trips(calls: &[(bool, bool)]) -> bool {
        let n = calls.len() as f64;
        let failed = calls.iter().filter(|c| c.0).count() as f64;
        let slow = calls.iter().filter(|c| c.1).count() as f64;
        failed / n >= 0.5 || slow / n >= 0.75
    }

    /// Returns whether the call was admitted.
    fn call(&mut self, outcome: Outcome, took: Duration) -> bool {
        if self.state == State::Open {
            if self.now < self.open_until {
                return false;
            }
            self.state = State::HalfOpen;
            self.trials.clear();
        }
        self.now += took;
        let slow = took > SLOW;
        let failed = outcome == Outcome::Failure;
        if outcome == Outcome::Ignored {
            return true;
        }
        match self.state {
            State::Closed => {
                self.window.push_back((failed, slow));
                if self.window.len() > WINDOW {
                    self.window.pop_front();
                }
                let calls: Vec<_> = self.window.iter().copied().collect();
                if calls.len() >= MIN_CALLS && Self::trips(&calls) {
                    self.state = State::Open;
                    self.open_until = self.now + OPEN;
                }
            }
            State::HalfOpen => {
                self.trials.push((failed, slow));
                if self.trials.len() == PERMITS as usize {
                    if Self::trips(&self.trials) {
                        self.state = State::Open;
                        self.open_until = self.now + OPEN;
                    } else {
                        self.state = State::Closed;
                        self.window.clear();
                    }
                }
            }
            _ => unreachable!(),
        }
        true
    }
}

#[derive(Debug, Clone)]
enum Op {
    Call(Outcome, u64),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        3 => Just(Outcome::Success),
        3 => Just(Outcome::Failure),
        1 => Just(Outcome::Ignored),
    ];
    prop_oneof![
        4 => (outcome, prop_oneof![Just(10u64), Just(150)]).prop_map(|(o, ms)| Op::Call(o, ms)),
        1 => (0u64..15_000).prop_map(Op::Advance),
    ]
}

proptest! {
    /// Any sequence of calls (succeeding, failing, ignored; fast or slow) and clock moves
    /// leaves the breaker in the state the reference model is in, admitting exactly the
    /// calls the model admits.
    #[test]
    fn matches_reference_model(ops in proptest::collection::vec(op(), 1..150)) {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        let mut model = Model {
            state: State::Closed,
            window: Default::default(),
            open_until: Duration::ZERO,
            trials: Vec::new(),
            now: Duration::ZERO,
        };
        for op in ops {
            match op {
                Op::Advance(ms) => {
                    clock.advance(Duration::from_millis(ms));
                    model.now += Duration::from_millis(ms);
                }
                Op::Call(outcome, ms) => {
                    let took = Duration::from_millis(ms);
                    let admitted = match b.try_acquire() {
                        Ok(permit) => {
                            clock.advance(took);
                            permit.record(outcome);
                            true
                        }
                        Err(_) => false,
                    };
                    prop_assert_eq!(admitted, model.call(outcome, took));
                }
            }
            prop_assert_eq!(b.state(), model.state);
        }
    }
}

#[test]
fn opens_on_failure_rate_only_after_minimum_calls() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    for _ in 0..3 {
        let _ = b.call(|| Err::<(), _>("boom"));
    }
    assert_eq!(b.state(), State::Closed, "3 calls < minimum of 4");
    let _ = b.call(|| Ok::<_, ()>(()));
    assert_eq!(
        b.state(),
        State::Open,
        "3 of 4 failed, and the success reached the minimum"
    );
    let m = b.metrics();
    assert_eq!((m.calls, m.failed_in_window), (4, 3));
}

#[test]
fn opens_on_slow_call_rate() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    for _ in 0..4 {
        let permit = b.try_acquire().unwrap();
        clock.advance(Duration::from_millis(150));
        permit.success();
    }
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.metrics().slow, 4);
}

#[test]
fn ignored_outcomes_do_not_count() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    for _ in 0..10 {
        let r = b.call_classified(|_: &Result<(), &str>| Outcome::Ignored, || Err("404"));
        assert!(matches!(r, Err(CallError::Inner("404"))));
    }
    let m = b.metrics();
    assert_eq!((m.state, m.calls, m.ignored), (State::Closed, 0, 10));
}

#[test]
fn open_refuses_then_half_open_probes_then_closes() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    for _ in 0..4 {
        let _ = b.call(|| Err::<(), _>(()));
    }
    let refused = b.try_acquire().unwrap_err();
    assert_eq!(refused.state(), State::Open);
    assert_eq!(refused.retry_after(), Some(OPEN));
    clock.advance(OPEN);
    // Exactly PERMITS trials are let through at once.
    let t1 = b.try_acquire().unwrap();
    let t2 = b.try_acquire().unwrap();
    assert!(t1.is_trial() && t2.is_trial());
    assert_eq!(b.try_acquire().unwrap_err().state(), State::HalfOpen);
    t1.success();
    assert_eq!(b.state(), State::HalfOpen);
    t2.success();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics().calls, 0, "the window starts afresh");
}

#[test]
fn failed_trials_reopen() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    for _ in 0..4 {
        let _ = b.call(|| Err::<(), _>(()));
    }
    clock.advance(OPEN);
    b.try_acquire().unwrap().failure();
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), State::Open, "1 of 2 trials failed: 50% reopens");
}

#[test]
fn cancelled_trial_gives_its_permit_back() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    for _ in 0..4 {
        let _ = b.call(|| Err::<(), _>(()));
    }
    clock.advance(OPEN);
    let t1 = b.try_acquire().unwrap();
    let t2 = b.try_acquire().unwrap();
    drop(t2); // cancelled: no outcome, permit returned
    assert_eq!(b.metrics().half_open_permits, 1);
    let t3 = b.try_acquire().unwrap();
    t1.success();
    t3.success();
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test]
async fn dropped_future_cancels_its_trial() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    for _ in 0..4 {
        let _ = b.call(|| Err::<(), _>(()));
    }
    clock.advance(OPEN);
    {
        let pending = b.call_async(std::future::pending::<Result<(), ()>>());
        let polled = tokio::time::timeout(Duration::from_millis(1), pending).await;
        assert!(polled.is_err());
    }
    assert_eq!(b.metrics().half_open_permits, PERMITS);
    assert_eq!(b.call_async(async { Ok::<_, ()>(7) }).await.unwrap(), 7);
}

#[test]
fn forced_states() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    b.transition_to(State::ForcedOpen);
    assert_eq!(b.try_acquire().unwrap_err().state(), State::ForcedOpen);
    clock.advance(Duration::from_secs(3600));
    assert!(b.try_acquire().is_err(), "forced open never times out");

    b.transition_to(State::Disabled);
    for _ in 0..10 {
        let _ = b.call(|| Err::<(), _>(()));
    }
    assert_eq!(b.state(), State::Disabled);
    assert_eq!(b.metrics().calls, 0, "disabled records nothing");

    b.transition_to(State::MetricsOnly);
    for _ in 0..10 {
        let _ = b.call(|| Err::<(), _>(()));
    }
    let m = b.metrics();
    assert_eq!(
        (m.state, m.calls, m.failed_in_window),
        (State::MetricsOnly, 6, 6)
    );

    b.transition_to(State::Closed);
    assert_eq!(b.metrics().calls, 0);
}

#[test]
fn open_duration_backs_off_across_reopenings_and_resets_on_close() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .sliding_window(SlidingWindow::count(1))
        .minimum_calls(1)
        .half_open_permits(1)
        .open_backoff(
            Backoff::exponential(Duration::from_secs(1))
                .max_delay(Duration::from_secs(8))
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = b.call(|| Err::<(), _>(()));
    let mut opens = Vec::new();
    for _ in 0..5 {
        let wait = b.try_acquire().unwrap_err().retry_after().unwrap();
        opens.push(wait);
        clock.advance(wait);
        let _ = b.call(|| Err::<(), _>(())); // the trial fails: reopen
    }
    let secs: Vec<u64> = opens.iter().map(|d| d.as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 8, 8]);
    let wait = b.try_acquire().unwrap_err().retry_after().unwrap();
    clock.advance(wait);
    b.call(|| Ok::<_, ()>(())).unwrap(); // closes: backoff resets
    let _ = b.call(|| Err::<(), _>(()));
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after(),
        Some(Duration::from_secs(1))
    );
}

#[test]
fn listeners_see_every_transition() {
    let clock = ManualClock::new();
    let seen: Arc<Mutex<Vec<(State, State)>>> = Arc::default();
    let log = Arc::clone(&seen);
    let b = CircuitBreaker::builder()
        .sliding_window(SlidingWindow::count(2))
        .minimum_calls(2)
        .half_open_permits(1)
        .open_for(Duration::from_secs(1))
        .on_transition(move |t: &Transition| log.lock().unwrap().push((t.from, t.to)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = b.call(|| Err::<(), _>(()));
    let _ = b.call(|| Err::<(), _>(()));
    clock.advance(Duration::from_secs(1));
    b.call(|| Ok::<_, ()>(())).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
    assert_eq!(b.metrics().transitions, 3);
}

#[test]
fn time_window_forgets_old_failures() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .sliding_window(SlidingWindow::time(Duration::from_secs(10), 10))
        .minimum_calls(3)
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = b.call(|| Err::<(), _>(()));
    let _ = b.call(|| Err::<(), _>(()));
    clock.advance(Duration::from_secs(11)); // both failures age out
    let _ = b.call(|| Err::<(), _>(()));
    b.call(|| Ok::<_, ()>(())).unwrap();
    b.call(|| Ok::<_, ()>(())).unwrap();
    assert_eq!(b.state(), State::Closed, "1 of 3 in the window failed");
    assert_eq!(b.metrics().calls, 3);
}

#[test]
fn outcomes_from_an_earlier_period_do_not_count() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let slow_call = b.try_acquire().unwrap(); // started while closed
    for _ in 0..4 {
        let _ = b.call(|| Err::<(), _>(()));
    }
    clock.advance(OPEN);
    let trial = b.try_acquire().unwrap();
    slow_call.failure(); // finishes during half-open: must not count as a trial
    assert_eq!(b.metrics().half_open_permits, PERMITS - 1);
    trial.success();
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn invalid_configs_are_errors() {
    let rate = CircuitBreaker::builder()
        .failure_rate_threshold(1.5)
        .build();
    assert!(matches!(rate, Err(ConfigError::Rate { .. })));
    let window = CircuitBreaker::builder()
        .sliding_window(SlidingWindow::count(0))
        .build();
    assert!(matches!(window, Err(ConfigError::Size { .. })));
    let permits = CircuitBreaker::builder().half_open_permits(5000).build();
    assert!(matches!(permits, Err(ConfigError::Size { .. })));
    let open = CircuitBreaker::builder().open_for(Duration::ZERO).build();
    assert!(matches!(open, Err(ConfigError::ZeroDuration { .. })));
}

#[test]
fn concurrent_calls_are_all_counted() {
    let b = CircuitBreaker::builder()
        .sliding_window(SlidingWindow::count(100_000))
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for i in 0..5_000u32 {
                    let _ = b.call(|| if i % 10 == 0 { Err(()) } else { Ok(()) });
                }
            });
        }
    });
    let m = b.metrics();
    assert_eq!(
        (m.calls, m.failed_in_window, m.state),
        (20_000, 2_000, State::Closed)
    );
}

#[test]
fn retry_never_retries_a_refused_call() {
    use weft_circuitbreaker::retry::{RetryError, RetryPolicy};
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let policy = RetryPolicy::builder()
        .max_attempts(5)
        .backoff(Backoff::constant(Duration::ZERO).build().unwrap())
        .build()
        .unwrap();
    // Four failing attempts open the breaker (minimum 4, all failed); the fifth attempt is
    // refused, and a refusal ends the retrying at once.
    let mut ran = 0;
    let r = b.call_with_retry(&policy, |_| {
        ran += 1;
        Err::<(), _>("down")
    });
    assert_eq!(ran, 4);
    match r {
        Err(RetryError::Rejected { error, attempts }) => {
            assert!(error.is_not_permitted());
            assert_eq!(attempts, 5);
        }
        other => panic!("expected a rejected refusal, got {other:?}"),
    }
}
