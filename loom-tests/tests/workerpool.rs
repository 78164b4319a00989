//! Loom models of `weft-workerpool`'s primitives: the sleep protocol loses no wake-up,
//! a graceful shutdown drains exactly the jobs it accepted, and cancellation racing a
//! worker's start resolves to exactly one outcome.
#![cfg(loom)]

use std::collections::VecDeque;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use weft_workerpool::loom_api::{Gate, JobSlot, Sleepers};

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

/// A submission races a graceful shutdown while a worker drains the queue: every job the
/// gate admitted runs before the worker leaves (the shutdown waits for the workers), and
/// every other submission is refused. The gate's reservation and the shutdown's close
/// are one atomic word, so no interleaving lets the worker see "closed and nothing
/// queued" between a submission's admission and its push (the window a separate state
/// flag checked before reserving would leave).
#[test]
fn shutdown_drains_exactly_the_accepted_jobs() {
    loom::model(|| {
        let gate = Arc::new(Gate::new());
        // Stands in for the injector: the job is published after its reservation.
        let queue = Arc::new(Mutex::new(VecDeque::new()));
        let submitter = {
            let (gate, queue) = (Arc::clone(&gate), Arc::clone(&queue));
            thread::spawn(move || {
                let admitted = gate.reserve(4);
                if admitted {
                    queue.lock().unwrap().push_back(1usize);
                }
                admitted
            })
        };
        let worker = {
            let (gate, queue) = (Arc::clone(&gate), Arc::clone(&queue));
            thread::spawn(move || {
                let mut ran = 0;
                loop {
                    let job = queue.lock().unwrap().pop_front();
                    if let Some(job) = job {
                        gate.take(1);
                        ran += job;
                    } else if gate.drained() {
                        return ran;
                    } else {
                        thread::yield_now(); // admitted, not yet pushed
                    }
                }
            })
        };
        gate.close();
        let admitted = submitter.join().unwrap();
        let ran = worker.join().unwrap();
        assert_eq!(ran, usize::from(admitted), "admitted {admitted}, ran {ran}");
        assert!(gate.drained());
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
