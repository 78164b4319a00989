//! [`RetryPolicy`]: how many attempts, for how long, and how far apart.

use std::time::Duration;

use weft_time::{Backoff, BackoffIter, BackoffPolicy, Jitter, Rng};

use super::RetryConfigError;

/// How a failed operation is retried: at most `max_attempts` attempts (the first one
/// included), optionally no retry whose delay would end past `max_elapsed` since the first
/// attempt began, and a [`BackoffPolicy`] for the delay before each retry.
///
/// The policy is immutable configuration: share one (by reference or clone) among any
/// number of concurrent calls and run each call with a [`Retry`](super::Retry).
///
/// Defaults ([`RetryPolicy::default`], [`RetryPolicy::builder`]):
///
/// - `max_attempts`: 3 ([`DEFAULT_MAX_ATTEMPTS`](RetryPolicy::DEFAULT_MAX_ATTEMPTS));
/// - `max_elapsed`: none;
/// - backoff: exponential from 100 ms, factor 2, capped at 10 s, with full jitter
///   ([`default_backoff`](RetryPolicy::default_backoff));
/// - jitter generator: randomly seeded for every call.
///
/// If the backoff has its own [`max_retries`](weft_time::Backoff::max_retries), both
/// limits apply: retrying stops at whichever is reached first.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_circuitbreaker::retry::RetryPolicy;
/// use weft_time::{Backoff, Jitter};
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(5)
///     .max_elapsed(Duration::from_secs(2))
///     .backoff(
///         Backoff::exponential(Duration::from_millis(50))
///             .max_delay(Duration::from_secs(1))
///             .jitter(Jitter::Equal)
///             .build()?,
///     )
///     .build()?;
/// assert_eq!(policy.max_attempts(), 5);
/// assert_eq!(policy.max_elapsed(), Some(Duration::from_secs(2)));
///
/// // Zero attempts is a configuration error, not a panic.
/// assert!(RetryPolicy::new(0).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; at least 1.
    max_attempts: u32,
    /// No retry may be scheduled to start later than this after the first attempt began.
    max_elapsed: Option<Duration>,
    /// The delay before each retry.
    backoff: BackoffPolicy,
    /// Seeds each call's jitter generator, for reproducible delays in tests.
    seed: Option<u64>,
}

impl RetryPolicy {
    /// The number of attempts (the first included) of a policy that does not set one.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

    /// A policy of `max_attempts` attempts in total (the first included) with the default
    /// backoff and no time limit.
    ///
    /// # Errors
    ///
    /// [`RetryConfigError::ZeroAttempts`] if `max_attempts` is 0.
    ///
    /// ```
    /// use weft_circuitbreaker::retry::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new(4)?;
    /// assert_eq!(policy.max_attempts(), 4); // the first attempt and up to 3 retries
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn new(max_attempts: u32) -> Result<Self, RetryConfigError> {
        Self::builder().max_attempts(max_attempts).build()
    }

    /// A builder starting from the defaults.
    ///
    /// ```
    /// use weft_circuitbreaker::retry::RetryPolicy;
    ///
    /// let policy = RetryPolicy::builder().max_attempts(2).seed(7).build()?;
    /// assert_eq!(policy.seed(), Some(7));
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            max_elapsed: None,
            backoff: Self::default_backoff(),
            seed: None,
        }
    }

    /// The backoff a policy uses unless told otherwise: exponential from 100 ms, factor
    /// 2, capped at 10 s, with [full jitter](Jitter::Full) (each delay uniform in
    /// `[0, computed delay]`), unlimited retries (`max_attempts` limits them).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryPolicy;
    /// use weft_time::Jitter;
    ///
    /// let backoff = RetryPolicy::default_backoff();
    /// assert_eq!(backoff.initial_delay(), Duration::from_millis(100));
    /// assert_eq!(backoff.max_delay(), Some(Duration::from_secs(10)));
    /// assert_eq!(backoff.jitter(), Jitter::Full);
    /// ```
    pub fn default_backoff() -> BackoffPolicy {
        let built = Backoff::exponential(Duration::from_millis(100))
            .factor(2.0)
            .max_delay(Duration::from_secs(10))
            .jitter(Jitter::Full)
            .build();
        match built {
            Ok(policy) => policy,
            // Constant, valid settings: a positive initial delay, a factor >= 1 and a cap
            // above the initial delay, with no setting the policy ignores.
            Err(_) => unreachable!("the default backoff settings are valid"),
        }
    }

    /// Attempts in total, the first included (at least 1).
    ///
    /// ```
    /// use weft_circuitbreaker::retry::RetryPolicy;
    /// assert_eq!(RetryPolicy::default().max_attempts(), 3);
    /// ```
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The time limit on retrying, if any: no retry is scheduled whose delay would end
    /// later than this after the first attempt began.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryPolicy;
    ///
    /// let policy = RetryPolicy::builder().max_elapsed(Duration::from_secs(1)).build()?;
    /// assert_eq!(policy.max_elapsed(), Some(Duration::from_secs(1)));
    /// assert_eq!(RetryPolicy::default().max_elapsed(), None);
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn max_elapsed(&self) -> Option<Duration> {
        self.max_elapsed
    }

    /// The backoff between attempts.
    ///
    /// ```
    /// use weft_circuitbreaker::retry::RetryPolicy;
    /// assert_eq!(RetryPolicy::default().backoff(), &RetryPolicy::default_backoff());
    /// ```
    pub fn backoff(&self) -> &BackoffPolicy {
        &self.backoff
    }

    /// The seed of every call's jitter generator, if one was set.
    ///
    /// ```
    /// use weft_circuitbreaker::retry::RetryPolicy;
    /// assert_eq!(RetryPolicy::default().seed(), None);
    /// ```
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// A fresh iterator over one call's retry delays, with the policy's jitter generator:
    /// seeded from [`seed`](RetryPolicy::seed) if set, randomly otherwise. Executors use
    /// it; it is public for callers that drive their own retry loop or want to preview
    /// the delays.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryPolicy;
    /// use weft_time::Backoff;
    ///
    /// let policy = RetryPolicy::builder()
    ///     .backoff(Backoff::exponential(Duration::from_millis(10)).build()?)
    ///     .build()?;
    /// let first: Vec<_> = policy.delays().take(3).map(|d| d.as_millis()).collect();
    /// assert_eq!(first, [10, 20, 40]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delays(&self) -> BackoffIter {
        self.backoff.iter_with_rng(self.rng())
    }

    /// A jitter generator for one call: seeded from [`seed`](RetryPolicy::seed) if set,
    /// randomly otherwise.
    pub(crate) fn rng(&self) -> Rng {
        match self.seed {
            Some(seed) => Rng::with_seed(seed),
            None => Rng::new(),
        }
    }
}

impl Default for RetryPolicy {
    /// 3 attempts, no time limit, the [default backoff](RetryPolicy::default_backoff).
    ///
    /// ```
    /// use weft_circuitbreaker::retry::RetryPolicy;
    /// assert_eq!(RetryPolicy::default(), RetryPolicy::builder().build().unwrap());
    /// ```
    fn default() -> Self {
        RetryPolicy {
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            max_elapsed: None,
            backoff: Self::default_backoff(),
            seed: None,
        }
    }
}

/// Builder of a [`RetryPolicy`]; start with [`RetryPolicy::builder`], chain settings,
/// then [`build`](RetryPolicyBuilder::build).
///
/// ```
/// use std::time::Duration;
/// use weft_circuitbreaker::retry::RetryPolicy;
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(4)
///     .max_elapsed(Duration::from_secs(3))
///     .build()?;
/// assert_eq!(policy.max_attempts(), 4);
/// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a RetryPolicyBuilder does nothing until `.build()` is called"]
pub struct RetryPolicyBuilder {
    max_attempts: u32,
    max_elapsed: Option<Duration>,
    backoff: BackoffPolicy,
    seed: Option<u64>,
}

impl RetryPolicyBuilder {
    /// Attempts in total, the first included: 1 means "never retry", 3 (the default)
    /// means up to two retries. Must be at least 1.
    ///
    /// ```
    /// use weft_circuitbreaker::retry::RetryPolicy;
    /// let policy = RetryPolicy::builder().max_attempts(1).build()?;
    /// assert_eq!(policy.max_attempts(), 1);
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Stops retrying when the next retry would start later than `max_elapsed` after the
    /// first attempt began (the time the attempts themselves took counts too). The check
    /// is made before each delay, so the call never sleeps past the limit only to give up
    /// afterwards; a retry whose delay ends exactly at the limit is still made. Measured
    /// on the executor's clock ([`Retry::clock`](super::Retry::clock)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryPolicy;
    /// let policy = RetryPolicy::builder().max_elapsed(Duration::from_millis(500)).build()?;
    /// assert_eq!(policy.max_elapsed(), Some(Duration::from_millis(500)));
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = Some(max_elapsed);
        self
    }

    /// Removes the time limit (the default; undoes an earlier
    /// [`max_elapsed`](RetryPolicyBuilder::max_elapsed)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryPolicy;
    /// let policy = RetryPolicy::builder()
    ///     .max_elapsed(Duration::from_secs(1))
    ///     .no_max_elapsed()
    ///     .build()?;
    /// assert_eq!(policy.max_elapsed(), None);
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn no_max_elapsed(mut self) -> Self {
        self.max_elapsed = None;
        self
    }

    /// The delay before each retry (default: [`RetryPolicy::default_backoff`]). Its
    /// jitter draws from the policy's generator (see [`seed`](RetryPolicyBuilder::seed)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::RetryPolicy;
    /// use weft_time::Backoff;
    ///
    /// let backoff = Backoff::constant(Duration::from_millis(250)).build()?;
    /// let policy = RetryPolicy::builder().backoff(backoff).build()?;
    /// assert_eq!(policy.delays().next(), Some(Duration::from_millis(250)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backoff(mut self, backoff: BackoffPolicy) -> Self {
        self.backoff = backoff;
        self
    }

    /// Seeds the jitter generator of every call, so delays are reproducible: meant for
    /// tests and simulations. In production leave it unset: calls that share a seed also
    /// share their jittered delays, which is exactly the synchronised retrying that jitter
    /// exists to prevent. [`Retry::rng`](super::Retry::rng) overrides it for one call.
    ///
    /// ```
    /// use weft_circuitbreaker::retry::RetryPolicy;
    ///
    /// let policy = RetryPolicy::builder().seed(42).build()?;
    /// let a: Vec<_> = policy.delays().take(4).collect();
    /// let b: Vec<_> = policy.delays().take(4).collect();
    /// assert_eq!(a, b);
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Validates the settings and returns the policy.
    ///
    /// # Errors
    ///
    /// [`RetryConfigError::ZeroAttempts`] if `max_attempts` is 0.
    ///
    /// ```
    /// use weft_circuitbreaker::retry::{RetryConfigError, RetryPolicy};
    ///
    /// let err = RetryPolicy::builder().max_attempts(0).build().unwrap_err();
    /// assert_eq!(err, RetryConfigError::ZeroAttempts);
    /// ```
    pub fn build(self) -> Result<RetryPolicy, RetryConfigError> {
        if self.max_attempts == 0 {
            return Err(RetryConfigError::ZeroAttempts);
        }
        Ok(RetryPolicy {
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
            backoff: self.backoff,
            seed: self.seed,
        })
    }
}
