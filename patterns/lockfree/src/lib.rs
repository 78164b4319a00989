//! Lock-free building blocks: a bounded MPMC queue, an SPSC ring buffer, a Treiber stack
//! and a striped counter.
//!
//! Use this crate when threads hand items to each other at rates where a `Mutex<VecDeque>`
//! or a channel becomes the bottleneck: a bounded work or event queue shared by many
//! threads ([`ArrayQueue`]), a pipeline stage talking to exactly one other
//! ([`spsc::channel`]), a free list or LIFO work pool ([`TreiberStack`]), or a metric
//! that every thread bumps ([`StripedCounter`]). None of them needs an async runtime.
//!
//! Every structure is checked by loom models (`loom-tests/tests/lockfree.rs`) for the
//! invariant that matters (every pushed item popped exactly once, full/empty boundaries,
//! wrap-around, reclamation racing pops, counter sums), by property tests against a
//! `VecDeque`/`Vec` model, by multi-threaded stress tests, and by valgrind memcheck. The
//! `docs/` book's lock-free chapter builds the queue step by step.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use weft_lockfree::ArrayQueue;
//!
//! let q = Arc::new(ArrayQueue::new(64).unwrap());
//! std::thread::scope(|s| {
//!     for p in 0..2u64 {
//!         let q = &q;
//!         s.spawn(move || {
//!             for i in 0..100 {
//!                 let mut v = p * 1000 + i;
//!                 // `push` hands the value back when full: nothing is dropped silently.
//!                 while let Err(e) = q.push(v) {
//!                     v = e.into_inner();
//!                     std::thread::yield_now();
//!                 }
//!             }
//!         });
//!     }
//!     let mut got = 0;
//!     while got < 200 {
//!         if q.pop().is_some() {
//!             got += 1;
//!         }
//!     }
//! });
//! assert!(q.is_empty());
//! ```
//!
//! # Thread safety
//!
//! [`ArrayQueue<T>`], [`TreiberStack<T>`] are `Send + Sync` exactly when `T: Send` (values
//! move between threads but are never shared); [`StripedCounter`] is `Send + Sync`; the
//! SPSC [`spsc::Producer`] and [`spsc::Consumer`] are `Send` (for `T: Send`) but not `Sync`,
//! since sharing one would make two producers or two consumers. The compiler enforces it:
//!
//! ```compile_fail
//! fn shared<T: Sync>() {}
//! shared::<weft_lockfree::ArrayQueue<std::rc::Rc<u8>>>(); // `Rc` is not `Send`
//! ```
//!
//! ```compile_fail
//! fn shared<T: Sync>() {}
//! shared::<weft_lockfree::spsc::Producer<u8>>(); // one producer per ring
//! ```
//!
//! ```compile_fail
//! fn sent<T: Send>() {}
//! sent::<weft_lockfree::spsc::Consumer<std::rc::Rc<u8>>>();
//! ```
//!
//! # Contents
//!
//! - [`ArrayQueue`]: bounded MPMC queue (Vyukov), with [`ArrayQueue::force_push`] and
//!   batch push/pop.
//! - [`spsc::channel`], [`spsc::Producer`], [`spsc::Consumer`]: bounded SPSC ring with
//!   cached indices, batch APIs and abandonment detection.
//! - [`TreiberStack`]: lock-free stack with crossbeam-epoch reclamation.
//! - [`StripedCounter`]: `LongAdder`-style counter.
//! - [`PushError`], [`PopError`], [`Error`]: what went wrong (a rejected value is always
//!   handed back).

#![deny(unsafe_op_in_unsafe_fn)]
#![doc(test(attr(deny(warnings))))]

mod array_queue;
mod counter;
mod error;
pub mod spsc;
mod stack;

pub use array_queue::ArrayQueue;
pub use counter::StripedCounter;
pub use error::{Error, PopError, PushError};
pub use stack::TreiberStack;
