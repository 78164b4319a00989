//! weft-saga: the orchestrator's overhead per step, with the in-memory journal and with
//! the durable file journal (an fsync per record, and group commit across concurrent
//! sagas).
//!
//! Each measured unit is a 4-step saga (every step an async call returning a small
//! output, each with a compensation that is not needed), run to completion. Groups are
//! `saga/<workload>` with throughput in steps:
//!
//! - `saga/steps_in_memory`: one saga at a time over a `MemoryJournal`. Target: < 50 µs
//!   per step.
//! - `saga/steps_file_every_record`: one saga at a time over a `FileJournal` with
//!   `FsyncPolicy::EveryRecord` (10 synced records per saga: start, intent and outcome
//!   of each step, end).
//! - `saga/steps_file_batch_16_sagas`: 16 sagas at once over a `FileJournal` with
//!   `FsyncPolicy::Batch` (group commit). Target: >= 1K steps/s durable.
//!
//! No Rust saga library exists to compare with (Temporal and Restate need a server), so
//! each group's other row is the floor, `bare`: the same four async calls in a plain
//! sequence with no orchestration and no journal; the ratio cell shows what
//! orchestration (and durability) adds per step.
//!
//! Besides criterion's timings, the sustained steps/s of each configuration is measured
//! directly and written to `target/criterion/weft-metrics/saga.json`, which
//! `cargo xtask bench-report` adds to BENCHMARKS.md.

// The settings and harness every bench shares.
#[allow(dead_code)] // not every bench uses every helper
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weft::saga::{
    FileJournal, FsyncPolicy, Journal, MemoryJournal, Orchestrator, Outcome, Saga, StepError,
};

const STEPS: u64 = 4;
const CONCURRENT: u64 = 16;

/// A participant call: a little async work returning a small output.
async fn call(x: u64) -> Result<u64, StepError> {
    Ok(std::hint::black_box(x + 1))
}

fn saga() -> Saga<u64> {
    let mut b = Saga::builder("bench");
    for name in ["reserve", "charge", "ship", "notify"] {
        b = b.step(
            name,
            |cx| call(*cx.input()),
            |_cx, _out: u64| async { Ok(()) },
        );
    }
    b.build().unwrap()
}

/// The floor: the same four calls, in sequence, no orchestration.
async fn bare(x: u64) -> u64 {
    let mut v = x;
    for _ in 0..STEPS {
        v = call(v).await.unwrap();
    }
    v
}

static NEXT: AtomicU64 = AtomicU64::new(0);

async fn one(orch: &Orchestrator, saga: &Saga<u64>) {
    let id = format!("s{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let outcome = orch.run(saga, &id, 1).await.unwrap();
    assert!(matches!(outcome, Outcome::Completed(_)));
}

/// `sagas` sagas, `concurrent` at a time, on a fresh orchestrator over `journal`;
/// returns the wall time.
fn run_sagas(
    rt: &tokio::runtime::Runtime,
    journal: impl Journal,
    sagas: u64,
    concurrent: u64,
) -> Duration {
    let saga = saga();
    let orch = Orchestrator::builder(journal)
        .register(&saga)
        .build()
        .unwrap();
    let start = Instant::now();
    rt.block_on(async {
        let workers: Vec<_> = (0..concurrent)
            .map(|w| {
                let (orch, saga) = (orch.clone(), saga.clone());
                let n = sagas / concurrent + u64::from(w < sagas % concurrent);
                tokio::spawn(async move {
                    for _ in 0..n {
                        one(&orch, &saga).await;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
    });
    start.elapsed()
}

/// `sagas` plain sequences, `concurrent` at a time.
fn run_bare(rt: &tokio::runtime::Runtime, sagas: u64, concurrent: u64) -> Duration {
    let start = Instant::now();
    rt.block_on(async {
        let workers: Vec<_> = (0..concurrent)
            .map(|w| {
                let n = sagas / concurrent + u64::from(w < sagas % concurrent);
                tokio::spawn(async move {
                    for i in 0..n {
                        std::hint::black_box(bare(i).await);
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
    });
    start.elapsed()
}

/// A file journal in a fresh temp dir (kept alive by the returned guard).
fn file_journal(policy: FsyncPolicy) -> (FileJournal, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let j = FileJournal::open(dir.path().join("sagas.journal"), policy).unwrap();
    (j, dir)
}

/// A fresh journal, with the temp dir it lives in.
type MakeJournal<'a> = &'a dyn Fn() -> (Box<dyn Journal>, Option<tempfile::TempDir>);

/// Group `group`: ours (`weft`) and the floor (`bare`), `concurrent` sagas at a time.
fn bench_group(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    group: &str,
    concurrent: u64,
    journal: MakeJournal<'_>,
) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(STEPS * concurrent));
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            // A fresh journal per sample, so memory and files do not grow without bound.
            let (j, _dir) = journal();
            run_sagas(rt, j, iters * concurrent, concurrent)
        });
    });
    g.bench_function("bare", |b| {
        b.iter_custom(|iters| run_bare(rt, iters * concurrent, concurrent));
    });
    g.finish();
}

fn steps(c: &mut Criterion) {
    let rt = common::two_worker_runtime();
    bench_group(c, &rt, "saga/steps_in_memory", 1, &|| {
        (Box::new(MemoryJournal::new()), None)
    });
    bench_group(c, &rt, "saga/steps_file_every_record", 1, &|| {
        let (j, d) = file_journal(FsyncPolicy::EveryRecord);
        (Box::new(j), Some(d))
    });
    bench_group(
        c,
        &rt,
        "saga/steps_file_batch_16_sagas",
        CONCURRENT,
        &|| {
            let (j, d) = file_journal(FsyncPolicy::Batch);
            (Box::new(j), Some(d))
        },
    );
}

/// Sustained steps/s of each configuration, written as extra metrics.
fn rates() {
    // `--test` (a smoke run of every bench) scales the counts down and writes nothing.
    let smoke = std::env::args().any(|a| a == "--test");
    let scale = if smoke { 100 } else { 1 };
    let rt = common::two_worker_runtime();
    let mut rows: Vec<(String, String, f64, String)> = Vec::new();
    let mut rate = |name: &str, sagas: u64, elapsed: Duration| {
        rows.push((
            format!("steps_rate/{name}"),
            "weft".to_owned(),
            (sagas * STEPS) as f64 / elapsed.as_secs_f64(),
            "steps/s".to_owned(),
        ));
    };
    let n = 20_000 / scale;
    rate("in_memory", n, run_sagas(&rt, MemoryJournal::new(), n, 1));
    let n = 500 / scale;
    let (j, _d) = file_journal(FsyncPolicy::EveryRecord);
    rate("file_every_record", n, run_sagas(&rt, j, n, 1));
    let n = 4000 / scale;
    let (j, _d) = file_journal(FsyncPolicy::Batch);
    rate("file_batch_16_sagas", n, run_sagas(&rt, j, n, CONCURRENT));
    let (j, _d) = file_journal(FsyncPolicy::Batch);
    rate("file_batch_1_saga", n / 8, run_sagas(&rt, j, n / 8, 1));
    if !smoke {
        let rows: Vec<(&str, &str, f64, &str)> = rows
            .iter()
            .map(|(w, i, v, u)| (w.as_str(), i.as_str(), *v, u.as_str()))
            .collect();
        common::write_metrics("saga", &rows);
    }
}

fn rates_bench(_: &mut Criterion) {
    rates();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = steps, rates_bench
}
criterion_main!(benches);
