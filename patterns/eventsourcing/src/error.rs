//! The crate's error type.

use std::path::PathBuf;

/// What went wrong in an event store, a repository, a codec or a subscription.
///
/// Every variant says what happened and what to do about it. Domain errors of an
/// aggregate are not in here: [`Repository::execute`](crate::Repository::execute) returns
/// them separately in [`ExecuteError::Rejected`](crate::ExecuteError::Rejected).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Optimistic concurrency: the stream was not at the version the append expected.
    /// Re-read the stream (from `expected + 1`), decide again and retry;
    /// [`Repository`](crate::Repository) does this for you.
    #[error(
        "version conflict on stream `{stream}`: expected version {expected}, but the stream is at version {actual}; re-read the stream and retry"
    )]
    Conflict {
        /// The stream appended to.
        stream: String,
        /// The version the caller expected the stream to be at.
        expected: u64,
        /// The version the stream is actually at.
        actual: u64,
    },
    /// A command kept conflicting with concurrent writers until the retry limit ran out.
    #[error(
        "stream `{stream}` still conflicted after {attempts} attempts; the stream is heavily contended: raise the retry limit or serialise its writers"
    )]
    TooManyConflicts {
        /// The contended stream.
        stream: String,
        /// How many times the command was decided and appended.
        attempts: u32,
    },
    /// An argument the caller passed is invalid (an empty stream id, an empty append,
    /// a bad configuration value, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// An event payload, snapshot or checkpoint could not be encoded or decoded.
    #[error("codec error for {what}: {message}")]
    Codec {
        /// What was being encoded or decoded (an event type, `snapshot`, ...).
        what: String,
        /// The codec's message.
        message: String,
    },
    /// An upcaster failed to transform an old event.
    #[error("upcasting `{event_type}` from schema version {from_version} failed: {message}")]
    Upcast {
        /// The event type.
        event_type: String,
        /// The schema version being upcast.
        from_version: u32,
        /// The upcaster's message.
        message: String,
    },
    /// The file log found a corrupt record that is not a torn tail (a record in the middle
    /// of the log fails its checksum, or its header is garbage). Nothing after it can be
    /// trusted, so opening refuses: restore the file from a backup or truncate it at
    /// `offset` by hand if losing the records from there on is acceptable.
    #[error(
        "corrupt record in `{}` at byte offset {offset}: {reason}; refusing to open (restore a backup, or truncate the file at this offset to drop everything from here on)",
        file.display()
    )]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// The byte offset of the bad record in that file.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// An I/O operation of the file log or a file checkpoint store failed.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file log had an earlier write or fsync failure and refuses further appends,
    /// because after a failed fsync the state of the page cache is unknown. Reopen the
    /// log (recovery truncates anything not durably written).
    #[error("the log is failed after an earlier I/O error ({0}); reopen it to recover")]
    Failed(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn codec(what: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Codec {
            what: what.into(),
            message: message.to_string(),
        }
    }

    /// Whether this is a [`Conflict`](Error::Conflict) (worth re-reading and retrying).
    ///
    /// ```
    /// let e = weft_eventsourcing::Error::Conflict { stream: "s".into(), expected: 1, actual: 2 };
    /// assert!(e.is_conflict());
    /// ```
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}
