//! weft-circuitbreaker against failsafe and recloser, same workloads, same run.
//!
//! Groups are `circuitbreaker/<workload>`, implementations `weft`, `failsafe`, `recloser`
//! and `bare`: the protected operation called directly, without a breaker, as the floor
//! (a breaker's overhead is its figure minus `bare`'s). Every call succeeds, so every
//! breaker stays closed for the whole run and the figures are the cost of the common
//! path: ask for permission, run the operation, record a success.
//!
//! Configurations, as close as the crates allow (failure-rate based, closed, open 60 s):
//!
//! - `weft`: the builder's defaults, spelled out: a count window of the last 100 calls,
//!   opens at a 50% failure rate once the window holds 100 calls, 10 half-open trials.
//!   Default clock (the TSC `FastClock`); slow calls are not tracked (the default), so a
//!   closed-state call reads no clock.
//! - `failsafe`: a failure-rate-only policy, `success_rate_over_time_window(0.5, 100,
//!   30 s, constant(60 s))`: opens when the success rate falls below 50% with at least
//!   100 calls in the window. Differences: failsafe has no count window; its rate is an
//!   exponentially weighted moving average over a time window (30 s, its default), and
//!   recording a success reads `Instant::now()` twice. `Config::new()`'s default policy
//!   also opens after 5 consecutive failures (`or_else(consecutive_failures(5))`); that
//!   part is left out so the policy is the failure-rate one alone (with no failures it
//!   would only add a counter reset per call). Its state sits behind a mutex, taken once
//!   for permission and once for the outcome.
//! - `recloser`: `error_rate(0.5)`, `closed_len(100)`, `half_open_len(10)`,
//!   `open_wait(60 s)`: a ring of the last 100 calls, judged once the ring is full (the
//!   same as a minimum of 100 calls). It pins a crossbeam-epoch guard per call and
//!   updates its ring under a spin lock.
//!
//! Workloads:
//!
//! - `closed_call_1thread`: one call per iteration on one thread.
//! - `closed_call_2threads`: two threads (`std::thread::scope`) each make `CALLS` calls
//!   on one shared breaker (a fresh one per sample), through the same `&dyn Fn` for every
//!   implementation, `bare` included; the figure includes spawning the two threads.

// The settings and harness every bench shares.
#[allow(dead_code)] // not every bench uses every helper
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;
use failsafe::FailurePolicy;

/// Calls per thread in the two-thread workload.
const CALLS: u64 = 200_000;
/// Calls in every breaker's window, and the minimum before a rate is judged.
const WINDOW: u32 = 100;
/// Failure rate at which a breaker opens.
const FAILURE_RATE: f64 = 0.5;
/// Trial calls in half-open.
const HALF_OPEN: u32 = 10;
/// How long a breaker stays open.
const OPEN_FOR: Duration = Duration::from_secs(60);
/// failsafe's default success-rate window (it has no count-based window).
const FAILSAFE_WINDOW: Duration = Duration::from_secs(30);

/// The protected operation: always succeeds; `black_box` keeps it from being folded.
#[inline]
fn op() -> Result<u64, ()> {
    Ok(black_box(1))
}

fn weft_breaker() -> weft::circuitbreaker::CircuitBreaker {
    weft::circuitbreaker::CircuitBreaker::builder()
        .sliding_window(weft::circuitbreaker::SlidingWindow::count(WINDOW))
        .failure_rate_threshold(FAILURE_RATE)
        .minimum_calls(WINDOW)
        .half_open_permits(HALF_OPEN)
        .open_for(OPEN_FOR)
        .build()
        .unwrap()
}

fn failsafe_breaker() -> failsafe::StateMachine<impl FailurePolicy + Send, ()> {
    let policy = failsafe::failure_policy::success_rate_over_time_window(
        1.0 - FAILURE_RATE,
        WINDOW,
        FAILSAFE_WINDOW,
        failsafe::backoff::constant(OPEN_FOR),
    );
    failsafe::Config::new().failure_policy(policy).build()
}

fn recloser_breaker() -> recloser::Recloser {
    recloser::Recloser::custom()
        .error_rate(FAILURE_RATE as f32)
        .closed_len(WINDOW as usize)
        .half_open_len(HALF_OPEN as usize)
        .open_wait(OPEN_FOR)
        .build()
}

fn closed_call_1thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("circuitbreaker/closed_call_1thread");
    g.throughput(Throughput::Elements(1));
    let ours = weft_breaker();
    g.bench_function("weft", |b| b.iter(|| ours.call(op)));
    assert_eq!(ours.state(), weft::circuitbreaker::State::Closed);
    let fs = failsafe_breaker();
    g.bench_function("failsafe", |b| b.iter(|| fs.call(op)));
    assert!(fs.is_call_permitted());
    let rc = recloser_breaker();
    g.bench_function("recloser", |b| b.iter(|| rc.call(op)));
    g.bench_function("bare", |b| b.iter(op));
    g.finish();
}

fn closed_call_2threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("circuitbreaker/closed_call_2threads");
    g.throughput(Throughput::Elements(2 * CALLS));
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            let br = weft_breaker();
            (0..iters)
                .map(|_| common::two_threads(CALLS, &|| br.call(op).is_ok()))
                .sum()
        })
    });
    g.bench_function("failsafe", |b| {
        b.iter_custom(|iters| {
            let br = failsafe_breaker();
            (0..iters)
                .map(|_| common::two_threads(CALLS, &|| br.call(op).is_ok()))
                .sum()
        })
    });
    g.bench_function("recloser", |b| {
        b.iter_custom(|iters| {
            let br = recloser_breaker();
            (0..iters)
                .map(|_| common::two_threads(CALLS, &|| br.call(op).is_ok()))
                .sum()
        })
    });
    g.bench_function("bare", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| common::two_threads(CALLS, &|| op().is_ok()))
                .sum()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = closed_call_1thread, closed_call_2threads
}
criterion_main!(benches);
