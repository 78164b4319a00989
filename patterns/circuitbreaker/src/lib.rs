//! A circuit breaker with count- and time-based windows, slow-call detection and exact
//! half-open probing, plus retry with budgets and timeouts.
//!
//! A circuit breaker sits between your code and a dependency (a database, an HTTP API).
//! While the dependency works, calls flow (*closed*). When too many recent calls fail, or
//! take too long, the breaker *opens*: calls are refused at once, so a struggling
//! dependency is not buried under traffic and callers do not wait on timeouts. After a
//! while it goes *half-open* and lets a fixed number of trial calls through; their
//! outcomes close it or open it again. Use it around any remote call whose failure
//! should degrade your service gracefully rather than take it down; pair it with
//! [`retry`] (which never retries a refused call, and can be capped by a retry budget so
//! retries cannot amplify an outage).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use weft_circuitbreaker::{CallError, CircuitBreaker, SlidingWindow, State};
//! use weft_time::ManualClock;
//!
//! let clock = ManualClock::new();
//! let breaker = CircuitBreaker::builder()
//!     .name("inventory")
//!     .sliding_window(SlidingWindow::count(10))
//!     .minimum_calls(5)
//!     .failure_rate_threshold(0.5)
//!     .half_open_permits(2)
//!     .open_for(Duration::from_secs(5))
//!     .clock(clock.clone())
//!     .build()?;
//!
//! // The dependency goes down: after 5 failures the breaker opens...
//! for _ in 0..5 {
//!     let _ = breaker.call(|| Err::<(), _>("timeout"));
//! }
//! assert_eq!(breaker.state(), State::Open);
//! // ...and refuses calls without running them.
//! let refused = breaker.call(|| Ok::<_, &str>("never runs"));
//! assert!(matches!(refused, Err(CallError::NotPermitted(_))));
//!
//! // Five seconds later, two trial calls succeed and it closes again.
//! clock.advance(Duration::from_secs(5));
//! breaker.call(|| Ok::<_, std::io::Error>(()))?;
//! breaker.call(|| Ok::<_, std::io::Error>(()))?;
//! assert_eq!(breaker.state(), State::Closed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Contents
//!
//! - [`CircuitBreaker`] with its [`Builder`]: [`call`](CircuitBreaker::call),
//!   [`call_async`](CircuitBreaker::call_async), the guard API
//!   [`try_acquire`](CircuitBreaker::try_acquire) → [`Permit`], classified variants,
//!   [`metrics`](CircuitBreaker::metrics), forced states
//!   ([`transition_to`](CircuitBreaker::transition_to)) and transition listeners.
//! - [`State`], [`Outcome`], [`SlidingWindow`], [`Transition`], [`Metrics`].
//! - [`KeyedBreakers`]: one breaker per host or endpoint, with a bounded number of keys.
//! - [`retry`]: retry policies, retry budgets and timeouts.
//! - [`CallError`], [`NotPermitted`], [`ConfigError`].
//! - (feature `tower`) `CircuitBreakerLayer`: middleware sharing one breaker across
//!   service clones.

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod breaker;
mod error;
mod keyed;
#[cfg(feature = "tower")]
mod layer;
pub mod retry;
mod window;

pub use breaker::{
    Builder, CircuitBreaker, Metrics, Outcome, OwnedPermit, Permit, SlidingWindow, State,
    Transition,
};
pub use error::{CallError, ConfigError, NotPermitted};
pub use keyed::KeyedBreakers;
#[cfg(feature = "tower")]
pub use layer::{
    BoxError, CircuitBreakerLayer, CircuitBreakerService, Classify, ErrorsAreFailures,
    ResponseFuture,
};
