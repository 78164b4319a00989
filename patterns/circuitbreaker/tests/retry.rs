//! Integration tests of `weft_circuitbreaker::retry`: policies, executors, budgets and
//! timeouts. Time is always a `ManualClock` (advanced by the injected sleep) or tokio's
//! paused clock; nothing here really sleeps.

use std::cell::Cell;
use std::time::Duration;

use proptest::prelude::*;
use weft_circuitbreaker::retry::{Retry, RetryBudget, RetryConfigError, RetryError, RetryPolicy};
use weft_sync::Arc;
use weft_time::{Backoff, Clock, Jitter, ManualClock, Rng};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A policy of `attempts` attempts with a constant, un-jittered delay.
fn constant(attempts: u32, delay: Duration) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .backoff(Backoff::constant(delay).build().unwrap())
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Attempts and predicates
// ---------------------------------------------------------------------------------------

#[test]
fn attempts_are_numbered_from_one_and_counted_exactly() {
    let clock = ManualClock::new();
    let policy = constant(5, ms(10));

    // Fails four times, then succeeds on the last allowed attempt.
    let mut seen = Vec::new();
    let out = Retry::new(&policy)
        .sleep_with(|d| clock.advance(d))
        .call(|attempt| {
            seen.push(attempt);
            if attempt < 5 { Err(attempt) } else { Ok("ok") }
        });
    assert_eq!(out, Ok("ok"));
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    assert_eq!(clock.elapsed(), ms(40));

    // Always fails: exactly five attempts, four sleeps, the last error returned.
    let calls = Cell::new(0);
    let sleeps = Cell::new(0);
    let err = Retry::new(&policy)
        .sleep_with(|_| sleeps.set(sleeps.get() + 1))
        .call(|attempt| {
            calls.set(calls.get() + 1);
            Err::<(), _>(format!("failure {attempt}"))
        })
        .unwrap_err();
    assert_eq!(calls.get(), 5);
    assert_eq!(sleeps.get(), 4);
    assert_eq!(
        err,
        RetryError::Exhausted {
            last: "failure 5".to_string(),
            attempts: 5
        }
    );
}

#[test]
fn a_single_attempt_policy_never_sleeps() {
    let policy = RetryPolicy::new(1).unwrap();
    let err = Retry::new(&policy)
        .sleep_with(|_| panic!("must not sleep"))
        .call(|_| Err::<(), _>("boom"))
        .unwrap_err();
    assert_eq!(
        err,
        RetryError::Exhausted {
            last: "boom",
            attempts: 1
        }
    );
}

#[test]
fn success_on_the_first_attempt_returns_at_once() {
    let policy = RetryPolicy::default();
    let out = Retry::new(&policy)
        .sleep_with(|_| panic!("must not sleep"))
        .call(Ok::<_, ()>);
    assert_eq!(out, Ok(1));
}

#[test]
fn a_rejected_error_stops_at_once_without_sleeping() {
    let policy = constant(10, ms(5));
    let calls = Cell::new(0);
    let err = Retry::new(&policy)
        .retry_on(|_: &&str| false)
        .sleep_with(|_| panic!("must not sleep"))
        .call(|_| {
            calls.set(calls.get() + 1);
            Err::<(), _>("fatal")
        })
        .unwrap_err();
    assert_eq!(calls.get(), 1);
    assert_eq!(
        err,
        RetryError::Rejected {
            error: "fatal",
            attempts: 1
        }
    );
}

#[test]
fn the_predicate_sees_each_error_and_can_stop_mid_way() {
    let policy = constant(10, Duration::ZERO);
    let mut judged = Vec::new();
    let err = Retry::new(&policy)
        .retry_on(|e: &u32| {
            judged.push(*e);
            *e < 3
        })
        .sleep_with(|_| {})
        .call(Err::<(), u32>)
        .unwrap_err();
    assert_eq!(judged, [1, 2, 3]);
    assert_eq!(
        err,
        RetryError::Rejected {
            error: 3,
            attempts: 3
        }
    );
}

#[test]
fn a_non_retryable_error_on_the_last_attempt_is_reported_as_rejected() {
    let policy = constant(2, Duration::ZERO);
    let err = Retry::new(&policy)
        .retry_on(|e: &&str| *e == "transient")
        .sleep_with(|_| {})
        .call(|attempt| Err::<(), _>(if attempt == 1 { "transient" } else { "fatal" }))
        .unwrap_err();
    assert_eq!(
        err,
        RetryError::Rejected {
            error: "fatal",
            attempts: 2
        }
    );
}

#[test]
fn on_retry_sees_every_retry_with_its_delay_before_the_sleep() {
    let policy = RetryPolicy::builder()
        .max_attempts(4)
        .backoff(Backoff::exponential(ms(10)).build().unwrap())
        .build()
        .unwrap();
    let events = std::cell::RefCell::new(Vec::new());
    let _ = Retry::new(&policy)
        .on_retry(|e: &u32, attempt: u32, delay: Duration| {
            events
                .borrow_mut()
                .push(format!("notify {attempt} {e} {delay:?}"));
        })
        .sleep_with(|d| events.borrow_mut().push(format!("sleep {d:?}")))
        .call(|attempt| Err::<(), _>(attempt * 100));
    assert_eq!(
        events.into_inner(),
        [
            "notify 1 100 10ms",
            "sleep 10ms",
            "notify 2 200 20ms",
            "sleep 20ms",
            "notify 3 300 40ms",
            "sleep 40ms",
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Time limits and backoff
// ---------------------------------------------------------------------------------------

#[test]
fn max_elapsed_stops_before_a_delay_that_would_pass_it() {
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder()
        .max_attempts(100)
        .max_elapsed(ms(1_000))
        .backoff(Backoff::constant(ms(300)).build().unwrap())
        .build()
        .unwrap();
    let err = Retry::new(&policy)
        .clock(&clock)
        .sleep_with(|d| clock.advance(d))
        .call(|_| Err::<(), _>("down"))
        .unwrap_err();
    // Attempts at 0, 300, 600, 900 ms; a fifth at 1200 ms would pass the limit.
    assert!(matches!(err, RetryError::Exhausted { attempts: 4, .. }));
    assert_eq!(clock.elapsed(), ms(900), "never sleeps past the limit");
}

#[test]
fn max_elapsed_allows_a_retry_landing_exactly_on_the_limit() {
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder()
        .max_attempts(100)
        .max_elapsed(ms(1_000))
        .backoff(Backoff::constant(ms(250)).build().unwrap())
        .build()
        .unwrap();
    let err = Retry::new(&policy)
        .clock(&clock)
        .sleep_with(|d| clock.advance(d))
        .call(|_| Err::<(), _>("down"))
        .unwrap_err();
    assert_eq!(err.attempts(), 5); // 0, 250, 500, 750, 1000 ms
    assert_eq!(clock.elapsed(), ms(1_000));
}

#[test]
fn max_elapsed_counts_the_time_attempts_take() {
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder()
        .max_attempts(100)
        .max_elapsed(ms(1_000))
        .backoff(Backoff::constant(ms(300)).build().unwrap())
        .build()
        .unwrap();
    let err = Retry::new(&policy)
        .clock(&clock)
        .sleep_with(|d| clock.advance(d))
        .call(|_| {
            clock.advance(ms(400)); // a slow attempt
            Err::<(), _>("slow failure")
        })
        .unwrap_err();
    // Attempt 1: 0-400, sleep to 700; attempt 2: 700-1100; 1100 + 300 > 1000.
    assert_eq!(err.attempts(), 2);
    assert_eq!(clock.elapsed(), ms(1_100));
}

#[test]
fn delays_follow_the_backoff_policy() {
    let policy = RetryPolicy::builder()
        .max_attempts(6)
        .backoff(
            Backoff::exponential(ms(10))
                .factor(2.0)
                .max_delay(ms(50))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut slept = Vec::new();
    let _ = Retry::new(&policy)
        .sleep_with(|d| slept.push(d))
        .call(|_| Err::<(), _>(()));
    assert_eq!(slept, [10, 20, 40, 50, 50].map(ms));
}

#[test]
fn jittered_delays_are_the_seeded_backoff_sequence() {
    let backoff = Backoff::exponential(ms(100))
        .max_delay(ms(2_000))
        .jitter(Jitter::Full)
        .build()
        .unwrap();
    let policy = RetryPolicy::builder()
        .max_attempts(8)
        .backoff(backoff)
        .seed(1234)
        .build()
        .unwrap();
    let expected: Vec<_> = backoff
        .iter_with_rng(Rng::with_seed(1234))
        .take(7)
        .collect();

    let mut slept = Vec::new();
    let _ = Retry::new(&policy)
        .sleep_with(|d| slept.push(d))
        .call(|_| Err::<(), _>(()));
    assert_eq!(slept, expected);
    // Full jitter: each delay within [0, 100 ms * 2^n] capped at 2 s.
    for (n, d) in slept.iter().enumerate() {
        assert!(*d <= ms((100 << n).min(2_000)), "delay {n} = {d:?}");
    }

    // A per-call generator overrides the policy's seed.
    let mut other = Vec::new();
    let _ = Retry::new(&policy)
        .rng(Rng::with_seed(99))
        .sleep_with(|d| other.push(d))
        .call(|_| Err::<(), _>(()));
    let expected_other: Vec<_> = backoff.iter_with_rng(Rng::with_seed(99)).take(7).collect();
    assert_eq!(other, expected_other);
    assert_ne!(other, slept);
}

#[test]
fn the_backoffs_own_retry_limit_also_applies() {
    let policy = RetryPolicy::builder()
        .max_attempts(10)
        .backoff(Backoff::constant(ms(1)).max_retries(2).build().unwrap())
        .build()
        .unwrap();
    let err = Retry::new(&policy)
        .sleep_with(|_| {})
        .call(|_| Err::<(), _>("down"))
        .unwrap_err();
    assert!(matches!(err, RetryError::Exhausted { attempts: 3, .. }));
}

// ---------------------------------------------------------------------------------------
// Budgets
// ---------------------------------------------------------------------------------------

fn manual_budget(ttl: Duration, min: u32, ratio: f64) -> (RetryBudget<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    let budget = RetryBudget::with_clock(ttl, min, ratio, clock.clone()).unwrap();
    (budget, clock)
}

#[test]
fn a_tenth_of_a_hundred_calls_funds_ten_retries_then_the_budget_refuses() {
    let (budget, clock) = manual_budget(Duration::from_secs(10), 0, 0.1);
    let policy = constant(100, ms(1));

    // 100 successful calls each deposit once.
    for _ in 0..100 {
        let out = Retry::new(&policy)
            .budget(&budget)
            .call(|_| Ok::<_, ()>(()));
        assert!(out.is_ok());
    }
    assert_eq!(budget.status().balance, 10);

    // A failing call may retry 10 times (its own deposit adds only 0.1), then stops.
    let calls = Cell::new(0);
    let err = Retry::new(&policy)
        .budget(&budget)
        .sleep_with(|d| clock.advance(d))
        .call(|_| {
            calls.set(calls.get() + 1);
            Err::<(), _>("overloaded")
        })
        .unwrap_err();
    assert_eq!(
        err,
        RetryError::BudgetExhausted {
            last: "overloaded",
            attempts: 11
        }
    );
    assert_eq!(calls.get(), 11);

    let s = budget.status();
    assert_eq!((s.balance, s.deposits, s.withdrawals), (0, 101, 10));
    assert_eq!((s.total_withdrawals, s.total_rejections), (10, 1));
}

#[test]
fn the_budget_is_only_drawn_on_for_retries_that_happen() {
    let (budget, _clock) = manual_budget(Duration::from_secs(10), 0, 1.0);
    budget.deposit();
    budget.deposit();
    let policy = constant(1, ms(1));
    // One attempt allowed: exhaustion by attempts must not consume the budget.
    let _ = Retry::new(&policy)
        .budget(&budget)
        .call(|_| Err::<(), _>(()));
    // Nor does a rejected error.
    let _ = Retry::new(&constant(5, ms(1)))
        .budget(&budget)
        .retry_on(|_: &()| false)
        .call(|_| Err::<(), _>(()));
    let s = budget.status();
    assert_eq!(
        (s.total_deposits, s.total_withdrawals, s.total_rejections),
        (4, 0, 0)
    );
}

#[test]
fn deposits_expire_after_ttl() {
    let (budget, clock) = manual_budget(Duration::from_secs(10), 0, 1.0);
    for _ in 0..10 {
        budget.deposit();
    }
    assert_eq!(budget.status().balance, 10);
    clock.advance(Duration::from_secs(9));
    assert_eq!(budget.status().balance, 10);
    clock.advance(Duration::from_secs(1));
    let s = budget.status();
    assert_eq!((s.balance, s.deposits), (0, 0));
    assert!(!budget.try_withdraw());
    assert_eq!(s.total_deposits, 10, "totals never expire");
}

#[test]
fn deposits_made_later_keep_counting_after_earlier_ones_expire() {
    let (budget, clock) = manual_budget(Duration::from_secs(10), 0, 1.0);
    budget.deposit(); // t = 0
    clock.advance(Duration::from_secs(5));
    budget.deposit(); // t = 5
    clock.advance(Duration::from_secs(5)); // t = 10: the first has expired
    assert_eq!(budget.status().deposits, 1);
    assert!(budget.try_withdraw());
    assert!(!budget.try_withdraw());
}

#[test]
fn the_floor_allows_min_retries_per_sec_without_any_call() {
    let (budget, clock) = manual_budget(Duration::from_secs(1), 5, 0.0);
    assert_eq!((0..10).filter(|_| budget.try_withdraw()).count(), 5);
    // A second later (plus the one-bucket withdrawal slack) the floor is available again.
    clock.advance(ms(1_100));
    assert_eq!((0..10).filter(|_| budget.try_withdraw()).count(), 5);

    // Over a 10 s window the floor is 5 per second times 10 s.
    let (budget, _clock) = manual_budget(Duration::from_secs(10), 5, 0.0);
    assert_eq!((0..100).filter(|_| budget.try_withdraw()).count(), 50);
}

#[test]
fn floor_and_ratio_add_up() {
    let (budget, _clock) = manual_budget(Duration::from_secs(2), 3, 0.5);
    for _ in 0..10 {
        budget.deposit();
    }
    // 3/s over 2 s plus 0.5 x 10.
    assert_eq!((0..100).filter(|_| budget.try_withdraw()).count(), 11);
}

#[test]
fn a_budget_shared_by_threads_conserves_its_balance() {
    const THREADS: u64 = 8;
    const CALLS: u64 = if cfg!(debug_assertions) {
        2_000
    } else {
        20_000
    };
    let (budget, _clock) = manual_budget(Duration::from_secs(10), 0, 0.25);
    let budget = Arc::new(budget);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let budget = Arc::clone(&budget);
            s.spawn(move || {
                for _ in 0..CALLS {
                    budget.deposit();
                    let _ = budget.try_withdraw();
                }
            });
        }
    });
    let s = budget.status();
    let deposits = THREADS * CALLS;
    let funded = deposits / 4;
    assert_eq!(s.total_deposits, deposits);
    assert_eq!(s.total_withdrawals + s.total_rejections, deposits);
    assert!(s.total_withdrawals <= funded);
    // Every funded retry was either taken or is still available: none lost, none extra.
    assert_eq!(s.total_withdrawals + s.balance, funded);
}

#[test]
fn invalid_settings_are_errors() {
    assert_eq!(
        RetryPolicy::new(0).unwrap_err(),
        RetryConfigError::ZeroAttempts
    );
    assert_eq!(
        RetryPolicy::builder().max_attempts(0).build().unwrap_err(),
        RetryConfigError::ZeroAttempts
    );
    assert!(matches!(
        RetryBudget::new(Duration::ZERO, 1, 0.1),
        Err(RetryConfigError::InvalidTtl { .. })
    ));
    assert!(matches!(
        RetryBudget::new(Duration::from_secs(1), 1, 1000.1),
        Err(RetryConfigError::InvalidRetryRatio { .. })
    ));
    assert!(RetryBudget::new(Duration::from_secs(1), 0, 1000.0).is_ok());
    assert!(RetryBudget::new(Duration::from_secs(1), 0, 0.0).is_ok());
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

#[test]
fn retry_error_keeps_the_last_error_and_reports_through_std_error() {
    let last = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    let err = RetryError::BudgetExhausted { last, attempts: 2 };
    assert_eq!(err.attempts(), 2);
    assert!(err.to_string().contains("retry budget exhausted"));
    assert!(err.to_string().ends_with(": refused"));
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    let err = boxed.downcast::<RetryError<std::io::Error>>().unwrap();
    assert_eq!(
        err.into_inner().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
}

// ---------------------------------------------------------------------------------------
// Async
// ---------------------------------------------------------------------------------------

#[cfg(feature = "tokio")]
mod with_tokio {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use weft_circuitbreaker::retry::{Elapsed, timeout};
    use weft_sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use weft_time::TokioClock;

    #[tokio::test(start_paused = true)]
    async fn async_retry_sleeps_on_the_paused_tokio_clock() {
        let policy = RetryPolicy::builder()
            .max_attempts(5)
            .backoff(Backoff::exponential(ms(100)).build().unwrap())
            .build()
            .unwrap();
        let start = tokio::time::Instant::now();
        let attempts_at = weft_sync::Mutex::new(Vec::new());
        let out = Retry::new(&policy)
            .call_async(|attempt| {
                attempts_at.lock().push(start.elapsed());
                async move {
                    if attempt < 4 {
                        Err("busy")
                    } else {
                        Ok(attempt)
                    }
                }
            })
            .await;
        assert_eq!(out, Ok(4));
        assert_eq!(*attempts_at.lock(), [0, 100, 300, 700].map(ms));
    }

    #[tokio::test(start_paused = true)]
    async fn async_retry_respects_max_elapsed_on_tokio_clock() {
        let policy = RetryPolicy::builder()
            .max_attempts(100)
            .max_elapsed(ms(1_000))
            .backoff(Backoff::constant(ms(300)).build().unwrap())
            .build()
            .unwrap();
        let start = TokioClock.now();
        let err = Retry::new(&policy)
            .clock(&TokioClock)
            .call_async(|_| async { Err::<(), _>("down") })
            .await
            .unwrap_err();
        assert!(matches!(err, RetryError::Exhausted { attempts: 4, .. }));
        assert_eq!(TokioClock.now() - start, ms(900));
    }

    #[tokio::test(start_paused = true)]
    async fn async_retry_uses_the_budget_and_predicate() {
        let clock = ManualClock::new();
        let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 1.0, clock).unwrap();
        let policy = constant(10, ms(50));
        // Deposit of this call funds exactly one retry.
        let err = Retry::new(&policy)
            .budget(&budget)
            .call_async(|_| async { Err::<(), _>("down") })
            .await
            .unwrap_err();
        assert_eq!(
            err,
            RetryError::BudgetExhausted {
                last: "down",
                attempts: 2
            }
        );
        let err = Retry::new(&policy)
            .retry_on(|e: &&str| *e != "fatal")
            .call_async(|_| async { Err::<(), _>("fatal") })
            .await
            .unwrap_err();
        assert!(matches!(err, RetryError::Rejected { attempts: 1, .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn call_async_with_sleep_uses_the_given_sleep() {
        let policy = constant(3, ms(70));
        let slept = weft_sync::Mutex::new(Vec::new());
        let err = Retry::new(&policy)
            .call_async_with_sleep(
                |d| {
                    slept.lock().push(d);
                    std::future::ready(())
                },
                |_| async { Err::<(), _>(()) },
            )
            .await
            .unwrap_err();
        assert_eq!(err.attempts(), 3);
        assert_eq!(*slept.lock(), [ms(70), ms(70)]);
    }

    #[tokio::test(start_paused = true)]
    async fn per_attempt_timeouts_compose_with_retry() {
        let policy = constant(3, ms(10));
        let start = tokio::time::Instant::now();
        let out = Retry::new(&policy)
            .call_async(|attempt| {
                timeout(ms(500), async move {
                    if attempt < 3 {
                        std::future::pending::<()>().await;
                    }
                    attempt
                })
            })
            .await;
        assert_eq!(out, Ok(3));
        assert_eq!(start.elapsed(), ms(500 + 10 + 500 + 10));
    }

    /// Sets its flag when dropped.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_returns_elapsed_and_drops_the_inner_future() {
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = DropFlag(Arc::clone(&dropped));
        let start = tokio::time::Instant::now();
        let out = timeout(Duration::from_secs(2), async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        })
        .await;
        assert_eq!(out.unwrap_err().duration(), Duration::from_secs(2));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_drops_the_inner_future_as_soon_as_it_fires() {
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = DropFlag(Arc::clone(&dropped));
        let polls = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&polls);
        let mut fut = pin!(timeout(
            ms(100),
            std::future::poll_fn(move |_| {
                let _keep = &guard;
                counted.fetch_add(1, Ordering::SeqCst);
                Poll::<()>::Pending
            })
        ));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(!dropped.load(Ordering::SeqCst));

        tokio::time::advance(ms(100)).await;
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Err(elapsed)) => assert_eq!(elapsed.duration(), ms(100)),
            other => panic!("expected Elapsed, got {other:?}"),
        }
        // Dropped before the `Timeout` itself is.
        assert!(dropped.load(Ordering::SeqCst));
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_passes_through_a_timely_output() {
        let start = tokio::time::Instant::now();
        let out = timeout(Duration::from_secs(1), async {
            tokio::time::sleep(ms(999)).await;
            "in time"
        })
        .await;
        assert_eq!(out, Ok("in time"));
        assert_eq!(start.elapsed(), ms(999));
        let elapsed: Elapsed = timeout(ms(1), std::future::pending::<()>())
            .await
            .unwrap_err();
        assert!(elapsed.to_string().contains("1ms"));
    }
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

/// What one attempt returns in the attempt-count property.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Success,
    Transient,
    Fatal,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        1 => Just(Outcome::Success),
        4 => Just(Outcome::Transient),
        1 => Just(Outcome::Fatal),
    ]
}

/// One step of the budget property: let time pass, then deposit or try a withdrawal.
#[derive(Debug, Clone, Copy)]
struct Step {
    advance_us: u64,
    deposit: bool,
}

fn step() -> impl Strategy<Value = Step> {
    // Mostly small steps (several per bucket), sometimes jumps across buckets or windows.
    let advance = prop_oneof![
        6 => 0..20_000u64,
        3 => 0..250_000u64,
        1 => 0..3_000_000u64,
    ];
    (advance, any::<bool>()).prop_map(|(advance_us, deposit)| Step {
        advance_us,
        deposit,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The number of attempts never exceeds max_attempts, and the result is exactly what
    /// the outcomes and the policy dictate.
    #[test]
    fn attempts_never_exceed_max_attempts(
        max_attempts in 1u32..12,
        outcomes in proptest::collection::vec(outcome(), 0..20),
    ) {
        let policy = constant(max_attempts, ms(1));
        let clock = ManualClock::new();
        let mut numbers = Vec::new();
        let result = Retry::new(&policy)
            .retry_on(|e: &Outcome| *e == Outcome::Transient)
            .sleep_with(|d| clock.advance(d))
            .call(|attempt| {
                numbers.push(attempt);
                // Past the scripted outcomes, every attempt fails transiently.
                match outcomes.get(attempt as usize - 1).copied().unwrap_or(Outcome::Transient) {
                    Outcome::Success => Ok(attempt),
                    other => Err(other),
                }
            });
        let made = numbers.len() as u32;
        prop_assert_eq!(&numbers, &(1..=made).collect::<Vec<_>>());
        prop_assert!(made <= max_attempts);
        prop_assert!(made >= 1);

        // The model: the first non-transient outcome decides, unless attempts run out.
        let first_decisive = outcomes
            .iter()
            .position(|o| *o != Outcome::Transient)
            .map(|i| i as u32 + 1);
        match first_decisive {
            Some(n) if n <= max_attempts => {
                prop_assert_eq!(made, n);
                match outcomes[n as usize - 1] {
                    Outcome::Success => prop_assert_eq!(&result, &Ok(n)),
                    _ => prop_assert_eq!(
                        &result,
                        &Err(RetryError::Rejected { error: Outcome::Fatal, attempts: n })
                    ),
                }
            }
            _ => {
                prop_assert_eq!(made, max_attempts);
                prop_assert_eq!(
                    &result,
                    &Err(RetryError::Exhausted { last: Outcome::Transient, attempts: max_attempts })
                );
            }
        }
        prop_assert_eq!(clock.elapsed(), ms(u64::from(made - 1)));
    }

    /// For every withdrawal the budget allows at time t, withdrawals in (t - ttl, t] are at
    /// most floor + ratio x deposits in (t - ttl, t] (safety); and a withdrawal is never
    /// refused when even the one-bucket-stingy count would allow it (liveness).
    #[test]
    fn budget_never_allows_more_than_floor_plus_ratio_times_deposits(
        min_per_sec in 0u32..6,
        ratio_milli in 0u64..2_500,
        steps in proptest::collection::vec(step(), 1..400),
    ) {
        const TTL_NS: u64 = 1_000_000_000;
        const BUCKET_NS: u64 = TTL_NS / 10;
        const UNIT: u128 = 1_000_000;
        let ratio = ratio_milli as f64 / 1_000.0;
        let (budget, clock) = manual_budget(Duration::from_nanos(TTL_NS), min_per_sec, ratio);
        // Exact fixed point, in micro-retries.
        let floor = u128::from(min_per_sec) * u128::from(TTL_NS) / 1_000;
        let per_deposit = u128::from(ratio_milli) * 1_000;

        let mut deposits: Vec<u64> = Vec::new();
        let mut withdrawals: Vec<u64> = Vec::new();
        let count = |log: &[u64], from_excl: i128, to_incl: u64| {
            log.iter()
                .filter(|&&at| i128::from(at) > from_excl && at <= to_incl)
                .count() as u128
        };
        for s in steps {
            clock.advance(Duration::from_micros(s.advance_us));
            let now = clock.monotonic_nanos();
            if s.deposit {
                budget.deposit();
                deposits.push(now);
                continue;
            }
            let allowed = budget.try_withdraw();
            let t = i128::from(now);
            if allowed {
                withdrawals.push(now);
                let w = count(&withdrawals, t - i128::from(TTL_NS), now);
                let d = count(&deposits, t - i128::from(TTL_NS), now);
                prop_assert!(
                    w * UNIT <= floor + per_deposit * d,
                    "{} withdrawals but only {} deposits in the last ttl at {}", w, d, now
                );
            } else {
                // Counted with one bucket of slack against the budget on both sides.
                let w = count(&withdrawals, t - i128::from(TTL_NS + BUCKET_NS), now);
                let d = count(&deposits, t - i128::from(TTL_NS - BUCKET_NS), now);
                prop_assert!(
                    (w + 1) * UNIT > floor + per_deposit * d,
                    "refused although {} withdrawals and {} deposits allow it at {}", w, d, now
                );
            }
        }
        let status = budget.status();
        prop_assert_eq!(status.total_withdrawals, withdrawals.len() as u64);
        prop_assert_eq!(status.total_deposits, deposits.len() as u64);
    }
}
