//! Integration tests of the SPSC ring: model check against `VecDeque`, streaming stress
//! with batches and wrap-around, abandonment, and drop accounting.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{DropCounter, scaled};
use proptest::prelude::*;
use weft_lockfree::{Error, PopError, PushError, spsc};

#[derive(Debug, Clone)]
enum Op {
    Push(u16),
    Pop,
    PushSlice(Vec<u16>),
    PopSlice(usize),
    PopInto(usize),
    Peek,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u16>().prop_map(Op::Push),
        Just(Op::Pop),
        proptest::collection::vec(any::<u16>(), 0..7).prop_map(Op::PushSlice),
        (0usize..7).prop_map(Op::PopSlice),
        (0usize..7).prop_map(Op::PopInto),
        Just(Op::Peek),
    ]
}

proptest! {
    /// Any single-threaded sequence of operations behaves like a bounded `VecDeque`.
    #[test]
    fn matches_vecdeque_model(cap in 1usize..8, ops in proptest::collection::vec(op(), 0..200)) {
        let (mut tx, mut rx) = spsc::channel(cap).unwrap();
        let mut model: VecDeque<u16> = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(v) => {
                    let r = tx.push(v);
                    if model.len() < cap {
                        prop_assert!(r.is_ok());
                        model.push_back(v);
                    } else {
                        prop_assert_eq!(r, Err(PushError::Full(v)));
                    }
                }
                Op::Pop => prop_assert_eq!(rx.pop().ok(), model.pop_front()),
                Op::PushSlice(items) => {
                    let n = tx.push_slice(&items);
                    prop_assert_eq!(n, items.len().min(cap - model.len()));
                    model.extend(&items[..n]);
                }
                Op::PopSlice(len) => {
                    let mut buf = vec![0u16; len];
                    let n = rx.pop_slice(&mut buf);
                    let expect: Vec<u16> = (0..len.min(model.len())).map(|_| model.pop_front().unwrap()).collect();
                    prop_assert_eq!(&buf[..n], &expect[..]);
                }
                Op::PopInto(max) => {
                    let mut out = Vec::new();
                    let n = rx.pop_into(&mut out, max);
                    let expect: Vec<u16> = (0..max.min(model.len())).map(|_| model.pop_front().unwrap()).collect();
                    prop_assert_eq!(n, expect.len());
                    prop_assert_eq!(out, expect);
                }
                Op::Peek => prop_assert_eq!(rx.peek().copied(), model.front().copied()),
            }
            prop_assert_eq!(rx.len(), model.len());
            prop_assert_eq!(tx.slots(), cap - model.len());
        }
    }
}

#[test]
fn rejects_zero_capacity() {
    assert_eq!(spsc::channel::<u8>(0).unwrap_err(), Error::ZeroCapacity);
}

/// One producer streams a sequence through a small ring (many wrap-arounds) while the
/// consumer checks it arrives complete and in order; mixes single and batch calls.
#[test]
fn streams_in_order_across_wraparound() {
    let n = scaled(200_000) as u64;
    let (mut tx, mut rx) = spsc::channel(7).unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut next = 0u64;
            while next < n {
                if next % 3 == 0 {
                    let mut it = next..(next + 5).min(n);
                    let pushed = tx.push_iter(&mut it) as u64;
                    next += pushed;
                    if pushed == 0 {
                        std::thread::yield_now();
                    }
                } else if tx.push(next).is_ok() {
                    next += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        });
        let mut expect = 0u64;
        let mut buf = Vec::new();
        while expect < n {
            buf.clear();
            if expect % 2 == 0 {
                rx.pop_into(&mut buf, 4);
            } else if let Ok(v) = rx.pop() {
                buf.push(v);
            }
            if buf.is_empty() {
                std::thread::yield_now();
            }
            for &v in &buf {
                assert_eq!(v, expect, "out of order or lost");
                expect += 1;
            }
        }
    });
    assert_eq!(rx.pop(), Err(PopError::Closed));
}

#[test]
fn producer_sees_abandoned_consumer_and_keeps_its_value() {
    let (mut tx, rx) = spsc::channel(4).unwrap();
    tx.push(1).unwrap();
    assert!(!tx.is_abandoned());
    drop(rx);
    assert!(tx.is_abandoned());
    match tx.push(2) {
        Err(PushError::Closed(v)) => assert_eq!(v, 2),
        other => panic!("expected Closed, got {other:?}"),
    }
    let mut it = 3..6;
    assert_eq!(tx.push_iter(&mut it), 0);
    assert_eq!(it.next(), Some(3));
}

#[test]
fn consumer_drains_then_sees_closed() {
    let (mut tx, mut rx) = spsc::channel(4).unwrap();
    tx.push_slice(&[1, 2]);
    drop(tx);
    assert!(rx.is_abandoned());
    assert_eq!(rx.pop(), Ok(1));
    assert_eq!(rx.pop(), Ok(2));
    assert_eq!(rx.pop(), Err(PopError::Closed));
}

#[test]
fn leftover_items_dropped_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (mut tx, mut rx) = spsc::channel(3).unwrap();
    for round in 0..3 {
        for i in 0..3 {
            tx.push(DropCounter::new(round * 3 + i, &drops)).unwrap();
        }
        let mut out = Vec::new();
        rx.pop_into(&mut out, 2);
        assert_eq!(out.len(), 2);
        drop(out);
        drop(rx.pop().unwrap());
    }
    tx.push(DropCounter::new(100, &drops)).unwrap();
    tx.push(DropCounter::new(101, &drops)).unwrap();
    assert_eq!(drops.load(Ordering::Relaxed), 9);
    drop(tx);
    assert_eq!(rx.peek().map(|d| d.id), Some(100));
    drop(rx);
    assert_eq!(drops.load(Ordering::Relaxed), 11);
}

#[test]
fn pop_into_stops_cleanly_when_extend_stops_early() {
    /// An `Extend` that takes only the first item: the rest must stay in the ring.
    struct TakeOne(Vec<u8>);
    impl Extend<u8> for TakeOne {
        fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
            self.0.extend(iter.into_iter().next());
        }
    }
    let (mut tx, mut rx) = spsc::channel(4).unwrap();
    tx.push_slice(&[1, 2, 3]);
    let mut one = TakeOne(Vec::new());
    assert_eq!(rx.pop_into(&mut one, 3), 1);
    assert_eq!(one.0, [1]);
    assert_eq!(rx.pop(), Ok(2));
    assert_eq!(rx.pop(), Ok(3));
}
