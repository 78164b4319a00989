//! Integration tests of `ArrayQueue`: a model check against `VecDeque`, stress tests that
//! assert conservation and per-producer FIFO order, and drop accounting.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{DropCounter, scaled};
use proptest::prelude::*;
use weft_lockfree::{ArrayQueue, Error, PushError};

#[derive(Debug, Clone)]
enum Op {
    Push(u32),
    ForcePush(u32),
    Pop,
    PushBatch(Vec<u32>),
    PopBatch(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u32>().prop_map(Op::Push),
        any::<u32>().prop_map(Op::ForcePush),
        Just(Op::Pop),
        proptest::collection::vec(any::<u32>(), 0..6).prop_map(Op::PushBatch),
        (0usize..6).prop_map(Op::PopBatch),
    ]
}

proptest! {
    /// Any single-threaded sequence of operations behaves like a bounded `VecDeque`.
    #[test]
    fn matches_vecdeque_model(cap in 1usize..9, ops in proptest::collection::vec(op(), 0..200)) {
        let q = ArrayQueue::new(cap).unwrap();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(v) => {
                    let r = q.push(v);
                    if model.len() < cap {
                        prop_assert!(r.is_ok());
                        model.push_back(v);
                    } else {
                        prop_assert_eq!(r, Err(PushError::Full(v)));
                    }
                }
                Op::ForcePush(v) => {
                    let displaced = q.force_push(v);
                    let expect = if model.len() == cap { model.pop_front() } else { None };
                    model.push_back(v);
                    prop_assert_eq!(displaced, expect);
                }
                Op::Pop => prop_assert_eq!(q.pop(), model.pop_front()),
                Op::PushBatch(mut items) => {
                    let all = items.clone();
                    let n = q.push_batch(&mut items);
                    let fit = (cap - model.len()).min(all.len());
                    prop_assert_eq!(n, fit);
                    model.extend(all[..n].iter().copied());
                    prop_assert_eq!(&items[..], &all[n..]);
                }
                Op::PopBatch(max) => {
                    let mut out = Vec::new();
                    let n = q.pop_batch(&mut out, max);
                    let expect: Vec<u32> = (0..max.min(model.len())).map(|_| model.pop_front().unwrap()).collect();
                    prop_assert_eq!(n, expect.len());
                    prop_assert_eq!(out, expect);
                }
            }
            prop_assert_eq!(q.len(), model.len());
            prop_assert_eq!(q.is_empty(), model.is_empty());
            prop_assert_eq!(q.is_full(), model.len() == cap);
        }
    }
}

#[test]
fn rejects_bad_capacity() {
    assert_eq!(ArrayQueue::<u8>::new(0).unwrap_err(), Error::ZeroCapacity);
    assert!(matches!(
        ArrayQueue::<u8>::new(usize::MAX).unwrap_err(),
        Error::CapacityTooLarge { .. }
    ));
}

/// Several producers and consumers: every item is popped exactly once, none is invented,
/// and each consumer sees each producer's items in the order they were pushed.
fn stress(producers: usize, consumers: usize, cap: usize, batch: bool) {
    let per = scaled(50_000);
    let q = ArrayQueue::new(cap).unwrap();
    let done = AtomicUsize::new(0);
    let total = producers * per;
    let results: Vec<Vec<usize>> = std::thread::scope(|s| {
        for p in 0..producers {
            let q = &q;
            s.spawn(move || {
                let mut pending: Vec<usize> = Vec::new();
                for i in 0..per {
                    let v = p * per + i;
                    if batch {
                        pending.push(v);
                        if pending.len() == 4 || i + 1 == per {
                            while !pending.is_empty() {
                                if q.push_batch(&mut pending) == 0 {
                                    std::thread::yield_now();
                                }
                            }
                        }
                    } else {
                        let mut v = v;
                        while let Err(e) = q.push(v) {
                            v = e.into_inner();
                            std::thread::yield_now();
                        }
                    }
                }
            });
        }
        let handles: Vec<_> = (0..consumers)
            .map(|_| {
                let (q, done) = (&q, &done);
                s.spawn(move || {
                    let mut got = Vec::new();
                    let mut buf = Vec::new();
                    while done.load(Ordering::Relaxed) < total {
                        let n = if batch {
                            buf.clear();
                            let n = q.pop_batch(&mut buf, 3);
                            got.extend_from_slice(&buf);
                            n
                        } else {
                            match q.pop() {
                                Some(v) => {
                                    got.push(v);
                                    1
                                }
                                None => 0,
                            }
                        };
                        if n == 0 {
                            std::thread::yield_now();
                        } else {
                            done.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                    got
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen = vec![false; total];
    for got in &results {
        let mut last = vec![None::<usize>; producers];
        for &v in got {
            assert!(v < total, "invented value {v}");
            assert!(!seen[v], "value {v} popped twice");
            seen[v] = true;
            let p = v / per;
            assert!(last[p] < Some(v), "producer {p}'s items out of order");
            last[p] = Some(v);
        }
    }
    assert!(seen.iter().all(|&b| b), "an item was lost");
    assert!(q.is_empty());
}

#[test]
fn stress_1p1c() {
    stress(1, 1, 16, false);
}

#[test]
fn stress_2p2c_small_capacity() {
    stress(2, 2, 3, false);
}

#[test]
fn stress_4p4c() {
    stress(4, 4, 64, false);
}

#[test]
fn stress_batches_3p2c() {
    stress(3, 2, 7, true);
}

#[test]
fn force_push_conserves_items_under_contention() {
    // Pushed = popped + displaced, whatever the interleaving.
    let per = scaled(20_000);
    let q = ArrayQueue::new(4).unwrap();
    let (displaced, popped) = std::thread::scope(|s| {
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let q = &q;
                s.spawn(move || {
                    (0..per)
                        .filter_map(|i| q.force_push(p * per + i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let consumer = s.spawn(|| {
            let mut got = Vec::new();
            for _ in 0..per {
                if let Some(v) = q.pop() {
                    got.push(v);
                }
            }
            got
        });
        let mut displaced: Vec<usize> = producers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let popped = consumer.join().unwrap();
        displaced.sort_unstable();
        (displaced, popped)
    });
    let mut all: Vec<usize> = displaced.into_iter().chain(popped).collect();
    while let Some(v) = q.pop() {
        all.push(v);
    }
    all.sort_unstable();
    assert_eq!(all, (0..2 * per).collect::<Vec<_>>());
}

#[test]
fn leftover_items_dropped_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let q = ArrayQueue::new(5).unwrap();
    // Wrap the ring so the remaining items straddle the end of the buffer.
    for i in 0..4 {
        q.push(DropCounter::new(i, &drops)).unwrap();
    }
    for _ in 0..3 {
        drop(q.pop().unwrap());
    }
    for i in 4..8 {
        q.push(DropCounter::new(i, &drops)).unwrap();
    }
    let rejected = q
        .push(DropCounter::new(8, &drops))
        .unwrap_err()
        .into_inner();
    assert_eq!(rejected.id, 8);
    drop(rejected);
    assert_eq!(drops.load(Ordering::Relaxed), 4);
    drop(q);
    assert_eq!(drops.load(Ordering::Relaxed), 9);
}

#[test]
fn debug_does_not_print_payload() {
    struct Secret;
    let q = ArrayQueue::new(1).unwrap();
    q.push(Secret).unwrap();
    let e = q.push(Secret).unwrap_err();
    assert_eq!(format!("{e:?}"), "Full(..)");
    assert!(e.to_string().contains("full"));
    assert!(format!("{q:?}").contains("len: 1"));
}
