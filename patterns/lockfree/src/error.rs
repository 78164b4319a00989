//! The crate's error types.

use std::fmt;

/// Why a structure could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A capacity of zero was requested.
    #[error("capacity must be at least 1; pass the number of items the structure must hold")]
    ZeroCapacity,
    /// The requested capacity is too large to index.
    #[error(
        "capacity {requested} is too large (at most {max}); use a smaller bound or an unbounded structure"
    )]
    CapacityTooLarge {
        /// The capacity that was asked for.
        requested: usize,
        /// The largest capacity this structure supports.
        max: usize,
    },
    /// A striped counter was asked for zero shards.
    #[error("a striped counter needs at least 1 shard; pass the expected number of writer threads")]
    ZeroShards,
}

/// A push that did not happen; the rejected value is inside, never lost.
///
/// Its `Debug` output does not print the payload, so `T` need not be `Debug`.
///
/// ```
/// use weft_lockfree::{ArrayQueue, PushError};
/// let q = ArrayQueue::new(1).unwrap();
/// q.push("a").unwrap();
/// match q.push("b") {
///     Err(PushError::Full(v)) => assert_eq!(v, "b"),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushError<T> {
    /// The structure is at capacity; retry after a pop, or drop the value by policy.
    Full(T),
    /// The other side is gone: nobody will ever receive the value.
    Closed(T),
}

impl<T> PushError<T> {
    /// Returns the value that was not pushed.
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(v) | PushError::Closed(v) => v,
        }
    }

    /// `true` for [`PushError::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, PushError::Full(_))
    }

    /// `true` for [`PushError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, PushError::Closed(_))
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("Full(..)"),
            PushError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => {
                f.write_str("push on a full queue; the value is returned, retry after a pop")
            }
            PushError::Closed(_) => f.write_str(
                "push after the consumer was dropped; the value is returned, nobody can receive it",
            ),
        }
    }
}

impl<T> std::error::Error for PushError<T> {}

/// A pop that found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PopError {
    /// Nothing to pop right now; the producer may push more.
    #[error("the queue is empty; retry later")]
    Empty,
    /// Nothing to pop, and the producer is gone: nothing will ever arrive.
    #[error("the queue is empty and its producer was dropped; no more items will arrive")]
    Closed,
}
