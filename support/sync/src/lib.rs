//! The one synchronisation facade of Weft: atomics, poison-free locks, cells and threads
//! that switch to [loom]'s model-checked types under `--cfg loom`.
//!
//! Every Weft crate with shared mutable state imports its primitives from here instead of
//! naming `std::sync` directly (the way crossbeam's crates import from crossbeam-utils, and
//! the way tokio routes everything through `src/loom/`). A normal build gets the fast
//! production types (`std` atomics, `parking_lot` locks, `crossbeam-utils` padding); a
//! build with `RUSTFLAGS="--cfg loom"` gets loom's types, so the models in `loom-tests/`
//! explore every interleaving of the very code that ships.
//!
//! Both sides expose the same API, including the two places where `std` and loom differ:
//!
//! - [`UnsafeCell`] is accessed through [`UnsafeCell::with`] / [`UnsafeCell::with_mut`]
//!   (loom's form), so loom can check each access for data races;
//! - [`Mutex::lock`] returns the guard directly: locks are poison-free on both sides.
//!
//! # Example
//!
//! ```
//! use weft_sync::atomic::{AtomicUsize, Ordering};
//! use weft_sync::{thread, Arc, Mutex};
//!
//! let hits = Arc::new(AtomicUsize::new(0));
//! let log = Arc::new(Mutex::new(Vec::new()));
//! let handles: Vec<_> = (0..2)
//!     .map(|i| {
//!         let (hits, log) = (Arc::clone(&hits), Arc::clone(&log));
//!         thread::spawn(move || {
//!             hits.fetch_add(1, Ordering::Relaxed);
//!             log.lock().push(i);
//!         })
//!     })
//!     .collect();
//! for h in handles {
//!     h.join().unwrap();
//! }
//! assert_eq!(hits.load(Ordering::Relaxed), 2);
//! assert_eq!(log.lock().len(), 2);
//! ```
//!
//! # Contents
//!
//! - [`atomic`]: the atomic integer, bool and pointer types, [`atomic::Ordering`], [`atomic::fence`].
//! - [`Arc`], [`Mutex`] / [`MutexGuard`], [`Condvar`]: poison-free blocking primitives.
//! - [`UnsafeCell`]: an interior-mutability cell with loom's checked access API.
//! - [`CachePadded`]: pads and aligns a value to a cache line (from crossbeam-utils).
//! - [`Backoff`]: exponential spin/yield backoff for CAS loops; yields to loom's scheduler
//!   under loom so spin loops terminate in models.
//! - [`thread`]: spawning, yielding, and [`thread::index`], a small per-thread number for
//!   picking a shard.
//! - [`IS_LOOM`]: whether this build is a loom build.
//!
//! [loom]: https://docs.rs/loom

#![deny(unsafe_op_in_unsafe_fn)]
#![doc(test(attr(deny(warnings))))]

#[cfg(not(loom))]
mod std_impl;
#[cfg(not(loom))]
use std_impl as imp;

#[cfg(loom)]
mod loom_impl;
#[cfg(loom)]
use loom_impl as imp;

pub use crossbeam_utils::CachePadded;
pub use imp::{Arc, Backoff, Condvar, Mutex, MutexGuard, UnsafeCell, WaitTimeoutResult};

/// `true` when this build swaps in loom's types (`--cfg loom`).
///
/// Code that must scale a workload down under the model checker can branch on it.
///
/// ```
/// assert!(!weft_sync::IS_LOOM); // ordinary builds use the production types
/// ```
pub const IS_LOOM: bool = cfg!(loom);

/// Atomic types and memory orderings.
///
/// Under loom these are loom's atomics, which record every access; their constructors are
/// not `const`, so a loom build cannot put them in a `static`.
///
/// ```
/// use weft_sync::atomic::{AtomicU64, Ordering};
/// let n = AtomicU64::new(1);
/// n.fetch_add(2, Ordering::AcqRel);
/// assert_eq!(n.load(Ordering::Acquire), 3);
/// ```
pub mod atomic {
    pub use crate::imp::atomic::{
        AtomicBool, AtomicI64, AtomicIsize, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize,
        Ordering, fence,
    };
    /// A sequentially consistent fence, `fence(Ordering::SeqCst)` in meaning, issued the
    /// cheapest way the target allows.
    ///
    /// On x86-64 a `SeqCst` fence compiles to `mfence`, which costs more than a
    /// `lock`-prefixed read-modify-write on many cores while both are full barriers; this
    /// issues a `lock not` on a stack slot instead (the trick concurrent-queue uses).
    /// Elsewhere, and under loom, it is `fence(Ordering::SeqCst)`.
    ///
    /// ```
    /// weft_sync::atomic::full_fence();
    /// ```
    #[inline]
    pub fn full_fence() {
        crate::imp::full_fence();
    }
}

/// Threads: spawning, yielding, and a per-thread shard index.
pub mod thread {
    pub use crate::imp::thread::{Builder, JoinHandle, spawn, yield_now};

    /// A small number stable for the life of the calling thread, distinct for threads
    /// created one after another; used to pick a shard (a striped counter's cell, say).
    ///
    /// It is a hint for spreading contention, not an identity: two threads may share a
    /// value once the numbers wrap, which costs only contention, never correctness.
    ///
    /// ```
    /// let here = weft_sync::thread::index();
    /// assert_eq!(here, weft_sync::thread::index());
    /// let there = std::thread::spawn(weft_sync::thread::index).join().unwrap();
    /// assert_ne!(here, there);
    /// ```
    #[inline]
    pub fn index() -> usize {
        crate::imp::thread::index()
    }

    /// The message of a caught panic (the payload of `catch_unwind` or of a joined
    /// thread's `Err`): its `&str` or `String`, or a placeholder for other payloads.
    ///
    /// ```
    /// let payload = std::panic::catch_unwind(|| panic!("bad input {}", 7)).unwrap_err();
    /// assert_eq!(weft_sync::thread::panic_message(payload.as_ref()), "bad input 7");
    /// ```
    pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic with a non-string payload".to_owned())
    }
}
