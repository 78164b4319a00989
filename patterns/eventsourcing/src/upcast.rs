//! Upcasting: turning events stored with an old schema version into the current shape
//! when they are read.

use std::fmt;
use std::sync::Arc;

use crate::{Error, RecordedEvent};

/// Transforms the payload of one event type from one schema version to the next.
///
/// Stored events are never rewritten; instead every read (a repository load, a
/// subscription's replay) passes them through the registered upcasters, which lift them
/// version by version to the shape the code expects.
pub trait Upcaster: Send + Sync + fmt::Debug {
    /// The event type this upcaster handles.
    fn event_type(&self) -> &str;
    /// The schema version it upcasts from (it produces `source_version() + 1`).
    fn source_version(&self) -> u32;
    /// Transforms a payload of version `source_version()` into one of the next version.
    fn upcast(&self, payload: &[u8]) -> Result<Vec<u8>, String>;
}

type JsonFn = dyn Fn(serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync;

/// An upcaster editing JSON payloads (for events written with
/// [`JsonCodec`](crate::JsonCodec)) as [`serde_json::Value`]s.
///
/// ```
/// use weft_eventsourcing::{JsonUpcaster, Upcaster};
///
/// // Version 1 of "Deposited" had `amount` in whole euros; version 2 stores cents.
/// let up = JsonUpcaster::new("Deposited", 1, |mut v| {
///     let euros = v["amount"].as_u64().ok_or("amount missing")?;
///     v["amount"] = (euros * 100).into();
///     Ok(v)
/// });
/// assert_eq!(up.upcast(br#"{"amount":3}"#).unwrap(), br#"{"amount":300}"#);
/// ```
pub struct JsonUpcaster {
    event_type: String,
    from_version: u32,
    f: Box<JsonFn>,
}

impl JsonUpcaster {
    /// An upcaster of `event_type` payloads from `from_version` to `from_version + 1`.
    pub fn new<F>(event_type: impl Into<String>, from_version: u32, f: F) -> Self
    where
        F: Fn(serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync + 'static,
    {
        JsonUpcaster {
            event_type: event_type.into(),
            from_version,
            f: Box::new(f),
        }
    }
}

impl fmt::Debug for JsonUpcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonUpcaster")
            .field("event_type", &self.event_type)
            .field("from_version", &self.from_version)
            .finish_non_exhaustive()
    }
}

impl Upcaster for JsonUpcaster {
    fn event_type(&self) -> &str {
        &self.event_type
    }
    fn source_version(&self) -> u32 {
        self.from_version
    }
    fn upcast(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        let value = (self.f)(value)?;
        serde_json::to_vec(&value).map_err(|e| e.to_string())
    }
}

/// An ordered set of upcasters applied to every event read, chaining versions
/// (1 → 2 → 3 ...) until none matches.
///
/// ```
/// use weft_eventsourcing::{EventStore, ExpectedVersion, InMemoryStore, JsonUpcaster, NewEvent, Upcasters};
///
/// let store = InMemoryStore::new();
/// store.append("s", ExpectedVersion::Any, vec![NewEvent::new("Renamed", 1, br#"{"name":"a"}"#.to_vec())])?;
/// let mut ups = Upcasters::new();
/// ups.register(JsonUpcaster::new("Renamed", 1, |v| Ok(serde_json::json!({ "new_name": v["name"] }))));
/// let event = ups.apply(store.read_all(0, 1)?.remove(0))?;
/// assert_eq!(event.schema_version, 2);
/// assert_eq!(&*event.payload, br#"{"new_name":"a"}"#);
/// # Ok::<(), weft_eventsourcing::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Upcasters {
    list: Vec<Arc<dyn Upcaster>>,
}

impl Upcasters {
    /// No upcasters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an upcaster.
    pub fn register(&mut self, upcaster: impl Upcaster + 'static) -> &mut Self {
        self.list.push(Arc::new(upcaster));
        self
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Lifts `event` through every matching upcaster, version by version.
    ///
    /// Fails with [`Error::Upcast`] if an upcaster fails or the chain does not end
    /// (more steps than registered upcasters).
    pub fn apply(&self, mut event: RecordedEvent) -> Result<RecordedEvent, Error> {
        let mut steps = 0;
        while let Some(up) = self.list.iter().find(|u| {
            u.event_type() == &*event.event_type && u.source_version() == event.schema_version
        }) {
            steps += 1;
            if steps > self.list.len() {
                return Err(Error::Upcast {
                    event_type: event.event_type.to_string(),
                    from_version: event.schema_version,
                    message: "the upcaster chain does not terminate".into(),
                });
            }
            let payload = up.upcast(&event.payload).map_err(|message| Error::Upcast {
                event_type: event.event_type.to_string(),
                from_version: event.schema_version,
                message,
            })?;
            event.payload = Arc::from(payload);
            event.schema_version += 1;
        }
        Ok(event)
    }
}
