//! Command and query separation (CQRS): a command bus with middleware and per-key
//! ordering, tracking projections with durable checkpoints, read-your-writes, blue/green
//! rebuilds and subscription queries, with no lost or doubled projection updates.
//!
//! Use CQRS when writes and reads want different shapes: commands change one aggregate
//! at a time and append events to a log; queries read denormalised *read models* that
//! projections build from that log. The read side is eventually consistent, and this
//! crate makes that manageable:
//!
//! - **Commands** ([`CommandBus`]) are routed by type to their handler through a fixed
//!   middleware order (tracing, authorization, validation, custom [`Middleware`],
//!   timeout). Commands for the same aggregate key run one at a time in arrival order,
//!   different keys in parallel, with no global lock on the hot path. A command returns
//!   the log [`Position`] of its last event.
//! - **Projections** ([`projection`], [`ProjectionHandle`]) are *tracking processors*:
//!   each reads the log from its own checkpoint, applies events guarded by position
//!   (at-least-once delivery, exactly-once effect), saves position and state together
//!   in a [`CheckpointStore`], and reports its lag. Nothing is dispatched inline after a
//!   commit, so a crash between the commit and the projection loses nothing: the
//!   projection catches up from its checkpoint.
//! - **Read-your-writes**: [`ProjectionHandle::wait_for`] / [`QueryBus::query_at`] wait,
//!   with a deadline, until a projection has reached a command's position.
//! - **Blue/green rebuilds** ([`ProjectionHandle::rebuild`]) replay from zero into a
//!   fresh read model beside the live one and swap it in when caught up.
//! - **Subscription queries** ([`QueryBus::subscribe`]) push a query's answer after every
//!   batch, with a bounded channel per subscriber and a stated slow-subscriber policy.
//!
//! The log is anything implementing [`EventSource`] (read from a global position) and
//! [`EventLog`] (append): [`MemoryLog`] in memory, [`FileLog`] a minimal durable one.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::HashMap;
//! use std::sync::Arc;
//! use std::time::Duration;
//! use weft_cqrs::{projection, Command, CommandBus, MemoryLog, Projection, Recorded};
//!
//! struct Deposit { account: String, amount: i64 }
//! impl Command for Deposit {
//!     fn key(&self) -> &str { &self.account }
//!     fn validate(&self) -> Result<(), String> {
//!         if self.amount > 0 { Ok(()) } else { Err("amount must be positive".into()) }
//!     }
//! }
//!
//! #[derive(Default)]
//! struct Balances(HashMap<String, i64>);
//! impl Projection for Balances {
//!     type Event = i64;
//!     fn apply(&mut self, e: &Recorded<i64>) {
//!         *self.0.entry(e.key.clone()).or_default() += e.event;
//!     }
//! }
//!
//! let log = Arc::new(MemoryLog::new());
//! let bus = CommandBus::builder(Arc::clone(&log))
//!     .handler(|d: Deposit| async move { Ok(vec![d.amount]) })
//!     .timeout(Duration::from_secs(1))
//!     .build()?;
//! let balances = projection("balances", Arc::clone(&log), Balances::default()).start()?;
//!
//! let at = bus.execute(Deposit { account: "alice".into(), amount: 30 }).await?;
//! let alice = balances
//!     .query_at(at, Duration::from_secs(1), |b| b.0["alice"])
//!     .await?;
//! assert_eq!(alice, 30);
//! assert!(bus.execute(Deposit { account: "bob".into(), amount: -5 }).await.is_err());
//! # Ok(()) }
//! ```
//!
//! # Contents
//!
//! - Commands: [`Command`], [`CommandBus`] built by [`CommandBusBuilder`],
//!   [`Middleware`] with [`CommandInfo`], [`AuthorizeFn`], [`CommandStats`].
//! - Queries: [`Query`], [`QueryBus`] built by [`QueryBusBuilder`], [`Subscription`]
//!   of [`Update`]s.
//! - Projections: [`Projection`], [`projection`] → [`ProjectionBuilder`] →
//!   [`ProjectionHandle`], [`ProjectionStatus`].
//! - Checkpoints: [`CheckpointStore`], [`Checkpoint`], [`MemoryCheckpoints`],
//!   [`FileCheckpoints`].
//! - The log: [`EventSource`], [`EventLog`], [`Recorded`], [`Position`], [`MemoryLog`],
//!   [`FileLog`].
//! - Errors: [`Error`], [`SubscriptionError`], [`BoxError`].
//! - With the `eventsourcing` feature: `StoreLog`, a weft-eventsourcing event store as
//!   the bus's log and the projections' source, shared with the store's aggregates.
//!
//! Time: the command timeout and the read-your-writes deadline run on tokio's timer, so
//! `tokio::time::pause` drives them in tests.

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod checkpoint;
mod command;
mod error;
#[cfg(feature = "eventsourcing")]
mod es;
mod file_log;
mod keylock;
mod projection;
mod query;
mod source;

pub use checkpoint::{Checkpoint, CheckpointStore, FileCheckpoints, MemoryCheckpoints};
pub use command::{
    AuthorizeFn, Command, CommandBus, CommandBusBuilder, CommandInfo, CommandStats, Middleware,
};
pub use error::{BoxError, Error, SubscriptionError};
#[cfg(feature = "eventsourcing")]
pub use es::StoreLog;
pub use file_log::FileLog;
pub use projection::{
    Projection, ProjectionBuilder, ProjectionHandle, ProjectionStatus, Subscription, Update,
    projection,
};
pub use query::{Query, QueryBus, QueryBusBuilder};
pub use source::{EventLog, EventSource, MemoryLog, Position, Recorded};

/// The per-key lock table, exposed for the loom models in `loom-tests/` only.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_api {
    use weft_sync::Arc;

    use crate::keylock::{self, Acquire};

    /// The per-key lock table.
    #[derive(Debug)]
    pub struct KeyLocks(keylock::KeyLocks);

    /// A queued waiter's ticket.
    #[derive(Debug)]
    pub struct Ticket(Arc<keylock::Ticket>);

    impl KeyLocks {
        /// A table with `shards` shards.
        pub fn new(shards: usize) -> Self {
            KeyLocks(keylock::KeyLocks::new(shards))
        }
        /// Takes `key` (`None`) or queues for it (`Some(ticket)`).
        pub fn acquire(&self, key: &str) -> Option<Ticket> {
            match self.0.acquire(key) {
                Acquire::Held => None,
                Acquire::Queued(t) => Some(Ticket(t)),
            }
        }
        /// Releases `key`, handing it to the next waiter.
        pub fn release(&self, key: &str) {
            self.0.release(key);
        }
        /// Gives up a queued ticket.
        pub fn cancel(&self, key: &str, ticket: &Ticket) {
            self.0.cancel(key, &ticket.0);
        }
        /// Keys held.
        pub fn held(&self) -> usize {
            self.0.held()
        }
    }

    impl Ticket {
        /// Whether the key was handed to this ticket.
        pub fn granted(&self) -> bool {
            self.0.granted()
        }
    }
}
