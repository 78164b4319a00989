//! The stable k-way merge of sorted runs.
//!
//! A binary min-heap holds the next pair of every run that has one, ordered by
//! `(key, run index)`. The smallest entry is the next output; its run's following pair
//! replaces it in place (one sift-down instead of a pop and a push). Because a run's
//! following key is never smaller than the one it replaces, and a run never has two
//! entries in the heap at once, ties on the key always resolve to the lowest run index,
//! and within a run to file order: the output is a stable sort of the concatenated runs.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::mem;

use super::{RunReader, Spill, SpillError};

/// K-way merge of sorted runs into one ascending stream.
///
/// Among equal keys, pairs come out ordered by the index of their run in `readers`, and
/// within a run in file order. A read error is yielded once, after which the merge yields
/// `None`.
pub(crate) fn merge<K: Spill + Ord, V: Spill>(readers: Vec<RunReader<K, V>>) -> Merge<K, V> {
    let mut merge = Merge {
        heap: BinaryHeap::with_capacity(readers.len()),
        readers,
        error: None,
    };
    for run in 0..merge.readers.len() {
        match merge.readers[run].next() {
            Some(Ok((key, value))) => merge.heap.push(Entry { key, run, value }),
            Some(Err(e)) => {
                merge.error = Some(e);
                break;
            }
            None => {}
        }
    }
    merge
}

/// The stream returned by [`merge`].
#[derive(Debug)]
pub(crate) struct Merge<K, V> {
    /// The next pair of each run that has one, smallest `(key, run)` on top.
    heap: BinaryHeap<Entry<K, V>>,
    /// The runs, by index; emptied once the merge has failed.
    readers: Vec<RunReader<K, V>>,
    /// A read error to yield before anything else.
    error: Option<SpillError>,
}

/// A pending pair of run `run`, ordered (reversed, for std's max-heap) by `(key, run)`.
#[derive(Debug)]
struct Entry<K, V> {
    key: K,
    run: usize,
    value: V,
}

impl<K: Ord, V> Ord for Entry<K, V> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed, so the max-heap's top is the smallest key, lowest run first.
        other
            .key
            .cmp(&self.key)
            .then_with(|| other.run.cmp(&self.run))
    }
}

impl<K: Ord, V> PartialOrd for Entry<K, V> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord, V> PartialEq for Entry<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<K: Ord, V> Eq for Entry<K, V> {}

impl<K: Spill + Ord, V: Spill> Merge<K, V> {
    /// Stops the merge for good: releases the heap and closes the files.
    fn fail(&mut self, error: SpillError) -> SpillError {
        self.heap = BinaryHeap::new();
        self.readers = Vec::new();
        error
    }
}

impl<K: Spill + Ord, V: Spill> Iterator for Merge<K, V> {
    type Item = Result<(K, V), SpillError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.error.take() {
            return Some(Err(self.fail(error)));
        }
        let mut top = self.heap.peek_mut()?;
        match self.readers[top.run].next() {
            Some(Ok((key, value))) => {
                // Dropping `top` sifts the replaced entry down to its place.
                let key = mem::replace(&mut top.key, key);
                let value = mem::replace(&mut top.value, value);
                Some(Ok((key, value)))
            }
            None => {
                let Entry { key, value, .. } = PeekMut::pop(top);
                Some(Ok((key, value)))
            }
            Some(Err(error)) => {
                // `top` is still the smallest pair (the failed run's next key could not
                // have been smaller): yield it, and the error next time.
                let Entry { key, value, .. } = PeekMut::pop(top);
                self.error = Some(error);
                Some(Ok((key, value)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::run::tests::TempDir;
    use super::super::{Run, write_run};
    use super::*;

    fn open_all<K: Spill, V: Spill>(runs: &[Run]) -> Vec<RunReader<K, V>> {
        runs.iter()
            .map(|run| RunReader::open(run).unwrap())
            .collect()
    }

    /// Sorted runs of `(key, (run, position))`, so every pair is distinguishable.
    fn sorted_runs(keys: Vec<Vec<u8>>) -> Vec<Vec<(u8, (u32, u32))>> {
        keys.into_iter()
            .zip(0u32..)
            .map(|(mut keys, run)| {
                keys.sort_unstable();
                keys.into_iter()
                    .zip(0u32..)
                    .map(|(k, i)| (k, (run, i)))
                    .collect()
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn merge_is_a_stable_sort_of_the_concatenation(
            // Few distinct keys, so ties across and within runs are common.
            keys in prop::collection::vec(prop::collection::vec(0u8..8, 0..40), 0..6),
        ) {
            let dir = TempDir::new("merge");
            let runs = sorted_runs(keys);
            let files: Vec<Run> =
                runs.iter().map(|run| write_run(dir.path(), run.clone()).unwrap()).collect();

            let mut expected: Vec<_> = runs.concat();
            expected.sort_by_key(|&(key, _)| key); // stable: ties stay in run, then file order
            let merged: Vec<_> =
                merge(open_all(&files)).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(merged, expected);
        }
    }

    #[test]
    fn ties_go_to_the_lower_run_index() {
        let dir = TempDir::new("ties");
        let runs = [
            vec![(1, "a0"), (1, "a1"), (3, "a2")],
            vec![(0, "b0"), (1, "b1"), (3, "b2")],
            vec![(1, "c0"), (2, "c1")],
        ];
        let files: Vec<Run> = runs
            .iter()
            .map(|run| write_run(dir.path(), run.iter().map(|&(k, v)| (k, v.to_owned()))).unwrap())
            .collect();
        let merged: Vec<(u32, String)> = merge(open_all(&files)).map(Result::unwrap).collect();
        let values: Vec<&str> = merged.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["b0", "a0", "a1", "b1", "c0", "c1", "a2", "b2"]);
    }

    #[test]
    fn no_runs_and_empty_runs() {
        assert!(merge::<u8, u8>(Vec::new()).next().is_none());
        let dir = TempDir::new("empty");
        let files = [
            write_run::<u8, u8>(dir.path(), []).unwrap(),
            write_run(dir.path(), [(4u8, 4u8)]).unwrap(),
            write_run::<u8, u8>(dir.path(), []).unwrap(),
        ];
        let merged: Vec<_> = merge(open_all::<u8, u8>(&files))
            .map(Result::unwrap)
            .collect();
        assert_eq!(merged, [(4, 4)]);
    }

    /// Writes runs `0..n` (one per `damage` flag), overwriting the first value byte of the
    /// flagged ones with an invalid `bool`, and returns what the merge yields.
    fn merge_damaged(damage: &[bool]) -> Vec<Result<(u32, bool), SpillError>> {
        let dir = TempDir::new("merge-damaged");
        let files: Vec<Run> = damage
            .iter()
            .map(|_| write_run(dir.path(), (0..10u32).map(|k| (k, k % 2 == 0))).unwrap())
            .collect();
        for (file, _) in files.iter().zip(damage).filter(|(_, damaged)| **damaged) {
            let mut bytes = std::fs::read(file.path()).unwrap();
            // Record 5: magic (8), five records of 3 bytes, then length, key, value.
            bytes[8 + 5 * 3 + 2] = 7;
            std::fs::write(file.path(), bytes).unwrap();
        }
        let mut merged = merge(open_all::<u32, bool>(&files));
        let items: Vec<_> = merged.by_ref().collect();
        assert!(merged.next().is_none(), "the merge stays done");
        items
    }

    #[test]
    fn a_corrupt_run_yields_one_err_then_none() {
        let items = merge_damaged(&[false, true, false]);
        let errors = items.iter().filter(|i| i.is_err()).count();
        assert_eq!(errors, 1);
        assert!(matches!(
            items.last(),
            Some(Err(SpillError::Corrupt { .. }))
        ));
        // Everything before the error is in order and below the damaged key 5.
        let ok: Vec<_> = items[..items.len() - 1]
            .iter()
            .map(|i| i.as_ref().unwrap().0)
            .collect();
        assert!(ok.is_sorted());
        assert!(ok.iter().all(|&k| k <= 5));
        assert!(ok.len() >= 3 * 5 - 2);
    }

    #[test]
    fn a_corrupt_first_record_fails_at_once() {
        let dir = TempDir::new("merge-first");
        let good = write_run(dir.path(), [(1u8, 1u8)]).unwrap();
        let bad = write_run(dir.path(), [(0u8, 0u8)]).unwrap();
        let mut bytes = std::fs::read(bad.path()).unwrap();
        bytes[8] = 5; // the only record's length, now past the end of the file
        std::fs::write(bad.path(), bytes).unwrap();
        let mut merged = merge(open_all::<u8, u8>(&[good, bad]));
        assert!(matches!(
            merged.next(),
            Some(Err(SpillError::Corrupt { .. }))
        ));
        assert!(merged.next().is_none());
    }
}
