//! Integration tests of `TreiberStack`: model check against `Vec`, a multi-threaded
//! conservation stress test, and drop accounting.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{DropCounter, scaled};
use proptest::prelude::*;
use weft_lockfree::TreiberStack;

proptest! {
    /// Any single-threaded sequence of pushes (`Some`) and pops (`None`) matches a `Vec`.
    #[test]
    fn matches_vec_model(ops in proptest::collection::vec(proptest::option::of(any::<i32>()), 0..300)) {
        let s = TreiberStack::new();
        let mut model = Vec::new();
        for op in ops {
            match op {
                Some(v) => {
                    s.push(v);
                    model.push(v);
                }
                None => prop_assert_eq!(s.pop(), model.pop()),
            }
            prop_assert_eq!(s.is_empty(), model.is_empty());
        }
    }
}

#[test]
fn concurrent_push_pop_conserves_items() {
    let per = scaled(50_000);
    let threads = 4;
    let s = TreiberStack::new();
    let popped: Vec<Vec<usize>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let s = &s;
                sc.spawn(move || {
                    let mut got = Vec::new();
                    for i in 0..per {
                        s.push(t * per + i);
                        if i % 2 == 1 {
                            got.extend(s.pop());
                        }
                    }
                    got
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<usize> = popped.into_iter().flatten().collect();
    while let Some(v) = s.pop() {
        all.push(v);
    }
    all.sort_unstable();
    assert_eq!(all, (0..threads * per).collect::<Vec<_>>());
}

#[test]
fn leftover_items_dropped_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let s = TreiberStack::new();
    for i in 0..10 {
        s.push(DropCounter::new(i, &drops));
    }
    assert_eq!(s.pop().map(|d| d.id), Some(9));
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    drop(s);
    assert_eq!(drops.load(Ordering::Relaxed), 10);
}

#[test]
fn structures_are_send_and_sync_for_send_items() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<TreiberStack<String>>();
    send_sync::<weft_lockfree::ArrayQueue<String>>();
    send_sync::<weft_lockfree::StripedCounter>();
    send::<weft_lockfree::spsc::Producer<String>>();
    send::<weft_lockfree::spsc::Consumer<String>>();
}
