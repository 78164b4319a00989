//! What the benches share: the criterion settings, the two-thread contention harness,
//! the async benches' runtime, a heap-counting allocator, percentiles, and the writer of
//! extra metrics.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;

/// 30 samples after a 1 s warm-up, over 3 s of measurement: enough on 2 cores for the
/// medians BENCHMARKS.md reports, short enough for a full `cargo bench`.
pub(crate) fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// The tokio runtime of the async benches: multi-thread, 2 workers (one per core), every
/// implementation on the same one.
pub(crate) fn two_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Two threads each run `op` `per_thread` times at once; every run must return `true`.
/// Returns the wall time of the whole.
pub(crate) fn two_threads(per_thread: u64, op: &(dyn Fn() -> bool + Sync)) -> Duration {
    let start = Instant::now();
    let succeeded: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| (0..per_thread).filter(|_| op()).count() as u64))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let elapsed = start.elapsed();
    assert_eq!(succeeded, 2 * per_thread);
    elapsed
}

/// Writes extra measurements (`(workload, implementation, value, unit)`) to
/// `<target>/criterion/weft-metrics/<pattern>.json`, where `cargo xtask bench-report`
/// reads them, and prints them.
pub(crate) fn write_metrics(pattern: &str, rows: &[(&str, &str, f64, &str)]) {
    let json: Vec<String> = rows
        .iter()
        .map(|(w, i, v, u)| {
            format!(r#"{{"workload":"{w}","implementation":"{i}","value":{v:.3},"unit":"{u}"}}"#)
        })
        .collect();
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("criterion/weft-metrics");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(
            dir.join(format!("{pattern}.json")),
            format!("[{}]\n", json.join(",\n")),
        );
    }
    for (w, i, v, u) in rows {
        println!("{pattern}/{w}/{i}: {v:.3} {u}");
    }
}

/// A global allocator that counts live heap bytes, for memory-per-item figures. A bench
/// opts in with `#[global_allocator] static ALLOC: common::Counting = common::Counting;`
/// and reads [`live_bytes`] before and after building what it measures.
pub(crate) struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Live heap bytes now (meaningful only under [`Counting`]).
pub(crate) fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

// SAFETY: every method forwards to the system allocator with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is (the caller upholds `alloc`'s contract).
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is (`ptr` came from `alloc` with this layout).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded as is (the caller upholds `realloc`'s contract).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The `p`-th percentile (0..=100, nearest rank) of sorted durations, in microseconds.
pub(crate) fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}
