//! Loom models of `weft-workerpool`'s primitives: the sleep protocol loses no wake-up,
//! and cancellation racing a worker's start resolves to exactly one outcome.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use weft_workerpool::loom_api::{JobSlot, Sleepers};

/// A worker goes to sleep exactly while a job is submitted: whatever the interleaving,
/// it either sees the job on its re-check or is woken, so it always takes the job (loom
/// reports a deadlock if the worker could sleep forever).
#[test]
fn no_lost_wakeup() {
    loom::model(|| {
        let sleepers = Arc::new(Sleepers::new());
        let pending = Arc::new(AtomicUsize::new(0));
        let worker = {
            let (sleepers, pending) = (Arc::clone(&sleepers), Arc::clone(&pending));
            thread::spawn(move || {
                loop {
                    if pending
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| p.checked_sub(1))
                        .is_ok()
                    {
                        return; // took the job
                    }
                    sleepers.announce();
                    if pending.load(Ordering::SeqCst) > 0 {
                        sleepers.retract();
                        continue;
                    }
                    sleepers.sleep();
                }
            })
        };
        // The submitter: publish, then wake.
        pending.fetch_add(1, Ordering::SeqCst);
        sleepers.wake_one();
        worker.join().unwrap();
        assert_eq!(pending.load(Ordering::SeqCst), 0);
    });
}

/// A worker starting a job races its handle cancelling it: exactly one wins.
#[test]
fn cancel_races_start() {
    loom::model(|| {
        let slot = Arc::new(JobSlot::new());
        let starter = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || slot.start())
        };
        let cancelled = slot.cancel();
        let started = starter.join().unwrap();
        assert!(
            started ^ cancelled,
            "started {started}, cancelled {cancelled}"
        );
    });
}
