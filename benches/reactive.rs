//! weft-reactive against futures-util, tokio and futures-channel, same workloads, same run.
//!
//! Groups are `reactive/<workload>`, implementations `weft` and the peer crate's name:
//!
//! - `pipeline_5ops`: the per-item cost of a five-operator pipeline over an in-memory
//!   source, `map → filter → scan → batch(64) → metered` (ours: `ReactiveExt::batch` by
//!   size or time and `metered`) against `map → filter → scan → chunks(64) → inspect`
//!   (futures-util `StreamExt` alone), both driven by `futures::executor::block_on`;
//! - `spsc_hop`: items from one producer thread to one consumer thread through a bounded
//!   buffer of 1024 (ours: `channel` with `Overflow::Block`, `send_blocking` /
//!   `recv_blocking`), against `tokio::sync::mpsc` (`blocking_send` / `blocking_recv`)
//!   and `futures::channel::mpsc` (`block_on` of `send` / `next`);
//! - `multicast_8`: one producer to 8 subscribers, in bursts of 256 that each subscriber
//!   then drains (ours: `Subject` with 8 blocking subscribers; tokio: `broadcast`),
//!   single-threaded so the figure is the cost of the buffers, not of the scheduler.

// The settings and harness every bench shares.
#[allow(dead_code)] // not every bench uses every helper
mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt, stream};
use weft::reactive::{ManualTimer, Overflow, ReactiveExt, Subject, channel};

/// Items per iteration of the pipeline and hop workloads.
const ITEMS: u64 = 100_000;
/// Buffer capacity of the hop workload.
const CAPACITY: usize = 1024;
/// Subscribers and burst size of the multicast workload.
const SUBSCRIBERS: usize = 8;
const BURST: u64 = 256;

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("reactive/pipeline_5ops");
    g.throughput(Throughput::Elements(ITEMS));
    let timer = ManualTimer::new();
    g.bench_function("weft", |b| {
        b.iter(|| {
            let s = stream::iter(0..ITEMS)
                .map(|x| x.wrapping_mul(3))
                .filter(|x| std::future::ready(x % 2 == 0))
                .scan(0u64, |acc, x| {
                    *acc = acc.wrapping_add(x);
                    std::future::ready(Some(*acc))
                })
                .batch(64, Duration::from_secs(1), timer.clone())
                .unwrap()
                .metered();
            futures_executor::block_on(
                s.fold(0usize, |n, batch| std::future::ready(n + batch.len())),
            )
        })
    });
    g.bench_function("futures", |b| {
        b.iter(|| {
            let mut seen = 0u64;
            let s = stream::iter(0..ITEMS)
                .map(|x| x.wrapping_mul(3))
                .filter(|x| std::future::ready(x % 2 == 0))
                .scan(0u64, |acc, x| {
                    *acc = acc.wrapping_add(x);
                    std::future::ready(Some(*acc))
                })
                .chunks(64)
                .inspect(|_| seen += 1);
            futures_executor::block_on(
                s.fold(0usize, |n, batch| std::future::ready(n + batch.len())),
            )
        })
    });
    g.finish();
}

/// Runs `consume` on a second thread and `produce` on this one; returns the wall time.
fn hop(produce: impl FnOnce() + Send, consume: impl FnOnce() -> u64 + Send) -> Duration {
    let start = Instant::now();
    let received = std::thread::scope(|s| {
        let consumer = s.spawn(consume);
        produce();
        consumer.join().unwrap()
    });
    let elapsed = start.elapsed();
    assert_eq!(received, ITEMS);
    elapsed
}

fn spsc(c: &mut Criterion) {
    let mut g = c.benchmark_group("reactive/spsc_hop");
    g.throughput(Throughput::Elements(ITEMS));
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (tx, rx) = channel::<u64>(CAPACITY, Overflow::Block).unwrap();
                    hop(
                        move || {
                            for i in 0..ITEMS {
                                let _ = tx.send_blocking(i).unwrap();
                            }
                        },
                        move || std::iter::from_fn(|| rx.recv_blocking()).count() as u64,
                    )
                })
                .sum()
        })
    });
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(CAPACITY);
                    hop(
                        move || {
                            for i in 0..ITEMS {
                                tx.blocking_send(i).unwrap();
                            }
                        },
                        move || std::iter::from_fn(|| rx.blocking_recv()).count() as u64,
                    )
                })
                .sum()
        })
    });
    g.bench_function("futures", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (mut tx, mut rx) = futures_channel::mpsc::channel::<u64>(CAPACITY);
                    hop(
                        move || {
                            futures_executor::block_on(async {
                                for i in 0..ITEMS {
                                    tx.send(i).await.unwrap();
                                }
                            })
                        },
                        move || {
                            futures_executor::block_on(async {
                                let mut n = 0;
                                while rx.next().await.is_some() {
                                    n += 1;
                                }
                                n
                            })
                        },
                    )
                })
                .sum()
        })
    });
    g.finish();
}

/// One multicast iteration: bursts of `BURST` sends, each followed by every subscriber
/// draining; `drain(i)` empties subscriber `i` and returns how many it received.
fn bursts(mut send: impl FnMut(u64), mut drain: impl FnMut(usize) -> u64) {
    let mut received = 0u64;
    for burst in 0..ITEMS / BURST {
        for i in 0..BURST {
            send(burst * BURST + i);
        }
        received += (0..SUBSCRIBERS).map(&mut drain).sum::<u64>();
    }
    assert_eq!(received, ITEMS / BURST * BURST * SUBSCRIBERS as u64);
}

fn multicast(c: &mut Criterion) {
    let mut g = c.benchmark_group("reactive/multicast_8");
    g.throughput(Throughput::Elements(ITEMS));
    g.bench_function("weft", |b| {
        let subject = Subject::new();
        let mut subs: Vec<_> = (0..SUBSCRIBERS)
            .map(|_| subject.subscribe(BURST as usize, Overflow::Block).unwrap())
            .collect();
        b.iter(|| {
            bursts(
                |x| {
                    subject.try_send(x).unwrap();
                },
                |i| std::iter::from_fn(|| subs[i].try_recv().ok()).count() as u64,
            )
        })
    });
    g.bench_function("tokio", |b| {
        let (tx, _) = tokio::sync::broadcast::channel::<u64>(BURST as usize);
        let mut subs: Vec<_> = (0..SUBSCRIBERS).map(|_| tx.subscribe()).collect();
        b.iter(|| {
            bursts(
                |x| {
                    tx.send(x).unwrap();
                },
                |i| std::iter::from_fn(|| subs[i].try_recv().ok()).count() as u64,
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = pipeline, spsc, multicast
}
criterion_main!(benches);
