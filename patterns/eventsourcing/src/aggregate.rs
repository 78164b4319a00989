//! The [`Aggregate`] and [`DomainEvent`] traits.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An event of a domain, as the aggregate sees it: a serde value with a type name and a
/// schema version.
///
/// ```
/// use weft_eventsourcing::DomainEvent;
///
/// #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// enum AccountEvent { Opened, Deposited { amount: u64 } }
///
/// impl DomainEvent for AccountEvent {
///     fn event_type(&self) -> &'static str {
///         match self { AccountEvent::Opened => "Opened", AccountEvent::Deposited { .. } => "Deposited" }
///     }
/// }
/// assert_eq!(AccountEvent::Opened.schema_version(), 1);
/// ```
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The event's type name, stored beside the payload; upcasters match on it.
    fn event_type(&self) -> &'static str;

    /// The schema version of this event's current shape (default 1). Bump it when the
    /// payload changes shape and register an [`Upcaster`](crate::Upcaster) from the old
    /// version.
    fn schema_version(&self) -> u32 {
        1
    }
}

/// A consistency boundary whose state is the fold of its events.
///
/// [`handle`](Aggregate::handle) is the pure decision: given the current state and a
/// command it returns the events to record, or a domain error; it must not change state
/// or do I/O, so a [`Repository`](crate::Repository) can call it again after a version
/// conflict. [`apply`](Aggregate::apply) folds one event into the state and must not
/// fail: events are facts that already happened.
///
/// The state is `Serialize + DeserializeOwned` so it can be snapshotted; bump
/// [`SNAPSHOT_VERSION`](Aggregate::SNAPSHOT_VERSION) whenever its shape changes, and old
/// snapshots are ignored (the stream is replayed instead).
///
/// ```
/// use weft_eventsourcing::{Aggregate, DomainEvent};
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Account { open: bool, balance: u64 }
///
/// #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// enum Event { Opened, Deposited(u64) }
/// impl DomainEvent for Event {
///     fn event_type(&self) -> &'static str {
///         match self { Event::Opened => "Opened", Event::Deposited(_) => "Deposited" }
///     }
/// }
///
/// enum Command { Open, Deposit(u64) }
///
/// impl Aggregate for Account {
///     const TYPE: &'static str = "account";
///     type Command = Command;
///     type Event = Event;
///     type Error = &'static str;
///
///     fn handle(&self, command: &Command) -> Result<Vec<Event>, &'static str> {
///         match command {
///             Command::Open if self.open => Err("already open"),
///             Command::Open => Ok(vec![Event::Opened]),
///             Command::Deposit(_) if !self.open => Err("account is not open"),
///             Command::Deposit(n) => Ok(vec![Event::Deposited(*n)]),
///         }
///     }
///
///     fn apply(&mut self, event: &Event) {
///         match event {
///             Event::Opened => self.open = true,
///             Event::Deposited(n) => self.balance += n,
///         }
///     }
/// }
///
/// let mut account = Account::default();
/// for e in account.handle(&Command::Open).unwrap() { account.apply(&e); }
/// assert_eq!(account.handle(&Command::Open), Err("already open"));
/// assert_eq!(account.handle(&Command::Deposit(5)), Ok(vec![Event::Deposited(5)]));
/// ```
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The aggregate type's name; the stream of aggregate `id` is `"{TYPE}-{id}"`.
    const TYPE: &'static str;

    /// The version of the state's serialized shape, stored in snapshots.
    const SNAPSHOT_VERSION: u32 = 1;

    /// The commands the aggregate decides on.
    type Command;
    /// The events it records.
    type Event: DomainEvent;
    /// Why it rejects a command.
    type Error: fmt::Debug + fmt::Display + Send + Sync + 'static;

    /// Decides: the events `command` produces in the current state, or why it is
    /// rejected. Pure: no state change, no I/O.
    fn handle(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state.
    fn apply(&mut self, event: &Self::Event);
}
