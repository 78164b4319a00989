//! weft-eventsourcing: append throughput and latency for the in-memory store and the file
//! log under each fsync policy, group commit under 4 concurrent appenders, and aggregate
//! loads with and without a snapshot.
//!
//! Groups are `eventsourcing/<workload>`, the function is `weft` and the value names the
//! backend and fsync policy (`file_batch` is group commit with an fsync per flush). The
//! `bare` function is the floor the disk sets under `file_every_append`: the same payload
//! bytes written to a plain file with one `write` and one `fdatasync`, no log.
//! No anchor crate is run side by side: the anchors (cqrs-es with postgres-es, esrs,
//! EventStoreDB) need a database server, which the bench machine does not have.
//!
//! Besides criterion's timings, per-operation latencies (p50 / p99 of single appends and
//! of batches of 100, each policy) and the sustained rate of 4 threads appending single
//! events through group commit are measured directly and written to
//! `target/criterion/weft-metrics/eventsourcing.json`, which `cargo xtask bench-report`
//! adds to BENCHMARKS.md.

// The settings and harness every bench shares.
#[allow(dead_code)] // not every bench uses every helper
mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weft::eventsourcing::{
    Aggregate, DomainEvent, EventStore, ExpectedVersion, FileLog, FileLogConfig, FsyncPolicy,
    InMemorySnapshotStore, InMemoryStore, NewEvent, Repository,
};

/// A 100-byte payload, about the size of a small JSON event.
fn payload() -> Vec<u8> {
    vec![b'x'; 100]
}

fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|_| NewEvent::new("Bench", 1, payload()))
        .collect()
}

/// The backends under test: a name and a fresh store (with the temp dir it lives in).
fn backends() -> Vec<(&'static str, Option<FsyncPolicy>)> {
    vec![
        ("in_memory", None),
        ("file_every_append", Some(FsyncPolicy::EveryAppend)),
        ("file_batch", Some(FsyncPolicy::Batch)),
        (
            "file_interval_10ms",
            Some(FsyncPolicy::Interval(Duration::from_millis(10))),
        ),
        ("file_never", Some(FsyncPolicy::Never)),
    ]
}

/// A store for `policy` (`None`: in memory), boxed, with the directory to keep alive.
fn open(policy: Option<FsyncPolicy>) -> (Box<dyn EventStore>, Option<tempfile::TempDir>) {
    match policy {
        None => (Box::new(InMemoryStore::new()), None),
        Some(p) => {
            let dir = tempfile::tempdir().unwrap();
            let log = FileLog::open(dir.path(), FileLogConfig::default().fsync(p)).unwrap();
            (Box::new(log), Some(dir))
        }
    }
}

fn append(c: &mut Criterion) {
    for (batch, group_name) in [
        (1, "eventsourcing/append_single"),
        (100, "eventsourcing/append_batch_100"),
    ] {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Elements(batch as u64));
        for (name, policy) in backends() {
            let (store, _dir) = open(policy);
            group.bench_function(BenchmarkId::new("weft", name), |b| {
                b.iter_batched(
                    || events(batch),
                    |evs| store.append("bench", ExpectedVersion::Any, evs).unwrap(),
                    BatchSize::SmallInput,
                );
            });
        }
        // The floor under `file_every_append`: the same bytes written to a plain file
        // with one `write` and one `fdatasync`, no log around them.
        let dir = tempfile::tempdir().unwrap();
        let mut file = std::fs::File::create(dir.path().join("raw")).unwrap();
        let bytes = payload().repeat(batch);
        group.bench_function(BenchmarkId::new("bare", "file_every_append"), |b| {
            b.iter(|| {
                file.write_all(&bytes).unwrap();
                file.sync_data().unwrap();
            });
        });
        group.finish();
    }
}

/// `threads` threads append single events to their own streams, `per_thread` each, at
/// once; returns the wall time.
fn concurrent_appends(store: &dyn EventStore, threads: usize, per_thread: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let stream = format!("writer-{t}");
                for _ in 0..per_thread {
                    store
                        .append(&stream, ExpectedVersion::Any, events(1))
                        .unwrap();
                }
            });
        }
    });
    start.elapsed()
}

fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("eventsourcing/group_commit_4_threads");
    group.throughput(Throughput::Elements(1));
    for (name, policy) in [
        ("file_batch", FsyncPolicy::Batch),
        ("file_every_append", FsyncPolicy::EveryAppend),
    ] {
        let (store, _dir) = open(Some(policy));
        group.bench_function(BenchmarkId::new("weft", name), |b| {
            b.iter_custom(|iters| concurrent_appends(&*store, 4, iters.div_ceil(4)));
        });
    }
    group.finish();
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Counter {
    total: u64,
    count: u64,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Added {
    amount: u64,
    note: String,
}

impl DomainEvent for Added {
    fn event_type(&self) -> &'static str {
        "Added"
    }
}

impl Aggregate for Counter {
    const TYPE: &'static str = "counter";
    type Command = u64;
    type Event = Added;
    type Error = String;
    fn handle(&self, n: &u64) -> Result<Vec<Added>, String> {
        Ok(vec![Added {
            amount: *n,
            note: "a short note".into(),
        }])
    }
    fn apply(&mut self, e: &Added) {
        self.total += e.amount;
        self.count += 1;
    }
}

/// Loads of an aggregate with 1,000 events: full replay, and from a snapshot taken every
/// 100 events (so the load reads the snapshot plus a tail of 0 to 99 events; here 50).
fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("eventsourcing/load_1000_events");
    group.throughput(Throughput::Elements(1));
    for (backend, policy) in [("in_memory", None), ("file", Some(FsyncPolicy::Never))] {
        let (store, _dir) = open(policy);
        let snapshots = InMemorySnapshotStore::new();
        let writer = Repository::<Counter, _>::new(&*store)
            .with_snapshots(snapshots.clone(), 100)
            .unwrap();
        for i in 0..1050 {
            writer.execute("c", &i).unwrap();
        }
        let replay = Repository::<Counter, _>::new(&*store);
        group.bench_function(BenchmarkId::new("weft", format!("{backend}_replay")), |b| {
            b.iter(|| assert_eq!(replay.load("c").unwrap().state.count, 1050));
        });
        let snap = Repository::<Counter, _>::new(&*store)
            .with_snapshots(snapshots, 100)
            .unwrap();
        group.bench_function(
            BenchmarkId::new("weft", format!("{backend}_snapshot")),
            |b| {
                b.iter(|| assert_eq!(snap.load("c").unwrap().state.count, 1050));
            },
        );
    }
    group.finish();
}

/// The `q` quantile of sorted durations, in microseconds.
fn quantile_us(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Per-operation latency percentiles and the group-commit rate, written as extra metrics.
fn latencies() {
    // `--test` (a smoke run of every bench) scales the counts down and writes nothing.
    let smoke = std::env::args().any(|a| a == "--test");
    let scale = if smoke { 100 } else { 1 };
    let mut rows: Vec<(String, String, f64, String)> = Vec::new();
    for (batch, ops) in [(1usize, 2000 / scale), (100, 300 / scale)] {
        for (name, policy) in backends() {
            let (store, _dir) = open(policy);
            let mut samples = Vec::with_capacity(ops);
            for _ in 0..ops {
                let evs = events(batch);
                let start = Instant::now();
                store.append("lat", ExpectedVersion::Any, evs).unwrap();
                samples.push(start.elapsed());
            }
            samples.sort_unstable();
            let workload = if batch == 1 {
                "append_single"
            } else {
                "append_batch_100"
            };
            for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
                rows.push((
                    format!("{workload}_latency_{label}/{name}"),
                    "weft".to_owned(),
                    quantile_us(&samples, q),
                    "µs".to_owned(),
                ));
            }
        }
    }
    for (name, policy) in [
        ("file_batch", FsyncPolicy::Batch),
        ("file_every_append", FsyncPolicy::EveryAppend),
    ] {
        let (store, _dir) = open(Some(policy));
        let per_thread = 2000 / scale as u64;
        let elapsed = concurrent_appends(&*store, 4, per_thread);
        rows.push((
            format!("group_commit_4_threads_rate/{name}"),
            "weft".to_owned(),
            (4 * per_thread) as f64 / elapsed.as_secs_f64(),
            "appends/s".to_owned(),
        ));
    }
    if !smoke {
        let rows: Vec<(&str, &str, f64, &str)> = rows
            .iter()
            .map(|(w, i, v, u)| (w.as_str(), i.as_str(), *v, u.as_str()))
            .collect();
        common::write_metrics("eventsourcing", &rows);
    }
}

fn latencies_bench(_: &mut Criterion) {
    latencies();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = append, group_commit, load, latencies_bench
}
criterion_main!(benches);
