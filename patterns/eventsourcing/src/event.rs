//! Events as the stores see them: untyped envelopes with metadata.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A 128-bit random identifier of an event, printed as 32 hex digits.
///
/// Also used as a correlation or causation id.
///
/// ```
/// use weft_eventsourcing::EventId;
/// let a = EventId::random();
/// assert_ne!(a, EventId::random());
/// assert_eq!(a.to_string().len(), 32);
/// assert_eq!(EventId::from_u128(7).as_u128(), 7);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventId(u128);

impl EventId {
    /// A fresh random id.
    pub fn random() -> Self {
        EventId(fastrand::u128(..))
    }

    /// The id with this numeric value.
    pub const fn from_u128(value: u128) -> Self {
        EventId(value)
    }

    /// The numeric value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({:032x})", self.0)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Metadata the caller attaches to the events of one command: who caused them.
///
/// The correlation id ties together everything that happened because of one original
/// request; the causation id names the message (command or event) that directly caused
/// these events.
///
/// ```
/// use weft_eventsourcing::{EventId, Metadata};
/// let request = EventId::random();
/// let meta = Metadata::new().correlation_id(request).causation_id(request);
/// assert_eq!(meta.correlation_id, Some(request));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The id shared by every message of one original request.
    pub correlation_id: Option<EventId>,
    /// The id of the message that caused these events.
    pub causation_id: Option<EventId>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: EventId) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    pub fn causation_id(mut self, id: EventId) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Metadata for events caused by `event`: same correlation id (or the event's id if it
    /// had none), causation id = the event's id.
    ///
    /// ```
    /// use weft_eventsourcing::{EventStore, InMemoryStore, ExpectedVersion, Metadata, NewEvent};
    /// let store = InMemoryStore::new();
    /// store.append("a", ExpectedVersion::Any, vec![NewEvent::new("Opened", 1, b"{}".to_vec())])?;
    /// let first = &store.read_stream("a", 1, 10)?[0];
    /// let meta = Metadata::caused_by(first);
    /// assert_eq!(meta.causation_id, Some(first.event_id));
    /// # Ok::<(), weft_eventsourcing::Error>(())
    /// ```
    pub fn caused_by(event: &RecordedEvent) -> Self {
        Metadata {
            correlation_id: Some(event.metadata.correlation_id.unwrap_or(event.event_id)),
            causation_id: Some(event.event_id),
        }
    }
}

/// An event to append: its type name, schema version, encoded payload and metadata.
///
/// The store assigns the rest (stream version, global position, timestamp). Build one by
/// hand, or let a [`Repository`](crate::Repository) encode your domain events.
///
/// ```
/// use weft_eventsourcing::NewEvent;
/// let e = NewEvent::new("Deposited", 2, br#"{"amount":5}"#.to_vec());
/// assert_eq!(e.event_type, "Deposited");
/// assert_eq!(e.schema_version, 2);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The event id (random unless set).
    pub event_id: EventId,
    /// The event's type name, e.g. `"Deposited"`; upcasters match on it.
    pub event_type: String,
    /// The schema version the payload was written with.
    pub schema_version: u32,
    /// The encoded payload.
    pub payload: Vec<u8>,
    /// Correlation and causation ids.
    pub metadata: Metadata,
}

impl NewEvent {
    /// An event with a random id and empty metadata.
    pub fn new(event_type: impl Into<String>, schema_version: u32, payload: Vec<u8>) -> Self {
        NewEvent {
            event_id: EventId::random(),
            event_type: event_type.into(),
            schema_version,
            payload,
            metadata: Metadata::default(),
        }
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

impl fmt::Debug for NewEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEvent")
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("schema_version", &self.schema_version)
            .field("payload_len", &self.payload.len())
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// An event as stored: the appended [`NewEvent`] plus what the store assigned.
///
/// Cheap to clone (the payload is shared).
#[derive(Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The event id.
    pub event_id: EventId,
    /// The stream the event belongs to.
    pub stream_id: Arc<str>,
    /// The event's version in its stream: the first event of a stream has version 1.
    pub version: u64,
    /// The event's position in the global log of the store: 0, 1, 2, ... with no gaps.
    pub position: u64,
    /// When the store appended it (from the store's [`Clock`](weft_time::Clock)).
    pub timestamp: SystemTime,
    /// The event's type name.
    pub event_type: Arc<str>,
    /// The schema version of `payload` (after upcasting, the upcast version).
    pub schema_version: u32,
    /// The encoded payload.
    pub payload: Arc<[u8]>,
    /// Correlation and causation ids.
    pub metadata: Metadata,
}

impl RecordedEvent {
    /// The timestamp as nanoseconds since the Unix epoch (0 for times before it).
    ///
    /// ```
    /// use weft_eventsourcing::{EventStore, ExpectedVersion, InMemoryStore, NewEvent};
    /// let store = InMemoryStore::new();
    /// store.append("s", ExpectedVersion::Any, vec![NewEvent::new("E", 1, vec![])])?;
    /// assert!(store.read_all(0, 1)?[0].timestamp_nanos() > 0);
    /// # Ok::<(), weft_eventsourcing::Error>(())
    /// ```
    pub fn timestamp_nanos(&self) -> u64 {
        system_time_to_nanos(self.timestamp)
    }
}

impl fmt::Debug for RecordedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedEvent")
            .field("stream_id", &self.stream_id)
            .field("version", &self.version)
            .field("position", &self.position)
            .field("event_type", &self.event_type)
            .field("schema_version", &self.schema_version)
            .field("event_id", &self.event_id)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn system_time_to_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn nanos_to_system_time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// The version an append expects its stream to be at (optimistic concurrency).
///
/// ```
/// use weft_eventsourcing::{Error, EventStore, ExpectedVersion, InMemoryStore, NewEvent};
/// let store = InMemoryStore::new();
/// let e = || vec![NewEvent::new("E", 1, vec![])];
/// store.append("s", ExpectedVersion::NoStream, e())?;
/// let err = store.append("s", ExpectedVersion::NoStream, e()).unwrap_err();
/// assert!(matches!(err, Error::Conflict { expected: 0, actual: 1, .. }));
/// store.append("s", ExpectedVersion::Exact(1), e())?;
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version (no concurrency check).
    Any,
    /// The stream must not exist yet (same as `Exact(0)`).
    NoStream,
    /// The stream must be at exactly this version (0: empty).
    Exact(u64),
}

impl ExpectedVersion {
    /// Checks `actual` against the expectation; the conflict error names both versions.
    pub(crate) fn check(self, stream: &str, actual: u64) -> Result<(), crate::Error> {
        let expected = match self {
            ExpectedVersion::Any => return Ok(()),
            ExpectedVersion::NoStream => 0,
            ExpectedVersion::Exact(v) => v,
        };
        if expected == actual {
            Ok(())
        } else {
            Err(crate::Error::Conflict {
                stream: stream.to_owned(),
                expected,
                actual,
            })
        }
    }
}

/// What a successful append assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// The stream's new version (the version of the last appended event).
    pub version: u64,
    /// The global position of the first appended event.
    pub first_position: u64,
    /// The global position of the last appended event.
    pub last_position: u64,
}

impl AppendResult {
    /// The result of appending `count` (at least 1) events to a stream that was at
    /// `previous_version`, the first at global position `first_position`.
    pub(crate) fn new(previous_version: u64, first_position: u64, count: u64) -> Self {
        AppendResult {
            version: previous_version + count,
            first_position,
            last_position: first_position + count - 1,
        }
    }
}

/// How many events of a stream come before version `from_version` (versions start at 1;
/// reading from 0 reads from the start).
pub(crate) fn events_before(from_version: u64) -> usize {
    usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX)
}

pub(crate) fn validate_append(stream: &str, events: &[NewEvent]) -> Result<(), crate::Error> {
    if stream.is_empty() {
        return Err(crate::Error::InvalidInput(
            "stream id is empty; give every stream a non-empty name".into(),
        ));
    }
    if stream.len() > u16::MAX as usize {
        return Err(crate::Error::InvalidInput(format!(
            "stream id is {} bytes long; the limit is {}",
            stream.len(),
            u16::MAX
        )));
    }
    if events.is_empty() {
        return Err(crate::Error::InvalidInput(format!(
            "append to `{stream}` has no events; pass at least one"
        )));
    }
    for e in events {
        if e.event_type.is_empty() || e.event_type.len() > u16::MAX as usize {
            return Err(crate::Error::InvalidInput(format!(
                "event type of an event for `{stream}` must be 1..={} bytes, got {}",
                u16::MAX,
                e.event_type.len()
            )));
        }
    }
    Ok(())
}
