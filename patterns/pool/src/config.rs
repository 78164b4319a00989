//! The pool's settings and their builder.

use std::fmt;
use std::time::Duration;

use weft_time::{Backoff, BackoffPolicy, Clock, FastClock, Jitter};

use crate::error::ConfigError;
use crate::manager::Hook;
use crate::timer::Timer;
use crate::{Manager, Pool};

/// Which idle object a checkout takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QueueMode {
    /// The one idle longest: every object is used in turn, so all stay warm (and all are
    /// validated regularly). The default.
    #[default]
    Fifo,
    /// The one returned last: a core of hot objects serves the load and the rest stay
    /// idle long enough for [`idle_timeout`](Builder::idle_timeout) to reap them, so the
    /// pool shrinks back after a burst.
    Lifo,
}

/// Every setting of a pool; shared (cheaply cloned) by the sub-pools of a keyed pool.
pub(crate) struct Config<T> {
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) wait_timeout: Option<Duration>,
    pub(crate) create_timeout: Option<Duration>,
    pub(crate) recycle_timeout: Option<Duration>,
    pub(crate) queue_mode: QueueMode,
    pub(crate) test_on_checkout: bool,
    pub(crate) leak_threshold: Option<Duration>,
    pub(crate) create_retries: Option<BackoffPolicy>,
    pub(crate) maintenance_interval: Option<Duration>,
    // Immutable trait objects shared by reference count only: `std::sync::Arc`, since
    // loom's `Arc` cannot hold unsized values and there is nothing to model in them.
    pub(crate) clock: std::sync::Arc<dyn Clock>,
    pub(crate) timer: Option<std::sync::Arc<dyn Timer>>,
    pub(crate) post_create: Vec<Hook<T>>,
    pub(crate) pre_recycle: Vec<Hook<T>>,
    pub(crate) post_recycle: Vec<Hook<T>>,
}

impl<T> Clone for Config<T> {
    fn clone(&self) -> Self {
        Config {
            clock: std::sync::Arc::clone(&self.clock),
            timer: self.timer.clone(),
            post_create: self.post_create.clone(),
            pre_recycle: self.pre_recycle.clone(),
            post_recycle: self.post_recycle.clone(),
            ..*self
        }
    }
}

impl<T> Config<T> {
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Config {
            max_size: cores * 4,
            min_idle: 0,
            max_lifetime: None,
            idle_timeout: None,
            wait_timeout: None,
            create_timeout: None,
            recycle_timeout: None,
            queue_mode: QueueMode::Fifo,
            test_on_checkout: true,
            leak_threshold: None,
            create_retries: default_retries(),
            maintenance_interval: None,
            clock: std::sync::Arc::new(FastClock::new()),
            timer: None,
            post_create: Vec::new(),
            pre_recycle: Vec::new(),
            post_recycle: Vec::new(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_size == 0 {
            return Err(ConfigError::ZeroMaxSize);
        }
        if self.min_idle > self.max_size {
            return Err(ConfigError::MinIdleAboveMax {
                min_idle: self.min_idle,
                max_size: self.max_size,
            });
        }
        for (setting, value) in [
            ("max_lifetime", self.max_lifetime),
            ("idle_timeout", self.idle_timeout),
            ("leak_threshold", self.leak_threshold),
            ("maintenance_interval", self.maintenance_interval),
        ] {
            if value == Some(Duration::ZERO) {
                return Err(ConfigError::ZeroDuration { setting });
            }
        }
        Ok(())
    }
}

/// Exponential from 50 ms, doubling up to 1 s, full jitter, 3 retries: a backend that is
/// briefly away (a restart, a failover) is reached again within about a second, and one
/// that is down is reported within 350 ms at most. (`None`, no retries, is only the
/// fallback should these constants ever fail `weft-time`'s validation.)
fn default_retries() -> Option<BackoffPolicy> {
    Backoff::exponential(Duration::from_millis(50))
        .max_delay(Duration::from_secs(1))
        .max_retries(3)
        .jitter(Jitter::Full)
        .build()
        .ok()
}

/// Builds a [`Pool`]: chain settings, then [`build`](Builder::build).
///
/// Defaults: `max_size` four times the number of cores, `min_idle` 0, no lifetime, idle,
/// wait, create or recycle limits, [`QueueMode::Fifo`], test on checkout, no leak
/// detection, create retries exponential from 50 ms to 1 s with full jitter (3 retries),
/// the [`FastClock`] (the CPU's timestamp counter: a checkout and its return read the
/// clock a few times), and, with the `tokio` feature inside a tokio runtime, the
/// `TokioTimer`.
///
/// ```
/// use std::time::Duration;
/// use weft_pool::{Manager, Pool, QueueMode};
///
/// struct Numbers;
/// impl Manager for Numbers {
///     type Object = u64;
///     type Error = std::io::Error;
///     async fn create(&self) -> Result<u64, std::io::Error> { Ok(7) }
/// }
///
/// let pool = Pool::builder(Numbers)
///     .max_size(16)
///     .min_idle(2)
///     .max_lifetime(Duration::from_secs(30 * 60))
///     .idle_timeout(Duration::from_secs(10 * 60))
///     .queue_mode(QueueMode::Lifo)
///     .leak_threshold(Duration::from_secs(60))
///     .build()?;
/// assert_eq!(pool.status().max_size, 16);
/// # Ok::<(), weft_pool::ConfigError>(())
/// ```
#[must_use = "a Builder does nothing until `.build()` is called"]
pub struct Builder<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: Config<M::Object>,
}

impl<M: Manager> fmt::Debug for Builder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("max_size", &self.config.max_size)
            .field("min_idle", &self.config.min_idle)
            .finish_non_exhaustive()
    }
}

/// The setters [`Builder`] and [`KeyedBuilder`](crate::KeyedBuilder) share: each writes
/// one field of `self.config`.
macro_rules! config_setters {
    () => {
        /// The most objects the pool holds at once, idle and in use together (at least 1).
        /// For a keyed pool, the most per key.
        pub fn max_size(mut self, max_size: usize) -> Self {
            self.config.max_size = max_size;
            self
        }

        /// Idle objects to keep ready (at most `max_size`): created by
        /// [`Pool::warm_up`](crate::Pool::warm_up), by every
        /// [`Pool::maintain`](crate::Pool::maintain) pass and by background maintenance,
        /// and never reaped by `idle_timeout`.
        pub fn min_idle(mut self, min_idle: usize) -> Self {
            self.config.min_idle = min_idle;
            self
        }

        /// Objects older than this are closed when returned, when found at checkout, and
        /// by maintenance.
        pub fn max_lifetime(mut self, lifetime: std::time::Duration) -> Self {
            self.config.max_lifetime = Some(lifetime);
            self
        }

        /// Maintenance closes objects idle longer than this, down to `min_idle`.
        pub fn idle_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.idle_timeout = Some(timeout);
            self
        }

        /// How long a checkout may wait in the queue; then it fails with
        /// [`Error::Timeout`](crate::Error::Timeout)`(Wait)`. Zero means "never queue".
        pub fn wait_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.wait_timeout = Some(timeout);
            self
        }

        /// How long one creation attempt may take; a timed-out attempt counts as a
        /// failure and is retried like one.
        pub fn create_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.create_timeout = Some(timeout);
            self
        }

        /// How long recycling one object at checkout may take; a slow object is closed
        /// and the checkout moves on.
        pub fn recycle_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.recycle_timeout = Some(timeout);
            self
        }

        /// Which idle object a checkout takes (default [`QueueMode::Fifo`](crate::QueueMode::Fifo)).
        pub fn queue_mode(mut self, mode: crate::QueueMode) -> Self {
            self.config.queue_mode = mode;
            self
        }

        /// Whether [`Manager::recycle`](crate::Manager::recycle) and the recycle hooks run
        /// on every checkout of an idle object (default `true`).
        pub fn test_on_checkout(mut self, test: bool) -> Self {
            self.config.test_on_checkout = test;
            self
        }

        /// Reports a checkout held longer than this: a `tracing` warning naming where it
        /// was taken, and [`Stats::leaks`](crate::Stats::leaks). Checked by maintenance.
        pub fn leak_threshold(mut self, threshold: std::time::Duration) -> Self {
            self.config.leak_threshold = Some(threshold);
            self
        }

        /// The delays between creation attempts of one checkout (see the default on
        /// [`Builder`](crate::Builder)); `max_retries(0)` disables retries. On the async
        /// side the delays need a timer; without one, retries follow at once.
        pub fn create_retries(mut self, policy: weft_time::BackoffPolicy) -> Self {
            self.config.create_retries = Some(policy);
            self
        }

        /// The clock that lifetimes, idle times, deadlines and leak ages are read from
        /// (default [`FastClock`](weft_time::FastClock), real time read from the CPU's
        /// counter); a
        /// [`ManualClock`](weft_time::ManualClock) in tests, `TokioClock` under
        /// `tokio::time::pause`.
        pub fn clock(mut self, clock: impl weft_time::Clock) -> Self {
            self.config.clock = std::sync::Arc::new(clock);
            self
        }

        /// The timer async checkouts sleep on for timeouts and retry delays (default: the
        /// `TokioTimer` when built inside a tokio runtime with the
        /// `tokio` feature, else none).
        pub fn timer(mut self, timer: impl crate::Timer) -> Self {
            self.config.timer = Some(std::sync::Arc::new(timer));
            self
        }

        /// Runs maintenance ([`Pool::maintain`](crate::Pool::maintain)) in the
        /// background every `interval`, and at once after an object is closed below
        /// `min_idle`. Needs the `tokio` feature and a runtime at `build`; the task ends
        /// when the pool is dropped or closed.
        pub fn maintenance_interval(mut self, interval: std::time::Duration) -> Self {
            self.config.maintenance_interval = Some(interval);
            self
        }

        /// Runs `hook` on every new object; an `Err` rejects it and the checkout fails
        /// with [`Error::Hook`](crate::Error::Hook).
        pub fn post_create(mut self, hook: impl crate::HookFn<M::Object>) -> Self {
            self.config.post_create.push(std::sync::Arc::new(hook));
            self
        }

        /// Runs `hook` before [`Manager::recycle`](crate::Manager::recycle) at checkout;
        /// an `Err` closes the object and the checkout moves on.
        pub fn pre_recycle(mut self, hook: impl crate::HookFn<M::Object>) -> Self {
            self.config.pre_recycle.push(std::sync::Arc::new(hook));
            self
        }

        /// Runs `hook` after a successful recycle at checkout; an `Err` closes the object
        /// and the checkout moves on.
        pub fn post_recycle(mut self, hook: impl crate::HookFn<M::Object>) -> Self {
            self.config.post_recycle.push(std::sync::Arc::new(hook));
            self
        }
    };
}

pub(crate) use config_setters;

impl<M: Manager> Builder<M> {
    config_setters!();

    /// Validates the settings and builds the pool. No object is created here: call
    /// [`Pool::warm_up`](crate::Pool::warm_up) to pre-warm `min_idle` objects and see
    /// creation errors, or set a
    /// [`maintenance_interval`](Builder::maintenance_interval), whose first pass runs at
    /// once.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the invalid setting.
    pub fn build(self) -> Result<Pool<M>, ConfigError> {
        Pool::from_config(self.manager, self.config)
    }
}
