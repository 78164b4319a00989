//! Keyed parallel MapReduce on one machine: map-side combining, hash partitioning, spill
//! to disk under a memory budget, a deterministic mode, progress and cancellation.
//!
//! MapReduce splits a computation over many records into a *map* that turns each record
//! into key/value pairs and a *reduce* that merges the values of each key. Use it for
//! keyed aggregation over more data than one thread handles quickly, or more than fits in
//! memory: word counts, per-user totals, inverted indexes, group-by over logs. rayon
//! parallelises iterators but has no keyed reduce; this crate adds the keyed shuffle,
//! combiners, partitioning and spilling of Hadoop/Spark's `reduceByKey`, on its own
//! worker threads.
//!
//! # Example
//!
//! ```
//! use weft_mapreduce::MapReduce;
//!
//! let lines = vec!["the cat", "the dog", "the end"];
//! let counts = MapReduce::new()
//!     .threads(2)
//!     .run(
//!         lines,
//!         |line: &str, out| {
//!             for word in line.split_whitespace() {
//!                 out.emit(word.to_owned(), 1u64); // map: one pair per word
//!             }
//!         },
//!         |count, n| *count += n, // combine: map-side and at reduce
//!     )?
//!     .into_map();
//! assert_eq!(counts["the"], 3);
//! assert_eq!(counts.len(), 4);
//! # Ok::<(), weft_mapreduce::JobError>(())
//! ```
//!
//! # Contents
//!
//! - [`MapReduce`]: the job builder (threads, partitions, split size, memory budget,
//!   deterministic mode, spill directory, cancellation, progress) and
//!   [`run`](MapReduce::run) (any iterator), [`run_splits`](MapReduce::run_splits) (a
//!   parallel source of splits, read by the workers) and
//!   [`run_with_partitioner`](MapReduce::run_with_partitioner).
//! - [`map_reduce`]: the one-call form for the common case.
//! - [`Emitter`]: what `map` emits pairs into; [`Output`]: the result and [`Counters`].
//! - [`Spill`]: how keys and values are written to spill files (implemented for the
//!   standard scalar, string, vector, option and tuple types).
//! - [`TextChunks`]: input from text files, split into line-aligned chunks.
//! - [`CancelToken`], [`Progress`], [`JobError`].

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod input;
mod job;
pub mod spill;

use std::hash::Hash;

use weft_sync::Arc;
use weft_sync::atomic::{AtomicBool, Ordering};

pub use input::TextChunks;
pub use job::{Emitter, FastMap, MapReduce, Output};
pub use spill::{Spill, SpillError};

/// Runs `map` over `input` and combines each key's values with `combine`, with the
/// default configuration, and returns the results in one map.
///
/// ```
/// let squares_by_parity = weft_mapreduce::map_reduce(
///     1..=10u64,
///     |n, out| out.emit(n % 2, n * n),
///     |sum, x| *sum += x,
/// )?;
/// assert_eq!(squares_by_parity[&0], 4 + 16 + 36 + 64 + 100);
/// # Ok::<(), weft_mapreduce::JobError>(())
/// ```
///
/// # Errors
///
/// As [`MapReduce::run`].
pub fn map_reduce<I, K, V, M, C>(input: I, map: M, combine: C) -> Result<FastMap<K, V>, JobError>
where
    I: IntoIterator,
    I::IntoIter: Send,
    I::Item: Send,
    K: Hash + Eq + Ord + Spill + Send,
    V: Spill + Send,
    M: Fn(I::Item, &mut Emitter<'_, K, V>) + Sync,
    C: Fn(&mut V, V) + Sync,
{
    Ok(MapReduce::new().run(input, map, combine)?.into_map())
}

/// Why a job failed. Spill files are removed in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A user function panicked; the job stopped.
    #[error("{stage} panicked: {message}")]
    Panicked {
        /// Where: `map of split 7`, `reduce of partition 2`.
        stage: String,
        /// The panic message.
        message: String,
    },
    /// The job's [`CancelToken`] was cancelled.
    #[error("the job was cancelled")]
    Cancelled,
    /// A spill file could not be written or read back (disk full, permissions,
    /// corruption); check the spill directory.
    #[error("spill failed: {0}")]
    Spill(#[from] SpillError),
}

/// Cancels a running job between splits; clone it into whoever decides.
///
/// ```
/// use weft_mapreduce::{CancelToken, JobError, MapReduce};
/// let token = CancelToken::new();
/// token.cancel();
/// let r = MapReduce::new()
///     .cancel_token(token)
///     .run(0..10u32, |n, out| out.emit(n, 1u32), |a, b| *a += b);
/// assert!(matches!(r, Err(JobError::Cancelled)));
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        CancelToken(Arc::new(AtomicBool::new(false)))
    }

    /// Asks every job holding a clone of this token to stop.
    pub fn cancel(&self) {
        // Relaxed: a stop flag; the job's result is read after its threads are joined.
        self.0.store(true, Ordering::Relaxed);
    }

    /// `true` once [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A progress snapshot, delivered after every split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Splits mapped so far.
    pub splits_done: u64,
    /// Input records mapped so far.
    pub records: u64,
    /// Pairs emitted by `map` so far (before combining).
    pub pairs_emitted: u64,
    /// Bytes written to spill files so far.
    pub spilled_bytes: u64,
    /// Spill files written so far.
    pub spill_runs: u64,
}

/// Hadoop-style counters of a finished job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Splits mapped.
    pub splits: u64,
    /// Records read from the input.
    pub map_input_records: u64,
    /// Pairs emitted by `map`.
    pub map_output_records: u64,
    /// Pairs written to spill files.
    pub spilled_records: u64,
    /// Bytes written to spill files.
    pub spilled_bytes: u64,
    /// Spill files written.
    pub spill_runs: u64,
    /// Distinct keys in the result.
    pub reduce_output_records: u64,
}
