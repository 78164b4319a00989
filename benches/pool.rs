//! weft-pool against deadpool and bb8, same workloads, same run.
//!
//! The shape of the public rust-pool-benchmark harness: W tokio tasks each do 10
//! get/drop cycles on a pool of size S, for (S, W) in (4, 16), (4, 256), (16, 64).
//! Groups are `pool/s{S}_w{W}`, implementations `weft`, `deadpool` and `bb8`. Every pool
//! holds trivial objects (a `u64`; creation and validation are free), validates each
//! object at checkout (each crate's default: `recycle` / `is_valid`), and runs on the
//! same current-thread tokio runtime, so the figures are the pools' own overhead:
//! queueing, hand-off, wake-ups and bookkeeping.

// The settings and harness every bench shares.
#[allow(dead_code)] // not every bench uses every helper
mod common;

use std::convert::Infallible;
use std::future::Future;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// Get/drop cycles per task.
const CYCLES: u64 = 10;

/// The cells: (pool size, tasks).
const CELLS: [(usize, usize); 3] = [(4, 16), (4, 256), (16, 64)];

struct Weft;

impl weft::pool::Manager for Weft {
    type Object = u64;
    type Error = std::io::Error;
    async fn create(&self) -> Result<u64, std::io::Error> {
        Ok(0)
    }
}

struct Deadpool;

impl deadpool::managed::Manager for Deadpool {
    type Type = u64;
    type Error = Infallible;
    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }
    async fn recycle(
        &self,
        _: &mut u64,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

struct Bb8;

impl bb8::ManageConnection for Bb8 {
    type Connection = u64;
    type Error = Infallible;
    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }
    async fn is_valid(&self, _: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }
    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Spawns `tasks` tasks each running `cycle` [`CYCLES`] times, and waits for them all.
async fn storm<P, F, Fut>(pool: &P, tasks: usize, cycle: F)
where
    P: Clone + Send + 'static,
    F: Fn(P) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..CYCLES {
                    cycle(pool.clone()).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
}

/// Benches one implementation of a cell: `tasks` tasks doing [`CYCLES`] `cycle`s each.
fn cell<P, F, Fut>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    pool: &P,
    tasks: usize,
    cycle: F,
) where
    P: Clone + Send + 'static,
    F: Fn(P) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    g.bench_function(name, |b| b.iter(|| rt.block_on(storm(pool, tasks, cycle))));
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    for (size, tasks) in CELLS {
        let mut g = c.benchmark_group(format!("pool/s{size}_w{tasks}"));
        g.throughput(Throughput::Elements(tasks as u64 * CYCLES));

        let ours = rt.block_on(async { weft::pool::Pool::builder(Weft).max_size(size).build() });
        cell(&mut g, &rt, "weft", &ours.unwrap(), tasks, |p| async move {
            drop(p.get().await.unwrap());
        });

        let theirs = deadpool::managed::Pool::<Deadpool>::builder(Deadpool)
            .max_size(size)
            .build();
        cell(
            &mut g,
            &rt,
            "deadpool",
            &theirs.unwrap(),
            tasks,
            |p| async move {
                drop(p.get().await.unwrap());
            },
        );

        let theirs = rt.block_on(bb8::Pool::builder().max_size(size as u32).build(Bb8));
        cell(
            &mut g,
            &rt,
            "bb8",
            &theirs.unwrap(),
            tasks,
            |p| async move {
                drop(p.get().await.unwrap());
            },
        );
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench
}
criterion_main!(benches);
