//! Snapshots: a saved aggregate state so loading reads only the events after it.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use weft_sync::Mutex;

use crate::Error;
use crate::util::FileDir;

/// An aggregate state saved at a stream version.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The stream the state belongs to.
    pub stream_id: String,
    /// The stream version the state includes (every event up to and including it).
    pub version: u64,
    /// The aggregate's [`SNAPSHOT_VERSION`](crate::Aggregate::SNAPSHOT_VERSION) when it
    /// was taken; a snapshot of another version is ignored on load.
    pub schema_version: u32,
    /// The encoded state.
    pub payload: Vec<u8>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("stream_id", &self.stream_id)
            .field("version", &self.version)
            .field("schema_version", &self.schema_version)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Where a [`Repository`](crate::Repository) keeps its snapshots: the latest per stream.
pub trait SnapshotStore: Send + Sync + fmt::Debug {
    /// The latest snapshot of `stream`, if any.
    fn load(&self, stream: &str) -> Result<Option<Snapshot>, Error>;
    /// Replaces the snapshot of `snapshot.stream_id`.
    fn save(&self, snapshot: Snapshot) -> Result<(), Error>;
}

/// Snapshots in memory; clones share the same map.
///
/// ```
/// use weft_eventsourcing::{InMemorySnapshotStore, Snapshot, SnapshotStore};
/// let store = InMemorySnapshotStore::new();
/// store.save(Snapshot { stream_id: "a-1".into(), version: 10, schema_version: 1, payload: vec![1] })?;
/// assert_eq!(store.load("a-1")?.unwrap().version, 10);
/// assert!(store.load("a-2")?.is_none());
/// # Ok::<(), weft_eventsourcing::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemorySnapshotStore {
    map: Arc<Mutex<HashMap<String, Snapshot>>>,
}

impl InMemorySnapshotStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl SnapshotStore for InMemorySnapshotStore {
    fn load(&self, stream: &str) -> Result<Option<Snapshot>, Error> {
        Ok(self.map.lock().get(stream).cloned())
    }
    fn save(&self, snapshot: Snapshot) -> Result<(), Error> {
        self.map.lock().insert(snapshot.stream_id.clone(), snapshot);
        Ok(())
    }
}

/// Snapshots as files in a directory, one per stream, replaced atomically (write a
/// temporary file, fsync, rename).
///
/// ```
/// use weft_eventsourcing::{FileSnapshotStore, Snapshot, SnapshotStore};
/// let dir = tempfile::tempdir()?;
/// let store = FileSnapshotStore::open(dir.path())?;
/// store.save(Snapshot { stream_id: "account-1".into(), version: 3, schema_version: 2, payload: b"{}".to_vec() })?;
/// let again = FileSnapshotStore::open(dir.path())?;
/// assert_eq!(again.load("account-1")?.unwrap().schema_version, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileSnapshotStore {
    files: FileDir,
}

impl FileSnapshotStore {
    /// Uses (and creates if needed) the directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        Ok(FileSnapshotStore {
            files: FileDir::open(dir.as_ref(), "snapshot")?,
        })
    }
}

impl SnapshotStore for FileSnapshotStore {
    fn load(&self, stream: &str) -> Result<Option<Snapshot>, Error> {
        let Some(bytes) = self.files.read(stream)? else {
            return Ok(None);
        };
        // Layout: version u64 LE, schema version u32 LE, crc32 of the payload u32 LE,
        // then the payload. A damaged file reads as "no snapshot" (the stream is replayed).
        if bytes.len() < 16 {
            return Ok(None);
        }
        let version = u64::from_le_bytes(bytes[0..8].try_into().unwrap_or_default());
        let schema_version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(bytes[12..16].try_into().unwrap_or_default());
        let payload = bytes[16..].to_vec();
        if crc32fast::hash(&payload) != crc {
            tracing::warn!(file = %self.files.path(stream).display(), "snapshot checksum mismatch; ignoring it");
            return Ok(None);
        }
        Ok(Some(Snapshot {
            stream_id: stream.to_owned(),
            version,
            schema_version,
            payload,
        }))
    }

    fn save(&self, snapshot: Snapshot) -> Result<(), Error> {
        let mut bytes = Vec::with_capacity(16 + snapshot.payload.len());
        bytes.extend_from_slice(&snapshot.version.to_le_bytes());
        bytes.extend_from_slice(&snapshot.schema_version.to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&snapshot.payload).to_le_bytes());
        bytes.extend_from_slice(&snapshot.payload);
        self.files.write(&snapshot.stream_id, &bytes)
    }
}
