//! Retry with backoff, retry budgets and timeouts.
//!
//! Retrying hides transient failures: a dropped connection, a leader election, a brief
//! overload. A [`RetryPolicy`] says how many attempts a call may make, how long it may
//! keep trying, and how long to wait between attempts (exponential backoff with jitter,
//! from [`weft_time::Backoff`]). A [`Retry`] runs one call under a policy, blocking or
//! async, with every wait injectable so tests drive a manual clock and never sleep.
//!
//! # Retry storms, and why a budget
//!
//! Per-call limits do not bound the load retries add. When a dependency slows down or
//! fails, *every* call fails and *every* caller retries: with 3 attempts per call, a
//! struggling service suddenly receives 3× its normal traffic, exactly when it can least
//! take it, and a stack of services that each retry 3 times multiplies that to 27× at the
//! bottom. The retries keep it down long after the original cause is gone: a retry storm.
//! Backoff and jitter spread the retries out in time but do not reduce their number.
//!
//! A [`RetryBudget`] (the design of Finagle and linkerd) caps retries as a *fraction of
//! recent calls*: each original call deposits, each retry withdraws, and with a ratio of
//! 0.2 retries can add at most 20% to the load, however badly the dependency fails. Calls
//! whose retry is refused fail fast with [`RetryError::BudgetExhausted`]. A small floor
//! (`min_retries_per_sec`) keeps retries possible for a service with little traffic.
//! Share one budget (in an `Arc`) among all callers of one dependency, and pair it with a
//! circuit breaker, which stops calls altogether while the dependency is down.
//!
//! # Example
//!
//! A dependency goes down for good. Without a budget, 100 calls of 3 attempts each would
//! hit it 300 times; with a 10% budget it sees 110 requests.
//!
//! ```
//! use std::time::Duration;
//! use weft_circuitbreaker::retry::{Retry, RetryBudget, RetryError, RetryPolicy};
//! use weft_time::{Backoff, Jitter, ManualClock};
//!
//! let clock = ManualClock::new();
//! let policy = RetryPolicy::builder()
//!     .max_attempts(3)
//!     .max_elapsed(Duration::from_secs(5))
//!     .backoff(
//!         Backoff::exponential(Duration::from_millis(100))
//!             .max_delay(Duration::from_secs(2))
//!             .jitter(Jitter::Full)
//!             .build()?,
//!     )
//!     .seed(1) // reproducible jitter for this example; leave unset in production
//!     .build()?;
//! // Each call funds 0.1 retry for 10 s; no floor.
//! let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 0.1, clock.clone())?;
//!
//! let mut requests = 0;
//! let mut retried = 0;
//! for _ in 0..100 {
//!     let err = Retry::new(&policy)
//!         .budget(&budget)
//!         .clock(&clock)
//!         .sleep_with(|delay| clock.advance(delay / 100)) // keep all calls in one window
//!         .call(|_attempt| {
//!             requests += 1;
//!             Err::<(), _>("503 Service Unavailable")
//!         })
//!         .unwrap_err();
//!     // Every call ends when the budget refuses a retry, and keeps its last error.
//!     assert!(matches!(err, RetryError::BudgetExhausted { .. }));
//!     assert_eq!(err.last_error(), &"503 Service Unavailable");
//!     if err.attempts() == 2 {
//!         retried += 1;
//!     }
//! }
//! assert_eq!(requests, 110); // 100 calls + 10 retries
//! assert_eq!(retried, 10); // every tenth call had earned a retry
//! assert_eq!(budget.status().total_rejections, 100);
//!
//! // Ten seconds on, those calls no longer fund retries.
//! clock.advance(Duration::from_secs(10));
//! assert_eq!(budget.status().deposits, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Contents
//!
//! - [`RetryPolicy`] and its [`RetryPolicyBuilder`]: attempts, time limit, backoff, seed.
//! - [`Retry`]: runs a call, blocking ([`call`](Retry::call)) or async
//!   (`call_async` on tokio, feature `tokio`;
//!   [`call_async_with_sleep`](Retry::call_async_with_sleep) on any runtime); which
//!   errors to retry via a [`RetryPredicate`] (default [`AnyError`]), a [`RetryNotify`]
//!   hook (default [`NoNotify`]).
//! - [`RetryBudget`] and its [`RetryBudgetStatus`]: retries as a fraction of calls.
//! - [`RetryError`]: why a call failed for good, with its last error;
//!   [`RetryConfigError`]: invalid settings.
//! - (feature `tokio`) `timeout`, `Timeout`, `Elapsed`: bound an attempt's time,
//!   cancelling it when it runs over.
//! - Re-exported from `weft-time` for convenience: [`Backoff`], [`BackoffPolicy`],
//!   [`Jitter`], [`Rng`].

mod budget;
mod error;
mod executor;
mod policy;
#[cfg(feature = "tokio")]
mod timeout;

pub use budget::{RetryBudget, RetryBudgetStatus};
pub use error::{RetryConfigError, RetryError};
pub use executor::{AnyError, NoNotify, Retry, RetryNotify, RetryPredicate};
pub use policy::{RetryPolicy, RetryPolicyBuilder};
#[cfg(feature = "tokio")]
pub use timeout::{Elapsed, Timeout, timeout};
pub use weft_time::{Backoff, BackoffPolicy, Jitter, Rng};
