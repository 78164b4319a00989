//! weft-lockfree against its anchor crates, same workload, same run.
//!
//! Groups are named `lockfree/<workload>` and implementations `weft` (ours) or the peer's
//! name, which is the convention `cargo xtask bench-report` turns into BENCHMARKS.md.
//!
//! Every iteration moves `ITEMS` values through a fresh structure with real threads
//! (`std::thread::scope`), so the figure includes cross-core hand-off, not just the cost
//! of an uncontended call. A thread that finds the structure full or empty yields
//! (`std::thread::yield_now`) for every implementation alike: on a machine with fewer
//! cores than threads, spinning without yielding would measure the scheduler instead.

// The settings and harness every bench shares.
#[allow(dead_code)] // not every bench uses every helper
mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringbuf::traits::{Consumer as _, Producer as _, Split as _};

/// Values moved per iteration of a queue workload.
const ITEMS: u64 = 100_000;
/// Capacity of every bounded queue and ring.
const CAP: usize = 1024;
/// Items per call in the batch workloads.
const CHUNK: usize = 64;
/// Increments per thread in the counter workload.
const ADDS: u64 = 1_000_000;

/// The MPMC interface every queue under test is adapted to.
trait Mpmc: Sync {
    fn push(&self, v: u64) -> bool;
    fn pop(&self) -> Option<u64>;
}

impl Mpmc for weft::lockfree::ArrayQueue<u64> {
    fn push(&self, v: u64) -> bool {
        weft::lockfree::ArrayQueue::push(self, v).is_ok()
    }
    fn pop(&self) -> Option<u64> {
        weft::lockfree::ArrayQueue::pop(self)
    }
}

impl Mpmc for crossbeam_queue::ArrayQueue<u64> {
    fn push(&self, v: u64) -> bool {
        crossbeam_queue::ArrayQueue::push(self, v).is_ok()
    }
    fn pop(&self) -> Option<u64> {
        crossbeam_queue::ArrayQueue::pop(self)
    }
}

impl Mpmc for crossbeam_queue::SegQueue<u64> {
    fn push(&self, v: u64) -> bool {
        crossbeam_queue::SegQueue::push(self, v);
        true
    }
    fn pop(&self) -> Option<u64> {
        crossbeam_queue::SegQueue::pop(self)
    }
}

impl Mpmc for concurrent_queue::ConcurrentQueue<u64> {
    fn push(&self, v: u64) -> bool {
        concurrent_queue::ConcurrentQueue::push(self, v).is_ok()
    }
    fn pop(&self) -> Option<u64> {
        concurrent_queue::ConcurrentQueue::pop(self).ok()
    }
}

/// std's bounded channel; its `Receiver` is single-consumer, so consumers share it
/// behind a `Mutex` (how std users share one receiver).
struct StdChannel {
    tx: std::sync::mpsc::SyncSender<u64>,
    rx: Mutex<std::sync::mpsc::Receiver<u64>>,
}

impl Mpmc for StdChannel {
    fn push(&self, v: u64) -> bool {
        self.tx.try_send(v).is_ok()
    }
    fn pop(&self) -> Option<u64> {
        self.rx.lock().unwrap().try_recv().ok()
    }
}

fn std_channel() -> StdChannel {
    let (tx, rx) = std::sync::mpsc::sync_channel(CAP);
    StdChannel {
        tx,
        rx: Mutex::new(rx),
    }
}

/// Moves `ITEMS` values from `producers` threads to `consumers` threads through `q`
/// and returns the elapsed time. Checks the sum so no implementation can cheat.
fn run_mpmc<Q: Mpmc>(q: &Q, producers: u64, consumers: u64) -> Duration {
    let per = ITEMS / producers;
    let total = per * producers;
    let popped = AtomicU64::new(0);
    let sum = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for p in 0..producers {
            s.spawn(move || {
                for i in 0..per {
                    let v = p * per + i;
                    while !q.push(v) {
                        std::thread::yield_now();
                    }
                }
            });
        }
        for _ in 0..consumers {
            let (popped, sum) = (&popped, &sum);
            s.spawn(move || {
                let mut local = 0;
                while popped.load(Ordering::Relaxed) < total {
                    match q.pop() {
                        Some(v) => {
                            local += v;
                            popped.fetch_add(1, Ordering::Relaxed);
                        }
                        None => std::thread::yield_now(),
                    }
                }
                sum.fetch_add(local, Ordering::Relaxed);
            });
        }
    });
    let elapsed = start.elapsed();
    assert_eq!(sum.load(Ordering::Relaxed), total * (total - 1) / 2);
    elapsed
}

fn mpmc(c: &mut Criterion) {
    for (name, producers, consumers) in [("mpmc_1p1c", 1, 1), ("mpmc_2p2c", 2, 2)] {
        let mut g = c.benchmark_group(format!("lockfree/{name}"));
        g.throughput(Throughput::Elements(ITEMS));
        macro_rules! bench {
            ($id:expr, $make:expr) => {
                g.bench_function($id, |b| {
                    b.iter_custom(|iters| {
                        (0..iters)
                            .map(|_| run_mpmc(&$make, producers, consumers))
                            .sum()
                    })
                });
            };
        }
        bench!("weft", weft::lockfree::ArrayQueue::new(CAP).unwrap());
        bench!(
            "crossbeam::ArrayQueue",
            crossbeam_queue::ArrayQueue::new(CAP)
        );
        bench!("crossbeam::SegQueue", crossbeam_queue::SegQueue::new());
        bench!(
            "concurrent-queue",
            concurrent_queue::ConcurrentQueue::bounded(CAP)
        );
        bench!("std::sync_channel", std_channel());
        g.finish();
    }
}

/// One SPSC implementation: single-item and batch operations on its two ends.
trait Spsc {
    type Tx: Send;
    type Rx: Send;
    fn make() -> (Self::Tx, Self::Rx);
    fn push(tx: &mut Self::Tx, v: u64) -> bool;
    fn pop(rx: &mut Self::Rx) -> Option<u64>;
    fn push_slice(tx: &mut Self::Tx, items: &[u64]) -> usize;
    fn pop_slice(rx: &mut Self::Rx, buf: &mut [u64]) -> usize;
}

struct Weft;
impl Spsc for Weft {
    type Tx = weft::lockfree::spsc::Producer<u64>;
    type Rx = weft::lockfree::spsc::Consumer<u64>;
    fn make() -> (Self::Tx, Self::Rx) {
        weft::lockfree::spsc::channel(CAP).unwrap()
    }
    fn push(tx: &mut Self::Tx, v: u64) -> bool {
        tx.push(v).is_ok()
    }
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.pop().ok()
    }
    fn push_slice(tx: &mut Self::Tx, items: &[u64]) -> usize {
        tx.push_slice(items)
    }
    fn pop_slice(rx: &mut Self::Rx, buf: &mut [u64]) -> usize {
        rx.pop_slice(buf)
    }
}

struct Rtrb;
impl Spsc for Rtrb {
    type Tx = rtrb::Producer<u64>;
    type Rx = rtrb::Consumer<u64>;
    fn make() -> (Self::Tx, Self::Rx) {
        rtrb::RingBuffer::new(CAP)
    }
    fn push(tx: &mut Self::Tx, v: u64) -> bool {
        tx.push(v).is_ok()
    }
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.pop().ok()
    }
    fn push_slice(tx: &mut Self::Tx, items: &[u64]) -> usize {
        tx.push_partial_slice(items).0.len()
    }
    fn pop_slice(rx: &mut Self::Rx, buf: &mut [u64]) -> usize {
        rx.pop_partial_slice(buf).0.len()
    }
}

struct Ringbuf;
impl Spsc for Ringbuf {
    type Tx = ringbuf::HeapProd<u64>;
    type Rx = ringbuf::HeapCons<u64>;
    fn make() -> (Self::Tx, Self::Rx) {
        ringbuf::HeapRb::new(CAP).split()
    }
    fn push(tx: &mut Self::Tx, v: u64) -> bool {
        tx.try_push(v).is_ok()
    }
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.try_pop()
    }
    fn push_slice(tx: &mut Self::Tx, items: &[u64]) -> usize {
        tx.push_slice(items)
    }
    fn pop_slice(rx: &mut Self::Rx, buf: &mut [u64]) -> usize {
        rx.pop_slice(buf)
    }
}

/// Streams `ITEMS` values from one thread to another, one at a time or in chunks.
fn run_spsc<S: Spsc>(batch: bool) -> Duration {
    let (mut tx, mut rx) = S::make();
    let start = Instant::now();
    let sum = std::thread::scope(|s| {
        s.spawn(move || {
            if batch {
                let mut chunk = [0u64; CHUNK];
                let mut next = 0;
                while next < ITEMS {
                    let len = (ITEMS - next).min(CHUNK as u64) as usize;
                    for (i, slot) in chunk[..len].iter_mut().enumerate() {
                        *slot = next + i as u64;
                    }
                    let mut sent = 0;
                    while sent < len {
                        let n = S::push_slice(&mut tx, &chunk[sent..len]);
                        if n == 0 {
                            std::thread::yield_now();
                        }
                        sent += n;
                    }
                    next += len as u64;
                }
            } else {
                for v in 0..ITEMS {
                    while !S::push(&mut tx, v) {
                        std::thread::yield_now();
                    }
                }
            }
        });
        let mut sum = 0;
        let mut got = 0;
        let mut buf = [0u64; CHUNK];
        while got < ITEMS {
            if batch {
                let n = S::pop_slice(&mut rx, &mut buf);
                if n == 0 {
                    std::thread::yield_now();
                }
                sum += buf[..n].iter().sum::<u64>();
                got += n as u64;
            } else {
                match S::pop(&mut rx) {
                    Some(v) => {
                        sum += v;
                        got += 1;
                    }
                    None => std::thread::yield_now(),
                }
            }
        }
        sum
    });
    let elapsed = start.elapsed();
    assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
    elapsed
}

fn spsc(c: &mut Criterion) {
    for (name, batch) in [("spsc_single", false), ("spsc_batch64", true)] {
        let mut g = c.benchmark_group(format!("lockfree/{name}"));
        g.throughput(Throughput::Elements(ITEMS));
        g.bench_function("weft", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run_spsc::<Weft>(batch)).sum())
        });
        g.bench_function("rtrb", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run_spsc::<Rtrb>(batch)).sum())
        });
        g.bench_function("ringbuf", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run_spsc::<Ringbuf>(batch)).sum())
        });
        g.finish();
    }
}

/// Two threads each add `ADDS` times to one counter.
fn run_counter(add: &(dyn Fn() + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..ADDS {
                    add();
                }
            });
        }
    });
    start.elapsed()
}

fn counter(c: &mut Criterion) {
    let mut g = c.benchmark_group("lockfree/counter_2threads");
    g.throughput(Throughput::Elements(2 * ADDS));
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let c = weft::lockfree::StripedCounter::new();
                    let d = run_counter(&|| c.incr());
                    assert_eq!(c.sum(), 2 * ADDS);
                    d
                })
                .sum()
        })
    });
    g.bench_function("std::AtomicU64", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let c = AtomicU64::new(0);
                    let d = run_counter(&|| {
                        c.fetch_add(1, Ordering::Relaxed);
                    });
                    assert_eq!(c.load(Ordering::Relaxed), 2 * ADDS);
                    d
                })
                .sum()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = mpmc, spsc, counter
}
criterion_main!(benches);
