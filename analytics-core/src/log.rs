//! The closed-window log: shards append the windows they finalise; the store's
//! projection (weft-cqrs) tracks it. It is a `weft_cqrs::EventSource`, compacted behind
//! the projection: entries the store has applied are dropped on the next append, so
//! memory holds only what the store has not seen yet.
//!
//! (Part 2 of the engine replaces this in-memory log with a durable weft-eventsourcing
//! log of the *input*; this one only decouples the shards from the store.)

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;
use weft_cqrs::{EventLog, EventSource, Position, Recorded};
use weft_sync::Mutex;
use weft_sync::atomic::{AtomicU64, Ordering};

use crate::agg::WindowAggregate;
use crate::event::SeriesKey;

/// One final window of one series, as the store receives it.
#[derive(Debug, Clone)]
pub(crate) struct ClosedCell {
    pub(crate) key: Arc<SeriesKey>,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) agg: WindowAggregate,
}

/// What a shard appends at once: the windows one watermark step closed.
pub(crate) type Entry = Arc<Vec<ClosedCell>>;

/// The log.
#[derive(Debug)]
pub(crate) struct CellLog {
    inner: Mutex<Inner>,
    head: watch::Sender<Position>,
    /// The last position the store applied (written by the store's projection).
    applied: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Inner {
    /// Position of the entry before `entries[0]`.
    base: Position,
    entries: VecDeque<Recorded<Entry>>,
}

impl CellLog {
    pub(crate) fn new(applied: Arc<AtomicU64>) -> Self {
        CellLog {
            inner: Mutex::new(Inner {
                base: 0,
                entries: VecDeque::new(),
            }),
            head: watch::Sender::new(0),
            applied,
        }
    }

    /// Appends without waiting (what the shards call); returns the position.
    pub(crate) fn push(&self, entry: Entry) -> Position {
        let pos = {
            let mut inner = self.inner.lock();
            // Relaxed suffices: a stale value only keeps entries a little longer.
            let applied = self.applied.load(Ordering::Relaxed);
            while inner.entries.front().is_some_and(|e| e.position <= applied) {
                inner.entries.pop_front();
                inner.base += 1;
            }
            let position = inner.base + inner.entries.len() as Position + 1;
            inner.entries.push_back(Recorded {
                position,
                key: String::new(),
                event: entry,
            });
            position
        };
        self.head.send_replace(pos);
        pos
    }

    pub(crate) fn head(&self) -> Position {
        *self.head.borrow()
    }

    /// Entries the store has not applied yet (for metrics).
    pub(crate) fn backlog(&self) -> usize {
        let applied = self.applied.load(Ordering::Acquire);
        usize::try_from(self.head().saturating_sub(applied)).unwrap_or(usize::MAX)
    }
}

impl EventSource for CellLog {
    type Event = Entry;

    async fn read(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<Recorded<Entry>>, weft_cqrs::Error> {
        let inner = self.inner.lock();
        let skip = usize::try_from(after.saturating_sub(inner.base)).unwrap_or(usize::MAX);
        Ok(inner
            .entries
            .iter()
            .skip(skip)
            .take(limit)
            .cloned()
            .collect())
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }
}

impl EventLog for CellLog {
    async fn append(&self, _key: &str, events: Vec<Entry>) -> Result<Position, weft_cqrs::Error> {
        let mut pos = self.head();
        for e in events {
            pos = self.push(e);
        }
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn compacts_behind_the_reader() {
        let applied = Arc::new(AtomicU64::new(0));
        let log = CellLog::new(Arc::clone(&applied));
        for _ in 0..3 {
            log.push(Arc::new(Vec::new()));
        }
        assert_eq!(
            log.read(1, 10)
                .await
                .unwrap()
                .iter()
                .map(|r| r.position)
                .collect::<Vec<_>>(),
            [2, 3]
        );
        applied.store(2, Ordering::Relaxed);
        assert_eq!(log.append("", vec![Arc::new(Vec::new())]).await.unwrap(), 4);
        assert_eq!(log.backlog(), 2); // 3 and 4 not applied
        assert_eq!(log.inner.lock().entries.len(), 2, "1 and 2 compacted away");
        assert_eq!(
            log.read(2, 10)
                .await
                .unwrap()
                .iter()
                .map(|r| r.position)
                .collect::<Vec<_>>(),
            [3, 4]
        );
        assert_eq!(log.head(), 4);
    }
}
