//! The operators of `ReactiveExt`, driven by a `ManualTimer` (or tokio's paused clock):
//! items arrive through a bounded channel at chosen instants, and each test checks what
//! comes out when, plus the stage's counters (nothing dropped without being counted).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_util::{StreamExt, stream};
use weft_reactive::{
    Elapsed, Error, ManualTimer, Overflow, ReactiveExt, Receiver, Sender, channel, retry,
};
use weft_time::Backoff;

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    MS * n as u32
}

/// Polls once with a no-op waker (the manual timer and channel need no real wake-ups:
/// the test polls again after every change).
fn poll<S: Stream + Unpin>(s: &mut S) -> Poll<Option<S::Item>> {
    let waker = futures_util::task::noop_waker();
    s.poll_next_unpin(&mut Context::from_waker(&waker))
}

/// Everything ready now.
fn ready<S: Stream + Unpin>(s: &mut S) -> Vec<S::Item> {
    let mut out = Vec::new();
    while let Poll::Ready(Some(x)) = poll(s) {
        out.push(x);
    }
    out
}

fn source() -> (Sender<u32>, Receiver<u32>, ManualTimer) {
    let (tx, rx) = channel(1024, Overflow::Block).unwrap();
    (tx, rx, ManualTimer::new())
}

#[test]
fn batch_emits_on_size_or_on_time_whichever_first() {
    let (tx, rx, timer) = source();
    let mut s = rx.batch(3, ms(10), timer.clone()).unwrap();
    let meter = s.meter();
    for i in 0..4 {
        tx.try_send(i).unwrap();
    }
    assert_eq!(ready(&mut s), [vec![0, 1, 2]]); // full
    timer.advance(ms(9));
    assert_eq!(poll(&mut s), Poll::Pending); // [3] is 9 ms old
    timer.advance(ms(1));
    assert_eq!(ready(&mut s), [vec![3]]); // timed out
    timer.advance(ms(100));
    assert_eq!(poll(&mut s), Poll::Pending); // never empty batches
    tx.try_send(4).unwrap();
    drop(tx);
    assert_eq!(ready(&mut s), [vec![4]]); // flushed at the end
    assert_eq!(poll(&mut s), Poll::Ready(None));
    let m = meter.snapshot();
    assert_eq!((m.items_in, m.items_out, m.buffered), (5, 3, 0));
}

#[test]
fn batch_period_starts_at_the_first_item_of_each_batch() {
    let (tx, rx, timer) = source();
    let mut s = rx.batch(100, ms(10), timer.clone()).unwrap();
    timer.advance(ms(50)); // idle time does not count
    tx.try_send(1).unwrap();
    assert_eq!(poll(&mut s), Poll::Pending);
    timer.advance(ms(5));
    tx.try_send(2).unwrap();
    assert_eq!(poll(&mut s), Poll::Pending);
    timer.advance(ms(5));
    assert_eq!(ready(&mut s), [vec![1, 2]]);
}

#[test]
fn debounce_emits_after_quiet_and_counts_superseded_items() {
    let (tx, rx, timer) = source();
    let mut s = rx.debounce(ms(10), timer.clone()).unwrap();
    let meter = s.meter();
    for i in 0..5 {
        tx.try_send(i).unwrap();
        assert_eq!(poll(&mut s), Poll::Pending);
        timer.advance(ms(5)); // never quiet for 10 ms
    }
    assert_eq!(poll(&mut s), Poll::Pending);
    timer.advance(ms(5));
    assert_eq!(ready(&mut s), [4]);
    tx.try_send(5).unwrap();
    tx.try_send(6).unwrap();
    drop(tx);
    assert_eq!(ready(&mut s), [6]); // upstream ended: the held item goes at once
    let m = meter.snapshot();
    assert_eq!((m.items_in, m.items_out, m.dropped), (7, 2, 5));
    assert_eq!(
        m.items_in,
        m.items_out + m.dropped,
        "every item accounted for"
    );
    // One sleep per quiet period, not one per item.
    assert!(timer.pending_sleeps() <= 1);
}

#[test]
fn throttle_paces_without_dropping() {
    let (tx, rx, timer) = source();
    let mut s = rx.throttle(ms(10), timer.clone()).unwrap();
    for i in 0..3 {
        tx.try_send(i).unwrap();
    }
    assert_eq!(ready(&mut s), [0]);
    timer.advance(ms(9));
    assert_eq!(ready(&mut s), Vec::<u32>::new());
    timer.advance(ms(1));
    assert_eq!(ready(&mut s), [1]);
    timer.advance(ms(10));
    assert_eq!(ready(&mut s), [2]);
    drop(tx);
    timer.advance(ms(10));
    assert_eq!(poll(&mut s), Poll::Ready(None));
    assert_eq!(s.meter().snapshot().items_out, 3);
}

#[test]
fn sample_emits_the_latest_per_tick_and_counts_the_rest() {
    let (tx, rx, timer) = source();
    let mut s = rx.sample(ms(10), timer.clone()).unwrap();
    let meter = s.meter();
    assert_eq!(poll(&mut s), Poll::Pending); // ticks start at the first poll
    for i in 0..5 {
        tx.try_send(i).unwrap();
    }
    assert_eq!(poll(&mut s), Poll::Pending);
    timer.advance(ms(10));
    assert_eq!(ready(&mut s), [4]);
    timer.advance(ms(10));
    assert_eq!(ready(&mut s), Vec::<u32>::new()); // nothing new: nothing emitted
    tx.try_send(5).unwrap();
    timer.advance(ms(35)); // missed ticks are skipped, not replayed
    assert_eq!(ready(&mut s), [5]);
    tx.try_send(6).unwrap();
    drop(tx);
    assert_eq!(ready(&mut s), [6]);
    let m = meter.snapshot();
    assert_eq!((m.items_in, m.items_out, m.dropped), (7, 3, 4));
}

#[test]
fn count_windows_tumbling_sliding_and_with_gaps() {
    let run = |size, step| -> (Vec<Vec<u32>>, u64) {
        let s = stream::iter(0..7u32).count_windows(size, step).unwrap();
        let meter = s.meter();
        let out = futures_executor::block_on(s.collect());
        (out, meter.snapshot().dropped)
    };
    assert_eq!(run(3, 3), (vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]], 0));
    assert_eq!(
        run(3, 2),
        (
            vec![vec![0, 1, 2], vec![2, 3, 4], vec![4, 5, 6], vec![6]],
            0
        )
    );
    // Every third item starts a window of two: items 2 and 5 fall in gaps.
    assert_eq!(run(2, 3), (vec![vec![0, 1], vec![3, 4], vec![6]], 2));
}

#[test]
fn time_windows_tumbling_with_empty_windows_on_idle() {
    let (tx, rx, timer) = source();
    let mut s = rx.time_windows(ms(10), ms(10), timer.clone()).unwrap();
    assert_eq!(poll(&mut s), Poll::Pending); // window [0, 10) opens
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(poll(&mut s), Poll::Pending);
    timer.advance(ms(10));
    tx.try_send(3).unwrap(); // arrives in [10, 20)
    assert_eq!(ready(&mut s), [vec![1, 2]]);
    timer.advance(ms(20)); // [10, 20) with 3, then an idle [20, 30)
    assert_eq!(ready(&mut s), [vec![3], vec![]]);
    drop(tx);
    assert_eq!(ready(&mut s), [vec![]]); // the open [30, 40) is flushed at the end
    assert_eq!(poll(&mut s), Poll::Ready(None));
}

#[test]
fn time_windows_sliding_and_with_gaps() {
    let (tx, rx, timer) = source();
    // 20 ms windows every 10 ms: each item lands in two windows.
    let mut sliding = rx.time_windows(ms(20), ms(10), timer.clone()).unwrap();
    assert_eq!(poll(&mut sliding), Poll::Pending);
    tx.try_send(1).unwrap(); // t = 0: in [0, 20)
    assert_eq!(poll(&mut sliding), Poll::Pending);
    timer.advance(ms(10));
    assert_eq!(poll(&mut sliding), Poll::Pending); // [10, 30) opened
    tx.try_send(2).unwrap(); // t = 10: in [0, 20) and [10, 30)
    assert_eq!(poll(&mut sliding), Poll::Pending);
    timer.advance(ms(10));
    assert_eq!(ready(&mut sliding), [vec![1, 2]]); // [0, 20) closes
    timer.advance(ms(10));
    assert_eq!(ready(&mut sliding), [vec![2]]); // [10, 30); [20, 40) is still open
    drop(tx);
    assert_eq!(ready(&mut sliding), [vec![], vec![]]); // [20, 40), [30, 50) flushed

    // 5 ms windows every 10 ms: items in [5, 10) are dropped and counted.
    let (tx, rx, timer) = source();
    let mut gappy = rx.time_windows(ms(5), ms(10), timer.clone()).unwrap();
    let meter = gappy.meter();
    assert_eq!(poll(&mut gappy), Poll::Pending);
    tx.try_send(1).unwrap();
    assert_eq!(poll(&mut gappy), Poll::Pending);
    timer.advance(ms(5));
    assert_eq!(ready(&mut gappy), [vec![1]]);
    tx.try_send(2).unwrap(); // t = 5: in no window
    assert_eq!(poll(&mut gappy), Poll::Pending);
    assert_eq!(meter.snapshot().dropped, 1);
}

#[test]
fn combine_latest_pairs_each_update_with_the_other_sides_latest() {
    let (ta, ra) = channel::<char>(8, Overflow::Block).unwrap();
    let (tb, rb) = channel::<u32>(8, Overflow::Block).unwrap();
    let mut s = ra.combine_latest(rb);
    ta.try_send('a').unwrap();
    assert_eq!(poll(&mut s), Poll::Pending); // no pair yet
    tb.try_send(1).unwrap();
    assert_eq!(ready(&mut s), [('a', 1)]);
    ta.try_send('b').unwrap();
    assert_eq!(ready(&mut s), [('b', 1)]);
    tb.try_send(2).unwrap();
    tb.try_send(3).unwrap();
    assert_eq!(ready(&mut s), [('b', 2), ('b', 3)]);
    drop(ta);
    tb.try_send(4).unwrap();
    assert_eq!(ready(&mut s), [('b', 4)]); // a ended, b goes on
    drop(tb);
    assert_eq!(poll(&mut s), Poll::Ready(None));

    // A side that ends without ever emitting ends the combination.
    let empty = stream::empty::<u32>();
    let never = stream::pending::<u32>();
    let mut s = empty.combine_latest(never);
    assert_eq!(poll(&mut s), Poll::Ready(None));
}

#[test]
fn merge_interleaves_fairly_and_ends_when_both_end() {
    let a = stream::iter([1, 3, 5]);
    let b = stream::iter([2, 4, 6, 8]);
    let got: Vec<u32> = futures_executor::block_on(a.merge(b).collect());
    assert_eq!(got, [1, 2, 3, 4, 5, 6, 8]);
}

#[test]
fn timeout_yields_an_error_per_silent_period_and_goes_on() {
    let (tx, rx, timer) = source();
    let mut s = rx.timeout(ms(10), timer.clone()).unwrap();
    assert_eq!(poll(&mut s), Poll::Pending);
    timer.advance(ms(10));
    let out: Vec<Result<u32, Elapsed>> = ready(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].map_err(|e| e.period()), Err(ms(10)));
    tx.try_send(1).unwrap();
    assert_eq!(ready(&mut s), [Ok(1)]);
    timer.advance(ms(9));
    tx.try_send(2).unwrap();
    assert_eq!(ready(&mut s), [Ok(2)]);
    drop(tx);
    assert_eq!(poll(&mut s), Poll::Ready(None));
    assert_eq!(s.meter().snapshot().dropped, 1);
}

#[test]
fn retry_recreates_the_stream_after_backoff_and_gives_up_with_the_error() {
    let timer = ManualTimer::new();
    let policy = Backoff::exponential(ms(10)).max_retries(2).build().unwrap();
    let mut attempts = 0;
    let mut s = retry(
        move || {
            attempts += 1;
            stream::iter([Ok(attempts), Err("down")])
        },
        policy,
        timer.clone(),
    );
    assert_eq!(ready(&mut s), [Ok(1)]);
    timer.advance(ms(9));
    assert_eq!(ready(&mut s), Vec::<Result<i32, &str>>::new());
    timer.advance(ms(1));
    // The Ok item reset the backoff, so the next wait is the initial delay again.
    assert_eq!(ready(&mut s), [Ok(2)]);
    timer.advance(ms(10));
    assert_eq!(ready(&mut s), [Ok(3)]);

    // A stream that fails at once exhausts the retries: 10 ms, 20 ms, then the error.
    let mut s = retry(
        || stream::iter([Err::<u32, _>("down")]),
        policy,
        timer.clone(),
    );
    assert_eq!(poll(&mut s), Poll::Pending);
    timer.advance(ms(10));
    assert_eq!(poll(&mut s), Poll::Pending);
    assert_eq!(s.retries(), 2);
    timer.advance(ms(20));
    assert_eq!(ready(&mut s), [Err("down")]);
    assert_eq!(poll(&mut s), Poll::Ready(None));
    assert_eq!(s.meter().snapshot().dropped, 2);
}

#[test]
fn invalid_settings_are_errors_not_panics() {
    let t = ManualTimer::new();
    let s = || stream::iter([1u32]);
    assert_eq!(
        s().batch(0, MS, t.clone()).unwrap_err(),
        Error::ZeroSize { what: "batch size" }
    );
    assert_eq!(
        s().batch(1, Duration::ZERO, t.clone()).unwrap_err(),
        Error::ZeroDuration {
            what: "batch period"
        }
    );
    assert!(s().debounce(Duration::ZERO, t.clone()).is_err());
    assert!(s().throttle(Duration::ZERO, t.clone()).is_err());
    assert!(s().sample(Duration::ZERO, t.clone()).is_err());
    assert!(s().count_windows(0, 1).is_err());
    assert!(s().count_windows(1, 0).is_err());
    assert!(s().time_windows(Duration::ZERO, MS, t.clone()).is_err());
    assert!(s().time_windows(MS, Duration::ZERO, t.clone()).is_err());
    assert!(s().timeout(Duration::ZERO, t).is_err());
}

#[test]
fn metered_counts_any_stream() {
    let s = stream::iter(0..10u8).metered();
    let meter = s.meter();
    let n = futures_executor::block_on(s.filter(|x| std::future::ready(x % 2 == 0)).count());
    assert_eq!(n, 5);
    assert_eq!(meter.snapshot().items_out, 10);
}

/// The same operators on tokio's timer, under `tokio::time::pause`.
#[tokio::test(start_paused = true)]
async fn operators_run_on_tokio_time() {
    use weft_reactive::TokioTimer;
    let (tx, rx) = channel::<u32>(16, Overflow::Block).unwrap();
    let producer = tokio::spawn(async move {
        for i in 0..6 {
            tx.send(i).await.unwrap();
            tokio::time::sleep(ms(4)).await;
        }
    });
    let start = tokio::time::Instant::now();
    let batches: Vec<(Vec<u32>, Duration)> = rx
        .batch(10, ms(10), TokioTimer::new())
        .unwrap()
        .map(|b| (b, start.elapsed()))
        .collect()
        .await;
    producer.await.unwrap();
    // Items at 0, 4, 8 ms go out at 10 ms; 12, 16, 20 at 22 ms.
    assert_eq!(batches, [(vec![0, 1, 2], ms(10)), (vec![3, 4, 5], ms(22))]);
}

/// A pinned check that the streams are `Send` where their parts are, so they can be
/// spawned on multi-threaded runtimes.
#[test]
fn stages_are_send() {
    fn send<T: Send>(_: &T) {}
    let t = ManualTimer::new();
    let (_, rx) = channel::<u32>(1, Overflow::Block).unwrap();
    let s = rx
        .batch(2, MS, t.clone())
        .unwrap()
        .debounce(MS, t.clone())
        .unwrap()
        .sample(MS, t.clone())
        .unwrap()
        .timeout(MS, t)
        .unwrap();
    send(&s);
    let _: Pin<Box<dyn Stream<Item = _> + Send>> = Box::pin(s);
}

/// Durations too large for an `Instant` (an uncapped backoff, `Duration::MAX`) saturate
/// instead of panicking.
#[test]
fn huge_durations_do_not_panic() {
    let (tx, rx, timer) = source();
    let mut s = rx
        .batch(2, Duration::MAX, timer.clone())
        .unwrap()
        .debounce(Duration::MAX, timer.clone())
        .unwrap()
        .timeout(Duration::MAX, timer.clone())
        .unwrap()
        .throttle(Duration::MAX, timer.clone())
        .unwrap()
        .sample(Duration::MAX, timer.clone())
        .unwrap();
    tx.try_send(1).unwrap();
    assert_eq!(poll(&mut s), Poll::Pending);
    timer.advance(Duration::from_secs(3600));
    assert_eq!(poll(&mut s), Poll::Pending);
    let mut windows = stream::pending::<u32>()
        .time_windows(Duration::MAX, Duration::MAX, timer.clone())
        .unwrap();
    assert_eq!(poll(&mut windows), Poll::Pending);
}

/// After a long pause, tiny time windows are caught up one per poll, never all held at
/// once.
#[test]
fn time_windows_catch_up_in_bounded_memory() {
    let (tx, rx, timer) = source();
    let mut s = rx.time_windows(ms(2), ms(1), timer.clone()).unwrap();
    let meter = s.meter();
    assert_eq!(poll(&mut s), Poll::Pending);
    tx.try_send(1).unwrap();
    assert_eq!(poll(&mut s), Poll::Pending);
    timer.advance(Duration::from_secs(10)); // 10 000 windows have passed
    let first = ready(&mut s);
    assert_eq!(first.len(), 10_000 - 1);
    assert_eq!(first[0], vec![1]);
    assert!(first[2..].iter().all(Vec::is_empty));
    assert!(meter.snapshot().buffered <= 3);
}
