//! weft-analytics: pre-parsed events through the whole engine (validation, rate-limit
//! check, partitioning, shard actors, windows, sketches, closed-window log, store).
//!
//! - `pipeline/tumbling_1m_10k_series/{1,2}` (worker threads): 100K events per iteration over 10K
//!   series (metric + `host` dimension), tumbling 1-minute windows with count, sum, min,
//!   max, a DDSketch (1 %) and HLL++ (p = 12) per cell; 1 shard on a 1-worker tokio
//!   runtime vs 2 shards on 2 workers. The producers (one task per worker, each its own
//!   source) run on the runtime too, so the thread count is the whole engine's. Each iteration ends with a flush (every event
//!   placed). Targets: >= 2M events/s per core; >= 1.8x from 1 to 2 threads.
//! - `pipeline/hopping_10s_2s_10k_series_1_thread`: the same events through hopping
//!   windows of 10 s sliding by 2 s (5 panes per window, merged on close). Target:
//!   >= 250K events/s per core.
//! - `pipeline/query_1k_series`: a query returning 1K series (group-by host, count, sum,
//!   p99) from the store. Then the engine's maximum ingest rate on its 2 threads is
//!   measured (two producers, pre-generated batches, full speed), and the p50/p99 of the
//!   same query *while* a task ingests pre-generated batches paced at half that rate go
//!   to `target/criterion/weft-metrics/pipeline.json`, with both rates. Target: p99 <= 1 ms.
//! - Memory: a counting allocator measures the bytes per (series, window) cell: open
//!   cells after 1 and after 100 events each (it must not grow with events), and stored
//!   cells. Written to the same metrics file.
//!
//! No other Rust crate offers this pipeline to run side by side; the anchors (Flink,
//! Arroyo, RisingWave) are not Rust libraries, so every group has only `weft`.

// The settings and harness every bench shares.
#[allow(dead_code)] // not every bench uses every helper
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weft::analytics::{Aggregate, Batch, Engine, Event, Limits, Query, TimeMode, WindowSpec};
use weft::time::ManualClock;

#[global_allocator]
static ALLOC: common::Counting = common::Counting;

/// Event time starts here (2023-11-14).
const T0: i64 = 1_700_000_000_000;
const SERIES: usize = 10_000;
const BATCH: usize = 1_000;
const EVENTS: usize = 100_000;

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

fn engine(rt: &tokio::runtime::Runtime, shards: usize, spec: WindowSpec) -> Engine {
    let clock = ManualClock::starting_at(UNIX_EPOCH + Duration::from_millis(T0 as u64));
    let _guard = rt.enter();
    Engine::builder()
        .shards(shards)
        .window(spec)
        .clock(clock)
        .tick_interval(None)
        .mailbox_capacity(16)
        .time(TimeMode::event_time(
            Duration::from_secs(1),
            Duration::from_secs(600),
        ))
        // Event time runs far ahead of the (manual) clock over a long bench.
        .limits(Limits::default().max_future(Duration::from_secs(10 * 365 * 86_400)))
        .build()
        .unwrap()
}

/// `n` events from `start` spread over `span_ms`, round-robin over `series` hosts.
fn events(metric: &str, start: i64, span_ms: i64, n: usize, series: usize) -> Vec<Batch> {
    let evs: Vec<Event> = (0..n)
        .map(|i| {
            Event::new(
                metric,
                start + (i as i64 * span_ms) / n as i64,
                ((i * 7919) % 1000 + 1) as f64,
            )
            .dim("host", format!("h{}", i % series))
            .entity_hashed((i % 5000) as u64)
        })
        .collect();
    evs.chunks(BATCH).map(|c| Batch::new(c.to_vec())).collect()
}

/// Ingests `batches` with `producers` tasks (every `producers`-th batch each), at full
/// speed, and waits until every event is placed.
async fn ingest_all(engine: &Engine, batches: Vec<Batch>, producers: usize) {
    let mut parts: Vec<Vec<Batch>> = (0..producers).map(|_| Vec::new()).collect();
    for (i, b) in batches.into_iter().enumerate() {
        parts[i % producers].push(b.source(format!("producer-{}", i % producers)));
    }
    let tasks: Vec<_> = parts
        .into_iter()
        .map(|part| {
            let engine = engine.clone();
            tokio::spawn(async move {
                for b in part {
                    engine.ingest(b).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    engine.flush(Duration::from_secs(60)).await.unwrap();
}

/// Runs `iters` iterations of `EVENTS` events (each covering `span_ms` of event time)
/// through `engine`, with one producer task per worker thread (each its own source,
/// taking every `producers`-th batch), all on the runtime; returns the time spent.
fn run(
    rt: &tokio::runtime::Runtime,
    engine: &Engine,
    producers: usize,
    cursor: &mut i64,
    span_ms: i64,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let batches = events("latency", *cursor, span_ms, EVENTS, SERIES);
        *cursor += span_ms;
        let start = Instant::now();
        rt.block_on(ingest_all(engine, batches, producers));
        total += start.elapsed();
    }
    total
}

fn tumbling(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline/tumbling_1m_10k_series");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for threads in [1, 2] {
        let rt = runtime(threads);
        let engine = engine(&rt, threads, WindowSpec::tumbling(Duration::from_secs(60)));
        let mut cursor = T0;
        // Workload `tumbling_1m_10k_series/<threads>`.
        group.bench_function(BenchmarkId::new("weft", threads), |b| {
            // 100K events per 10 s of event time: ~60 events per series per window.
            b.iter_custom(|iters| run(&rt, &engine, threads, &mut cursor, 10_000, iters));
        });
        rt.block_on(engine.shutdown(Duration::from_secs(5)));
    }
    group.finish();
}

fn hopping(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline/hopping_10s_2s_10k_series_1_thread");
    group.throughput(Throughput::Elements(EVENTS as u64));
    let rt = runtime(1);
    let engine = engine(
        &rt,
        1,
        WindowSpec::hopping(Duration::from_secs(10), Duration::from_secs(2)),
    );
    let mut cursor = T0;
    group.bench_function("weft", |b| {
        // 100K events per 2 s: every pane of every key gets ~10 events; a window of
        // every key closes per iteration.
        b.iter_custom(|iters| run(&rt, &engine, 1, &mut cursor, 2_000, iters));
    });
    rt.block_on(engine.shutdown(Duration::from_secs(5)));
    group.finish();
}

fn query(c: &mut Criterion) {
    let rt = runtime(2);
    let engine = engine(&rt, 2, WindowSpec::tumbling(Duration::from_secs(60)));
    // 1K series of metric `q`, 10 events each in the window [T0, T0 + 60 s); then time
    // moves on so that window is final and stored.
    rt.block_on(async {
        for b in events("q", T0, 50_000, 10_000, 1_000) {
            engine.ingest(b).await.unwrap();
        }
        engine
            .ingest(Batch::new(vec![Event::new("tick", T0 + 120_000, 0.0)]))
            .await
            .unwrap();
        engine.flush(Duration::from_secs(60)).await.unwrap();
    });
    let q = Query::new("default", "q", T0, T0 + 60_000)
        .group_by("host")
        .aggregates([Aggregate::Count, Aggregate::Sum, Aggregate::Quantile(0.99)]);
    assert_eq!(engine.query(&q).unwrap().groups.len(), 1_000);
    let mut group = c.benchmark_group("pipeline/query_1k_series");
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("weft", |b| b.iter(|| engine.query(&q).unwrap()));
    group.finish();

    // The same query while ingesting at half the engine's maximum rate. The maximum:
    // two producers ingest pre-generated batches of another metric at full speed.
    let max_rate = {
        let n = 400_000;
        let batches = events("max", T0 + 120_000, (n / 10) as i64, n, SERIES);
        let t = Instant::now();
        rt.block_on(ingest_all(&engine, batches, 2));
        n as f64 / t.elapsed().as_secs_f64()
    };
    let rate = max_rate / 2.0;
    // Enough pre-generated input for the whole sampling at that rate (generating it on
    // the fly would cost the workers more than ingesting it).
    let load_events = ((rate * 3.0) as usize / BATCH).max(1) * BATCH;
    let load = events(
        "load",
        T0 + 200_000,
        (load_events / 10) as i64,
        load_events,
        SERIES,
    );
    let done = Arc::new(AtomicBool::new(false));
    let ingested = Arc::new(AtomicUsize::new(0));
    let producer = {
        let (engine, done, ingested) = (engine.clone(), Arc::clone(&done), Arc::clone(&ingested));
        rt.spawn(async move {
            let start = tokio::time::Instant::now();
            for (i, b) in load.into_iter().enumerate() {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep_until(
                    start + Duration::from_secs_f64((i * BATCH) as f64 / rate),
                )
                .await;
                let n = b.len();
                engine.ingest(b).await.unwrap();
                ingested.fetch_add(n, Ordering::Relaxed);
            }
            done.store(true, Ordering::Relaxed);
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let (from, t0) = (ingested.load(Ordering::Relaxed), Instant::now());
    let mut samples: Vec<Duration> = Vec::with_capacity(1_000);
    while samples.len() < 1_000 && !done.load(Ordering::Relaxed) {
        let t = Instant::now();
        std::hint::black_box(engine.query(&q).unwrap());
        samples.push(t.elapsed());
        std::thread::sleep(Duration::from_micros(500));
    }
    let achieved = (ingested.load(Ordering::Relaxed) - from) as f64 / t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    rt.block_on(producer).unwrap();
    assert!(
        samples.len() >= 500,
        "the load ran out after {} queries",
        samples.len()
    );
    samples.sort_unstable();
    let memory = cell_bytes(&rt);
    let mut rows = vec![
        (
            "query_1k_series_p50_while_ingesting_at_half_max",
            "weft",
            common::percentile_us(&samples, 50.0),
            "µs",
        ),
        (
            "query_1k_series_p99_while_ingesting_at_half_max",
            "weft",
            common::percentile_us(&samples, 99.0),
            "µs",
        ),
        (
            "ingest_max_rate_2_threads",
            "weft",
            max_rate / 1e6,
            "M events/s",
        ),
        (
            "ingest_rate_during_the_queries",
            "weft",
            achieved / 1e6,
            "M events/s",
        ),
    ];
    rows.extend(memory);
    common::write_metrics("pipeline", &rows);
    rt.block_on(engine.shutdown(Duration::from_secs(5)));
}

/// Bytes per (series, window) cell: open after 1 and after 100 events per cell, and
/// stored after the windows close.
fn cell_bytes(
    rt: &tokio::runtime::Runtime,
) -> Vec<(&'static str, &'static str, f64, &'static str)> {
    let engine = engine(rt, 1, WindowSpec::tumbling(Duration::from_secs(60)));
    let measure = |start: i64, per_series: usize| {
        let batches = events("mem", start, 1_000, SERIES * per_series, SERIES);
        rt.block_on(async {
            for b in batches {
                engine.ingest(b).await.unwrap();
            }
            engine.flush(Duration::from_secs(60)).await.unwrap();
        });
    };
    let base = common::live_bytes();
    measure(T0, 1);
    let one = common::live_bytes() - base;
    measure(T0 + 2_000, 100);
    let hundred = common::live_bytes() - base;
    // Close the window: cells move to the store.
    rt.block_on(engine.finish(Duration::from_secs(60))).unwrap();
    let stored = common::live_bytes() - base;
    rt.block_on(engine.shutdown(Duration::from_secs(5)));
    let per = |b: isize| b as f64 / SERIES as f64;
    vec![
        ("bytes_per_open_cell_after_1_event", "weft", per(one), "B"),
        (
            "bytes_per_open_cell_after_100_events",
            "weft",
            per(hundred),
            "B",
        ),
        (
            "bytes_per_cell_after_close_store_and_series_table",
            "weft",
            per(stored),
            "B",
        ),
    ]
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = tumbling, hopping, query
}
criterion_main!(benches);
