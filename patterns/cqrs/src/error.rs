//! The crate's error type.

use std::time::Duration;

/// A boxed error a handler or a storage backend returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a command, a query, a projection or a storage backend.
///
/// Every variant says what happened and what the caller can do about it.
///
/// ```
/// use weft_cqrs::Error;
/// let e = Error::NoHandler { kind: "command", name: "OpenAccount" };
/// assert!(e.to_string().contains("register"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No handler is registered for this command or query type.
    #[error("no {kind} handler for `{name}`: register one on the bus before dispatching it")]
    NoHandler {
        /// `"command"` or `"query"`.
        kind: &'static str,
        /// The Rust type name of the command or query.
        name: &'static str,
    },
    /// The command failed validation; nothing was run or appended.
    #[error("command `{command}` is invalid: {reason}; fix the command and send it again")]
    Invalid {
        /// The command's type name.
        command: &'static str,
        /// What the validation said.
        reason: String,
    },
    /// The authorization hook refused the command; nothing was run or appended.
    #[error("command `{command}` was not authorized: {reason}")]
    Unauthorized {
        /// The command's type name.
        command: &'static str,
        /// What the hook said.
        reason: String,
    },
    /// A middleware refused the command; nothing was run or appended.
    #[error("command `{command}` was refused by middleware `{middleware}`: {reason}")]
    Refused {
        /// The command's type name.
        command: &'static str,
        /// The middleware's name.
        middleware: &'static str,
        /// What the middleware said.
        reason: String,
    },
    /// The handler rejected the command (a business rule); nothing was appended.
    #[error("command `{command}` was rejected by its handler: {source}")]
    Rejected {
        /// The command's type name.
        command: &'static str,
        /// The handler's error.
        #[source]
        source: BoxError,
    },
    /// The command did not get its key and a decision from its handler within the bus
    /// timeout; nothing was appended, so it is safe to retry.
    #[error(
        "command `{command}` timed out after {timeout:?} before anything was appended; it is safe to retry"
    )]
    Timeout {
        /// The command's type name.
        command: &'static str,
        /// The bus's command timeout.
        timeout: Duration,
    },
    /// A projection did not reach the wanted log position before the deadline.
    #[error(
        "projection `{projection}` reached position {reached}, not {wanted}, before the deadline; retry later or read the stale result"
    )]
    WaitTimeout {
        /// The projection's name.
        projection: String,
        /// The position waited for.
        wanted: u64,
        /// The position the projection had reached.
        reached: u64,
    },
    /// The projection's processor has stopped (shut down, or failed: see its status).
    #[error("projection `{projection}` is not running: {reason}")]
    Stopped {
        /// The projection's name.
        projection: String,
        /// Why it stopped.
        reason: String,
    },
    /// The event log failed to read or append.
    #[error("event log error: {0}")]
    Log(#[source] BoxError),
    /// The checkpoint store failed to load or save.
    #[error("checkpoint store error for projection `{projection}`: {source}")]
    Checkpoint {
        /// The projection's name.
        projection: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },
    /// A checkpoint's saved state could not be restored into the projection.
    #[error(
        "projection `{projection}` could not restore its checkpoint at position {position}: {reason}; delete the checkpoint to rebuild from zero"
    )]
    Restore {
        /// The projection's name.
        projection: String,
        /// The checkpoint's position.
        position: u64,
        /// What `Projection::restore` said.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Why a [`Subscription`](crate::Subscription) ended.
///
/// ```
/// use weft_cqrs::SubscriptionError;
/// assert!(SubscriptionError::Lagged.to_string().contains("subscribe again"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// The subscriber did not keep up: its channel was full when an update was pushed,
    /// so it was disconnected (counted in the projection's status) rather than having
    /// updates silently skipped. Subscribe again for a fresh initial result.
    #[error("the subscriber fell behind and was disconnected; subscribe again for a fresh result")]
    Lagged,
    /// The projection stopped (its processor shut down, or the read model was swapped
    /// for one the query no longer applies to).
    #[error("the projection stopped; no more updates will come")]
    Closed,
}

/// An event log's failure as an [`Error::Log`] (for `map_err`).
pub(crate) fn log_error(e: impl Into<BoxError>) -> Error {
    Error::Log(e.into())
}
