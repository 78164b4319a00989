//! weft-analytics durability: how long a durable engine takes to start (open the log,
//! load the snapshot, replay, report ready).
//!
//! - `replay/1M_events/full_log`: a data directory holding 1M events (1,000 batches of
//!   1,000, over 10K series, tumbling 1-minute windows across 20 minutes of event
//!   time); each iteration builds the engine and waits for [`Engine::ready`].
//! - `replay/1M_events/snapshot_plus_10pct_tail`: the same log with a snapshot taken
//!   after 900K events, so the start loads the snapshot and replays 100K events.
//!
//! The issue asks for 10M events; one iteration of that is minutes of setup on a
//! 2-core machine, so the bench measures 1M. Replay is linear in the events replayed
//! (each batch is decoded and placed as ingest would), so the metrics file also
//! carries the per-event rate and a full-log 10M figure *extrapolated* from it, named
//! as such. The snapshot start is not extrapolated: it is the snapshot's size (the
//! store's retained windows plus open windows, not the event count) plus the tail.
//! No other Rust crate offers this engine to run side by side; only `weft` runs.

#[allow(dead_code)] // not every bench uses every helper
mod common;

use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weft::analytics::{Ack, Batch, Durability, Engine, Event, Limits, TimeMode, WindowSpec};
use weft::time::ManualClock;

const T0: i64 = 1_700_000_000_000;
const SERIES: usize = 10_000;
const BATCH: usize = 1_000;
const EVENTS: usize = 1_000_000;
/// Event time the input spans: 20 one-minute windows.
const SPAN_MS: i64 = 20 * 60_000;

fn engine(dir: &Path) -> Engine {
    let clock = ManualClock::starting_at(UNIX_EPOCH + Duration::from_millis(T0 as u64));
    Engine::builder()
        .shards(2)
        .window(WindowSpec::tumbling(Duration::from_secs(60)))
        .clock(clock)
        .tick_interval(None)
        .time(TimeMode::event_time(
            Duration::from_secs(1),
            Duration::from_secs(600),
        ))
        .limits(Limits::default().max_future(Duration::from_secs(86_400)))
        .durable(Durability::new(dir).ack(Ack::AfterAppend))
        .build()
        .unwrap()
}

fn batch(k: usize) -> Batch {
    let events = (0..BATCH)
        .map(|j| {
            let i = k * BATCH + j;
            Event::new(
                "replay",
                T0 + (i as i64 * SPAN_MS) / EVENTS as i64,
                ((i * 7919) % 1000 + 1) as f64,
            )
            .dim("host", format!("h{}", i % SERIES))
            .entity_hashed((i % 5000) as u64)
        })
        .collect();
    Batch::new(events)
}

/// Fills `dir` with the whole input; with `snapshot_at`, takes a snapshot after that
/// many batches.
fn fill(rt: &tokio::runtime::Runtime, dir: &Path, snapshot_at: Option<usize>) {
    rt.block_on(async {
        let engine = engine(dir);
        engine.ready().await.unwrap();
        for k in 0..EVENTS / BATCH {
            if Some(k) == snapshot_at {
                engine.snapshot().await.unwrap();
            }
            engine.ingest(batch(k)).await.unwrap();
        }
        engine.shutdown(Duration::from_secs(60)).await;
    });
}

fn start(rt: &tokio::runtime::Runtime, dir: &Path) -> Duration {
    rt.block_on(async {
        let t = Instant::now();
        let engine = engine(dir);
        engine.ready().await.unwrap();
        let d = t.elapsed();
        engine.shutdown(Duration::from_secs(60)).await;
        d
    })
}

fn replay(c: &mut Criterion) {
    let rt = common::two_worker_runtime();
    let full = tempfile::tempdir().unwrap();
    let snap = tempfile::tempdir().unwrap();
    fill(&rt, full.path(), None);
    fill(&rt, snap.path(), Some(EVENTS / BATCH * 9 / 10));

    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(EVENTS as u64));
    let mut medians = Vec::new();
    for (name, dir) in [
        ("full_log", full.path()),
        ("snapshot_plus_10pct_tail", snap.path()),
    ] {
        g.bench_function(BenchmarkId::new("1M_events", name), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| start(&rt, dir)).sum());
        });
        let mut runs: Vec<Duration> = (0..5).map(|_| start(&rt, dir)).collect();
        runs.sort_unstable();
        medians.push(runs[2]);
    }
    g.finish();
    let (full_t, snap_t) = (medians[0].as_secs_f64(), medians[1].as_secs_f64());
    common::write_metrics(
        "replay",
        &[
            ("start_1M_events_full_log", "weft", full_t * 1e3, "ms"),
            (
                "start_1M_events_snapshot_plus_100k_tail",
                "weft",
                snap_t * 1e3,
                "ms",
            ),
            (
                "replay_rate_full_log",
                "weft",
                EVENTS as f64 / full_t / 1e6,
                "M events/s",
            ),
            (
                "start_10M_events_full_log_extrapolated_x10",
                "weft",
                full_t * 10.0,
                "s",
            ),
        ],
    );
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = replay
}
criterion_main!(benches);
