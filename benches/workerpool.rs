//! weft-workerpool against rayon, threadpool and tokio's blocking pool, same workloads,
//! same run.
//!
//! Groups are `workerpool/<workload>`, implementations `weft`, `rayon`, `threadpool`,
//! `tokio` and, in `fork_join`, `bare`: the same sum computed sequentially on the calling
//! thread, as the floor. Every pool has 2 worker threads and is built once, before its
//! measurements; every iteration checks its result (a job count or a sum), so no
//! implementation can skip work.
//!
//! Pools, each used the way its users use it to run a batch and wait for all of it:
//!
//! - `weft`: `ThreadPool` with `min_threads(2)`, `max_threads(2)`, a queue bound of
//!   `QUEUE` (larger than any batch, so the `Block` backpressure never engages: the
//!   peers' queues are unbounded). A batch is `execute` per job and a latch: each job
//!   bumps a shared counter and the one that completes the batch unparks the submitter.
//!   (Not `scope`: its owner runs jobs itself, which would give weft a third thread.)
//! - `rayon`: `ThreadPoolBuilder::num_threads(2)`; a batch is `pool.scope` spawning every
//!   job (the scope body runs on a worker, the caller blocks).
//! - `threadpool`: `ThreadPool::new(2)`; `execute` per job, then `join()`.
//! - `tokio`: a multi-thread runtime with one (idle) async worker and
//!   `max_blocking_threads(2)`; `spawn_blocking` per job, then every `JoinHandle` awaited
//!   in `block_on`. Its blocking threads outlive a batch (10 s keep-alive).
//!
//! Jobs that must be `'static` (all but rayon's) share their counter through an `Arc`.
//!
//! Workloads:
//!
//! - `tiny_jobs`: `TINY_JOBS` jobs that each increment an `AtomicU64`: the per-job cost
//!   of submitting, dispatching and completing.
//! - `10us_jobs`: `SPIN_JOBS` jobs that each run a fixed computation calibrated once at
//!   start to take about 10 µs: distribution of real work (ideal: `SPIN_JOBS` × 10 µs / 2).
//! - `fork_join`: the sum of `FORK_LEN` values, split in halves recursively to depth
//!   `FORK_DEPTH` (1024 leaves of 64 values): `join` inside `install` for both `weft`
//!   and `rayon` (the same code, one pool each); `bare` sums the slice on the calling
//!   thread. Throughput is one tree per iteration.

// The settings and harness every bench shares.
#[allow(dead_code)] // not every bench uses every helper
mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weft::workerpool::{Backpressure, ThreadPool};

/// Worker threads of every pool.
const THREADS: usize = 2;
/// weft's queue bound: larger than any batch.
const QUEUE: usize = 16_384;
/// Jobs per iteration of `tiny_jobs`.
const TINY_JOBS: u64 = 10_000;
/// Jobs per iteration of `10us_jobs`.
const SPIN_JOBS: u64 = 1_000;
/// The target duration of one `10us_jobs` job.
const SPIN_TARGET: Duration = Duration::from_micros(10);
/// Values summed per iteration of `fork_join`.
const FORK_LEN: usize = 1 << 16;
/// Levels of halving in `fork_join`.
const FORK_DEPTH: u32 = 10;

fn weft_pool() -> ThreadPool {
    ThreadPool::builder()
        .min_threads(THREADS)
        .max_threads(THREADS)
        .queue_capacity(QUEUE)
        .backpressure(Backpressure::Block)
        .build()
        .unwrap()
}

fn rayon_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .unwrap()
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(THREADS)
        .build()
        .unwrap()
}

/// A batch's completion count; the job that completes the batch unparks the waiter.
struct Latch {
    done: AtomicU64,
    target: u64,
    waiter: Thread,
}

impl Latch {
    fn new(target: u64) -> Arc<Self> {
        Arc::new(Latch {
            done: AtomicU64::new(0),
            target,
            waiter: std::thread::current(),
        })
    }

    fn count(&self) {
        if self.done.fetch_add(1, Ordering::AcqRel) + 1 == self.target {
            self.waiter.unpark();
        }
    }

    fn wait(&self) {
        while self.done.load(Ordering::Acquire) < self.target {
            std::thread::park();
        }
    }
}

/// Runs `jobs` copies of `work` on every implementation in one group.
fn batch(c: &mut Criterion, name: &str, jobs: u64, work: fn()) {
    let mut g = c.benchmark_group(format!("workerpool/{name}"));
    g.throughput(Throughput::Elements(jobs));

    let pool = weft_pool();
    g.bench_function("weft", |b| {
        b.iter(|| {
            let latch = Latch::new(jobs);
            for _ in 0..jobs {
                let latch = Arc::clone(&latch);
                pool.execute(move || {
                    work();
                    latch.count();
                })
                .unwrap();
            }
            latch.wait();
            assert_eq!(latch.done.load(Ordering::Relaxed), jobs);
        })
    });
    let status = pool.status();
    assert_eq!(
        (status.threads_started, status.panicked),
        (THREADS as u64, 0)
    );
    drop(pool);

    let pool = rayon_pool();
    g.bench_function("rayon", |b| {
        b.iter(|| {
            let done = AtomicU64::new(0);
            pool.scope(|s| {
                for _ in 0..jobs {
                    let done = &done;
                    s.spawn(move |_| {
                        work();
                        done.fetch_add(1, Ordering::AcqRel);
                    });
                }
            });
            assert_eq!(done.load(Ordering::Relaxed), jobs);
        })
    });
    drop(pool);

    let pool = threadpool::ThreadPool::new(THREADS);
    g.bench_function("threadpool", |b| {
        b.iter(|| {
            let done = Arc::new(AtomicU64::new(0));
            for _ in 0..jobs {
                let done = Arc::clone(&done);
                pool.execute(move || {
                    work();
                    done.fetch_add(1, Ordering::AcqRel);
                });
            }
            pool.join();
            assert_eq!(done.load(Ordering::Relaxed), jobs);
        })
    });
    drop(pool);

    let rt = tokio_runtime();
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let done = Arc::new(AtomicU64::new(0));
            let handles: Vec<_> = (0..jobs)
                .map(|_| {
                    let done = Arc::clone(&done);
                    rt.spawn_blocking(move || {
                        work();
                        done.fetch_add(1, Ordering::AcqRel);
                    })
                })
                .collect();
            rt.block_on(async {
                for h in handles {
                    h.await.unwrap();
                }
            });
            assert_eq!(done.load(Ordering::Relaxed), jobs);
        })
    });
    drop(rt);
    g.finish();
}

fn tiny_jobs(c: &mut Criterion) {
    batch(c, "tiny_jobs", TINY_JOBS, || {});
}

/// Iterations of `spin` that take `SPIN_TARGET`, measured once.
static SPIN_ITERS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// A fixed, unoptimisable computation of `iters` steps.
fn spin(iters: u64) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..iters {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
    }
    x
}

/// How many `spin` steps take `SPIN_TARGET` on this machine (best of several timings).
fn calibrate() -> u64 {
    const PROBE: u64 = 200_000;
    let best = (0..20)
        .map(|_| {
            let start = Instant::now();
            black_box(spin(PROBE));
            start.elapsed()
        })
        .min()
        .unwrap();
    (PROBE as f64 * SPIN_TARGET.as_secs_f64() / best.as_secs_f64()).max(1.0) as u64
}

fn ten_us_jobs(c: &mut Criterion) {
    let iters = *SPIN_ITERS.get_or_init(calibrate);
    eprintln!("workerpool/10us_jobs: {iters} spin steps per job");
    batch(c, "10us_jobs", SPIN_JOBS, || {
        black_box(spin(*SPIN_ITERS.get().unwrap()));
    });
}

/// Sums a leaf.
fn leaf(data: &[u64]) -> u64 {
    data.iter().sum()
}

/// Halves `data` `depth` times with `join`.
fn weft_sum(pool: &ThreadPool, data: &[u64], depth: u32) -> u64 {
    if depth == 0 {
        return leaf(data);
    }
    let (left, right) = data.split_at(data.len() / 2);
    let (l, r) = pool.join(
        || weft_sum(pool, left, depth - 1),
        || weft_sum(pool, right, depth - 1),
    );
    l + r
}

fn rayon_sum(data: &[u64], depth: u32) -> u64 {
    if depth == 0 {
        return leaf(data);
    }
    let (left, right) = data.split_at(data.len() / 2);
    let (l, r) = rayon::join(
        || rayon_sum(left, depth - 1),
        || rayon_sum(right, depth - 1),
    );
    l + r
}

fn fork_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("workerpool/fork_join");
    g.throughput(Throughput::Elements(1));
    let data: Arc<[u64]> = (0..FORK_LEN as u64).collect();
    let expected = (FORK_LEN as u64) * (FORK_LEN as u64 - 1) / 2;

    let pool = weft_pool();
    g.bench_function("weft", |b| {
        b.iter(|| {
            let sum = pool.install(|| weft_sum(&pool, &data, FORK_DEPTH));
            assert_eq!(sum, expected);
        })
    });
    assert_eq!(pool.status().panicked, 0);
    drop(pool);

    let pool = rayon_pool();
    g.bench_function("rayon", |b| {
        b.iter(|| {
            let sum = pool.install(|| rayon_sum(&data, FORK_DEPTH));
            assert_eq!(sum, expected);
        })
    });
    drop(pool);

    g.bench_function("bare", |b| {
        b.iter(|| {
            let sum = leaf(black_box(&data));
            assert_eq!(sum, expected);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config().sample_size(20);
    targets = tiny_jobs, ten_us_jobs, fork_join
}
criterion_main!(benches);
