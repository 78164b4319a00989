//! The event log a CQRS system reads: [`EventSource`] (read side), [`EventLog`] (append
//! side), and the in-memory [`MemoryLog`].

use std::future::Future;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use weft_sync::Mutex;

use crate::Error;

/// A position in the global event log. The first event is at position 1; position 0
/// means "before the first event" (an empty log, a projection that applied nothing).
pub type Position = u64;

/// An event as the log recorded it: its global position, the aggregate key it belongs
/// to, and the event itself.
///
/// ```
/// use weft_cqrs::Recorded;
/// let r = Recorded { position: 3, key: "acct-1".to_owned(), event: 10_i64 };
/// assert_eq!(r.position, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded<E> {
    /// The event's position in the global log (1-based, strictly increasing).
    pub position: Position,
    /// The aggregate key the command that produced it was serialised on.
    pub key: String,
    /// The event.
    pub event: E,
}

/// The read side of an event log: what projections track.
///
/// It is shaped like a global-log read (`read(after, limit)`), so any store with a
/// global order (an event store's `$all` stream, a Kafka partition, a table with a
/// sequence column) fits behind a thin adapter.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_cqrs::Error> {
/// use weft_cqrs::{EventLog, EventSource, MemoryLog};
/// let log = MemoryLog::new();
/// log.append("k", vec!["a", "b", "c"]).await?;
/// let page = log.read(1, 10).await?;
/// assert_eq!(page.iter().map(|r| r.position).collect::<Vec<_>>(), [2, 3]);
/// assert_eq!(*log.watch_head().borrow(), 3);
/// # Ok(()) }
/// ```
pub trait EventSource: Send + Sync + 'static {
    /// The event type.
    type Event: Clone + Send + Sync + 'static;

    /// Up to `limit` events with positions greater than `after`, in position order.
    /// An empty result means the reader is caught up.
    fn read(
        &self,
        after: Position,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Recorded<Self::Event>>, Error>> + Send;

    /// A watch of the log's head (the position of its last event), updated on every
    /// append: tracking processors wait on it instead of polling.
    fn watch_head(&self) -> watch::Receiver<Position>;
}

/// The append side of an event log: where the command bus writes the events a handler
/// decided.
pub trait EventLog: EventSource {
    /// Appends `events` for aggregate `key` atomically and in order; returns the
    /// position of the last one (the log head if `events` is empty).
    fn append(
        &self,
        key: &str,
        events: Vec<Self::Event>,
    ) -> impl Future<Output = Result<Position, Error>> + Send;
}

/// An in-memory, append-only event log with global positions; for tests, benches and
/// single-process systems that rebuild from elsewhere. Not durable (see
/// [`FileLog`](crate::FileLog) for a minimal durable one).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_cqrs::Error> {
/// use weft_cqrs::{EventLog, MemoryLog};
/// let log = MemoryLog::new();
/// assert_eq!(log.append("a", vec![1, 2]).await?, 2);
/// assert_eq!(log.append("b", vec![3]).await?, 3);
/// assert_eq!(log.len(), 3);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MemoryLog<E> {
    events: Mutex<Vec<Recorded<E>>>,
    head: watch::Sender<Position>,
}

impl<E> Default for MemoryLog<E> {
    fn default() -> Self {
        MemoryLog {
            events: Mutex::new(Vec::new()),
            head: watch::Sender::new(0),
        }
    }
}

impl<E> MemoryLog<E> {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events the log holds (its head position).
    pub fn len(&self) -> usize {
        self.events.lock().len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The events of `events` (positions 1, 2, ...) after `after`, at most `limit`.
pub(crate) fn page<E: Clone>(
    events: &[Recorded<E>],
    after: Position,
    limit: usize,
) -> Vec<Recorded<E>> {
    let start = usize::try_from(after)
        .unwrap_or(usize::MAX)
        .min(events.len());
    let end = start.saturating_add(limit).min(events.len());
    events[start..end].to_vec()
}

impl<E: Clone + Send + Sync + 'static> EventSource for MemoryLog<E> {
    type Event = E;

    async fn read(&self, after: Position, limit: usize) -> Result<Vec<Recorded<E>>, Error> {
        Ok(page(&self.events.lock(), after, limit))
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }
}

impl<E: Clone + Send + Sync + 'static> EventLog for MemoryLog<E> {
    async fn append(&self, key: &str, events: Vec<E>) -> Result<Position, Error> {
        let mut log = self.events.lock();
        for event in events {
            let position = log.len() as Position + 1;
            log.push(Recorded {
                position,
                key: key.to_owned(),
                event,
            });
        }
        let head = log.len() as Position;
        // Published under the lock so heads are announced in order.
        self.head.send_replace(head);
        Ok(head)
    }
}
