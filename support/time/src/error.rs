//! The crate's error type.

use std::time::Duration;

/// Why a backoff policy could not be built, or a manual clock could not be moved.
///
/// Every message says what is wrong and what to do about it.
///
/// ```
/// use std::time::Duration;
/// use weft_time::{Backoff, Error};
///
/// let err = Backoff::exponential(Duration::ZERO).build().unwrap_err();
/// assert_eq!(err, Error::ZeroInitialDelay);
/// assert!(err.to_string().contains("positive initial delay"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`Backoff::exponential`](crate::Backoff::exponential) was given a zero initial
    /// delay, which would stay zero however often it is multiplied.
    #[error(
        "exponential backoff needs a positive initial delay, got zero: pass the first retry's \
         delay, e.g. Backoff::exponential(Duration::from_millis(100)), or use \
         Backoff::constant(Duration::ZERO) to retry immediately"
    )]
    ZeroInitialDelay,

    /// The growth factor is below 1.0, NaN or infinite.
    #[error(
        "backoff factor {factor} is invalid: it must be a finite number >= 1.0 \
         (2.0 doubles the delay on every retry, 1.0 keeps it constant)"
    )]
    InvalidFactor {
        /// The factor that was passed to [`Backoff::factor`](crate::Backoff::factor).
        factor: f64,
    },

    /// The cap on delays is below the first delay, so no delay could honour both.
    #[error(
        "backoff max_delay {max_delay:?} is below the initial delay {initial:?}: raise \
         max_delay to at least the initial delay, or lower the initial delay"
    )]
    MaxDelayBelowInitial {
        /// The initial (first retry's) delay.
        initial: Duration,
        /// The cap that was passed to [`Backoff::max_delay`](crate::Backoff::max_delay).
        max_delay: Duration,
    },

    /// A setting was combined with a policy that would silently ignore it.
    #[error("backoff setting `{setting}` does not apply to {policy}: {hint}")]
    IgnoredSetting {
        /// The setting that would have no effect.
        setting: &'static str,
        /// The policy it was combined with.
        policy: &'static str,
        /// How to get the behaviour that was probably meant.
        hint: &'static str,
    },

    /// [`ManualClock::set_elapsed`](crate::ManualClock::set_elapsed) was asked to move the
    /// clock backwards; monotonic time never decreases.
    #[error(
        "a manual clock cannot go backwards: it reads {current:?} since creation but \
         {requested:?} was requested; pass a value >= the current elapsed time, or create a \
         new ManualClock to start over"
    )]
    ClockWentBackwards {
        /// The clock's elapsed time when the call was made (left unchanged).
        current: Duration,
        /// The elapsed time that was asked for.
        requested: Duration,
    },
}
