//! Rate limiting with GCRA: direct, multi-quota and keyed limiters, fair FIFO waiting,
//! concurrency limits, and a tower layer.
//!
//! A rate limiter decides whether a request may proceed now, given a budget such as
//! "100 per second with bursts of 10". Use this crate to protect a service from
//! overload, to keep each client or tenant within its share (keyed limiting with bounded
//! memory, even against clients that rotate their keys), or to pace your own calls to a
//! rate-limited API (fair waiting with `until_ready`).
//!
//! Every limiter runs the Generic Cell Rate Algorithm: the state of a quota is a single
//! number, the theoretical arrival time, so a direct limiter is one `AtomicU64` updated
//! by one compare-and-swap, and a denied request learns exactly when it would succeed
//! (`NotUntil`, ready for a `429` with `Retry-After`). Time comes from a
//! [`weft_time::Clock`]: a fast TSC clock by default, a manual clock in tests.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use weft_ratelimit::{KeyedLimiter, Quota, RateLimiter};
//! use weft_time::ManualClock;
//!
//! let clock = ManualClock::new();
//!
//! // 10 requests per second, in bursts of at most 3.
//! let quota = Quota::per_second(10)?.allow_burst(3)?;
//! let global = RateLimiter::with_clock(quota, clock.clone());
//! for _ in 0..3 {
//!     assert!(global.check().is_ok());
//! }
//! let denied = global.check().unwrap_err();
//! assert_eq!(denied.retry_after(), Duration::from_millis(100));
//!
//! // The same quota per client, never more than 10 000 clients remembered.
//! let per_client = KeyedLimiter::builder(quota)
//!     .max_keys(10_000)
//!     .clock(clock.clone())
//!     .build()?;
//! assert!(per_client.check(&"10.0.0.1").is_ok());
//! # Ok::<(), weft_ratelimit::Error>(())
//! ```
//!
//! # Contents
//!
//! - [`Quota`]: burst and replenish interval, validated.
//! - [`RateLimiter`]: one quota, lock-free; [`check`](RateLimiter::check),
//!   [`check_n`](RateLimiter::check_n) for weighted requests,
//!   [`reserve_n`](RateLimiter::reserve_n) for fair FIFO booking, and (feature `tokio`)
//!   `until_ready` / `until_ready_n`, cancellation-safe waiting with a bounded queue.
//! - [`MultiLimiter`]: several quotas at once (per second *and* per minute), all or
//!   nothing.
//! - [`KeyedLimiter`]: a quota per key with a hard cap on keys, idle-key eviction and a
//!   memory report; [`KeyedBuilder`] configures it.
//! - [`ConcurrencyLimiter`]: at most N calls in flight, released on drop.
//! - [`Admitted`], [`NotUntil`]: the outcomes of a check; [`Error`]: misuse and
//!   configuration errors.
//! - (feature `tower`) `RateLimitLayer`, `KeyedRateLimitLayer`: middleware whose limiter
//!   is shared by every clone of the service.
//!
//! # Features
//!
//! - `tokio`: `until_ready*` on tokio's timer, and `weft_time::TokioClock` for tests
//!   under `tokio::time::pause`.
//! - `tower`: the tower layers.

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod concurrency;
mod decision;
mod direct;
mod error;
mod gcra;
mod keyed;
#[cfg(feature = "tower")]
mod layer;
mod multi;
mod quota;
#[cfg(feature = "tokio")]
mod wait;

pub use concurrency::{ConcurrencyLimiter, OwnedPermit, Permit};
pub use decision::{Admitted, NotUntil};
pub use direct::{RateLimiter, Reservation, Status};
pub use error::Error;
pub use keyed::{KeyedBuilder, KeyedLimiter, KeyedStatus};
#[cfg(feature = "tower")]
pub use layer::{
    BoxError, KeyedRateLimit, KeyedRateLimitLayer, RateLimit, RateLimitLayer, ResponseFuture,
};
pub use multi::MultiLimiter;
pub use quota::Quota;
