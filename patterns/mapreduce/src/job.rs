//! The job: configuration, the map phase on worker threads, spilling, and the reduce.
//!
//! # Design
//!
//! **Map.** The input iterator sits behind a lock; each worker takes the next *split* (a
//! fixed number of records, numbered in input order) and maps it, feeding every emitted
//! pair straight into per-partition hash maps where the combiner merges it with the
//! value already there (map-side combining: a word count over a million lines with a few
//! thousand distinct words moves a few thousand pairs, not a million). A pair's partition
//! is its key's hash modulo the partition count, or a custom partitioner's choice.
//!
//! **Memory budget.** Every new key adds its approximate size ([`Spill::approx_size`]) to
//! the worker's tally; past the budget (split among the workers) the worker sorts each of
//! its partitions by key and writes it to a run file, then starts afresh. At reduce time
//! the runs of a partition are merged (a k-way merge of sorted files) together with what
//! stayed in memory. Combining is associative, so the result equals the in-memory one.
//!
//! **Deterministic mode.** Floating-point addition is not associative, so a sum depends on
//! the order of its terms, which threads scramble. In deterministic mode each split keeps
//! its own partition maps (or runs), tagged with the split number, and the reduce folds
//! them in split order: each key's values are combined in exactly the order the input
//! gave them, split by split, whatever the thread or partition count (the proptest
//! `deterministic_floats_are_bit_identical` checks it).
//!
//! **Reduce.** Partitions are independent; the workers take them one by one and merge
//! their sources. Panics in user functions are caught and reported with the split (or
//! partition) that raised them; a cancellation token is checked between splits; run
//! files are deleted whatever the outcome (each `Run` deletes its file when dropped).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use weft_sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use weft_sync::{Arc, Mutex};

use crate::spill::{self, Run, RunReader, Spill};
use crate::{CancelToken, Counters, JobError, Progress};

/// The hash maps of a job: std's `HashMap` with foldhash, several times faster than
/// SipHash on short keys and still seeded per map (what hashbrown uses by default).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The partitioning hash: fixed, so a key's partition does not change between runs.
fn partition_hash<K: Hash>(key: &K) -> u64 {
    foldhash::fast::FixedState::with_seed(0x77ef_7a0e).hash_one(key)
}

type Partitioner<K> = Arc<dyn Fn(&K, usize) -> usize + Send + Sync>;
type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A MapReduce job's configuration; [`run`](MapReduce::run) executes it.
///
/// ```
/// use weft_mapreduce::MapReduce;
///
/// let lines = ["a b a", "b a c"];
/// let counts = MapReduce::new()
///     .threads(2)
///     .run(
///         lines,
///         |line: &str, out| {
///             for word in line.split_whitespace() {
///                 out.emit(word.to_owned(), 1u64);
///             }
///         },
///         |total, n| *total += n,
///     )?
///     .into_map();
/// assert_eq!(counts["a"], 3);
/// assert_eq!(counts["c"], 1);
/// # Ok::<(), weft_mapreduce::JobError>(())
/// ```
#[derive(Clone)]
pub struct MapReduce {
    threads: usize,
    partitions: usize,
    split_size: usize,
    memory_budget: Option<usize>,
    deterministic: bool,
    spill_dir: PathBuf,
    cancel: Option<CancelToken>,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for MapReduce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapReduce")
            .field("threads", &self.threads)
            .field("partitions", &self.partitions)
            .field("split_size", &self.split_size)
            .field("memory_budget", &self.memory_budget)
            .field("deterministic", &self.deterministic)
            .field("spill_dir", &self.spill_dir)
            .finish_non_exhaustive()
    }
}

impl Default for MapReduce {
    fn default() -> Self {
        Self::new()
    }
}

impl MapReduce {
    /// A job with one worker per available CPU, four partitions per worker, splits of
    /// 1024 records, no memory budget (everything in memory), fast (not deterministic)
    /// mode, and spill files in the system temp directory.
    pub fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        MapReduce {
            threads: cpus,
            partitions: 4 * cpus,
            split_size: 1024,
            memory_budget: None,
            deterministic: false,
            spill_dir: spill::spill_dir_default(),
            cancel: None,
            progress: None,
        }
    }

    /// Worker threads (at least 1).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// Partitions of the key space (at least 1): the unit of reduce parallelism.
    pub fn partitions(mut self, n: usize) -> Self {
        self.partitions = n.max(1);
        self
    }

    /// Records per split (at least 1): the unit of map parallelism, progress and, in
    /// deterministic mode, ordering. Keep it fixed to keep deterministic results fixed.
    pub fn split_size(mut self, n: usize) -> Self {
        self.split_size = n.max(1);
        self
    }

    /// Bytes of map output (approximate, see [`Spill::approx_size`]) held in memory
    /// before spilling sorted runs to disk. The result does not depend on it.
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = Some(bytes);
        self
    }

    /// Deterministic mode: results, floating-point ones included, are bit-identical
    /// across runs, thread counts, partition counts and memory budgets (for a fixed split
    /// size). Costs memory: each split's partial results are kept apart until the reduce.
    pub fn deterministic(mut self, on: bool) -> Self {
        self.deterministic = on;
        self
    }

    /// Where spill files go (default: the system temp directory).
    pub fn spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spill_dir = dir.into();
        self
    }

    /// A token whose [`cancel`](CancelToken::cancel) stops the job between splits with
    /// [`JobError::Cancelled`].
    pub fn cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Called after every split (from the worker that finished it) with a progress
    /// snapshot; keep it cheap.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Runs the job: maps every record of `input` with `map` (which emits key/value
    /// pairs), combines the values of each key with `combine` (map-side and at reduce),
    /// and returns the result per key.
    ///
    /// `combine` must be associative, and in the default (fast) mode also commutative:
    /// values arrive in whatever order the threads produce them. Deterministic mode
    /// combines in input order, so associativity suffices there (string concatenation,
    /// say). A custom partitioner must be a pure function of the key.
    ///
    /// # Errors
    ///
    /// [`JobError::Panicked`] if `map` or `combine` panicked (with the split or partition
    /// and the message), [`JobError::Cancelled`], or [`JobError::Spill`] if a spill file
    /// could not be written or read. Spill files are removed in every case.
    pub fn run<I, K, V, M, C>(&self, input: I, map: M, combine: C) -> Result<Output<K, V>, JobError>
    where
        I: IntoIterator,
        I::IntoIter: Send,
        I::Item: Send,
        K: Hash + Eq + Ord + Spill + Send,
        V: Spill + Send,
        M: Fn(I::Item, &mut Emitter<'_, K, V>) + Sync,
        C: Fn(&mut V, V) + Sync,
    {
        self.run_partitioned(input, map, combine, None)
    }

    /// Runs the job over a *parallel source of splits*: each item of `splits` (a file
    /// path, a byte range, a shard id) is one split, which the worker that takes it
    /// expands into records with `read` (so reading happens in parallel, unlike
    /// [`run`](Self::run)'s single input iterator), mapping each record with `map`.
    ///
    /// ```
    /// use weft_mapreduce::MapReduce;
    /// // Four "shards", each generating its records on the worker that reads it.
    /// let totals = MapReduce::new()
    ///     .threads(2)
    ///     .run_splits(
    ///         0u64..4,
    ///         |shard| (0..100u64).map(move |i| shard * 100 + i),
    ///         |n, out| out.emit(n % 3, n),
    ///         |a, b| *a += b,
    ///     )?
    ///     .into_map();
    /// assert_eq!(totals.values().sum::<u64>(), (0..400).sum::<u64>());
    /// # Ok::<(), weft_mapreduce::JobError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run); a panic in `read` is reported like one in `map`.
    pub fn run_splits<S, R, T, K, V, M, C>(
        &self,
        splits: impl IntoIterator<Item = S, IntoIter: Send>,
        read: impl Fn(S) -> R + Sync,
        map: M,
        combine: C,
    ) -> Result<Output<K, V>, JobError>
    where
        S: Send,
        R: IntoIterator<Item = T>,
        K: Hash + Eq + Ord + Spill + Send,
        V: Spill + Send,
        M: Fn(T, &mut Emitter<'_, K, V>) + Sync,
        C: Fn(&mut V, V) + Sync,
    {
        let job = self.clone().split_size(1);
        job.run(
            splits,
            |split, out| {
                for record in read(split) {
                    map(record, out);
                }
            },
            combine,
        )
    }

    /// Like [`run`](Self::run), with `partitioner(key, partitions)` choosing each key's
    /// partition (it must return a value below `partitions`; others are wrapped).
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub fn run_with_partitioner<I, K, V, M, C>(
        &self,
        input: I,
        map: M,
        combine: C,
        partitioner: impl Fn(&K, usize) -> usize + Send + Sync + 'static,
    ) -> Result<Output<K, V>, JobError>
    where
        I: IntoIterator,
        I::IntoIter: Send,
        I::Item: Send,
        K: Hash + Eq + Ord + Spill + Send,
        V: Spill + Send,
        M: Fn(I::Item, &mut Emitter<'_, K, V>) + Sync,
        C: Fn(&mut V, V) + Sync,
    {
        self.run_partitioned(input, map, combine, Some(Arc::new(partitioner)))
    }

    fn run_partitioned<I, K, V, M, C>(
        &self,
        input: I,
        map: M,
        combine: C,
        partitioner: Option<Partitioner<K>>,
    ) -> Result<Output<K, V>, JobError>
    where
        I: IntoIterator,
        I::IntoIter: Send,
        I::Item: Send,
        K: Hash + Eq + Ord + Spill + Send,
        V: Spill + Send,
        M: Fn(I::Item, &mut Emitter<'_, K, V>) + Sync,
        C: Fn(&mut V, V) + Sync,
    {
        let shared = Shared {
            input: Mutex::new((input.into_iter(), 0u64, false)),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            sources: (0..self.partitions)
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
            kept_bytes: AtomicUsize::new(0),
            stats: Stats::default(),
        };
        let partitions = self.partitions;
        let part_of = |k: &K| match &partitioner {
            Some(p) => p(k, partitions) % partitions,
            None => (partition_hash(k) % partitions as u64) as usize,
        };
        let worker_budget = self.memory_budget.map(|b| (b / self.threads).max(1));

        // ---- map ----
        std::thread::scope(|s| {
            for _ in 0..self.threads {
                s.spawn(|| {
                    self.map_worker(&shared, &map, &combine, &part_of, worker_budget);
                });
            }
        });
        if let Some(e) = shared.error.lock().take() {
            return Err(e);
        }

        // ---- reduce ----
        let next = AtomicUsize::new(0);
        let results: Vec<Mutex<Option<FastMap<K, V>>>> =
            (0..partitions).map(|_| Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..self.threads.min(partitions) {
                s.spawn(|| {
                    loop {
                        let p = next.fetch_add(1, Ordering::Relaxed);
                        if p >= partitions || shared.failed.load(Ordering::Relaxed) {
                            return;
                        }
                        let sources = std::mem::take(&mut *shared.sources[p].lock());
                        match catch_unwind(AssertUnwindSafe(|| {
                            reduce_partition(sources, &combine, &shared.stats, self.deterministic)
                        })) {
                            Ok(Ok(map)) => *results[p].lock() = Some(map),
                            Ok(Err(e)) => shared.fail(e),
                            Err(panic) => shared.fail(JobError::Panicked {
                                stage: format!("reduce of partition {p}"),
                                message: weft_sync::thread::panic_message(panic.as_ref()),
                            }),
                        }
                    }
                });
            }
        });
        if let Some(e) = shared.error.lock().take() {
            return Err(e);
        }
        let partitions: Vec<FastMap<K, V>> = results
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_default())
            .collect();
        let counters = shared.stats.counters();
        Ok(Output {
            partitions,
            counters,
        })
    }

    /// One map worker: takes splits until the input runs dry.
    fn map_worker<T, K, V, M, C>(
        &self,
        shared: &Shared<impl Iterator<Item = T>, K, V>,
        map: &M,
        combine: &C,
        part_of: &(dyn Fn(&K) -> usize + Sync),
        budget: Option<usize>,
    ) where
        K: Hash + Eq + Ord + Spill + Send,
        V: Spill + Send,
        M: Fn(T, &mut Emitter<'_, K, V>) + Sync,
        C: Fn(&mut V, V) + Sync,
    {
        // One map per worker (or per split, in deterministic mode): each pair is hashed
        // once on emit; partitioning happens once per distinct key, at hand-over.
        let mut out: FastMap<K, V> = FastMap::default();
        let mut bytes = 0usize;
        let mut batch = Vec::with_capacity(self.split_size);
        loop {
            if shared.failed.load(Ordering::Relaxed) {
                return;
            }
            if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
                shared.fail(JobError::Cancelled);
                return;
            }
            // Take the next split.
            let split = {
                let mut input = shared.input.lock();
                if input.2 {
                    None
                } else {
                    batch.clear();
                    batch.extend(input.0.by_ref().take(self.split_size));
                    if batch.len() < self.split_size {
                        input.2 = true; // exhausted
                    }
                    let id = input.1;
                    input.1 += 1;
                    (!batch.is_empty()).then_some(id)
                }
            };
            let Some(split) = split else { break };
            let records = batch.len() as u64;
            let mut emitter = Emitter {
                map: &mut out,
                combine,
                bytes: &mut bytes,
                emitted: 0,
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                for record in batch.drain(..) {
                    map(record, &mut emitter);
                }
            }));
            let emitted = emitter.emitted;
            if let Err(panic) = outcome {
                shared.fail(JobError::Panicked {
                    stage: format!("map of split {split}"),
                    message: weft_sync::thread::panic_message(panic.as_ref()),
                });
                return;
            }
            shared.stats.records.fetch_add(records, Ordering::Relaxed);
            shared.stats.emitted.fetch_add(emitted, Ordering::Relaxed);
            shared.stats.splits.fetch_add(1, Ordering::Relaxed);
            if self.deterministic {
                // Each split's results stay apart, tagged with the split number.
                // Reserve the split's bytes against the whole budget; a split that does not
                // fit is spilled and its reservation returned.
                let over = self.memory_budget.is_some_and(|total| {
                    shared.kept_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes > total
                });
                if let Err(e) = self.hand_over(shared, &mut out, part_of, split, over) {
                    shared.fail(e);
                    return;
                }
                if over {
                    shared.kept_bytes.fetch_sub(bytes, Ordering::Relaxed);
                }
                bytes = 0;
            } else if budget.is_some_and(|b| bytes > b) {
                if let Err(e) = self.hand_over(shared, &mut out, part_of, split, true) {
                    shared.fail(e);
                    return;
                }
                bytes = 0;
            }
            if let Some(progress) = &self.progress {
                progress(&shared.stats.progress());
            }
        }
        if !self.deterministic {
            // What stayed in memory goes to the reduce as one source per partition.
            if let Err(e) = self.hand_over(shared, &mut out, part_of, u64::MAX, false) {
                shared.fail(e);
            }
        }
    }

    /// Moves the worker's map output to the reduce, split by partition, in memory or as
    /// spilled sorted runs.
    fn hand_over<It, K, V>(
        &self,
        shared: &Shared<It, K, V>,
        map: &mut FastMap<K, V>,
        part_of: &(dyn Fn(&K) -> usize + Sync),
        order: u64,
        spill: bool,
    ) -> Result<(), JobError>
    where
        K: Hash + Eq + Ord + Spill,
        V: Spill,
    {
        if map.is_empty() {
            return Ok(());
        }
        let taken = std::mem::take(map);
        let n = self.partitions;
        if spill {
            let mut parts: Vec<Vec<(K, V)>> = (0..n).map(|_| Vec::new()).collect();
            for (k, v) in taken {
                parts[part_of(&k)].push((k, v));
            }
            for (p, mut pairs) in parts.into_iter().enumerate() {
                if pairs.is_empty() {
                    continue;
                }
                pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                let run = spill::write_run(&self.spill_dir, pairs)?;
                shared
                    .stats
                    .spilled_records
                    .fetch_add(run.records(), Ordering::Relaxed);
                shared
                    .stats
                    .spilled_bytes
                    .fetch_add(run.bytes(), Ordering::Relaxed);
                shared.stats.spill_runs.fetch_add(1, Ordering::Relaxed);
                shared.sources[p].lock().push((order, Source::Run(run)));
            }
        } else if n == 1 {
            shared.sources[0]
                .lock()
                .push((order, Source::Memory(taken)));
        } else {
            let share = taken.len() / n + 1;
            let mut parts: Vec<FastMap<K, V>> = (0..n)
                .map(|_| FastMap::with_capacity_and_hasher(share, Default::default()))
                .collect();
            for (k, v) in taken {
                parts[part_of(&k)].insert(k, v);
            }
            for (p, part) in parts.into_iter().enumerate() {
                if !part.is_empty() {
                    shared.sources[p].lock().push((order, Source::Memory(part)));
                }
            }
        }
        Ok(())
    }
}

/// Where a partition's map output waits for the reduce.
enum Source<K, V> {
    Memory(FastMap<K, V>),
    Run(Run),
}

/// A partition's sources, each tagged with its order.
type Sources<K, V> = Vec<(u64, Source<K, V>)>;

/// State shared by the workers of one job.
struct Shared<It, K, V> {
    /// The input, the next split number, and whether the input is exhausted.
    input: Mutex<(It, u64, bool)>,
    /// Set on the first error: everyone stops.
    failed: AtomicBool,
    /// The first error.
    error: Mutex<Option<JobError>>,
    /// Per partition: sources tagged with their order (split number in deterministic
    /// mode).
    sources: Vec<Mutex<Sources<K, V>>>,
    /// Bytes of split results kept in memory (deterministic mode).
    kept_bytes: AtomicUsize,
    stats: Stats,
}

impl<It, K, V> Shared<It, K, V> {
    /// Records the first error and stops the job.
    fn fail(&self, e: JobError) {
        let mut slot = self.error.lock();
        if slot.is_none() {
            *slot = Some(e);
        }
        // Relaxed: a stop hint; the error itself is read after the threads are joined.
        self.failed.store(true, Ordering::Relaxed);
    }
}

/// Live counters.
#[derive(Debug, Default)]
struct Stats {
    splits: AtomicU64,
    records: AtomicU64,
    emitted: AtomicU64,
    spilled_records: AtomicU64,
    spilled_bytes: AtomicU64,
    spill_runs: AtomicU64,
    groups: AtomicU64,
}

impl Stats {
    fn progress(&self) -> Progress {
        Progress {
            splits_done: self.splits.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            pairs_emitted: self.emitted.load(Ordering::Relaxed),
            spilled_bytes: self.spilled_bytes.load(Ordering::Relaxed),
            spill_runs: self.spill_runs.load(Ordering::Relaxed),
        }
    }

    fn counters(&self) -> Counters {
        Counters {
            splits: self.splits.load(Ordering::Relaxed),
            map_input_records: self.records.load(Ordering::Relaxed),
            map_output_records: self.emitted.load(Ordering::Relaxed),
            spilled_records: self.spilled_records.load(Ordering::Relaxed),
            spilled_bytes: self.spilled_bytes.load(Ordering::Relaxed),
            spill_runs: self.spill_runs.load(Ordering::Relaxed),
            reduce_output_records: self.groups.load(Ordering::Relaxed),
        }
    }
}

/// Merges one partition's sources. Deterministic mode folds them strictly in split
/// order; fast mode first merges all spilled runs into one sorted stream (a k-way merge),
/// combining each key's run values before a single hash-map update.
fn reduce_partition<K, V, C>(
    mut sources: Vec<(u64, Source<K, V>)>,
    combine: &C,
    stats: &Stats,
    deterministic: bool,
) -> Result<FastMap<K, V>, JobError>
where
    K: Hash + Eq + Ord + Spill,
    V: Spill,
    C: Fn(&mut V, V),
{
    // Stable: equal orders (fast mode's end-of-map sources) keep arrival order.
    sources.sort_by_key(|(order, _)| *order);
    let mut result: Option<FastMap<K, V>> = None;
    let mut runs = Vec::new();
    for (_, source) in sources {
        match source {
            Source::Memory(map) => match result.as_mut() {
                None => result = Some(map),
                Some(acc) => merge_into(acc, map, combine),
            },
            Source::Run(run) if !deterministic => runs.push(run),
            Source::Run(run) => {
                let acc = result.get_or_insert_with(FastMap::default);
                for pair in RunReader::<K, V>::open(&run)? {
                    let (k, v) = pair?;
                    combine_into(acc, k, v, combine);
                }
                // `run` drops here: its file is deleted.
            }
        }
    }
    if !runs.is_empty() {
        let acc = result.get_or_insert_with(FastMap::default);
        let readers = runs
            .iter()
            .map(RunReader::<K, V>::open)
            .collect::<Result<Vec<_>, _>>()?;
        let mut pending: Option<(K, V)> = None;
        for pair in spill::merge(readers) {
            let (k, v) = pair?;
            match pending.as_mut() {
                Some((pk, pv)) if *pk == k => combine(pv, v),
                _ => {
                    if let Some((pk, pv)) = pending.replace((k, v)) {
                        combine_into(acc, pk, pv, combine);
                    }
                }
            }
        }
        if let Some((pk, pv)) = pending {
            combine_into(acc, pk, pv, combine);
        }
        // `runs` drop here: their files are deleted.
    }
    let result = result.unwrap_or_default();
    stats
        .groups
        .fetch_add(result.len() as u64, Ordering::Relaxed);
    Ok(result)
}

fn merge_into<K: Hash + Eq, V, C: Fn(&mut V, V)>(
    acc: &mut FastMap<K, V>,
    map: FastMap<K, V>,
    combine: &C,
) {
    acc.reserve(map.len().saturating_sub(acc.capacity() - acc.len()));
    for (k, v) in map {
        combine_into(acc, k, v, combine);
    }
}

#[inline]
fn combine_into<K: Hash + Eq, V, C: Fn(&mut V, V)>(
    acc: &mut FastMap<K, V>,
    k: K,
    v: V,
    combine: &C,
) {
    match acc.entry(k) {
        std::collections::hash_map::Entry::Occupied(mut e) => combine(e.get_mut(), v),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(v);
        }
    }
}

/// Receives the pairs a `map` function emits, combining them map-side.
pub struct Emitter<'a, K, V> {
    map: &'a mut FastMap<K, V>,
    combine: &'a (dyn Fn(&mut V, V) + Sync),
    bytes: &'a mut usize,
    emitted: u64,
}

impl<K: Hash + Eq + Spill, V: Spill> Emitter<'_, K, V> {
    /// Emits one key/value pair.
    #[inline]
    pub fn emit(&mut self, key: K, value: V) {
        self.emitted += 1;
        match self.map.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                (self.combine)(e.get_mut(), value)
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                *self.bytes += e.key().approx_size() + value.approx_size() + 8;
                e.insert(value);
            }
        }
    }
}

impl<K, V> fmt::Debug for Emitter<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emitter")
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

/// The result of a job: the reduced value of every key, by partition, plus counters.
#[derive(Debug)]
pub struct Output<K, V> {
    partitions: Vec<FastMap<K, V>>,
    counters: Counters,
}

impl<K: Hash + Eq, V> Output<K, V> {
    /// All results in one map (a std `HashMap` with the job's fast hasher).
    pub fn into_map(self) -> FastMap<K, V> {
        let mut partitions = self.partitions.into_iter();
        let Some(mut out) = partitions.next() else {
            return FastMap::default();
        };
        for p in partitions {
            out.extend(p);
        }
        out
    }

    /// All results, sorted by key.
    pub fn into_sorted_vec(self) -> Vec<(K, V)>
    where
        K: Ord,
    {
        let mut v: Vec<(K, V)> = self.partitions.into_iter().flatten().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Streams every result to `sink`, partition by partition, without building one map.
    pub fn for_each(self, mut sink: impl FnMut(K, V)) {
        for p in self.partitions {
            for (k, v) in p {
                sink(k, v);
            }
        }
    }

    /// Distinct keys in the result.
    pub fn len(&self) -> usize {
        self.partitions.iter().map(FastMap::len).sum()
    }

    /// `true` if no key was emitted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hadoop-style job counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}
