//! Tests of the production side of the facade: the lock, condvar, cell, fence and thread
//! index keep their contracts (the loom side is modeled in `loom-tests/tests/sync.rs`).

use std::time::Duration;

use weft_sync::atomic::{AtomicUsize, Ordering, full_fence};
use weft_sync::{Arc, Backoff, Condvar, Mutex, UnsafeCell, thread};

#[test]
fn mutex_serialises_increments() {
    let m = Arc::new(Mutex::new(0u64));
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    *m.lock() += 1;
                }
            });
        }
    });
    assert_eq!(*m.lock(), 4000);
    assert!(m.try_lock().is_some());
}

#[test]
fn mutex_is_not_poisoned_by_a_panic() {
    let m = Arc::new(Mutex::new(1));
    let m2 = Arc::clone(&m);
    let r = std::thread::spawn(move || {
        let _g = m2.lock();
        panic!("while holding the lock");
    })
    .join();
    assert!(r.is_err());
    assert_eq!(*m.lock(), 1);
}

#[test]
fn condvar_wait_timeout_reports_timeout() {
    let m = Mutex::new(());
    let cv = Condvar::new();
    let (_g, r) = cv.wait_timeout(m.lock(), Duration::from_millis(1));
    assert!(r.timed_out());
}

#[test]
fn full_fence_orders_store_then_load() {
    // Dekker-style: with a full fence between each thread's store and load, at least one
    // thread must see the other's store.
    for _ in 0..200 {
        let x = AtomicUsize::new(0);
        let y = AtomicUsize::new(0);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                x.store(1, Ordering::Relaxed);
                full_fence();
                y.load(Ordering::Relaxed)
            });
            let b = s.spawn(|| {
                y.store(1, Ordering::Relaxed);
                full_fence();
                x.load(Ordering::Relaxed)
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        assert!(a == 1 || b == 1, "both threads missed the other's store");
    }
}

#[test]
fn slice_pointer_covers_every_cell() {
    let cells: Vec<UnsafeCell<u32>> = (0..8).map(UnsafeCell::new).collect();
    let p = UnsafeCell::slice_as_mut_ptr(&cells).expect("contiguous outside loom");
    // SAFETY: `p` covers the 8 cells and no other access is live.
    unsafe { std::ptr::write_bytes(p, 0, 8) };
    // SAFETY: as above.
    assert!(cells.iter().all(|c| c.with(|v| unsafe { *v }) == 0));
}

#[test]
fn thread_index_is_stable_and_distinct() {
    let here = thread::index();
    assert_eq!(here, thread::index());
    let others: Vec<usize> = (0..3)
        .map(|_| thread::spawn(thread::index).join().unwrap())
        .collect();
    assert!(!others.contains(&here));
    let b = Backoff::new();
    while !b.is_completed() {
        b.snooze();
    }
    b.reset();
    assert!(!b.is_completed());
}
