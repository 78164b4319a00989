//! The durable input log: every accepted batch is appended to a weft-eventsourcing
//! [`FileLog`] before ingest acknowledges it, and building an engine on the same data
//! directory replays the log into the shards.
//!
//! # Design
//!
//! - **What is logged.** The batch as the shards see it: only the events that passed
//!   validation and the rate limits (rejected events are removed, processing-time
//!   timestamps already assigned), encoded with postcard as one `NewEvent` of the
//!   stream `weft-analytics-input`. One append per batch, so a batch is logged all or
//!   nothing (the file log's records are CRC-checked; a torn tail is cut on open).
//! - **When it is acknowledged.** [`Ack::AfterAppend`] maps to the file log's
//!   [`FsyncPolicy::Never`]: the append returns once the record is `write`n, which
//!   survives the process dying but not the machine losing power.
//!   [`Ack::AfterFsync`] maps to [`FsyncPolicy::Batch`]: the append returns after the
//!   `fdatasync` that covers it.
//! - **Log order is placement order.** An async mutex (`order`) is held from the
//!   append until the batch has been handed to every shard, so batches enter the shards
//!   in exactly the order they sit in the log. Replaying the log in order therefore
//!   takes the same watermark steps and the same late-event decisions as the original
//!   run, and rebuilds the same windows. The price: durable ingest calls are
//!   serialised (one append, and with `AfterFsync` one fsync, per batch at a time);
//!   batch events to amortise it.
//! - **Cancellation.** A durable ingest call runs in a task of its own: a caller that
//!   drops the future cannot leave a batch logged but not placed.
//! - **Replay and readiness.** `build()` opens the log, loads the newest snapshot
//!   (`snapshot.rs`: the store is filled before the projection starts), takes the
//!   `order` lock and spawns a task that restores the shards and watermarks from the
//!   snapshot, reads the log from the snapshot's position (or 0; blocking reads on
//!   tokio's blocking pool), places every batch as ingest would (no validation, no rate
//!   limits: they were admitted once) and then marks the engine ready and releases the
//!   lock. Ingest calls
//!   made meanwhile wait on the lock, so nothing new interleaves with the replay.
//!   [`Engine::is_ready`] / [`Engine::ready`] report the end of the replay; a replay
//!   that fails (a record that does not decode) leaves the engine failed: ingest then
//!   answers [`Error::Log`].
//!
//! # Limits
//!
//! - Only batches are logged, not ticks: a watermark the original run advanced because
//!   a source went idle (or by the clock in processing time, between batches) is not
//!   replayed, so an event that was late only because of such a step is counted on
//!   replay. Replay follows the logged batches' own timestamps.
//! - Late events met during the replay are sent to the late stream and counted again.
//! - `try_ingest` on a durable engine does not report busy while another call holds the
//!   log lock: it waits for that call's append (and fsync).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{OwnedMutexGuard, watch};
use weft_eventsourcing::{
    EventStore, ExpectedVersion, FileLog, FileLogConfig, FsyncPolicy, NewEvent,
};
use weft_sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::engine::IngestReport;
use crate::engine::{Engine, Inner};
use crate::error::{Error, IngestError};
use crate::event::Batch;
use crate::shard::Restore;
use crate::snapshot::{SnapshotFile, SnapshotInfo, load_newest};
use crate::store::WindowStore;

/// The log stream every batch is appended to.
pub(crate) const STREAM: &str = "weft-analytics-input";
/// The event type of a logged batch.
pub(crate) const EVENT_TYPE: &str = "Batch";
/// Its schema version.
const SCHEMA: u32 = 1;
/// Records read per step of the replay.
const REPLAY_CHUNK: usize = 256;

/// When an ingest call is acknowledged on a durable engine.
///
/// ```
/// use weft_analytics::Ack;
/// assert_eq!(Ack::default(), Ack::AfterFsync);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Ack {
    /// After the batch's record is written to the log file (in the page cache): an
    /// acknowledged batch survives the process crashing, not the machine losing power.
    AfterAppend,
    /// After the record is on disk (`fdatasync`): an acknowledged batch survives a
    /// power loss too. Costs one fsync per batch.
    #[default]
    AfterFsync,
}

/// Where and how a durable engine logs its input (see [`EngineBuilder::durable`](crate::EngineBuilder::durable)).
///
/// ```
/// use weft_analytics::{Ack, Durability};
/// let d = Durability::new("/var/lib/analytics").ack(Ack::AfterAppend);
/// assert_eq!(d.ack_mode(), Ack::AfterAppend);
/// assert_eq!(d.dir().to_str(), Some("/var/lib/analytics"));
/// ```
#[derive(Debug, Clone)]
pub struct Durability {
    dir: PathBuf,
    ack: Ack,
    segment_size: u64,
    snapshot_every: Option<u64>,
    compact: bool,
}

impl Durability {
    /// Logs into `dir` (created if missing; the log lives in `dir/log`), acknowledging
    /// after fsync, with 64 MiB segment files.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Durability {
            dir: dir.into(),
            ack: Ack::default(),
            segment_size: 64 << 20,
            snapshot_every: None,
            compact: false,
        }
    }

    /// Deletes the log segments a snapshot covers right after writing it (default
    /// `false`: the log is kept whole, for backfills over all of it). See
    /// [`Engine::compact_log`].
    pub fn compact_after_snapshot(mut self, on: bool) -> Self {
        self.compact = on;
        self
    }

    /// Takes a snapshot in the background after every `batches` logged batches
    /// (`None`, the default: only on [`Engine::snapshot`]). Bounds the replay at
    /// start-up to about that many batches.
    pub fn snapshot_every(mut self, batches: Option<u64>) -> Self {
        self.snapshot_every = batches.filter(|&n| n > 0);
        self
    }

    /// When ingest acknowledges.
    pub fn ack(mut self, ack: Ack) -> Self {
        self.ack = ack;
        self
    }

    /// The size at which the log starts a new segment file (at least 4 KiB).
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The acknowledgement mode.
    pub fn ack_mode(&self) -> Ack {
        self.ack
    }

    pub(crate) fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }

    pub(crate) fn snapshot_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }
}

/// Where a durable engine is in its start-up.
///
/// ```
/// use weft_analytics::Readiness;
/// assert!(Readiness::Ready.is_ready());
/// assert!(!Readiness::Replaying { replayed: 3 }.is_ready());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// Replaying the log; `replayed` batches so far. Ingest calls wait.
    Replaying {
        /// Batches replayed so far.
        replayed: u64,
    },
    /// Replay finished (or the engine is not durable): serving.
    Ready,
    /// Replay failed; the engine refuses ingest with [`Error::Log`].
    Failed(String),
}

impl Readiness {
    /// Whether the engine is serving.
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

/// The durable side of an engine.
pub(crate) struct Durable {
    pub(crate) log: Arc<FileLog>,
    /// Held from an append until the batch is placed; held by the replay from `build`.
    order: Arc<tokio::sync::Mutex<()>>,
    /// Taken by `build` and handed to the replay task.
    replay_guard: weft_sync::Mutex<Option<OwnedMutexGuard<()>>>,
    state: watch::Sender<Readiness>,
    /// Batches replayed at start-up.
    replayed: AtomicU64,
    /// Batches appended since start-up.
    appended: AtomicU64,
    /// The acknowledgement mode (with `AfterFsync` every append is already synced).
    ack: Ack,
    /// Group commit for [`Engine::sync_log`]: held while one caller syncs; holds the
    /// `appended` count the last sync covered.
    synced: tokio::sync::Mutex<u64>,
    /// The snapshot loaded at open, until the replay has restored it.
    pub(crate) snapshot: weft_sync::Mutex<Option<SnapshotFile>>,
    pub(crate) snapshot_dir: PathBuf,
    /// The configuration a snapshot must match.
    pub(crate) fingerprint: String,
    pub(crate) snapshot_every: Option<u64>,
    pub(crate) compact: bool,
    /// Batches appended since the last periodic snapshot started.
    pub(crate) since_snapshot: AtomicU64,
    /// Whether a periodic snapshot is running.
    pub(crate) snapshotting: AtomicBool,
    pub(crate) last_snapshot: weft_sync::Mutex<Option<SnapshotInfo>>,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("log", &self.log.dir())
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

fn log_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Log(format!("{what}: {e}"))
}

/// Decodes one logged batch.
pub(crate) fn decode(payload: &[u8]) -> Result<Batch, Error> {
    postcard::from_bytes(payload).map_err(|e| log_error("decoding a logged batch", e))
}

/// Opens the input log of `d` (blocking).
pub(crate) fn open_log(d: &Durability) -> Result<FileLog, Error> {
    let policy = match d.ack {
        Ack::AfterAppend => FsyncPolicy::Never,
        Ack::AfterFsync => FsyncPolicy::Batch,
    };
    FileLog::open(
        d.log_dir(),
        FileLogConfig::default()
            .fsync(policy)
            .segment_size(d.segment_size),
    )
    .map_err(|e| log_error(&format!("opening {}", d.log_dir().display()), e))
}

impl Durable {
    pub(crate) fn open(d: &Durability, fingerprint: String) -> Result<Self, Error> {
        let log = open_log(d)?;
        let snapshot = load_newest(&d.snapshot_dir())?;
        let first = log.recovery().first_position;
        if first > 0 && snapshot.as_ref().is_none_or(|s| s.position < first) {
            return Err(Error::Log(format!(
                "the log in {} starts at position {first} (compacted behind a snapshot), but no snapshot covering it is in {}; restore the snapshot file",
                d.log_dir().display(),
                d.snapshot_dir().display()
            )));
        }
        if let Some(s) = &snapshot {
            if s.position > log.head_position() {
                return Err(Error::Log(format!(
                    "the snapshot covers log position {} but the log ends at {}; the log in {} lost records",
                    s.position,
                    log.head_position(),
                    d.log_dir().display()
                )));
            }
        }
        let last = snapshot.as_ref().map(|s| SnapshotInfo {
            position: s.position,
            bytes: 0,
            path: d.snapshot_dir(),
        });
        let order = Arc::new(tokio::sync::Mutex::new(()));
        let guard = Arc::clone(&order)
            .try_lock_owned()
            .map_err(|e| Error::Config(e.to_string()))?;
        let durable = Durable {
            log: Arc::new(log),
            order,
            replay_guard: weft_sync::Mutex::new(Some(guard)),
            state: watch::Sender::new(Readiness::Replaying { replayed: 0 }),
            replayed: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            ack: d.ack,
            synced: tokio::sync::Mutex::new(0),
            snapshot: weft_sync::Mutex::new(snapshot),
            snapshot_dir: d.snapshot_dir(),
            fingerprint,
            snapshot_every: d.snapshot_every,
            compact: d.compact,
            since_snapshot: AtomicU64::new(0),
            snapshotting: AtomicBool::new(false),
            last_snapshot: weft_sync::Mutex::new(last),
        };
        durable.check_snapshot(&durable.fingerprint)?;
        Ok(durable)
    }

    /// Loads the snapshot's window store into `store` (at build, before the projection
    /// starts).
    pub(crate) fn restore_store(&self, store: &mut WindowStore) -> Result<(), Error> {
        if let Some(s) = self.snapshot.lock().as_mut() {
            store.import(&s.store)?;
            s.store = Vec::new();
        }
        Ok(())
    }

    /// The log-order lock.
    pub(crate) async fn order(&self) -> OwnedMutexGuard<()> {
        Arc::clone(&self.order).lock_owned().await
    }

    /// The log-order lock if free (ticks skip a beat rather than wait).
    pub(crate) fn try_order(&self) -> Option<OwnedMutexGuard<()>> {
        Arc::clone(&self.order).try_lock_owned().ok()
    }

    pub(crate) fn check_ready(&self) -> Result<(), Error> {
        match &*self.state.borrow() {
            Readiness::Failed(why) => Err(Error::Log(format!("the replay failed: {why}"))),
            _ => Ok(()),
        }
    }

    /// Keeps only the valid events of `batch` (those with a hash), appends them to the
    /// log and returns the order guard, to be held until the batch is placed.
    pub(crate) async fn log_batch(
        &self,
        batch: &mut Batch,
        hashes: &mut Vec<Option<u64>>,
    ) -> Result<OwnedMutexGuard<()>, Error> {
        if hashes.iter().any(Option::is_none) {
            let mut keep = hashes.iter().map(Option::is_some);
            batch.events.retain(|_| keep.next().unwrap_or(false));
            hashes.retain(Option::is_some);
        }
        let payload = postcard::to_stdvec(&*batch).map_err(|e| log_error("encoding a batch", e))?;
        let guard = self.order().await;
        self.check_ready()?;
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || {
            log.append(
                STREAM,
                ExpectedVersion::Any,
                vec![NewEvent::new(EVENT_TYPE, SCHEMA, payload)],
            )
        })
        .await
        .map_err(|e| log_error("the append task", e))?
        .map_err(|e| log_error("appending a batch", e))?;
        // Relaxed: statistics and a trigger count.
        self.appended.fetch_add(1, Ordering::Relaxed);
        self.since_snapshot.fetch_add(1, Ordering::Relaxed);
        Ok(guard)
    }

    fn fail(&self, why: String) {
        tracing::error!(error = %why, "analytics replay failed");
        self.state.send_replace(Readiness::Failed(why));
    }
}

/// An ingest call: in-memory engines run it in place; durable ones in a task of its
/// own, so that a caller dropping the future cannot leave a logged batch unplaced.
pub(crate) async fn ingest(
    inner: &Arc<Inner>,
    batch: Batch,
    wait: bool,
) -> Result<IngestReport, IngestError> {
    if inner.durable.is_none() {
        return inner.ingest(batch, wait).await;
    }
    let task = Arc::clone(inner);
    let r = match tokio::spawn(async move { task.ingest(batch, wait).await }).await {
        Ok(r) => r,
        Err(e) => Err(IngestError {
            error: Error::Log(format!("the ingest task failed: {e}")),
            batch: Batch::new(Vec::new()),
        }),
    };
    crate::snapshot::maybe_snapshot(inner);
    r
}

/// Starts the replay of a durable engine's log (nothing for an in-memory engine).
pub(crate) fn start_replay(inner: &Arc<Inner>) {
    let Some(d) = &inner.durable else { return };
    let Some(guard) = d.replay_guard.lock().take() else {
        return;
    };
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match replay(&inner).await {
            Ok(n) => {
                if let Some(d) = &inner.durable {
                    tracing::info!(
                        batches = n,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "analytics log replayed; engine ready"
                    );
                    d.state.send_replace(Readiness::Ready);
                }
            }
            Err(e) => {
                if let Some(d) = &inner.durable {
                    d.fail(e.to_string());
                }
            }
        }
        drop(guard);
    });
}

/// Replays the whole log into the shards; returns the batches replayed.
async fn replay(inner: &Arc<Inner>) -> Result<u64, Error> {
    let Some(d) = &inner.durable else {
        return Ok(0);
    };
    let mut position = 0;
    let snapshot = d.snapshot.lock().take();
    if let Some(s) = snapshot {
        if s.shards.len() != inner.shards.len() {
            return Err(Error::Log("the snapshot has another shard count".into()));
        }
        inner
            .watermarks
            .lock()
            .restore(s.watermark, s.sources, inner.clock.now());
        for (i, (shard, state)) in inner.shards.iter().zip(s.shards).enumerate() {
            let wm = shard
                .ask(Restore(state), std::time::Duration::from_secs(60))
                .await
                .map_err(|e| log_error("restoring a shard", e))?
                .map_err(|e| log_error("decoding a shard snapshot", e))?;
            // Relaxed: read only to skip resending a watermark the shard already has.
            inner.sent_watermark[i].store(wm, Ordering::Relaxed);
        }
        position = s.position;
        tracing::info!(
            position,
            "analytics snapshot restored; replaying the log tail"
        );
    }
    let mut n = 0;
    loop {
        let log = Arc::clone(&d.log);
        let records = tokio::task::spawn_blocking(move || log.read_all(position, REPLAY_CHUNK))
            .await
            .map_err(|e| log_error("the replay task", e))?
            .map_err(|e| log_error("reading the log", e))?;
        let Some(last) = records.last() else { break };
        position = last.position + 1;
        for r in &records {
            if &*r.event_type != EVENT_TYPE || &*r.stream_id != STREAM {
                continue;
            }
            let batch = decode(&r.payload)?;
            if batch.is_empty() {
                continue;
            }
            let prep = inner.prepare_trusted(&batch);
            inner.place(prep, batch, true).await.map_err(|e| e.error)?;
            n += 1;
            // Relaxed: a statistic.
            d.replayed.fetch_add(1, Ordering::Relaxed);
            d.state.send_replace(Readiness::Replaying { replayed: n });
        }
    }
    Ok(n)
}

impl Engine {
    /// Where the engine is in its start-up: a durable engine replays its log first;
    /// an in-memory engine is always [`Readiness::Ready`].
    pub fn readiness(&self) -> Readiness {
        match &self.inner.durable {
            Some(d) => d.state.borrow().clone(),
            None => Readiness::Ready,
        }
    }

    /// Whether the engine has finished replaying its log (always `true` for an
    /// in-memory engine). Serve `/readyz` from this.
    pub fn is_ready(&self) -> bool {
        self.readiness().is_ready()
    }

    /// Waits until the replay has finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use weft_analytics::{Ack, Batch, Durability, Engine, Event};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let durable = || Durability::new(dir.path()).ack(Ack::AfterFsync);
    /// let t0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    /// {
    ///     let engine = Engine::builder().durable(durable()).build()?;
    ///     engine.ready().await?;
    ///     engine.ingest(Batch::new(vec![Event::new("m", t0, 2.0)])).await?; // on disk now
    ///     engine.shutdown(Duration::from_secs(1)).await;
    /// }
    /// let engine = Engine::builder().durable(durable()).build()?; // replays the log
    /// engine.ready().await?;
    /// assert!(engine.is_ready());
    /// engine.finish(Duration::from_secs(5)).await?;
    /// let q = weft_analytics::Query::new("default", "m", t0 - 60_000, t0 + 60_000)
    ///     .aggregates([weft_analytics::Aggregate::Sum]);
    /// assert_eq!(engine.query(&q)?.groups[0].points[0].values[0], weft_analytics::Value::Number(Some(2.0)));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Log`] if the replay failed.
    pub async fn ready(&self) -> Result<(), Error> {
        let Some(d) = &self.inner.durable else {
            return Ok(());
        };
        let mut rx = d.state.subscribe();
        let state = rx
            .wait_for(|s| !matches!(s, Readiness::Replaying { .. }))
            .await
            .map_err(|_| Error::Closed)?
            .clone();
        match state {
            Readiness::Failed(why) => Err(Error::Log(why)),
            _ => Ok(()),
        }
    }

    /// Forces every batch acknowledged so far to disk (`fdatasync`): a batch
    /// ingested with [`Ack::AfterAppend`] survives a power loss once a `sync_log` that
    /// started after its ingest returned has returned. Concurrent callers share one
    /// sync (group commit): a caller whose batches an ongoing sync already covers waits
    /// for it instead of syncing again. A no-op for an in-memory engine and with
    /// [`Ack::AfterFsync`] (every acknowledged batch is on disk already).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use weft_analytics::{Ack, Batch, Durability, Engine, Event};
    /// let dir = tempfile::tempdir()?;
    /// let engine = Engine::builder()
    ///     .durable(Durability::new(dir.path()).ack(Ack::AfterAppend))
    ///     .build()?;
    /// engine.ready().await?;
    /// let now = std::time::UNIX_EPOCH.elapsed()?.as_millis() as i64;
    /// engine.ingest(Batch::new(vec![Event::new("m", now, 1.0)])).await?; // written
    /// engine.sync_log().await?; // and on disk
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Log`] if the sync fails (the disk, or a log that failed earlier).
    pub async fn sync_log(&self) -> Result<(), Error> {
        let Some(d) = &self.inner.durable else {
            return Ok(());
        };
        if d.ack == Ack::AfterFsync {
            return Ok(());
        }
        // Relaxed: the caller's own appends happened before this call (their ingest
        // returned, a join of the ingest task); later ones may or may not be counted.
        let target = d.appended.load(Ordering::Relaxed);
        let mut synced = d.synced.lock().await;
        if *synced >= target {
            return Ok(()); // a sync that started after our appends covered them
        }
        let covers = d.appended.load(Ordering::Relaxed);
        let log = Arc::clone(&d.log);
        tokio::task::spawn_blocking(move || log.sync())
            .await
            .map_err(|e| log_error("the sync task", e))?
            .map_err(|e| log_error("syncing the log", e))?;
        *synced = covers;
        Ok(())
    }

    /// Batches appended to the durable log since start-up and batches replayed at
    /// start-up (`(0, 0)` for an in-memory engine).
    pub fn log_counts(&self) -> (u64, u64) {
        match &self.inner.durable {
            // Relaxed: statistics.
            Some(d) => (
                d.appended.load(Ordering::Relaxed),
                d.replayed.load(Ordering::Relaxed),
            ),
            None => (0, 0),
        }
    }
}
