//! The pool's behaviour: exactly-once execution, panics, backpressure policies,
//! cancellation, shutdown, scaling, priorities, scopes and async handles.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use weft_workerpool::{Backpressure, JoinError, Priority, SubmitError, ThreadPool};

/// A generous bound for waits that only guard against a hung test; outcomes never
/// depend on it.
const HANG: Duration = Duration::from_secs(30);

fn count(n: usize) -> usize {
    if std::env::var_os("WEFT_VALGRIND").is_some() {
        n / 20
    } else {
        n
    }
}

/// Occupies one worker of `pool` with a job that blocks until the returned sender is
/// used (or dropped), and returns once that job is running.
fn occupy(pool: &ThreadPool) -> mpsc::Sender<()> {
    occupy_with(pool, ()).0
}

/// Like [`occupy`], with a handle to the blocking job, which returns `result`.
fn occupy_with<T: Send + 'static>(
    pool: &ThreadPool,
    result: T,
) -> (mpsc::Sender<()>, weft_workerpool::JobHandle<T>) {
    let (open, rx) = gate();
    let (started_tx, started_rx) = mpsc::channel();
    let handle = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            rx.lock().unwrap().recv().ok();
            result
        })
        .unwrap();
    started_rx.recv_timeout(HANG).unwrap();
    (open, handle)
}

/// A pool of exactly one worker, started at once.
fn one_worker() -> ThreadPool {
    ThreadPool::builder()
        .min_threads(1)
        .max_threads(1)
        .build()
        .unwrap()
}

/// A pool of one worker with a queue of one place, under `policy`, with the worker
/// occupied (until the returned sender is used) and the queue full.
fn full_one_worker(policy: Backpressure) -> (ThreadPool, mpsc::Sender<()>) {
    let pool = ThreadPool::builder()
        .min_threads(1)
        .max_threads(1)
        .queue_capacity(1)
        .backpressure(policy)
        .build()
        .unwrap();
    let open = occupy(&pool);
    pool.execute(|| {}).unwrap(); // fills the queue
    (pool, open)
}

/// A one-shot gate: jobs block on it until the test opens it.
fn gate() -> (mpsc::Sender<()>, Arc<Mutex<mpsc::Receiver<()>>>) {
    let (tx, rx) = mpsc::channel();
    (tx, Arc::new(Mutex::new(rx)))
}

#[test]
fn every_job_runs_exactly_once_under_concurrent_submitters() {
    let per = count(2_000);
    let pool = ThreadPool::builder().max_threads(3).build().unwrap();
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..4 * per).map(|_| AtomicUsize::new(0)).collect());
    std::thread::scope(|s| {
        for t in 0..4 {
            let (pool, runs) = (&pool, Arc::clone(&runs));
            s.spawn(move || {
                for i in 0..per {
                    let runs = Arc::clone(&runs);
                    pool.execute(move || {
                        runs[t * per + i].fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                }
            });
        }
    });
    assert!(pool.shutdown(Some(HANG)).completed);
    assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1));
    assert_eq!(pool.status().completed, 4 * per as u64);
}

#[test]
fn panics_are_isolated_and_reported() {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&messages);
    let pool = ThreadPool::builder()
        .min_threads(1)
        .max_threads(1)
        .on_panic(move |m| log.lock().unwrap().push(m.to_owned()))
        .build()
        .unwrap();
    let bad = pool.submit(|| -> u8 { panic!("boom 7") }).unwrap();
    assert_eq!(
        bad.join(),
        Err(JoinError::Panicked {
            message: "boom 7".into()
        })
    );
    // The single worker survived and keeps serving.
    assert_eq!(pool.submit(|| 5).unwrap().join(), Ok(5));
    let s = pool.status();
    assert_eq!((s.threads, s.panicked, s.completed), (1, 1, 2));
    assert_eq!(*messages.lock().unwrap(), ["boom 7"]);
}

#[test]
fn fail_policy_hands_the_job_back() {
    let pool = ThreadPool::builder()
        .min_threads(1)
        .max_threads(1)
        .queue_capacity(1)
        .backpressure(Backpressure::Fail)
        .build()
        .unwrap();
    let (open, blocker) = occupy_with(&pool, ()); // the worker is busy; the queue is empty
    let queued = pool.submit(|| 1).unwrap(); // fills the one place
    match pool.submit(|| 2) {
        Err(SubmitError::Full(job)) => assert_eq!(job(), 2), // the job came back intact
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(pool.status().rejected, 1);
    open.send(()).unwrap();
    blocker.join().unwrap();
    assert_eq!(queued.join(), Ok(1));
}

#[test]
fn block_for_times_out_and_block_waits_for_room() {
    let (pool, open) = full_one_worker(Backpressure::BlockFor(Duration::from_millis(20)));
    assert!(matches!(pool.submit(|| 3), Err(SubmitError::Timeout(_))));
    open.send(()).unwrap();

    // Block: a submitter waits for room instead of failing.
    let (pool, open2) = full_one_worker(Backpressure::Block);
    std::thread::scope(|s| {
        let blocked = s.spawn(|| pool.submit(|| 4).map(|h| h.join()));
        // The submitter is blocked until the worker frees a place.
        open2.send(()).unwrap();
        assert_eq!(blocked.join().unwrap().unwrap(), Ok(4));
    });
}

#[test]
fn caller_runs_when_full() {
    let (pool, open) = full_one_worker(Backpressure::CallerRuns);
    let me = std::thread::current().id();
    let ran_on = pool
        .submit(move || std::thread::current().id())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(ran_on, me);
    open.send(()).unwrap();
}

#[test]
fn cancel_before_start_only() {
    let pool = one_worker();
    let (open, running) = occupy_with(&pool, ());
    let queued = pool.submit(|| 1).unwrap();
    assert!(!running.cancel(), "already running");
    assert!(queued.cancel());
    assert!(queued.is_finished());
    open.send(()).unwrap();
    running.join().unwrap();
    assert_eq!(queued.join(), Err(JoinError::Cancelled));
    // The pool counts a cancelled job when a worker discards it: drain first.
    assert!(pool.shutdown(Some(HANG)).completed);
    assert_eq!(pool.status().cancelled, 1);
}

#[test]
fn graceful_shutdown_drains_the_queue() {
    let pool = one_worker();
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let d = Arc::clone(&done);
        pool.execute(move || {
            d.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    }
    let report = pool.shutdown(Some(HANG));
    assert!(report.completed);
    assert_eq!(done.load(Ordering::Relaxed), 100);
    assert!(matches!(
        pool.execute(|| {}),
        Err(SubmitError::ShuttingDown(_))
    ));
    assert_eq!(pool.status().threads, 0);
}

#[test]
fn immediate_shutdown_cancels_queued_jobs() {
    let pool = one_worker();
    let (open, running) = occupy_with(&pool, "finished");
    let queued: Vec<_> = (0..10).map(|i| pool.submit(move || i).unwrap()).collect();
    // The queued jobs are cancelled at once; the running one is left to finish.
    let first = pool.shutdown_now(Some(Duration::ZERO));
    assert_eq!(first.cancelled, 10);
    open.send(()).unwrap();
    let second = pool.shutdown_now(Some(HANG));
    assert_eq!(second.cancelled, 0);
    assert!(second.completed);
    assert_eq!(running.join(), Ok("finished"));
    for h in queued {
        assert_eq!(h.join(), Err(JoinError::Cancelled));
    }
}

#[test]
fn grows_under_load_and_shrinks_back_after_keep_alive() {
    let (exit_tx, exit_rx) = mpsc::channel();
    let exit_tx = Mutex::new(exit_tx);
    let pool = ThreadPool::builder()
        .min_threads(1)
        .max_threads(3)
        .keep_alive(Duration::from_millis(10))
        .on_thread_exit(move |id| {
            let _ = exit_tx.lock().unwrap().send(id);
        })
        .build()
        .unwrap();
    let (open, rx) = gate();
    let (started_tx, started_rx) = mpsc::channel();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (r, t) = (Arc::clone(&rx), started_tx.clone());
            pool.submit(move || {
                t.send(()).unwrap();
                r.lock().unwrap().recv().ok();
            })
            .unwrap()
        })
        .collect();
    for _ in 0..3 {
        started_rx.recv_timeout(HANG).unwrap(); // three jobs running at once: three threads
    }
    assert_eq!(pool.status().threads, 3);
    for _ in 0..3 {
        open.send(()).unwrap();
    }
    for h in handles {
        h.join().unwrap();
    }
    // Two threads above the minimum exit after their keep-alive (we wait for the exit
    // hooks, not for time).
    exit_rx.recv_timeout(HANG).unwrap();
    exit_rx.recv_timeout(HANG).unwrap();
    assert_eq!(pool.status().threads, 1);
    assert_eq!(pool.status().threads_started, 3);
}

#[test]
fn high_priority_jobs_go_first() {
    let pool = one_worker();
    let open = occupy(&pool);
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for (prio, tag) in [
        (Priority::Normal, "n1"),
        (Priority::Normal, "n2"),
        (Priority::High, "h1"),
        (Priority::High, "h2"),
    ] {
        let o = Arc::clone(&order);
        handles.push(
            pool.submit_with(prio, move || o.lock().unwrap().push(tag))
                .unwrap(),
        );
    }
    open.send(()).unwrap();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), ["h1", "h2", "n1", "n2"]);
}

#[test]
fn scopes_borrow_and_never_deadlock() {
    let pool = one_worker();
    let data: Vec<u64> = (1..=1000).collect();
    let mut sums = [0u64; 4];
    pool.scope(|s| {
        for (chunk, out) in data.chunks(250).zip(sums.iter_mut()) {
            s.spawn(move || *out = chunk.iter().sum());
        }
    });
    assert_eq!(sums.iter().sum::<u64>(), 500_500);
    // A scope opened inside the only worker still completes: its owner runs the jobs.
    let nested = Arc::new(ThreadPool::builder().max_threads(1).build().unwrap());
    let p2 = Arc::clone(&nested);
    let total = nested
        .submit(move || {
            let mut parts = [0u64; 2];
            p2.scope(|s| {
                for (i, part) in parts.iter_mut().enumerate() {
                    s.spawn(move || *part = (i as u64 + 1) * 10);
                }
            });
            parts.iter().sum::<u64>()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(total, 30);
}

#[test]
fn a_scoped_panic_resumes_in_the_owner() {
    let pool = ThreadPool::builder().max_threads(2).build().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.scope(|s| {
            s.spawn(|| panic!("scoped boom"));
            s.spawn(|| {});
        });
    }));
    assert!(r.is_err());
    assert_eq!(pool.submit(|| 1).unwrap().join(), Ok(1));
}

/// A minimal executor for `.await`: polls on this thread, parks between wake-ups.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

#[test]
fn handles_can_be_awaited() {
    let pool = ThreadPool::builder().max_threads(2).build().unwrap();
    let h = pool.submit(|| "async").unwrap();
    assert_eq!(block_on(async move { h.await }), Ok("async"));
}

#[test]
fn invalid_configuration_is_an_error() {
    assert!(
        ThreadPool::builder()
            .min_threads(3)
            .max_threads(2)
            .build()
            .is_err()
    );
    assert!(ThreadPool::builder().queue_capacity(0).build().is_err());
}

#[test]
fn a_blocked_submitter_is_released_by_shutdown() {
    let (pool, open) = full_one_worker(Backpressure::Block);
    std::thread::scope(|s| {
        let blocked = s.spawn(|| pool.submit(|| 9));
        // Shutting down releases the blocked submitter with its job.
        let report = pool.shutdown(Some(Duration::ZERO));
        assert!(!report.completed);
        match blocked.join().unwrap() {
            Err(SubmitError::ShuttingDown(job)) => assert_eq!(job(), 9),
            other => panic!("expected ShuttingDown, got {other:?}"),
        }
        open.send(()).unwrap();
    });
    assert!(pool.shutdown(Some(HANG)).completed);
}

/// Submitters race a graceful shutdown: every submission the pool accepted has run by
/// the time `shutdown` reports completion, and every other one was handed back.
#[test]
fn graceful_shutdown_runs_exactly_the_accepted_jobs() {
    for _ in 0..count(50) {
        let pool = Arc::new(
            ThreadPool::builder()
                .min_threads(1)
                .max_threads(2)
                .build()
                .unwrap(),
        );
        let ran = Arc::new(AtomicUsize::new(0));
        let submitters: Vec<_> = (0..2)
            .map(|_| {
                let (pool, ran) = (Arc::clone(&pool), Arc::clone(&ran));
                std::thread::spawn(move || {
                    let mut accepted = 0;
                    for _ in 0..200 {
                        let ran = Arc::clone(&ran);
                        match pool.execute(move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                        }) {
                            Ok(()) => accepted += 1,
                            Err(SubmitError::ShuttingDown(_)) => break,
                            Err(e) => panic!("unexpected refusal: {e}"),
                        }
                    }
                    accepted
                })
            })
            .collect();
        let report = pool.shutdown(Some(HANG));
        let ran_at_shutdown = ran.load(Ordering::SeqCst);
        let accepted: usize = submitters.into_iter().map(|s| s.join().unwrap()).sum();
        assert!(report.completed);
        assert_eq!(
            ran_at_shutdown, accepted,
            "accepted jobs all ran before shutdown returned"
        );
    }
}
