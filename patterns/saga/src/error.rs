//! The crate's errors: [`Error`] for the orchestrator and the journal, [`StepError`] for
//! what a step's action or compensation reports.

use std::fmt;

/// What went wrong in the orchestrator, a saga definition or a journal.
///
/// A failed *step* is not an `Error`: it is part of the saga's normal life (the saga
/// retries it, then compensates) and shows up in the [`Outcome`](crate::Outcome). An
/// `Error` means the orchestrator could not do what was asked; every variant says what
/// the caller can do about it.
///
/// ```
/// use weft_saga::Error;
/// let e = Error::UnknownSaga { saga_id: "t-1".into() };
/// assert!(e.to_string().contains("t-1"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The saga definition is invalid (empty name, duplicate step names, ...); nothing
    /// was built.
    #[error("invalid saga definition `{saga}`: {reason}; fix the builder calls")]
    InvalidDefinition {
        /// The saga's name.
        saga: String,
        /// What is wrong.
        reason: String,
    },
    /// The orchestrator's configuration is invalid; nothing was built.
    #[error("invalid orchestrator configuration: {0}")]
    InvalidConfig(String),
    /// The saga id is empty or contains `/` (it is the first part of every idempotency key).
    #[error("invalid saga id `{0}`: use a non-empty id without `/`")]
    InvalidSagaId(String),
    /// No saga definition of this name was registered with the orchestrator, so the
    /// instance can be neither started nor recovered.
    #[error(
        "saga definition `{saga}` is not registered with this orchestrator: register it on the builder (recovery needs every definition whose instances may be in flight)"
    )]
    NotRegistered {
        /// The definition's name.
        saga: String,
    },
    /// The saga id is already used by an instance of another definition.
    #[error("saga id `{saga_id}` already belongs to an instance of `{existing}`: pick another id")]
    IdInUse {
        /// The id.
        saga_id: String,
        /// The definition the existing instance runs.
        existing: String,
    },
    /// No instance with this id is in the journal.
    #[error("no saga instance `{saga_id}` in the journal")]
    UnknownSaga {
        /// The id asked for.
        saga_id: String,
    },
    /// The operation needs the instance in another state (e.g. `resolve` on a saga that
    /// is not dead-lettered).
    #[error("saga `{saga_id}` is {state}: {what}")]
    WrongState {
        /// The instance.
        saga_id: String,
        /// Its current state.
        state: crate::SagaState,
        /// What was refused and why.
        what: &'static str,
    },
    /// A value could not be encoded to or decoded from the journal's JSON (a saga input,
    /// or a step output asked for with the wrong type).
    #[error("could not encode or decode {what}: {reason}")]
    Codec {
        /// What was being converted.
        what: String,
        /// The serde error.
        reason: String,
    },
    /// The journal failed to read or write; the saga stops where it is and stays in
    /// flight in the journal. Fix the storage, then [`resume`](crate::Orchestrator::resume)
    /// or [`recover`](crate::Orchestrator::recover).
    #[error(
        "saga journal I/O failed: {0}; the saga stays in flight, resume it once storage is fixed"
    )]
    Journal(#[from] std::io::Error),
    /// The journal file is damaged before its tail (a record's checksum or encoding is
    /// wrong with valid records after it): it is not a torn write, so it is not cut off.
    #[error(
        "saga journal is corrupt at byte {offset}: {reason}; restore it from a backup or cut it at this offset by hand"
    )]
    Corrupt {
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// An earlier write failed part-way, so the journal refuses further appends (its
    /// file may end in a partial record). Reopen it: the torn tail is cut on open.
    #[error("the saga journal failed earlier ({0}) and refuses appends; reopen it")]
    JournalFailed(String),
    /// The journal's history of this instance does not fit its definition (a record
    /// names a step the definition lacks, or arrives in an impossible order). The
    /// definition was probably changed while instances were in flight.
    #[error("saga `{saga_id}`'s journal does not match its definition: {reason}")]
    Inconsistent {
        /// The instance.
        saga_id: String,
        /// What does not match.
        reason: String,
    },
}

/// What a step's action or compensation returns when it fails.
///
/// A **retryable** error (the default, [`StepError::retryable`], and every error
/// converted with `?` or `From`) is retried per the step's backoff policy; a
/// **permanent** one ([`StepError::permanent`]) is not retried: an action's permanent
/// failure starts compensation at once, a compensation's parks the saga in the
/// dead-letter state at once.
///
/// ```
/// use weft_saga::StepError;
/// let e = StepError::permanent("insufficient funds");
/// assert!(e.is_permanent());
/// let io: StepError = std::io::Error::other("connection reset").into();
/// assert!(!io.is_permanent());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct StepError {
    message: String,
    permanent: bool,
}

impl StepError {
    /// A failure worth retrying (a timeout, a dropped connection).
    pub fn retryable(message: impl fmt::Display) -> Self {
        StepError {
            message: message.to_string(),
            permanent: false,
        }
    }

    /// A failure retrying cannot fix (a business rule said no).
    pub fn permanent(message: impl fmt::Display) -> Self {
        StepError {
            message: message.to_string(),
            permanent: true,
        }
    }

    /// Whether this failure skips the remaining retries.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The failure's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepError")
            .field("message", &self.message)
            .field("permanent", &self.permanent)
            .finish()
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.permanent {
            write!(f, "{} (permanent)", self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl<E: std::error::Error> From<E> for StepError {
    fn from(e: E) -> Self {
        StepError::retryable(e)
    }
}
