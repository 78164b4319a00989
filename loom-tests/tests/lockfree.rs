//! Loom models of `weft-lockfree`: each explores every interleaving (up to the preemption
//! bound, `LOOM_MAX_PREEMPTIONS`) of a small scenario and checks one invariant.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use weft_lockfree::{ArrayQueue, PopError, StripedCounter, TreiberStack, spsc};

/// Conservation: two producers each push one item while a consumer pops; every pushed
/// item is popped exactly once and nothing else is popped.
#[test]
fn array_queue_conservation_2p1c() {
    loom::model(|| {
        let q = Arc::new(ArrayQueue::new(2).unwrap());
        let producers: Vec<_> = (1..=2)
            .map(|v| {
                let q = Arc::clone(&q);
                thread::spawn(move || q.push(v).unwrap())
            })
            .collect();
        let mut got = Vec::new();
        while got.len() < 2 {
            match q.pop() {
                Some(v) => got.push(v),
                None => thread::yield_now(),
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert_eq!(q.pop(), None);
    });
}

/// Two consumers race for the items of a full queue: each item goes to exactly one of
/// them (the CAS on `head` admits one consumer per position).
#[test]
fn array_queue_consumers_race() {
    loom::model(|| {
        let q = Arc::new(ArrayQueue::new(2).unwrap());
        q.push(1).unwrap();
        q.push(2).unwrap();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = Arc::clone(&q);
                thread::spawn(move || q.pop())
            })
            .collect();
        let mut got: Vec<i32> = consumers
            .into_iter()
            .map(|c| c.join().unwrap().expect("two items for two pops"))
            .collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert_eq!(q.pop(), None);
    });
}

/// Wrap-around: three items through a capacity-1 queue, so every push reuses the slot
/// the previous pop just freed (the stamp's lap must hand it over correctly); they arrive
/// in order, each once.
#[test]
fn array_queue_wraparound_1p1c() {
    loom::model(|| {
        let q = Arc::new(ArrayQueue::new(1).unwrap());
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                for v in 1..=3 {
                    let mut v = v;
                    while let Err(e) = q.push(v) {
                        v = e.into_inner();
                        thread::yield_now();
                    }
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < 3 {
            match q.pop() {
                Some(v) => got.push(v),
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
    });
}

/// Full boundary: a push that starts after a pop has completed on a full capacity-1 queue
/// must succeed ("full" is never reported while there is room).
#[test]
fn array_queue_full_boundary() {
    loom::model(|| {
        let q = Arc::new(ArrayQueue::new(1).unwrap());
        q.push(1).unwrap();
        let popped = Arc::new(AtomicBool::new(false));
        let consumer = {
            let (q, popped) = (Arc::clone(&q), Arc::clone(&popped));
            thread::spawn(move || {
                let v = q.pop();
                popped.store(true, Ordering::SeqCst);
                v
            })
        };
        let popped_before = popped.load(Ordering::SeqCst);
        let r = q.push(2);
        if popped_before {
            assert!(r.is_ok(), "push reported full after the pop completed");
        }
        assert_eq!(consumer.join().unwrap(), Some(1));
        assert_eq!(q.pop(), r.ok().map(|()| 2));
    });
}

/// Empty boundary: a pop that starts after a push has completed must find the item
/// ("empty" is never reported while an item is there).
#[test]
fn array_queue_empty_boundary() {
    loom::model(|| {
        let q = Arc::new(ArrayQueue::new(2).unwrap());
        let pushed = Arc::new(AtomicBool::new(false));
        let producer = {
            let (q, pushed) = (Arc::clone(&q), Arc::clone(&pushed));
            thread::spawn(move || {
                q.push(7).unwrap();
                pushed.store(true, Ordering::SeqCst);
            })
        };
        let pushed_before = pushed.load(Ordering::SeqCst);
        let r = q.pop();
        if pushed_before {
            assert_eq!(r, Some(7), "pop reported empty after the push completed");
        }
        producer.join().unwrap();
        if r.is_none() {
            assert_eq!(q.pop(), Some(7));
        }
    });
}

/// `force_push` racing `pop` on a full queue: the displaced item, the popped item and
/// what remains are exactly the items pushed.
#[test]
fn array_queue_force_push_races_pop() {
    loom::model(|| {
        let q = Arc::new(ArrayQueue::new(1).unwrap());
        q.push(1).unwrap();
        let consumer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.pop())
        };
        let displaced = q.force_push(2);
        let popped = consumer.join().unwrap();
        let mut all: Vec<i32> = displaced.into_iter().chain(popped).collect();
        while let Some(v) = q.pop() {
            all.push(v);
        }
        all.sort_unstable();
        assert_eq!(all, [1, 2]);
    });
}

/// Batch push racing batch pop: one CAS claims several slots; items arrive once each and
/// in order.
#[test]
fn array_queue_batches_conserve_and_order() {
    loom::model(|| {
        let q = Arc::new(ArrayQueue::new(3).unwrap());
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut items = vec![1, 2, 3];
                q.push_batch(&mut items);
                items // whatever did not fit is still ours
            })
        };
        let mut got = Vec::new();
        q.pop_batch(&mut got, 3);
        let rest = producer.join().unwrap();
        q.pop_batch(&mut got, 3);
        assert!(rest.is_empty(), "a capacity-3 queue had room for 3");
        assert_eq!(got, [1, 2, 3]);
    });
}

/// SPSC wrap-around: four values through a capacity-2 ring (positions wrap twice) arrive
/// complete and in order, with the consumer reading slots the producer reuses.
#[test]
fn spsc_wraparound() {
    loom::model(|| {
        let (mut tx, mut rx) = spsc::channel(2).unwrap();
        let producer = thread::spawn(move || {
            for v in 0..4 {
                let mut v = v;
                while let Err(e) = tx.push(v) {
                    v = e.into_inner();
                    thread::yield_now();
                }
            }
        });
        let mut expect = 0;
        while expect < 4 {
            match rx.pop() {
                Ok(v) => {
                    assert_eq!(v, expect);
                    expect += 1;
                }
                Err(_) => thread::yield_now(),
            }
        }
        producer.join().unwrap();
    });
}

/// SPSC batches: `push_slice` and `pop_into` publish and free several slots with one
/// store each; the consumer still sees every value once and in order.
#[test]
fn spsc_batches() {
    loom::model(|| {
        let (mut tx, mut rx) = spsc::channel(2).unwrap();
        let producer = thread::spawn(move || {
            let mut sent = 0;
            let items = [10, 11, 12];
            while sent < items.len() {
                let n = tx.push_slice(&items[sent..]);
                if n == 0 {
                    thread::yield_now();
                }
                sent += n;
            }
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            if rx.pop_into(&mut got, 2) == 0 {
                thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert_eq!(got, [10, 11, 12]);
    });
}

/// Abandonment: a producer pushes and drops; the consumer receives the item before it
/// ever sees `Closed` (no item is lost to the close).
#[test]
fn spsc_closed_only_after_drained() {
    loom::model(|| {
        let (mut tx, mut rx) = spsc::channel(2).unwrap();
        let producer = thread::spawn(move || {
            tx.push(5).unwrap();
        });
        let mut got = None;
        loop {
            match rx.pop() {
                Ok(v) => got = Some(v),
                Err(PopError::Closed) => break,
                Err(_) => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, Some(5));
    });
}

/// The Treiber stack's pop races a push and another pop, with epoch reclamation live:
/// every item comes out exactly once, and no reclaimed node is read (loom tracks the
/// epoch's atomics; a use-after-free would show as a failed model or a memory error).
#[test]
fn stack_pop_races_push() {
    loom::model(|| {
        let s = Arc::new(TreiberStack::new());
        s.push(1);
        let pusher = {
            let s = Arc::clone(&s);
            thread::spawn(move || {
                s.push(2);
                s.pop()
            })
        };
        let popper = {
            let s = Arc::clone(&s);
            thread::spawn(move || s.pop())
        };
        let mut all: Vec<i32> = [pusher.join().unwrap(), popper.join().unwrap()]
            .into_iter()
            .flatten()
            .collect();
        while let Some(v) = s.pop() {
            all.push(v);
        }
        all.sort_unstable();
        assert_eq!(all, [1, 2]);
    });
}

/// Striped counter: after concurrent adds from two threads complete, the sum is exact.
#[test]
fn counter_sum_after_adds() {
    loom::model(|| {
        let c = Arc::new(StripedCounter::with_shards(2).unwrap());
        let adders: Vec<_> = (1..=2)
            .map(|n| {
                let c = Arc::clone(&c);
                thread::spawn(move || {
                    c.add(n);
                    c.add(n);
                })
            })
            .collect();
        for a in adders {
            a.join().unwrap();
        }
        assert_eq!(c.sum(), 6);
    });
}

/// Striped counter: sums taken while another thread adds never decrease and never exceed
/// what was added; `take` racing adds counts each add exactly once.
#[test]
fn counter_sum_monotonic_and_take_exact() {
    loom::model(|| {
        let c = Arc::new(StripedCounter::with_shards(2).unwrap());
        let adder = {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                c.add(1);
                c.add(2);
            })
        };
        let first = c.sum();
        let second = c.sum();
        assert!(first <= second && second <= 3);
        let taken = c.take();
        adder.join().unwrap();
        assert_eq!(taken + c.take(), 3);
    });
}
