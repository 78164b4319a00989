//! Every overflow policy of the bounded buffer under a 100x producer/consumer speed gap:
//! memory stays bounded (never more than the capacity buffered), and every produced item
//! is accounted for: `delivered + dropped == produced` once drained. Plus a property
//! test of the same invariants over arbitrary interleavings, and a threaded run.
//!
//! The gap is simulated deterministically: in each step the producer offers 100 items
//! and the consumer takes one.

use proptest::prelude::*;
use weft_reactive::{Overflow, Pushed, Receiver, Sender, TryRecvError, TrySendError, channel};

const CAPACITY: usize = 16;
const GAP: u64 = 100;
const STEPS: u64 = if cfg!(debug_assertions) {
    1_000
} else {
    10_000
};

/// What a run saw.
#[derive(Debug, Default)]
struct Run {
    produced: u64,
    delivered: Vec<u64>,
    /// Items the pushes reported as dropped (`Pushed::Dropped`).
    reported_dropped: Vec<u64>,
    /// Offers refused with `Full` (the producer held back).
    held_back: u64,
    max_buffered: u64,
}

fn recv_one(rx: &mut Receiver<u64>, run: &mut Run) -> Result<(), TryRecvError> {
    let item = rx.try_recv()?;
    run.delivered.push(item);
    Ok(())
}

/// Runs the 100x gap for `STEPS` steps under `policy`, then drains.
fn gap_run(policy: Overflow) -> (Run, Sender<u64>, Receiver<u64>) {
    let (tx, mut rx) = channel(CAPACITY, policy).unwrap();
    let mut run = Run::default();
    let mut next = 0u64;
    for _ in 0..STEPS {
        for _ in 0..GAP {
            match tx.try_send(next) {
                Ok(pushed) => {
                    run.produced += 1;
                    next += 1;
                    if let Pushed::Dropped(d) = pushed {
                        run.reported_dropped.push(d);
                    }
                }
                Err(TrySendError::Full(_)) => {
                    run.held_back += 1;
                    break; // a blocked producer waits for the consumer
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
            run.max_buffered = run.max_buffered.max(tx.metrics().buffered);
        }
        let _ = recv_one(&mut rx, &mut run);
    }
    while recv_one(&mut rx, &mut run).is_ok() {}
    (run, tx, rx)
}

fn assert_conserved(run: &Run, rx: &Receiver<u64>) {
    let m = rx.metrics();
    assert!(run.max_buffered <= CAPACITY as u64, "memory bound: {run:?}");
    assert_eq!(m.items_in, run.produced);
    assert_eq!(m.items_out, run.delivered.len() as u64);
    assert_eq!(m.dropped, run.reported_dropped.len() as u64);
    assert_eq!(m.buffered, 0);
    assert_eq!(
        run.delivered.len() as u64 + m.dropped,
        run.produced,
        "delivered + dropped == produced"
    );
    // Nothing is both delivered and dropped, and together they are exactly 0..produced.
    let mut all: Vec<u64> = run
        .delivered
        .iter()
        .chain(&run.reported_dropped)
        .copied()
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..run.produced).collect::<Vec<_>>());
    // Order is preserved.
    assert!(run.delivered.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn block_holds_the_producer_to_the_consumers_pace() {
    let (run, _tx, rx) = gap_run(Overflow::Block);
    assert_conserved(&run, &rx);
    assert!(run.reported_dropped.is_empty());
    // One item per step got through after the buffer filled: the producer was slowed
    // 100x instead of anything being lost.
    assert_eq!(run.produced, STEPS + CAPACITY as u64 - 1);
    assert_eq!(run.held_back, STEPS);
}

#[test]
fn drop_newest_keeps_the_oldest_items() {
    let (run, _tx, rx) = gap_run(Overflow::DropNewest);
    assert_conserved(&run, &rx);
    assert_eq!(run.produced, STEPS * GAP);
    // The first burst fills the buffer with 0..16; everything else in it is dropped.
    assert_eq!(
        run.delivered[..CAPACITY],
        (0..CAPACITY as u64).collect::<Vec<_>>()
    );
    assert_eq!(run.reported_dropped[0], CAPACITY as u64);
}

#[test]
fn drop_oldest_keeps_the_newest_items() {
    let (run, _tx, rx) = gap_run(Overflow::DropOldest);
    assert_conserved(&run, &rx);
    assert_eq!(run.produced, STEPS * GAP);
    // The consumer always sees the oldest of the last 16 produced; the drain ends with
    // the very last item.
    assert_eq!(run.delivered[0], GAP - CAPACITY as u64);
    assert_eq!(run.delivered.last(), Some(&(STEPS * GAP - 1)));
}

#[test]
fn keep_latest_conflates_into_the_newest_slot() {
    let (run, _tx, rx) = gap_run(Overflow::KeepLatest);
    assert_conserved(&run, &rx);
    assert_eq!(run.produced, STEPS * GAP);
    // The first 15 items stay, the last slot holds the latest of the burst.
    assert_eq!(
        run.delivered[..CAPACITY - 1],
        (0..CAPACITY as u64 - 1).collect::<Vec<_>>()
    );
    assert_eq!(run.delivered[CAPACITY - 1], GAP - 1);
    assert_eq!(run.delivered.last(), Some(&(STEPS * GAP - 1)));
}

#[test]
fn error_closes_the_buffer_and_hands_the_item_back() {
    let (tx, mut rx) = channel(CAPACITY, Overflow::Error).unwrap();
    let mut refused = None;
    let mut produced = 0;
    for i in 0..GAP {
        match tx.try_send(i) {
            Ok(_) => produced += 1,
            Err(TrySendError::Overflow(item)) => {
                refused = Some(item);
                break;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(refused, Some(CAPACITY as u64));
    assert!(tx.is_closed());
    assert_eq!(tx.try_send(999), Err(TrySendError::Overflow(999)));
    let mut delivered = Vec::new();
    let end = loop {
        match rx.try_recv() {
            Ok(i) => delivered.push(i),
            Err(e) => break e,
        }
    };
    assert_eq!(delivered, (0..produced).collect::<Vec<_>>());
    assert_eq!(end, TryRecvError::Overflowed { capacity: CAPACITY });
    assert_eq!(
        rx.error(),
        Some(weft_reactive::Error::Overflowed { capacity: CAPACITY })
    );
    let m = rx.metrics();
    assert_eq!(
        (m.items_in, m.items_out, m.dropped),
        (produced, produced, 0)
    );
}

/// Two threads, a producer 100x faster than the consumer (which does 100x the work per
/// item), under every policy: the invariants hold with real concurrency too.
#[test]
fn threaded_gap_conserves_items_under_every_policy() {
    const ITEMS: u64 = if cfg!(debug_assertions) {
        20_000
    } else {
        200_000
    };
    for policy in [
        Overflow::Block,
        Overflow::DropNewest,
        Overflow::DropOldest,
        Overflow::KeepLatest,
    ] {
        let (tx, rx) = channel::<u64>(CAPACITY, policy).unwrap();
        let (delivered, dropped) = std::thread::scope(|s| {
            let consumer = s.spawn(|| {
                let mut got = Vec::new();
                while let Some(i) = rx.recv_blocking() {
                    // 100 units of work per item.
                    let mut x: u64 = i;
                    for _ in 0..GAP {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                    got.push(i);
                    assert!(rx.len() <= CAPACITY);
                }
                got
            });
            let mut dropped = Vec::new();
            for i in 0..ITEMS {
                if let Pushed::Dropped(d) = tx.send_blocking(i).unwrap() {
                    dropped.push(d);
                }
            }
            drop(tx);
            (consumer.join().unwrap(), dropped)
        });
        assert_eq!(
            delivered.len() + dropped.len(),
            ITEMS as usize,
            "{policy:?}"
        );
        assert!(
            delivered.windows(2).all(|w| w[0] < w[1]),
            "{policy:?} keeps order"
        );
        let m = rx.metrics();
        assert_eq!(m.items_in, ITEMS);
        assert_eq!(m.dropped, dropped.len() as u64);
        if policy == Overflow::Block {
            assert!(dropped.is_empty());
        }
    }
}

proptest! {
    /// Any interleaving of bursts and receives, any policy, any capacity: never more than
    /// the capacity buffered, `items_in == items_out + dropped + buffered` after every
    /// step, and what is received is an increasing subsequence of what was sent.
    #[test]
    fn conservation_over_arbitrary_interleavings(
        capacity in 1usize..8,
        policy in prop_oneof![
            Just(Overflow::Block),
            Just(Overflow::DropNewest),
            Just(Overflow::DropOldest),
            Just(Overflow::KeepLatest),
            Just(Overflow::Error),
        ],
        steps in proptest::collection::vec((0u8..20, 0u8..5), 1..40),
    ) {
        let (tx, mut rx) = channel(capacity, policy).unwrap();
        let (mut next, mut accepted, mut returned, mut got) = (0u64, 0u64, 0u64, Vec::new());
        for (sends, recvs) in steps {
            for _ in 0..sends {
                match tx.try_send(next) {
                    Ok(_) => accepted += 1,
                    Err(e) => {
                        prop_assert_eq!(e.into_inner(), next);
                        returned += 1;
                    }
                }
                next += 1;
                let m = tx.metrics();
                prop_assert!(m.buffered <= capacity as u64);
                prop_assert_eq!(m.items_in, m.items_out + m.dropped + m.buffered);
            }
            for _ in 0..recvs {
                if let Ok(i) = rx.try_recv() {
                    got.push(i);
                }
            }
        }
        let m = rx.metrics();
        prop_assert_eq!(m.items_in, accepted);
        prop_assert_eq!(accepted + returned, next);
        prop_assert_eq!(m.items_out, got.len() as u64);
        prop_assert!(got.windows(2).all(|w| w[0] < w[1]));
    }
}

/// A publisher bridged to a stream under a dropping policy: it is requested without
/// bound and pushes everything at once; the buffer keeps what its policy keeps and counts
/// the rest. Under `Error` the stream ends with `Failure::Overflowed`.
#[test]
fn publisher_bridge_under_dropping_policies() {
    use weft_reactive::{Failure, IterPublisher, Publisher};
    let collect = |policy| {
        let publisher = IterPublisher::from_values(0..100u64);
        let s = publisher.subscribe_stream(4, policy).unwrap();
        let mut items = futures_executor::block_on_stream(s);
        let got: Vec<_> = items.by_ref().collect();
        (got, items.into_inner().metrics())
    };
    let (got, m) = collect(Overflow::DropOldest);
    assert_eq!(
        got.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        [96, 97, 98, 99]
    );
    assert_eq!((m.items_in, m.items_out, m.dropped), (100, 4, 96));
    let (got, m) = collect(Overflow::DropNewest);
    assert_eq!(
        got.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(m.items_out + m.dropped, 100);
    let (got, m) = collect(Overflow::Error);
    let (ok, err): (Vec<_>, Vec<_>) = got.into_iter().partition(Result::is_ok);
    assert_eq!(ok.len(), 4);
    assert_eq!(err, [Err(Failure::Overflowed { capacity: 4 })]);
    // The refused item is counted; the rest were never produced (the bridge cancelled).
    assert_eq!((m.items_in, m.dropped), (5, 1));
}
