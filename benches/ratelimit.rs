//! weft-ratelimit against governor, same workloads, same run.
//!
//! Groups are `ratelimit/<workload>`, implementations `weft` and `governor`. Both use
//! their default clocks (a TSC clock through quanta in both crates) and the same quota.
//! Every check in the timed loops is admitted (the quotas are far above the check rate),
//! so the figures are the cost of the common path; keyed workloads cycle over keys that
//! were inserted beforehand.
//!
//! Memory per key is measured with a counting global allocator (bytes allocated by the
//! limiter after inserting N distinct keys, divided by N) and written to
//! `target/criterion/weft-metrics/ratelimit.json`, which `cargo xtask bench-report` adds
//! to BENCHMARKS.md.

// The settings and harness every bench shares.
#[allow(dead_code)] // not every bench uses every helper
mod common;

use std::hash::RandomState;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[global_allocator]
static ALLOC: common::Counting = common::Counting;

/// A rate far above what the bench can reach, so every check is admitted.
const RATE: u32 = 1_000_000_000;
/// Checks per thread in the contended workload.
const CONTENDED: u64 = 200_000;

fn weft_quota() -> weft::ratelimit::Quota {
    weft::ratelimit::Quota::per_second(RATE).unwrap()
}

fn governor_quota() -> governor::Quota {
    governor::Quota::per_second(NonZeroU32::new(RATE).unwrap())
}

/// A quota for keyed workloads: one cell per hour with a burst of a million, so every
/// check is admitted and no key replenishes (and is dropped as idle) during the bench:
/// both limiters keep every key in their tables.
fn weft_keyed_quota() -> weft::ratelimit::Quota {
    weft::ratelimit::Quota::with_period(Duration::from_secs(3600))
        .unwrap()
        .allow_burst(1_000_000)
        .unwrap()
}

fn governor_keyed_quota() -> governor::Quota {
    governor::Quota::with_period(Duration::from_secs(3600))
        .unwrap()
        .allow_burst(NonZeroU32::new(1_000_000).unwrap())
}

fn direct(c: &mut Criterion) {
    let mut g = c.benchmark_group("ratelimit/check_uncontended");
    g.throughput(Throughput::Elements(1));
    let ours = weft::ratelimit::RateLimiter::direct(weft_quota());
    g.bench_function("weft", |b| b.iter(|| ours.check().is_ok()));
    let theirs = governor::RateLimiter::direct(governor_quota());
    g.bench_function("governor", |b| b.iter(|| theirs.check().is_ok()));
    g.finish();

    let mut g = c.benchmark_group("ratelimit/check_contended_2threads");
    g.throughput(Throughput::Elements(2 * CONTENDED));
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            let l = weft::ratelimit::RateLimiter::direct(weft_quota());
            (0..iters)
                .map(|_| common::two_threads(CONTENDED, &|| l.check().is_ok()))
                .sum()
        })
    });
    g.bench_function("governor", |b| {
        b.iter_custom(|iters| {
            let l = governor::RateLimiter::direct(governor_quota());
            (0..iters)
                .map(|_| common::two_threads(CONTENDED, &|| l.check().is_ok()))
                .sum()
        })
    });
    g.finish();
}

/// Keys in a scrambled order, so consecutive checks hit unrelated table slots.
fn keys(n: u64) -> Vec<u64> {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut v: Vec<u64> = (0..n).collect();
    rng.shuffle(&mut v);
    v
}

fn keyed(c: &mut Criterion) {
    for (name, n) in [("keyed_10k_keys", 10_000u64), ("keyed_1m_keys", 1_000_000)] {
        let ks = keys(n);
        let mut g = c.benchmark_group(format!("ratelimit/{name}"));
        g.throughput(Throughput::Elements(1));
        let ours = weft::ratelimit::KeyedLimiter::<u64>::builder(weft_keyed_quota())
            .max_keys(2 * n as usize)
            .build()
            .unwrap();
        for k in &ks {
            ours.check(k).unwrap();
        }
        let mut i = 0;
        g.bench_function("weft", |b| {
            b.iter(|| {
                i = (i + 1) % ks.len();
                ours.check(&ks[i]).is_ok()
            })
        });
        let theirs = governor::RateLimiter::<u64, _, _>::keyed(governor_keyed_quota());
        for k in &ks {
            theirs.check_key(k).unwrap();
        }
        let mut i = 0;
        g.bench_function("governor", |b| {
            b.iter(|| {
                i = (i + 1) % ks.len();
                theirs.check_key(&ks[i]).is_ok()
            })
        });
        g.finish();
    }
}

/// Live bytes after `f` builds something, minus before, with the value kept alive.
fn bytes_of<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let before = common::live_bytes();
    let value = f();
    (value, common::live_bytes() - before)
}

/// Memory per key after N distinct keys, and the total after a key-rotation attack of
/// 1M keys against a limiter capped at 100K keys (governor has no cap).
fn memory() {
    let n = 1_000_000u64;
    let ks = keys(n);
    let (ours, ours_bytes) = bytes_of(|| {
        let l = weft::ratelimit::KeyedLimiter::<u64, _, RandomState>::builder(weft_keyed_quota())
            .max_keys(n as usize)
            .build()
            .unwrap();
        for k in &ks {
            l.check(k).unwrap();
        }
        l
    });
    let (theirs, theirs_bytes) = bytes_of(|| {
        let l = governor::RateLimiter::<u64, _, _>::keyed(governor_keyed_quota());
        for k in &ks {
            l.check_key(k).unwrap();
        }
        l
    });
    drop((ours, theirs));

    // Rotation: an hourly quota, so no key replenishes during the attack.
    let hourly = weft::ratelimit::Quota::per_hour(10).unwrap();
    let (capped, capped_bytes) = bytes_of(|| {
        let l = weft::ratelimit::KeyedLimiter::<u64>::builder(hourly)
            .max_keys(100_000)
            .build()
            .unwrap();
        for k in &ks {
            let _ = l.check(k);
        }
        l
    });
    let (grown, grown_bytes) = bytes_of(|| {
        let l = governor::RateLimiter::<u64, _, _>::keyed(governor::Quota::per_hour(
            NonZeroU32::new(10).unwrap(),
        ));
        for k in &ks {
            let _ = l.check_key(k);
        }
        l
    });
    let rows = [
        (
            "bytes_per_key_1m_keys",
            "weft",
            ours_bytes as f64 / n as f64,
            "bytes/key",
        ),
        (
            "bytes_per_key_1m_keys",
            "governor",
            theirs_bytes as f64 / n as f64,
            "bytes/key",
        ),
        (
            "rotation_1m_keys_cap_100k",
            "weft",
            capped_bytes as f64 / 1e6,
            &*format!("MB ({} keys held)", capped.len()),
        ),
        (
            "rotation_1m_keys_cap_100k",
            "governor",
            grown_bytes as f64 / 1e6,
            &*format!("MB ({} keys held, no cap)", grown.len()),
        ),
    ];
    common::write_metrics("ratelimit", &rows);
}

fn memory_bench(_: &mut Criterion) {
    memory();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = direct, keyed, memory_bench
}
criterion_main!(benches);
