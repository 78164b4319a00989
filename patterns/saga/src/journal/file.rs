//! [`FileJournal`]: an append-only, checksummed journal file with group commit.
//!
//! # Format
//!
//! The file is a sequence of frames, each one record:
//!
//! ```text
//! [len: u32 LE][payload crc32: u32 LE][header crc32: u32 LE][payload: len bytes of JSON]
//! ```
//!
//! The header checksum covers the first eight bytes, so a damaged length is told apart
//! from a short write. On open every frame is checked:
//!
//! - fewer than 12 bytes left, or a valid header whose payload runs past the end of the
//!   file: a **torn tail** (the process died in the middle of a write). It is cut off.
//! - a bad payload checksum in the *last* frame, or a bad header followed only by zero
//!   bytes: also a torn tail (what a power loss leaves after un-synced writes). Cut off.
//! - any other bad checksum, or a payload that is not a record: [`Error::Corrupt`] with
//!   the byte offset. The journal is not opened: a damaged record before the tail is
//!   not a torn write, and cutting there would throw away sagas that are fine.
//!
//! # Writing
//!
//! Appenders push their encoded frame on a queue and wait for their acknowledgement. The
//! appender that finds no flush running starts one (on tokio's blocking pool, so the
//! `fsync` never blocks an async worker); the flusher takes everything queued, writes it
//! with one `write`, syncs per the [`FsyncPolicy`], publishes the records to the
//! in-memory index and acknowledges them, and loops until the queue is empty. Under
//! [`FsyncPolicy::Batch`] every appender that queued while a sync was running shares the
//! next one: group commit. A failed write fails every waiting append and every later
//! one ([`Error::JournalFailed`]): the file may end in a partial frame, which the next
//! open cuts off.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;
use weft_sync::Mutex;
use weft_sync::atomic::{AtomicU64, Ordering};

use super::{Index, Journal, JournalFuture, Record};
use crate::Error;

/// Bytes of a frame header.
const HEADER: usize = 12;
/// The largest payload a frame may claim (a larger length is damage, not a record).
const MAX_PAYLOAD: u32 = 64 << 20;

/// When a [`FileJournal`] calls `fsync` (`fdatasync`).
///
/// Every policy survives a *process* crash (SIGKILL, panic, OOM kill) without losing an
/// acknowledged record: a record is written to the file before its append resolves.
/// They differ on power loss.
///
/// ```
/// use weft_saga::FsyncPolicy;
/// assert_eq!(FsyncPolicy::default(), FsyncPolicy::Batch);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FsyncPolicy {
    /// Every record is written and synced on its own before it is acknowledged, even
    /// when several sagas append at once: durable against power loss, one sync each.
    EveryRecord,
    /// Group commit (the default): records appended while a sync runs are written
    /// together and share the next sync; each is acknowledged only after the sync that
    /// covers it. Durable against power loss, and far faster than `EveryRecord` when many
    /// sagas run at once.
    #[default]
    Batch,
    /// Never sync (except on [`FileJournal::sync`]): survives a process crash, not a
    /// power loss.
    Never,
}

/// A saga journal in one append-only file: every record length-prefixed and
/// CRC32-checked, a torn tail cut off on open, durability per [`FsyncPolicy`], with
/// group commit.
///
/// Every record is also kept in memory (reads never touch the disk), so the file and the
/// memory both grow with the number of records; start a new journal file per period
/// once old sagas are finished if that matters.
///
/// One process at a time: two processes appending to one file would interleave their
/// frames (nothing locks the file across processes). Under `tokio::time::pause`, prefer
/// [`MemoryJournal`](crate::MemoryJournal): while a sync runs on the blocking pool the
/// runtime looks idle and the paused clock jumps ahead to the next timer.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_saga::Error> {
/// use weft_saga::{Event, FileJournal, FsyncPolicy, Journal, Record};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("sagas.journal");
/// let j = FileJournal::open(&path, FsyncPolicy::Batch)?;
/// j.append(Record::new("t-1", 0, Event::SagaStarted { saga: "s".into(), input: 1.into() })).await?;
/// drop(j);
/// let again = FileJournal::open(&path, FsyncPolicy::Batch)?;
/// assert_eq!(again.in_flight().await?, ["t-1"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FileJournal {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    policy: FsyncPolicy,
    /// Only the flusher writes (one at a time, guarded by `Queue::flushing`).
    file: Mutex<File>,
    queue: Mutex<Queue>,
    index: Mutex<Index>,
    /// Counters for [`FileJournal::stats`] (`Relaxed`: they order nothing).
    writes: AtomicU64,
    syncs: AtomicU64,
    records: AtomicU64,
}

/// What a [`FileJournal`] has done since it was opened: a cheap snapshot from
/// [`FileJournal::stats`].
///
/// With [`FsyncPolicy::Batch`] and concurrent sagas, `records / syncs` is the average
/// group-commit batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileJournalStats {
    /// Records appended (acknowledged).
    pub records: u64,
    /// `write` calls (one per flushed batch).
    pub writes: u64,
    /// `fdatasync` calls.
    pub syncs: u64,
}

#[derive(Debug, Default)]
struct Queue {
    pending: VecDeque<Pending>,
    /// Whether a flusher is running; the appender that sets it runs the next one.
    flushing: bool,
    /// Set by a failed write: every later append fails with it.
    failed: Option<String>,
}

#[derive(Debug)]
struct Pending {
    frame: Vec<u8>,
    record: Record,
    done: oneshot::Sender<Result<(), String>>,
}

impl FileJournal {
    /// Opens (or creates) the journal at `path`, reading every record and cutting off a
    /// torn tail. Fails with [`Error::Corrupt`] if a record before the tail is damaged.
    pub fn open(path: impl AsRef<Path>, policy: FsyncPolicy) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        if !existed {
            sync_parent(&path)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, good) = parse(&bytes)?;
        if good < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                torn_bytes = bytes.len() - good,
                "saga journal: cutting off a torn tail"
            );
            file.set_len(good as u64)?;
            file.sync_all()?;
        }
        let mut index = Index::default();
        for r in records {
            index.apply(r);
        }
        Ok(FileJournal {
            shared: Arc::new(Shared {
                path,
                policy,
                file: Mutex::new(file),
                queue: Mutex::new(Queue::default()),
                index: Mutex::new(index),
                writes: AtomicU64::new(0),
                syncs: AtomicU64::new(0),
                records: AtomicU64::new(0),
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The fsync policy.
    pub fn policy(&self) -> FsyncPolicy {
        self.shared.policy
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.shared.index.lock().len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Syncs the file now (what [`FsyncPolicy::Never`] leaves to the caller).
    pub fn sync(&self) -> Result<(), Error> {
        self.shared.file.lock().sync_data()?;
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether queued records are being written now. With a syncing policy the write
    /// runs on tokio's blocking pool and may outlive the future that appended; wait
    /// until this is false before another process or journal opens the same file.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_saga::Error> {
    /// use weft_saga::{Event, FileJournal, FsyncPolicy, Journal, Record};
    /// let dir = tempfile::tempdir()?;
    /// let j = FileJournal::open(dir.path().join("j"), FsyncPolicy::Batch)?;
    /// j.append(Record::new("t", 0, Event::SagaCompleted)).await?;
    /// while j.is_writing() {
    ///     tokio::task::yield_now().await;
    /// }
    /// assert_eq!(j.stats().records, 1);
    /// # Ok(()) }
    /// ```
    pub fn is_writing(&self) -> bool {
        self.shared.queue.lock().flushing
    }

    /// Records, writes and syncs since the journal was opened.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_saga::Error> {
    /// use weft_saga::{Event, FileJournal, FsyncPolicy, Journal, Record};
    /// let dir = tempfile::tempdir()?;
    /// let j = FileJournal::open(dir.path().join("j"), FsyncPolicy::EveryRecord)?;
    /// j.append(Record::new("t", 0, Event::SagaCompleted)).await?;
    /// let stats = j.stats();
    /// assert_eq!((stats.records, stats.syncs), (1, 1));
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> FileJournalStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FileJournalStats {
            records: get(&self.shared.records),
            writes: get(&self.shared.writes),
            syncs: get(&self.shared.syncs),
        }
    }
}

impl Shared {
    /// Writes queued frames until the queue is empty. Runs on one thread at a time.
    fn flush(&self) {
        loop {
            let batch: Vec<Pending> = {
                let mut q = self.queue.lock();
                if q.pending.is_empty() {
                    q.flushing = false;
                    return;
                }
                match self.policy {
                    FsyncPolicy::EveryRecord => q.pending.pop_front().into_iter().collect(),
                    FsyncPolicy::Batch | FsyncPolicy::Never => q.pending.drain(..).collect(),
                }
            };
            // One frame (always under `EveryRecord`) is written as it is; several are
            // gathered into one write.
            let gathered: Vec<u8>;
            let bytes: &[u8] = match batch.as_slice() {
                [one] => &one.frame,
                many => {
                    gathered = many.iter().flat_map(|p| p.frame.iter().copied()).collect();
                    &gathered
                }
            };
            let written: io::Result<()> = {
                let mut file = self.file.lock();
                self.writes.fetch_add(1, Ordering::Relaxed);
                file.write_all(bytes).and_then(|()| match self.policy {
                    FsyncPolicy::Never => Ok(()),
                    _ => {
                        self.syncs.fetch_add(1, Ordering::Relaxed);
                        file.sync_data()
                    }
                })
            };
            match written {
                Ok(()) => {
                    self.records
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    let mut dones = Vec::with_capacity(batch.len());
                    {
                        let mut index = self.index.lock();
                        for p in batch {
                            index.apply(p.record);
                            dones.push(p.done);
                        }
                    }
                    for done in dones {
                        // The appender may have stopped waiting; the record is written
                        // either way.
                        let _ = done.send(Ok(()));
                    }
                }
                Err(e) => {
                    let msg = format!("{}: {e}", self.path.display());
                    tracing::error!(error = %msg, "saga journal write failed; refusing further appends");
                    let mut q = self.queue.lock();
                    q.failed = Some(msg.clone());
                    q.flushing = false;
                    for p in batch.into_iter().chain(q.pending.drain(..)) {
                        let _ = p.done.send(Err(msg.clone()));
                    }
                    return;
                }
            }
        }
    }
}

impl Journal for FileJournal {
    fn append(&self, record: Record) -> JournalFuture<'_, ()> {
        let queued = encode(&record).and_then(|frame| {
            let (done, rx) = oneshot::channel();
            let mut q = self.shared.queue.lock();
            if let Some(failed) = &q.failed {
                return Err(Error::JournalFailed(failed.clone()));
            }
            q.pending.push_back(Pending {
                frame,
                record,
                done,
            });
            let start = !q.flushing;
            q.flushing = true;
            Ok((rx, start))
        });
        let (rx, start) = match queued {
            Ok(q) => q,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        if start {
            let shared = Arc::clone(&self.shared);
            match (self.shared.policy, tokio::runtime::Handle::try_current()) {
                // A sync can take milliseconds: keep it off the async workers.
                (FsyncPolicy::EveryRecord | FsyncPolicy::Batch, Ok(rt)) => {
                    drop(rt.spawn_blocking(move || shared.flush()));
                }
                // A plain write is as cheap as a hand-off to another thread.
                _ => shared.flush(),
            }
        }
        Box::pin(async move {
            match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Error::Journal(io::Error::other(e))),
                Err(_) => Err(Error::JournalFailed(
                    "the flusher stopped before acknowledging the record".into(),
                )),
            }
        })
    }

    fn load<'a>(&'a self, saga_id: &'a str) -> JournalFuture<'a, Vec<Record>> {
        let records = self.shared.index.lock().load(saga_id);
        Box::pin(std::future::ready(Ok(records)))
    }

    fn in_flight(&self) -> JournalFuture<'_, Vec<String>> {
        let ids = self.shared.index.lock().in_flight();
        Box::pin(std::future::ready(Ok(ids)))
    }
}

/// One record as a frame.
fn encode(record: &Record) -> Result<Vec<u8>, Error> {
    let payload = serde_json::to_vec(record).map_err(|e| Error::Codec {
        what: format!("a journal record of saga `{}`", record.saga_id),
        reason: e.to_string(),
    })?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l <= MAX_PAYLOAD)
        .ok_or_else(|| Error::Codec {
            what: format!("a journal record of saga `{}`", record.saga_id),
            reason: format!(
                "{} bytes, more than the {MAX_PAYLOAD} a record may have",
                payload.len()
            ),
        })?;
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&frame[..8]).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// The records of a whole file, and how many bytes of it are good (the rest is a torn
/// tail).
fn parse(bytes: &[u8]) -> Result<(Vec<Record>, usize), Error> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < HEADER {
            break; // torn header
        }
        let len = u32_at(rest, 0);
        let payload_crc = u32_at(rest, 4);
        if crc32fast::hash(&rest[..8]) != u32_at(rest, 8) || len > MAX_PAYLOAD {
            if rest.iter().all(|&b| b == 0) {
                break; // zero-filled tail of a power loss
            }
            return Err(Error::Corrupt {
                offset: at as u64,
                reason: "bad frame header checksum".into(),
            });
        }
        let end = HEADER + len as usize;
        if rest.len() < end {
            break; // torn payload
        }
        let payload = &rest[HEADER..end];
        if crc32fast::hash(payload) != payload_crc {
            if rest.len() == end {
                break; // the last frame: torn
            }
            return Err(Error::Corrupt {
                offset: at as u64,
                reason: "bad record checksum".into(),
            });
        }
        let record = serde_json::from_slice(payload).map_err(|e| Error::Corrupt {
            offset: at as u64,
            reason: format!("checksum is good but the record does not decode: {e}"),
        })?;
        records.push(record);
        at += end;
    }
    Ok((records, at))
}

/// Syncs the directory holding `path`, so a newly created file survives a power loss.
fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    fn rec(i: u64) -> Record {
        Record::new(
            format!("s-{i}"),
            i,
            Event::SagaStarted {
                saga: "x".into(),
                input: i.into(),
            },
        )
    }

    #[test]
    fn frames_round_trip_and_every_prefix_parses_to_whole_records() {
        let frames: Vec<Vec<u8>> = (0..3).map(|i| encode(&rec(i)).unwrap()).collect();
        let all: Vec<u8> = frames.concat();
        let (records, good) = parse(&all).unwrap();
        assert_eq!(records, (0..3).map(rec).collect::<Vec<_>>());
        assert_eq!(good, all.len());
        let boundaries: Vec<usize> = frames
            .iter()
            .scan(0, |s, f| {
                *s += f.len();
                Some(*s)
            })
            .collect();
        for cut in 0..all.len() {
            let (records, good) = parse(&all[..cut]).unwrap();
            let whole = boundaries.iter().filter(|&&b| b <= cut).count();
            assert_eq!(records.len(), whole, "cut at {cut}");
            assert_eq!(good, if whole == 0 { 0 } else { boundaries[whole - 1] });
        }
    }

    #[test]
    fn a_damaged_middle_record_is_corruption_and_a_damaged_last_one_is_torn() {
        let a = encode(&rec(0)).unwrap();
        let b = encode(&rec(1)).unwrap();
        let mut both = [a.clone(), b.clone()].concat();
        both[HEADER + 3] ^= 0xff; // first payload
        assert!(matches!(
            parse(&both),
            Err(Error::Corrupt { offset: 0, .. })
        ));
        let mut both = [a.clone(), b].concat();
        let last = both.len() - 2;
        both[last] ^= 0xff;
        let (records, good) = parse(&both).unwrap();
        assert_eq!((records.len(), good), (1, a.len()));
        let mut both = [a.clone(), a.clone()].concat();
        both[a.len()] ^= 0x01; // second header's length
        assert!(
            matches!(parse(&both), Err(Error::Corrupt { offset, .. }) if offset == a.len() as u64)
        );
        let zeros = [a.clone(), vec![0; 40]].concat();
        assert_eq!(parse(&zeros).unwrap().1, a.len());
    }
}
