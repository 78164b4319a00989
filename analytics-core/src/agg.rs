//! The aggregates of one (series, window) cell: exact count/sum/min/max, a DDSketch for
//! percentiles, HyperLogLog++ for distinct entities, Space-Saving for top-k. All merge.

use std::hash::{BuildHasher, Hasher};

use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use sketches_ddsketch::{Config as SketchConfig, DDSketch};

use crate::error::Error;
use crate::topk::{SpaceSaving, TopItem};

/// Which aggregates the engine keeps per cell, beyond the always-on count, sum, min,
/// max and mean.
///
/// Defaults: percentiles with 1 % relative error, distinct counts with HLL++ precision
/// 12 (≈1.6 % standard error), no top-k.
///
/// ```
/// use weft_analytics::AggregateConfig;
/// let a = AggregateConfig::default().top_k("path", 32).distinct(None);
/// assert_eq!(a.top_k_dimension(), Some("path"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateConfig {
    pub(crate) percentile_alpha: Option<f64>,
    pub(crate) hll_precision: Option<u8>,
    pub(crate) top_k: Option<(String, usize)>,
}

impl Default for AggregateConfig {
    fn default() -> Self {
        AggregateConfig {
            percentile_alpha: Some(0.01),
            hll_precision: Some(12),
            top_k: None,
        }
    }
}

impl AggregateConfig {
    /// Only count, sum, min, max and mean.
    pub fn basic() -> Self {
        AggregateConfig {
            percentile_alpha: None,
            hll_precision: None,
            top_k: None,
        }
    }

    /// Percentiles through a DDSketch of relative accuracy `alpha` (e.g. `0.01`), or
    /// none.
    pub fn percentiles(mut self, alpha: Option<f64>) -> Self {
        self.percentile_alpha = alpha;
        self
    }

    /// Distinct entity counts through HyperLogLog++ with `precision` (4..=18; 2^p
    /// registers, standard error 1.04/√2^p), or none.
    pub fn distinct(mut self, precision: Option<u8>) -> Self {
        self.hll_precision = precision;
        self
    }

    /// Top-k heavy hitters over dimension `dim`, monitoring `capacity` items per cell.
    /// That dimension is then *not* part of the series key: it is counted inside each
    /// series instead (use it for high-cardinality dimensions such as a path or user
    /// agent).
    pub fn top_k(mut self, dim: impl Into<String>, capacity: usize) -> Self {
        self.top_k = Some((dim.into(), capacity));
        self
    }

    /// The top-k dimension, if any.
    pub fn top_k_dimension(&self) -> Option<&str> {
        self.top_k.as_ref().map(|(d, _)| d.as_str())
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if let Some(a) = self.percentile_alpha {
            if !(a > 0.0 && a < 1.0) {
                return Err(Error::Config(format!(
                    "percentile relative accuracy must be in (0, 1), got {a}"
                )));
            }
        }
        if let Some(p) = self.hll_precision {
            if !(4..=18).contains(&p) {
                return Err(Error::Config(format!(
                    "HyperLogLog++ precision must be in 4..=18, got {p}"
                )));
            }
        }
        if let Some((d, k)) = &self.top_k {
            if d.is_empty() || *k == 0 {
                return Err(Error::Config(
                    "top-k needs a dimension name and a positive capacity".into(),
                ));
            }
        }
        Ok(())
    }

    /// The HLL standard error, if distinct counts are on.
    pub(crate) fn distinct_error(&self) -> Option<f64> {
        self.hll_precision
            .map(|p| 1.04 / f64::from(1u32 << p).sqrt())
    }

    pub(crate) fn sketch_config(&self) -> Option<SketchConfig> {
        self.percentile_alpha
            .map(|a| SketchConfig::new(a, 2048, 1.0e-9))
    }
}

/// The hasher HLL++ hashes entity ids with. Entity ids are already 64-bit hashes
/// ([`Event::entity`](crate::Event::entity)); this only mixes them once more (the
/// murmur3 finaliser) so that raw ids given to `entity_hashed` still spread. It is
/// fixed, so every sketch hashes alike and sketches merge.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct EntityHasher;

/// See [`EntityHasher`].
#[derive(Debug, Default)]
pub(crate) struct Mix64(u64);

impl Hasher for Mix64 {
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

impl BuildHasher for EntityHasher {
    type Hasher = Mix64;
    fn build_hasher(&self) -> Mix64 {
        Mix64(0)
    }
}

type Hll = HyperLogLogPlus<u64, EntityHasher>;

/// An estimate with its error bound.
///
/// ```
/// let e = weft_analytics::Estimate { value: 100.0, rel_error: 0.01 };
/// assert_eq!(e.bounds(), (99.0, 101.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    /// The estimated value.
    pub value: f64,
    /// The relative error: for percentiles (DDSketch) a guaranteed bound on
    /// `|estimate - true| / |true|`; for distinct counts (HLL++) the standard error
    /// (about 68 % of estimates fall within it, 99.7 % within three times it).
    pub rel_error: f64,
}

impl Estimate {
    /// `value ∓ value·rel_error`.
    pub fn bounds(&self) -> (f64, f64) {
        let d = (self.value * self.rel_error).abs();
        (self.value - d, self.value + d)
    }
}

/// The aggregates of one (series, window) cell, or of several merged.
///
/// ```
/// use weft_analytics::{AggregateConfig, WindowAggregate};
/// let cfg = AggregateConfig::default();
/// let mut a = WindowAggregate::new(&cfg);
/// let mut b = WindowAggregate::new(&cfg);
/// for v in 1..=50 { a.add(v as f64, Some(v), None); }
/// for v in 51..=100 { b.add(v as f64, Some(v), None); }
/// a.merge(&b);
/// assert_eq!((a.count(), a.sum(), a.min(), a.max()), (100, 5050.0, Some(1.0), Some(100.0)));
/// let p50 = a.quantile(0.5).unwrap();
/// assert!((p50.value - 50.0).abs() <= 50.0 * p50.rel_error + 1.0);
/// assert_eq!(a.distinct().unwrap().value.round(), 100.0);
/// ```
///
/// It serialises with serde (sketches included), for snapshots of window state.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct WindowAggregate {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    alpha: f64,
    hll_error: f64,
    sketch: Option<Box<DDSketch>>,
    hll: Option<Box<Hll>>,
    topk: Option<SpaceSaving>,
}

impl std::fmt::Debug for WindowAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowAggregate")
            .field("count", &self.count)
            .field("sum", &self.sum)
            .field("min", &self.min)
            .field("max", &self.max)
            .field("percentiles", &self.sketch.is_some())
            .field("distinct", &self.hll.is_some())
            .field("top_k", &self.topk.is_some())
            .finish()
    }
}

impl WindowAggregate {
    /// An empty aggregate keeping what `cfg` asks for.
    pub fn new(cfg: &AggregateConfig) -> Self {
        WindowAggregate {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            alpha: cfg.percentile_alpha.unwrap_or(0.0),
            hll_error: cfg.distinct_error().unwrap_or(0.0),
            sketch: cfg.sketch_config().map(|c| Box::new(DDSketch::new(c))),
            // The precision was validated by `AggregateConfig::validate`; a bad one only
            // reaches here through `new` on an unvalidated config, and then the sketch
            // is left out rather than panicking.
            hll: cfg
                .hll_precision
                .and_then(|p| Hll::new(p, EntityHasher).ok().map(Box::new)),
            topk: cfg.top_k.as_ref().map(|(_, k)| SpaceSaving::new(*k)),
        }
    }

    /// Adds one value (with its entity hash and top-k item, where kept).
    #[inline]
    pub fn add(&mut self, value: f64, entity: Option<u64>, top_item: Option<(&str, u64)>) {
        self.count += 1;
        self.sum += value;
        if value < self.min {
            self.min = value;
        }
        if value > self.max {
            self.max = value;
        }
        if let Some(s) = &mut self.sketch {
            s.add(value);
        }
        if let (Some(h), Some(id)) = (&mut self.hll, entity) {
            h.insert_any(&id);
        }
        if let (Some(t), Some((item, hash))) = (&mut self.topk, top_item) {
            t.offer(item, hash);
        }
    }

    /// Merges `other` into `self`. Both must come from the same configuration (they do
    /// inside one engine); a sketch the other lacks is left as is.
    pub fn merge(&mut self, other: &WindowAggregate) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if let (Some(a), Some(b)) = (&mut self.sketch, &other.sketch) {
            // Same config inside one engine: merge cannot fail.
            let _ = a.merge(b);
        }
        if let (Some(a), Some(b)) = (&mut self.hll, &other.hll) {
            let _ = a.merge(b.as_ref());
        }
        if let (Some(a), Some(b)) = (&mut self.topk, &other.topk) {
            a.merge(b);
        }
    }

    /// Events counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of values.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Smallest value, if any.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest value, if any.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Mean value, if any.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) with its relative error bound; `None` without
    /// values, with percentiles off, or for `q` outside `[0, 1]`.
    pub fn quantile(&self, q: f64) -> Option<Estimate> {
        let s = self.sketch.as_ref()?;
        let value = s.quantile(q).ok()??;
        Some(Estimate {
            value,
            rel_error: self.alpha,
        })
    }

    /// The estimated number of distinct entities, with HLL++'s standard error; `None`
    /// with distinct counts off.
    pub fn distinct(&self) -> Option<Estimate> {
        let mut h = self.hll.as_deref()?.clone();
        Some(Estimate {
            value: h.count(),
            rel_error: self.hll_error,
        })
    }

    /// The `k` heaviest items of the top-k dimension, with their error bounds; `None`
    /// with top-k off.
    pub fn top_k(&self, k: usize) -> Option<Vec<TopItem>> {
        self.topk.as_ref().map(|t| t.top(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_aggregate() {
        let a = WindowAggregate::new(&AggregateConfig::default());
        assert_eq!(a.count(), 0);
        assert_eq!(a.min(), None);
        assert_eq!(a.mean(), None);
        assert_eq!(a.quantile(0.5), None);
        assert_eq!(a.distinct().unwrap().value, 0.0);
        assert_eq!(a.top_k(3), None);
    }

    #[test]
    fn serde_round_trip_keeps_every_sketch() {
        let cfg = AggregateConfig::default().top_k("path", 4);
        let mut a = WindowAggregate::new(&cfg);
        for i in 0..1000u64 {
            let path = format!("/p{}", i % 7);
            a.add(
                i as f64,
                Some(i % 300),
                Some((&path, crate::event::hash_one(&path))),
            );
        }
        let json = serde_json::to_string(&a).unwrap();
        let b: WindowAggregate = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (b.count(), b.sum(), b.min(), b.max()),
            (a.count(), a.sum(), a.min(), a.max())
        );
        assert_eq!(b.quantile(0.9), a.quantile(0.9));
        assert_eq!(b.distinct(), a.distinct());
        assert_eq!(b.top_k(4), a.top_k(4));
        // Still mergeable after the trip.
        let mut c = b.clone();
        c.merge(&a);
        assert_eq!(c.count(), 2000);
    }

    #[test]
    fn basic_has_no_sketches() {
        let mut a = WindowAggregate::new(&AggregateConfig::basic());
        a.add(2.0, Some(1), None);
        assert_eq!(a.quantile(0.5), None);
        assert_eq!(a.distinct(), None);
        assert_eq!(a.mean(), Some(2.0));
    }

    #[test]
    fn config_validation() {
        assert!(AggregateConfig::default().validate().is_ok());
        assert!(
            AggregateConfig::default()
                .percentiles(Some(0.0))
                .validate()
                .is_err()
        );
        assert!(
            AggregateConfig::default()
                .distinct(Some(3))
                .validate()
                .is_err()
        );
        assert!(AggregateConfig::default().top_k("", 3).validate().is_err());
        assert!(AggregateConfig::default().top_k("p", 0).validate().is_err());
    }

    #[test]
    fn quantiles_within_stated_error() {
        let mut a = WindowAggregate::new(&AggregateConfig::default());
        let mut vals: Vec<f64> = (0..10_000)
            .map(|i| ((i * 7919) % 10_000) as f64 + 0.5)
            .collect();
        for v in &vals {
            a.add(*v, None, None);
        }
        vals.sort_by(f64::total_cmp);
        for q in [0.01, 0.1, 0.5, 0.9, 0.99, 0.999] {
            let est = a.quantile(q).unwrap();
            let rank = (q * (vals.len() - 1) as f64) as usize;
            let truth = vals[rank];
            assert!(
                (est.value - truth).abs() <= truth * est.rel_error + 1e-9,
                "q {q}: {} vs {truth}",
                est.value
            );
        }
    }

    #[test]
    fn distinct_within_hll_error_and_merges() {
        let cfg = AggregateConfig::default();
        let mut parts: Vec<WindowAggregate> = (0..4).map(|_| WindowAggregate::new(&cfg)).collect();
        // 50 000 distinct entities, each seen 1-3 times, spread over 4 partial sketches.
        for id in 0u64..50_000 {
            for rep in 0..(id % 3 + 1) {
                parts[((id + rep) % 4) as usize].add(1.0, Some(crate::event::hash_one(&id)), None);
            }
        }
        let mut all = parts[0].clone();
        for p in &parts[1..] {
            all.merge(p);
        }
        let est = all.distinct().unwrap();
        let err = (est.value - 50_000.0).abs() / 50_000.0;
        assert!(
            err <= 3.0 * est.rel_error,
            "estimate {} err {err}",
            est.value
        );
    }
}
