//! [`InMemoryStore`]: the event store for tests, prototypes and caches.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use weft_sync::{Condvar, Mutex};
use weft_time::{Clock, SystemClock};

use crate::event::validate_append;
use crate::{AppendResult, Error, EventStore, ExpectedVersion, NewEvent, RecordedEvent};

/// An event store held in memory: one lock around the global log and a per-stream index
/// of positions. Nothing survives the process; use [`FileLog`](crate::FileLog) for that.
///
/// The version check and the append happen under the one lock, so two appenders that
/// expect the same version cannot both succeed (the loom model
/// `loom-tests/tests/eventsourcing.rs` checks every interleaving).
///
/// ```
/// use weft_eventsourcing::{EventStore, ExpectedVersion, InMemoryStore, NewEvent};
/// use weft_time::ManualClock;
///
/// let store = InMemoryStore::with_clock(ManualClock::new());
/// let r = store.append("cart-7", ExpectedVersion::NoStream, vec![
///     NewEvent::new("ItemAdded", 1, br#"{"sku":"a"}"#.to_vec()),
///     NewEvent::new("ItemAdded", 1, br#"{"sku":"b"}"#.to_vec()),
/// ])?;
/// assert_eq!((r.version, r.first_position, r.last_position), (2, 0, 1));
/// assert!(store.append("cart-7", ExpectedVersion::Exact(1), vec![]).is_err());
/// # Ok::<(), weft_eventsourcing::Error>(())
/// ```
pub struct InMemoryStore {
    inner: Mutex<Inner>,
    appended: Condvar,
    clock: Box<dyn Clock>,
}

#[derive(Default)]
struct Inner {
    /// The global log; an event's position is its index.
    log: Vec<RecordedEvent>,
    /// Per stream, the positions of its events; version `v` is at index `v - 1`.
    streams: HashMap<Arc<str>, Vec<u64>>,
}

impl InMemoryStore {
    /// An empty store timestamping events with the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// An empty store timestamping events with `clock`.
    pub fn with_clock(clock: impl Clock) -> Self {
        InMemoryStore {
            inner: Mutex::new(Inner::default()),
            appended: Condvar::new(),
            clock: Box::new(clock),
        }
    }

    /// The number of events stored.
    ///
    /// ```
    /// let store = weft_eventsourcing::InMemoryStore::new();
    /// assert_eq!(store.len(), 0);
    /// assert!(store.is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.inner.lock().log.len()
    }

    /// Whether no event is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("InMemoryStore")
            .field("events", &inner.log.len())
            .field("streams", &inner.streams.len())
            .finish()
    }
}

impl EventStore for InMemoryStore {
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, Error> {
        validate_append(stream, &events)?;
        let timestamp = self.clock.system_now();
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let current = inner.streams.get(stream).map_or(0, |p| p.len() as u64);
        expected.check(stream, current)?;
        let stream_id: Arc<str> = inner
            .streams
            .get_key_value(stream)
            .map_or_else(|| Arc::from(stream), |(k, _)| Arc::clone(k));
        let first_position = inner.log.len() as u64;
        let count = events.len() as u64;
        let positions = inner.streams.entry(Arc::clone(&stream_id)).or_default();
        for (i, e) in events.into_iter().enumerate() {
            let position = first_position + i as u64;
            positions.push(position);
            inner.log.push(RecordedEvent {
                event_id: e.event_id,
                stream_id: Arc::clone(&stream_id),
                version: current + 1 + i as u64,
                position,
                timestamp,
                event_type: Arc::from(e.event_type),
                schema_version: e.schema_version,
                payload: Arc::from(e.payload),
                metadata: e.metadata,
            });
        }
        self.appended.notify_all();
        Ok(AppendResult::new(current, first_position, count))
    }

    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let inner = self.inner.lock();
        let Some(positions) = inner.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let skip = crate::event::events_before(from_version);
        Ok(positions
            .iter()
            .skip(skip)
            .take(max)
            .map(|&p| inner.log[p as usize].clone())
            .collect())
    }

    fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, Error> {
        let inner = self.inner.lock();
        let skip = usize::try_from(from_position).unwrap_or(usize::MAX);
        Ok(inner.log.iter().skip(skip).take(max).cloned().collect())
    }

    fn stream_version(&self, stream: &str) -> Result<u64, Error> {
        Ok(self
            .inner
            .lock()
            .streams
            .get(stream)
            .map_or(0, |p| p.len() as u64))
    }

    fn head_position(&self) -> u64 {
        self.inner.lock().log.len() as u64
    }

    fn wait_for_position(&self, position: u64, timeout: Duration) -> bool {
        let inner = self.inner.lock();
        let inner = crate::util::wait_while(&self.appended, inner, timeout, |i| {
            (i.log.len() as u64) <= position
        });
        (inner.log.len() as u64) > position
    }
}
