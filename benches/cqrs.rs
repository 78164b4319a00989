//! weft-cqrs: command throughput on one hot key vs 1000 keys, projection catch-up
//! (replay) rate, and projection lag at 10K events/s.
//!
//! - `cqrs/commands_1_key`, `cqrs/commands_1000_keys`: 1000 concurrent commands (one
//!   tokio task each, 2 worker threads) through the `CommandBus` into a `MemoryLog`; one
//!   key serialises them all through the per-key hand-off, 1000 keys run in parallel.
//! - `cqrs/projection_replay`: a tracking projection (sum per key over 100 keys) starts
//!   from zero over a log of 100K events and catches up. Target: >= 100K events/s.
//! - lag: events are appended at 10K events/s (10 per millisecond tick) for 2 s while a
//!   projection tracks them; each event carries its append instant and the projection
//!   records how long after it applied it. The p50/p99/max go to
//!   `target/criterion/weft-metrics/cqrs.json`, which `cargo xtask bench-report` adds to
//!   BENCHMARKS.md. Target: p99 < 10 ms.
//!
//! No Rust CQRS crate offers tracking projections to compare against on the same
//! workload (cqrs-es dispatches queries inline after the commit), so every group has
//! only the `weft` implementation.

// The settings and harness every bench shares.
#[allow(dead_code)] // not every bench uses every helper
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weft::cqrs::{Command, CommandBus, EventLog, MemoryLog, Projection, Recorded, projection};

/// Commands per measured batch.
const COMMANDS: usize = 1000;
/// Events in the replayed log.
const REPLAY_EVENTS: u64 = 100_000;

struct Bump {
    key: String,
}

impl Command for Bump {
    fn key(&self) -> &str {
        &self.key
    }
}

/// Sum per key: a typical small read model.
#[derive(Default)]
struct Sums(HashMap<String, u64>);

impl Projection for Sums {
    type Event = u64;
    fn apply(&mut self, e: &Recorded<u64>) {
        *self.0.entry(e.key.clone()).or_default() += e.event;
    }
}

/// Apply delays of events stamped with their append instant.
#[derive(Default)]
struct Lag(Vec<Duration>);

impl Projection for Lag {
    type Event = Instant;
    fn apply(&mut self, e: &Recorded<Instant>) {
        self.0.push(e.event.elapsed());
    }
}

fn commands(c: &mut Criterion) {
    let rt = common::two_worker_runtime();
    for keys in [1, 1000] {
        let names: Arc<Vec<String>> = Arc::new((0..keys).map(|k| format!("key-{k}")).collect());
        let mut group = c.benchmark_group(format!(
            "cqrs/commands_{keys}_key{}",
            if keys == 1 { "" } else { "s" }
        ));
        group.throughput(Throughput::Elements(COMMANDS as u64));
        group.bench_function("weft", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let log = Arc::new(MemoryLog::new());
                        let bus = CommandBus::builder(log)
                            .handler(|_: Bump| async { Ok(vec![1_u64]) })
                            .build()
                            .unwrap();
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..COMMANDS)
                            .map(|i| {
                                let bus = bus.clone();
                                let key = names[i % names.len()].clone();
                                tokio::spawn(async move { bus.execute(Bump { key }).await })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap().unwrap();
                        }
                        total += start.elapsed();
                    }
                    total
                })
            });
        });
        group.finish();
    }
}

fn replay(c: &mut Criterion) {
    let rt = common::two_worker_runtime();
    let log = Arc::new(MemoryLog::new());
    rt.block_on(async {
        for batch in 0..REPLAY_EVENTS / 100 {
            log.append(&format!("key-{}", batch % 100), vec![1_u64; 100])
                .await
                .unwrap();
        }
    });
    let mut group = c.benchmark_group("cqrs/projection_replay");
    group.throughput(Throughput::Elements(REPLAY_EVENTS));
    group.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let sums = projection("sums", Arc::clone(&log), Sums::default())
                        .batch_size(1024)
                        .start()
                        .unwrap();
                    sums.wait_for(REPLAY_EVENTS, Duration::from_secs(120))
                        .await
                        .unwrap();
                    total += start.elapsed();
                    sums.shutdown().await;
                }
                total
            })
        });
    });
    group.finish();
}

/// The p-th percentile (0..=100) of sorted `samples`, in milliseconds.
/// The `p`th percentile of `sorted`, in microseconds (lags are well under a
/// millisecond; the report prints one decimal).
fn lag(_: &mut Criterion) {
    let rt = common::two_worker_runtime();
    let mut samples = rt.block_on(async {
        let log = Arc::new(MemoryLog::new());
        let tracker = projection("lag", Arc::clone(&log), Lag::default())
            .start()
            .unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut head = 0;
        for t in 0..2000 {
            tick.tick().await;
            for i in 0..10 {
                head = log
                    .append(&format!("key-{}", (t * 10 + i) % 100), vec![Instant::now()])
                    .await
                    .unwrap();
            }
        }
        tracker
            .wait_for(head, Duration::from_secs(30))
            .await
            .unwrap();
        tracker.query(|l| l.0.clone())
    });
    samples.sort_unstable();
    common::write_metrics(
        "cqrs",
        &[
            (
                "lag_p50_at_10k_events_per_s",
                "weft",
                common::percentile_us(&samples, 50.0),
                "µs",
            ),
            (
                "lag_p99_at_10k_events_per_s",
                "weft",
                common::percentile_us(&samples, 99.0),
                "µs",
            ),
            (
                "lag_max_at_10k_events_per_s",
                "weft",
                common::percentile_us(&samples, 100.0),
                "µs",
            ),
        ],
    );
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = commands, replay, lag
}
criterion_main!(benches);
