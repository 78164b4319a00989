//! Space-Saving top-k heavy hitters (Metwally, Agrawal, El Abbadi: "Efficient
//! Computation of Frequent and Top-k Elements in Data Streams", ICDT 2005), with the
//! merge of Agarwal et al., "Mergeable Summaries" (PODS 2012).
//!
//! The summary keeps at most `capacity` monitored items, each with a count and an
//! error. A new item, when the summary is full, replaces the item with the smallest
//! count `min` and starts at `min + 1` with error `min`. Guarantees: every monitored
//! item's true count `f` satisfies `count - error <= f <= count`; any item whose true
//! count exceeds `N / capacity` (N = total offered) is monitored.
//!
//! Merging two summaries adds counts item by item; an item missing from a *full*
//! summary may have had up to that summary's minimum count there, so it gets that
//! minimum added to both count and error; then the `capacity` largest are kept. The
//! guarantees survive the merge.

use compact_str::CompactString;

/// One monitored item of a top-k summary.
///
/// ```
/// let t = weft_analytics::TopItem { item: "a".into(), count: 10, error: 2 };
/// assert_eq!(t.lower_bound(), 8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopItem {
    /// The item (the top-k dimension's value).
    pub item: CompactString,
    /// Its estimated count: an upper bound of the true count.
    pub count: u64,
    /// The most `count` can overestimate by.
    pub error: u64,
}

impl TopItem {
    /// A guaranteed lower bound of the true count.
    pub fn lower_bound(&self) -> u64 {
        self.count - self.error
    }
}

/// The Space-Saving summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SpaceSaving {
    capacity: usize,
    /// Item hashes, parallel to `items` (scanned on every offer: kept dense).
    hashes: Vec<u64>,
    items: Vec<TopItem>,
}

impl SpaceSaving {
    pub(crate) fn new(capacity: usize) -> Self {
        SpaceSaving {
            capacity: capacity.max(1),
            hashes: Vec::new(),
            items: Vec::new(),
        }
    }

    /// Counts one occurrence of `item` (whose fixed hash is `hash`).
    pub(crate) fn offer(&mut self, item: &str, hash: u64) {
        if let Some(i) = self.find(item, hash) {
            self.items[i].count += 1;
            return;
        }
        if self.items.len() < self.capacity {
            self.hashes.push(hash);
            self.items.push(TopItem {
                item: item.into(),
                count: 1,
                error: 0,
            });
            return;
        }
        let i = self.min_index();
        let min = self.items[i].count;
        self.hashes[i] = hash;
        self.items[i] = TopItem {
            item: item.into(),
            count: min + 1,
            error: min,
        };
    }

    fn find(&self, item: &str, hash: u64) -> Option<usize> {
        self.hashes
            .iter()
            .enumerate()
            .find(|&(i, &h)| h == hash && self.items[i].item == item)
            .map(|(i, _)| i)
    }

    fn min_index(&self) -> usize {
        let mut best = 0;
        for (i, it) in self.items.iter().enumerate() {
            if it.count < self.items[best].count {
                best = i;
            }
        }
        best
    }

    /// The smallest count if the summary is full (what an unmonitored item may have
    /// had), else zero.
    fn floor(&self) -> u64 {
        if self.items.len() < self.capacity {
            0
        } else {
            self.items.iter().map(|t| t.count).min().unwrap_or(0)
        }
    }

    /// Merges `other` into `self` (the mergeable-summaries rule; see the module docs).
    pub(crate) fn merge(&mut self, other: &SpaceSaving) {
        let floor_self = self.floor();
        let floor_other = other.floor();
        let mut merged: Vec<(u64, TopItem)> =
            Vec::with_capacity(self.items.len() + other.items.len());
        for (h, it) in self.hashes.iter().zip(&self.items) {
            let mut t = it.clone();
            match other.find(&it.item, *h) {
                Some(j) => {
                    t.count += other.items[j].count;
                    t.error += other.items[j].error;
                }
                None => {
                    t.count += floor_other;
                    t.error += floor_other;
                }
            }
            merged.push((*h, t));
        }
        for (h, it) in other.hashes.iter().zip(&other.items) {
            if self.find(&it.item, *h).is_none() {
                let mut t = it.clone();
                t.count += floor_self;
                t.error += floor_self;
                merged.push((*h, t));
            }
        }
        merged.sort_by(|a, b| {
            b.1.count
                .cmp(&a.1.count)
                .then_with(|| a.1.item.cmp(&b.1.item))
        });
        merged.truncate(self.capacity.max(other.capacity));
        self.capacity = self.capacity.max(other.capacity);
        self.hashes = merged.iter().map(|(h, _)| *h).collect();
        self.items = merged.into_iter().map(|(_, t)| t).collect();
    }

    /// The `k` items with the largest counts, largest first.
    pub(crate) fn top(&self, k: usize) -> Vec<TopItem> {
        let mut v = self.items.clone();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.item.cmp(&b.item)));
        v.truncate(k);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::hash_one;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn offer(s: &mut SpaceSaving, x: &str) {
        s.offer(x, hash_one(x));
    }

    #[test]
    fn exact_below_capacity() {
        let mut s = SpaceSaving::new(4);
        for x in ["a", "b", "a", "c", "a", "b"] {
            offer(&mut s, x);
        }
        let top = s.top(2);
        assert_eq!(
            top[0],
            TopItem {
                item: "a".into(),
                count: 3,
                error: 0
            }
        );
        assert_eq!(
            top[1],
            TopItem {
                item: "b".into(),
                count: 2,
                error: 0
            }
        );
    }

    fn check_bounds(s: &SpaceSaving, truth: &HashMap<String, u64>, n: Option<u64>) {
        for t in &s.items {
            let f = truth.get(t.item.as_str()).copied().unwrap_or(0);
            assert!(t.lower_bound() <= f && f <= t.count, "{t:?} true {f}");
        }
        // Every item above N / capacity is monitored (a single summary's guarantee).
        let Some(n) = n else { return };
        for (x, &f) in truth {
            if f > n / s.capacity as u64 {
                assert!(
                    s.items.iter().any(|t| t.item == x.as_str()),
                    "{x} ({f}) missing"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn bounds_hold_and_survive_merge(
            a in prop::collection::vec(0u8..40, 0..400),
            b in prop::collection::vec(0u8..40, 0..400),
        ) {
            let (mut sa, mut sb) = (SpaceSaving::new(8), SpaceSaving::new(8));
            let mut truth: HashMap<String, u64> = HashMap::new();
            // Skewed: small numbers are frequent.
            for x in &a {
                let x = (x % 7 * (x / 7)).to_string();
                offer(&mut sa, &x);
                *truth.entry(x).or_default() += 1;
            }
            check_bounds(&sa, &truth, Some(a.len() as u64));
            for x in &b {
                let x = (x % 5).to_string();
                offer(&mut sb, &x);
                *truth.entry(x).or_default() += 1;
            }
            sa.merge(&sb);
            check_bounds(&sa, &truth, None);
        }
    }
}
