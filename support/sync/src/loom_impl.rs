//! The model-checking side of the facade: loom's types behind the same API as `std_impl`.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

pub(crate) use loom::sync::atomic;

/// Under loom a full fence is loom's `SeqCst` fence.
pub(crate) fn full_fence() {
    loom::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}

/// A thread-safe reference-counted pointer (loom's model under `--cfg loom`).
pub use loom::sync::Arc;

/// A poison-free mutual-exclusion lock (loom's model under `--cfg loom`).
#[derive(Debug)]
pub struct Mutex<T>(loom::sync::Mutex<T>);

/// The guard returned by [`Mutex::lock`]; the lock is released when it drops.
pub struct MutexGuard<'a, T>(loom::sync::MutexGuard<'a, T>);

impl<T> Mutex<T> {
    /// Creates an unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        Mutex(loom::sync::Mutex::new(value))
    }

    /// Consumes the mutex and returns the value it held.
    pub fn into_inner(self) -> T {
        self.0.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until the lock is acquired. Never poisoned.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        MutexGuard(self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Acquires the lock if it is free right now.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.0.try_lock().ok().map(MutexGuard)
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// A condition variable paired with [`Mutex`] (loom's model under `--cfg loom`).
#[derive(Debug, Default)]
pub struct Condvar(loom::sync::Condvar);

/// Whether a [`Condvar::wait_timeout`] returned because its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// `true` if the wait ended because the timeout elapsed. Loom does not model time, so
    /// under loom a timed wait is an untimed wait and this is always `false`.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// Creates a condition variable with no waiters.
    pub fn new() -> Self {
        Condvar(loom::sync::Condvar::new())
    }

    /// Releases the guard's lock, blocks until notified, and re-acquires the lock.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        MutexGuard(self.0.wait(guard.0).unwrap_or_else(|e| e.into_inner()))
    }

    /// Like [`Condvar::wait`]; loom does not model time, so this waits for a notification.
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        _timeout: Duration,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        (self.wait(guard), WaitTimeoutResult(false))
    }

    /// Wakes one waiting thread, if any.
    pub fn notify_one(&self) {
        self.0.notify_one();
    }

    /// Wakes every waiting thread.
    pub fn notify_all(&self) {
        self.0.notify_all();
    }
}

/// An interior-mutability cell whose every access loom checks for data races.
#[derive(Debug)]
pub struct UnsafeCell<T>(loom::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        UnsafeCell(loom::cell::UnsafeCell::new(value))
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }

    /// Calls `f` with a shared raw pointer to the contents (a checked immutable access).
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        self.0.with(f)
    }

    /// Calls `f` with a mutable raw pointer to the contents (a checked mutable access).
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        self.0.with_mut(f)
    }

    /// Always `None` under loom: loom's cells are not contiguous and every access must go
    /// through [`with`](Self::with) / [`with_mut`](Self::with_mut) to be checked.
    pub fn slice_as_mut_ptr(_cells: &[UnsafeCell<T>]) -> Option<*mut T> {
        None
    }
}

impl<T: Default> Default for UnsafeCell<T> {
    fn default() -> Self {
        UnsafeCell::new(T::default())
    }
}

/// Backoff for spin loops; under loom every step yields to the scheduler.
#[derive(Debug, Default)]
pub struct Backoff(std::cell::Cell<u32>);

impl Backoff {
    /// A fresh backoff.
    pub fn new() -> Self {
        Backoff(std::cell::Cell::new(0))
    }

    /// Yields to loom's scheduler.
    pub fn spin(&self) {
        self.0.set(self.0.get() + 1);
        loom::thread::yield_now();
    }

    /// Yields to loom's scheduler.
    pub fn snooze(&self) {
        self.0.set(self.0.get() + 1);
        loom::thread::yield_now();
    }

    /// `true` after a few steps, as in production.
    pub fn is_completed(&self) -> bool {
        self.0.get() > 2
    }

    /// Back to the first step.
    pub fn reset(&self) {
        self.0.set(0);
    }
}

pub(crate) mod thread {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub use loom::thread::{Builder, JoinHandle, spawn, yield_now};

    // Loom replays each execution and requires every run to make the same choices, so the
    // index must not depend on anything that changes between executions (loom's thread ids
    // do). A per-execution counter (loom resets `lazy_static`s for each execution) handed
    // out in first-use order is deterministic. It is a plain std atomic on purpose: it is
    // bookkeeping of the facade, not state under test, and must add no branches to models.
    loom::lazy_static! {
        static ref NEXT: AtomicUsize = AtomicUsize::new(0);
    }

    loom::thread_local! {
        static INDEX: Cell<usize> = Cell::new(usize::MAX);
    }

    pub(crate) fn index() -> usize {
        INDEX.with(|i| {
            if i.get() == usize::MAX {
                i.set(NEXT.fetch_add(1, Ordering::Relaxed));
            }
            i.get()
        })
    }
}
