//! Errors: configuration ([`Error`]), pushing into a buffer ([`SendError`],
//! [`TrySendError`]), pulling from one ([`TryRecvError`]), Reactive Streams signals
//! ([`Failure`]) and timeouts ([`Elapsed`]).
//!
//! Every error that refuses an item hands the item back (`into_inner`), and none prints
//! the item in its `Debug` output.

use std::fmt;
use std::time::Duration;

/// A stage or buffer could not be built, or a buffer ended because it overflowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A size (buffer capacity, batch size, window size or step, concurrency limit) of
    /// zero.
    #[error("{what} must be at least 1, got 0")]
    ZeroSize {
        /// Which setting.
        what: &'static str,
    },
    /// A zero duration where a positive one is needed (batch period, window length,
    /// debounce quiet period, ...).
    #[error("{what} must be longer than zero")]
    ZeroDuration {
        /// Which setting.
        what: &'static str,
    },
    /// A buffer with the [`Overflow::Error`](crate::Overflow::Error) policy was full when
    /// an item arrived; the buffer was closed. Consume faster, raise the capacity, or pick
    /// a dropping policy.
    #[error("the bounded buffer (capacity {capacity}) overflowed and was closed")]
    Overflowed {
        /// The capacity that was exceeded.
        capacity: usize,
    },
}

/// Why an item could not be pushed with a waiting `send`; the item is handed back.
#[derive(Clone, PartialEq, Eq)]
pub enum SendError<T> {
    /// The receiving side is gone (dropped, or the buffer was closed): nobody will take
    /// the item.
    Closed(T),
    /// The buffer's policy is [`Overflow::Error`](crate::Overflow::Error) and it was full:
    /// the buffer is now closed, and its receiver ends with [`Error::Overflowed`].
    Overflow(T),
}

impl<T> SendError<T> {
    /// The item that was not pushed.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Closed(t) | SendError::Overflow(t) => t,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("Closed(..)"),
            SendError::Overflow(_) => f.write_str("Overflow(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("the receiver is gone; the item was not sent"),
            SendError::Overflow(_) => f.write_str(
                "the buffer overflowed under the Error policy and is now closed; the item was not sent",
            ),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

/// Why an item could not be pushed without waiting; the item is handed back.
#[derive(Clone, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The buffer is full and its policy is [`Overflow::Block`](crate::Overflow::Block)
    /// (or a blocking subscriber of a subject is full): retry later, or use a waiting
    /// `send`.
    Full(T),
    /// The receiving side is gone: nobody will take the item.
    Closed(T),
    /// The buffer's policy is [`Overflow::Error`](crate::Overflow::Error) and it was full:
    /// the buffer is now closed.
    Overflow(T),
}

impl<T> TrySendError<T> {
    /// The item that was not pushed.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(t) | TrySendError::Closed(t) | TrySendError::Overflow(t) => t,
        }
    }

    /// `true` for [`TrySendError::Full`]: the item may go through later.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Closed(t) => TrySendError::Closed(t),
            SendError::Overflow(t) => TrySendError::Overflow(t),
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
            TrySendError::Overflow(_) => f.write_str("Overflow(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => {
                f.write_str("the buffer is full; retry later or wait with `send`")
            }
            TrySendError::Closed(_) => {
                f.write_str("the receiver is gone; the item was not sent")
            }
            TrySendError::Overflow(_) => f.write_str(
                "the buffer overflowed under the Error policy and is now closed; the item was not sent",
            ),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

/// Why [`Receiver::try_recv`](crate::Receiver::try_recv) returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// Nothing is buffered now; more may come.
    #[error("nothing is buffered yet")]
    Empty,
    /// Every sender is gone (or the buffer was closed) and everything buffered was
    /// received: the stream has ended.
    #[error("the buffer is closed and drained")]
    Closed,
    /// The buffer overflowed under [`Overflow::Error`](crate::Overflow::Error); everything
    /// buffered before that was received.
    #[error("the buffer overflowed (capacity {capacity}) and was closed")]
    Overflowed {
        /// The capacity that was exceeded.
        capacity: usize,
    },
}

/// The error a [`Subscriber`](crate::Subscriber) receives in
/// [`on_error`](crate::Subscriber::on_error): the source's own error, or a breach of the
/// Reactive Streams protocol that the publisher detected.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure<E> {
    /// The source failed with this error.
    #[error("the source failed: {0}")]
    Source(E),
    /// The subscriber called `request(0)` (rule 3.9: demand must be positive); the
    /// subscription was cancelled.
    #[error("request(0) is not allowed (Reactive Streams rule 3.9); request at least 1")]
    ZeroRequest,
    /// The publisher serves a single subscriber and already has one (rule 1.9 allows it
    /// to refuse further ones this way).
    #[error("this publisher accepts only one subscriber and already has one")]
    AlreadySubscribed,
    /// The buffer between publisher and consumer overflowed under the
    /// [`Overflow::Error`](crate::Overflow::Error) policy.
    #[error("the bridge buffer (capacity {capacity}) overflowed")]
    Overflowed {
        /// The capacity that was exceeded.
        capacity: usize,
    },
    /// The publisher delivered more items than were requested (rule 1.1); the
    /// subscription was cancelled and the excess items counted as dropped.
    #[error("the publisher sent more items than requested (Reactive Streams rule 1.1)")]
    Unrequested,
}

impl<E: fmt::Debug> fmt::Debug for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Source(e) => f.debug_tuple("Source").field(e).finish(),
            Failure::ZeroRequest => f.write_str("ZeroRequest"),
            Failure::AlreadySubscribed => f.write_str("AlreadySubscribed"),
            Failure::Overflowed { capacity } => f
                .debug_struct("Overflowed")
                .field("capacity", capacity)
                .finish(),
            Failure::Unrequested => f.write_str("Unrequested"),
        }
    }
}

impl<E> Failure<E> {
    /// The source's error, if that is what this is.
    pub fn into_source(self) -> Option<E> {
        match self {
            Failure::Source(e) => Some(e),
            _ => None,
        }
    }
}

/// A [`timeout`](crate::ReactiveExt::timeout) stage saw no item for its whole period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no item within {0:?}")]
pub struct Elapsed(pub(crate) Duration);

impl Elapsed {
    /// The period that passed without an item.
    pub fn period(&self) -> Duration {
        self.0
    }
}

/// Checks a size setting: `Ok(n)` unless zero.
pub(crate) fn nonzero(what: &'static str, n: usize) -> Result<usize, Error> {
    if n == 0 {
        Err(Error::ZeroSize { what })
    } else {
        Ok(n)
    }
}

/// Checks a duration setting: `Ok(d)` unless zero.
pub(crate) fn positive(what: &'static str, d: Duration) -> Result<Duration, Error> {
    if d.is_zero() {
        Err(Error::ZeroDuration { what })
    } else {
        Ok(d)
    }
}
