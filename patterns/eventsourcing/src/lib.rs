//! Event sourcing: aggregates decided from their events, event stores with optimistic
//! concurrency (in memory, and a crash-safe embedded file log with group commit),
//! snapshots, upcasting and durable subscriptions.
//!
//! In an event-sourced system the source of truth is not the current state but the
//! sequence of events that led to it: `Opened`, `Deposited(50)`, `Withdrew(20)`. The
//! state (a balance of 30) is a fold of those events, and any other view of the data can
//! be rebuilt by replaying them. Use it where the history itself matters (audit,
//! finance, workflows), where several read models must be derived from one write
//! model, or where you want to rebuild state after a bug fix. Writers of one aggregate
//! are kept consistent by optimistic concurrency: an append says which stream version
//! it decided on, and fails if another writer got there first.
//!
//! # Example
//!
//! ```
//! use weft_eventsourcing::{
//!     Aggregate, DomainEvent, ExecuteError, FileLog, FileLogConfig, Repository, Subscription,
//!     InMemoryCheckpointStore,
//! };
//! use std::time::Duration;
//!
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! struct Account { open: bool, balance: i64 }
//!
//! #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
//! enum Event { Opened, Deposited { amount: i64 }, Withdrew { amount: i64 } }
//! impl DomainEvent for Event {
//!     fn event_type(&self) -> &'static str {
//!         match self { Event::Opened => "Opened", Event::Deposited { .. } => "Deposited", Event::Withdrew { .. } => "Withdrew" }
//!     }
//! }
//!
//! enum Command { Open, Deposit(i64), Withdraw(i64) }
//!
//! impl Aggregate for Account {
//!     const TYPE: &'static str = "account";
//!     type Command = Command;
//!     type Event = Event;
//!     type Error = String;
//!     fn handle(&self, c: &Command) -> Result<Vec<Event>, String> {
//!         match c {
//!             Command::Open if self.open => Err("already open".into()),
//!             Command::Open => Ok(vec![Event::Opened]),
//!             _ if !self.open => Err("not open".into()),
//!             Command::Deposit(n) => Ok(vec![Event::Deposited { amount: *n }]),
//!             Command::Withdraw(n) if *n > self.balance => Err(format!("balance is only {}", self.balance)),
//!             Command::Withdraw(n) => Ok(vec![Event::Withdrew { amount: *n }]),
//!         }
//!     }
//!     fn apply(&mut self, e: &Event) {
//!         match e {
//!             Event::Opened => self.open = true,
//!             Event::Deposited { amount } => self.balance += amount,
//!             Event::Withdrew { amount } => self.balance -= amount,
//!         }
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let log = FileLog::open(dir.path(), FileLogConfig::default())?; // group commit, fsync per batch
//! let accounts = Repository::<Account, _>::new(&log);
//! accounts.execute("alice", &Command::Open)?;
//! accounts.execute("alice", &Command::Deposit(50))?;
//! let after = accounts.execute("alice", &Command::Withdraw(20))?;
//! assert_eq!((after.state.balance, after.version), (30, 3));
//! assert!(matches!(accounts.execute("alice", &Command::Withdraw(99)), Err(ExecuteError::Rejected(_))));
//!
//! // A read model follows the global log from a durable checkpoint.
//! let mut deposits = 0;
//! let mut sub = Subscription::new(&log, "deposits", InMemoryCheckpointStore::new())?;
//! sub.process(100, Duration::ZERO, |e| {
//!     if &*e.event_type == "Deposited" { deposits += 1 }
//!     Ok::<_, String>(())
//! })?;
//! assert_eq!(deposits, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Contents
//!
//! - [`Aggregate`] (pure [`handle`](Aggregate::handle), [`apply`](Aggregate::apply)) and
//!   [`DomainEvent`]; [`AggregateTest`]: given/when/then tests.
//! - [`EventStore`]: append with [`ExpectedVersion`], read a stream, read the global log;
//!   events go in as [`NewEvent`]s and come out as [`RecordedEvent`]s (event id, stream,
//!   version, global position, timestamp, [`Metadata`] with correlation and causation
//!   ids, schema version).
//! - Backends: [`InMemoryStore`]; [`FileLog`] with [`FileLogConfig`] and [`FsyncPolicy`]:
//!   CRC-checked segment files, group commit, torn-tail recovery, per-stream index.
//! - [`Repository`]: snapshot + tail loading, decide, append, conflict retries;
//!   [`Loaded`], [`Executed`], [`ExecuteError`], [`RepositoryMetrics`].
//! - [`Codec`]: [`JsonCodec`] (default) and [`PostcardCodec`].
//! - Snapshots: [`Snapshot`], [`SnapshotStore`], [`InMemorySnapshotStore`],
//!   [`FileSnapshotStore`].
//! - Upcasting: [`Upcaster`], [`JsonUpcaster`], [`Upcasters`].
//! - Subscriptions: [`Subscription`], [`CheckpointStore`], [`InMemoryCheckpointStore`],
//!   [`FileCheckpointStore`], [`IdempotencyGuard`], [`ProcessError`].
//! - [`Error`]: conflicts naming both versions, corruption naming file and offset, ...

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod aggregate;
mod codec;
mod error;
mod event;
mod filelog;
mod memory;
mod repository;
mod snapshot;
mod store;
mod subscription;
mod testing;
mod upcast;
mod util;

pub use aggregate::{Aggregate, DomainEvent};
pub use codec::{Codec, JsonCodec, PostcardCodec};
pub use error::Error;
pub use event::{AppendResult, EventId, ExpectedVersion, Metadata, NewEvent, RecordedEvent};
pub use filelog::{FileLog, FileLogConfig, FileLogMetrics, FsyncPolicy, Recovery};
pub use memory::InMemoryStore;
pub use repository::{ExecuteError, Executed, Loaded, Repository, RepositoryMetrics};
pub use snapshot::{FileSnapshotStore, InMemorySnapshotStore, Snapshot, SnapshotStore};
pub use store::EventStore;
pub use subscription::{
    CheckpointStore, FileCheckpointStore, IdempotencyGuard, InMemoryCheckpointStore, ProcessError,
    Subscription,
};
pub use testing::{AggregateResult, AggregateTest};
pub use upcast::{JsonUpcaster, Upcaster, Upcasters};
