//! Errors.

use std::fmt;

/// Why a job did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The job panicked; the worker survived.
    #[error("the job panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The job was cancelled before it started (by its handle or a shutdown).
    #[error("the job was cancelled before it started")]
    Cancelled,
}

/// A submission the pool refused; the job is handed back, never dropped.
pub enum SubmitError<F> {
    /// The queue is full and the policy is [`Backpressure::Fail`](crate::Backpressure::Fail).
    Full(F),
    /// The queue stayed full for the policy's whole wait.
    Timeout(F),
    /// The pool is shutting down.
    ShuttingDown(F),
}

impl<F> SubmitError<F> {
    /// The job that was not submitted.
    pub fn into_inner(self) -> F {
        match self {
            SubmitError::Full(f) | SubmitError::Timeout(f) | SubmitError::ShuttingDown(f) => f,
        }
    }
}

impl<F> fmt::Debug for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "Full(..)",
            SubmitError::Timeout(_) => "Timeout(..)",
            SubmitError::ShuttingDown(_) => "ShuttingDown(..)",
        })
    }
}

impl<F> fmt::Display for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "the pool's queue is full; the job is returned, retry later",
            SubmitError::Timeout(_) => {
                "the pool's queue stayed full for the whole wait; the job is returned"
            }
            SubmitError::ShuttingDown(_) => "the pool is shutting down; the job is returned",
        })
    }
}

impl<F> std::error::Error for SubmitError<F> {}

/// An invalid pool configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_threads` is zero or below `min_threads`.
    #[error("max_threads ({max}) must be at least 1 and at least min_threads ({min})")]
    Threads {
        /// The minimum given.
        min: usize,
        /// The maximum given.
        max: usize,
    },
    /// A queue capacity of zero.
    #[error("queue_capacity must be at least 1")]
    ZeroCapacity,
}
