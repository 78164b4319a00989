//! What the benches share: the criterion settings, the two-thread contention harness,
//! the async benches' runtime, and the writer of extra metrics.

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
