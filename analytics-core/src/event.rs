//! The event model: what goes in, how it is validated, and the series key it belongs to.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use compact_str::CompactString;
use smallvec::SmallVec;
use weft_time::Clock;

use crate::error::{Error, RejectReason};

/// The fixed seed of every hash the engine keeps across shards and sketches (series
/// keys, entity ids, top-k items): sketches built on different shards must hash alike
/// to merge.
const SEED: u64 = 0x5eed_a4a1_71c5_0001;

pub(crate) fn hasher() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(SEED)
}

/// Hashes any value with the engine's fixed hasher.
pub(crate) fn hash_one<T: Hash + ?Sized>(value: &T) -> u64 {
    hasher().hash_one(value)
}

/// The inline dimension list of an event: up to four pairs live inside the event.
pub(crate) type Dims = SmallVec<[(CompactString, CompactString); 4]>;

/// One measurement: an event-time timestamp (milliseconds since the Unix epoch), a
/// metric name, a few dimensions, a numeric value and an optional entity id (what
/// distinct counts count).
///
/// Short strings (up to 24 bytes) are stored inline, so building, moving and dropping
/// a typical event allocates nothing. Dimensions are kept sorted by key, so the same
/// dimensions in any order name the same series.
///
/// ```
/// use weft_analytics::Event;
/// let e = Event::new("http.latency_ms", 1_700_000_000_000, 12.5)
///     .dim("route", "/login")
///     .dim("host", "a")
///     .entity("user-42");
/// assert_eq!(e.metric(), "http.latency_ms");
/// assert_eq!(e.dims().next(), Some(("host", "a"))); // sorted by key
/// assert!(e.entity_hash().is_some());
/// ```
///
/// Events serialise with serde (for event logs); deserialising sorts the dimensions and
/// keeps the last value of a repeated key, as [`Event::dim`] does.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub(crate) ts: i64,
    pub(crate) value: f64,
    #[serde(default)]
    pub(crate) entity: Option<u64>,
    pub(crate) metric: CompactString,
    #[serde(default, deserialize_with = "sorted_dims")]
    pub(crate) dims: Dims,
}

/// Deserialises dimensions in any order into the sorted, de-duplicated form.
fn sorted_dims<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Dims, D::Error> {
    let raw: Vec<(CompactString, CompactString)> = serde::Deserialize::deserialize(d)?;
    let mut e = Event::new("", 0, 0.0);
    for (k, v) in raw {
        e = e.dim(k, v);
    }
    Ok(e.dims)
}

impl Event {
    /// An event of `metric` at `timestamp_ms` (event time, ms since the Unix epoch) with
    /// `value`.
    pub fn new(metric: impl Into<CompactString>, timestamp_ms: i64, value: f64) -> Self {
        Event {
            ts: timestamp_ms,
            value,
            entity: None,
            metric: metric.into(),
            dims: Dims::new(),
        }
    }

    /// Adds (or replaces) dimension `key` with `value`.
    pub fn dim(mut self, key: impl Into<CompactString>, value: impl Into<CompactString>) -> Self {
        let key = key.into();
        let value = value.into();
        match self
            .dims
            .binary_search_by(|(k, _)| k.as_str().cmp(key.as_str()))
        {
            Ok(i) => self.dims[i].1 = value,
            Err(i) => self.dims.insert(i, (key, value)),
        }
        self
    }

    /// Sets the entity the event is about (a user, a session, a device): distinct
    /// counts count entities. The id is hashed with the engine's fixed hasher.
    pub fn entity<T: Hash + ?Sized>(mut self, id: &T) -> Self {
        self.entity = Some(hash_one(id));
        self
    }

    /// Sets the entity by an already computed 64-bit hash (from [`Event::entity`] or
    /// your own well-mixed hash).
    pub fn entity_hashed(mut self, hash: u64) -> Self {
        self.entity = Some(hash);
        self
    }

    /// The event time in milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> i64 {
        self.ts
    }

    /// The value.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// The metric name.
    pub fn metric(&self) -> &str {
        &self.metric
    }

    /// The dimensions, sorted by key.
    pub fn dims(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.dims.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The dimension `key`'s value, if set.
    pub fn dim_value(&self, key: &str) -> Option<&str> {
        self.dims
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.dims[i].1.as_str())
    }

    /// The entity's hash, if one was set.
    pub fn entity_hash(&self) -> Option<u64> {
        self.entity
    }
}

/// A batch of events from one tenant and one source: the unit of ingest.
///
/// The source names the producer whose event-time progress drives the watermark
/// (each source has its own bounded out-of-orderness and idle detection); the tenant
/// is part of every series key and is what rate limits apply to.
///
/// ```
/// use weft_analytics::{Batch, Event};
/// let b = Batch::new(vec![Event::new("m", 0, 1.0)]).tenant("acme").source("edge-1");
/// assert_eq!((b.tenant_name(), b.source_name(), b.len()), ("acme", "edge-1", 1));
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Batch {
    pub(crate) tenant: CompactString,
    pub(crate) source: CompactString,
    pub(crate) events: Vec<Event>,
}

impl Batch {
    /// A batch for tenant `"default"` from source `"default"`.
    pub fn new(events: Vec<Event>) -> Self {
        Batch {
            tenant: CompactString::const_new("default"),
            source: CompactString::const_new("default"),
            events,
        }
    }

    /// Sets the tenant.
    pub fn tenant(mut self, tenant: impl Into<CompactString>) -> Self {
        self.tenant = tenant.into();
        self
    }

    /// Sets the source.
    pub fn source(mut self, source: impl Into<CompactString>) -> Self {
        self.source = source.into();
        self
    }

    /// The tenant.
    pub fn tenant_name(&self) -> &str {
        &self.tenant
    }

    /// The source.
    pub fn source_name(&self) -> &str {
        &self.source
    }

    /// The number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the batch has no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The events, taken back.
    pub fn into_events(self) -> Vec<Event> {
        self.events
    }
}

/// Validation limits for events.
///
/// Defaults: at most 8 dimensions, dimension keys up to 64 bytes and values up to 128,
/// metric names up to 128 bytes, timestamps at most 1 hour ahead of and 7 days behind
/// the engine clock.
///
/// ```
/// use std::time::Duration;
/// use weft_analytics::Limits;
/// let l = Limits::default().max_dims(4).max_future(Duration::from_secs(60));
/// assert_eq!(l.max_dims_value(), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    max_dims: usize,
    max_key_len: usize,
    max_value_len: usize,
    max_metric_len: usize,
    max_future: Duration,
    max_past: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_dims: 8,
            max_key_len: 64,
            max_value_len: 128,
            max_metric_len: 128,
            max_future: Duration::from_secs(3600),
            max_past: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl Limits {
    /// The most dimensions an event may carry.
    pub fn max_dims(mut self, n: usize) -> Self {
        self.max_dims = n;
        self
    }

    /// The configured dimension limit.
    pub fn max_dims_value(&self) -> usize {
        self.max_dims
    }

    /// The longest dimension key, in bytes.
    pub fn max_key_len(mut self, n: usize) -> Self {
        self.max_key_len = n;
        self
    }

    /// The longest dimension value, in bytes.
    pub fn max_value_len(mut self, n: usize) -> Self {
        self.max_value_len = n;
        self
    }

    /// The longest metric name, in bytes.
    pub fn max_metric_len(mut self, n: usize) -> Self {
        self.max_metric_len = n;
        self
    }

    /// How far ahead of the engine clock a timestamp may be.
    pub fn max_future(mut self, d: Duration) -> Self {
        self.max_future = d;
        self
    }

    /// How far behind the engine clock a timestamp may be.
    pub fn max_past(mut self, d: Duration) -> Self {
        self.max_past = d;
        self
    }

    pub(crate) fn validate_config(&self) -> Result<(), Error> {
        if self.max_key_len == 0 || self.max_value_len == 0 || self.max_metric_len == 0 {
            return Err(Error::Config(
                "string length limits must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Checks one event against the limits, with `now_ms` the engine clock.
    #[cfg(test)]
    pub(crate) fn check(&self, e: &Event, now_ms: i64) -> Result<(), RejectReason> {
        self.check_within(e, self.ts_bounds(now_ms))
    }

    /// The accepted timestamps `(oldest, newest)` at `now_ms`: whatever the limits,
    /// they stay within ±2^60 ms (±36 million years), so window arithmetic can never
    /// overflow. Computed once per batch.
    pub(crate) fn ts_bounds(&self, now_ms: i64) -> (i64, i64) {
        (
            now_ms.saturating_sub(millis(self.max_past)).max(-MAX_TS),
            now_ms.saturating_add(millis(self.max_future)).min(MAX_TS),
        )
    }

    /// Checks one event against the limits, with `(oldest, newest)` from
    /// [`ts_bounds`](Self::ts_bounds).
    pub(crate) fn check_within(
        &self,
        e: &Event,
        (oldest, newest): (i64, i64),
    ) -> Result<(), RejectReason> {
        if !e.value.is_finite() {
            return Err(RejectReason::NonFiniteValue);
        }
        if e.metric.is_empty() || e.metric.len() > self.max_metric_len {
            return Err(RejectReason::InvalidMetric);
        }
        if e.dims.len() > self.max_dims {
            return Err(RejectReason::TooManyDimensions);
        }
        for (k, v) in &e.dims {
            if k.is_empty() || k.len() > self.max_key_len || v.len() > self.max_value_len {
                return Err(RejectReason::DimensionTooLong);
            }
        }
        if e.ts > newest {
            return Err(RejectReason::TimestampInFuture);
        }
        if e.ts < oldest {
            return Err(RejectReason::TimestampTooOld);
        }
        Ok(())
    }
}

/// The largest accepted |timestamp| in ms (see [`Limits::ts_bounds`]).
pub(crate) const MAX_TS: i64 = 1 << 60;

/// The longest window, gap or lateness in ms (about 34 years): with `MAX_TS`, window
/// arithmetic stays far from `i64` overflow.
pub(crate) const MAX_SPAN: i64 = 1 << 40;

/// A duration in whole milliseconds, saturating at `i64::MAX`.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The clock's wall time in ms since the Unix epoch.
pub(crate) fn now_ms(clock: &dyn Clock) -> i64 {
    match clock.system_now().duration_since(UNIX_EPOCH) {
        Ok(d) => millis(d),
        Err(e) => -millis(e.duration()),
    }
}

/// The identity of a series: tenant, metric and dimensions (without the top-k
/// dimension, which is counted inside the series instead).
///
/// ```
/// use weft_analytics::SeriesKey;
/// let k = SeriesKey::new("acme", "cpu", [("host", "a")]);
/// assert_eq!(k.metric(), "cpu");
/// assert_eq!(k.dim("host"), Some("a"));
/// ```
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SeriesKey {
    pub(crate) tenant: CompactString,
    pub(crate) metric: CompactString,
    pub(crate) dims: Box<[(CompactString, CompactString)]>,
}

impl SeriesKey {
    /// A key from its parts (dimensions are sorted).
    pub fn new<'a>(
        tenant: &str,
        metric: &str,
        dims: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut dims: Vec<(CompactString, CompactString)> = dims
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        dims.sort();
        SeriesKey {
            tenant: tenant.into(),
            metric: metric.into(),
            dims: dims.into_boxed_slice(),
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The metric.
    pub fn metric(&self) -> &str {
        &self.metric
    }

    /// The dimensions, sorted by key.
    pub fn dims(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.dims.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Dimension `key`'s value.
    pub fn dim(&self, key: &str) -> Option<&str> {
        self.dims
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Hashes the series key of `e` for `tenant`, skipping dimension `skip` (the top-k
/// dimension) — without building the key.
pub(crate) fn series_hash(tenant: &str, e: &Event, skip: Option<&str>) -> u64 {
    let mut h = hasher().build_hasher();
    tenant.hash(&mut h);
    e.metric.as_str().hash(&mut h);
    for (k, v) in &e.dims {
        if Some(k.as_str()) == skip {
            continue;
        }
        k.as_str().hash(&mut h);
        v.as_str().hash(&mut h);
    }
    h.finish()
}

/// Whether `key` is the series key of `e` for `tenant` (skipping dimension `skip`).
pub(crate) fn key_matches(key: &SeriesKey, tenant: &str, e: &Event, skip: Option<&str>) -> bool {
    if key.tenant != tenant || key.metric != e.metric {
        return false;
    }
    let mut theirs = e.dims.iter().filter(|(k, _)| Some(k.as_str()) != skip);
    for (k, v) in key.dims.iter() {
        match theirs.next() {
            Some((k2, v2)) if k == k2 && v == v2 => {}
            _ => return false,
        }
    }
    theirs.next().is_none()
}

/// Builds the series key of `e` for `tenant` (skipping dimension `skip`).
pub(crate) fn key_of(tenant: &str, e: &Event, skip: Option<&str>) -> Arc<SeriesKey> {
    Arc::new(SeriesKey {
        tenant: tenant.into(),
        metric: e.metric.clone(),
        dims: e
            .dims
            .iter()
            .filter(|(k, _)| Some(k.as_str()) != skip)
            .cloned()
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_are_sorted_and_replaced() {
        let e = Event::new("m", 0, 1.0)
            .dim("b", "1")
            .dim("a", "2")
            .dim("b", "3");
        let d: Vec<_> = e.dims().collect();
        assert_eq!(d, [("a", "2"), ("b", "3")]);
        assert_eq!(e.dim_value("b"), Some("3"));
        assert_eq!(e.dim_value("c"), None);
    }

    #[test]
    fn serde_sorts_dims() {
        let e = Event::new("m", 5, 1.5)
            .dim("b", "2")
            .dim("a", "1")
            .entity_hashed(9);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
        let raw = r#"{"ts":1,"value":2.0,"metric":"m","dims":[["z","1"],["a","2"],["z","3"]]}"#;
        let e: Event = serde_json::from_str(raw).unwrap();
        assert_eq!(e.dims().collect::<Vec<_>>(), [("a", "2"), ("z", "3")]);
        assert_eq!(e.entity_hash(), None);
        let b = Batch::new(vec![e]).tenant("t");
        let back: Batch = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn validation_reasons() {
        let l = Limits::default().max_dims(1).max_value_len(3);
        let now = 1_000_000_000;
        let ok = Event::new("m", now, 1.0);
        assert_eq!(l.check(&ok, now), Ok(()));
        let cases = [
            (Event::new("m", now, f64::NAN), RejectReason::NonFiniteValue),
            (
                Event::new("m", now, f64::INFINITY),
                RejectReason::NonFiniteValue,
            ),
            (Event::new("", now, 1.0), RejectReason::InvalidMetric),
            (
                Event::new("m", now, 1.0).dim("a", "1").dim("b", "2"),
                RejectReason::TooManyDimensions,
            ),
            (
                Event::new("m", now, 1.0).dim("a", "long"),
                RejectReason::DimensionTooLong,
            ),
            (
                Event::new("m", now, 1.0).dim("", "x"),
                RejectReason::DimensionTooLong,
            ),
            (
                Event::new("m", now + 3_600_001, 1.0),
                RejectReason::TimestampInFuture,
            ),
            (
                Event::new("m", now - 7 * 24 * 3_600_000 - 1, 1.0),
                RejectReason::TimestampTooOld,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(l.check(&e, now), Err(want), "{e:?}");
        }
        // Absolute bounds hold even with unlimited limits.
        let l = Limits::default()
            .max_past(Duration::MAX)
            .max_future(Duration::MAX);
        let cases = [
            (
                Event::new("m", i64::MIN, 1.0),
                RejectReason::TimestampTooOld,
            ),
            (
                Event::new("m", i64::MAX, 1.0),
                RejectReason::TimestampInFuture,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(l.check(&e, now), Err(want), "{e:?}");
        }
    }

    #[test]
    fn series_hash_and_match_skip_the_topk_dim() {
        let a = Event::new("m", 0, 1.0).dim("host", "h").dim("path", "/a");
        let b = Event::new("m", 5, 2.0).dim("path", "/b").dim("host", "h");
        assert_ne!(series_hash("t", &a, None), series_hash("t", &b, None));
        assert_eq!(
            series_hash("t", &a, Some("path")),
            series_hash("t", &b, Some("path"))
        );
        assert_ne!(series_hash("t", &a, None), series_hash("u", &a, None));
        let key = key_of("t", &a, Some("path"));
        assert!(key_matches(&key, "t", &b, Some("path")));
        assert!(!key_matches(&key, "t", &b, None));
        assert!(!key_matches(&key, "u", &b, Some("path")));
        assert_eq!(*key, SeriesKey::new("t", "m", [("host", "h")]));
    }
}
