//! Durable projection checkpoints: [`CheckpointStore`], [`MemoryCheckpoints`],
//! [`FileCheckpoints`].

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use weft_sync::Mutex;

use crate::{BoxError, Position};

/// A projection's saved progress: the log position it has applied up to, and
/// optionally its read model's state at exactly that position (see
/// [`Projection::snapshot`](crate::Projection::snapshot)). The two are saved together,
/// atomically, so a restart never applies an event twice or skips one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Every event up to and including this position has been applied.
    pub position: Position,
    /// The read model's state at `position`, if the projection keeps it here.
    pub state: Option<Vec<u8>>,
}

/// Where projections keep their checkpoints, one per projection name.
///
/// `save` must be atomic: after a crash, `load` returns either the previous checkpoint
/// or the new one, never a mix.
///
/// ```
/// use weft_cqrs::{Checkpoint, CheckpointStore, MemoryCheckpoints};
/// let store = MemoryCheckpoints::new();
/// assert_eq!(store.load("totals").unwrap(), None);
/// store.save("totals", &Checkpoint { position: 7, state: None }).unwrap();
/// assert_eq!(store.load("totals").unwrap().unwrap().position, 7);
/// ```
pub trait CheckpointStore: Send + Sync + 'static {
    /// The last checkpoint saved for `projection`, if any.
    fn load(&self, projection: &str) -> Result<Option<Checkpoint>, BoxError>;
    /// Replaces `projection`'s checkpoint, atomically and durably.
    fn save(&self, projection: &str, checkpoint: &Checkpoint) -> Result<(), BoxError>;
}

/// Checkpoints in memory: for tests and for projections rebuilt on every start.
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    saved: Mutex<HashMap<String, Checkpoint>>,
}

impl MemoryCheckpoints {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl CheckpointStore for MemoryCheckpoints {
    fn load(&self, projection: &str) -> Result<Option<Checkpoint>, BoxError> {
        Ok(self.saved.lock().get(projection).cloned())
    }

    fn save(&self, projection: &str, checkpoint: &Checkpoint) -> Result<(), BoxError> {
        self.saved
            .lock()
            .insert(projection.to_owned(), checkpoint.clone());
        Ok(())
    }
}

/// Checkpoints in a directory, one file per projection, replaced atomically: written to
/// a temporary file, `fsync`ed, renamed over the old one, and the directory `fsync`ed.
///
/// File format: the magic `WCP1`, the position as 8 little-endian bytes, a flag byte (1
/// if a state follows), then the state's bytes.
///
/// ```
/// use weft_cqrs::{Checkpoint, CheckpointStore, FileCheckpoints};
/// let dir = std::env::temp_dir().join(format!("weft-cqrs-doc-{}", std::process::id()));
/// let store = FileCheckpoints::open(&dir)?;
/// store.save("totals", &Checkpoint { position: 9, state: Some(b"{}".to_vec()) })?;
/// let again = FileCheckpoints::open(&dir)?;
/// assert_eq!(again.load("totals")?.unwrap().state.as_deref(), Some(&b"{}"[..]));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Debug)]
pub struct FileCheckpoints {
    dir: PathBuf,
}

const MAGIC: &[u8; 4] = b"WCP1";

impl FileCheckpoints {
    /// Uses (and creates if needed) the directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        Ok(FileCheckpoints { dir })
    }

    fn path(&self, projection: &str) -> Result<PathBuf, BoxError> {
        let ok = !projection.is_empty()
            && projection
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && !projection.starts_with('.');
        if !ok {
            return Err(format!(
                "projection name `{projection}` is not a safe file name (use ASCII letters, digits, `-`, `_`, `.`)"
            )
            .into());
        }
        Ok(self.dir.join(format!("{projection}.checkpoint")))
    }
}

impl CheckpointStore for FileCheckpoints {
    fn load(&self, projection: &str) -> Result<Option<Checkpoint>, BoxError> {
        let path = self.path(projection)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if bytes.len() < 13 || &bytes[..4] != MAGIC {
            return Err(format!("{} is not a checkpoint file", path.display()).into());
        }
        let mut pos = [0; 8];
        pos.copy_from_slice(&bytes[4..12]);
        let state = match bytes[12] {
            0 => None,
            1 => Some(bytes[13..].to_vec()),
            _ => return Err(format!("{} has an unknown state flag", path.display()).into()),
        };
        Ok(Some(Checkpoint {
            position: u64::from_le_bytes(pos),
            state,
        }))
    }

    fn save(&self, projection: &str, checkpoint: &Checkpoint) -> Result<(), BoxError> {
        let path = self.path(projection)?;
        let tmp = path.with_extension("checkpoint.tmp");
        let mut file = File::create(&tmp)?;
        let mut bytes = Vec::with_capacity(13 + checkpoint.state.as_ref().map_or(0, Vec::len));
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&checkpoint.position.to_le_bytes());
        match &checkpoint.state {
            None => bytes.push(0),
            Some(state) => {
                bytes.push(1);
                bytes.extend_from_slice(state);
            }
        }
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &path)?;
        // Make the rename itself durable.
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}
