//! [`Retry`]: runs an operation under a [`RetryPolicy`], sync or async.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use weft_time::{BackoffIter, Clock, Rng, SystemClock};

use super::{RetryBudget, RetryError, RetryPolicy};

/// Decides whether an error is worth retrying (a transient failure) or not (a bad request,
/// a refusal by a circuit breaker).
///
/// Implemented for every `FnMut(&E) -> bool` closure and for [`AnyError`], the default,
/// which retries every error. Implement it for a named type to share a classification
/// among many call sites.
///
/// ```
/// use weft_circuitbreaker::retry::RetryPredicate;
///
/// /// Retries 5xx statuses and 429, never other 4xx.
/// struct Transient;
///
/// impl RetryPredicate<u16> for Transient {
///     fn should_retry(&mut self, status: &u16) -> bool {
///         *status >= 500 || *status == 429
///     }
/// }
///
/// assert!(Transient.should_retry(&503));
/// assert!(!Transient.should_retry(&404));
/// ```
pub trait RetryPredicate<E> {
    /// `true` if a call that failed with `error` should be retried.
    fn should_retry(&mut self, error: &E) -> bool;
}

impl<E, F: FnMut(&E) -> bool> RetryPredicate<E> for F {
    fn should_retry(&mut self, error: &E) -> bool {
        self(error)
    }
}

/// The default [`RetryPredicate`]: every error is retried.
///
/// ```
/// use weft_circuitbreaker::retry::{AnyError, RetryPredicate};
/// assert!(AnyError.should_retry(&"anything"));
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AnyError;

impl<E> RetryPredicate<E> for AnyError {
    fn should_retry(&mut self, _error: &E) -> bool {
        true
    }
}

/// Told about each retry before its delay starts: for logging and metrics.
///
/// Implemented for every `FnMut(&E, u32, Duration)` closure (the error, the number of the
/// attempt that failed, the delay before the next attempt) and for [`NoNotify`], the
/// default, which does nothing.
///
/// ```
/// use std::time::Duration;
/// use weft_circuitbreaker::retry::RetryNotify;
///
/// let mut log = Vec::new();
/// let mut notify = |err: &&str, attempt: u32, delay: Duration| {
///     log.push(format!("attempt {attempt} failed ({err}), retrying in {delay:?}"));
/// };
/// notify.on_retry(&"timeout", 1, Duration::from_millis(100));
/// assert_eq!(log, ["attempt 1 failed (timeout), retrying in 100ms"]);
/// ```
pub trait RetryNotify<E> {
    /// Attempt number `attempt` failed with `error`; the next attempt starts after `delay`.
    fn on_retry(&mut self, error: &E, attempt: u32, delay: Duration);
}

impl<E, F: FnMut(&E, u32, Duration)> RetryNotify<E> for F {
    fn on_retry(&mut self, error: &E, attempt: u32, delay: Duration) {
        self(error, attempt, delay);
    }
}

/// The default [`RetryNotify`]: does nothing.
///
/// ```
/// use std::time::Duration;
/// use weft_circuitbreaker::retry::{NoNotify, RetryNotify};
/// NoNotify.on_retry(&"ignored", 1, Duration::ZERO);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NoNotify;

impl<E> RetryNotify<E> for NoNotify {
    fn on_retry(&mut self, _error: &E, _attempt: u32, _delay: Duration) {}
}

/// A [`RetryBudget`] on any clock, so [`Retry`] needs no clock type parameter.
trait Budget: Sync {
    fn deposit(&self);
    fn try_withdraw(&self) -> bool;
}

impl<C: Clock> Budget for RetryBudget<C> {
    fn deposit(&self) {
        RetryBudget::deposit(self);
    }

    fn try_withdraw(&self) -> bool {
        RetryBudget::try_withdraw(self)
    }
}

/// Runs one operation under a [`RetryPolicy`]: built per call with chained settings,
/// then consumed by [`call`](Retry::call) (blocking) or
/// `call_async` (feature `tokio`) / [`call_async_with_sleep`](Retry::call_async_with_sleep).
///
/// - [`budget`](Retry::budget): a shared [`RetryBudget`] the call deposits into once and
///   withdraws from before each retry;
/// - [`retry_on`](Retry::retry_on): which errors to retry (default: all);
/// - [`sleep_with`](Retry::sleep_with): how the blocking `call` waits (default
///   [`std::thread::sleep`]); tests pass a closure advancing a
///   [`ManualClock`](weft_time::ManualClock) and never sleep;
/// - [`clock`](Retry::clock): the clock `max_elapsed` is measured on (default
///   [`SystemClock`], or `weft_time::TokioClock` for `call_async`);
/// - [`on_retry`](Retry::on_retry): a hook told about every retry;
/// - [`rng`](Retry::rng): this call's jitter generator.
///
/// After each failed attempt the executor decides, in this order: the predicate rejects
/// the error → [`RetryError::Rejected`]; the attempt was the policy's last, the backoff has
/// no delay left, or the delay would end past `max_elapsed` →
/// [`RetryError::Exhausted`]; the budget refuses a withdrawal →
/// [`RetryError::BudgetExhausted`]; otherwise it notifies, sleeps and tries again. So a
/// budget is only drawn on for a retry that will really happen.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_circuitbreaker::retry::{Retry, RetryBudget, RetryError, RetryPolicy};
/// use weft_time::{Backoff, ManualClock};
///
/// #[derive(Debug, PartialEq)]
/// enum ApiError { Unavailable, BadRequest }
///
/// let clock = ManualClock::new();
/// let policy = RetryPolicy::builder()
///     .max_attempts(4)
///     .backoff(Backoff::exponential(Duration::from_millis(100)).build()?)
///     .build()?;
/// let budget = RetryBudget::with_clock(Duration::from_secs(10), 5, 0.2, clock.clone())?;
///
/// let mut failures = 2;
/// let value = Retry::new(&policy)
///     .budget(&budget)
///     .clock(&clock)
///     .retry_on(|e: &ApiError| *e == ApiError::Unavailable)
///     .sleep_with(|d| clock.advance(d))
///     .call(|_attempt| {
///         if failures > 0 {
///             failures -= 1;
///             Err(ApiError::Unavailable)
///         } else {
///             Ok("payload")
///         }
///     });
/// assert_eq!(value, Ok("payload"));
/// assert_eq!(clock.elapsed(), Duration::from_millis(100 + 200));
///
/// // A bad request is not retried.
/// let err = Retry::new(&policy)
///     .retry_on(|e: &ApiError| *e == ApiError::Unavailable)
///     .sleep_with(|d| clock.advance(d))
///     .call(|_| Err::<(), _>(ApiError::BadRequest))
///     .unwrap_err();
/// assert_eq!(err, RetryError::Rejected { error: ApiError::BadRequest, attempts: 1 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a Retry does nothing until `.call(..)` or `.call_async(..)`"]
pub struct Retry<'a, R = AnyError, S = fn(Duration), N = NoNotify> {
    policy: &'a RetryPolicy,
    budget: Option<&'a dyn Budget>,
    clock: Option<&'a dyn Clock>,
    retry_on: R,
    sleep: S,
    notify: N,
    rng: Option<Rng>,
}

impl<'a> Retry<'a> {
    /// An executor for `policy` with the defaults: no budget, every error retried,
    /// blocking sleeps with [`std::thread::sleep`], no notification.
    ///
    /// ```
    /// use weft_circuitbreaker::retry::{Retry, RetryPolicy};
    ///
    /// let policy = RetryPolicy::new(1)?; // a single attempt: never sleeps
    /// let out = Retry::new(&policy).call(|attempt| Ok::<_, ()>(attempt));
    /// assert_eq!(out, Ok(1));
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn new(policy: &'a RetryPolicy) -> Self {
        Retry {
            policy,
            budget: None,
            clock: None,
            retry_on: AnyError,
            sleep: std::thread::sleep,
            notify: NoNotify,
            rng: None,
        }
    }
}

impl<'a, R, S, N> Retry<'a, R, S, N> {
    /// Caps retries with a shared `budget`: the call deposits once, and each retry needs a
    /// successful withdrawal, else the call ends with [`RetryError::BudgetExhausted`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::{Retry, RetryBudget, RetryError, RetryPolicy};
    /// use weft_time::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let policy = RetryPolicy::new(3)?;
    /// // No floor; each call funds half a retry.
    /// let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 0.5, clock.clone())?;
    ///
    /// let err = Retry::new(&policy)
    ///     .budget(&budget)
    ///     .sleep_with(|d| clock.advance(d))
    ///     .call(|_| Err::<(), _>("down"))
    ///     .unwrap_err();
    /// assert_eq!(err, RetryError::BudgetExhausted { last: "down", attempts: 1 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn budget<C: Clock>(mut self, budget: &'a RetryBudget<C>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The clock `max_elapsed` is measured on: give the clock your sleep function moves
    /// (the [`ManualClock`](weft_time::ManualClock) a test advances). Defaults to
    /// [`SystemClock`] for [`call`](Retry::call) and
    /// [`call_async_with_sleep`](Retry::call_async_with_sleep), and to
    /// `weft_time::TokioClock` for `call_async` (feature `tokio`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::{Retry, RetryPolicy};
    /// use weft_time::{Backoff, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(100)
    ///     .max_elapsed(Duration::from_secs(1))
    ///     .backoff(Backoff::constant(Duration::from_millis(300)).build()?)
    ///     .build()?;
    /// let err = Retry::new(&policy)
    ///     .clock(&clock)
    ///     .sleep_with(|d| clock.advance(d))
    ///     .call(|_| Err::<(), _>("down"))
    ///     .unwrap_err();
    /// assert_eq!(err.attempts(), 4); // at 0, 300, 600 and 900 ms; 1200 ms would be too late
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock<C: Clock>(mut self, clock: &'a C) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Draws this call's jitter from `rng`, overriding the policy's
    /// [`seed`](super::RetryPolicyBuilder::seed).
    ///
    /// ```
    /// use weft_circuitbreaker::retry::{Retry, RetryPolicy};
    /// use weft_time::{ManualClock, Rng};
    ///
    /// let policy = RetryPolicy::new(3)?; // full jitter by default
    /// let run = |seed| {
    ///     let clock = ManualClock::new();
    ///     let _ = Retry::new(&policy)
    ///         .rng(Rng::with_seed(seed))
    ///         .sleep_with(|d| clock.advance(d))
    ///         .call(|_| Err::<(), _>("down"));
    ///     clock.elapsed()
    /// };
    /// assert_eq!(run(9), run(9));
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn rng(mut self, rng: Rng) -> Self {
        self.rng = Some(rng);
        self
    }

    /// Which errors to retry: a closure `FnMut(&E) -> bool` (annotate its argument's type)
    /// or any [`RetryPredicate`]. An error it rejects ends the call at once with
    /// [`RetryError::Rejected`].
    ///
    /// ```
    /// use weft_circuitbreaker::retry::{Retry, RetryError, RetryPolicy};
    ///
    /// let policy = RetryPolicy::new(5)?;
    /// let err = Retry::new(&policy)
    ///     .retry_on(|e: &std::io::Error| e.kind() == std::io::ErrorKind::TimedOut)
    ///     .call(|_| Err::<(), _>(std::io::Error::from(std::io::ErrorKind::PermissionDenied)))
    ///     .unwrap_err();
    /// assert!(matches!(err, RetryError::Rejected { attempts: 1, .. }));
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub fn retry_on<R2>(self, retry_on: R2) -> Retry<'a, R2, S, N> {
        Retry {
            policy: self.policy,
            budget: self.budget,
            clock: self.clock,
            retry_on,
            sleep: self.sleep,
            notify: self.notify,
            rng: self.rng,
        }
    }

    /// How the blocking [`call`](Retry::call) waits between attempts (default
    /// [`std::thread::sleep`]). Tests pass `|d| clock.advance(d)` with a
    /// [`ManualClock`](weft_time::ManualClock) and never sleep; a caller can also record
    /// the delays, or wait on a condition variable so shutdown can interrupt it. The async
    /// calls ignore it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::{Retry, RetryPolicy};
    /// use weft_time::Backoff;
    ///
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(4)
    ///     .backoff(Backoff::exponential(Duration::from_millis(10)).build()?)
    ///     .build()?;
    /// let mut slept = Vec::new();
    /// let _ = Retry::new(&policy)
    ///     .sleep_with(|d| slept.push(d))
    ///     .call(|_| Err::<(), _>("down"));
    /// assert_eq!(slept, [10, 20, 40].map(Duration::from_millis));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sleep_with<S2: FnMut(Duration)>(self, sleep: S2) -> Retry<'a, R, S2, N> {
        Retry {
            policy: self.policy,
            budget: self.budget,
            clock: self.clock,
            retry_on: self.retry_on,
            sleep,
            notify: self.notify,
            rng: self.rng,
        }
    }

    /// A hook called before each retry's delay with the error, the number of the attempt
    /// that failed and the delay: a closure `FnMut(&E, u32, Duration)` or any
    /// [`RetryNotify`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::{Retry, RetryPolicy};
    /// use weft_time::Backoff;
    ///
    /// let policy = RetryPolicy::builder()
    ///     .backoff(Backoff::constant(Duration::ZERO).build()?)
    ///     .build()?;
    /// let mut seen = Vec::new();
    /// let _ = Retry::new(&policy)
    ///     .on_retry(|e: &String, attempt: u32, _delay: Duration| {
    ///         seen.push(format!("{attempt}: {e}"));
    ///     })
    ///     .call(|attempt| Err::<(), _>(format!("error {attempt}")));
    /// assert_eq!(seen, ["1: error 1", "2: error 2"]); // the third attempt is the last
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_retry<N2>(self, notify: N2) -> Retry<'a, R, S, N2> {
        Retry {
            policy: self.policy,
            budget: self.budget,
            clock: self.clock,
            retry_on: self.retry_on,
            sleep: self.sleep,
            notify,
            rng: self.rng,
        }
    }

    /// Runs `op` until it succeeds or retrying stops, sleeping between attempts with the
    /// [`sleep_with`](Retry::sleep_with) function. `op` receives the attempt number,
    /// starting at 1.
    ///
    /// # Errors
    ///
    /// A [`RetryError`] carrying the last attempt's error: [`Rejected`](RetryError::Rejected)
    /// if the predicate refused it, [`Exhausted`](RetryError::Exhausted) if the policy's
    /// attempts, delays or time ran out, [`BudgetExhausted`](RetryError::BudgetExhausted)
    /// if the budget refused a retry.
    ///
    /// ```
    /// use weft_circuitbreaker::retry::{Retry, RetryError, RetryPolicy};
    /// use weft_time::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let policy = RetryPolicy::new(3)?;
    /// let mut seen = Vec::new();
    /// let err = Retry::new(&policy)
    ///     .sleep_with(|d| clock.advance(d))
    ///     .call(|attempt| {
    ///         seen.push(attempt);
    ///         Err::<(), _>("still down")
    ///     })
    ///     .unwrap_err();
    /// assert_eq!(seen, [1, 2, 3]);
    /// assert_eq!(err, RetryError::Exhausted { last: "still down", attempts: 3 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call<T, E, F>(mut self, mut op: F) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Result<T, E>,
        R: RetryPredicate<E>,
        S: FnMut(Duration),
        N: RetryNotify<E>,
    {
        let mut run = Run::start(self.policy, self.budget, self.clock, self.rng.take());
        loop {
            let attempt = run.attempt;
            let error = match op(attempt) {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            match run.after_failure(&error, &mut self.retry_on) {
                Next::Retry(delay) => {
                    self.notify.on_retry(&error, attempt, delay);
                    drop(error);
                    (self.sleep)(delay);
                }
                Next::Stop(stop) => return Err(stop.into_error(error, attempt)),
            }
        }
    }

    /// The async form of [`call`](Retry::call) for any runtime: waits between attempts
    /// by awaiting `sleep(delay)`. `op` receives the attempt number, starting at 1, and
    /// returns the attempt's future. Time for `max_elapsed` is read from
    /// [`clock`](Retry::clock) (default [`SystemClock`]). Dropping the returned future
    /// cancels the call between or during attempts.
    ///
    /// # Errors
    ///
    /// As for [`call`](Retry::call).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::{Retry, RetryPolicy};
    ///
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let waker = std::task::Waker::noop();
    /// #     let mut cx = std::task::Context::from_waker(waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #     }
    /// # }
    /// let policy = RetryPolicy::new(3)?;
    /// let mut slept = Duration::ZERO;
    /// let out = block_on(Retry::new(&policy).call_async_with_sleep(
    ///     |d| {
    ///         slept += d; // a real caller awaits its runtime's timer here
    ///         std::future::ready(())
    ///     },
    ///     |attempt| async move { if attempt < 3 { Err("busy") } else { Ok(attempt) } },
    /// ));
    /// assert_eq!(out, Ok(3));
    /// assert!(slept <= Duration::from_millis(100 + 200)); // full jitter: at most the delay
    /// # Ok::<(), weft_circuitbreaker::retry::RetryConfigError>(())
    /// ```
    pub async fn call_async_with_sleep<T, E, F, Fut, Z, ZFut>(
        mut self,
        mut sleep: Z,
        mut op: F,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        Z: FnMut(Duration) -> ZFut,
        ZFut: Future<Output = ()>,
        R: RetryPredicate<E>,
        N: RetryNotify<E>,
    {
        let mut run = Run::start(self.policy, self.budget, self.clock, self.rng.take());
        loop {
            let attempt = run.attempt;
            let error = match op(attempt).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            match run.after_failure(&error, &mut self.retry_on) {
                Next::Retry(delay) => {
                    self.notify.on_retry(&error, attempt, delay);
                    drop(error);
                    sleep(delay).await;
                }
                Next::Stop(stop) => return Err(stop.into_error(error, attempt)),
            }
        }
    }

    /// The async form of [`call`](Retry::call) on tokio: waits between attempts with
    /// [`tokio::time::sleep`], and measures `max_elapsed` on
    /// [`TokioClock`](weft_time::TokioClock) unless [`clock`](Retry::clock) says
    /// otherwise, so tests under `tokio::time::pause()` run instantly. Requires the
    /// `tokio` feature. Dropping the returned future cancels the call.
    ///
    /// To bound each attempt's duration, wrap the attempt in
    /// [`timeout`](super::timeout) and map [`Elapsed`](super::Elapsed) into your error.
    ///
    /// # Errors
    ///
    /// As for [`call`](Retry::call).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::{timeout, Retry, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let policy = RetryPolicy::new(3)?;
    /// let value = Retry::new(&policy)
    ///     .call_async(|attempt| async move {
    ///         // Each attempt gets 1 s; the first one hangs.
    ///         let work = async move {
    ///             if attempt == 1 {
    ///                 std::future::pending::<()>().await;
    ///             }
    ///             "pong"
    ///         };
    ///         timeout(Duration::from_secs(1), work).await
    ///     })
    ///     .await?;
    /// assert_eq!(value, "pong");
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn call_async<T, E, F, Fut>(mut self, op: F) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        R: RetryPredicate<E>,
        N: RetryNotify<E>,
    {
        if self.clock.is_none() {
            self.clock = Some(&weft_time::TokioClock);
        }
        self.call_async_with_sleep(tokio::time::sleep, op).await
    }
}

impl<R, S, N> fmt::Debug for Retry<'_, R, S, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("policy", self.policy)
            .field("budget", &self.budget.is_some())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// What to do after a failed attempt.
enum Next {
    /// Sleep this long, then make the next attempt.
    Retry(Duration),
    /// Give up.
    Stop(Stop),
}

/// Why retrying stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Rejected,
    Exhausted,
    Budget,
}

impl Stop {
    fn into_error<E>(self, error: E, attempts: u32) -> RetryError<E> {
        match self {
            Stop::Rejected => RetryError::Rejected { error, attempts },
            Stop::Exhausted => RetryError::Exhausted {
                last: error,
                attempts,
            },
            Stop::Budget => RetryError::BudgetExhausted {
                last: error,
                attempts,
            },
        }
    }
}

/// The state of one call, shared by the sync and async loops.
struct Run<'a> {
    policy: &'a RetryPolicy,
    budget: Option<&'a dyn Budget>,
    clock: &'a dyn Clock,
    /// When the first attempt began; read only if the policy has `max_elapsed`.
    start: Option<Instant>,
    delays: BackoffIter,
    /// The number of the attempt being made, from 1.
    attempt: u32,
}

impl<'a> Run<'a> {
    /// Starts a call: deposits into the budget and notes the start time.
    fn start(
        policy: &'a RetryPolicy,
        budget: Option<&'a dyn Budget>,
        clock: Option<&'a dyn Clock>,
        rng: Option<Rng>,
    ) -> Self {
        let clock = clock.unwrap_or(&SystemClock);
        if let Some(budget) = budget {
            budget.deposit();
        }
        let rng = rng.unwrap_or_else(|| policy.rng());
        Run {
            policy,
            budget,
            clock,
            start: policy.max_elapsed().map(|_| clock.now()),
            delays: policy.backoff().iter_with_rng(rng),
            attempt: 1,
        }
    }

    /// Decides what follows a failed attempt; on `Retry` the attempt number has moved on.
    fn after_failure<E>(&mut self, error: &E, retry_on: &mut impl RetryPredicate<E>) -> Next {
        let attempt = self.attempt;
        if !retry_on.should_retry(error) {
            tracing::debug!(attempt, "error is not retryable: giving up");
            return Next::Stop(Stop::Rejected);
        }
        if attempt >= self.policy.max_attempts() {
            tracing::debug!(attempt, "retry limit reached: giving up");
            return Next::Stop(Stop::Exhausted);
        }
        let Some(delay) = self.delays.next() else {
            tracing::debug!(attempt, "backoff has no delay left: giving up");
            return Next::Stop(Stop::Exhausted);
        };
        if let (Some(max), Some(start)) = (self.policy.max_elapsed(), self.start) {
            let elapsed = self.clock.now().saturating_duration_since(start);
            if elapsed.saturating_add(delay) > max {
                tracing::debug!(
                    attempt,
                    ?elapsed,
                    ?delay,
                    "retrying would pass max_elapsed: giving up"
                );
                return Next::Stop(Stop::Exhausted);
            }
        }
        if let Some(budget) = self.budget {
            if !budget.try_withdraw() {
                return Next::Stop(Stop::Budget);
            }
        }
        tracing::trace!(attempt, ?delay, "attempt failed: retrying");
        self.attempt = attempt.saturating_add(1);
        Next::Retry(delay)
    }
}
