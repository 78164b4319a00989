//! Queries over the window store: what to select, how to bucket, what to compute, and
//! the results with their error bounds.

use std::time::Duration;

use crate::agg::{AggregateConfig, Estimate, WindowAggregate};
use crate::error::Error;
use crate::event::{SeriesKey, millis};
use crate::topk::TopItem;

/// One aggregate a query asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Aggregate {
    /// Number of events.
    Count,
    /// Sum of values.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Mean value.
    Mean,
    /// The q-quantile (0 ≤ q ≤ 1), from the percentile sketch.
    Quantile(f64),
    /// Distinct entities, from the HLL++ sketch.
    Distinct,
    /// The k heaviest values of the top-k dimension.
    TopK(usize),
}

/// A query: one metric of one tenant over `[from, to)` (ms), optionally bucketed by
/// `step`, filtered on dimensions, grouped by dimensions.
///
/// ```
/// use std::time::Duration;
/// use weft_analytics::{Aggregate, Query};
/// let q = Query::new("acme", "http.latency_ms", 0, 3_600_000)
///     .step(Duration::from_secs(60))
///     .filter("region", "eu")
///     .group_by("route")
///     .aggregates([Aggregate::Count, Aggregate::Quantile(0.99)]);
/// assert_eq!(q.metric_name(), "http.latency_ms");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub(crate) tenant: String,
    pub(crate) metric: String,
    pub(crate) from: i64,
    pub(crate) to: i64,
    pub(crate) step: Option<i64>,
    pub(crate) filters: Vec<(String, String)>,
    pub(crate) group_by: Vec<String>,
    pub(crate) aggregates: Vec<Aggregate>,
    /// Only windows ending in `(lo, hi]` (the live feed's finals).
    pub(crate) end_range: Option<(i64, i64)>,
}

impl Query {
    /// All series of `metric` for `tenant` with windows starting in `[from, to)`;
    /// aggregates default to count, sum, min, max, mean.
    pub fn new(tenant: &str, metric: &str, from: i64, to: i64) -> Self {
        Query {
            tenant: tenant.to_owned(),
            metric: metric.to_owned(),
            from,
            to,
            step: None,
            filters: Vec::new(),
            group_by: Vec::new(),
            aggregates: vec![
                Aggregate::Count,
                Aggregate::Sum,
                Aggregate::Min,
                Aggregate::Max,
                Aggregate::Mean,
            ],
            end_range: None,
        }
    }

    /// Buckets of `step` (aligned to the epoch) instead of one point per stored window.
    /// With downsampling tiers, the finest tier whose resolution divides the step and
    /// whose retention reaches back to `from` answers (else the coarsest dividing it).
    pub fn step(mut self, step: Duration) -> Self {
        self.step = Some(millis(step));
        self
    }

    /// Keeps only series whose dimension `key` equals `value` (filters combine with
    /// AND).
    pub fn filter(mut self, key: &str, value: &str) -> Self {
        self.filters.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Groups series by dimension `key` (series without it group under `""`); without
    /// any group-by all matching series merge into one.
    pub fn group_by(mut self, key: &str) -> Self {
        self.group_by.push(key.to_owned());
        self
    }

    /// The aggregates to compute, in result order.
    pub fn aggregates(mut self, aggs: impl IntoIterator<Item = Aggregate>) -> Self {
        self.aggregates = aggs.into_iter().collect();
        self
    }

    /// The metric.
    pub fn metric_name(&self) -> &str {
        &self.metric
    }

    pub(crate) fn validate(&self, cfg: &AggregateConfig) -> Result<(), Error> {
        if self.from >= self.to {
            return Err(Error::Query(format!(
                "empty time range: from {} must be before to {}",
                self.from, self.to
            )));
        }
        if matches!(self.step, Some(s) if s <= 0) {
            return Err(Error::Query("the step must be at least 1 ms".into()));
        }
        if self.aggregates.is_empty() {
            return Err(Error::Query("ask for at least one aggregate".into()));
        }
        for a in &self.aggregates {
            match a {
                Aggregate::Quantile(q) if !(0.0..=1.0).contains(q) => {
                    return Err(Error::Query(format!("quantile {q} is outside [0, 1]")));
                }
                Aggregate::Quantile(_) if cfg.percentile_alpha.is_none() => {
                    return Err(Error::Query(
                        "percentiles are not kept by this engine".into(),
                    ));
                }
                Aggregate::Distinct if cfg.hll_precision.is_none() => {
                    return Err(Error::Query(
                        "distinct counts are not kept by this engine".into(),
                    ));
                }
                Aggregate::TopK(_) if cfg.top_k.is_none() => {
                    return Err(Error::Query("top-k is not kept by this engine".into()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether series `key` passes the tenant, metric and filters.
    pub(crate) fn matches(&self, key: &SeriesKey) -> bool {
        key.tenant == self.tenant.as_str()
            && key.metric == self.metric.as_str()
            && self
                .filters
                .iter()
                .all(|(k, v)| key.dim(k) == Some(v.as_str()))
    }

    /// The aggregate configuration an accumulator for this query needs: only the
    /// sketches it reads are merged.
    pub(crate) fn accumulator_config(&self, cfg: &AggregateConfig) -> AggregateConfig {
        let mut acc = AggregateConfig::basic();
        for a in &self.aggregates {
            match a {
                Aggregate::Quantile(_) => acc.percentile_alpha = cfg.percentile_alpha,
                Aggregate::Distinct => acc.hll_precision = cfg.hll_precision,
                Aggregate::TopK(_) => acc.top_k = cfg.top_k.clone(),
                _ => {}
            }
        }
        acc
    }

    pub(crate) fn evaluate(&self, agg: &WindowAggregate) -> Vec<Value> {
        self.aggregates
            .iter()
            .map(|a| match a {
                Aggregate::Count => Value::Count(agg.count()),
                Aggregate::Sum => Value::Number(Some(agg.sum())),
                Aggregate::Min => Value::Number(agg.min()),
                Aggregate::Max => Value::Number(agg.max()),
                Aggregate::Mean => Value::Number(agg.mean()),
                Aggregate::Quantile(q) => Value::Estimate(agg.quantile(*q)),
                Aggregate::Distinct => Value::Estimate(agg.distinct()),
                Aggregate::TopK(k) => Value::TopK(agg.top_k(*k).unwrap_or_default()),
            })
            .collect()
    }
}

/// One computed aggregate.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A count (exact).
    Count(u64),
    /// An exact number (`None` when there are no values, e.g. the min of nothing).
    Number(Option<f64>),
    /// A sketch estimate with its relative error.
    Estimate(Option<Estimate>),
    /// Top-k items with their error bounds.
    TopK(Vec<TopItem>),
}

impl Value {
    /// The value as a plain number (counts, numbers and estimates), if it has one.
    ///
    /// ```
    /// assert_eq!(weft_analytics::Value::Count(3).as_f64(), Some(3.0));
    /// ```
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Count(n) => Some(*n as f64),
            Value::Number(v) => *v,
            Value::Estimate(e) => e.map(|e| e.value),
            Value::TopK(_) => None,
        }
    }
}

/// One bucket (or one window) of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Bucket start, ms.
    pub start: i64,
    /// Bucket end, ms (for a single window: the window's end).
    pub end: i64,
    /// The aggregates, in the query's order.
    pub values: Vec<Value>,
}

/// The points of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupResult {
    /// The group's dimension values, in the query's group-by order.
    pub group: Vec<String>,
    /// Its points, by start.
    pub points: Vec<Point>,
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The resolution (ms) of the stored windows that answered (the tier used; for
    /// hopping and session windows, 0: windows as emitted).
    pub resolution_ms: i64,
    /// One entry per group, sorted by group.
    pub groups: Vec<GroupResult>,
}

impl QueryResult {
    /// The group with these values, if present.
    pub fn group(&self, values: &[&str]) -> Option<&GroupResult> {
        self.groups.iter().find(|g| {
            g.group
                .iter()
                .map(String::as_str)
                .eq(values.iter().copied())
        })
    }
}
