//! The errors of the retry module: [`RetryConfigError`] for invalid settings and
//! [`RetryError`] for a call that failed for good.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// Why a [`RetryPolicy`](super::RetryPolicy) or [`RetryBudget`](super::RetryBudget) could
/// not be built. Every message says what is wrong and what to pass instead.
///
/// ```
/// use weft_circuitbreaker::retry::{RetryConfigError, RetryPolicy};
///
/// let err = RetryPolicy::new(0).unwrap_err();
/// assert_eq!(err, RetryConfigError::ZeroAttempts);
/// assert!(err.to_string().contains("at least 1"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RetryConfigError {
    /// `max_attempts` was zero; it counts the first attempt, so it must be at least 1.
    #[error(
        "max_attempts is 0, but it counts the first attempt too, so it must be at least 1: \
         pass 1 to call once without retrying, or e.g. 3 to allow two retries"
    )]
    ZeroAttempts,

    /// The budget's time window is zero or out of the supported range.
    #[error(
        "retry budget ttl {ttl:?} is out of range: pass a window between 1ms and 1h \
         (10s is a good default: each call then funds retries for 10 seconds)"
    )]
    InvalidTtl {
        /// The ttl that was passed.
        ttl: Duration,
    },

    /// The budget's retry ratio is negative, above 1000, NaN or infinite.
    #[error(
        "retry budget ratio {ratio} is invalid: pass a finite number between 0 and 1000 \
         (0.2 allows one retry per five calls; 0 leaves only the min_retries_per_sec floor)"
    )]
    InvalidRetryRatio {
        /// The ratio that was passed.
        ratio: f64,
    },
}

/// Why a retried call failed for good. Every variant carries the error of the last
/// attempt, so nothing the operation returned is lost: get it back with
/// [`into_inner`](RetryError::into_inner).
///
/// `Display` (for `E: Display`) says why retrying stopped and then shows the last error;
/// `source()` (for `E: Error`) is therefore the last error's own source, so an error
/// report does not print the last error twice.
///
/// ```
/// use weft_circuitbreaker::retry::{Retry, RetryError, RetryPolicy};
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(3)
///     .backoff(weft_time::Backoff::constant(std::time::Duration::ZERO).build()?)
///     .build()?;
/// let err = Retry::new(&policy)
///     .call(|attempt| Err::<(), _>(format!("attempt {attempt} failed")))
///     .unwrap_err();
///
/// assert!(matches!(err, RetryError::Exhausted { attempts: 3, .. }));
/// assert_eq!(err.to_string(), "gave up after 3 attempts (retry limit reached): attempt 3 failed");
/// assert_eq!(err.into_inner(), "attempt 3 failed");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryError<E> {
    /// Every attempt the policy allows was made and failed: `max_attempts` was reached,
    /// the backoff ran out of delays, or the next delay would have passed `max_elapsed`.
    Exhausted {
        /// The error of the last attempt.
        last: E,
        /// How many attempts were made (the first included).
        attempts: u32,
    },

    /// The error was retryable, but the [`RetryBudget`](super::RetryBudget) had no retry
    /// left: too large a share of recent calls were already retries.
    BudgetExhausted {
        /// The error of the last attempt.
        last: E,
        /// How many attempts were made (the first included).
        attempts: u32,
    },

    /// The retry predicate said this error is not worth retrying.
    Rejected {
        /// The error the predicate rejected.
        error: E,
        /// How many attempts were made (the first included).
        attempts: u32,
    },
}

impl<E> RetryError<E> {
    /// The error of the last attempt, consuming `self`.
    ///
    /// ```
    /// use weft_circuitbreaker::retry::RetryError;
    /// let err = RetryError::Rejected { error: "bad request", attempts: 1 };
    /// assert_eq!(err.into_inner(), "bad request");
    /// ```
    pub fn into_inner(self) -> E {
        match self {
            RetryError::Exhausted { last, .. } | RetryError::BudgetExhausted { last, .. } => last,
            RetryError::Rejected { error, .. } => error,
        }
    }

    /// A reference to the error of the last attempt.
    ///
    /// ```
    /// use weft_circuitbreaker::retry::RetryError;
    /// let err = RetryError::Exhausted { last: 503, attempts: 3 };
    /// assert_eq!(*err.last_error(), 503);
    /// ```
    pub fn last_error(&self) -> &E {
        match self {
            RetryError::Exhausted { last, .. } | RetryError::BudgetExhausted { last, .. } => last,
            RetryError::Rejected { error, .. } => error,
        }
    }

    /// How many attempts were made, the first included (always at least 1).
    ///
    /// ```
    /// use weft_circuitbreaker::retry::RetryError;
    /// let err = RetryError::BudgetExhausted { last: "unavailable", attempts: 2 };
    /// assert_eq!(err.attempts(), 2);
    /// ```
    pub fn attempts(&self) -> u32 {
        match self {
            RetryError::Exhausted { attempts, .. }
            | RetryError::BudgetExhausted { attempts, .. }
            | RetryError::Rejected { attempts, .. } => *attempts,
        }
    }

    /// Converts the carried error with `f`, keeping the variant and the attempt count
    /// (to wrap the error into a caller's own type, say).
    ///
    /// ```
    /// use weft_circuitbreaker::retry::RetryError;
    /// let err = RetryError::Exhausted { last: 503_u16, attempts: 3 };
    /// let mapped = err.map(|status| format!("HTTP {status}"));
    /// assert_eq!(mapped, RetryError::Exhausted { last: "HTTP 503".to_string(), attempts: 3 });
    /// ```
    pub fn map<F>(self, f: impl FnOnce(E) -> F) -> RetryError<F> {
        match self {
            RetryError::Exhausted { last, attempts } => RetryError::Exhausted {
                last: f(last),
                attempts,
            },
            RetryError::BudgetExhausted { last, attempts } => RetryError::BudgetExhausted {
                last: f(last),
                attempts,
            },
            RetryError::Rejected { error, attempts } => RetryError::Rejected {
                error: f(error),
                attempts,
            },
        }
    }
}

/// `"attempt"` or `"attempts"`.
fn plural(n: u32) -> &'static str {
    if n == 1 { "attempt" } else { "attempts" }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryError::Exhausted { last, attempts } => write!(
                f,
                "gave up after {attempts} {} (retry limit reached): {last}",
                plural(*attempts)
            ),
            RetryError::BudgetExhausted { last, attempts } => write!(
                f,
                "gave up after {attempts} {} (retry budget exhausted: too many recent calls \
                 were retries, so this one was not retried to spare the failing service): \
                 {last}",
                plural(*attempts)
            ),
            RetryError::Rejected { error, attempts } => write!(
                f,
                "gave up after {attempts} {} (the error is not retryable): {error}",
                plural(*attempts)
            ),
        }
    }
}

impl<E: StdError + 'static> StdError for RetryError<E> {
    /// The last error's source: `Display` already shows the last error itself.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.last_error().source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_singular_for_one_attempt() {
        let err = RetryError::Rejected {
            error: "bad input",
            attempts: 1,
        };
        assert_eq!(
            err.to_string(),
            "gave up after 1 attempt (the error is not retryable): bad input"
        );
    }

    #[test]
    fn source_skips_the_last_error_shown_by_display() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("outer")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let err = RetryError::Exhausted {
            last: Outer(std::io::Error::other("root cause")),
            attempts: 2,
        };
        assert_eq!(err.source().unwrap().to_string(), "root cause");
    }
}
