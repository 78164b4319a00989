//! Alert rules over the engine's closed windows: rules changed by weft-cqrs commands,
//! alert state as weft-eventsourcing aggregates, notifications through
//! [`Notifier`](crate::Notifier).

mod log;
mod manager;
mod rule;
mod state;

pub use manager::{AlertManager, AlertManagerBuilder, AlertMetrics, EvalReport};
pub use rule::{
    AlertRule, ChangeRule, Comparison, Condition, CreateRule, DeleteRule, Resolve, RuleAggregate,
    RuleEvent,
};
pub use state::{AlertEvent, AlertState, AlertStatus, Observe, ObservedWindow};

/// What went wrong in alerting or provisioning: every variant says what happened and
/// what to do.
///
/// ```
/// let e = weft_analytics::AlertError::UnknownRule("acme/x".into());
/// assert!(e.to_string().contains("acme/x"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// A setting is invalid; nothing was started.
    #[error("invalid alerting configuration: {0}; fix the settings")]
    Config(String),
    /// A rule command was refused (validation, unknown sink, duplicate or missing
    /// rule); nothing was recorded.
    #[error("rule command refused: {0}")]
    Command(String),
    /// No rule has this key.
    #[error("no alert rule `{0}`; create it first")]
    UnknownRule(String),
    /// The event store failed (reading or appending alert state or rules).
    #[error("alert store failed: {0}; check the store's directory and disk")]
    Store(String),
    /// The engine failed or did not answer in time.
    #[error("the analytics engine failed during alert evaluation: {0}")]
    Engine(#[from] crate::Error),
    /// A provisioning saga could not run (journal failure), or finished otherwise than
    /// completed or compensated.
    #[error("provisioning failed: {0}")]
    Provisioning(String),
}
