//! The circuit breaker: configuration, state machine, permits.
//!
//! # Design
//!
//! The hot state is one `AtomicU64`, the *state word*:
//!
//! ```text
//! bits  0..3   state (Closed, Open, HalfOpen, ForcedOpen, Disabled, MetricsOnly)
//! bits  3..13  half-open permits still available
//! bits 13..23  half-open trials finished
//! bits 23..33  half-open trials that failed
//! bits 33..43  half-open trials that were slow
//! bits 43..64  generation: +1 on every transition
//! ```
//!
//! A closed-state call reads the word once and records its outcome in the window (see
//! `window.rs`): no lock, no write to a shared line in steady state beyond the window's
//! position counter. A half-open call takes a permit by CAS-decrementing the permit
//! field, so exactly `half_open_permits` trial calls run; a trial's outcome is added to
//! the trial fields by CAS, and a permit whose call is cancelled is CAS-incremented back.
//!
//! Transitions (rare) run under a mutex that serialises them and owns the open-state
//! bookkeeping (consecutive openings for the backoff, the listeners). A transition checks
//! that the word is still in the generation it was decided in and installs the new state
//! with a new generation by CAS, retrying only if a concurrent permit or trial update
//! changed the counter fields meanwhile. Outcomes carry the generation of their permit:
//! an outcome from an earlier generation (a slow call that started before the breaker
//! opened) never counts towards a later state's decision. The open deadline is published
//! before the state word (Release/Acquire), so a caller that sees `Open` sees its
//! deadline; the first caller after it moves the breaker to half-open (the loom model
//! `open_expiry_races_calls` checks no transition is lost or doubled).

use std::fmt;
use std::time::{Duration, Instant};

use weft_sync::atomic::{AtomicU64, Ordering};
use weft_sync::{Arc, CachePadded, Mutex};
use weft_time::{BackoffPolicy, Clock, Epoch, FastClock};

use crate::error::{ConfigError, NotPermitted};
use crate::window::{self, CountWindow, TimeWindow, Totals, Window};

/// The breaker's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls flow; outcomes are recorded; too many failures (or slow calls) open it.
    Closed,
    /// Calls are refused until the open duration passes.
    Open,
    /// A fixed number of trial calls run; their outcomes close or reopen the breaker.
    HalfOpen,
    /// Refuses every call until changed by hand.
    ForcedOpen,
    /// Lets every call through and records nothing.
    Disabled,
    /// Lets every call through, records metrics, never changes state on its own.
    MetricsOnly,
}

impl State {
    fn code(self) -> u64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::ForcedOpen => 3,
            State::Disabled => 4,
            State::MetricsOnly => 5,
        }
    }

    fn from_code(code: u64) -> State {
        match code {
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            4 => State::Disabled,
            5 => State::MetricsOnly,
            _ => State::Closed,
        }
    }
}

/// How a finished call counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Counts as a success.
    Success,
    /// Counts as a failure.
    Failure,
    /// Does not count at all (a client error, say, that says nothing about the service).
    Ignored,
}

/// Which calls the failure and slow-call rates are computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlidingWindow {
    /// The last `n` calls.
    Count(u32),
    /// The calls of the last `buckets × bucket` of time.
    Time {
        /// Number of buckets.
        buckets: u32,
        /// Length of one bucket.
        bucket: Duration,
    },
}

impl SlidingWindow {
    /// The last `n` calls (at most 524 287).
    pub fn count(n: u32) -> Self {
        SlidingWindow::Count(n)
    }

    /// The calls of the last `span`, in `buckets` buckets (rates move in steps of
    /// `span / buckets`).
    pub fn time(span: Duration, buckets: u32) -> Self {
        SlidingWindow::Time {
            buckets,
            bucket: span / buckets.max(1),
        }
    }
}

// ---- the state word ----------------------------------------------------------------------

const STATE_BITS: u32 = 3;
const FIELD_BITS: u32 = 10;
const PERMITS_SHIFT: u32 = STATE_BITS;
const DONE_SHIFT: u32 = PERMITS_SHIFT + FIELD_BITS;
const FAILED_SHIFT: u32 = DONE_SHIFT + FIELD_BITS;
const SLOW_SHIFT: u32 = FAILED_SHIFT + FIELD_BITS;
const GEN_SHIFT: u32 = SLOW_SHIFT + FIELD_BITS;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;
/// The most half-open permits a breaker can hand out.
pub(crate) const MAX_PERMITS: u32 = FIELD_MASK as u32;

/// A decoded state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Word(u64);

impl Word {
    fn new(state: State, generation: u64, permits: u32) -> Word {
        Word(state.code() | (u64::from(permits) << PERMITS_SHIFT) | (generation << GEN_SHIFT))
    }
    fn state(self) -> State {
        State::from_code(self.0 & ((1 << STATE_BITS) - 1))
    }
    fn field(self, shift: u32) -> u32 {
        ((self.0 >> shift) & FIELD_MASK) as u32
    }
    fn permits(self) -> u32 {
        self.field(PERMITS_SHIFT)
    }
    fn done(self) -> u32 {
        self.field(DONE_SHIFT)
    }
    fn failed(self) -> u32 {
        self.field(FAILED_SHIFT)
    }
    fn slow(self) -> u32 {
        self.field(SLOW_SHIFT)
    }
    fn generation(self) -> u64 {
        self.0 >> GEN_SHIFT
    }
}

// ---- configuration -------------------------------------------------------------------------

/// A transition, as delivered to listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The breaker's name.
    pub name: &'static str,
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// When (the breaker's clock).
    pub at: Instant,
}

type Listener = Box<dyn Fn(&Transition) + Send + Sync>;

/// Configuration of a [`CircuitBreaker`], with resilience4j's defaults.
///
/// ```
/// use std::time::Duration;
/// use weft_circuitbreaker::{CircuitBreaker, SlidingWindow};
///
/// let breaker = CircuitBreaker::builder()
///     .name("payments")
///     .sliding_window(SlidingWindow::count(50))
///     .failure_rate_threshold(0.5)
///     .slow_calls(Duration::from_millis(500), 0.8)
///     .minimum_calls(20)
///     .half_open_permits(3)
///     .open_for(Duration::from_secs(10))
///     .build()?;
/// assert_eq!(breaker.state(), weft_circuitbreaker::State::Closed);
/// # Ok::<(), weft_circuitbreaker::ConfigError>(())
/// ```
pub struct Builder<C: Clock = FastClock> {
    name: &'static str,
    window: SlidingWindow,
    failure_rate: f64,
    slow: Option<(Duration, f64)>,
    minimum_calls: u32,
    half_open_permits: u32,
    open: OpenDuration,
    clock: C,
    listeners: Vec<Listener>,
}

/// How long the breaker stays open.
#[derive(Debug, Clone)]
enum OpenDuration {
    Fixed(Duration),
    Backoff(BackoffPolicy),
}

impl<C: Clock> fmt::Debug for Builder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("window", &self.window)
            .field("failure_rate", &self.failure_rate)
            .field("slow", &self.slow)
            .field("minimum_calls", &self.minimum_calls)
            .field("half_open_permits", &self.half_open_permits)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> Builder<C> {
    /// A name for logs, `tracing` events and transitions (default `"circuit-breaker"`).
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The window the rates are computed over (default: the last 100 calls).
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.window = window;
        self
    }

    /// Opens when the failure rate reaches this fraction (default 0.5).
    pub fn failure_rate_threshold(mut self, rate: f64) -> Self {
        self.failure_rate = rate;
        self
    }

    /// Counts calls longer than `duration` as slow, and opens when the slow-call rate
    /// reaches `rate` (default: slow calls are not tracked, which saves two clock reads
    /// per call).
    pub fn slow_calls(mut self, duration: Duration, rate: f64) -> Self {
        self.slow = Some((duration, rate));
        self
    }

    /// Rates are not judged before the window holds this many calls (default 100, or the
    /// window size if smaller).
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.minimum_calls = n;
        self
    }

    /// Trial calls let through in half-open (default 10); their outcomes decide.
    pub fn half_open_permits(mut self, n: u32) -> Self {
        self.half_open_permits = n;
        self
    }

    /// Stays open this long before trying half-open (default 60 s).
    pub fn open_for(mut self, duration: Duration) -> Self {
        self.open = OpenDuration::Fixed(duration);
        self
    }

    /// Stays open for the backoff's n-th delay on the n-th consecutive opening (reset when
    /// the breaker closes): exponential, capped, jittered open durations.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_time::Backoff;
    /// let b = weft_circuitbreaker::CircuitBreaker::builder()
    ///     .open_backoff(Backoff::exponential(Duration::from_secs(5)).max_delay(Duration::from_secs(300)).build()?)
    ///     .build();
    /// assert!(b.is_ok());
    /// # Ok::<(), weft_time::Error>(())
    /// ```
    pub fn open_backoff(mut self, policy: BackoffPolicy) -> Self {
        self.open = OpenDuration::Backoff(policy);
        self
    }

    /// Calls `listener` on every transition (after the `tracing` event).
    pub fn on_transition(mut self, listener: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.listeners.push(Box::new(listener));
        self
    }

    /// The time source (default [`FastClock`]).
    pub fn clock<C2: Clock>(self, clock: C2) -> Builder<C2> {
        Builder {
            name: self.name,
            window: self.window,
            failure_rate: self.failure_rate,
            slow: self.slow,
            minimum_calls: self.minimum_calls,
            half_open_permits: self.half_open_permits,
            open: self.open,
            clock,
            listeners: self.listeners,
        }
    }

    /// Validates the configuration and builds the breaker, closed.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a rate outside `(0, 1]`, a zero or oversized window, permit or
    /// minimum count, or a zero duration.
    pub fn build(self) -> Result<CircuitBreaker<C>, ConfigError> {
        check_rate("failure_rate_threshold", self.failure_rate)?;
        let slow = match self.slow {
            Some((d, rate)) => {
                check_rate("slow call rate threshold", rate)?;
                if d.is_zero() {
                    return Err(ConfigError::ZeroDuration {
                        what: "slow call duration",
                    });
                }
                Some((u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), rate))
            }
            None => None,
        };
        check_size(
            "half_open_permits",
            u64::from(self.half_open_permits),
            u64::from(MAX_PERMITS),
        )?;
        check_size(
            "minimum_calls",
            u64::from(self.minimum_calls),
            u64::from(u32::MAX),
        )?;
        let (window, capacity) = match self.window {
            SlidingWindow::Count(n) => {
                check_size(
                    "count window size",
                    u64::from(n),
                    u64::from(window::MAX_COUNT_WINDOW),
                )?;
                (Window::Count(CountWindow::new(n)), u64::from(n))
            }
            SlidingWindow::Time { buckets, bucket } => {
                check_size("time window buckets", u64::from(buckets), 3600)?;
                if bucket.is_zero() {
                    return Err(ConfigError::ZeroDuration {
                        what: "time window bucket",
                    });
                }
                let len = u64::try_from(bucket.as_nanos()).unwrap_or(u64::MAX);
                (Window::Time(TimeWindow::new(buckets, len)), u64::MAX)
            }
        };
        if let OpenDuration::Fixed(d) = self.open {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration {
                    what: "open duration",
                });
            }
        }
        let epoch = Epoch::now(&self.clock);
        Ok(CircuitBreaker {
            word: CachePadded::new(AtomicU64::new(Word::new(State::Closed, 0, 0).0)),
            open_until: AtomicU64::new(0),
            window,
            counters: Counters::default(),
            transitions: Mutex::new(TransitionBook {
                consecutive_opens: 0,
                // Seeded per breaker, so breakers that open together do not pick the same
                // jittered open durations.
                rng: weft_time::Rng::new(),
            }),
            config: Settings {
                name: self.name,
                failure_rate: self.failure_rate,
                slow,
                minimum_calls: u64::from(self.minimum_calls).min(capacity).max(1),
                half_open_permits: self.half_open_permits,
                open: self.open,
            },
            listeners: self.listeners,
            clock: self.clock,
            epoch,
        })
    }
}

fn check_rate(what: &'static str, value: f64) -> Result<(), ConfigError> {
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(ConfigError::Rate { what, value })
    }
}

fn check_size(what: &'static str, value: u64, max: u64) -> Result<(), ConfigError> {
    if (1..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Size { what, value, max })
    }
}

/// The validated settings.
#[derive(Debug)]
struct Settings {
    name: &'static str,
    failure_rate: f64,
    /// Slow-call threshold in nanoseconds and the slow-call rate that opens.
    slow: Option<(u64, f64)>,
    minimum_calls: u64,
    half_open_permits: u32,
    open: OpenDuration,
}

/// Bookkeeping owned by the transition lock.
#[derive(Debug)]
struct TransitionBook {
    /// Openings since the breaker last closed (the backoff's attempt number).
    consecutive_opens: u32,
    /// Jitter for the open backoff.
    rng: weft_time::Rng,
}

/// Lifetime counters (off the success hot path).
#[derive(Debug, Default)]
struct Counters {
    failed: AtomicU64,
    slow: AtomicU64,
    ignored: AtomicU64,
    not_permitted: AtomicU64,
    transitions: AtomicU64,
}

/// A snapshot of a breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// The state.
    pub state: State,
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub failed_in_window: u64,
    /// Slow calls in the window.
    pub slow_in_window: u64,
    /// The window's failure rate, `[0, 1]`.
    pub failure_rate: f64,
    /// The window's slow-call rate, `[0, 1]`.
    pub slow_call_rate: f64,
    /// Failed calls since creation.
    pub failed: u64,
    /// Slow calls since creation.
    pub slow: u64,
    /// Calls whose outcome was ignored, since creation.
    pub ignored: u64,
    /// Calls refused, since creation.
    pub not_permitted: u64,
    /// Transitions since creation.
    pub transitions: u64,
    /// Half-open permits still available (0 outside half-open).
    pub half_open_permits: u32,
}

// ---- the breaker ---------------------------------------------------------------------------

/// A circuit breaker.
///
/// Wrap calls to a dependency with it: while the dependency fails too often (or answers
/// too slowly), the breaker *opens* and refuses calls at once for a while, sparing the
/// dependency and the callers' time; then it lets a fixed number of *trial* calls through
/// (*half-open*), and their outcomes close it again or reopen it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_circuitbreaker::{CallError, CircuitBreaker, SlidingWindow, State};
/// use weft_time::ManualClock;
///
/// let clock = ManualClock::new();
/// let breaker = CircuitBreaker::builder()
///     .sliding_window(SlidingWindow::count(4))
///     .minimum_calls(4)
///     .half_open_permits(1)
///     .open_for(Duration::from_secs(30))
///     .clock(clock.clone())
///     .build()?;
///
/// for _ in 0..4 {
///     let _ = breaker.call(|| Err::<(), _>("connection refused"));
/// }
/// assert_eq!(breaker.state(), State::Open);
/// assert!(matches!(breaker.call(|| Ok::<_, ()>(1)), Err(CallError::NotPermitted(_))));
///
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(breaker.call(|| Ok::<_, ()>(2)).unwrap(), 2); // the trial call
/// assert_eq!(breaker.state(), State::Closed);
/// # Ok::<(), weft_circuitbreaker::ConfigError>(())
/// ```
pub struct CircuitBreaker<C: Clock = FastClock> {
    /// The state word (see the module docs).
    word: CachePadded<AtomicU64>,
    /// Nanoseconds (breaker clock) at which the current open period ends.
    open_until: AtomicU64,
    window: Window,
    counters: Counters,
    transitions: Mutex<TransitionBook>,
    config: Settings,
    listeners: Vec<Listener>,
    clock: C,
    /// Where nanosecond times count from.
    epoch: Epoch,
}

impl CircuitBreaker<FastClock> {
    /// A builder with resilience4j's defaults: the last 100 calls, 50% failures open it,
    /// 100 calls minimum, 10 half-open trials, open for 60 s, slow calls not tracked.
    pub fn builder() -> Builder<FastClock> {
        Builder {
            name: "circuit-breaker",
            window: SlidingWindow::Count(100),
            failure_rate: 0.5,
            slow: None,
            minimum_calls: 100,
            half_open_permits: 10,
            open: OpenDuration::Fixed(Duration::from_secs(60)),
            clock: FastClock::new(),
            listeners: Vec::new(),
        }
    }
}

impl<C: Clock> CircuitBreaker<C> {
    #[inline]
    fn now_ns(&self) -> u64 {
        self.epoch.nanos(&self.clock)
    }

    /// The current state.
    pub fn state(&self) -> State {
        Word(self.word.load(Ordering::Acquire)).state()
    }

    /// The breaker's name.
    pub fn name(&self) -> &'static str {
        self.config.name
    }

    /// Asks to make one call: a [`Permit`] to report its outcome with, or why not.
    ///
    /// The guard API, for code that cannot be wrapped in a closure or future: call
    /// [`Permit::success`], [`Permit::failure`] or [`Permit::record`] when the call ends.
    /// A permit dropped without an outcome counts as cancelled: nothing is recorded, and a
    /// half-open trial permit goes back to the pool.
    ///
    /// # Errors
    ///
    /// [`NotPermitted`] while open, forced open, or half-open with every trial taken.
    ///
    /// ```
    /// let breaker = weft_circuitbreaker::CircuitBreaker::builder().build()?;
    /// let permit = breaker.try_acquire().expect("closed");
    /// // ... make the call ...
    /// permit.success();
    /// # Ok::<(), weft_circuitbreaker::ConfigError>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_, C>, NotPermitted> {
        Ok(Permit {
            breaker: self,
            ticket: self.ticket()?,
        })
    }

    /// Permission for one call, as the bookkeeping both permit types carry.
    #[inline]
    fn ticket(&self) -> Result<Ticket, NotPermitted> {
        let (generation, trial) = self.acquire()?;
        Ok(Ticket {
            generation,
            trial,
            start: self.start_time(),
            settled: false,
        })
    }

    /// Start time for slow-call measurement, read only when slow calls are tracked.
    #[inline]
    fn start_time(&self) -> u64 {
        if self.config.slow.is_some() {
            self.now_ns()
        } else {
            0
        }
    }

    /// The permission logic: `(generation, is_trial)`.
    #[inline]
    fn acquire(&self) -> Result<(u64, bool), NotPermitted> {
        loop {
            // Acquire: pairs with the transition's Release CAS, so `open_until` written
            // before it is visible when we see `Open`.
            let word = Word(self.word.load(Ordering::Acquire));
            match word.state() {
                State::Closed | State::Disabled | State::MetricsOnly => {
                    return Ok((word.generation(), false));
                }
                State::HalfOpen => {
                    if word.permits() == 0 {
                        return Err(self.refuse(State::HalfOpen, None));
                    }
                    let taken = Word(word.0 - (1 << PERMITS_SHIFT));
                    // Relaxed: the permit count guards no memory; the CAS on the word
                    // (which carries the generation) is what makes permits exact.
                    if self
                        .word
                        .compare_exchange_weak(
                            word.0,
                            taken.0,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        return Ok((word.generation(), true));
                    }
                }
                State::Open => {
                    let now = self.now_ns();
                    let until = self.open_until.load(Ordering::Relaxed);
                    if now < until {
                        return Err(
                            self.refuse(State::Open, Some(Duration::from_nanos(until - now)))
                        );
                    }
                    self.transition(word, State::HalfOpen);
                }
                State::ForcedOpen => return Err(self.refuse(State::ForcedOpen, None)),
            }
        }
    }

    fn refuse(&self, state: State, retry_after: Option<Duration>) -> NotPermitted {
        self.counters.not_permitted.fetch_add(1, Ordering::Relaxed);
        NotPermitted { state, retry_after }
    }

    /// Records a finished call of `generation` that started at `start`.
    fn finish(&self, generation: u64, trial: bool, start: u64, outcome: Outcome) {
        if outcome == Outcome::Ignored {
            self.counters.ignored.fetch_add(1, Ordering::Relaxed);
            if trial {
                self.give_back(generation);
            }
            return;
        }
        // One clock read, taken only when slow-call tracking or a time window needs it.
        let needs_clock = self.config.slow.is_some() || matches!(self.window, Window::Time(_));
        let now = if needs_clock { self.now_ns() } else { 0 };
        let slow = self
            .config
            .slow
            .is_some_and(|(limit, _)| now.saturating_sub(start) > limit);
        let failed = outcome == Outcome::Failure;
        if trial {
            self.count(failed, slow);
            self.finish_trial(generation, failed, slow);
            return;
        }
        let word = Word(self.word.load(Ordering::Acquire));
        if word.generation() != generation {
            return; // started in an earlier period: says nothing about this one
        }
        match word.state() {
            State::Closed | State::MetricsOnly => {}
            _ => return, // disabled: records nothing
        }
        self.count(failed, slow);
        let code = window::PRESENT
            | if failed { window::FAILED } else { 0 }
            | if slow { window::SLOW } else { 0 };
        let changed = self.window.record(code, now);
        // Judged whenever the totals moved, successes included: a success can be the call
        // that brings the window to its minimum while the failure rate is already above
        // the threshold. Unchanged totals mean unchanged rates, hence the same verdict.
        if changed && word.state() == State::Closed && self.should_open(self.window.totals(now)) {
            self.transition(word, State::Open);
        }
    }

    /// Lifetime counters (failures and slow calls only: successes are the window's job,
    /// and counting them here would add a shared write to every call).
    #[inline]
    fn count(&self, failed: bool, slow: bool) {
        if failed {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        if slow {
            self.counters.slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether window totals call for opening: enough calls, and a rate at a threshold.
    fn should_open(&self, t: Totals) -> bool {
        t.calls >= self.config.minimum_calls && self.rates_trip(t)
    }

    /// Whether the failure or slow-call rate of `t` reaches its threshold (for the window
    /// and for the half-open trials alike).
    fn rates_trip(&self, t: Totals) -> bool {
        t.failure_rate() >= self.config.failure_rate
            || self
                .config
                .slow
                .is_some_and(|(_, rate)| t.slow_rate() >= rate)
    }

    /// Adds a trial outcome; the last trial decides close or reopen.
    fn finish_trial(&self, generation: u64, failed: bool, slow: bool) {
        let add = (1u64 << DONE_SHIFT)
            | (u64::from(failed) << FAILED_SHIFT)
            | (u64::from(slow) << SLOW_SHIFT);
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            let word = Word(current);
            if word.generation() != generation || word.state() != State::HalfOpen {
                return;
            }
            let next = Word(current + add);
            match self.word.compare_exchange_weak(
                current,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let n = self.config.half_open_permits;
                    if next.done() >= n {
                        let t = Totals {
                            calls: u64::from(next.done()),
                            failures: u64::from(next.failed()),
                            slow: u64::from(next.slow()),
                        };
                        let to = if self.rates_trip(t) {
                            State::Open
                        } else {
                            State::Closed
                        };
                        self.transition(next, to);
                    }
                    return;
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Returns a cancelled trial's permit.
    fn give_back(&self, generation: u64) {
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            let word = Word(current);
            if word.generation() != generation || word.state() != State::HalfOpen {
                return;
            }
            match self.word.compare_exchange_weak(
                current,
                current + (1 << PERMITS_SHIFT),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Moves from the state and generation of `seen` to `to`, if still there.
    fn transition(&self, seen: Word, to: State) -> bool {
        let mut book = self.transitions.lock();
        let mut current = Word(self.word.load(Ordering::Acquire));
        if current.generation() != seen.generation() || current.state() != seen.state() {
            return false; // someone else moved it first
        }
        let now = self.now_ns();
        if to == State::Open {
            let d = self.open_duration(&mut book);
            // Published before the state word (its CAS is Release).
            self.open_until.store(
                now.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                Ordering::Relaxed,
            );
            book.consecutive_opens = book.consecutive_opens.saturating_add(1);
        }
        if to == State::Closed {
            book.consecutive_opens = 0;
            self.window.reset();
        }
        let permits = if to == State::HalfOpen {
            self.config.half_open_permits
        } else {
            0
        };
        let next = Word::new(
            to,
            seen.generation().wrapping_add(1) & ((1 << (64 - GEN_SHIFT)) - 1),
            permits,
        );
        loop {
            match self.word.compare_exchange_weak(
                current.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => {
                    // Only permit/trial counters can change outside the lock.
                    current = Word(actual);
                    if current.generation() != seen.generation() {
                        return false;
                    }
                }
            }
        }
        drop(book);
        self.counters.transitions.fetch_add(1, Ordering::Relaxed);
        let event = Transition {
            name: self.config.name,
            from: seen.state(),
            to,
            at: self.epoch.instant(now),
        };
        tracing::info!(
            target: "weft_circuitbreaker",
            breaker = event.name,
            from = ?event.from,
            to = ?event.to,
            "circuit breaker transition"
        );
        for listener in &self.listeners {
            listener(&event);
        }
        true
    }

    fn open_duration(&self, book: &mut TransitionBook) -> Duration {
        match &self.config.open {
            OpenDuration::Fixed(d) => *d,
            OpenDuration::Backoff(policy) => {
                let attempt = book.consecutive_opens;
                policy
                    .delay(attempt, &mut book.rng)
                    .or_else(|| {
                        policy.delay(
                            policy.max_retries().unwrap_or(0).saturating_sub(1),
                            &mut book.rng,
                        )
                    })
                    .unwrap_or(policy.max_delay().unwrap_or(Duration::from_secs(60)))
            }
        }
    }

    /// Forces a state by hand (any state to any state): `ForcedOpen` to take a
    /// dependency out of service, `Disabled` to bypass the breaker, `MetricsOnly` to
    /// observe without acting, `Closed` to reset.
    ///
    /// ```
    /// use weft_circuitbreaker::{CircuitBreaker, State};
    /// let b = CircuitBreaker::builder().build()?;
    /// b.transition_to(State::ForcedOpen);
    /// assert!(b.try_acquire().is_err());
    /// b.transition_to(State::Closed);
    /// assert!(b.try_acquire().is_ok());
    /// # Ok::<(), weft_circuitbreaker::ConfigError>(())
    /// ```
    pub fn transition_to(&self, to: State) {
        loop {
            let seen = Word(self.word.load(Ordering::Acquire));
            if seen.state() == to {
                return;
            }
            if self.transition(seen, to) {
                return;
            }
        }
    }

    /// A snapshot of the state, window and counters.
    pub fn metrics(&self) -> Metrics {
        let word = Word(self.word.load(Ordering::Acquire));
        let t = self.window.totals(self.now_ns());
        Metrics {
            state: word.state(),
            calls: t.calls,
            failed_in_window: t.failures,
            slow_in_window: t.slow,
            failure_rate: t.failure_rate(),
            slow_call_rate: t.slow_rate(),
            failed: self.counters.failed.load(Ordering::Relaxed),
            slow: self.counters.slow.load(Ordering::Relaxed),
            ignored: self.counters.ignored.load(Ordering::Relaxed),
            not_permitted: self.counters.not_permitted.load(Ordering::Relaxed),
            transitions: self.counters.transitions.load(Ordering::Relaxed),
            half_open_permits: if word.state() == State::HalfOpen {
                word.permits()
            } else {
                0
            },
        }
    }

    /// Runs `op` if permitted and records its outcome: `Err` is a failure, `Ok` a success.
    ///
    /// # Errors
    ///
    /// [`CallError::NotPermitted`](crate::CallError::NotPermitted) if refused (the
    /// operation did not run), or the operation's own error.
    pub fn call<T, E>(&self, op: impl FnOnce() -> Result<T, E>) -> Result<T, crate::CallError<E>> {
        self.call_classified(default_classify, op)
    }

    /// Like [`call`](Self::call), with `classify` deciding what counts as a failure (an
    /// `Ok` HTTP 503 can be a failure; a 404 error can be ignored).
    ///
    /// ```
    /// use weft_circuitbreaker::{CircuitBreaker, Outcome};
    /// let b = CircuitBreaker::builder().build()?;
    /// let status = b.call_classified(
    ///     |r: &Result<u16, ()>| match r {
    ///         Ok(s) if *s >= 500 => Outcome::Failure,
    ///         Ok(_) => Outcome::Success,
    ///         Err(_) => Outcome::Failure,
    ///     },
    ///     || Ok(503),
    /// );
    /// assert_eq!(status.unwrap(), 503);
    /// assert_eq!(b.metrics().failed, 1);
    /// # Ok::<(), weft_circuitbreaker::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub fn call_classified<T, E>(
        &self,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
        op: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, crate::CallError<E>> {
        let permit = self.try_acquire().map_err(crate::CallError::NotPermitted)?;
        let result = op();
        permit.record(classify(&result));
        result.map_err(crate::CallError::Inner)
    }

    /// Awaits `fut` if permitted and records its outcome. Dropping the returned future
    /// before it completes cancels the call: nothing is recorded, and a half-open trial
    /// permit goes back.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub async fn call_async<T, E, F>(&self, fut: F) -> Result<T, crate::CallError<E>>
    where
        F: std::future::Future<Output = Result<T, E>>,
    {
        self.call_async_classified(default_classify, fut).await
    }

    /// Like [`call_async`](Self::call_async), with `classify` deciding the outcome.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub async fn call_async_classified<T, E, F>(
        &self,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
        fut: F,
    ) -> Result<T, crate::CallError<E>>
    where
        F: std::future::Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire().map_err(crate::CallError::NotPermitted)?;
        let result = fut.await;
        permit.record(classify(&result));
        result.map_err(crate::CallError::Inner)
    }
}

impl<C: Clock> CircuitBreaker<C> {
    /// Runs `op` through the breaker, retrying failures under `policy` (blocking between
    /// attempts with `std::thread::sleep`); a call the breaker *refuses* is not retried,
    /// since retrying at once cannot succeed and would only add load.
    ///
    /// For a retry budget, a manual clock or async retries, compose the parts directly:
    /// `Retry::new(&policy).budget(&budget).retry_on(|e: &CallError<E>|
    /// !e.is_not_permitted()).call(|_| breaker.call(|| op()))`.
    ///
    /// ```
    /// use weft_circuitbreaker::retry::{RetryError, RetryPolicy};
    /// use weft_circuitbreaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().build()?;
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(3)
    ///     .backoff(weft_time::Backoff::constant(std::time::Duration::ZERO).build()?)
    ///     .build()?;
    /// let mut attempts = 0;
    /// let r = breaker.call_with_retry(&policy, |_| {
    ///     attempts += 1;
    ///     if attempts < 3 { Err("flaky") } else { Ok(attempts) }
    /// });
    /// assert_eq!(r.unwrap(), 3);
    ///
    /// breaker.transition_to(State::ForcedOpen);
    /// let refused = breaker.call_with_retry(&policy, |_| Ok::<_, &str>(0));
    /// assert!(matches!(refused, Err(RetryError::Rejected { attempts: 1, .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`RetryError`](crate::retry::RetryError) wrapping the last
    /// [`CallError`](crate::CallError): `Rejected` when the breaker refused, `Exhausted`
    /// when the attempts or the elapsed-time limit ran out.
    pub fn call_with_retry<T, E>(
        &self,
        policy: &crate::retry::RetryPolicy,
        mut op: impl FnMut(u32) -> Result<T, E>,
    ) -> Result<T, crate::retry::RetryError<crate::CallError<E>>> {
        crate::retry::Retry::new(policy)
            .retry_on(|e: &crate::CallError<E>| !e.is_not_permitted())
            .call(|attempt| self.call(|| op(attempt)))
    }
}

/// `Err` is a failure, `Ok` a success.
fn default_classify<T, E>(r: &Result<T, E>) -> Outcome {
    if r.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    }
}

impl<C: Clock> fmt::Debug for CircuitBreaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.config.name)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// Permission to make one call; report its outcome, or drop it to cancel.
#[must_use = "a permit dropped without an outcome counts as a cancelled call"]
pub struct Permit<'a, C: Clock = FastClock> {
    breaker: &'a CircuitBreaker<C>,
    ticket: Ticket,
}

/// What a permit remembers of its call: the generation it was admitted in, whether it is
/// a half-open trial, when it started (for slow-call detection), and whether its outcome
/// was reported.
#[derive(Debug)]
struct Ticket {
    generation: u64,
    trial: bool,
    start: u64,
    settled: bool,
}

impl Ticket {
    /// Reports the call's outcome.
    fn record<C: Clock>(&mut self, breaker: &CircuitBreaker<C>, outcome: Outcome) {
        self.settled = true;
        breaker.finish(self.generation, self.trial, self.start, outcome);
    }

    /// A permit dropped without an outcome: a cancelled call. A half-open trial gives its
    /// permit back; a closed-state call records nothing.
    fn cancel_unsettled<C: Clock>(&self, breaker: &CircuitBreaker<C>) {
        if !self.settled && self.trial {
            breaker.give_back(self.generation);
        }
    }
}

impl<C: Clock> Permit<'_, C> {
    /// The call succeeded.
    pub fn success(self) {
        self.record(Outcome::Success);
    }

    /// The call failed.
    pub fn failure(self) {
        self.record(Outcome::Failure);
    }

    /// The call finished with `outcome`.
    pub fn record(mut self, outcome: Outcome) {
        self.ticket.record(self.breaker, outcome);
    }

    /// `true` if this is one of the half-open trial calls.
    pub fn is_trial(&self) -> bool {
        self.ticket.trial
    }
}

impl<C: Clock> Drop for Permit<'_, C> {
    fn drop(&mut self) {
        self.ticket.cancel_unsettled(self.breaker);
    }
}

impl<C: Clock> fmt::Debug for Permit<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("trial", &self.ticket.trial)
            .finish_non_exhaustive()
    }
}

/// A [`Permit`] that owns a handle to its breaker (for futures and tower services).
#[must_use = "a permit dropped without an outcome counts as a cancelled call"]
pub struct OwnedPermit<C: Clock = FastClock> {
    breaker: Arc<CircuitBreaker<C>>,
    ticket: Ticket,
}

impl<C: Clock> CircuitBreaker<C> {
    /// [`try_acquire`](Self::try_acquire) for a shared breaker, returning a `'static`
    /// permit.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    pub fn try_acquire_owned(this: &Arc<Self>) -> Result<OwnedPermit<C>, NotPermitted> {
        Ok(OwnedPermit {
            ticket: this.ticket()?,
            breaker: Arc::clone(this),
        })
    }
}

impl<C: Clock> OwnedPermit<C> {
    /// The call finished with `outcome`.
    pub fn record(mut self, outcome: Outcome) {
        self.ticket.record(&self.breaker, outcome);
    }
}

impl<C: Clock> Drop for OwnedPermit<C> {
    fn drop(&mut self) {
        self.ticket.cancel_unsettled(&self.breaker);
    }
}

impl<C: Clock> fmt::Debug for OwnedPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("trial", &self.ticket.trial)
            .finish_non_exhaustive()
    }
}
