//! weft-mapreduce against rayon and a single-threaded loop, same word count, same run.
//!
//! Groups are `mapreduce/<workload>`. Every implementation counts the words of the same
//! in-memory corpus (a `Vec<String>` of lines, about 4 MB) into a `HashMap<String, u64>`,
//! and every one allocates an owned key per word (`word.to_owned()`), as weft's `emit`
//! must: the figures compare the parallel machinery, not key handling. Each
//! implementation's result is checked against the plain loop's once, before timing.
//!
//! Implementations:
//!
//! - `weft`: `MapReduce::new().threads(n)` with its defaults (splits of 1024 lines, four
//!   partitions per CPU, no memory budget) over `lines.iter()`, map-side combining with
//!   `+`, result collected with `into_map()`.
//! - `rayon`: inside a `ThreadPool` of `n` threads, `par_iter().fold(HashMap::new, ...)`
//!   per worker, then `reduce` merging the smaller map into the larger; std's `HashMap`
//!   with its default SipHash, as a rayon user writes it.
//! - `rayon (foldhash)`: the same with foldhash, the hasher weft uses internally, so the
//!   table separates what the hash function buys from what the engine does.
//! - `single_thread_hashmap` and `single_thread_hashmap (foldhash)`: a plain loop into
//!   one map, the same in the `1t` and `2t` groups (the line every parallel figure has
//!   to beat).
//!
//! Workloads (`1t`/`2t`: `n` = 1 or 2 threads):
//!
//! - `wordcount_high_cardinality_{1t,2t}`: Zipf-distributed words from a vocabulary of
//!   200,000 (about 96,000 distinct words appear): the maps outgrow the caches, and the
//!   merge of per-thread maps is a large part of the work.
//! - `wordcount_low_cardinality_{1t,2t}`: a vocabulary of 100 words, all present: the
//!   maps stay in L1 and the cost is splitting, hashing and allocating keys.
//! - `spill_wordcount_high_cardinality`: weft on 2 threads with a 1 MiB memory budget,
//!   which spills sorted runs to the system temp directory and merges them back: compare
//!   with `wordcount_high_cardinality_2t`'s `weft` for the price of spilling.
//!
//! The corpus generator is the examples' (`examples/corpus/mod.rs`, included): words
//! built from syllables with Zipf frequencies, lines of 5 to 15 words, a seeded xorshift
//! generator.

// The settings and harness every bench shares.
#[allow(dead_code)] // not every bench uses every helper
mod common;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use rayon::prelude::*;
use weft::mapreduce::MapReduce;

// The examples' corpus generator, shared rather than copied.
#[allow(dead_code)] // the examples use the rest of it (files on disk)
#[path = "../examples/corpus/mod.rs"]
mod corpus;

/// Bytes of text per corpus.
const CORPUS_BYTES: usize = 4_000_000;
/// The memory budget of the spilling job.
const SPILL_BUDGET: usize = 1 << 20;
/// The generator's seed for the high-cardinality corpus.
const HIGH_SEED: u64 = 0x5EED_0001;
/// The generator's seed for the low-cardinality corpus.
const LOW_SEED: u64 = 0x5EED_0002;

type Counts<S = std::hash::RandomState> = HashMap<String, u64, S>;
type Fold = foldhash::fast::RandomState;

/// The same counts, whatever the hashers.
fn same<S1: BuildHasher, S2: BuildHasher>(a: &Counts<S1>, b: &Counts<S2>) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k) == Some(v))
}

fn weft_job(threads: usize) -> MapReduce {
    MapReduce::new().threads(threads)
}

fn weft_count(job: &MapReduce, lines: &[String]) -> Counts<Fold> {
    job.run(
        lines,
        |line: &String, out| {
            for word in line.split_whitespace() {
                out.emit(word.to_owned(), 1u64);
            }
        },
        |count, n| *count += n,
    )
    .expect("the word count job failed")
    .into_map()
}

fn rayon_count<S: BuildHasher + Default + Send>(
    pool: &rayon::ThreadPool,
    lines: &[String],
) -> Counts<S> {
    pool.install(|| {
        lines
            .par_iter()
            .fold(Counts::<S>::default, |mut m: Counts<S>, line| {
                for word in line.split_whitespace() {
                    *m.entry(word.to_owned()).or_insert(0) += 1;
                }
                m
            })
            .reduce(Counts::<S>::default, merge)
    })
}

/// Merges the smaller map into the larger.
fn merge<S: BuildHasher>(mut a: Counts<S>, mut b: Counts<S>) -> Counts<S> {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    for (word, n) in b {
        *a.entry(word).or_insert(0) += n;
    }
    a
}

fn single_thread_count<S: BuildHasher + Default>(lines: &[String]) -> Counts<S> {
    let mut m = Counts::<S>::default();
    for line in lines {
        for word in line.split_whitespace() {
            *m.entry(word.to_owned()).or_insert(0) += 1;
        }
    }
    m
}

/// A corpus and its correct counts.
struct Corpus {
    lines: Vec<String>,
    bytes: u64,
    counts: Counts,
}

impl Corpus {
    fn new(name: &str, vocabulary: usize, seed: u64) -> Self {
        let lines = corpus::lines(vocabulary, CORPUS_BYTES, seed);
        let bytes = lines.iter().map(|l| l.len() as u64 + 1).sum();
        let counts = single_thread_count::<std::hash::RandomState>(&lines);
        eprintln!(
            "mapreduce: {name} corpus: {:.1} MB, {} lines, {} words, {} distinct",
            bytes as f64 / 1e6,
            lines.len(),
            counts.values().sum::<u64>(),
            counts.len()
        );
        Corpus {
            lines,
            bytes,
            counts,
        }
    }
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>, corpus: &Corpus) {
    // Tens of milliseconds per iteration: few samples, each a fixed number of iterations.
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(corpus.bytes));
}

fn wordcount(c: &mut Criterion) {
    for (shape, vocabulary, seed) in [("high", 200_000, HIGH_SEED), ("low", 100, LOW_SEED)] {
        let corpus = Corpus::new(&format!("{shape}-cardinality"), vocabulary, seed);
        let lines = &corpus.lines[..];
        for threads in [1, 2] {
            let job = weft_job(threads);
            assert!(
                same(&weft_count(&job, lines), &corpus.counts),
                "weft miscounted"
            );
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("cannot build the rayon pool");
            assert!(
                same(
                    &rayon_count::<std::hash::RandomState>(&pool, lines),
                    &corpus.counts
                ),
                "rayon miscounted"
            );
            assert!(
                same(&rayon_count::<Fold>(&pool, lines), &corpus.counts),
                "rayon (foldhash) miscounted"
            );

            let mut g = c.benchmark_group(format!(
                "mapreduce/wordcount_{shape}_cardinality_{threads}t"
            ));
            configure(&mut g, &corpus);
            g.bench_function("weft", |b| b.iter(|| weft_count(&job, black_box(lines))));
            g.bench_function("rayon", |b| {
                b.iter(|| rayon_count::<std::hash::RandomState>(&pool, black_box(lines)))
            });
            g.bench_function("rayon (foldhash)", |b| {
                b.iter(|| rayon_count::<Fold>(&pool, black_box(lines)))
            });
            g.bench_function("single_thread_hashmap", |b| {
                b.iter(|| single_thread_count::<std::hash::RandomState>(black_box(lines)))
            });
            g.bench_function("single_thread_hashmap (foldhash)", |b| {
                b.iter(|| single_thread_count::<Fold>(black_box(lines)))
            });
            g.finish();
        }
    }
}

fn spill(c: &mut Criterion) {
    let corpus = Corpus::new("high-cardinality", 200_000, HIGH_SEED);
    let lines = &corpus.lines[..];
    let spilling = weft_job(2).memory_budget(SPILL_BUDGET);
    let check = spilling
        .run(
            lines,
            |line: &String, out| {
                for word in line.split_whitespace() {
                    out.emit(word.to_owned(), 1u64);
                }
            },
            |count, n| *count += n,
        )
        .expect("the spilling job failed");
    let runs = check.counters().spill_runs;
    assert!(runs > 0, "the 1 MiB budget did not make the job spill");
    eprintln!(
        "mapreduce: spilling job: {runs} runs, {:.1} MB spilled",
        check.counters().spilled_bytes as f64 / 1e6
    );
    assert!(
        same(&check.into_map(), &corpus.counts),
        "the spilling job miscounted"
    );

    let mut g = c.benchmark_group("mapreduce/spill_wordcount_high_cardinality");
    configure(&mut g, &corpus);
    g.bench_function("weft", |b| {
        b.iter(|| weft_count(&spilling, black_box(lines)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = wordcount, spill
}
criterion_main!(benches);
