//! The production side of the facade: `std` atomics, `parking_lot` locks.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

pub(crate) use std::sync::atomic;

/// See [`crate::atomic::full_fence`].
#[inline]
pub(crate) fn full_fence() {
    #[cfg(target_arch = "x86_64")]
    {
        let mut slot = 0u64;
        // SAFETY: `lock not` reads and writes only `slot`, a live local we own; it touches
        // no other memory, the stack, or the flags. The asm block has no `nomem`, so the
        // compiler treats it as reading and writing memory and moves no load or store
        // across it, and the `lock` prefix makes it a full hardware barrier: together a
        // `SeqCst` fence.
        unsafe {
            core::arch::asm!(
                "lock not qword ptr [{0}]",
                in(reg) &mut slot,
                options(nostack, preserves_flags)
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}

/// A thread-safe reference-counted pointer (`std::sync::Arc`, or loom's under `--cfg loom`).
pub use std::sync::Arc;

/// A poison-free mutual-exclusion lock (`parking_lot::Mutex` in production builds).
///
/// ```
/// let m = weft_sync::Mutex::new(1);
/// *m.lock() += 1;
/// assert_eq!(*m.lock(), 2);
/// ```
#[derive(Default)]
pub struct Mutex<T: ?Sized>(parking_lot::Mutex<T>);

/// The guard returned by [`Mutex::lock`]; the lock is released when it drops.
pub struct MutexGuard<'a, T: ?Sized>(parking_lot::MutexGuard<'a, T>);

impl<T> Mutex<T> {
    /// Creates an unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Mutex(parking_lot::Mutex::new(value))
    }

    /// Consumes the mutex and returns the value it held.
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Blocks until the lock is acquired. Never poisoned: a panic while the lock was held
    /// leaves the value as the panicking thread left it.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        MutexGuard(self.0.lock())
    }

    /// Acquires the lock if it is free right now.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.0.try_lock().map(MutexGuard)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// A condition variable paired with [`Mutex`] (`parking_lot::Condvar` in production builds).
///
/// ```
/// use weft_sync::{Arc, Condvar, Mutex};
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let p2 = Arc::clone(&pair);
/// let t = std::thread::spawn(move || {
///     *p2.0.lock() = true;
///     p2.1.notify_one();
/// });
/// let mut ready = pair.0.lock();
/// while !*ready {
///     ready = pair.1.wait(ready);
/// }
/// t.join().unwrap();
/// ```
#[derive(Debug, Default)]
pub struct Condvar(parking_lot::Condvar);

/// Whether a [`Condvar::wait_timeout`] returned because its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// `true` if the wait ended because the timeout elapsed (not because of a notification).
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// Creates a condition variable with no waiters.
    pub const fn new() -> Self {
        Condvar(parking_lot::Condvar::new())
    }

    /// Releases the guard's lock, blocks until notified, and re-acquires the lock.
    /// Spurious wake-ups are possible: wait in a loop on the condition.
    #[inline]
    pub fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(&mut guard.0);
        guard
    }

    /// Like [`Condvar::wait`], but gives up after `timeout`.
    #[inline]
    pub fn wait_timeout<'a, T>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        let r = self.0.wait_for(&mut guard.0, timeout);
        (guard, WaitTimeoutResult(r.timed_out()))
    }

    /// Wakes one waiting thread, if any.
    #[inline]
    pub fn notify_one(&self) {
        self.0.notify_one();
    }

    /// Wakes every waiting thread.
    #[inline]
    pub fn notify_all(&self) {
        self.0.notify_all();
    }
}

/// An interior-mutability cell accessed through closures, so that loom can check each
/// access for a data race (`core::cell::UnsafeCell` in production builds, with no cost).
///
/// ```
/// let c = weft_sync::UnsafeCell::new(1);
/// // SAFETY: no other reference to the cell's contents exists.
/// c.with_mut(|p| unsafe { *p += 1 });
/// // SAFETY: as above.
/// assert_eq!(c.with(|p| unsafe { *p }), 2);
/// ```
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    #[inline]
    pub const fn new(value: T) -> Self {
        UnsafeCell(core::cell::UnsafeCell::new(value))
    }

    /// Unwraps the value.
    #[inline]
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

impl<T: ?Sized> UnsafeCell<T> {
    /// Calls `f` with a shared raw pointer to the contents. The caller of the unsafe
    /// dereference inside `f` must ensure no concurrent mutable access.
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a mutable raw pointer to the contents. The caller of the unsafe
    /// dereference inside `f` must ensure the access is exclusive.
    #[inline(always)]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

impl<T> UnsafeCell<T> {
    /// A raw pointer to the contents of a slice of cells, laid out as a `[T]`, for bulk
    /// copies (`ptr::copy_nonoverlapping`) over many cells at once.
    ///
    /// Returns `None` under loom, whose cells are not laid out contiguously and must be
    /// accessed one by one through [`with`](Self::with) / [`with_mut`](Self::with_mut);
    /// callers keep that per-cell path as the fallback, and it is the path loom checks.
    ///
    /// ```
    /// use weft_sync::UnsafeCell;
    /// let cells: Vec<UnsafeCell<u8>> = (0..4).map(UnsafeCell::new).collect();
    /// if let Some(p) = UnsafeCell::slice_as_mut_ptr(&cells) {
    ///     // SAFETY: `p` covers the 4 cells, and nothing else accesses them.
    ///     unsafe { std::ptr::copy_nonoverlapping([9u8, 9].as_ptr(), p.add(1), 2) };
    /// }
    /// // SAFETY: as above.
    /// let v: Vec<u8> = cells.iter().map(|c| c.with(|p| unsafe { *p })).collect();
    /// assert_eq!(v, [0, 9, 9, 3]);
    /// ```
    #[inline(always)]
    pub fn slice_as_mut_ptr(cells: &[UnsafeCell<T>]) -> Option<*mut T> {
        // `UnsafeCell<T>` here is `repr(transparent)` over `core::cell::UnsafeCell<T>`,
        // itself `repr(transparent)` over `T`, so the slice is laid out as a `[T]`; the
        // pointer comes from the whole slice, so its provenance covers every cell, and the
        // cells' interior mutability permits writes through it.
        Some(cells.as_ptr() as *mut T)
    }
}

/// Exponential backoff for spin loops (crossbeam-utils' `Backoff`); under loom every step
/// yields to the model's scheduler so that spin loops terminate.
///
/// ```
/// let b = weft_sync::Backoff::new();
/// while !b.is_completed() {
///     b.snooze();
/// }
/// ```
#[derive(Debug, Default)]
pub struct Backoff(crossbeam_utils::Backoff);

impl Backoff {
    /// A fresh backoff at its shortest step.
    #[inline]
    pub fn new() -> Self {
        Backoff(crossbeam_utils::Backoff::new())
    }

    /// Back off in a lock-free loop (another thread made progress; retry soon).
    #[inline]
    pub fn spin(&self) {
        self.0.spin();
    }

    /// Back off in a blocking loop (waiting for another thread to act).
    #[inline]
    pub fn snooze(&self) {
        self.0.snooze();
    }

    /// `true` once backing off has grown long enough that blocking would be better.
    #[inline]
    pub fn is_completed(&self) -> bool {
        self.0.is_completed()
    }

    /// Back to the shortest step.
    #[inline]
    pub fn reset(&self) {
        self.0.reset();
    }
}

pub(crate) mod thread {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub use std::thread::{Builder, JoinHandle, spawn, yield_now};

    // Relaxed suffices: the counter only hands out distinct numbers; nothing is published
    // through it.
    static NEXT: AtomicUsize = AtomicUsize::new(0);

    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }

    #[inline]
    pub(crate) fn index() -> usize {
        INDEX.with(|i| {
            let v = i.get();
            if v != usize::MAX {
                return v;
            }
            let v = NEXT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
            i.set(v);
            v
        })
    }
}
