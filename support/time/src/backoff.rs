//! Backoff policies: how long to wait before each retry.
//!
//! [`Backoff`] is the builder, [`BackoffPolicy`] the validated, immutable (and `Copy`)
//! policy, [`BackoffIter`] the per-operation state that hands out one delay per retry.

use std::iter::FusedIterator;
use std::time::Duration;

use fastrand::Rng;

use crate::Error;
use crate::util::duration_from_nanos;

/// How a delay is randomised, so that many clients retrying after a shared failure do not
/// all come back at the same instant (the "thundering herd").
///
/// With `d` the un-jittered delay of a retry (see [`Backoff`]) and `U[a, b]` a uniform draw
/// from the closed range:
///
/// | variant | delay | from |
/// |---|---|---|
/// | [`None`](Jitter::None) | `d` | |
/// | [`Full`](Jitter::Full) | `U[0, d]` | AWS "full jitter" |
/// | [`Equal`](Jitter::Equal) | `d/2 + U[0, d/2]` | AWS "equal jitter" |
/// | [`Decorrelated`](Jitter::Decorrelated) | `min(max_delay, U[initial, 3 * previous])` | AWS "decorrelated jitter" |
///
/// See Marc Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015.
///
/// ```
/// use std::time::Duration;
/// use weft_time::{Backoff, Jitter, Rng};
///
/// let policy = Backoff::constant(Duration::from_secs(1)).jitter(Jitter::Equal).build()?;
/// let d = policy.delay(0, &mut Rng::with_seed(1)).unwrap();
/// assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(1));
/// # Ok::<(), weft_time::Error>(())
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Jitter {
    /// No randomness: exactly the computed delay. The default.
    #[default]
    None,
    /// Uniform in `[0, d]`: the widest spread, and the least total work for a herd of
    /// clients contending for one resource.
    Full,
    /// `d/2` plus a uniform draw from `[0, d/2]`: never waits less than half the
    /// computed delay.
    Equal,
    /// AWS decorrelated jitter: each delay is drawn from `[initial, 3 * previous delay]`,
    /// then capped at `max_delay`. It grows on its own, so it replaces the exponential
    /// `factor` and needs [`Backoff::exponential`]; the first delay is drawn from
    /// `[initial, 3 * initial]`. Stateful: the [`BackoffIter`] remembers the previous delay.
    Decorrelated,
}

/// Which growth the builder was started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// Every retry waits `initial`.
    Constant,
    /// Retry `n` waits `initial * factor^n`, capped.
    Exponential,
}

/// The factor [`Backoff::exponential`] uses unless [`Backoff::factor`] says otherwise.
const DEFAULT_FACTOR: f64 = 2.0;

/// The multiplier of decorrelated jitter (AWS).
const DECORRELATED_FACTOR: f64 = 3.0;

/// Builder of a [`BackoffPolicy`]: pick constant or exponential growth, then chain
/// settings and [`build`](Backoff::build).
///
/// Retries are numbered from 0 (the first retry, after the first failure). Without
/// jitter, retry `n` waits:
///
/// - constant: `delay`;
/// - exponential: `initial * factor^n`, capped at `max_delay`.
///
/// Defaults: factor 2.0, no `max_delay` (delays saturate at [`Duration::MAX`], so set a
/// cap for anything that may retry many times), unlimited retries, [`Jitter::None`].
///
/// Invalid settings are reported by [`build`](Backoff::build), never by a panic later:
/// a zero exponential initial delay, a factor below 1.0 or not finite, a `max_delay`
/// below the initial delay, and settings that the chosen policy would silently ignore
/// (a `factor` on constant backoff or with decorrelated jitter, decorrelated jitter on
/// constant backoff).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_time::{Backoff, Jitter};
///
/// let policy = Backoff::exponential(Duration::from_millis(100))
///     .factor(2.0)
///     .max_delay(Duration::from_secs(1))
///     .max_retries(6)
///     .build()?;
///
/// let delays: Vec<_> = policy.iter().map(|d| d.as_millis()).collect();
/// assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
///
/// // With jitter, seed the generator to get a reproducible sequence.
/// let jittered = Backoff::exponential(Duration::from_millis(100))
///     .max_delay(Duration::from_secs(1))
///     .jitter(Jitter::Full)
///     .build()?;
/// let a: Vec<_> = jittered.iter_with_rng(weft_time::Rng::with_seed(42)).take(5).collect();
/// let b: Vec<_> = jittered.iter_with_rng(weft_time::Rng::with_seed(42)).take(5).collect();
/// assert_eq!(a, b);
/// # Ok::<(), weft_time::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use = "a Backoff builder does nothing until `.build()` is called"]
pub struct Backoff {
    kind: Kind,
    initial: Duration,
    factor: Option<f64>,
    max_delay: Option<Duration>,
    max_retries: Option<u32>,
    jitter: Jitter,
}

impl Backoff {
    fn with_kind(kind: Kind, initial: Duration) -> Self {
        Backoff {
            kind,
            initial,
            factor: None,
            max_delay: None,
            max_retries: None,
            jitter: Jitter::None,
        }
    }

    /// Every retry waits `delay` (before jitter). A zero delay is allowed and means
    /// "retry immediately".
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    ///
    /// let policy = Backoff::constant(Duration::from_millis(50)).max_retries(3).build()?;
    /// assert_eq!(policy.iter().collect::<Vec<_>>(), [Duration::from_millis(50); 3]);
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn constant(delay: Duration) -> Self {
        Self::with_kind(Kind::Constant, delay)
    }

    /// Retry `n` (from 0) waits `initial * factor^n` (before jitter), capped at
    /// [`max_delay`](Backoff::max_delay). `initial` must be positive.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    ///
    /// let policy = Backoff::exponential(Duration::from_secs(1)).max_retries(3).build()?;
    /// let secs: Vec<_> = policy.iter().map(|d| d.as_secs()).collect();
    /// assert_eq!(secs, [1, 2, 4]); // default factor 2.0
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn exponential(initial: Duration) -> Self {
        Self::with_kind(Kind::Exponential, initial)
    }

    /// The growth factor of exponential backoff: finite and at least 1.0 (default 2.0).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::{Backoff, Error};
    ///
    /// let policy = Backoff::exponential(Duration::from_millis(100)).factor(1.5).build()?;
    /// assert_eq!(policy.iter().nth(2), Some(Duration::from_millis(225)));
    ///
    /// let err = Backoff::exponential(Duration::from_millis(100)).factor(0.5).build();
    /// assert_eq!(err.unwrap_err(), Error::InvalidFactor { factor: 0.5 });
    /// # Ok::<(), Error>(())
    /// ```
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = Some(factor);
        self
    }

    /// The largest delay any retry waits, jitter included; at least the initial delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    ///
    /// let policy = Backoff::exponential(Duration::from_secs(1))
    ///     .max_delay(Duration::from_secs(30))
    ///     .build()?;
    /// assert_eq!(policy.delay(1_000_000, &mut weft_time::Rng::new()), Some(Duration::from_secs(30)));
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = Some(max_delay);
        self
    }

    /// Gives up after `retries` retries: the iterator then yields `None`. Zero means
    /// "never retry". The default is unlimited.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    ///
    /// let policy = Backoff::constant(Duration::from_secs(1)).max_retries(2).build()?;
    /// let mut delays = policy.iter();
    /// assert!(delays.next().is_some());
    /// assert!(delays.next().is_some());
    /// assert_eq!(delays.next(), None); // exhausted
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// Never gives up (the default; undoes an earlier [`max_retries`](Backoff::max_retries)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    ///
    /// let policy = Backoff::constant(Duration::from_secs(1))
    ///     .max_retries(1)
    ///     .unlimited_retries()
    ///     .build()?;
    /// assert_eq!(policy.max_retries(), None);
    /// assert_eq!(policy.iter().take(100).count(), 100);
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn unlimited_retries(mut self) -> Self {
        self.max_retries = None;
        self
    }

    /// How each delay is randomised (default [`Jitter::None`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::{Backoff, Jitter, Rng};
    ///
    /// let policy = Backoff::constant(Duration::from_secs(2)).jitter(Jitter::Full).build()?;
    /// let d = policy.delay(0, &mut Rng::with_seed(3)).unwrap();
    /// assert!(d <= Duration::from_secs(2));
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Validates the settings and returns the policy.
    ///
    /// # Errors
    ///
    /// - [`Error::IgnoredSetting`]: a `factor` on constant backoff, decorrelated jitter on
    ///   constant backoff, or a `factor` together with decorrelated jitter;
    /// - [`Error::ZeroInitialDelay`]: exponential backoff from a zero delay;
    /// - [`Error::InvalidFactor`]: a factor below 1.0, NaN or infinite;
    /// - [`Error::MaxDelayBelowInitial`]: a `max_delay` below the initial delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::{Backoff, Error};
    ///
    /// let err = Backoff::exponential(Duration::from_secs(5))
    ///     .max_delay(Duration::from_secs(1))
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::MaxDelayBelowInitial { .. }));
    /// ```
    pub fn build(self) -> Result<BackoffPolicy, Error> {
        let factor_setting = "factor";
        let decorrelated_setting = "Jitter::Decorrelated";
        if self.kind == Kind::Constant {
            if self.factor.is_some() {
                return Err(Error::IgnoredSetting {
                    setting: factor_setting,
                    policy: "constant backoff",
                    hint: "start from Backoff::exponential(initial) for growing delays, or \
                           drop .factor(..)",
                });
            }
            if self.jitter == Jitter::Decorrelated {
                return Err(Error::IgnoredSetting {
                    setting: decorrelated_setting,
                    policy: "constant backoff",
                    hint: "decorrelated jitter grows the delay, so use \
                           Backoff::exponential(base).max_delay(cap).jitter(Jitter::Decorrelated), \
                           or keep the constant delay with Jitter::Full or Jitter::Equal",
                });
            }
        }
        if self.jitter == Jitter::Decorrelated && self.factor.is_some() {
            return Err(Error::IgnoredSetting {
                setting: factor_setting,
                policy: "decorrelated jitter",
                hint: "decorrelated jitter grows each delay up to 3x the previous one on its \
                       own, so drop .factor(..), or use Jitter::Full or Jitter::Equal to keep \
                       the factor",
            });
        }
        if self.kind == Kind::Exponential && self.initial.is_zero() {
            return Err(Error::ZeroInitialDelay);
        }
        let factor = match self.kind {
            Kind::Constant => 1.0,
            Kind::Exponential => self.factor.unwrap_or(DEFAULT_FACTOR),
        };
        if !factor.is_finite() || factor < 1.0 {
            return Err(Error::InvalidFactor { factor });
        }
        if let Some(max_delay) = self.max_delay {
            if max_delay < self.initial {
                return Err(Error::MaxDelayBelowInitial {
                    initial: self.initial,
                    max_delay,
                });
            }
        }
        let cap = match (self.kind, self.max_delay) {
            // A constant delay never exceeds its cap (checked above).
            (Kind::Constant, _) => self.initial,
            (Kind::Exponential, Some(max_delay)) => max_delay,
            (Kind::Exponential, None) => Duration::MAX,
        };
        Ok(BackoffPolicy {
            kind: self.kind,
            initial: self.initial,
            factor,
            max_delay: self.max_delay,
            cap_nanos: cap.as_nanos(),
            max_retries: self.max_retries,
            jitter: self.jitter,
        })
    }
}

/// A validated backoff policy: the delay before each retry. Built by [`Backoff`].
///
/// The policy is immutable and `Copy`, so one policy can serve any number of concurrent
/// operations. Each operation takes its own [`BackoffIter`] ([`iter`](BackoffPolicy::iter)
/// or [`iter_with_rng`](BackoffPolicy::iter_with_rng)), or calls the stateless
/// [`delay`](BackoffPolicy::delay) with its retry number.
///
/// No retry number overflows or panics: delays saturate at `max_delay`.
///
/// # Examples
///
/// A retry loop (a real caller sleeps where this one advances a manual clock):
///
/// ```
/// use std::time::Duration;
/// use weft_time::{Backoff, ManualClock};
///
/// let clock = ManualClock::new();
/// let policy = Backoff::exponential(Duration::from_millis(10)).max_retries(4).build()?;
///
/// let mut failures_left = 2;
/// let mut operation = || if failures_left > 0 { failures_left -= 1; Err("busy") } else { Ok(42) };
///
/// let mut delays = policy.iter();
/// let result = loop {
///     match operation() {
///         Ok(v) => break Ok(v),
///         Err(e) => match delays.next() {
///             Some(delay) => clock.advance(delay),
///             None => break Err(e),
///         },
///     }
/// };
/// assert_eq!(result, Ok(42));
/// assert_eq!(clock.elapsed(), Duration::from_millis(10 + 20));
/// # Ok::<(), weft_time::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    kind: Kind,
    /// The delay of retry 0 before jitter; the lower bound of decorrelated jitter.
    initial: Duration,
    /// 1.0 for constant backoff.
    factor: f64,
    /// As configured, for [`BackoffPolicy::max_delay`].
    max_delay: Option<Duration>,
    /// The effective cap in nanoseconds (`max_delay`, the constant delay, or
    /// `Duration::MAX`); every delay handed out is at most this.
    cap_nanos: u128,
    max_retries: Option<u32>,
    jitter: Jitter,
}

impl BackoffPolicy {
    /// The delay before retry `retry` (0 = the first retry), or `None` once
    /// [`max_retries`](Backoff::max_retries) retries have been made.
    ///
    /// This is a pure function of `retry` and the generator (unused without jitter), for
    /// callers that keep a retry counter rather than an iterator. Decorrelated jitter
    /// depends on the previous delay, which this stateless form does not know: it draws
    /// from the same envelope, `min(max_delay, U[initial, initial * 3^(retry + 1)])`; use
    /// [`iter`](BackoffPolicy::iter) for the exact AWS recurrence.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::{Backoff, Rng};
    ///
    /// let policy = Backoff::exponential(Duration::from_millis(100))
    ///     .max_delay(Duration::from_secs(10))
    ///     .max_retries(50)
    ///     .build()?;
    /// let mut rng = Rng::new();
    /// assert_eq!(policy.delay(0, &mut rng), Some(Duration::from_millis(100)));
    /// assert_eq!(policy.delay(3, &mut rng), Some(Duration::from_millis(800)));
    /// assert_eq!(policy.delay(49, &mut rng), Some(Duration::from_secs(10)));
    /// assert_eq!(policy.delay(50, &mut rng), None);
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn delay(&self, retry: u32, rng: &mut Rng) -> Option<Duration> {
        if self.is_exhausted(retry) {
            return None;
        }
        let nanos = match self.jitter {
            Jitter::Decorrelated => {
                let initial = self.initial.as_nanos();
                // The largest value the recurrence can reach at this retry.
                let hi = grow(
                    initial,
                    DECORRELATED_FACTOR,
                    retry.saturating_add(1),
                    u128::MAX,
                );
                rng.u128(initial..=hi).min(self.cap_nanos)
            }
            _ => self.jittered(self.base_nanos(retry), rng),
        };
        Some(duration_from_nanos(nanos))
    }

    /// A fresh iterator over the delays, its jitter seeded from fastrand's global
    /// generator (use [`iter_with_rng`](BackoffPolicy::iter_with_rng) for a reproducible
    /// sequence).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    ///
    /// let policy = Backoff::constant(Duration::from_secs(1)).max_retries(2).build()?;
    /// assert_eq!(policy.iter().count(), 2);
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn iter(&self) -> BackoffIter {
        self.iter_with_rng(Rng::new())
    }

    /// A fresh iterator over the delays drawing jitter from `rng`: the same seed gives the
    /// same sequence.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::{Backoff, Jitter, Rng};
    ///
    /// let policy = Backoff::exponential(Duration::from_millis(10))
    ///     .max_delay(Duration::from_secs(1))
    ///     .jitter(Jitter::Decorrelated)
    ///     .build()?;
    /// let run = |seed| policy.iter_with_rng(Rng::with_seed(seed)).take(8).collect::<Vec<_>>();
    /// assert_eq!(run(7), run(7));
    /// assert!(run(7).iter().all(|d| *d >= Duration::from_millis(10) && *d <= Duration::from_secs(1)));
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn iter_with_rng(&self, rng: Rng) -> BackoffIter {
        BackoffIter {
            policy: *self,
            retry: 0,
            previous_nanos: self.initial.as_nanos(),
            rng,
        }
    }

    /// The delay of the first retry, before jitter (the constant delay, or the initial one).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    /// let policy = Backoff::exponential(Duration::from_millis(5)).build()?;
    /// assert_eq!(policy.initial_delay(), Duration::from_millis(5));
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn initial_delay(&self) -> Duration {
        self.initial
    }

    /// The growth factor (1.0 for constant backoff).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    /// let policy = Backoff::exponential(Duration::from_millis(5)).build()?;
    /// assert_eq!(policy.factor(), 2.0);
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The configured cap on delays, if any.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    /// let policy = Backoff::exponential(Duration::from_millis(5)).build()?;
    /// assert_eq!(policy.max_delay(), None);
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn max_delay(&self) -> Option<Duration> {
        self.max_delay
    }

    /// The number of retries before giving up; `None` means unlimited.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    /// let policy = Backoff::constant(Duration::from_millis(5)).max_retries(3).build()?;
    /// assert_eq!(policy.max_retries(), Some(3));
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn max_retries(&self) -> Option<u32> {
        self.max_retries
    }

    /// The jitter applied to each delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::{Backoff, Jitter};
    /// let policy = Backoff::constant(Duration::from_millis(5)).jitter(Jitter::Full).build()?;
    /// assert_eq!(policy.jitter(), Jitter::Full);
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    fn is_exhausted(&self, retry: u32) -> bool {
        self.max_retries.is_some_and(|max| retry >= max)
    }

    /// The un-jittered delay of `retry`, in nanoseconds, at most `cap_nanos`.
    fn base_nanos(&self, retry: u32) -> u128 {
        let initial = self.initial.as_nanos();
        match self.kind {
            Kind::Constant => initial,
            Kind::Exponential => grow(initial, self.factor, retry, self.cap_nanos),
        }
    }

    /// Applies the stateless jitters (all but decorrelated) to a delay of `d` nanoseconds.
    fn jittered(&self, d: u128, rng: &mut Rng) -> u128 {
        match self.jitter {
            Jitter::None | Jitter::Decorrelated => d,
            Jitter::Full => rng.u128(0..=d),
            Jitter::Equal => {
                let half = d / 2;
                (d - half) + rng.u128(0..=half)
            }
        }
    }
}

/// `initial * factor^exponent` in nanoseconds, saturating at `cap` (`initial <= cap`,
/// `factor >= 1.0` finite).
///
/// Computed in `f64` with one `powf` (so any exponent costs the same) and clamped to
/// `[initial, cap]`. It is non-decreasing in `exponent` whenever successive powers of
/// `factor` differ by more than `powf`'s rounding error, that is for every factor not
/// within about 2^-50 of 1.0.
fn grow(initial: u128, factor: f64, exponent: u32, cap: u128) -> u128 {
    if exponent == 0 || factor <= 1.0 {
        return initial.min(cap);
    }
    let x = initial as f64 * factor.powf(f64::from(exponent));
    if x.is_nan() || x >= cap as f64 {
        return cap;
    }
    // `as` saturates; the max keeps retry n >= retry 0 even where `f64` rounded `initial`.
    (x as u128).max(initial).min(cap)
}

/// The state of one operation's retries: yields the delay before each retry, then `None`
/// once the policy's retries are exhausted (and forever after).
///
/// Created by [`BackoffPolicy::iter`] or [`BackoffPolicy::iter_with_rng`]. Cloning it
/// clones the generator's state, so the clone yields the same delays.
///
/// ```
/// use std::time::Duration;
/// use weft_time::Backoff;
///
/// let policy = Backoff::exponential(Duration::from_secs(1)).max_retries(2).build()?;
/// let mut delays = policy.iter();
/// assert_eq!(delays.next(), Some(Duration::from_secs(1)));
/// assert_eq!(delays.next(), Some(Duration::from_secs(2)));
/// assert_eq!(delays.next(), None);
/// # Ok::<(), weft_time::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BackoffIter {
    policy: BackoffPolicy,
    /// The number of delays handed out (the next retry's number); saturates at `u32::MAX`.
    retry: u32,
    /// The previous delay in nanoseconds (`initial` before the first), for decorrelated
    /// jitter.
    previous_nanos: u128,
    rng: Rng,
}

impl BackoffIter {
    /// How many delays this iterator has handed out since it was created or reset.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    ///
    /// let mut delays = Backoff::constant(Duration::from_secs(1)).build()?.iter();
    /// delays.next();
    /// delays.next();
    /// assert_eq!(delays.retries(), 2);
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn retries(&self) -> u32 {
        self.retry
    }

    /// Starts over from the first retry's delay, as after a success in a long-lived
    /// reconnect loop. The generator keeps its state (it is not reseeded).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    ///
    /// let mut delays = Backoff::exponential(Duration::from_secs(1)).build()?.iter();
    /// delays.next();
    /// delays.next();
    /// delays.reset();
    /// assert_eq!(delays.retries(), 0);
    /// assert_eq!(delays.next(), Some(Duration::from_secs(1)));
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn reset(&mut self) {
        self.retry = 0;
        self.previous_nanos = self.policy.initial.as_nanos();
    }

    /// The policy this iterator follows.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    ///
    /// let policy = Backoff::constant(Duration::from_secs(1)).build()?;
    /// assert_eq!(policy.iter().policy(), &policy);
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }
}

impl Iterator for BackoffIter {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let policy = &self.policy;
        if policy.is_exhausted(self.retry) {
            return None;
        }
        let nanos = match policy.jitter {
            Jitter::Decorrelated => {
                // AWS: sleep = min(cap, random_between(base, sleep * 3)).
                let hi = self.previous_nanos.saturating_mul(3);
                let next = self
                    .rng
                    .u128(policy.initial.as_nanos()..=hi)
                    .min(policy.cap_nanos);
                self.previous_nanos = next;
                next
            }
            _ => policy.jittered(policy.base_nanos(self.retry), &mut self.rng),
        };
        self.retry = self.retry.saturating_add(1);
        Some(duration_from_nanos(nanos))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.policy.max_retries {
            Some(max) => {
                let left = usize::try_from(max.saturating_sub(self.retry)).unwrap_or(usize::MAX);
                (left, Some(left))
            }
            None => (usize::MAX, None),
        }
    }
}

impl FusedIterator for BackoffIter {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grow_saturates_instead_of_overflowing() {
        assert_eq!(grow(1, 2.0, u32::MAX, u128::MAX), u128::MAX);
        assert_eq!(grow(100, 10.0, 2, 5_000), 5_000);
        assert_eq!(grow(100, 10.0, 1, 5_000), 1_000);
        assert_eq!(grow(7, 1.0, u32::MAX, 100), 7);
        assert_eq!(grow(7, 3.0, 0, 100), 7);
    }

    #[test]
    fn grow_never_goes_below_initial_for_huge_initial_delays() {
        // 2^60 + 1 ns does not round-trip through f64.
        let initial = (1u128 << 60) + 1;
        assert!(grow(initial, 1.000_000_000_000_001, 1, u128::MAX) >= initial);
    }

    #[test]
    fn constant_ignores_retry_number() {
        let p = Backoff::constant(ms(30)).build().unwrap();
        let mut rng = Rng::with_seed(0);
        assert_eq!(p.delay(0, &mut rng), Some(ms(30)));
        assert_eq!(p.delay(u32::MAX, &mut rng), Some(ms(30)));
    }

    #[test]
    fn equal_jitter_of_an_odd_delay_stays_within_bounds() {
        let p = Backoff::constant(Duration::from_nanos(3))
            .jitter(Jitter::Equal)
            .build()
            .unwrap();
        let mut rng = Rng::with_seed(9);
        for _ in 0..200 {
            let d = p.delay(0, &mut rng).unwrap().as_nanos();
            assert!((2..=3).contains(&d), "{d}");
        }
    }

    #[test]
    fn stateless_decorrelated_stays_in_its_envelope() {
        let p = Backoff::exponential(ms(10))
            .max_delay(ms(1_000))
            .jitter(Jitter::Decorrelated)
            .build()
            .unwrap();
        let mut rng = Rng::with_seed(5);
        for _ in 0..200 {
            let first = p.delay(0, &mut rng).unwrap();
            assert!(first >= ms(10) && first <= ms(30), "{first:?}");
            let late = p.delay(u32::MAX - 1, &mut rng).unwrap();
            assert!(late >= ms(10) && late <= ms(1_000), "{late:?}");
        }
    }

    #[test]
    fn size_hint_counts_remaining_retries() {
        let p = Backoff::constant(ms(1)).max_retries(3).build().unwrap();
        let mut it = p.iter();
        assert_eq!(it.size_hint(), (3, Some(3)));
        it.next();
        assert_eq!(it.size_hint(), (2, Some(2)));
        let unlimited = Backoff::constant(ms(1)).build().unwrap();
        assert_eq!(unlimited.iter().size_hint(), (usize::MAX, None));
    }

    #[test]
    fn unlimited_iterator_keeps_yielding_the_cap_after_u32_max_retries() {
        let p = Backoff::exponential(ms(1))
            .max_delay(ms(8))
            .build()
            .unwrap();
        let mut it = p.iter();
        it.retry = u32::MAX - 1;
        assert_eq!(it.next(), Some(ms(8)));
        assert_eq!(it.next(), Some(ms(8)));
        assert_eq!(it.retries(), u32::MAX);
    }
}
