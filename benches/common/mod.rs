//! What the benches share: the criterion settings, and the two-thread contention harness.

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
