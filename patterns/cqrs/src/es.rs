//! The `eventsourcing` feature: a [`weft_eventsourcing::EventStore`] as the command
//! bus's log and the projections' source.
//!
//! [`StoreLog`] adapts any event store (the in-memory one, the crash-safe file log) to
//! [`EventSource`] and [`EventLog`]: projections track the store's global log, commands
//! append to it, and events that aggregates append through a
//! [`weft_eventsourcing::Repository`] on the same store reach the projections too, so
//! aggregates, the event store and the read models are one system.
//!
//! Positions: the store numbers its global log from 0, this crate from 1, so an event
//! at store position `p` is at [`Position`] `p + 1`. Event payloads are decoded with
//! the store's [`Codec`] (JSON by default) into the [`DomainEvent`] type `E`; a command
//! handler's events are appended to the stream named by the command's key, at any
//! version (the bus already serialises commands per key). Reads call the store
//! directly from the projection's task: the store's reads are short and in memory or
//! in the page cache.

use std::marker::PhantomData;
use std::time::Duration;

use tokio::sync::watch;
use weft_eventsourcing::{Codec, DomainEvent, EventStore, ExpectedVersion, JsonCodec, NewEvent};
use weft_sync::Arc;
use weft_sync::atomic::{AtomicBool, Ordering};

use crate::error::log_error;
use crate::{Error, EventLog, EventSource, Position, Recorded};

/// How long the head follower waits for the store at a time: it returns at once when an
/// event arrives; this only bounds how long it outlives its [`StoreLog`].
const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// A weft-eventsourcing [`EventStore`] as an [`EventSource`] and [`EventLog`] of
/// [`DomainEvent`]s `E`, decoded with codec `C`.
///
/// A thread follows the store's head (through
/// [`EventStore::wait_for_position`]), so projections also see events appended to the
/// store by others (an aggregate's [`Repository`](weft_eventsourcing::Repository), say),
/// not only the bus's.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use serde::{Deserialize, Serialize};
/// use weft_cqrs::{EventLog, EventSource, StoreLog};
/// use weft_eventsourcing::{DomainEvent, InMemoryStore};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct Deposited(u64);
/// impl DomainEvent for Deposited {
///     fn event_type(&self) -> &'static str {
///         "Deposited"
///     }
/// }
///
/// let log: StoreLog<InMemoryStore, Deposited> = StoreLog::new(InMemoryStore::new());
/// assert_eq!(log.append("acct-1", vec![Deposited(5), Deposited(7)]).await?, 2);
/// let events = log.read(0, 10).await?;
/// assert_eq!(events[1].position, 2);
/// assert_eq!((events[1].key.as_str(), &events[1].event), ("acct-1", &Deposited(7)));
/// # Ok(())
/// # }
/// ```
pub struct StoreLog<S, E, C = JsonCodec> {
    shared: Arc<Shared<S, C>>,
    _event: PhantomData<fn() -> E>,
}

/// What the log and its head follower share.
struct Shared<S, C> {
    store: S,
    codec: C,
    head: watch::Sender<Position>,
    stop: AtomicBool,
}

impl<S, C> Shared<S, C> {
    /// Raises the published head to `position` (never lowers it).
    fn advance(&self, position: Position) {
        self.head.send_if_modified(|head| {
            let moved = position > *head;
            if moved {
                *head = position;
            }
            moved
        });
    }
}

impl<S, E> StoreLog<S, E, JsonCodec>
where
    S: EventStore + 'static,
    E: DomainEvent,
{
    /// Adapts `store`, with JSON payloads.
    pub fn new(store: S) -> Self {
        Self::with_codec(store, JsonCodec)
    }
}

impl<S, E, C> StoreLog<S, E, C>
where
    S: EventStore + 'static,
    E: DomainEvent,
    C: Codec,
{
    /// Adapts `store`, with payloads in `codec`.
    pub fn with_codec(store: S, codec: C) -> Self {
        let shared = Arc::new(Shared {
            head: watch::Sender::new(store.head_position()),
            store,
            codec,
            stop: AtomicBool::new(false),
        });
        let follower = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("weft-cqrs-follow".to_owned())
            .spawn(move || follow(&follower));
        if spawned.is_err() {
            // Without the follower, the head still moves on this log's own appends.
            tracing::warn!(
                target: "weft_cqrs",
                "could not start the store follower; only this log's appends move the head"
            );
        }
        StoreLog {
            shared,
            _event: PhantomData,
        }
    }

    /// The adapted store (for a `Repository`, say).
    pub fn store(&self) -> &S {
        &self.shared.store
    }
}

/// The follower: publishes the store's head whenever it moves, until the log is dropped.
fn follow<S: EventStore, C>(shared: &Shared<S, C>) {
    while !shared.stop.load(Ordering::Acquire) {
        // Store positions are 0-based: "an event at position `head`" is the next one.
        let head = shared.store.head_position();
        shared.advance(head);
        shared.store.wait_for_position(head, FOLLOW_POLL);
    }
}

impl<S, E, C> Drop for StoreLog<S, E, C> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

impl<S, E, C> std::fmt::Debug for StoreLog<S, E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLog")
            .field("head", &*self.shared.head.borrow())
            .finish_non_exhaustive()
    }
}

impl<S, E, C> EventSource for StoreLog<S, E, C>
where
    S: EventStore + 'static,
    E: DomainEvent,
    C: Codec,
{
    type Event = E;

    async fn read(&self, after: Position, limit: usize) -> Result<Vec<Recorded<E>>, Error> {
        // Positions after `after` (1-based) are store positions from `after` on.
        let records = self
            .shared
            .store
            .read_all(after, limit)
            .map_err(log_error)?;
        records
            .into_iter()
            .map(|r| {
                let event = self
                    .shared
                    .codec
                    .decode::<E>(&r.payload)
                    .map_err(log_error)?;
                Ok(Recorded {
                    position: r.position + 1,
                    key: r.stream_id.to_string(),
                    event,
                })
            })
            .collect()
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.shared.head.subscribe()
    }
}

impl<S, E, C> EventLog for StoreLog<S, E, C>
where
    S: EventStore + 'static,
    E: DomainEvent,
    C: Codec,
{
    async fn append(&self, key: &str, events: Vec<E>) -> Result<Position, Error> {
        if events.is_empty() {
            return Ok(*self.shared.head.borrow());
        }
        let new = events
            .iter()
            .map(|e| {
                let payload = self.shared.codec.encode(e).map_err(log_error)?;
                Ok(NewEvent::new(e.event_type(), e.schema_version(), payload))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let appended = self
            .shared
            .store
            .append(key, ExpectedVersion::Any, new)
            .map_err(log_error)?;
        let last = appended.last_position + 1;
        self.shared.advance(last);
        Ok(last)
    }
}
