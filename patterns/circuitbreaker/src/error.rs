//! Errors of the breaker.

use std::fmt;
use std::time::Duration;

use crate::State;

/// Why a breaker could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A rate threshold outside `(0, 1]`.
    #[error("{what} must be in (0, 1], got {value}; 0.5 means 50%")]
    Rate {
        /// Which threshold.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// A window, minimum-calls or permit count of zero or beyond the supported size.
    #[error("{what} must be between 1 and {max}, got {value}")]
    Size {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: u64,
        /// The largest supported value.
        max: u64,
    },
    /// A zero duration where a positive one is needed.
    #[error("{what} must be longer than zero")]
    ZeroDuration {
        /// Which setting.
        what: &'static str,
    },
}

/// A call the breaker did not let through: the breaker is open (or forced open, or its
/// half-open trial calls are all taken). Carries when it may let calls through again.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NotPermitted {
    pub(crate) state: State,
    pub(crate) retry_after: Option<Duration>,
}

impl NotPermitted {
    /// The state that refused the call.
    pub fn state(&self) -> State {
        self.state
    }

    /// How long until the breaker tries half-open (for `Open`); `None` when unknown
    /// (forced open, or half-open with every trial permit taken).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Debug for NotPermitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotPermitted")
            .field("state", &self.state)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl fmt::Display for NotPermitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after {
            Some(d) => write!(
                f,
                "circuit breaker is {:?}: call not permitted; retry after {d:?}",
                self.state
            ),
            None => write!(
                f,
                "circuit breaker is {:?}: call not permitted; retry later",
                self.state
            ),
        }
    }
}

impl std::error::Error for NotPermitted {}

/// The error of a call through the breaker: refused, or the call's own error (which is
/// handed back untouched).
#[derive(Clone, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker refused the call; the operation did not run.
    NotPermitted(NotPermitted),
    /// The operation ran and failed with this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// `true` if the breaker refused the call (retrying at once is pointless).
    pub fn is_not_permitted(&self) -> bool {
        matches!(self, CallError::NotPermitted(_))
    }

    /// The operation's error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Inner(e) => Some(e),
            CallError::NotPermitted(_) => None,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NotPermitted(n) => f.debug_tuple("NotPermitted").field(n).finish(),
            CallError::Inner(e) => f.debug_tuple("Inner").field(e).finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NotPermitted(n) => n.fmt(f),
            CallError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::NotPermitted(n) => Some(n),
            CallError::Inner(e) => Some(e),
        }
    }
}
