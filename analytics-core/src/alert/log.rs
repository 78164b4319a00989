//! The rules' command log: a weft-eventsourcing [`EventStore`] as the weft-cqrs
//! `EventSource`/`EventLog` of [`RuleEvent`]s.
//!
//! weft-cqrs's generic `StoreLog` does this job, but its impl is generic over
//! `E: DomainEvent` (a higher-ranked `for<'de> Deserialize<'de>` bound), and futures
//! awaiting the command bus over it then fail rustc's `Send` check inside other
//! `async` blocks (rust-lang/rust#110338), which saga steps need. This adapter is
//! concrete, so the check passes. Only the bus appends to the rules store, so the head
//! moves on its own appends (no follower thread).

use std::sync::Arc;

use tokio::sync::watch;
use weft_cqrs::{EventLog, EventSource, Position, Recorded};
use weft_eventsourcing::{DomainEvent, EventStore, ExpectedVersion, NewEvent};

use super::rule::RuleEvent;

/// See the module docs.
pub(crate) struct RuleLog {
    store: Arc<dyn EventStore>,
    head: watch::Sender<Position>,
}

impl std::fmt::Debug for RuleLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleLog")
            .field("head", &*self.head.borrow())
            .finish_non_exhaustive()
    }
}

fn log_error(e: impl std::fmt::Display) -> weft_cqrs::Error {
    weft_cqrs::Error::Log(e.to_string().into())
}

impl RuleLog {
    pub(crate) fn new(store: Arc<dyn EventStore>) -> Self {
        // Store positions are 0-based, cqrs positions 1-based: the head (the position
        // of the last event) is the store's next position.
        let head = watch::Sender::new(store.head_position());
        RuleLog { store, head }
    }

    pub(crate) fn head(&self) -> Position {
        *self.head.borrow()
    }
}

impl EventSource for RuleLog {
    type Event = RuleEvent;

    async fn read(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<Recorded<RuleEvent>>, weft_cqrs::Error> {
        let records = self.store.read_all(after, limit).map_err(log_error)?;
        records
            .into_iter()
            .map(|r| {
                let event: RuleEvent = serde_json::from_slice(&r.payload).map_err(log_error)?;
                Ok(Recorded {
                    position: r.position + 1,
                    key: r.stream_id.to_string(),
                    event,
                })
            })
            .collect()
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }
}

impl EventLog for RuleLog {
    async fn append(
        &self,
        key: &str,
        events: Vec<RuleEvent>,
    ) -> Result<Position, weft_cqrs::Error> {
        if events.is_empty() {
            return Ok(self.head());
        }
        let new = events
            .iter()
            .map(|e| {
                let payload = serde_json::to_vec(e).map_err(log_error)?;
                Ok(NewEvent::new(e.event_type(), e.schema_version(), payload))
            })
            .collect::<Result<Vec<_>, weft_cqrs::Error>>()?;
        let appended = self
            .store
            .append(key, ExpectedVersion::Any, new)
            .map_err(log_error)?;
        let last = appended.last_position + 1;
        self.head.send_if_modified(|h| {
            let moved = last > *h;
            *h = (*h).max(last);
            moved
        });
        Ok(last)
    }
}
