//! The window store: the read model of final windows, built by a weft-cqrs projection
//! from the closed-window log, with retention and downsampling tiers.

use std::collections::{BTreeMap, HashMap};

use foldhash::fast::RandomState as FoldState;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;
use weft_cqrs::{Projection, Recorded};
use weft_sync::atomic::{AtomicU64, Ordering};

use crate::agg::{AggregateConfig, WindowAggregate};
use crate::error::Error;
use crate::event::{SeriesKey, millis};
use crate::log::Entry;
use crate::query::{GroupResult, Point, Query, QueryResult};
use crate::window::pane_of;

/// A downsampling tier: windows merged to `resolution` and kept for `retention`.
///
/// ```
/// use std::time::Duration;
/// use weft_analytics::Tier;
/// let tiers = [Tier::new(Duration::from_secs(1), Duration::from_secs(3600)),
///              Tier::new(Duration::from_secs(60), Duration::from_secs(86_400))];
/// assert_eq!(tiers[1].resolution(), Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    resolution: Duration,
    retention: Duration,
}

impl Tier {
    /// Windows merged to `resolution`, kept for `retention` (event time, measured back
    /// from the newest window).
    pub fn new(resolution: Duration, retention: Duration) -> Self {
        Tier {
            resolution,
            retention,
        }
    }

    /// The resolution.
    pub fn resolution(&self) -> Duration {
        self.resolution
    }

    /// The retention.
    pub fn retention(&self) -> Duration {
        self.retention
    }
}

/// Validated tiers in ms: (resolution, retention); resolution 0 means "windows as
/// emitted" (hopping and session windows).
pub(crate) fn tiers_ms(
    tiers: &[Tier],
    window: Option<i64>,
    tumbling: bool,
) -> Result<Vec<(i64, i64)>, Error> {
    let mut out: Vec<(i64, i64)> = tiers
        .iter()
        .map(|t| (millis(t.resolution), millis(t.retention)))
        .collect();
    if out.iter().any(|&(_, ret)| ret <= 0) {
        return Err(Error::Config("tier retention must be positive".into()));
    }
    if !tumbling {
        return match out.as_slice() {
            [] => Ok(vec![(0, 3_600_000)]),
            [(_, ret)] => Ok(vec![(0, *ret)]),
            _ => Err(Error::Config(
                "downsampling tiers need tumbling windows (hopping and session windows overlap or vary); give one tier for the retention".into(),
            )),
        };
    }
    let size = window.unwrap_or(1);
    if out.is_empty() {
        out.push((size, 3_600_000));
    }
    out.sort();
    if out[0].0 != size {
        return Err(Error::Config(format!(
            "the finest tier's resolution ({} ms) must equal the window size ({size} ms)",
            out[0].0
        )));
    }
    for w in out.windows(2) {
        if w[1].0 == w[0].0 || w[1].0 % w[0].0 != 0 {
            return Err(Error::Config(format!(
                "each tier's resolution must be a multiple of the finer one's ({} vs {} ms)",
                w[1].0, w[0].0
            )));
        }
    }
    Ok(out)
}

/// One stored series.
#[derive(Debug)]
struct Stored {
    key: Arc<SeriesKey>,
    /// Per tier: window start → (end, aggregate).
    tiers: Vec<BTreeMap<i64, (i64, WindowAggregate)>>,
}

/// The read model.
#[derive(Debug)]
pub(crate) struct WindowStore {
    agg: AggregateConfig,
    tiers: Vec<(i64, i64)>,
    series: HashMap<Arc<SeriesKey>, usize, FoldState>,
    stored: Vec<Stored>,
    /// Series indexes by (tenant, metric).
    by_metric: HashMap<(String, String), Vec<usize>, FoldState>,
    newest_end: i64,
    last_evicted: i64,
    windows: u64,
    applied: Arc<AtomicU64>,
}

/// Counts of the store, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStatus {
    /// Series stored.
    pub series: usize,
    /// Window cells stored, all tiers.
    pub cells: usize,
    /// Final windows received.
    pub windows_received: u64,
    /// The end of the newest window stored (ms).
    pub newest_end: i64,
}

impl WindowStore {
    pub(crate) fn new(
        agg: AggregateConfig,
        tiers: Vec<(i64, i64)>,
        applied: Arc<AtomicU64>,
    ) -> Self {
        WindowStore {
            agg,
            tiers,
            series: HashMap::default(),
            stored: Vec::new(),
            by_metric: HashMap::default(),
            newest_end: i64::MIN,
            last_evicted: i64::MIN,
            windows: 0,
            applied,
        }
    }

    fn insert(&mut self, key: &Arc<SeriesKey>, start: i64, end: i64, agg: &WindowAggregate) {
        self.windows += 1;
        self.newest_end = self.newest_end.max(end);
        // A shard that lags may deliver windows older than a tier's retention (the
        // others moved `newest_end` on): those are dropped on arrival, not stored until
        // the next eviction.
        let newest = self.newest_end;
        let keep = move |&(res, ret): &(i64, i64)| {
            let bucket_end = if res == 0 {
                end
            } else {
                pane_of(start, res) + res
            };
            bucket_end > newest.saturating_sub(ret)
        };
        if !self.tiers.iter().any(keep) {
            return;
        }
        let idx = match self.series.get(key) {
            Some(&i) => i,
            None => {
                let i = self.stored.len();
                self.stored.push(Stored {
                    key: Arc::clone(key),
                    tiers: vec![BTreeMap::new(); self.tiers.len()],
                });
                self.series.insert(Arc::clone(key), i);
                self.by_metric
                    .entry((key.tenant.to_string(), key.metric.to_string()))
                    .or_default()
                    .push(i);
                i
            }
        };
        let s = &mut self.stored[idx];
        for (t, &(res, ret)) in self.tiers.iter().enumerate() {
            if !keep(&(res, ret)) {
                continue;
            }
            let (bs, be) = if res == 0 {
                (start, end)
            } else {
                (pane_of(start, res), pane_of(start, res) + res)
            };
            match s.tiers[t].get_mut(&bs) {
                Some((_, a)) => a.merge(agg),
                None => {
                    s.tiers[t].insert(bs, (be, agg.clone()));
                }
            }
        }
    }

    /// Drops windows past each tier's retention (checked once per finest resolution of
    /// progress).
    fn evict(&mut self) {
        let step = self.tiers[0].0.max(1000);
        if self.newest_end < self.last_evicted.saturating_add(step) {
            return;
        }
        self.last_evicted = self.newest_end;
        let mut empty = 0;
        for s in &mut self.stored {
            for (t, &(_, ret)) in self.tiers.iter().enumerate() {
                let cutoff = self.newest_end.saturating_sub(ret);
                while s.tiers[t]
                    .first_key_value()
                    .is_some_and(|(_, (end, _))| *end <= cutoff)
                {
                    s.tiers[t].pop_first();
                }
            }
            if s.tiers.iter().all(BTreeMap::is_empty) {
                empty += 1;
            }
        }
        // Series whose every window expired are forgotten once they are a quarter of
        // the store (the indexes are rebuilt: O(series), amortised).
        if empty > 0 && empty * 4 >= self.stored.len() {
            self.stored
                .retain(|s| s.tiers.iter().any(|t| !t.is_empty()));
            self.series.clear();
            self.by_metric.clear();
            for (i, s) in self.stored.iter().enumerate() {
                self.series.insert(Arc::clone(&s.key), i);
                self.by_metric
                    .entry((s.key.tenant.to_string(), s.key.metric.to_string()))
                    .or_default()
                    .push(i);
            }
        }
    }

    pub(crate) fn status(&self) -> StoreStatus {
        StoreStatus {
            series: self.stored.len(),
            cells: self
                .stored
                .iter()
                .map(|s| s.tiers.iter().map(BTreeMap::len).sum::<usize>())
                .sum(),
            windows_received: self.windows,
            newest_end: self.newest_end,
        }
    }

    /// The tier answering `q`: the finest whose resolution divides the step and whose
    /// retention reaches back to `from`; else the coarsest dividing the step.
    fn pick_tier(&self, q: &Query) -> Result<usize, Error> {
        let candidates: Vec<usize> = (0..self.tiers.len())
            .filter(|&t| {
                let res = self.tiers[t].0;
                match q.step {
                    Some(step) if res > 0 => step % res == 0,
                    _ => true,
                }
            })
            .collect();
        let Some(&coarsest) = candidates.last() else {
            return Err(Error::Query(format!(
                "the step must be a multiple of a tier resolution ({:?} ms)",
                self.tiers.iter().map(|t| t.0).collect::<Vec<_>>()
            )));
        };
        Ok(candidates
            .into_iter()
            .find(|&t| self.newest_end.saturating_sub(self.tiers[t].1) <= q.from)
            .unwrap_or(coarsest))
    }

    /// Runs `q` (validated by the caller).
    ///
    /// Collects (group, bucket, cell) rows borrowing from the store, sorts them, and
    /// folds equal (group, bucket) runs: no map, no copy of a cell that is alone in its
    /// bucket.
    pub(crate) fn run(&self, q: &Query) -> Result<QueryResult, Error> {
        let tier = self.pick_tier(q)?;
        let acc_cfg = q.accumulator_config(&self.agg);
        let mut rows: Vec<Row<'_>> = Vec::new();
        let ids = self
            .by_metric
            .get(&(q.tenant.clone(), q.metric.clone()))
            .map_or(&[][..], Vec::as_slice);
        for &i in ids {
            let s = &self.stored[i];
            if !q.matches(&s.key) {
                continue;
            }
            let group = group_of(q, &s.key);
            for (&start, (end, agg)) in s.tiers[tier].range(q.from..q.to) {
                if let Some((lo, hi)) = q.end_range {
                    if *end <= lo || *end > hi {
                        continue;
                    }
                }
                let (bs, be) = bucket_of(q, start, *end);
                rows.push((group.clone(), bs, be, agg));
            }
        }
        Ok(fold(q, &acc_cfg, self.tiers[tier].0, rows))
    }

    /// The series keys of a tenant (optionally one metric), sorted.
    pub(crate) fn series_of(&self, tenant: &str, metric: Option<&str>) -> Vec<Arc<SeriesKey>> {
        let mut v: Vec<Arc<SeriesKey>> = self
            .stored
            .iter()
            .filter(|s| s.key.tenant == tenant && metric.is_none_or(|m| s.key.metric == m))
            .map(|s| Arc::clone(&s.key))
            .collect();
        v.sort();
        v
    }
}

/// One cell for [`fold`]: its group, bucket bounds and aggregate.
pub(crate) type Row<'s> = (SmallVec<[&'s str; 2]>, i64, i64, &'s WindowAggregate);

/// The bucket a window `[start, end)` falls in for `q`: its step's pane, or the window
/// itself without a step.
pub(crate) fn bucket_of(q: &Query, start: i64, end: i64) -> (i64, i64) {
    match q.step {
        Some(step) => {
            let pane = pane_of(start, step);
            (pane, pane + step)
        }
        None => (start, end),
    }
}

/// The group of a series for `q`.
pub(crate) fn group_of<'s>(q: &Query, key: &'s SeriesKey) -> SmallVec<[&'s str; 2]> {
    q.group_by
        .iter()
        .map(|g| key.dim(g).unwrap_or(""))
        .collect()
}

/// Sorts `rows` and folds equal (group, bucket) runs into a result.
pub(crate) fn fold(
    q: &Query,
    acc_cfg: &AggregateConfig,
    resolution_ms: i64,
    mut rows: Vec<Row<'_>>,
) -> QueryResult {
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut groups: Vec<GroupResult> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let group = &rows[i].0;
        let mut points = Vec::new();
        while i < rows.len() && rows[i].0 == *group {
            let (bs, be) = (rows[i].1, rows[i].2);
            let mut acc = Acc::One(rows[i].3);
            i += 1;
            while i < rows.len() && rows[i].0 == *group && rows[i].1 == bs {
                acc.merge(rows[i].3, acc_cfg);
                i += 1;
            }
            points.push(Point {
                start: bs,
                end: be,
                values: q.evaluate(acc.get()),
            });
        }
        groups.push(GroupResult {
            group: group.iter().map(|g| (*g).to_owned()).collect(),
            points,
        });
    }
    QueryResult {
        resolution_ms,
        groups,
    }
}

/// A bucket's aggregate: borrowed while one stored cell falls in it (the common case:
/// no copy, no merge), merged into an owned one from the second on.
enum Acc<'a> {
    One(&'a WindowAggregate),
    Many(WindowAggregate),
}

impl<'a> Acc<'a> {
    fn merge(&mut self, other: &'a WindowAggregate, cfg: &AggregateConfig) {
        match self {
            Acc::One(first) => {
                // Only the sketches the query reads are merged.
                let mut m = WindowAggregate::new(cfg);
                m.merge(first);
                m.merge(other);
                *self = Acc::Many(m);
            }
            Acc::Many(m) => m.merge(other),
        }
    }

    fn get(&self) -> &WindowAggregate {
        match self {
            Acc::One(a) => a,
            Acc::Many(m) => m,
        }
    }
}

/// The store's cells for a snapshot, as written (borrowed): per cell the series key,
/// the tier index, the bucket start, end and aggregate.
#[derive(serde::Serialize)]
struct StoreStateRef<'a> {
    tiers: &'a [(i64, i64)],
    newest_end: i64,
    last_evicted: i64,
    windows: u64,
    cells: Vec<(&'a SeriesKey, u32, i64, i64, &'a WindowAggregate)>,
}

/// The store's cells read back from a snapshot.
#[derive(serde::Deserialize)]
struct StoreState {
    tiers: Vec<(i64, i64)>,
    newest_end: i64,
    last_evicted: i64,
    windows: u64,
    cells: Vec<(SeriesKey, u32, i64, i64, WindowAggregate)>,
}

impl WindowStore {
    /// Encodes every stored cell of every tier (for a snapshot).
    pub(crate) fn export(&self) -> Result<Vec<u8>, Error> {
        let mut cells = Vec::new();
        for s in &self.stored {
            for (t, tier) in s.tiers.iter().enumerate() {
                for (start, (end, agg)) in tier {
                    cells.push((&*s.key, t as u32, *start, *end, agg));
                }
            }
        }
        let state = StoreStateRef {
            tiers: &self.tiers,
            newest_end: self.newest_end,
            last_evicted: self.last_evicted,
            windows: self.windows,
            cells,
        };
        postcard::to_stdvec(&state).map_err(|e| Error::Log(format!("encoding the store: {e}")))
    }

    /// Loads cells [`export`](Self::export)ed by a store with the same tiers (at
    /// start-up, before the projection runs).
    pub(crate) fn import(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let state: StoreState = postcard::from_bytes(bytes)
            .map_err(|e| Error::Log(format!("decoding the store snapshot: {e}")))?;
        if state.tiers != self.tiers {
            return Err(Error::Config(format!(
                "the snapshot's store tiers {:?} differ from the configured {:?}; keep the tiers or remove the snapshot",
                state.tiers, self.tiers
            )));
        }
        self.newest_end = state.newest_end;
        self.last_evicted = state.last_evicted;
        self.windows = state.windows;
        for (key, t, start, end, agg) in state.cells {
            let key = Arc::new(key);
            let idx = match self.series.get(&key) {
                Some(&i) => i,
                None => {
                    let i = self.stored.len();
                    self.stored.push(Stored {
                        key: Arc::clone(&key),
                        tiers: vec![BTreeMap::new(); self.tiers.len()],
                    });
                    self.series.insert(Arc::clone(&key), i);
                    self.by_metric
                        .entry((key.tenant.to_string(), key.metric.to_string()))
                        .or_default()
                        .push(i);
                    i
                }
            };
            if let Some(tier) = self.stored[idx].tiers.get_mut(t as usize) {
                tier.insert(start, (end, agg));
            }
        }
        Ok(())
    }
}

impl Projection for WindowStore {
    type Event = Entry;

    fn apply(&mut self, event: &Recorded<Entry>) {
        for c in event.event.iter() {
            self.insert(&c.key, c.start, c.end, &c.agg);
        }
        self.evict();
        // Release pairs with nothing in particular: the log only reads this to compact,
        // and a stale read keeps entries a little longer.
        self.applied.store(event.position, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{Aggregate, Value};

    fn cell(v: f64) -> WindowAggregate {
        let mut a = WindowAggregate::new(&AggregateConfig::basic());
        a.add(v, None, None);
        a
    }

    #[test]
    fn tiers_validation() {
        let s = Duration::from_secs(1);
        let m = Duration::from_secs(60);
        let h = Duration::from_secs(3600);
        assert_eq!(
            tiers_ms(&[], Some(1000), true).unwrap(),
            [(1000, 3_600_000)]
        );
        assert!(tiers_ms(&[Tier::new(s, h), Tier::new(m, h * 24)], Some(1000), true).is_ok());
        assert!(tiers_ms(&[Tier::new(m, h)], Some(1000), true).is_err());
        assert!(
            tiers_ms(
                &[Tier::new(s, h), Tier::new(Duration::from_millis(1500), h)],
                Some(1000),
                true
            )
            .is_err()
        );
        assert!(tiers_ms(&[Tier::new(s, h), Tier::new(m, h)], None, false).is_err());
        assert_eq!(
            tiers_ms(&[Tier::new(s, h)], None, false).unwrap(),
            [(0, 3_600_000)]
        );
        assert!(tiers_ms(&[Tier::new(s, Duration::ZERO)], Some(1000), true).is_err());
    }

    #[test]
    fn downsampling_retention_and_group_by() {
        let tiers = tiers_ms(
            &[
                Tier::new(Duration::from_secs(1), Duration::from_secs(10)),
                Tier::new(Duration::from_secs(5), Duration::from_secs(100)),
            ],
            Some(1000),
            true,
        )
        .unwrap();
        let mut st = WindowStore::new(AggregateConfig::basic(), tiers, Arc::new(AtomicU64::new(0)));
        let a = Arc::new(SeriesKey::new("t", "m", [("host", "a")]));
        let b = Arc::new(SeriesKey::new("t", "m", [("host", "b")]));
        for sec in 0..30 {
            st.insert(&a, sec * 1000, sec * 1000 + 1000, &cell(1.0));
            st.insert(&b, sec * 1000, sec * 1000 + 1000, &cell(2.0));
            st.evict();
        }
        // 1 s tier keeps ~10 s; the 5 s tier everything.
        let q = Query::new("t", "m", 0, 30_000).aggregates([Aggregate::Count, Aggregate::Sum]);
        let r = st.run(&q).unwrap();
        assert_eq!(
            r.resolution_ms, 5000,
            "1 s tier no longer reaches back to 0"
        );
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].points.len(), 6);
        assert_eq!(
            r.groups[0].points[0].values,
            [Value::Count(10), Value::Number(Some(15.0))]
        );
        let q = Query::new("t", "m", 25_000, 30_000)
            .group_by("host")
            .step(Duration::from_secs(5));
        let r = st.run(&q).unwrap();
        assert_eq!(r.resolution_ms, 1000);
        assert_eq!(r.groups.len(), 2);
        assert_eq!(
            r.group(&["b"]).unwrap().points[0].values[1],
            Value::Number(Some(10.0))
        );
        let q = Query::new("t", "m", 0, 30_000)
            .filter("host", "a")
            .step(Duration::from_millis(2500));
        assert!(st.run(&q).is_err(), "no tier divides 2.5 s");
        assert_eq!(st.series_of("t", None).len(), 2);
        assert!(st.series_of("u", None).is_empty());
    }
}

#[cfg(test)]
mod churn_tests {
    use super::*;

    #[test]
    fn expired_series_are_forgotten() {
        let tiers = tiers_ms(
            &[Tier::new(Duration::from_secs(1), Duration::from_secs(5))],
            Some(1000),
            true,
        )
        .unwrap();
        let mut st = WindowStore::new(AggregateConfig::basic(), tiers, Arc::new(AtomicU64::new(0)));
        let mut a = WindowAggregate::new(&AggregateConfig::basic());
        a.add(1.0, None, None);
        for sec in 0..30i64 {
            for i in 0..20 {
                let k = Arc::new(SeriesKey::new(
                    "t",
                    "m",
                    [("host", format!("s{sec}-{i}").as_str())],
                ));
                st.insert(&k, sec * 1000, sec * 1000 + 1000, &a);
            }
            st.evict();
            assert!(st.status().series <= 160, "sec {sec}: {:?}", st.status());
        }
    }
}
