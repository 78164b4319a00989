//! Alert rules: what to watch (an aggregate of a metric, filtered on dimensions), the
//! threshold, how long it must hold before firing and what resolves it; the commands
//! that create, change and delete rules, and the registry (a weft-cqrs read model) that
//! the evaluator reads.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_cqrs::{Command, Projection, Recorded};
use weft_eventsourcing::DomainEvent;

use crate::query::{Aggregate, Query};

/// How an aggregate's value is compared with a threshold.
///
/// ```
/// use weft_analytics::Comparison;
/// assert!(Comparison::Above.holds(5.0, 3.0));
/// assert!(!Comparison::Below.holds(5.0, 3.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Comparison {
    /// `value > threshold`.
    Above,
    /// `value >= threshold`.
    AtLeast,
    /// `value < threshold`.
    Below,
    /// `value <= threshold`.
    AtMost,
}

impl Comparison {
    /// Whether `value` compares to `threshold` this way.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Above => value > threshold,
            Comparison::AtLeast => value >= threshold,
            Comparison::Below => value < threshold,
            Comparison::AtMost => value <= threshold,
        }
    }
}

/// A threshold condition: `aggregate <op> threshold`.
///
/// ```
/// use weft_analytics::{Comparison, Condition};
/// let c = Condition::new(Comparison::Above, 100.0);
/// assert!(c.holds(Some(101.0)));
/// assert!(!c.holds(None), "no data never holds");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// The comparison.
    pub op: Comparison,
    /// The threshold.
    pub threshold: f64,
}

impl Condition {
    /// `value <op> threshold`.
    pub fn new(op: Comparison, threshold: f64) -> Self {
        Condition { op, threshold }
    }

    /// Whether the condition holds for `value` (`None`, a window without data for a
    /// value that needs data, never holds).
    pub fn holds(&self, value: Option<f64>) -> bool {
        value.is_some_and(|v| self.op.holds(v, self.threshold))
    }
}

/// The aggregate a rule watches (a serialisable subset of [`Aggregate`]).
///
/// ```
/// use weft_analytics::RuleAggregate;
/// assert_eq!(RuleAggregate::Quantile(0.99).to_string(), "p99");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RuleAggregate {
    /// Number of events (a window without events counts 0).
    Count,
    /// Sum of values (a window without events sums to 0).
    Sum,
    /// Mean value.
    Mean,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// The q-quantile from the percentile sketch (`Quantile(0.99)` is p99).
    Quantile(f64),
    /// Distinct entities from the HLL++ sketch.
    Distinct,
}

impl RuleAggregate {
    pub(crate) fn to_query(self) -> Aggregate {
        match self {
            RuleAggregate::Count => Aggregate::Count,
            RuleAggregate::Sum => Aggregate::Sum,
            RuleAggregate::Mean => Aggregate::Mean,
            RuleAggregate::Min => Aggregate::Min,
            RuleAggregate::Max => Aggregate::Max,
            RuleAggregate::Quantile(q) => Aggregate::Quantile(q),
            RuleAggregate::Distinct => Aggregate::Distinct,
        }
    }

    /// The value of a window without events: 0 for count and sum, none otherwise.
    pub(crate) fn empty_value(self) -> Option<f64> {
        match self {
            RuleAggregate::Count | RuleAggregate::Sum => Some(0.0),
            _ => None,
        }
    }
}

impl std::fmt::Display for RuleAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleAggregate::Count => f.write_str("count"),
            RuleAggregate::Sum => f.write_str("sum"),
            RuleAggregate::Mean => f.write_str("mean"),
            RuleAggregate::Min => f.write_str("min"),
            RuleAggregate::Max => f.write_str("max"),
            RuleAggregate::Quantile(q) => write!(f, "p{}", q * 100.0),
            RuleAggregate::Distinct => f.write_str("distinct"),
        }
    }
}

/// What resolves a firing alert.
///
/// ```
/// use weft_analytics::{Comparison, Condition, Resolve};
/// let r = Resolve::when(Condition::new(Comparison::Below, 50.0), 2);
/// assert_eq!(r.windows(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Resolve {
    /// The firing condition is false for this many consecutive closed windows.
    ConditionFalseFor {
        /// Consecutive windows (at least 1).
        windows: u32,
    },
    /// A separate condition (hysteresis, e.g. fire above 100, resolve below 80) holds
    /// for this many consecutive closed windows. A window without data resolves.
    Threshold {
        /// The resolve condition.
        condition: Condition,
        /// Consecutive windows (at least 1).
        windows: u32,
    },
}

impl Resolve {
    /// Resolves after `windows` consecutive windows where the condition is false.
    pub fn after_false(windows: u32) -> Self {
        Resolve::ConditionFalseFor { windows }
    }

    /// Resolves after `windows` consecutive windows where `condition` holds.
    pub fn when(condition: Condition, windows: u32) -> Self {
        Resolve::Threshold { condition, windows }
    }

    /// The consecutive windows needed.
    pub fn windows(&self) -> u32 {
        match *self {
            Resolve::ConditionFalseFor { windows } | Resolve::Threshold { windows, .. } => windows,
        }
    }

    /// Whether a window with `value` (for which the firing condition `fires`) counts
    /// toward resolving.
    pub(crate) fn counts(&self, value: Option<f64>, fires: bool) -> bool {
        match self {
            Resolve::ConditionFalseFor { .. } => !fires,
            Resolve::Threshold { condition, .. } => value.is_none() || condition.holds(value),
        }
    }
}

/// An alert rule: `aggregate(metric | filters) <op> threshold` over each closed window
/// of the engine, holding for `for_duration` of event time before it fires, resolved as
/// `resolve` says, notifying `sinks`.
///
/// ```
/// use std::time::Duration;
/// use weft_analytics::{AlertRule, Comparison, Condition, Resolve, RuleAggregate};
/// let rule = AlertRule::new("acme", "slow-checkout", "http.latency_ms", RuleAggregate::Quantile(0.99),
///         Condition::new(Comparison::Above, 500.0))
///     .filter("route", "/checkout")
///     .for_duration(Duration::from_secs(120))
///     .resolve(Resolve::after_false(3))
///     .sink("pager");
/// assert!(rule.validate().is_ok());
/// assert_eq!(rule.key(), "acme/slow-checkout");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// The tenant whose events the rule watches.
    pub tenant: String,
    /// The rule's name, unique within the tenant.
    pub name: String,
    /// The metric.
    pub metric: String,
    /// Dimension filters (AND); matching series are merged.
    pub filters: Vec<(String, String)>,
    /// The aggregate compared.
    pub aggregate: RuleAggregate,
    /// The firing condition.
    pub condition: Condition,
    /// How long (event time, from the start of the first breaching window to the end
    /// of the current one) the condition must hold before the alert fires; zero fires
    /// on the first breaching window.
    pub for_duration: Duration,
    /// What resolves it.
    pub resolve: Resolve,
    /// The names of the sinks notified on firing and resolving.
    pub sinks: Vec<String>,
}

impl AlertRule {
    /// A rule firing on the first breaching window and resolving after one window where
    /// the condition is false, notifying no sink.
    pub fn new(
        tenant: &str,
        name: &str,
        metric: &str,
        aggregate: RuleAggregate,
        condition: Condition,
    ) -> Self {
        AlertRule {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            metric: metric.to_owned(),
            filters: Vec::new(),
            aggregate,
            condition,
            for_duration: Duration::ZERO,
            resolve: Resolve::after_false(1),
            sinks: Vec::new(),
        }
    }

    /// Keeps only series whose dimension `key` equals `value`.
    pub fn filter(mut self, key: &str, value: &str) -> Self {
        self.filters.push((key.to_owned(), value.to_owned()));
        self
    }

    /// How long the condition must hold before firing.
    pub fn for_duration(mut self, d: Duration) -> Self {
        self.for_duration = d;
        self
    }

    /// What resolves the alert.
    pub fn resolve(mut self, r: Resolve) -> Self {
        self.resolve = r;
        self
    }

    /// Adds a sink to notify.
    pub fn sink(mut self, name: &str) -> Self {
        self.sinks.push(name.to_owned());
        self
    }

    /// The rule's key, `tenant/name`: its id in commands, the registry and history.
    pub fn key(&self) -> String {
        rule_key(&self.tenant, &self.name)
    }

    /// Checks the rule; the error says what is wrong.
    ///
    /// # Errors
    ///
    /// A message naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        let ident = |what: &str, s: &str| -> Result<(), String> {
            if s.is_empty() || s.len() > 128 {
                return Err(format!("the {what} must be 1..=128 bytes, got {:?}", s));
            }
            if s.contains('/') || s.chars().any(char::is_control) {
                return Err(format!(
                    "the {what} {s:?} must not contain '/' or control characters"
                ));
            }
            Ok(())
        };
        ident("tenant", &self.tenant)?;
        ident("rule name", &self.name)?;
        if self.metric.is_empty() {
            return Err("the metric must not be empty".into());
        }
        if !self.condition.threshold.is_finite() {
            return Err(format!(
                "the threshold must be finite, got {}",
                self.condition.threshold
            ));
        }
        if let RuleAggregate::Quantile(q) = self.aggregate {
            if !(0.0..=1.0).contains(&q) {
                return Err(format!("the quantile must be in [0, 1], got {q}"));
            }
        }
        if self.for_duration > Duration::from_secs(366 * 86_400) {
            return Err("the for-duration must be at most a year".into());
        }
        if self.resolve.windows() == 0 {
            return Err("the resolve condition needs at least 1 window".into());
        }
        if let Resolve::Threshold { condition, .. } = self.resolve {
            if !condition.threshold.is_finite() {
                return Err(format!(
                    "the resolve threshold must be finite, got {}",
                    condition.threshold
                ));
            }
        }
        if self.sinks.iter().any(String::is_empty) {
            return Err("sink names must not be empty".into());
        }
        Ok(())
    }

    /// The engine query selecting the rule's series and aggregate.
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::new(&self.tenant, &self.metric, i64::MIN / 4, i64::MAX / 4)
            .aggregates([self.aggregate.to_query()]);
        for (k, v) in &self.filters {
            q = q.filter(k, v);
        }
        q
    }
}

pub(crate) fn rule_key(tenant: &str, name: &str) -> String {
    format!("{tenant}/{name}")
}

/// Command: create a rule (rejected if a rule with its key exists).
#[derive(Debug, Clone)]
pub struct CreateRule(pub AlertRule);

/// Command: replace an existing rule's definition (its alert state is kept).
#[derive(Debug, Clone)]
pub struct ChangeRule(pub AlertRule);

/// Command: delete a rule (its alert history is kept).
#[derive(Debug, Clone)]
pub struct DeleteRule {
    /// The key, `tenant/name`.
    pub key: String,
}

impl Command for CreateRule {
    fn key(&self) -> &str {
        // Rule commands are ordered per tenant (a rule's key starts with its tenant),
        // so every command on one rule runs after the previous one has been recorded
        // and the handler's duplicate check sees it.
        &self.0.tenant
    }
    fn validate(&self) -> Result<(), String> {
        self.0.validate()
    }
}

impl Command for ChangeRule {
    fn key(&self) -> &str {
        &self.0.tenant
    }
    fn validate(&self) -> Result<(), String> {
        self.0.validate()
    }
}

impl Command for DeleteRule {
    fn key(&self) -> &str {
        self.key.split('/').next().unwrap_or("")
    }
    fn validate(&self) -> Result<(), String> {
        match self.key.split_once('/') {
            Some((t, n)) if !t.is_empty() && !n.is_empty() => Ok(()),
            _ => Err(format!("a rule key is `tenant/name`, got {:?}", self.key)),
        }
    }
}

/// What the rule commands record (the rules' event log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RuleEvent {
    /// A rule was created.
    Created(AlertRule),
    /// A rule's definition was replaced.
    Changed(AlertRule),
    /// A rule was deleted.
    Deleted {
        /// Its key.
        key: String,
    },
}

impl DomainEvent for RuleEvent {
    fn event_type(&self) -> &'static str {
        match self {
            RuleEvent::Created(_) => "RuleCreated",
            RuleEvent::Changed(_) => "RuleChanged",
            RuleEvent::Deleted { .. } => "RuleDeleted",
        }
    }
}

/// The rules read model: the current rule per key.
#[derive(Debug, Default, Clone)]
pub(crate) struct RuleRegistry {
    pub(crate) rules: BTreeMap<String, AlertRule>,
}

impl Projection for RuleRegistry {
    type Event = RuleEvent;

    fn apply(&mut self, e: &Recorded<RuleEvent>) {
        match &e.event {
            RuleEvent::Created(r) | RuleEvent::Changed(r) => {
                self.rules.insert(r.key(), r.clone());
            }
            RuleEvent::Deleted { key } => {
                self.rules.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> AlertRule {
        AlertRule::new(
            "t",
            "r",
            "m",
            RuleAggregate::Count,
            Condition::new(Comparison::Above, 1.0),
        )
    }

    #[test]
    fn validation_names_the_bad_field() {
        assert!(rule().validate().is_ok());
        let mut r = rule();
        r.name = "a/b".into();
        assert!(r.validate().unwrap_err().contains("rule name"));
        let mut r = rule();
        r.condition.threshold = f64::NAN;
        assert!(r.validate().unwrap_err().contains("threshold"));
        let r = rule().resolve(Resolve::after_false(0));
        assert!(r.validate().unwrap_err().contains("at least 1 window"));
        let mut r = rule();
        r.aggregate = RuleAggregate::Quantile(1.5);
        assert!(r.validate().unwrap_err().contains("quantile"));
        assert!(DeleteRule { key: "x".into() }.validate().is_err());
        assert!(DeleteRule { key: "t/r".into() }.validate().is_ok());
    }

    #[test]
    fn resolve_counting() {
        let r = Resolve::after_false(2);
        assert!(r.counts(Some(0.0), false));
        assert!(!r.counts(Some(5.0), true));
        let h = Resolve::when(Condition::new(Comparison::Below, 3.0), 1);
        assert!(h.counts(Some(2.0), false));
        assert!(!h.counts(Some(4.0), false), "between the thresholds");
        assert!(h.counts(None, false));
    }
}
