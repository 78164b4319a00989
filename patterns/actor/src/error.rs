//! The crate's errors: sending and asking hand the message back where they can.

use std::fmt;

/// Why a [`tell`](crate::ActorRef::tell) or [`try_tell`](crate::ActorRef::try_tell) did
/// not queue the message. The message comes back: [`SendError::into_inner`].
#[derive(PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError<M> {
    /// The mailbox is full (policy `Fail`, or `try_tell` under `Wait`). Retry later,
    /// use `tell` to wait for capacity, or raise the mailbox capacity.
    #[error("the actor's mailbox is full; retry, wait with `tell`, or raise its capacity")]
    Full(M),
    /// The actor has stopped (or its mailbox is closed for shutdown); it will handle no
    /// more messages. Look it up again (registry) or spawn a new one.
    #[error("the actor has stopped; its mailbox accepts no more messages")]
    Closed(M),
}

impl<M> SendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            SendError::Full(m) | SendError::Closed(m) => m,
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("Full(..)"),
            SendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// Why an [`ask`](crate::ActorRef::ask) got no reply. Variants that fail before the
/// message was queued carry it back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum AskError<M> {
    /// The actor has stopped; the message was not queued.
    #[error("the actor has stopped; the message was not queued")]
    Closed(M),
    /// The mailbox is full and its policy is `Fail`; the message was not queued.
    #[error("the actor's mailbox is full; retry later or raise its capacity")]
    Full(M),
    /// An actor asked itself from inside one of its handlers, which would deadlock (it
    /// cannot handle the question while it waits for the answer). Use `tell` to self, or
    /// call the logic directly.
    #[error("an actor asked itself, which would deadlock; tell yourself or call the code directly")]
    SelfAsk(M),
    /// The deadline passed before the reply arrived. `Some(message)` if it passed while
    /// waiting for mailbox capacity (the message was never queued); `None` if the
    /// message was queued: it is then not handled if still queued (it goes to the dead
    /// letters as cancelled).
    #[error("the ask's deadline passed before the actor replied")]
    Timeout(Option<M>),
    /// The message was queued but never answered: dropped by the overflow policy, left
    /// in the mailbox when the actor stopped (see the dead letters), or its handler
    /// panicked or stopped the actor.
    #[error(
        "the actor dropped the message without replying (overflow, stop or handler failure; see the dead letters)"
    )]
    NoReply,
}

impl<M> AskError<M> {
    /// The message, if it was never queued.
    pub fn into_inner(self) -> Option<M> {
        match self {
            AskError::Closed(m) | AskError::Full(m) | AskError::SelfAsk(m) => Some(m),
            AskError::Timeout(m) => m,
            AskError::NoReply => None,
        }
    }
}

impl<M> fmt::Debug for AskError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::Closed(_) => f.write_str("Closed(..)"),
            AskError::Full(_) => f.write_str("Full(..)"),
            AskError::SelfAsk(_) => f.write_str("SelfAsk(..)"),
            AskError::Timeout(Some(_)) => f.write_str("Timeout(Some(..))"),
            AskError::Timeout(None) => f.write_str("Timeout(None)"),
            AskError::NoReply => f.write_str("NoReply"),
        }
    }
}

impl<M> PartialEq for AskError<M> {
    /// Compares the kind of error only, not the carried message.
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// Operational and configuration errors of the crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A mailbox capacity of zero was configured; use at least 1.
    #[error("mailbox capacity must be at least 1")]
    ZeroCapacity,
    /// A name is already registered to a live actor; pick another name or unregister it.
    #[error("the name `{0}` is already registered to a live actor")]
    NameTaken(String),
    /// A router or supervisor was configured without workers or children.
    #[error("at least one worker (or child) is required")]
    Empty,
    /// A restart intensity allows zero restarts in a zero-length window; give a window.
    #[error("the restart window must be longer than zero")]
    ZeroWindow,
    /// Spawning needs a tokio runtime; call it from inside one (`#[tokio::main]`,
    /// `Runtime::block_on`, a task).
    #[error("no tokio runtime: spawn actors from inside a tokio runtime")]
    NoRuntime,
    /// The system is shutting down or shut down; it spawns nothing new.
    #[error("the actor system is shut down; it spawns no new actors")]
    ShutDown,
    /// The shutdown deadline passed with actors still running; they were aborted.
    #[error("the shutdown deadline passed with {0} actor(s) still running; they were aborted")]
    ShutdownTimeout(usize),
}
