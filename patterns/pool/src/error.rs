//! The crate's errors: [`Error`] for checkouts, [`ConfigError`] for building, and
//! [`HookError`] for hooks that reject an object.

use std::fmt;

/// Which timeout of a checkout ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Waiting in the queue for an object or a free slot
    /// ([`Builder::wait_timeout`](crate::Builder::wait_timeout)).
    Wait,
    /// [`Manager::create`](crate::Manager::create), including its retries
    /// ([`Builder::create_timeout`](crate::Builder::create_timeout)).
    Create,
    /// [`Manager::recycle`](crate::Manager::recycle) at checkout
    /// ([`Builder::recycle_timeout`](crate::Builder::recycle_timeout)).
    Recycle,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Wait => "waiting for an object",
            TimeoutKind::Create => "creating an object",
            TimeoutKind::Recycle => "recycling an object",
        })
    }
}

/// Which hook rejected an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HookKind {
    /// [`Builder::post_create`](crate::Builder::post_create).
    PostCreate,
    /// [`Builder::pre_recycle`](crate::Builder::pre_recycle).
    PreRecycle,
    /// [`Builder::post_recycle`](crate::Builder::post_recycle).
    PostRecycle,
}

/// Why a checkout failed. `E` is the manager's error type.
///
/// Every message says what happened and what to do about it.
///
/// ```
/// use weft_pool::{Error, TimeoutKind};
/// let e: Error<std::io::Error> = Error::Timeout(TimeoutKind::Wait);
/// assert!(e.to_string().contains("raise max_size"));
/// assert!(e.is_timeout());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E> {
    /// A timeout ran out; the checkout left nothing behind (no slot, no queue place).
    #[error(
        "timed out {0}: the pool is busy or the backend is slow; raise max_size or the \
         timeout, or return objects sooner"
    )]
    Timeout(TimeoutKind),
    /// [`Pool::try_get`](crate::Pool::try_get) found no idle object and no free slot, and
    /// it never waits.
    #[error(
        "no object is available now (all {max_size} slots in use or others are queued) and \
         try_get does not wait; use get() to wait, or raise max_size"
    )]
    Exhausted {
        /// The pool's maximum size when the call was made.
        max_size: usize,
    },
    /// The pool was closed ([`Pool::close`](crate::Pool::close)); it hands out nothing more.
    #[error("the pool is closed; build a new pool to check out objects again")]
    Closed,
    /// This checkout's own attempt to create an object failed, after the configured
    /// retries ([`Builder::create_retries`](crate::Builder::create_retries)).
    #[error("creating a pooled object failed after retries: {0}; check the backend")]
    Create(#[source] E),
    /// Another checkout's creation attempts failed and no object in use (or being
    /// created) can be expected back for this waiter, so it is told at once instead of
    /// waiting for its timeout.
    #[error(
        "the pool cannot create objects: {failures} consecutive creation failures, the last: \
         {last_error}; check the backend, then retry"
    )]
    Unavailable {
        /// Consecutive failed creations when this waiter was released.
        failures: u64,
        /// The last creation error, rendered with `Display`.
        last_error: String,
    },
    /// A [`post_create`](crate::Builder::post_create) hook rejected a new object.
    #[error("the {kind:?} hook rejected the object: {source}")]
    Hook {
        /// The hook that failed.
        kind: HookKind,
        /// What it said.
        #[source]
        source: HookError,
    },
    /// A timeout is configured but this async checkout has no timer to measure it: the
    /// pool was built outside a tokio runtime (or without the `tokio` feature) and no
    /// [`Timer`](crate::Timer) was given.
    #[error(
        "a timeout is configured but the pool has no timer: build it inside a tokio runtime \
         (feature `tokio`), pass one with Builder::timer, or use the blocking API"
    )]
    NoTimer,
}

impl<E> Error<E> {
    /// `true` for [`Error::Timeout`] of any kind.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }

    /// The manager's error, for [`Error::Create`].
    ///
    /// ```
    /// let e = weft_pool::Error::Create(std::io::Error::other("refused"));
    /// assert_eq!(e.into_backend().unwrap().to_string(), "refused");
    /// ```
    pub fn into_backend(self) -> Option<E> {
        match self {
            Error::Create(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a pool could not be built: a setting is invalid.
///
/// ```
/// use weft_pool::{ConfigError, Manager, Pool};
///
/// struct Numbers;
/// impl Manager for Numbers {
///     type Object = u32;
///     type Error = std::io::Error;
///     async fn create(&self) -> Result<u32, std::io::Error> { Ok(0) }
/// }
///
/// let err = Pool::builder(Numbers).max_size(2).min_idle(3).build().unwrap_err();
/// assert_eq!(err, ConfigError::MinIdleAboveMax { min_idle: 3, max_size: 2 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_size` is zero.
    #[error("max_size must be at least 1")]
    ZeroMaxSize,
    /// `min_idle` exceeds `max_size`: the pool could never hold that many idle objects.
    #[error("min_idle {min_idle} is above max_size {max_size}; lower min_idle or raise max_size")]
    MinIdleAboveMax {
        /// The configured minimum of idle objects.
        min_idle: usize,
        /// The configured maximum size.
        max_size: usize,
    },
    /// A duration setting is zero where that would make the pool useless.
    #[error("{setting} must be longer than zero (leave it unset to disable it)")]
    ZeroDuration {
        /// The setting.
        setting: &'static str,
    },
    /// A keyed pool's global cap is below the per-key cap's minimum of one object.
    #[error("a keyed pool's max_total must be at least 1")]
    ZeroMaxTotal,
    /// Background maintenance was asked for outside a tokio runtime.
    #[error(
        "maintenance_interval needs a tokio runtime to run on: build the pool inside one, or \
         call Pool::maintain yourself"
    )]
    NoRuntime,
}

/// What a hook says when it rejects an object: a message, or any error.
///
/// ```
/// let e = weft_pool::HookError::new("stale session");
/// assert_eq!(e.to_string(), "stale session");
/// ```
#[derive(Debug)]
pub struct HookError(Box<dyn std::error::Error + Send + Sync>);

impl HookError {
    /// A hook error from a message or an error value.
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        HookError(cause.into())
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for HookError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Why [`Manager::recycle`](crate::Manager::recycle) rejected an object. A rejected
/// object is closed and the checkout moves on to the next idle object or a new one; the
/// caller never sees this error, it is counted in
/// [`Stats::recycle_failures`](crate::Stats::recycle_failures).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecycleError<E> {
    /// The object is unusable, with a reason.
    #[error("{0}")]
    Message(String),
    /// The backend said so.
    #[error(transparent)]
    Backend(E),
}

impl<E> From<E> for RecycleError<E> {
    fn from(e: E) -> Self {
        RecycleError::Backend(e)
    }
}

/// Why [`Pool::add`](crate::Pool::add) refused an object; the object is handed back.
///
/// `Debug` does not print the object (it may hold credentials).
///
/// ```
/// use weft_pool::AddError;
/// let e = AddError::Full(String::from("secret"));
/// assert_eq!(format!("{e:?}"), "Full(..)");
/// assert_eq!(e.into_inner(), "secret");
/// ```
#[derive(PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddError<T> {
    /// The pool already holds (or is creating) `max_size` objects.
    #[error("the pool is full: it already holds max_size objects; close one or raise max_size")]
    Full(T),
    /// The pool is closed.
    #[error("the pool is closed; it accepts no objects")]
    Closed(T),
}

impl<T> AddError<T> {
    /// The object that was refused.
    pub fn into_inner(self) -> T {
        match self {
            AddError::Full(t) | AddError::Closed(t) => t,
        }
    }
}

impl<T> fmt::Debug for AddError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddError::Full(_) => "Full(..)",
            AddError::Closed(_) => "Closed(..)",
        })
    }
}

/// `Debug` for values that must not print their payload (objects may hold credentials).
pub(crate) struct Opaque(pub(crate) &'static str);

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
