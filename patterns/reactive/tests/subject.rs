//! Multicast policies under a 100x speed gap: each subscriber's buffer stays bounded,
//! every subscriber accounts for every item (`delivered + dropped == produced`), lag is
//! counted per subscriber, the block policy makes the slowest subscriber bound the
//! producer, and an overflowing `Error` subscriber is cut off without disturbing the rest.

use futures_util::{SinkExt, StreamExt};
use weft_reactive::{Overflow, Receiver, Subject, TryRecvError, TrySendError};

const GAP: u64 = 100;
const STEPS: u64 = if cfg!(debug_assertions) { 500 } else { 5_000 };

fn drain(rx: &mut Receiver<u64>, into: &mut Vec<u64>) {
    while let Ok(i) = rx.try_recv() {
        into.push(i);
    }
}

#[test]
fn dropping_subscribers_count_their_own_lag() {
    let subject = Subject::new();
    let policies = [
        (4, Overflow::DropNewest),
        (4, Overflow::DropOldest),
        (1, Overflow::KeepLatest),
        (64, Overflow::DropOldest),
    ];
    let mut subs: Vec<(usize, Receiver<u64>, Vec<u64>)> = policies
        .iter()
        .map(|&(cap, p)| (cap, subject.subscribe(cap, p).unwrap(), Vec::new()))
        .collect();
    let mut produced = 0;
    for _ in 0..STEPS {
        for _ in 0..GAP {
            let b = subject.try_send(produced).unwrap();
            assert_eq!(b.subscribers(), subs.len());
            produced += 1;
        }
        for (cap, rx, got) in subs.iter_mut() {
            assert!(rx.len() <= *cap, "memory bound");
            if let Ok(i) = rx.try_recv() {
                got.push(i);
            }
        }
    }
    subject.complete();
    let per_sub = subject.subscribers(); // empty after close: read lag from receivers
    assert!(per_sub.is_empty());
    for (_, rx, got) in subs.iter_mut() {
        drain(rx, got);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
        let m = rx.metrics();
        assert_eq!(m.items_in, produced);
        assert_eq!(
            got.len() as u64 + rx.lagged(),
            produced,
            "delivered + dropped == produced"
        );
        assert_eq!(m.dropped, rx.lagged());
        assert!(rx.lagged() > 0, "a 100x gap makes every small buffer lag");
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }
    // The bigger buffer lags less than the smaller one with the same policy.
    assert!(subs[3].1.lagged() < subs[1].1.lagged());
}

#[test]
fn lag_is_reported_per_subscriber_while_running() {
    let subject = Subject::new();
    let fast = subject.subscribe(8, Overflow::DropOldest).unwrap();
    let slow = subject.subscribe(2, Overflow::DropOldest).unwrap();
    for i in 0..10 {
        subject.try_send(i).unwrap();
    }
    let lag: Vec<u64> = subject.subscribers().iter().map(|m| m.dropped).collect();
    assert_eq!(lag, [2, 8]);
    assert_eq!((fast.lagged(), slow.lagged()), (2, 8));
    assert_eq!(subject.metrics().dropped, 10);
}

#[test]
fn the_slowest_blocking_subscriber_bounds_the_producer() {
    const CAP: usize = 8;
    let subject = Subject::new();
    let mut fast = subject.subscribe(CAP, Overflow::Block).unwrap();
    let mut slow = subject.subscribe(CAP, Overflow::Block).unwrap();
    let (mut fast_got, mut slow_got) = (Vec::new(), Vec::new());
    let (mut produced, mut held_back) = (0u64, 0u64);
    for step in 0..STEPS {
        for _ in 0..GAP {
            match subject.try_send(produced) {
                Ok(_) => produced += 1,
                Err(TrySendError::Full(item)) => {
                    assert_eq!(item, produced);
                    held_back += 1;
                    break;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        drain(&mut fast, &mut fast_got); // fast: takes everything
        if let Ok(i) = slow.try_recv() {
            slow_got.push(i); // slow: one per step
        }
        assert!(slow.len() <= CAP && fast.len() <= CAP);
        // The producer runs at the slow subscriber's pace.
        assert!(produced <= step + 1 + CAP as u64);
    }
    assert_eq!(held_back, STEPS);
    subject.complete();
    drain(&mut fast, &mut fast_got);
    drain(&mut slow, &mut slow_got);
    let all: Vec<u64> = (0..produced).collect();
    assert_eq!(fast_got, all);
    assert_eq!(slow_got, all);
    assert_eq!(fast.lagged() + slow.lagged(), 0);
}

#[test]
fn an_overflowing_error_subscriber_is_cut_off_alone() {
    let subject = Subject::new();
    let mut strict = subject.subscribe(2, Overflow::Error).unwrap();
    let mut easy = subject.subscribe(2, Overflow::DropOldest).unwrap();
    let mut overflowed = 0;
    for i in 0..5 {
        overflowed += subject.try_send(i).unwrap().overflowed;
    }
    assert_eq!(overflowed, 1);
    assert_eq!(subject.subscriber_count(), 1);
    assert_eq!(strict.try_recv(), Ok(0));
    assert_eq!(strict.try_recv(), Ok(1));
    assert_eq!(
        strict.try_recv(),
        Err(TryRecvError::Overflowed { capacity: 2 })
    );
    assert_eq!(easy.try_recv(), Ok(3));
    assert_eq!(easy.try_recv(), Ok(4));
}

#[test]
fn dropped_subscribers_are_forgotten_and_unobserved_items_counted() {
    let subject = Subject::new();
    subject.try_send(1).unwrap();
    assert_eq!(subject.unobserved(), 1);
    let rx = subject.subscribe(1, Overflow::Block).unwrap();
    subject.try_send(2).unwrap();
    assert_eq!(subject.try_send(3), Err(TrySendError::Full(3)));
    drop(rx); // a full blocking subscriber that leaves no longer holds the producer
    assert!(subject.try_send(3).is_ok());
    assert_eq!(subject.subscriber_count(), 0);
    assert_eq!(subject.unobserved(), 2);
    assert_eq!(
        subject
            .subscribe(0, Overflow::Block)
            .unwrap_err()
            .to_string(),
        "capacity must be at least 1, got 0"
    );
}

#[test]
fn dropping_the_last_handle_ends_every_stream() {
    let subject = Subject::new();
    let other = subject.clone();
    let a = subject.subscribe(4, Overflow::Block).unwrap();
    subject.try_send(7).unwrap();
    drop(subject);
    other.try_send(8).unwrap();
    drop(other);
    let got: Vec<i32> = futures_executor::block_on(a.collect());
    assert_eq!(got, [7, 8]);
}

#[tokio::test(flavor = "current_thread")]
async fn async_send_waits_for_the_slowest_blocking_subscriber() {
    let subject = Subject::new();
    let mut slow = subject.subscribe(1, Overflow::Block).unwrap();
    let fast = subject.subscribe(100, Overflow::Block).unwrap();
    subject.send(1).await.unwrap();
    let producer = {
        let subject = subject.clone();
        tokio::spawn(async move {
            for i in 2..=5 {
                subject.send(i).await.unwrap();
            }
        })
    };
    let mut got = Vec::new();
    while got.len() < 5 {
        tokio::task::yield_now().await;
        // The producer can never be more than one item ahead of the slow subscriber.
        assert!(fast.len() <= got.len() + 1 + 1);
        if let Some(i) = slow.next().await {
            got.push(i);
        }
    }
    producer.await.unwrap();
    assert_eq!(got, [1, 2, 3, 4, 5]);
    assert_eq!(fast.len(), 5);
}

#[tokio::test(flavor = "current_thread")]
async fn a_subject_is_a_sink() {
    let mut subject = Subject::new();
    let a = subject.subscribe(2, Overflow::Block).unwrap();
    let b = subject.subscribe(2, Overflow::Block).unwrap();
    let collect_a = tokio::spawn(a.collect::<Vec<u32>>());
    let collect_b = tokio::spawn(b.collect::<Vec<u32>>());
    subject
        .send_all(&mut futures_util::stream::iter((0..50).map(Ok)))
        .await
        .unwrap();
    subject.close().await.unwrap();
    let all: Vec<u32> = (0..50).collect();
    assert_eq!(collect_a.await.unwrap(), all);
    assert_eq!(collect_b.await.unwrap(), all);
}

/// Threads: a producer blocking on two slow blocking subscribers, one conflating
/// subscriber; every blocking subscriber sees everything, the conflating one accounts
/// for everything.
#[test]
fn threaded_multicast_conserves_per_subscriber() {
    const ITEMS: u64 = if cfg!(debug_assertions) {
        20_000
    } else {
        200_000
    };
    let subject = Subject::new();
    let blockers: Vec<_> = (0..2)
        .map(|_| subject.subscribe(8, Overflow::Block).unwrap())
        .collect();
    let latest = subject.subscribe(1, Overflow::KeepLatest).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = blockers
            .into_iter()
            .map(|rx| {
                s.spawn(move || {
                    let mut expect = 0;
                    while let Some(i) = rx.recv_blocking() {
                        assert_eq!(i, expect);
                        expect += 1;
                    }
                    expect
                })
            })
            .collect();
        let conflated = s.spawn(|| {
            let mut n = 0u64;
            while latest.recv_blocking().is_some() {
                n += 1;
            }
            (n, latest.lagged())
        });
        for i in 0..ITEMS {
            subject.send_blocking(i).unwrap();
        }
        subject.complete();
        for h in handles {
            assert_eq!(h.join().unwrap(), ITEMS);
        }
        let (delivered, lag) = conflated.join().unwrap();
        assert_eq!(delivered + lag, ITEMS);
    });
}
