//! An idle pool costs no CPU: two parked workers use less than 1% of a core.
//!
//! Linux only in effect: the CPU time is read from `/proc` (no libc). The per-thread
//! `/proc/self/task/*/schedstat` gives nanoseconds; where it is missing, the process's
//! `utime + stime` from `/proc/self/stat` is used, in clock ticks (`CLK_TCK` is 100 on
//! Linux), allowing one tick for the truncation of each reading. Without `/proc` the test
//! says so and returns. It returns at once under valgrind (`WEFT_VALGRIND`), whose
//! emulation would make any CPU figure meaningless.

use std::time::Duration;

use weft_workerpool::ThreadPool;

/// The measured window.
const WINDOW: Duration = Duration::from_secs(1);
/// The most CPU the process may use in the window: 1% of one core.
const BUDGET: Duration = Duration::from_millis(10);
/// Linux's `USER_HZ`, the unit of `/proc/self/stat`'s times.
const CLK_TCK: u64 = 100;

/// The process's CPU time so far, and how coarse the reading is.
#[derive(Debug, Clone, Copy)]
struct CpuTime {
    used: Duration,
    resolution: Duration,
}

/// Sum of the on-CPU time of every live thread of this process, in nanoseconds
/// (first field of each `/proc/self/task/<tid>/schedstat`).
fn schedstat() -> Option<CpuTime> {
    let mut ns = 0u64;
    let mut any = false;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let path = entry.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
        any = true;
    }
    any.then(|| CpuTime {
        used: Duration::from_nanos(ns),
        resolution: Duration::ZERO,
    })
}

/// `utime + stime` of the whole process (fields 14 and 15 of `/proc/self/stat`).
fn stat() -> Option<CpuTime> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Field 2, the command name, is parenthesised and may hold spaces: count from the
    // last ')'. After it come field 3 (state) onwards, so utime (14) is the 12th.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let tick = Duration::from_nanos(1_000_000_000 / CLK_TCK);
    Some(CpuTime {
        used: tick * u32::try_from(utime + stime).ok()?,
        resolution: tick,
    })
}

#[test]
fn idle_pool_uses_under_one_percent_of_a_core() {
    if std::env::var_os("WEFT_VALGRIND").is_some() {
        eprintln!("skipped: CPU time means nothing under valgrind (WEFT_VALGRIND is set)");
        return;
    }
    let read: fn() -> Option<CpuTime> = if schedstat().is_some() {
        schedstat
    } else if stat().is_some() {
        stat
    } else {
        eprintln!("skipped: /proc/self/stat is not readable on this platform");
        return;
    };

    let pool = ThreadPool::builder()
        .min_threads(2)
        .max_threads(2)
        .build()
        .unwrap();
    // Give both workers something to do, then let them park.
    let handles: Vec<_> = (0..64u64)
        .map(|i| pool.submit(move || i * i).unwrap())
        .collect();
    let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, (0..64u64).map(|i| i * i).sum::<u64>());
    // Wait (without deciding anything by time) until both workers have parked.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while pool.status().idle < 2 && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    let before = pool.status();
    assert_eq!(before.threads, 2, "{before:?}");
    assert_eq!(before.idle, 2, "both workers parked: {before:?}");

    let start = read().expect("the CPU-time source just worked");
    // Sleeping is the measurement here: the window over which idle CPU use is counted.
    std::thread::sleep(WINDOW);
    let end = read().expect("the CPU-time source just worked");

    let after = pool.status();
    assert_eq!(
        (after.threads, after.threads_started),
        (before.threads, before.threads_started),
        "no thread churn while idle: {after:?}"
    );
    let used = end.used.saturating_sub(start.used);
    // Each reading may be truncated by up to one unit; allow that much on top.
    let allowed = BUDGET + end.resolution;
    eprintln!(
        "idle pool: {used:?} of CPU over {WINDOW:?} (budget {BUDGET:?}, resolution {:?})",
        end.resolution
    );
    assert!(
        used < allowed,
        "an idle pool of 2 threads used {used:?} of CPU in {WINDOW:?} (allowed {allowed:?})"
    );
}
