//! Time for Weft: one [`Clock`] trait with real and manual clocks, [`Deadline`]s, and
//! [`Backoff`] policies with jitter.
//!
//! Use this crate wherever code waits, times out or retries. Every time-based Weft
//! primitive (rate limiters, circuit breakers, pools, retry, windows, saga timeouts) reads
//! time only through a [`Clock`] it is given: [`SystemClock`] in production, a
//! [`ManualClock`] in tests, which then never sleep. The crate holds no pattern logic and
//! no global state; jitter draws from a [`Rng`] you can seed.
//!
//! # Example
//!
//! A retry loop bounded by both a retry budget and an overall deadline, driven by a manual
//! clock (a real caller would sleep for each delay instead of advancing the clock):
//!
//! ```
//! use std::time::Duration;
//! use weft_time::{Backoff, Deadline, Jitter, ManualClock, Rng};
//!
//! let clock = ManualClock::new();
//! let policy = Backoff::exponential(Duration::from_millis(100))
//!     .factor(2.0)
//!     .max_delay(Duration::from_secs(1))
//!     .max_retries(5)
//!     .jitter(Jitter::Full)
//!     .build()?;
//! let deadline = Deadline::after(&clock, Duration::from_secs(2));
//!
//! let mut calls = 0;
//! let mut call_service = || {
//!     calls += 1;
//!     if calls < 3 { Err("unavailable") } else { Ok("done") }
//! };
//!
//! let mut delays = policy.iter_with_rng(Rng::with_seed(7));
//! let outcome = loop {
//!     match call_service() {
//!         Ok(v) => break Ok(v),
//!         Err(e) => match delays.next() {
//!             Some(delay) if delay < deadline.remaining(&clock) => clock.advance(delay),
//!             _ => break Err(e), // out of retries, or the wait would pass the deadline
//!         },
//!     }
//! };
//!
//! assert_eq!(outcome, Ok("done"));
//! assert_eq!(delays.retries(), 2);
//! assert!(clock.elapsed() <= Duration::from_millis(100 + 200)); // full jitter: at most d
//! assert!(!deadline.is_expired(&clock));
//! # Ok::<(), weft_time::Error>(())
//! ```
//!
//! # Contents
//!
//! - [`Clock`]: the time source trait (monotonic [`Instant`](std::time::Instant) plus
//!   wall-clock [`SystemTime`](std::time::SystemTime)); implemented for `Arc<C>`, `Box<C>`
//!   and `&'static C`.
//! - [`SystemClock`]: real time, zero-sized.
//! - [`ManualClock`]: a shared, manually advanced clock for deterministic tests.
//! - `FastClock` (feature `fast-clock`): a TSC-backed clock (quanta) for hot paths.
//! - `TokioClock` (feature `tokio`): tokio's clock, driven by `tokio::time::pause`.
//! - [`Epoch`]: a fixed starting point, for hot paths that keep time as `u64` nanoseconds.
//! - [`Deadline`]: an absolute instant with saturating [`remaining`](Deadline::remaining).
//! - [`Backoff`]: the builder of a [`BackoffPolicy`] (constant or exponential, cap, retry
//!   limit, [`Jitter`]).
//! - [`BackoffPolicy`]: the validated policy; [`BackoffIter`]: one operation's retry state.
//! - [`Jitter`]: none, full, equal or decorrelated.
//! - [`Rng`]: the seedable generator jitter draws from (re-exported from `fastrand`).
//! - [`Error`]: invalid backoff settings and backwards manual-clock moves.

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod backoff;
mod clock;
mod deadline;
mod epoch;
mod error;
#[cfg(feature = "fast-clock")]
mod fast;
#[cfg(feature = "tokio")]
mod tokio_clock;
mod util;

pub use backoff::{Backoff, BackoffIter, BackoffPolicy, Jitter};
pub use clock::{Clock, ManualClock, SystemClock};
pub use deadline::Deadline;
pub use epoch::Epoch;
pub use error::Error;
#[cfg(feature = "fast-clock")]
pub use fast::FastClock;
#[cfg(feature = "tokio")]
pub use tokio_clock::TokioClock;

/// The seedable random number generator that jitter draws from (`fastrand::Rng`).
///
/// Seed it with [`Rng::with_seed`] for reproducible delays in tests, or use [`Rng::new`]
/// for a randomly seeded one.
///
/// ```
/// use std::time::Duration;
/// use weft_time::{Backoff, Jitter, Rng};
///
/// let policy = Backoff::constant(Duration::from_secs(1)).jitter(Jitter::Full).build()?;
/// let a = policy.delay(0, &mut Rng::with_seed(11));
/// let b = policy.delay(0, &mut Rng::with_seed(11));
/// assert_eq!(a, b);
/// # Ok::<(), weft_time::Error>(())
/// ```
pub use fastrand::Rng;
