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
