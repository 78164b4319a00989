//! Snapshots of a durable engine's state, so a restart replays only the log tail.
//!
//! # Design
//!
//! A snapshot is the engine's whole state at one log position `p`: every shard's open
//! windows and watermark, the engine watermark with each source's largest timestamp,
//! and every cell of the window store (all tiers). Restoring it and replaying the log
//! from `p` gives the state a full replay would.
//!
//! Taking one ([`Engine::snapshot`], or every N batches with
//! [`Durability::snapshot_every`](crate::Durability::snapshot_every)):
//!
//! 1. take the log-order lock: no batch is appended or placed, no tick or `finish`
//!    moves a watermark, until step 4;
//! 2. flush: every shard has handled every queued message and the store has applied
//!    every window they closed;
//! 3. ask each shard for its state (`Export`), copy the watermarks, encode the store,
//!    and read the log head `p`: all consistent, since nothing moved since 1;
//! 4. release the lock, then write the file: `snapshots/<p>.snap.tmp`, `fsync`,
//!    rename to `snapshots/<p>.snap`, `fsync` the directory (atomic: a crash leaves the
//!    old snapshot or the new one, never half of one), and delete older snapshots.
//!
//! On open, the newest snapshot that decodes is loaded; its configuration fingerprint
//! (shards, windows, lateness, aggregates, tiers) must match the builder's, since open
//! windows are per shard and per window spec.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use weft_eventsourcing::EventStore;
use weft_sync::atomic::Ordering;

use crate::durable::Durable;
use crate::engine::{Engine, Inner};
use crate::error::{Error, shard_unanswered};
use crate::shard::Export;

/// The snapshot file format version.
const FORMAT: u32 = 1;
/// How long taking a snapshot waits for the shards and the store.
const WAIT: Duration = Duration::from_secs(60);

/// What a snapshot file holds.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SnapshotFile {
    format: u32,
    /// The configuration the state belongs to.
    fingerprint: String,
    /// The log position the state covers: every record below it.
    pub(crate) position: u64,
    pub(crate) watermark: i64,
    pub(crate) sources: Vec<(CompactString, i64)>,
    /// Per shard, its encoded state.
    pub(crate) shards: Vec<Vec<u8>>,
    /// The encoded window store.
    pub(crate) store: Vec<u8>,
}

/// A snapshot written by [`Engine::snapshot`].
///
/// ```
/// # let _ = |s: weft_analytics::SnapshotInfo| (s.position, s.bytes);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// The log position it covers: a restart replays the log from here.
    pub position: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// The file.
    pub path: PathBuf,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Log(format!("{what} {}: {e}", path.display()))
}

fn file_name(position: u64) -> String {
    format!("{position:020}.snap")
}

/// The snapshot files in `dir`, newest first.
fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    let mut v = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(io("reading", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io("reading", dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".snap")) else {
            continue;
        };
        if let Ok(p) = stem.parse::<u64>() {
            v.push((p, entry.path()));
        }
    }
    v.sort_by_key(|e| std::cmp::Reverse(e.0));
    Ok(v)
}

/// Loads the newest snapshot in `dir` (blocking). A file that does not decode is
/// skipped with a warning (an older one, or a full replay, takes its place).
pub(crate) fn load_newest(dir: &Path) -> Result<Option<SnapshotFile>, Error> {
    for (_, path) in list(dir)? {
        let bytes = fs::read(&path).map_err(|e| io("reading", &path, e))?;
        match postcard::from_bytes::<SnapshotFile>(&bytes) {
            Ok(s) if s.format == FORMAT => return Ok(Some(s)),
            Ok(s) => {
                tracing::warn!(path = %path.display(), format = s.format, "snapshot of an unknown format skipped")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "snapshot that does not decode skipped")
            }
        }
    }
    Ok(None)
}

/// Writes `snap` atomically into `dir` and deletes older snapshots (blocking).
fn write(dir: &Path, snap: &SnapshotFile) -> Result<SnapshotInfo, Error> {
    fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    let bytes =
        postcard::to_stdvec(snap).map_err(|e| Error::Log(format!("encoding a snapshot: {e}")))?;
    let path = dir.join(file_name(snap.position));
    let tmp = dir.join(format!("{}.tmp", file_name(snap.position)));
    {
        let mut f = File::create(&tmp).map_err(|e| io("creating", &tmp, e))?;
        f.write_all(&bytes).map_err(|e| io("writing", &tmp, e))?;
        f.sync_all().map_err(|e| io("syncing", &tmp, e))?;
    }
    fs::rename(&tmp, &path).map_err(|e| io("renaming", &tmp, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("syncing", dir, e))?;
    for (p, old) in list(dir)? {
        if p < snap.position {
            if let Err(e) = fs::remove_file(&old) {
                tracing::warn!(path = %old.display(), error = %e, "old snapshot not removed");
            }
        }
    }
    Ok(SnapshotInfo {
        position: snap.position,
        bytes: bytes.len() as u64,
        path,
    })
}

impl Durable {
    /// Checks the loaded snapshot against the engine's configuration.
    pub(crate) fn check_snapshot(&self, fingerprint: &str) -> Result<(), Error> {
        if let Some(s) = &*self.snapshot.lock() {
            if s.fingerprint != fingerprint {
                return Err(Error::Config(format!(
                    "the snapshot in {} was taken with another configuration ({}); build with that one, or remove the snapshot (the log is replayed in full)",
                    self.snapshot_dir.display(),
                    s.fingerprint
                )));
            }
        }
        Ok(())
    }
}

/// The engine's durable state, or a configuration error saying that `what` (e.g.
/// "snapshots need") a durable engine.
fn durable<'a>(inner: &'a Inner, what: &str) -> Result<&'a Durable, Error> {
    inner
        .durable
        .as_ref()
        .ok_or_else(|| Error::Config(format!("{what} a durable engine (EngineBuilder::durable)")))
}

/// Takes a snapshot (see the module docs).
pub(crate) async fn take(inner: &Inner) -> Result<SnapshotInfo, Error> {
    let d = durable(inner, "snapshots need")?;
    let guard = d.order().await;
    d.check_ready()?;
    inner.flush(WAIT).await?;
    let mut shards = Vec::with_capacity(inner.shards.len());
    for s in &inner.shards {
        let state = s.ask(Export, WAIT).await.map_err(shard_unanswered(WAIT))?;
        shards.push(state.map_err(|e| Error::Log(format!("encoding a shard: {e}")))?);
    }
    let store = inner.store.query(|s| s.export())?;
    let (watermark, sources) = inner.watermarks.lock().export();
    let position = d.log.head_position();
    drop(guard);
    let snap = SnapshotFile {
        format: FORMAT,
        fingerprint: d.fingerprint.clone(),
        position,
        watermark,
        sources,
        shards,
        store,
    };
    let dir = d.snapshot_dir.clone();
    let info = tokio::task::spawn_blocking(move || write(&dir, &snap))
        .await
        .map_err(|e| Error::Log(format!("the snapshot task: {e}")))??;
    tracing::info!(position, bytes = info.bytes, "analytics snapshot written");
    *d.last_snapshot.lock() = Some(info.clone());
    if d.compact {
        compact(d, info.position).await?;
    }
    Ok(info)
}

/// Deletes the log segments wholly below `position` (blocking work on the blocking
/// pool); returns how many.
async fn compact(d: &Durable, position: u64) -> Result<usize, Error> {
    let log = Arc::clone(&d.log);
    let n = tokio::task::spawn_blocking(move || log.truncate_before(position))
        .await
        .map_err(|e| Error::Log(format!("the compaction task: {e}")))?
        .map_err(|e| Error::Log(format!("compacting the log: {e}")))?;
    tracing::info!(
        position,
        segments = n,
        "analytics log compacted behind a snapshot"
    );
    Ok(n)
}

/// After an ingest: starts a snapshot in the background when `snapshot_every` batches
/// were appended since the last one (and none is running).
pub(crate) fn maybe_snapshot(inner: &Arc<Inner>) {
    let Some(d) = &inner.durable else { return };
    let Some(every) = d.snapshot_every else {
        return;
    };
    // Relaxed: a trigger count; `snapshotting` (AcqRel) decides who runs.
    if d.since_snapshot.load(Ordering::Relaxed) < every {
        return;
    }
    if d.snapshotting.swap(true, Ordering::AcqRel) {
        return;
    }
    d.since_snapshot.store(0, Ordering::Relaxed);
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        if let Err(e) = take(&inner).await {
            tracing::warn!(error = %e, "periodic analytics snapshot failed");
        }
        if let Some(d) = &inner.durable {
            d.snapshotting.store(false, Ordering::Release);
        }
    });
}

impl Engine {
    /// Writes a snapshot of the engine's state now (durable engines only) and returns
    /// where; a restart then loads it and replays only the log behind it. Ingest waits
    /// while the state is captured (a flush of the shards and the store), not while
    /// the file is written.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use weft_analytics::{Batch, Durability, Engine, Event};
    /// let dir = tempfile::tempdir()?;
    /// let engine = Engine::builder().durable(Durability::new(dir.path())).build()?;
    /// engine.ready().await?;
    /// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    /// engine.ingest(Batch::new(vec![Event::new("m", now, 1.0)])).await?;
    /// let snap = engine.snapshot().await?;
    /// assert_eq!(snap.position, 1); // covers the one logged batch
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an in-memory engine, [`Error::Log`] if the file cannot be
    /// written or the replay failed, [`Error::Timeout`] / [`Error::Closed`] from the
    /// flush.
    pub async fn snapshot(&self) -> Result<SnapshotInfo, Error> {
        take(&self.inner).await
    }

    /// Retention: deletes the log segments wholly covered by the last snapshot (after
    /// checking that its file is still there and decodes) and returns how many were
    /// deleted. A restart needs only the snapshot and the log behind it; backfills then
    /// see only the kept part of the log. Segments are deleted whole, so up to one
    /// segment of covered records stays.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use weft_analytics::{Batch, Durability, Engine, Event};
    /// let dir = tempfile::tempdir()?;
    /// let engine = Engine::builder()
    ///     .durable(Durability::new(dir.path()).segment_size(4096))
    ///     .build()?;
    /// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    /// for i in 0..200 {
    ///     engine.ingest(Batch::new(vec![Event::new("m", now + i, 1.0).dim("k", "a long enough value")])).await?;
    /// }
    /// engine.snapshot().await?;
    /// assert!(engine.compact_log().await? > 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an in-memory engine or before any snapshot,
    /// [`Error::Log`] if the snapshot file is gone or a segment cannot be deleted.
    pub async fn compact_log(&self) -> Result<usize, Error> {
        let d = durable(&self.inner, "log compaction needs")?;
        let Some(info) = d.last_snapshot.lock().clone() else {
            return Err(Error::Config(
                "no snapshot yet: take one (Engine::snapshot) before compacting the log".into(),
            ));
        };
        // Verify: the newest snapshot on disk covers at least this position.
        let dir = d.snapshot_dir.clone();
        let newest = tokio::task::spawn_blocking(move || load_newest(&dir))
            .await
            .map_err(|e| Error::Log(format!("the snapshot check: {e}")))??;
        match newest {
            Some(s) if s.position >= info.position => compact(d, info.position).await,
            _ => Err(Error::Log(format!(
                "the snapshot at log position {} is missing or unreadable in {}; take a new one before compacting",
                info.position,
                d.snapshot_dir.display()
            ))),
        }
    }

    /// Where a durable engine keeps its snapshots (`None` if it is not durable).
    pub(crate) fn snapshot_dir(&self) -> Option<PathBuf> {
        self.inner.durable.as_ref().map(|d| d.snapshot_dir.clone())
    }

    /// Deletes the log segments wholly below `position`, without checking a snapshot
    /// (the compaction saga verifies it as a step of its own); returns how many.
    pub(crate) async fn truncate_log_before(&self, position: u64) -> Result<usize, Error> {
        compact(durable(&self.inner, "log compaction needs")?, position).await
    }

    /// The last snapshot this engine wrote or started from, if any.
    pub fn last_snapshot(&self) -> Option<SnapshotInfo> {
        self.inner
            .durable
            .as_ref()
            .and_then(|d| d.last_snapshot.lock().clone())
    }
}
