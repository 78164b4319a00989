//! The [`EventStore`] trait every backend implements.

use std::time::Duration;

use crate::{AppendResult, Error, ExpectedVersion, NewEvent, RecordedEvent};

/// An append-only store of event streams with one global order.
///
/// - Every stream is a sequence of events with versions 1, 2, 3, ...; an append states the
///   version it expects the stream to be at and fails with [`Error::Conflict`] (naming the
///   expected and the actual version) if another writer got there first. The events of
///   one append are stored all or nothing.
/// - Every event also gets a position in the store's global log: 0, 1, 2, ... with no
///   gaps, in append order. Subscriptions read the global log.
///
/// Implementations: [`InMemoryStore`](crate::InMemoryStore) and
/// [`FileLog`](crate::FileLog); both pass the same conformance suite
/// (`tests/conformance.rs`).
///
/// ```
/// use weft_eventsourcing::{EventStore, ExpectedVersion, InMemoryStore, NewEvent};
///
/// fn transfer<S: EventStore>(store: &S) -> Result<(), weft_eventsourcing::Error> {
///     let r = store.append("acct-1", ExpectedVersion::NoStream, vec![NewEvent::new("Opened", 1, vec![])])?;
///     assert_eq!(r.version, 1);
///     store.append("acct-1", ExpectedVersion::Exact(1), vec![NewEvent::new("Deposited", 1, vec![])])?;
///     assert_eq!(store.stream_version("acct-1")?, 2);
///     assert_eq!(store.read_stream("acct-1", 2, 10)?[0].event_type.as_ref(), "Deposited");
///     assert_eq!(store.read_all(0, 10)?.len(), 2);
///     Ok(())
/// }
/// transfer(&InMemoryStore::new())?;
/// # Ok::<(), weft_eventsourcing::Error>(())
/// ```
pub trait EventStore: Send + Sync {
    /// Appends `events` to `stream` if it is at version `expected`; returns the new
    /// version and the global positions assigned. All or nothing.
    ///
    /// Fails with [`Error::Conflict`] on a version mismatch and [`Error::InvalidInput`]
    /// for an empty stream id or an empty list of events.
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, Error>;

    /// Reads at most `max` events of `stream` with version `>= from_version`, in version
    /// order. A stream that does not exist reads as empty.
    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, Error>;

    /// Reads at most `max` events of the global log with position `>= from_position`, in
    /// position order.
    fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, Error>;

    /// The stream's current version (0 if it has no events).
    fn stream_version(&self, stream: &str) -> Result<u64, Error>;

    /// The position the next appended event will get (the number of events readable in
    /// the global log).
    fn head_position(&self) -> u64;

    /// Blocks until an event with position `>= position` is readable or `timeout`
    /// passes; returns whether one is. Live subscriptions wait here.
    fn wait_for_position(&self, position: u64, timeout: Duration) -> bool;
}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        impl<S: EventStore + ?Sized> EventStore for $ty {
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, Error> {
        (**self).append(stream, expected, events)
    }
    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        (**self).read_stream(stream, from_version, max)
    }
    fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, Error> {
        (**self).read_all(from_position, max)
    }
    fn stream_version(&self, stream: &str) -> Result<u64, Error> {
        (**self).stream_version(stream)
    }
    fn head_position(&self) -> u64 {
        (**self).head_position()
    }
    fn wait_for_position(&self, position: u64, timeout: Duration) -> bool {
        (**self).wait_for_position(position, timeout)
    }
}
    )*};
}

forward_store!(std::sync::Arc<S>, &S, Box<S>);
