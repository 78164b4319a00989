//! Backfill: recompute the windows of a time range from the durable log, as a
//! weft-mapreduce job, with progress and cancellation.
//!
//! The map reads logged batches (each record one batch) and, for every event, adds it
//! to each of its windows that starts in the range — pre-aggregated per batch, so one
//! pair per (series, window) per batch leaves the mapper; the key is the encoded
//! series key with the window's start and end. The combine is
//! [`WindowAggregate::merge`], which is associative and commutative for every
//! aggregate (sums up to floating-point rounding), so the job runs in its fast mode.
//!
//! What it equals: the windows the streaming path finalised for the same events, as
//! long as the streaming path dropped none of them as late — a backfill counts every
//! logged event, which is the point of a recompute after a late-data, retention or
//! downsampling change. Tumbling and hopping windows only: session windows depend on
//! the gaps between a series' events, not on one event alone.

use std::collections::HashMap;
use std::sync::Arc;

use weft_eventsourcing::{EventStore, FileLog, RecordedEvent};
use weft_mapreduce::{JobError, MapReduce, Spill, SpillError};

pub use weft_mapreduce::CancelToken;
use weft_sync::atomic::{AtomicU64, Ordering};

use crate::agg::WindowAggregate;
use crate::durable::{EVENT_TYPE, STREAM, decode};
use crate::engine::Engine;
use crate::error::Error;
use crate::event::{SeriesKey, hash_one, key_of};
use crate::window::WindowSpec;

/// Records read from the log per step.
const READ_CHUNK: usize = 512;

/// A window aggregate as a MapReduce value (spilled with postcard, length-prefixed).
struct Cell(WindowAggregate);

impl Spill for Cell {
    fn encode(&self, out: &mut Vec<u8>) {
        // A WindowAggregate always serialises (plain numbers and sketch vectors); an
        // encoding failure would be a bug, spilled as an empty value that fails decode.
        let bytes = postcard::to_stdvec(&self.0).unwrap_or_default();
        bytes.encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let bytes = Vec::<u8>::decode(input)?;
        postcard::from_bytes(&bytes)
            .map(Cell)
            .map_err(|_| SpillError::Corrupt {
                what: "a window aggregate that does not decode",
            })
    }

    fn approx_size(&self) -> usize {
        std::mem::size_of::<Self>() + 256
    }
}

/// One recomputed window.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackfilledWindow {
    /// The series.
    pub key: Arc<SeriesKey>,
    /// Window start (ms, inclusive).
    pub start: i64,
    /// Window end (ms, exclusive).
    pub end: i64,
    /// The recomputed aggregate.
    pub agg: WindowAggregate,
}

/// The result of a backfill: every window starting in the range, sorted by series key
/// and start.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Backfilled {
    /// The windows.
    pub windows: Vec<BackfilledWindow>,
    /// Log records (batches) read: the whole log, or what compaction kept of it.
    pub batches: u64,
}

/// How far a backfill is.
///
/// ```
/// let p = weft_analytics::BackfillProgress::default();
/// assert_eq!((p.batches_done, p.batches_total), (0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackfillProgress {
    /// Log records mapped so far.
    pub batches_done: u64,
    /// Log records to map (the log head when the backfill started).
    pub batches_total: u64,
}

/// A running backfill: its progress, a way to cancel it, and its result.
#[derive(Debug)]
pub struct BackfillHandle {
    done: Arc<AtomicU64>,
    total: u64,
    cancel: CancelToken,
    task: tokio::task::JoinHandle<Result<Backfilled, Error>>,
}

impl BackfillHandle {
    /// The progress so far.
    pub fn progress(&self) -> BackfillProgress {
        BackfillProgress {
            // Relaxed: a progress figure.
            batches_done: self.done.load(Ordering::Relaxed).min(self.total),
            batches_total: self.total,
        }
    }

    /// Whether the job has ended (its result is ready for [`wait`](Self::wait)).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the job to stop (between splits); [`wait`](Self::wait) then answers
    /// [`Error::Cancelled`].
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Waits for the result.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`], or [`Error::Log`] if the log could not be read or decoded
    /// or the job failed.
    pub async fn wait(self) -> Result<Backfilled, Error> {
        self.task
            .await
            .map_err(|e| Error::Log(format!("the backfill task: {e}")))?
    }
}

/// Reads the log's batch records below `head`, in order.
struct Records {
    log: Arc<FileLog>,
    next: u64,
    head: u64,
    buf: std::vec::IntoIter<RecordedEvent>,
    error: Arc<weft_sync::Mutex<Option<Error>>>,
}

impl Iterator for Records {
    type Item = RecordedEvent;
    fn next(&mut self) -> Option<RecordedEvent> {
        loop {
            if let Some(r) = self.buf.next() {
                return Some(r);
            }
            if self.next >= self.head {
                return None;
            }
            let want = READ_CHUNK.min((self.head - self.next) as usize);
            match self.log.read_all(self.next, want) {
                Ok(v) if v.is_empty() => return None,
                Ok(v) => {
                    self.next = v.last().map_or(self.head, |r| r.position + 1);
                    self.buf = v.into_iter();
                }
                Err(e) => {
                    *self.error.lock() = Some(Error::Log(format!("reading the log: {e}")));
                    return None;
                }
            }
        }
    }
}

/// A backfill's settings (see [`Engine::backfill`]).
#[derive(Debug, Clone)]
pub struct BackfillRange {
    from: i64,
    to: i64,
    threads: usize,
    cancel: CancelToken,
}

impl BackfillRange {
    /// Windows starting in `[from_ms, to_ms)`, on 2 threads.
    pub fn new(from_ms: i64, to_ms: i64) -> Self {
        BackfillRange {
            from: from_ms,
            to: to_ms,
            threads: 2,
            cancel: CancelToken::new(),
        }
    }

    /// Cancels the job through `token` as well as through
    /// [`BackfillHandle::cancel`] (one token can stop several jobs).
    pub fn cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// MapReduce worker threads (at least 1).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }
}

impl Engine {
    /// Recomputes every window starting in the range from the durable log, as a
    /// weft-mapreduce job on its own threads; returns a handle with progress,
    /// cancellation and the result. The engine's state is not touched (compare the
    /// result with queries, or use it to rebuild a downstream store).
    ///
    /// Reads the log as it is when called; batches acknowledged later are not in it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use weft_analytics::{BackfillRange, Batch, Durability, Engine, Event};
    /// let dir = tempfile::tempdir()?;
    /// let engine = Engine::builder().durable(Durability::new(dir.path())).build()?;
    /// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    /// engine.ingest(Batch::new(vec![Event::new("m", now, 1.0), Event::new("m", now, 2.0)])).await?;
    /// let job = engine.backfill(BackfillRange::new(now - 3_600_000, now + 60_000))?;
    /// let result = job.wait().await?;
    /// assert_eq!(result.windows.len(), 1);
    /// assert_eq!(result.windows[0].agg.count(), 2);
    /// assert_eq!(result.windows[0].agg.sum(), 3.0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an in-memory engine, session windows or an empty range.
    pub fn backfill(&self, range: BackfillRange) -> Result<BackfillHandle, Error> {
        let Some(d) = &self.inner.durable else {
            return Err(Error::Config(
                "backfill reads the durable log; build the engine with EngineBuilder::durable"
                    .into(),
            ));
        };
        let spec: WindowSpec = self.inner.cfg.spec;
        if spec.size_ms().is_none() {
            return Err(Error::Config(
                "backfill recomputes tumbling and hopping windows; session windows depend on event gaps".into(),
            ));
        }
        if range.from >= range.to {
            return Err(Error::Config(format!(
                "the backfill range [{}, {}) is empty",
                range.from, range.to
            )));
        }
        let log = Arc::clone(&d.log);
        let head = log.head_position();
        // A compacted log starts past 0.
        let first = log
            .read_all(0, 1)
            .map_err(|e| Error::Log(format!("reading the log: {e}")))?
            .first()
            .map_or(head, |r| r.position);
        let done = Arc::new(AtomicU64::new(0));
        let cancel = range.cancel.clone();
        let cfg = Arc::clone(&self.inner.cfg);
        let (from, to) = (range.from, range.to);
        let progress = Arc::clone(&done);
        let job = MapReduce::new()
            .threads(range.threads)
            .partitions(4 * range.threads)
            .split_size(16)
            .cancel_token(cancel.clone())
            .on_progress(move |p| {
                // Relaxed: a progress figure.
                // Workers report concurrently: keep the largest figure.
                progress.fetch_max(p.records, Ordering::Relaxed);
            });
        let task = tokio::task::spawn_blocking(move || {
            let read_error = Arc::new(weft_sync::Mutex::new(None));
            let records = Records {
                log,
                next: first,
                head,
                buf: Vec::new().into_iter(),
                error: Arc::clone(&read_error),
            };
            let decode_error = weft_sync::Mutex::new(None::<Error>);
            let skip = cfg.top_k_dim.as_deref();
            let out = job.run(
                records,
                |r: RecordedEvent, out| {
                    if &*r.event_type != EVENT_TYPE || &*r.stream_id != STREAM {
                        return;
                    }
                    let batch = match decode(&r.payload) {
                        Ok(b) => b,
                        Err(e) => {
                            *decode_error.lock() = Some(e);
                            return;
                        }
                    };
                    let mut local: HashMap<(Vec<u8>, i64, i64), WindowAggregate> = HashMap::new();
                    let mut keys: HashMap<Arc<SeriesKey>, Vec<u8>> = HashMap::new();
                    for e in batch.events() {
                        let windows: Vec<(i64, i64)> = spec
                            .windows_of(e.ts)
                            .into_iter()
                            .filter(|&(s, _)| s >= from && s < to)
                            .collect();
                        if windows.is_empty() {
                            continue;
                        }
                        let key = key_of(batch.tenant_name(), e, skip);
                        let enc = keys
                            .entry(key)
                            .or_insert_with_key(|k| postcard::to_stdvec(&**k).unwrap_or_default())
                            .clone();
                        let top = skip.and_then(|d| e.dim_value(d)).map(|v| (v, hash_one(v)));
                        for (s, end) in windows {
                            local
                                .entry((enc.clone(), s, end))
                                .or_insert_with(|| WindowAggregate::new(&cfg.agg))
                                .add(e.value, e.entity, top);
                        }
                    }
                    for (k, agg) in local {
                        out.emit(k, Cell(agg));
                    }
                },
                |a: &mut Cell, b: Cell| a.0.merge(&b.0),
            );
            let out = match out {
                Ok(o) => o,
                Err(JobError::Cancelled) => return Err(Error::Cancelled),
                Err(e) => return Err(Error::Log(format!("the backfill job failed: {e}"))),
            };
            if let Some(e) = read_error.lock().take() {
                return Err(e);
            }
            if let Some(e) = decode_error.lock().take() {
                return Err(e);
            }
            let mut windows = Vec::with_capacity(out.len());
            let mut keys: HashMap<Vec<u8>, Arc<SeriesKey>> = HashMap::new();
            for ((k, start, end), Cell(agg)) in out.into_sorted_vec() {
                let key = match keys.get(&k) {
                    Some(key) => Arc::clone(key),
                    None => {
                        let key: SeriesKey = postcard::from_bytes(&k)
                            .map_err(|e| Error::Log(format!("decoding a series key: {e}")))?;
                        let key = Arc::new(key);
                        keys.insert(k, Arc::clone(&key));
                        key
                    }
                };
                windows.push(BackfilledWindow {
                    key,
                    start,
                    end,
                    agg,
                });
            }
            windows.sort_by(|a, b| (&a.key, a.start).cmp(&(&b.key, b.start)));
            Ok(Backfilled {
                windows,
                batches: head - first,
            })
        });
        Ok(BackfillHandle {
            done,
            total: head - first,
            cancel,
            task,
        })
    }
}
