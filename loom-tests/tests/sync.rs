//! Loom models of the `weft-sync` facade itself: its lock and condition variable keep
//! their contracts when swapped for loom's types.
#![cfg(loom)]

use weft_sync::atomic::{AtomicUsize, Ordering};
use weft_sync::{Arc, Condvar, Mutex, UnsafeCell, thread};

/// Mutual exclusion: increments under the facade's `Mutex` are never lost, and a
/// `Condvar` waiter wakes to see the state the notifier set.
#[test]
fn mutex_and_condvar_hand_off() {
    loom::model(|| {
        let state = Arc::new((Mutex::new(0usize), Condvar::new()));
        let worker = {
            let state = Arc::clone(&state);
            thread::spawn(move || {
                *state.0.lock() += 1;
                state.1.notify_one();
            })
        };
        {
            let mut n = state.0.lock();
            *n += 1;
            while *n < 2 {
                n = state.1.wait(n);
            }
        }
        worker.join().unwrap();
        assert_eq!(*state.0.lock(), 2);
    });
}

/// `UnsafeCell` published through a Release store and read after an Acquire load: loom
/// checks the access is race-free under every interleaving.
#[test]
fn unsafe_cell_release_acquire_publication() {
    struct Slot {
        ready: AtomicUsize,
        value: UnsafeCell<u32>,
    }
    // SAFETY: the cell is written only before `ready` is set (Release) and read only after
    // `ready` is seen set (Acquire); loom checks exactly that claim.
    unsafe impl Sync for Slot {}

    loom::model(|| {
        let slot = Arc::new(Slot {
            ready: AtomicUsize::new(0),
            value: UnsafeCell::new(0),
        });
        let writer = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || {
                // SAFETY: no reader touches the cell before `ready` is set.
                slot.value.with_mut(|p| unsafe { *p = 42 });
                slot.ready.store(1, Ordering::Release);
            })
        };
        if slot.ready.load(Ordering::Acquire) == 1 {
            // SAFETY: `ready` was set after the only write, which happens-before this read.
            assert_eq!(slot.value.with(|p| unsafe { *p }), 42);
        }
        writer.join().unwrap();
    });
}
