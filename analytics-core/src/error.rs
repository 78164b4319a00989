//! The crate's errors: configuration, ingest refusals (which hand the batch back) and
//! per-event rejections.

use std::fmt;
use std::time::Duration;

use crate::event::Batch;

/// What went wrong in the engine: every variant says what happened and what to do.
///
/// ```
/// use std::time::Duration;
/// use weft_analytics::Error;
/// let e = Error::Busy { retry_after: Duration::from_millis(20) };
/// assert!(e.is_retryable());
/// assert!(e.to_string().contains("retry"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine configuration is invalid; nothing was started.
    #[error("invalid analytics engine configuration: {0}; fix the builder settings")]
    Config(String),
    /// Every shard the batch needs is full. Nothing of the batch was accepted; retry
    /// after `retry_after`, or use [`Engine::ingest`](crate::Engine::ingest) to wait.
    #[error("the engine is busy (shard mailboxes full); retry after {retry_after:?}")]
    Busy {
        /// How long until the engine has likely drained enough to accept the batch.
        retry_after: Duration,
    },
    /// The tenant is over its event-rate quota. Nothing of the batch was accepted;
    /// retry after `retry_after`.
    #[error("tenant `{tenant}` is over its rate limit; retry after {retry_after:?}")]
    RateLimited {
        /// The tenant.
        tenant: String,
        /// When the batch would be admitted.
        retry_after: Duration,
    },
    /// The batch's source (of this tenant) is over its event-rate quota. Nothing of the
    /// batch was accepted; retry after `retry_after`.
    #[error(
        "source `{source_name}` of tenant `{tenant}` is over its rate limit; retry after {retry_after:?}"
    )]
    SourceRateLimited {
        /// The tenant.
        tenant: String,
        /// The source (named so because thiserror reserves `source`).
        source_name: String,
        /// When the batch would be admitted.
        retry_after: Duration,
    },
    /// The batch has more valid events than the tenant quota's burst can ever admit at
    /// once. Split it into batches of at most `max` events.
    #[error("a batch of {events} events exceeds the tenant burst of {max}; split it")]
    BatchTooLarge {
        /// Valid events in the batch.
        events: usize,
        /// The most events one batch may carry.
        max: usize,
    },
    /// The engine has shut down (or a shard stopped); it accepts nothing more.
    #[error("the analytics engine is shut down; build a new one")]
    Closed,
    /// A query is malformed (unknown aggregate for this engine, bad range or step).
    #[error("invalid query: {0}")]
    Query(String),
    /// A wait for the engine (flush, live feed) passed its deadline.
    #[error("the engine did not answer within {0:?}; it may be overloaded")]
    Timeout(Duration),
    /// The durable input log could not be opened, written, read or replayed (disk full,
    /// permissions, a corrupt record). After a failed write the batch was not
    /// acknowledged; reopen the engine on the data directory (replay recovers what is
    /// on disk) or fix the disk.
    #[error("the durable event log failed: {0}; check the data directory, then reopen the engine")]
    Log(String),
    /// A job (a backfill) was cancelled on request; nothing was changed.
    #[error("the job was cancelled")]
    Cancelled,
    /// An alert-rule command was refused (validation, unknown sink, duplicate or
    /// missing rule); nothing was recorded.
    #[error("rule command refused: {0}")]
    RuleCommand(String),
    /// No alert rule has this key.
    #[error("no alert rule `{0}`; create it first")]
    UnknownRule(String),
    /// The alert event store failed (reading or appending alert state or rules).
    #[error("alert store failed: {0}; check the store's directory and disk")]
    AlertStore(String),
    /// A provisioning saga could not run (journal failure), or finished otherwise than
    /// completed or compensated.
    #[error("provisioning failed: {0}")]
    Provisioning(String),
}

impl Error {
    /// Whether retrying the same call later can succeed (busy or rate-limited).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Busy { .. } | Error::RateLimited { .. } | Error::SourceRateLimited { .. }
        )
    }

    /// How long to wait before retrying, for the retryable errors.
    ///
    /// ```
    /// use std::time::Duration;
    /// let e = weft_analytics::Error::Busy { retry_after: Duration::from_millis(5) };
    /// assert_eq!(e.retry_after(), Some(Duration::from_millis(5)));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Busy { retry_after }
            | Error::RateLimited { retry_after, .. }
            | Error::SourceRateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// An ingest call that accepted nothing: the error and the batch, handed back whole.
///
/// Its `Debug` does not print the events.
#[derive(thiserror::Error)]
#[error("{error}")]
pub struct IngestError {
    /// Why the batch was refused.
    pub error: Error,
    pub(crate) batch: Batch,
}

impl IngestError {
    /// The batch that was not accepted, to retry later.
    pub fn into_batch(self) -> Batch {
        self.batch
    }
}

impl fmt::Debug for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestError")
            .field("error", &self.error)
            .field("events", &self.batch.len())
            .finish()
    }
}

/// Why one event was rejected (validation, or lateness).
///
/// ```
/// use weft_analytics::RejectReason;
/// assert_eq!(RejectReason::NonFiniteValue.as_str(), "non_finite_value");
/// assert_eq!(RejectReason::ALL.len(), 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The value is NaN or infinite.
    NonFiniteValue,
    /// The metric name is empty or longer than the limit.
    InvalidMetric,
    /// More dimensions than the limit.
    TooManyDimensions,
    /// A dimension key or value is empty (key) or longer than the limit.
    DimensionTooLong,
    /// The timestamp is further in the future (by the engine clock) than allowed.
    TimestampInFuture,
    /// The timestamp is further in the past (by the engine clock) than allowed.
    TimestampTooOld,
    /// The event's window had already closed (beyond allowed lateness).
    Late,
}

impl RejectReason {
    /// Every reason, in counter order.
    pub const ALL: [RejectReason; 7] = [
        RejectReason::NonFiniteValue,
        RejectReason::InvalidMetric,
        RejectReason::TooManyDimensions,
        RejectReason::DimensionTooLong,
        RejectReason::TimestampInFuture,
        RejectReason::TimestampTooOld,
        RejectReason::Late,
    ];

    /// A stable snake_case name (for metrics labels and API responses).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NonFiniteValue => "non_finite_value",
            RejectReason::InvalidMetric => "invalid_metric",
            RejectReason::TooManyDimensions => "too_many_dimensions",
            RejectReason::DimensionTooLong => "dimension_too_long",
            RejectReason::TimestampInFuture => "timestamp_in_future",
            RejectReason::TimestampTooOld => "timestamp_too_old",
            RejectReason::Late => "late",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a shard that did not answer an ask: [`Error::Timeout`] with `timeout`
/// if the ask timed out, else [`Error::Closed`] (the shard is gone).
pub(crate) fn shard_unanswered<M>(timeout: Duration) -> impl Fn(weft_actor::AskError<M>) -> Error {
    move |e| match e {
        weft_actor::AskError::Timeout(_) => Error::Timeout(timeout),
        _ => Error::Closed,
    }
}
