//! [`FileLog`]: the embedded, crash-safe event store.
//!
//! # Design
//!
//! The log is a directory of append-only segment files (format in `record.rs`). Each
//! append becomes one CRC-checked record, so after a crash an append is either wholly
//! there or wholly absent.
//!
//! **Group commit.** Appenders take the writer lock only to check the expected version,
//! assign positions, seal their record and queue it with a ticket number. Then, if no
//! flush is running, the appender becomes the *leader*: it takes every queued record,
//! releases the lock, writes them with one `write` and (policy permitting) one
//! `fdatasync`, then publishes them to the index and marks their tickets done. Appenders
//! that queued while a flush ran wait on a condition variable; when the flush ends, one
//! of them leads the next flush for all of them. So under load N concurrent appends
//! share one fsync, while a lone appender pays exactly one. No append is acknowledged
//! before its record is written (and, under `Batch`/`EveryAppend`, synced).
//!
//! Why this cannot lose or reorder an append: positions and versions are assigned under
//! the lock in queue order and the queue is written in that order; only one leader
//! exists at a time (the `flushing` flag, set and cleared under the lock); a ticket is
//! marked done only after the flush holding it has finished, and readers see a record
//! only after it has been written (the index is updated by the leader after the write).
//! The handoff is modelled in `loom-tests/tests/eventsourcing.rs`.
//!
//! **Failure.** If a write or fsync fails, the log becomes *failed*: the appends of that
//! flush and every later append get an error, because after a failed fsync the kernel
//! may have dropped the dirty pages (the "fsyncgate" lesson): only reopening, which
//! re-reads what is really on disk, is safe.
//!
//! **Recovery.** Opening scans every segment, verifies each record's checksums, checks
//! that positions and stream versions are contiguous and rebuilds the index. A bad record
//! that ends the last segment (short header, short body, or a record whose bytes from
//! there on are all zero or run past the end of the file) is a torn write of an
//! unacknowledged append and is truncated away; any other bad record is corruption and
//! opening fails with [`Error::Corrupt`] naming the file and byte offset.

mod record;

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_sync::atomic::{AtomicU64, Ordering};
use weft_sync::{Condvar, Mutex};
use weft_time::{Clock, SystemClock};

use crate::event::{system_time_to_nanos, validate_append};
use crate::{AppendResult, Error, EventStore, ExpectedVersion, NewEvent, RecordedEvent};
use record::{MAGIC, MAX_BODY, RECORD_HEADER, SEGMENT_HEADER};

/// When the file log calls `fdatasync`.
///
/// `write` puts data in the kernel's page cache: it survives the *process* crashing, but
/// not the *machine* losing power. Only after `fdatasync` returns is it on the disk (as
/// far as the disk's own cache honours flushes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every append is written and synced on its own before it is acknowledged: durable
    /// against power loss, one fsync per append even under concurrency.
    EveryAppend,
    /// Group commit (the default): concurrent appends are written together and share one
    /// fsync; each is acknowledged only after the fsync that covers it. Durable against
    /// power loss, and much faster than `EveryAppend` with many writers.
    Batch,
    /// Appends are acknowledged once written; an fsync runs when an append finds the
    /// last one older than this interval (and on [`FileLog::sync`] and drop). A power
    /// loss can lose up to one interval of acknowledged appends; a process crash loses
    /// nothing.
    Interval(Duration),
    /// Never fsync on append (only on [`FileLog::sync`] and drop, which also sync the
    /// segments finished since the last sync): survives a process crash, not a power
    /// loss until `sync` returns.
    Never,
}

/// Settings of a [`FileLog`].
///
/// ```
/// use std::time::Duration;
/// use weft_eventsourcing::{FileLogConfig, FsyncPolicy};
/// let config = FileLogConfig::default()
///     .fsync(FsyncPolicy::Interval(Duration::from_millis(10)))
///     .segment_size(16 << 20);
/// assert_eq!(config.fsync_policy(), FsyncPolicy::Interval(Duration::from_millis(10)));
/// ```
#[derive(Debug, Clone)]
pub struct FileLogConfig {
    fsync: FsyncPolicy,
    segment_size: u64,
    max_batch_bytes: usize,
    clock: Arc<dyn Clock>,
}

impl Default for FileLogConfig {
    /// Group commit ([`FsyncPolicy::Batch`]), 64 MiB segments, flushes of up to 8 MiB,
    /// the system clock.
    fn default() -> Self {
        FileLogConfig {
            fsync: FsyncPolicy::Batch,
            segment_size: 64 << 20,
            max_batch_bytes: 8 << 20,
            clock: Arc::new(SystemClock),
        }
    }
}

impl FileLogConfig {
    /// Sets the fsync policy.
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Sets the size at which a new segment file is started (at least 4 KiB; a single
    /// larger append still goes into one segment).
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Sets how many bytes one group-commit flush writes at most (at least 1; a single
    /// larger record is still written whole).
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// Sets the clock that timestamps events and times [`FsyncPolicy::Interval`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The fsync policy.
    pub fn fsync_policy(&self) -> FsyncPolicy {
        self.fsync
    }

    fn validate(&self) -> Result<(), Error> {
        if self.segment_size < 4096 {
            return Err(Error::InvalidInput(format!(
                "segment_size must be at least 4096 bytes, got {}",
                self.segment_size
            )));
        }
        if self.max_batch_bytes == 0 {
            return Err(Error::InvalidInput(
                "max_batch_bytes must be at least 1".into(),
            ));
        }
        if let FsyncPolicy::Interval(d) = self.fsync {
            if d.is_zero() {
                return Err(Error::InvalidInput(
                    "FsyncPolicy::Interval needs a positive interval; use EveryAppend or Batch to sync every time".into(),
                ));
            }
        }
        Ok(())
    }
}

/// What opening the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Segment files read.
    pub segments: usize,
    /// Records (appends) recovered.
    pub records: u64,
    /// Events recovered.
    pub events: u64,
    /// The position of the first event still in the log: 0, or where
    /// [`FileLog::truncate_before`] left it.
    pub first_position: u64,
    /// Bytes of a torn tail cut off the last segment (0 if it ended cleanly).
    pub truncated_bytes: u64,
    /// The file that was truncated, if any.
    pub truncated_file: Option<PathBuf>,
}

/// Counters of a [`FileLog`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileLogMetrics {
    /// Successful appends.
    pub appends: u64,
    /// Events appended.
    pub events: u64,
    /// Group-commit flushes (one write, at most one fsync each).
    pub flushes: u64,
    /// fsync calls.
    pub fsyncs: u64,
    /// Bytes written to segment files.
    pub bytes_written: u64,
    /// Segment files in the log.
    pub segments: u64,
}

/// One segment file, opened for reading.
struct Segment {
    path: PathBuf,
    file: File,
    /// The position of its first record (from its name and header).
    first: u64,
}

/// Where an append's record lives.
#[derive(Clone, Copy)]
struct RecordLoc {
    first_position: u64,
    count: u32,
    segment: u32,
    /// Offset of the record header in the segment.
    offset: u64,
    /// Body length.
    len: u32,
}

/// Where a stream's event lives: which record, which slot in it.
#[derive(Clone, Copy)]
struct EventLoc {
    record: u32,
    slot: u32,
}

/// One stream's events still in the log: `locs[i]` holds version `removed + i + 1`.
#[derive(Default)]
struct StreamLocs {
    /// Versions no longer in the log (removed by [`FileLog::truncate_before`]).
    removed: u64,
    locs: Vec<EventLoc>,
}

/// What readers see: written records only.
///
/// `RecordLoc::segment` and `EventLoc::record` are absolute numbers: `segments[0]` is
/// segment `segment_base`, `records[0]` is record `record_base`. Truncation removes
/// from the front and raises the bases, so numbers held elsewhere stay valid.
#[derive(Default)]
struct Index {
    segments: Vec<Arc<Segment>>,
    segment_base: u32,
    records: Vec<RecordLoc>,
    record_base: u32,
    streams: HashMap<Arc<str>, StreamLocs>,
    /// Events readable: the next position to be published.
    head: u64,
}

impl Index {
    fn segment(&self, n: u32) -> &Arc<Segment> {
        &self.segments[(n - self.segment_base) as usize]
    }
}

/// A record sealed and queued for the next flush.
struct Pending {
    ticket: u64,
    frame: Vec<u8>,
    stream: Arc<str>,
    first_position: u64,
    count: u32,
}

/// The file currently appended to. Only the flush leader touches it (it is taken out of
/// the lock for the duration of the flush).
struct Writer {
    file: File,
    /// Bytes in the current segment.
    len: u64,
    /// Index of the current segment in `Index::segments`.
    segment: u32,
    last_sync: Instant,
    dirty: bool,
    /// Finished segments written since the last sync and not synced yet (with
    /// [`FsyncPolicy::Never`] a rollover does not sync): [`FileLog::sync`] flushes them,
    /// and the directory their rollovers added entries to, before the current segment.
    unsynced: Vec<File>,
}

impl Writer {
    /// Syncs the finished segments a rollover left unsynced, then the directory (each
    /// of those rollovers created a file). On failure they stay listed for the next try.
    fn sync_finished(&mut self, dir: &Path, fsyncs: &AtomicU64) -> Result<(), Error> {
        if self.unsynced.is_empty() {
            return Ok(());
        }
        for f in &self.unsynced {
            f.sync_data()
                .map_err(|e| Error::io("syncing a finished segment", e))?;
            // Relaxed: a statistic.
            fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        crate::util::sync_dir(dir)?;
        self.unsynced.clear();
        Ok(())
    }
}

/// The writers' side, under `FileLog::state`.
struct WriteState {
    next_position: u64,
    versions: HashMap<Arc<str>, u64>,
    queue: Vec<Pending>,
    next_ticket: u64,
    /// Every ticket `< done` is finished (written, or failed if `>= failed_from`).
    done: u64,
    flushing: bool,
    writer: Option<Writer>,
    /// Set after a write or fsync failure: the message, and the first failed ticket.
    failed: Option<(String, u64)>,
}

/// The embedded, crash-safe event store: append-only CRC-checked segment files with group
/// commit, torn-tail recovery and an in-memory per-stream index rebuilt on open.
///
/// Only one `FileLog` may have a directory open at a time (one process, one handle;
/// share it with `Arc` or `&`).
///
/// ```
/// use weft_eventsourcing::{EventStore, ExpectedVersion, FileLog, FileLogConfig, FsyncPolicy, NewEvent};
///
/// let dir = tempfile::tempdir()?;
/// {
///     let log = FileLog::open(dir.path(), FileLogConfig::default().fsync(FsyncPolicy::Batch))?;
///     log.append("order-1", ExpectedVersion::NoStream, vec![
///         NewEvent::new("Placed", 1, br#"{"total":12}"#.to_vec()),
///         NewEvent::new("Paid", 1, br#"{}"#.to_vec()),
///     ])?;
/// }
/// // Reopening rebuilds the index from the segments.
/// let log = FileLog::open(dir.path(), FileLogConfig::default())?;
/// assert_eq!(log.recovery().events, 2);
/// assert_eq!(log.stream_version("order-1")?, 2);
/// assert_eq!(&*log.read_stream("order-1", 2, 1)?[0].event_type, "Paid");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileLog {
    dir: PathBuf,
    config: FileLogConfig,
    state: Mutex<WriteState>,
    flushed: Condvar,
    index: Mutex<Index>,
    published: Condvar,
    recovery: Recovery,
    counters: Counters,
    /// Test hook: make the next segment writes fail, as a full or failing disk would.
    #[cfg(test)]
    fail_writes: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Counters {
    appends: AtomicU64,
    events: AtomicU64,
    flushes: AtomicU64,
    fsyncs: AtomicU64,
    bytes_written: AtomicU64,
}

fn segment_name(first_position: u64) -> String {
    format!("{first_position:020}.log")
}

impl FileLog {
    /// Opens (creating if needed) the log in directory `dir`, recovering its state.
    ///
    /// Fails with [`Error::Corrupt`] (naming the file and offset) if a record other than
    /// a torn tail is damaged, [`Error::InvalidInput`] for a bad config, and
    /// [`Error::Io`] if the files cannot be read.
    pub fn open(dir: impl AsRef<Path>, config: FileLogConfig) -> Result<Self, Error> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let (index, versions, recovery) = recover(&dir)?;
        let mut index = index;
        let writer = if let Some(last) = index.segments.last() {
            let file = OpenOptions::new()
                .append(true)
                .open(&last.path)
                .map_err(|e| Error::io(format!("opening {}", last.path.display()), e))?;
            let len = file
                .metadata()
                .map_err(|e| Error::io(format!("reading {}", last.path.display()), e))?
                .len();
            Writer {
                file,
                len,
                segment: index.segment_base + (index.segments.len() - 1) as u32,
                last_sync: config.clock.now(),
                dirty: false,
                unsynced: Vec::new(),
            }
        } else {
            let (segment, file) = create_segment(&dir, index.head)?;
            index.segments.push(Arc::new(segment));
            Writer {
                file,
                len: SEGMENT_HEADER,
                segment: 0,
                last_sync: config.clock.now(),
                dirty: false,
                unsynced: Vec::new(),
            }
        };
        let next_position = index.head;
        tracing::debug!(dir = %dir.display(), ?recovery, "file log opened");
        Ok(FileLog {
            dir,
            state: Mutex::new(WriteState {
                next_position,
                versions,
                queue: Vec::new(),
                next_ticket: 0,
                done: 0,
                flushing: false,
                writer: Some(writer),
                failed: None,
            }),
            flushed: Condvar::new(),
            index: Mutex::new(index),
            published: Condvar::new(),
            recovery,
            config,
            counters: Counters::default(),
            #[cfg(test)]
            fail_writes: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening found (records recovered, torn tail truncated).
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The counters.
    ///
    /// ```
    /// use weft_eventsourcing::{EventStore, ExpectedVersion, FileLog, FileLogConfig, NewEvent};
    /// let dir = tempfile::tempdir()?;
    /// let log = FileLog::open(dir.path(), FileLogConfig::default())?;
    /// log.append("s", ExpectedVersion::Any, vec![NewEvent::new("E", 1, vec![])])?;
    /// let m = log.metrics();
    /// assert_eq!((m.appends, m.events, m.fsyncs, m.segments), (1, 1, 1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics(&self) -> FileLogMetrics {
        // Relaxed: independent statistics.
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FileLogMetrics {
            appends: get(&self.counters.appends),
            events: get(&self.counters.events),
            flushes: get(&self.counters.flushes),
            fsyncs: get(&self.counters.fsyncs),
            bytes_written: get(&self.counters.bytes_written),
            segments: self.index.lock().segments.len() as u64,
        }
    }

    /// Forces everything written so far to disk (`fdatasync`), whatever the policy.
    pub fn sync(&self) -> Result<(), Error> {
        // Wait out a running flush so the writer is in place, then sync under the lock.
        let mut state = self.state.lock();
        while state.flushing {
            state = self.flushed.wait(state);
        }
        if let Some((message, _)) = &state.failed {
            return Err(Error::Failed(message.clone()));
        }
        let clock_now = self.config.clock.now();
        if let Some(w) = state.writer.as_mut() {
            w.sync_finished(&self.dir, &self.counters.fsyncs)?;
            w.file
                .sync_data()
                .map_err(|e| Error::io("syncing the log", e))?;
            w.dirty = false;
            w.last_sync = clock_now;
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Deletes every segment file whose events all lie below `position` (retention
    /// behind a snapshot that covers them) and returns how many it deleted.
    ///
    /// Whole segments only, and never the last one: events below `position` that share
    /// a segment with later ones stay, so the log's new first position is the start of
    /// the oldest kept segment (`<=` `position`). Afterwards reads start there:
    /// [`read_all`](EventStore::read_all) from an earlier position returns the events
    /// from the first kept one, [`read_stream`](EventStore::read_stream) skips the
    /// removed versions, and [`stream_version`](EventStore::stream_version) and new
    /// positions and versions carry on unchanged. Reopening finds the log starting at
    /// that position ([`Recovery::first_position`]). Files are deleted oldest first, so
    /// a crash midway leaves a log that still starts at a segment boundary. One caveat:
    /// a stream none of whose events is left is unknown after reopening (its version
    /// reads 0 again), since only the kept records say which streams exist.
    ///
    /// ```
    /// use weft_eventsourcing::{EventStore, ExpectedVersion, FileLog, FileLogConfig, NewEvent};
    /// let dir = tempfile::tempdir()?;
    /// let log = FileLog::open(dir.path(), FileLogConfig::default().segment_size(4096))?;
    /// for _ in 0..100 {
    ///     log.append("s", ExpectedVersion::Any, vec![NewEvent::new("E", 1, vec![0; 100])])?;
    /// }
    /// let removed = log.truncate_before(60)?;
    /// assert!(removed > 0);
    /// let first = log.read_all(0, 1)?[0].position;
    /// assert!(first > 0 && first <= 60);
    /// assert_eq!(log.stream_version("s")?, 100);
    /// drop(log);
    /// let log = FileLog::open(dir.path(), FileLogConfig::default().segment_size(4096))?;
    /// assert_eq!(log.recovery().first_position, first);
    /// assert_eq!(log.head_position(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a file cannot be deleted (those before it are gone; the rest
    /// stay readable until the next call).
    pub fn truncate_before(&self, position: u64) -> Result<usize, Error> {
        let removed: Vec<Arc<Segment>> = {
            let mut index = self.index.lock();
            let mut k = 0;
            while k + 1 < index.segments.len() && index.segments[k + 1].first <= position {
                k += 1;
            }
            if k == 0 {
                return Ok(0);
            }
            let removed: Vec<_> = index.segments.drain(..k).collect();
            index.segment_base += k as u32;
            let base = index.segment_base;
            let r = index.records.partition_point(|r| r.segment < base);
            index.records.drain(..r);
            index.record_base += r as u32;
            let record_base = index.record_base;
            for s in index.streams.values_mut() {
                let n = s.locs.partition_point(|l| l.record < record_base);
                s.locs.drain(..n);
                s.removed += n as u64;
            }
            removed
        };
        // Readers holding an `Arc<Segment>` keep reading the unlinked file.
        for seg in &removed {
            std::fs::remove_file(&seg.path)
                .map_err(|e| Error::io(format!("removing {}", seg.path.display()), e))?;
        }
        crate::util::sync_dir(&self.dir)?;
        tracing::info!(
            segments = removed.len(),
            position,
            "file log truncated behind a position"
        );
        Ok(removed.len())
    }

    /// Takes the records of the next flush off the queue.
    fn take_batch(&self, state: &mut WriteState) -> Vec<Pending> {
        let mut n = 0;
        let mut bytes = 0;
        for p in &state.queue {
            if n > 0
                && (self.config.fsync == FsyncPolicy::EveryAppend
                    || bytes + p.frame.len() > self.config.max_batch_bytes)
            {
                break;
            }
            n += 1;
            bytes += p.frame.len();
        }
        state.queue.drain(..n).collect()
    }

    /// Writes a batch (rolling segments over as needed) and syncs per the policy.
    /// Returns the location of each record. Runs without the lock held.
    fn write_batch(
        &self,
        writer: &mut Writer,
        batch: &[Pending],
        new_segments: &mut Vec<Segment>,
        first_new_segment: u32,
    ) -> Result<Vec<RecordLoc>, Error> {
        let sync = |file: &File| -> Result<(), Error> {
            file.sync_data()
                .map_err(|e| Error::io("syncing a segment", e))?;
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
            Ok(())
        };
        let syncs_on_rollover = self.config.fsync != FsyncPolicy::Never;
        let mut locs = Vec::with_capacity(batch.len());
        let mut buf: Vec<u8> = Vec::new();
        for p in batch {
            let len = p.frame.len() as u64;
            if writer.len > SEGMENT_HEADER && writer.len + len > self.config.segment_size {
                // Roll over: finish the current segment, start one named by this record.
                // With a syncing policy the finished segment and the directory are
                // synced now; with `Never` they are kept for the next `sync()`, which
                // flushes them before the current segment, so it covers every record
                // written before it.
                self.write_out(&mut writer.file, &mut buf)?;
                let (segment, file) = create_segment(&self.dir, p.first_position)?;
                new_segments.push(segment);
                let finished = std::mem::replace(&mut writer.file, file);
                if syncs_on_rollover {
                    sync(&finished)?;
                    crate::util::sync_dir(&self.dir)?;
                } else {
                    writer.unsynced.push(finished);
                }
                writer.len = SEGMENT_HEADER;
                writer.segment = first_new_segment + new_segments.len() as u32 - 1;
                writer.dirty = true;
            }
            locs.push(RecordLoc {
                first_position: p.first_position,
                count: p.count,
                segment: writer.segment,
                offset: writer.len,
                len: (p.frame.len() - RECORD_HEADER) as u32,
            });
            buf.extend_from_slice(&p.frame);
            writer.len += len;
        }
        self.write_out(&mut writer.file, &mut buf)?;
        writer.dirty = true;
        let now = self.config.clock.now();
        let due = match self.config.fsync {
            FsyncPolicy::EveryAppend | FsyncPolicy::Batch => true,
            FsyncPolicy::Interval(every) => {
                now.saturating_duration_since(writer.last_sync) >= every
            }
            FsyncPolicy::Never => false,
        };
        if due {
            sync(&writer.file)?;
            writer.dirty = false;
            writer.last_sync = now;
        }
        Ok(locs)
    }

    /// Writes `buf` to `file` with one `write_all`, counts it, and empties `buf`.
    fn write_out(&self, file: &mut File, buf: &mut Vec<u8>) -> Result<(), Error> {
        #[cfg(test)]
        if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
            let injected = std::io::Error::other("injected write failure");
            return Err(Error::io("writing a segment", injected));
        }
        file.write_all(buf)
            .map_err(|e| Error::io("writing a segment", e))?;
        self.counters
            .bytes_written
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        buf.clear();
        Ok(())
    }

    /// Publishes written records to readers.
    fn publish(&self, batch: &[Pending], locs: &[RecordLoc], new_segments: Vec<Segment>) {
        let mut index = self.index.lock();
        index
            .segments
            .extend(new_segments.into_iter().map(Arc::new));
        for (p, loc) in batch.iter().zip(locs) {
            let record = index.record_base + index.records.len() as u32;
            index.records.push(*loc);
            let stream = index.streams.entry(Arc::clone(&p.stream)).or_default();
            stream
                .locs
                .extend((0..p.count).map(|slot| EventLoc { record, slot }));
            index.head = loc.first_position + u64::from(loc.count);
        }
        drop(index);
        self.published.notify_all();
    }

    /// Leads one flush: called with the lock held and `flushing` just set.
    fn lead_flush<'a>(
        &'a self,
        mut state: weft_sync::MutexGuard<'a, WriteState>,
    ) -> weft_sync::MutexGuard<'a, WriteState> {
        let batch = self.take_batch(&mut state);
        let mut writer = state.writer.take();
        drop(state);
        let first_new_segment = {
            let index = self.index.lock();
            index.segment_base + index.segments.len() as u32
        };
        let mut new_segments = Vec::new();
        let result = match writer.as_mut() {
            Some(w) => self.write_batch(w, &batch, &mut new_segments, first_new_segment),
            None => Err(Error::Failed("the writer is gone".into())),
        };
        match &result {
            Ok(locs) => self.publish(&batch, locs, new_segments),
            Err(e) => {
                tracing::error!(error = %e, "file log write failed; the log refuses further appends");
                // Segments created before the failure still hold records that were not
                // published; recovery on reopen will read them.
            }
        }
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state.lock();
        state.writer = writer;
        let last_ticket = batch.last().map_or(state.done, |p| p.ticket + 1);
        if let Err(e) = result {
            let first = batch.first().map_or(state.done, |p| p.ticket);
            state.failed.get_or_insert((e.to_string(), first));
            // Nothing queued after a failure will be written.
            state.queue.clear();
            state.done = state.next_ticket;
        } else {
            state.done = last_ticket;
        }
        state.flushing = false;
        self.flushed.notify_all();
        state
    }

    /// Reads the records at `locs` (deduplicated in order) and returns their events.
    fn read_records(
        &self,
        wanted: Vec<(Arc<Segment>, RecordLoc)>,
    ) -> Result<Vec<record::Record>, Error> {
        let mut out = Vec::with_capacity(wanted.len());
        let mut buf = Vec::new();
        for (segment, loc) in wanted {
            buf.resize(RECORD_HEADER + loc.len as usize, 0);
            read_exact_at(&segment.file, &mut buf, loc.offset)
                .map_err(|e| Error::io(format!("reading {}", segment.path.display()), e))?;
            let corrupt = |reason: String| Error::Corrupt {
                file: segment.path.clone(),
                offset: loc.offset,
                reason,
            };
            let mut h = [0u8; RECORD_HEADER];
            h.copy_from_slice(&buf[..RECORD_HEADER]);
            let header = record::parse_header(&h)
                .ok_or_else(|| corrupt("record header checksum mismatch on read".into()))?;
            let body = &buf[RECORD_HEADER..];
            if header.len != loc.len || crc32fast::hash(body) != header.body_crc {
                return Err(corrupt("record checksum mismatch on read".into()));
            }
            out.push(record::decode_body(body, None).map_err(corrupt)?);
        }
        Ok(out)
    }
}

impl EventStore for FileLog {
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, Error> {
        validate_append(stream, &events)?;
        let timestamp = system_time_to_nanos(self.config.clock.system_now());
        let mut frame = record::encode_body(stream, timestamp, &events);
        if frame.len() - RECORD_HEADER > MAX_BODY || events.len() > u32::MAX as usize {
            return Err(Error::InvalidInput(format!(
                "append to `{stream}` encodes to {} bytes; one append may be at most {MAX_BODY}",
                frame.len()
            )));
        }
        let count = events.len() as u64;
        drop(events);

        let mut state = self.state.lock();
        if let Some((message, _)) = &state.failed {
            return Err(Error::Failed(message.clone()));
        }
        let (stream_id, current) = match state.versions.get_key_value(stream) {
            Some((k, v)) => (Arc::clone(k), *v),
            None => (Arc::from(stream), 0),
        };
        expected.check(stream, current)?;
        let first_position = state.next_position;
        record::seal(&mut frame, first_position, current + 1);
        state.next_position += count;
        state
            .versions
            .insert(Arc::clone(&stream_id), current + count);
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push(Pending {
            ticket,
            frame,
            stream: stream_id,
            first_position,
            count: count as u32,
        });

        loop {
            if state.done > ticket {
                if let Some((message, first_failed)) = &state.failed {
                    if ticket >= *first_failed {
                        return Err(Error::Failed(message.clone()));
                    }
                }
                break;
            }
            if state.flushing {
                state = self.flushed.wait(state);
            } else {
                state.flushing = true;
                state = self.lead_flush(state);
            }
        }
        drop(state);
        self.counters.appends.fetch_add(1, Ordering::Relaxed);
        self.counters.events.fetch_add(count, Ordering::Relaxed);
        Ok(AppendResult::new(current, first_position, count))
    }

    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let skip = crate::event::events_before(from_version);
        let mut wanted: Vec<(Arc<Segment>, RecordLoc)> = Vec::new();
        let mut slots: Vec<(usize, u32)> = Vec::new();
        {
            let index = self.index.lock();
            let Some(stream) = index.streams.get(stream) else {
                return Ok(Vec::new());
            };
            let skip = skip.saturating_sub(stream.removed as usize);
            let mut last_record = None;
            for loc in stream.locs.iter().skip(skip).take(max) {
                if last_record != Some(loc.record) {
                    last_record = Some(loc.record);
                    let r = index.records[(loc.record - index.record_base) as usize];
                    wanted.push((Arc::clone(index.segment(r.segment)), r));
                }
                slots.push((wanted.len() - 1, loc.slot));
            }
        }
        let mut records = self.read_records(wanted)?;
        let mut out = Vec::with_capacity(slots.len());
        for (r, slot) in slots {
            let events = &mut records[r].events;
            out.push(std::mem::replace(
                &mut events[slot as usize],
                placeholder_event(),
            ));
        }
        Ok(out)
    }

    fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, Error> {
        let mut wanted = Vec::new();
        {
            let index = self.index.lock();
            let start = index
                .records
                .partition_point(|r| r.first_position + u64::from(r.count) <= from_position);
            let mut total = 0usize;
            for r in &index.records[start..] {
                if total >= max {
                    break;
                }
                let skip = from_position.saturating_sub(r.first_position) as usize;
                total += r.count as usize - skip;
                wanted.push((Arc::clone(index.segment(r.segment)), *r));
            }
        }
        let records = self.read_records(wanted)?;
        Ok(records
            .into_iter()
            .flat_map(|r| r.events)
            .filter(|e| e.position >= from_position)
            .take(max)
            .collect())
    }

    fn stream_version(&self, stream: &str) -> Result<u64, Error> {
        Ok(self
            .index
            .lock()
            .streams
            .get(stream)
            .map_or(0, |l| l.removed + l.locs.len() as u64))
    }

    fn head_position(&self) -> u64 {
        self.index.lock().head
    }

    fn wait_for_position(&self, position: u64, timeout: Duration) -> bool {
        let index = self.index.lock();
        let index =
            crate::util::wait_while(&self.published, index, timeout, |i| i.head <= position);
        index.head > position
    }
}

impl Drop for FileLog {
    fn drop(&mut self) {
        let mut state = self.state.lock();
        if let Some(w) = state.writer.as_mut() {
            if let Err(e) = w.sync_finished(&self.dir, &self.counters.fsyncs) {
                tracing::error!(error = %e, "syncing finished segments on close failed");
            }
            if w.dirty {
                if let Err(e) = w.file.sync_data() {
                    tracing::error!(error = %e, "syncing the log on close failed");
                }
            }
        }
    }
}

impl fmt::Debug for FileLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLog")
            .field("dir", &self.dir)
            .field("fsync", &self.config.fsync)
            .field("metrics", &self.metrics())
            .finish()
    }
}

/// A cheap stand-in left behind when an event is moved out of a decoded record.
fn placeholder_event() -> RecordedEvent {
    RecordedEvent {
        event_id: crate::EventId::from_u128(0),
        stream_id: Arc::from(""),
        version: 0,
        position: 0,
        timestamp: std::time::UNIX_EPOCH,
        event_type: Arc::from(""),
        schema_version: 0,
        payload: Arc::from(Vec::new()),
        metadata: crate::Metadata::default(),
    }
}

/// Creates segment `first_position` with its header; returns it and an append handle.
fn create_segment(dir: &Path, first_position: u64) -> Result<(Segment, File), Error> {
    let path = dir.join(segment_name(first_position));
    let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| io("creating", e))?;
    let mut header = [0u8; SEGMENT_HEADER as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..].copy_from_slice(&first_position.to_le_bytes());
    file.write_all(&header).map_err(|e| io("writing", e))?;
    let read = File::open(&path).map_err(|e| io("opening", e))?;
    Ok((
        Segment {
            path,
            file: read,
            first: first_position,
        },
        file,
    ))
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What recovery rebuilds: the index, each stream's version, the report.
type Recovered = (Index, HashMap<Arc<str>, u64>, Recovery);

/// Scans the segments of `dir`: rebuilds the index and stream versions, truncates a torn
/// tail, refuses corruption.
fn recover(dir: &Path) -> Result<Recovered, Error> {
    let mut names: Vec<(u64, PathBuf)> = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(first) = stem.parse::<u64>() {
                names.push((first, entry.path()));
            }
        }
    }
    names.sort();

    let mut index = Index::default();
    let mut versions: HashMap<Arc<str>, u64> = HashMap::new();
    let mut recovery = Recovery::default();
    let count = names.len();
    for (i, (first, path)) in names.into_iter().enumerate() {
        let last = i + 1 == count;
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let corrupt = |offset: u64, reason: String| Error::Corrupt {
            file: path.clone(),
            offset,
            reason,
        };
        if (bytes.len() as u64) < SEGMENT_HEADER {
            if last
                && (bytes.iter().all(|&b| b == 0)
                    || MAGIC.starts_with(&bytes[..bytes.len().min(8)]))
            {
                // A rollover that crashed before its header was written: drop the file.
                std::fs::remove_file(&path)
                    .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                recovery.truncated_bytes += bytes.len() as u64;
                recovery.truncated_file = Some(path);
                continue;
            }
            return Err(corrupt(0, "segment header is incomplete".into()));
        }
        if &bytes[..8] != MAGIC {
            return Err(corrupt(
                0,
                "segment does not start with the magic WEFTLOG1".into(),
            ));
        }
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&bytes[8..16]);
        if i == 0 {
            // A log truncated by `truncate_before` starts past position 0.
            index.head = first;
            recovery.first_position = first;
        }
        if u64::from_le_bytes(raw) != first || first != index.head {
            return Err(corrupt(
                8,
                format!(
                    "segment claims first position {} (name says {first}) but the log continues at {}",
                    u64::from_le_bytes(raw),
                    index.head
                ),
            ));
        }
        let segment_no = index.segments.len() as u32;
        let mut offset = SEGMENT_HEADER as usize;
        let mut torn_at = None;
        while offset < bytes.len() {
            let rest = &bytes[offset..];
            let torn_candidate = |reason: &str| -> Result<(), Error> {
                if last {
                    Ok(())
                } else {
                    Err(corrupt(
                        offset as u64,
                        format!("{reason} in a segment that is not the last"),
                    ))
                }
            };
            if rest.len() < RECORD_HEADER {
                torn_candidate("incomplete record header")?;
                torn_at = Some(offset);
                break;
            }
            let mut h = [0u8; RECORD_HEADER];
            h.copy_from_slice(&rest[..RECORD_HEADER]);
            let Some(header) = record::parse_header(&h) else {
                if last && rest.iter().all(|&b| b == 0) {
                    torn_at = Some(offset);
                    break;
                }
                return Err(corrupt(
                    offset as u64,
                    "record length checksum mismatch".into(),
                ));
            };
            let len = header.len as usize;
            if len > MAX_BODY {
                return Err(corrupt(
                    offset as u64,
                    format!("record length {len} is over the limit"),
                ));
            }
            if rest.len() < RECORD_HEADER + len {
                torn_candidate("record runs past the end of the file")?;
                torn_at = Some(offset);
                break;
            }
            let body = &rest[RECORD_HEADER..RECORD_HEADER + len];
            if crc32fast::hash(body) != header.body_crc {
                let ends_file = rest.len() == RECORD_HEADER + len;
                if last && (ends_file || rest[RECORD_HEADER..].iter().all(|&b| b == 0)) {
                    torn_at = Some(offset);
                    break;
                }
                return Err(corrupt(
                    offset as u64,
                    "record body checksum mismatch".into(),
                ));
            }
            let rec = record::decode_body(body, None).map_err(|r| corrupt(offset as u64, r))?;
            if rec.first_position != index.head {
                return Err(corrupt(
                    offset as u64,
                    format!(
                        "record starts at position {} but the log continues at {}",
                        rec.first_position, index.head
                    ),
                ));
            }
            let (stream, version) = match versions.get_key_value(&rec.stream) {
                Some((k, v)) => (Arc::clone(k), *v),
                // In a truncated log a stream may begin past version 1: its earlier
                // versions were in removed segments.
                None if recovery.first_position > 0 => {
                    let removed = rec.first_version.saturating_sub(1);
                    index
                        .streams
                        .entry(Arc::clone(&rec.stream))
                        .or_default()
                        .removed = removed;
                    (Arc::clone(&rec.stream), removed)
                }
                None => (Arc::clone(&rec.stream), 0),
            };
            if rec.first_version != version + 1 {
                return Err(corrupt(
                    offset as u64,
                    format!(
                        "record continues stream `{stream}` at version {} but it is at {version}",
                        rec.first_version
                    ),
                ));
            }
            let n = rec.events.len() as u32;
            let record_no = index.records.len() as u32;
            index.records.push(RecordLoc {
                first_position: rec.first_position,
                count: n,
                segment: segment_no,
                offset: offset as u64,
                len: len as u32,
            });
            index
                .streams
                .entry(Arc::clone(&stream))
                .or_default()
                .locs
                .extend((0..n).map(|slot| EventLoc {
                    record: record_no,
                    slot,
                }));
            versions.insert(stream, version + u64::from(n));
            index.head += u64::from(n);
            recovery.records += 1;
            recovery.events += u64::from(n);
            offset += RECORD_HEADER + len;
        }
        if let Some(at) = torn_at {
            let cut = bytes.len() - at;
            tracing::warn!(file = %path.display(), offset = at, bytes = cut, "truncating a torn tail");
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
            file.set_len(at as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(format!("truncating {}", path.display()), e))?;
            recovery.truncated_bytes += cut as u64;
            recovery.truncated_file = Some(path.clone());
        }
        let read =
            File::open(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        index.segments.push(Arc::new(Segment {
            path,
            file: read,
            first,
        }));
        recovery.segments += 1;
    }
    Ok((index, versions, recovery))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(payload: &str) -> Vec<NewEvent> {
        vec![NewEvent::new("E", 1, payload.as_bytes().to_vec())]
    }

    /// After a failed write the log refuses every append (the fsyncgate rule) until it is
    /// reopened; reopening recovers exactly the appends that were acknowledged.
    #[test]
    fn a_failed_write_fails_the_log_until_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::open(dir.path(), FileLogConfig::default()).unwrap();
        log.append("s", ExpectedVersion::Exact(0), one("kept"))
            .unwrap();
        log.fail_writes
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let err = log
            .append("s", ExpectedVersion::Exact(1), one("lost"))
            .unwrap_err();
        assert!(
            matches!(err, Error::Failed(ref m) if m.contains("injected")),
            "{err}"
        );
        log.fail_writes
            .store(false, std::sync::atomic::Ordering::SeqCst);
        // Still failed, even though the disk "recovered".
        assert!(matches!(
            log.append("s", ExpectedVersion::Any, one("refused")),
            Err(Error::Failed(_))
        ));
        assert!(matches!(log.sync(), Err(Error::Failed(_))));
        // Readers still see what was acknowledged.
        assert_eq!(log.read_all(0, 10).unwrap().len(), 1);
        drop(log);
        let log = FileLog::open(dir.path(), FileLogConfig::default()).unwrap();
        let all = log.read_all(0, 10).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(&*all[0].payload, b"kept");
        log.append("s", ExpectedVersion::Exact(1), one("after"))
            .unwrap();
    }
}
