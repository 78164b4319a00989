//! A work-stealing thread pool with a bounded queue, backpressure policies, dynamic
//! scaling, cancellation, priorities, and no CPU use while idle.
//!
//! A worker pool runs many small jobs on a few threads, so that the cost of a thread is
//! paid once rather than per job. Use it for CPU-bound or blocking work submitted from
//! many places (request handlers offloading compression, a pipeline stage, fork/join
//! over a data set) when you need what general-purpose pools leave out: a *bounded*
//! queue with a policy for when it is full (block, block with a timeout, fail and hand
//! the job back, or run it on the caller), cancellation of queued jobs, a pool that
//! grows under load and shrinks when idle, and a handle that can be joined, polled or
//! awaited on any async runtime.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use weft_workerpool::{Backpressure, JoinError, ThreadPool};
//!
//! let pool = ThreadPool::builder()
//!     .min_threads(1)
//!     .max_threads(4)
//!     .keep_alive(Duration::from_secs(30))
//!     .queue_capacity(10_000)
//!     .backpressure(Backpressure::Fail)
//!     .build()?;
//!
//! let squares = pool.submit(|| (1..=10u64).map(|i| i * i).sum::<u64>())?;
//! let oops = pool.submit(|| -> u64 { panic!("bad input") })?;
//! assert_eq!(squares.join()?, 385);
//! assert!(matches!(oops.join(), Err(JoinError::Panicked { .. }))); // the worker survives
//!
//! let report = pool.shutdown(Some(Duration::from_secs(5)));
//! assert!(report.completed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Contents
//!
//! - [`ThreadPool`], configured by [`Builder`]: [`execute`](ThreadPool::execute),
//!   [`submit`](ThreadPool::submit) → [`JobHandle`], [`submit_with`](ThreadPool::submit_with)
//!   a [`Priority`], [`scope`](ThreadPool::scope) → [`Scope`] for borrowing jobs,
//!   [`join`](ThreadPool::join) and [`install`](ThreadPool::install) for fork/join,
//!   [`status`](ThreadPool::status) → [`Status`], graceful and immediate shutdown →
//!   [`ShutdownReport`].
//! - [`Backpressure`]: what a submission does when the queue is full.
//! - [`JobHandle`]: `join`, `join_timeout`, `try_join`, `cancel`, and `.await`
//!   ([`JobFuture`]).
//! - [`JoinError`], [`SubmitError`] (which hands the job back), [`BuildError`].

#![deny(unsafe_op_in_unsafe_fn)]
#![doc(test(attr(deny(warnings))))]

mod error;
mod gate;
mod handle;
mod join;
mod pool;
mod scope;
mod sleep;

use std::fmt;
use std::time::Duration;

pub use error::{BuildError, JoinError, SubmitError};
pub use handle::{JobFuture, JobHandle};
pub use pool::{Backpressure, Priority, ShutdownReport, Status, ThreadPool};
pub use scope::Scope;

/// Configuration of a [`ThreadPool`].
///
/// Defaults: `min_threads` 0 (no thread until there is work), `max_threads` the number
/// of CPUs, `keep_alive` 60 s, `queue_capacity` 65 536, [`Backpressure::Block`], thread
/// names `weft-worker-N`, the platform's stack size, no hooks.
pub struct Builder {
    min_threads: usize,
    max_threads: Option<usize>,
    keep_alive: Duration,
    capacity: usize,
    backpressure: Backpressure,
    name: String,
    stack_size: Option<usize>,
    on_start: Option<pool::ThreadHook>,
    on_exit: Option<pool::ThreadHook>,
    on_panic: Option<pool::PanicHook>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("min_threads", &self.min_threads)
            .field("max_threads", &self.max_threads)
            .field("keep_alive", &self.keep_alive)
            .field("capacity", &self.capacity)
            .field("backpressure", &self.backpressure)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// The defaults (see [`Builder`]).
    pub fn new() -> Self {
        Builder {
            min_threads: 0,
            max_threads: None,
            keep_alive: Duration::from_secs(60),
            capacity: 1 << 16,
            backpressure: Backpressure::Block,
            name: "weft-worker".to_owned(),
            stack_size: None,
            on_start: None,
            on_exit: None,
            on_panic: None,
        }
    }

    /// Threads kept alive even when idle (started at build).
    pub fn min_threads(mut self, n: usize) -> Self {
        self.min_threads = n;
        self
    }

    /// The most threads the pool grows to under load.
    pub fn max_threads(mut self, n: usize) -> Self {
        self.max_threads = Some(n);
        self
    }

    /// How long a thread above `min_threads` stays idle before it exits.
    pub fn keep_alive(mut self, d: Duration) -> Self {
        self.keep_alive = d;
        self
    }

    /// The most jobs queued (submitted, not started) at once.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    /// What a submission does when the queue is full.
    pub fn backpressure(mut self, policy: Backpressure) -> Self {
        self.backpressure = policy;
        self
    }

    /// Worker thread names: `{name}-{n}`.
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Worker stack size in bytes.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Called on each worker thread as it starts, with the worker's number.
    pub fn on_thread_start(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_start = Some(Box::new(f));
        self
    }

    /// Called on each worker thread as it exits, with the worker's number.
    pub fn on_thread_exit(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_exit = Some(Box::new(f));
        self
    }

    /// Called with the message of every job that panics, on the worker, just before the
    /// job's handle is resolved (the worker survives).
    pub fn on_panic(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_panic = Some(Box::new(f));
        self
    }

    /// Validates and starts the pool (its `min_threads` threads).
    ///
    /// # Errors
    ///
    /// [`BuildError`] if `max_threads` is zero or below `min_threads`, or the capacity
    /// is zero.
    pub fn build(self) -> Result<ThreadPool, BuildError> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let max = self.max_threads.unwrap_or(cpus.max(self.min_threads));
        if max == 0 || max < self.min_threads {
            return Err(BuildError::Threads {
                min: self.min_threads,
                max,
            });
        }
        if self.capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        Ok(ThreadPool::start(
            pool::Settings {
                min_threads: self.min_threads,
                max_threads: max,
                keep_alive: self.keep_alive,
                capacity: self.capacity,
                backpressure: self.backpressure,
                name: self.name,
                stack_size: self.stack_size,
            },
            pool::Hooks {
                on_start: self.on_start,
                on_exit: self.on_exit,
                on_panic: self.on_panic,
            },
        ))
    }
}

/// Thin wrappers over internal primitives for the loom models in `loom-tests/` (built
/// only under `--cfg loom`; not part of the API).
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_api {
    use weft_sync::Arc;

    /// The sleep protocol's parking lot.
    #[derive(Debug, Default)]
    pub struct Sleepers(crate::sleep::Sleepers);

    impl Sleepers {
        /// A parking lot with nobody parked.
        pub fn new() -> Self {
            Sleepers(crate::sleep::Sleepers::new())
        }
        /// Announce idleness.
        pub fn announce(&self) {
            self.0.announce();
        }
        /// Withdraw the announcement.
        pub fn retract(&self) {
            self.0.retract();
        }
        /// Block until woken.
        pub fn sleep(&self) {
            let _ = self.0.sleep(None);
        }
        /// Wake one announced sleeper.
        pub fn wake_one(&self) {
            self.0.wake_one();
        }
    }

    /// The admission gate (queue bound, queued count, shutdown switch).
    #[derive(Debug)]
    pub struct Gate(crate::gate::Gate);

    impl Gate {
        /// An open, empty gate.
        pub fn new() -> Self {
            Gate(crate::gate::Gate::new())
        }
        /// A submission's reservation: `true` if admitted.
        pub fn reserve(&self, cap: usize) -> bool {
            self.0.reserve(cap).is_ok()
        }
        /// A worker took `n` jobs.
        pub fn take(&self, n: usize) {
            self.0.take(n);
        }
        /// Shutdown: stop admitting.
        pub fn close(&self) {
            self.0.close();
        }
        /// A worker's exit test: closed, and every admitted job taken.
        pub fn drained(&self) -> bool {
            self.0.drained()
        }
    }

    impl Default for Gate {
        fn default() -> Self {
            Self::new()
        }
    }

    /// A job's start/cancel state machine.
    pub struct JobSlot(Arc<crate::handle::Slot<u32>>);

    impl JobSlot {
        /// A queued job.
        pub fn new() -> Self {
            JobSlot(crate::handle::Slot::new())
        }
        /// The worker's claim.
        pub fn start(&self) -> bool {
            self.0.start()
        }
        /// The handle's cancellation.
        pub fn cancel(&self) -> bool {
            self.0.cancel()
        }
    }

    impl std::fmt::Debug for JobSlot {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JobSlot")
        }
    }
}
