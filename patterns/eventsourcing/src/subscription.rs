//! Subscriptions to the global log: catch up from a checkpoint, then follow live, with
//! the checkpoint saved durably after each handled batch (at-least-once delivery).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_sync::Mutex;

use crate::util::FileDir;
use crate::{Error, EventStore, RecordedEvent, Upcaster, Upcasters};

/// Where subscriptions keep their checkpoints: per subscription name, the global position
/// of the next event to deliver.
pub trait CheckpointStore: Send + Sync + fmt::Debug {
    /// The saved checkpoint of `name`, if any.
    fn load(&self, name: &str) -> Result<Option<u64>, Error>;
    /// Saves `position` as the checkpoint of `name` (durably, for persistent stores).
    fn save(&self, name: &str, position: u64) -> Result<(), Error>;
}

/// Checkpoints in memory; clones share the same map.
///
/// ```
/// use weft_eventsourcing::{CheckpointStore, InMemoryCheckpointStore};
/// let cps = InMemoryCheckpointStore::new();
/// cps.save("projector", 42)?;
/// assert_eq!(cps.load("projector")?, Some(42));
/// assert_eq!(cps.load("other")?, None);
/// # Ok::<(), weft_eventsourcing::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemoryCheckpointStore {
    map: Arc<Mutex<HashMap<String, u64>>>,
}

impl InMemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl CheckpointStore for InMemoryCheckpointStore {
    fn load(&self, name: &str) -> Result<Option<u64>, Error> {
        Ok(self.map.lock().get(name).copied())
    }
    fn save(&self, name: &str, position: u64) -> Result<(), Error> {
        self.map.lock().insert(name.to_owned(), position);
        Ok(())
    }
}

/// Checkpoints as small files in a directory, each replaced atomically and durably
/// (temporary file, fsync, rename, fsync of the directory), so a crash leaves either the
/// old or the new checkpoint.
///
/// ```
/// use weft_eventsourcing::{CheckpointStore, FileCheckpointStore};
/// let dir = tempfile::tempdir()?;
/// FileCheckpointStore::open(dir.path())?.save("emailer", 7)?;
/// assert_eq!(FileCheckpointStore::open(dir.path())?.load("emailer")?, Some(7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileCheckpointStore {
    files: FileDir,
}

impl FileCheckpointStore {
    /// Uses (and creates if needed) the directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        Ok(FileCheckpointStore {
            files: FileDir::open(dir.as_ref(), "checkpoint")?,
        })
    }
}

impl CheckpointStore for FileCheckpointStore {
    fn load(&self, name: &str) -> Result<Option<u64>, Error> {
        let Some(bytes) = self.files.read(name)? else {
            return Ok(None);
        };
        // Layout: position u64 LE, then the crc32 of those 8 bytes.
        let corrupt = || Error::Corrupt {
            file: self.files.path(name),
            offset: 0,
            reason: "checkpoint file is not 12 bytes with a valid checksum".into(),
        };
        if bytes.len() != 12 {
            return Err(corrupt());
        }
        let (pos, crc) = bytes.split_at(8);
        if crc32fast::hash(pos).to_le_bytes() != crc {
            return Err(corrupt());
        }
        let mut raw = [0u8; 8];
        raw.copy_from_slice(pos);
        Ok(Some(u64::from_le_bytes(raw)))
    }

    fn save(&self, name: &str, position: u64) -> Result<(), Error> {
        let mut bytes = position.to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&position.to_le_bytes()).to_le_bytes());
        self.files.write(name, &bytes)
    }
}

/// A named, durable reader of a store's global log.
///
/// It starts at its saved checkpoint (or at position 0), delivers stored events in
/// position order (*catch-up*), then waits for new ones (*live*). After the handler has
/// taken a whole batch, the checkpoint moves past it. A crash between handling and
/// saving redelivers that batch on restart: delivery is **at least once**, so handlers
/// should be idempotent; [`IdempotencyGuard`] helps.
///
/// ```
/// use std::time::Duration;
/// use weft_eventsourcing::{EventStore, ExpectedVersion, InMemoryCheckpointStore, InMemoryStore, NewEvent, Subscription};
///
/// let store = InMemoryStore::new();
/// let checkpoints = InMemoryCheckpointStore::new();
/// for i in 0..3 {
///     store.append(&format!("s{i}"), ExpectedVersion::Any, vec![NewEvent::new("E", 1, vec![])])?;
/// }
/// let mut seen = Vec::new();
/// let mut sub = Subscription::new(&store, "projector", checkpoints.clone())?;
/// sub.process(10, Duration::ZERO, |e| { seen.push(e.position); Ok::<_, String>(()) })?;
/// assert_eq!(seen, [0, 1, 2]);
///
/// // A restarted subscriber resumes at its checkpoint.
/// store.append("s9", ExpectedVersion::Any, vec![NewEvent::new("E", 1, vec![])])?;
/// let mut again = Subscription::new(&store, "projector", checkpoints)?;
/// assert_eq!(again.position(), 3);
/// let batch = again.next_batch(10, Duration::ZERO)?;
/// assert_eq!(batch.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Subscription<S: EventStore, K: CheckpointStore> {
    store: S,
    name: String,
    checkpoints: K,
    position: u64,
    upcasters: Upcasters,
}

/// Why [`Subscription::process`] stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessError<E> {
    /// The handler failed on the event at `position`; the checkpoint stays at `position`,
    /// so it is delivered again next time.
    Handler {
        /// The position of the event the handler failed on.
        position: u64,
        /// The handler's error.
        error: E,
    },
    /// Reading the store or saving the checkpoint failed.
    Store(Error),
}

impl<E: fmt::Display> fmt::Display for ProcessError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::Handler { position, error } => write!(
                f,
                "subscription handler failed at position {position}: {error}; it will be redelivered"
            ),
            ProcessError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ProcessError<E> {}

impl<E> From<Error> for ProcessError<E> {
    fn from(e: Error) -> Self {
        ProcessError::Store(e)
    }
}

impl<S: EventStore, K: CheckpointStore> Subscription<S, K> {
    /// The subscription `name` over `store`, starting at its checkpoint in `checkpoints`
    /// (position 0 if it has none).
    pub fn new(store: S, name: impl Into<String>, checkpoints: K) -> Result<Self, Error> {
        let name = name.into();
        if name.is_empty() {
            return Err(Error::InvalidInput(
                "subscription name is empty; it keys the checkpoint".into(),
            ));
        }
        let position = checkpoints.load(&name)?.unwrap_or(0);
        Ok(Subscription {
            store,
            name,
            checkpoints,
            position,
            upcasters: Upcasters::new(),
        })
    }

    /// Adds an upcaster applied to every delivered event (replays see current shapes).
    pub fn with_upcaster(mut self, upcaster: impl Upcaster + 'static) -> Self {
        self.upcasters.register(upcaster);
        self
    }

    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The position of the next event to deliver.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Up to `max` events from the current position, waiting up to `timeout` for one if
    /// caught up. Does not move the checkpoint: call [`commit`](Self::commit) once they
    /// are handled.
    pub fn next_batch(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let mut batch = self.store.read_all(self.position, max)?;
        if batch.is_empty()
            && !timeout.is_zero()
            && self.store.wait_for_position(self.position, timeout)
        {
            batch = self.store.read_all(self.position, max)?;
        }
        batch.into_iter().map(|e| self.upcasters.apply(e)).collect()
    }

    /// Marks every event before `next_position` handled and saves the checkpoint.
    pub fn commit(&mut self, next_position: u64) -> Result<(), Error> {
        self.checkpoints.save(&self.name, next_position)?;
        self.position = next_position;
        Ok(())
    }

    /// Delivers one batch (up to `max` events, waiting up to `timeout` if caught up) to
    /// `handler`, then saves the checkpoint after it. Returns how many were delivered.
    ///
    /// If the handler fails, the events before the failing one are committed and the
    /// failing one will be delivered again.
    pub fn process<E>(
        &mut self,
        max: usize,
        timeout: Duration,
        mut handler: impl FnMut(&RecordedEvent) -> Result<(), E>,
    ) -> Result<usize, ProcessError<E>> {
        let batch = self.next_batch(max, timeout)?;
        for (i, event) in batch.iter().enumerate() {
            if let Err(error) = handler(event) {
                if i > 0 {
                    self.commit(event.position)?;
                }
                return Err(ProcessError::Handler {
                    position: event.position,
                    error,
                });
            }
        }
        if let Some(last) = batch.last() {
            self.commit(last.position + 1)?;
        }
        Ok(batch.len())
    }
}

impl<S: EventStore, K: CheckpointStore> fmt::Debug for Subscription<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .field("position", &self.position)
            .field("checkpoints", &self.checkpoints)
            .finish_non_exhaustive()
    }
}

/// Makes an at-least-once handler effectively exactly-once: it remembers the highest
/// global position applied and says whether an event is new.
///
/// Keep it *with the handler's own state* (it is serde-serializable) and save both in one
/// write: then a redelivered event, whose effect is already in the state, is skipped.
///
/// ```
/// use weft_eventsourcing::IdempotencyGuard;
/// let mut guard = IdempotencyGuard::new();
/// assert!(guard.first_time(0));
/// assert!(guard.first_time(1));
/// assert!(!guard.first_time(1)); // redelivered after a crash: skip
/// assert!(!guard.first_time(0));
/// assert_eq!(guard.next_position(), 2);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyGuard {
    next: u64,
}

impl IdempotencyGuard {
    /// A guard that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the event at `position` has not been applied yet; marks it applied.
    pub fn first_time(&mut self, position: u64) -> bool {
        if position < self.next {
            return false;
        }
        self.next = position + 1;
        true
    }

    /// The position after the last applied event.
    pub fn next_position(&self) -> u64 {
        self.next
    }
}
