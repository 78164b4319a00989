//! A fair, cancellation-safe object pool (database and network connections, sessions,
//! buffers) with an async and a blocking API, `min_idle`, lifetime and idle reaping,
//! creation retries that fail fast, leak detection and keyed pools.
//!
//! Use a pool when creating an object is expensive (a TCP and TLS handshake, an
//! authentication round trip) and many tasks or threads need one briefly. The pool keeps
//! up to `max_size` objects, hands them out one checkout at a time, and takes them back
//! when the [`Object`] guard drops.
//!
//! What sets it apart from the pools it is measured against (deadpool, bb8, r2d2):
//!
//! - **Fair.** Checkouts are served strictly in arrival order: a returned object is
//!   handed to the first waiter, never snatched by a newcomer.
//! - **Cancellation-safe everywhere.** A checkout dropped at any await point (a timeout,
//!   a `select!`, a cancelled request) gives back its queue place, its slot and any object
//!   it was handed; no slot leaks, no object is lost, no waiter is left waiting for an
//!   object that is sitting idle. A loom model checks it.
//! - **`min_idle` kept**, pre-warmed with [`Pool::warm_up`] and by maintenance, never
//!   reaped by the idle timeout.
//! - **Fails fast.** A creation that fails after its retries releases the queued
//!   checkouts that no object in use (or being created) can serve, with [`Error::Unavailable`], instead of
//!   leaving them to time out.
//! - **Runtime-agnostic core**: its own fair queue of wakers; tokio (feature `tokio`) only
//!   for timers and background maintenance. The blocking API runs the same state machine
//!   on the calling thread.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use weft_pool::{Manager, Metrics, Pool, RecycleError};
//!
//! /// Pretend connections: a number, and whether the peer hung up.
//! struct Connector;
//! struct Conn { id: u32, alive: bool }
//!
//! impl Manager for Connector {
//!     type Object = Conn;
//!     type Error = std::io::Error;
//!
//!     async fn create(&self) -> Result<Conn, std::io::Error> {
//!         Ok(Conn { id: 1, alive: true })
//!     }
//!
//!     async fn recycle(&self, c: &mut Conn, _: &Metrics) -> Result<(), RecycleError<std::io::Error>> {
//!         if c.alive { Ok(()) } else { Err(RecycleError::Message("peer hung up".into())) }
//!     }
//! }
//!
//! let pool = Pool::builder(Connector)
//!     .max_size(8)
//!     .min_idle(1)
//!     .wait_timeout(Duration::from_secs(2))
//!     .max_lifetime(Duration::from_secs(30 * 60))
//!     .build()?;
//! pool.warm_up().await?; // one idle connection ready
//!
//! let mut conn = pool.get().await?;
//! assert_eq!(conn.id, 1);
//! conn.alive = false; // it breaks while in use...
//! drop(conn);
//! let conn = pool.get().await?; // ...so recycle rejects it and a new one is made
//! assert!(conn.alive);
//! assert_eq!(pool.status().stats.closed.recycle_failed, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Contents
//!
//! - [`Manager`]: creates, recycles and checks objects; [`Metrics`] per object;
//!   [`RecycleError`].
//! - [`Pool`], configured by [`Builder`] ([`QueueMode`]): [`get`](Pool::get),
//!   [`try_get`](Pool::try_get), [`get_blocking`](Pool::get_blocking),
//!   [`status`](Pool::status), [`resize`](Pool::resize), [`retain`](Pool::retain),
//!   [`close`](Pool::close), [`maintain`](Pool::maintain), [`warm_up`](Pool::warm_up),
//!   [`add`](Pool::add) for objects made elsewhere.
//! - [`Object`]: the checkout guard; [`Object::take`] detaches.
//! - [`KeyedPool`], configured by [`KeyedBuilder`]: a pool per key with per-key and
//!   global caps; [`KeyedStatus`].
//! - [`Status`], [`Stats`], [`Closes`], [`CloseReason`], [`Histogram`], [`Maintenance`]:
//!   what the pool reports.
//! - [`Timer`] and [`Sleep`] (and `TokioTimer`, feature `tokio`): what async timeouts
//!   sleep on.
//! - [`HookFn`]: what a hook is.
//! - [`Error`], [`TimeoutKind`], [`ConfigError`], [`HookError`], [`HookKind`],
//!   [`AddError`].
//!
//! # Features
//!
//! - `tokio`: `TokioTimer` as the default timer of pools built inside a
//!   tokio runtime, background maintenance ([`Builder::maintenance_interval`]), and
//!   `weft_time::TokioClock` for tests under `tokio::time::pause`.

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod budget;
mod config;
mod error;
mod keyed;
mod maintain;
mod manager;
mod pool;
mod stats;
mod timer;
mod waitlist;

pub use config::{Builder, QueueMode};
pub use error::{AddError, ConfigError, Error, HookError, HookKind, RecycleError, TimeoutKind};
pub use keyed::{KeyedBuilder, KeyedPool, KeyedStatus};
pub use manager::{HookFn, Manager, Metrics};
pub use pool::{Maintenance, Object, Pool};
pub use stats::{CloseReason, Closes, Histogram, Stats, Status};
#[cfg(feature = "tokio")]
pub use timer::TokioTimer;
pub use timer::{Sleep, Timer};
