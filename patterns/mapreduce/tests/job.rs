//! The engine against a sequential reference: any threads, partitions and memory budget
//! (spills forced), fast and deterministic modes; errors, cancellation, cleanup.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use weft_mapreduce::{CancelToken, JobError, MapReduce};

/// A fresh, empty spill directory for one test.
fn spill_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-mr-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn files_in(dir: &PathBuf) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Sums per key equal a sequential fold, whatever the thread count, partition count,
    /// split size and memory budget (tiny budgets force spilling), in both modes.
    #[test]
    fn equals_sequential_reference(
        records in proptest::collection::vec((0u16..300, 0u32..1000), 0..2000),
        threads in 1usize..4,
        partitions in 1usize..9,
        split in 1usize..200,
        budget in prop_oneof![Just(None), (1usize..4000).prop_map(Some)],
        deterministic in any::<bool>(),
    ) {
        let mut expect: BTreeMap<u16, u64> = BTreeMap::new();
        for &(k, v) in &records {
            *expect.entry(k).or_default() += u64::from(v);
        }
        let dir = spill_dir("reference");
        let mut job = MapReduce::new()
            .threads(threads)
            .partitions(partitions)
            .split_size(split)
            .deterministic(deterministic)
            .spill_dir(&dir);
        if let Some(b) = budget {
            job = job.memory_budget(b);
        }
        let out = job
            .run(records.clone(), |(k, v), out| out.emit(k, u64::from(v)), |a, b| *a += b)
            .unwrap();
        let counters = *out.counters();
        let got: BTreeMap<u16, u64> = out.into_sorted_vec().into_iter().collect();
        prop_assert_eq!(got, expect);
        prop_assert_eq!(counters.map_input_records, records.len() as u64);
        prop_assert_eq!(files_in(&dir), 0, "spill files left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Deterministic mode: float sums are bit-identical across thread counts, partition
    /// counts and memory budgets, and equal the sequential split-by-split sum.
    #[test]
    fn deterministic_floats_are_bit_identical(
        records in proptest::collection::vec((0u8..20, -1e6f64..1e6), 1..1500),
        split in 1usize..100,
    ) {
        // The reference: combine within each split in order, then splits in order.
        let mut expect: HashMap<u8, f64> = HashMap::new();
        for chunk in records.chunks(split) {
            let mut local: HashMap<u8, f64> = HashMap::new();
            for &(k, v) in chunk {
                // The combiner sees the first value as is, then adds the others.
                match local.get_mut(&k) {
                    Some(t) => *t += v,
                    None => {
                        local.insert(k, v);
                    }
                }
            }
            // Keys of one split are combined into the total in key-independent fashion:
            // per key, totals see split values in split order.
            for (k, v) in local {
                match expect.get_mut(&k) {
                    Some(t) => *t += v,
                    None => {
                        expect.insert(k, v);
                    }
                }
            }
        }
        let dir = spill_dir("floats");
        for (threads, partitions, budget) in [(1, 1, None), (2, 3, None), (3, 7, Some(64)), (2, 2, Some(1))] {
            let mut job = MapReduce::new()
                .threads(threads)
                .partitions(partitions)
                .split_size(split)
                .deterministic(true)
                .spill_dir(&dir);
            if let Some(b) = budget {
                job = job.memory_budget(b);
            }
            let got = job
                .run(records.clone(), |(k, v), out| out.emit(k, v), |a, b| *a += b)
                .unwrap()
                .into_map();
            prop_assert_eq!(got.len(), expect.len());
            for (k, v) in &got {
                prop_assert_eq!(v.to_bits(), expect[k].to_bits(), "key {}", k);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn spills_under_a_small_budget_and_cleans_up() {
    let dir = spill_dir("spill");
    let out = MapReduce::new()
        .threads(2)
        .split_size(100)
        .memory_budget(10_000)
        .spill_dir(&dir)
        .run(
            0u64..50_000,
            |n, out| out.emit(n % 20_000, 1u64),
            |a, b| *a += b,
        )
        .unwrap();
    let c = *out.counters();
    assert!(c.spill_runs > 0 && c.spilled_bytes > 0, "{c:?}");
    assert_eq!(c.reduce_output_records, 20_000);
    let map = out.into_map();
    assert_eq!(map[&0], 3);
    assert_eq!(map[&19_999], 2);
    assert_eq!(files_in(&dir), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_panicking_map_names_its_split_and_cleans_up() {
    let dir = spill_dir("panic");
    let r = MapReduce::new()
        .threads(2)
        .split_size(10)
        .memory_budget(1)
        .spill_dir(&dir)
        .run(
            0u32..1000,
            |n, out| {
                assert!(n != 555, "bad record {n}");
                out.emit(n, 1u32);
            },
            |a, b| *a += b,
        );
    match r {
        Err(JobError::Panicked { stage, message }) => {
            assert_eq!(stage, "map of split 55");
            assert!(message.contains("bad record 555"), "{message}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert_eq!(files_in(&dir), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cancellation_stops_between_splits() {
    let token = CancelToken::new();
    let seen = AtomicU64::new(0);
    let t = token.clone();
    let r = MapReduce::new()
        .threads(1)
        .split_size(10)
        .cancel_token(token)
        .run(
            0u32..10_000,
            |n, out| {
                if seen.fetch_add(1, Ordering::Relaxed) == 25 {
                    t.cancel();
                }
                out.emit(n, 1u32);
            },
            |a, b| *a += b,
        );
    assert!(matches!(r, Err(JobError::Cancelled)));
    // The split in progress finished (records 20..30), then the job stopped.
    assert_eq!(seen.load(Ordering::Relaxed), 30);
}

#[test]
fn progress_reports_every_split() {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&reports);
    let out = MapReduce::new()
        .threads(1)
        .split_size(100)
        .on_progress(move |p| log.lock().unwrap().push(p.splits_done))
        .run(0u32..1000, |n, out| out.emit(n % 7, 1u32), |a, b| *a += b)
        .unwrap();
    assert_eq!(*reports.lock().unwrap(), (1..=10).collect::<Vec<u64>>());
    let c = out.counters();
    assert_eq!(
        (c.splits, c.map_input_records, c.map_output_records),
        (10, 1000, 1000)
    );
}

#[test]
fn custom_partitioner_places_keys() {
    let out = MapReduce::new()
        .partitions(2)
        .run_with_partitioner(
            0u32..100,
            |n, out| out.emit(n, n),
            |a, b| *a += b,
            |k: &u32, parts| (*k as usize) % parts,
        )
        .unwrap();
    assert_eq!(out.len(), 100);
    let mut sum = 0;
    out.for_each(|_, v| sum += v);
    assert_eq!(sum, (0..100).sum::<u32>());
}

#[test]
fn empty_input_gives_empty_output() {
    let out = MapReduce::new()
        .run(
            Vec::<u32>::new(),
            |n, out| out.emit(n, 1u32),
            |a, b| *a += b,
        )
        .unwrap();
    assert!(out.is_empty());
}

#[test]
fn text_chunks_keep_files_apart() {
    let dir = spill_dir("text");
    let a = dir.join("a.txt");
    let b = dir.join("b.txt");
    std::fs::write(&a, "x y").unwrap(); // no final newline
    std::fs::write(&b, "z w\n").unwrap();
    let chunks: Vec<String> = weft_mapreduce::TextChunks::new(vec![a, b], 1 << 20).collect();
    let words: Vec<&str> = chunks.iter().flat_map(|c| c.split_whitespace()).collect();
    assert_eq!(words, ["x", "y", "z", "w"]);
    let _ = std::fs::remove_dir_all(&dir);
}
