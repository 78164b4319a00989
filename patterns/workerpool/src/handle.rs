//! A submitted job's handle: its result, cancellation, and the state machine that makes
//! "cancelled" and "started" mutually exclusive.
//!
//! # Design
//!
//! A job's slot holds one atomic state: `QUEUED → RUNNING → DONE`, or `QUEUED →
//! CANCELLED`. The worker that dequeues a job moves it `QUEUED → RUNNING` by CAS before
//! running it; `cancel` moves it `QUEUED → CANCELLED` by CAS. Exactly one CAS can
//! succeed, so a job either runs or is cancelled, never both and never neither (the loom
//! model `cancel_races_start` checks it). The result travels through a mutex-guarded
//! cell; waiters block on a condvar (`join`) or register a waker (`.await`).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use weft_sync::atomic::{AtomicU8, Ordering};
use weft_sync::{Arc, Condvar, Mutex};

use crate::JoinError;

/// Waiting in the queue.
pub(crate) const QUEUED: u8 = 0;
/// Taken by a worker and running.
pub(crate) const RUNNING: u8 = 1;
/// Finished (result available).
pub(crate) const DONE: u8 = 2;
/// Cancelled before it started.
pub(crate) const CANCELLED: u8 = 3;

/// The shared state of one job.
pub(crate) struct Slot<T> {
    /// `QUEUED`, `RUNNING`, `DONE` or `CANCELLED`.
    state: AtomicU8,
    /// The outcome, once there is one.
    result: Mutex<Option<Result<T, JoinError>>>,
    /// Wakes `join`ers.
    ready: Condvar,
    /// Wakes an awaiting task.
    waker: Mutex<Option<Waker>>,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Slot {
            state: AtomicU8::new(QUEUED),
            result: Mutex::new(None),
            ready: Condvar::new(),
            waker: Mutex::new(None),
        })
    }

    /// The worker's claim: `true` if the job may run (it was not cancelled).
    pub(crate) fn start(&self) -> bool {
        // AcqRel: exactly one of `start` and `cancel` wins this CAS; the winner's later
        // writes are ordered after it.
        self.state
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Cancels the job if it has not started: `true` if it will never run.
    pub(crate) fn cancel(&self) -> bool {
        if self
            .state
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.complete(Err(JoinError::Cancelled), CANCELLED);
            true
        } else {
            false
        }
    }

    /// Stores the outcome and wakes every waiter.
    pub(crate) fn complete(&self, result: Result<T, JoinError>, state: u8) {
        *self.result.lock() = Some(result);
        // Release: the result written above is visible to whoever sees the final state.
        self.state.store(state, Ordering::Release);
        self.ready.notify_all();
        if let Some(w) = self.waker.lock().take() {
            w.wake();
        }
    }

    pub(crate) fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }
}

/// A handle to a submitted job: wait for its result ([`join`](JobHandle::join),
/// [`try_join`](JobHandle::try_join), or `.await`), or [`cancel`](JobHandle::cancel) it
/// before it starts. Dropping the handle does not cancel the job.
///
/// ```
/// let pool = weft_workerpool::ThreadPool::builder().max_threads(2).build()?;
/// let handle = pool.submit(|| 6 * 7)?;
/// assert_eq!(handle.join()?, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JobHandle<T> {
    pub(crate) slot: Arc<Slot<T>>,
}

impl<T> JobHandle<T> {
    /// Blocks until the job finishes, and returns its value.
    ///
    /// # Errors
    ///
    /// [`JoinError::Panicked`] if it panicked (with the message), [`JoinError::Cancelled`]
    /// if it was cancelled before it started.
    pub fn join(self) -> Result<T, JoinError> {
        let mut result = self.slot.result.lock();
        loop {
            if let Some(r) = result.take() {
                return r;
            }
            result = self.slot.ready.wait(result);
        }
    }

    /// Like [`join`](Self::join), giving up after `timeout`: `Ok(outcome)` if the job
    /// finished in time (the outcome is as for `join`).
    ///
    /// # Errors
    ///
    /// `Err(handle)` if the timeout passed first: the handle comes back to wait again.
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, JoinError>, Self> {
        let deadline = std::time::Instant::now() + timeout;
        {
            let mut result = self.slot.result.lock();
            loop {
                if let Some(r) = result.take() {
                    return Ok(r);
                }
                let now = std::time::Instant::now();
                if now >= deadline {
                    break;
                }
                result = self.slot.ready.wait_timeout(result, deadline - now).0;
            }
        }
        Err(self)
    }

    /// The outcome if the job has finished, or the handle back if not (never blocks).
    ///
    /// # Errors
    ///
    /// `Err(handle)` while the job is queued or running.
    pub fn try_join(self) -> Result<Result<T, JoinError>, Self> {
        let taken = self.slot.result.lock().take();
        match taken {
            Some(r) => Ok(r),
            None => Err(self),
        }
    }

    /// Cancels the job if it has not started yet: `true` if it will never run (its
    /// handle then resolves to [`JoinError::Cancelled`]), `false` if it already started.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use weft_workerpool::{JoinError, ThreadPool};
    /// let pool = ThreadPool::builder().min_threads(1).max_threads(1).build()?;
    /// let (gate_tx, gate_rx) = mpsc::channel::<()>();
    /// let blocker = pool.submit(move || gate_rx.recv().ok())?; // occupies the only worker
    /// let queued = pool.submit(|| "never runs")?;
    /// assert!(queued.cancel());
    /// assert_eq!(queued.join(), Err(JoinError::Cancelled));
    /// gate_tx.send(()).unwrap();
    /// blocker.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel(&self) -> bool {
        self.slot.cancel()
    }

    /// `true` once the job finished, panicked or was cancelled.
    pub fn is_finished(&self) -> bool {
        matches!(self.slot.state(), DONE | CANCELLED)
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.slot.state() {
            QUEUED => "queued",
            RUNNING => "running",
            DONE => "done",
            _ => "cancelled",
        };
        f.debug_struct("JobHandle").field("state", &state).finish()
    }
}

/// The future of a [`JobHandle`] (`handle.await`), runtime-agnostic.
pub struct JobFuture<T> {
    slot: Arc<Slot<T>>,
}

impl<T> IntoFuture for JobHandle<T> {
    type Output = Result<T, JoinError>;
    type IntoFuture = JobFuture<T>;

    fn into_future(self) -> JobFuture<T> {
        JobFuture { slot: self.slot }
    }
}

impl<T> Future for JobFuture<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Register first, then check: a completion between the two still finds the waker.
        *self.slot.waker.lock() = Some(cx.waker().clone());
        match self.slot.result.lock().take() {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for JobFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobFuture").finish_non_exhaustive()
    }
}
