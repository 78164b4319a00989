//! Regression tests for futures-rs #2387: with `StreamExt::buffered`, in-flight futures
//! are polled only while the consumer polls the stream, so a busy consumer stalls them
//! (their latency balloons, their timeouts fire) and a consumer that waits on one of them
//! deadlocks. `drive_buffered` / `drive_buffer_unordered` drive them from their own task.
//!
//! Each scenario runs against ours and against futures-util's `buffered`, which must
//! show the bug, so the test proves it exercises the scenario. Time is tokio's paused
//! clock: nothing here sleeps in real time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, stream};
use tokio::time::Instant;
use weft_reactive::ReactiveExt;

const BUSY: Duration = Duration::from_secs(1);

/// Jobs that each become ready at a staggered instant and record how late they were
/// resumed after that (their "observed latency").
fn staggered_jobs(
    n: u64,
    latencies: Arc<Mutex<Vec<Duration>>>,
) -> impl futures_core::Stream<Item = impl Future<Output = u64>> {
    let start = Instant::now();
    stream::iter(0..n).map(move |i| {
        let latencies = Arc::clone(&latencies);
        async move {
            let due = start + Duration::from_millis(10 * (i + 1));
            tokio::time::sleep_until(due).await;
            latencies.lock().unwrap().push(Instant::now() - due);
            i
        }
    })
}

#[tokio::test(start_paused = true)]
async fn in_flight_futures_progress_while_the_consumer_is_busy() {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let (mut out, driver) = staggered_jobs(4, Arc::clone(&latencies))
        .drive_buffered(4)
        .unwrap();
    tokio::spawn(driver);
    assert_eq!(out.next().await, Some(0));
    tokio::time::sleep(BUSY).await; // the consumer is busy and does not poll
    assert_eq!(latencies.lock().unwrap().len(), 4, "all four ran meanwhile");
    assert_eq!(out.collect::<Vec<_>>().await, [1, 2, 3]);
    let worst = latencies.lock().unwrap().iter().max().copied().unwrap();
    assert!(
        worst < Duration::from_millis(1),
        "resumed on time, got {worst:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn futures_util_buffered_stalls_them_the_bug_we_fix() {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut out = staggered_jobs(4, Arc::clone(&latencies)).buffered(4);
    assert_eq!(out.next().await, Some(0));
    tokio::time::sleep(BUSY).await;
    assert_eq!(
        latencies.lock().unwrap().len(),
        1,
        "nothing polled the others"
    );
    assert_eq!(out.collect::<Vec<_>>().await, [1, 2, 3]);
    let worst = latencies.lock().unwrap().iter().max().copied().unwrap();
    assert!(
        worst >= BUSY - Duration::from_millis(50),
        "stalled for {worst:?}"
    );
}

/// The consumer's handling of item 0 waits for a signal that in-flight job 1 sends once
/// it runs past its first await.
async fn consumer_waits_on_an_in_flight_job(ours: bool) -> bool {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Arc::new(Mutex::new(Some(tx)));
    let jobs = stream::iter(0..2u32).map(move |i| {
        let tx = Arc::clone(&tx);
        async move {
            if i == 1 {
                tokio::task::yield_now().await;
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            }
            i
        }
    });
    let first = if ours {
        let (mut out, driver) = jobs.drive_buffered(2).unwrap();
        tokio::spawn(driver);
        out.next().await
    } else {
        let mut out = Box::pin(jobs.buffered(2));
        let first = out.next().await;
        // Keep `out` alive (as a consumer mid-stream would) while waiting below.
        std::mem::forget(out);
        first
    };
    assert_eq!(first, Some(0));
    tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .is_ok()
}

#[tokio::test(start_paused = true)]
async fn no_deadlock_when_the_consumer_waits_on_an_in_flight_job() {
    assert!(consumer_waits_on_an_in_flight_job(true).await);
}

#[tokio::test(start_paused = true)]
async fn futures_util_buffered_deadlocks_there_the_bug_we_fix() {
    assert!(!consumer_waits_on_an_in_flight_job(false).await);
}

#[tokio::test(start_paused = true)]
async fn memory_is_bounded_by_twice_the_limit_and_upstream_is_backpressured() {
    const LIMIT: usize = 3;
    let started = Arc::new(AtomicUsize::new(0));
    let jobs = {
        let started = Arc::clone(&started);
        stream::iter(0..100u32).map(move |i| {
            started.fetch_add(1, Ordering::SeqCst);
            async move { i }
        })
    };
    let (mut out, driver) = jobs.drive_buffered(LIMIT).unwrap();
    let meter = driver.meter();
    tokio::spawn(driver);
    let mut consumed = 0;
    while let Some(i) = out.next().await {
        assert_eq!(i, consumed);
        consumed += 1;
        tokio::time::sleep(Duration::from_millis(10)).await; // slow consumer
        let in_stage = started.load(Ordering::SeqCst) - consumed as usize;
        assert!(in_stage <= 2 * LIMIT, "{in_stage} items held");
        assert!(out.len() <= LIMIT);
        assert!(meter.snapshot().buffered <= LIMIT as u64);
    }
    assert_eq!(consumed, 100);
    assert_eq!(meter.snapshot().items_out, 100);
}

#[tokio::test(start_paused = true)]
async fn unordered_yields_in_completion_order() {
    let jobs = stream::iter([30u64, 10, 20]).map(|ms| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    });
    let (out, driver) = jobs.drive_buffer_unordered(3).unwrap();
    tokio::spawn(driver);
    assert_eq!(out.collect::<Vec<_>>().await, [10, 20, 30]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_consumer_stops_the_driver_and_its_futures() {
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Guard(Arc<AtomicUsize>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let jobs = {
        let dropped = Arc::clone(&dropped);
        stream::iter(0..10u32).map(move |_| {
            let g = Guard(Arc::clone(&dropped));
            async move {
                let _g = g;
                std::future::pending::<u32>().await
            }
        })
    };
    let (out, driver) = jobs.drive_buffered(2).unwrap();
    let handle = tokio::spawn(driver);
    tokio::task::yield_now().await;
    drop(out);
    handle.await.unwrap(); // the driver completes
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2,
        "both in-flight futures dropped"
    );
}

#[test]
fn zero_limit_is_an_error() {
    let jobs = stream::iter([async { 1 }]);
    assert!(jobs.drive_buffered(0).is_err());
}
