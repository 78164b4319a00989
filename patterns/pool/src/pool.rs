//! The pool: shared state, checkout, return, maintenance.
//!
//! # Design
//!
//! All shared state sits behind one mutex (`State`): the idle list, the counters, the
//! waiter queue, the statistics. Every critical section is a few field updates; no
//! manager call, hook or object drop ever runs under the lock (`retain`'s predicate is
//! the one documented exception), so a slow or stuck object cannot stall the pool.
//!
//! **Slots.** `max_size` slots exist. A checkout first takes a *slot* (`slots += 1`), and
//! only with a slot in hand touches the idle list (popping an object, `in_use += 1`) or
//! reserves a creation (`creating += 1`, allowed while `size + creating < max_size`). A
//! checkout that can do neither right away, or that finds others already queued, joins
//! the FIFO queue. So:
//!
//! - `idle + in_use == size` and `size + creating <= max_size` (until a `resize` shrinks
//!   the pool under objects in use, which are then closed as they come back);
//! - `slots <= max_size`, each slot held by exactly one checkout in progress or one
//!   `Object` guard.
//!
//! **Hand-off, not barging.** Whenever the state changes (an object returned or
//! created, an object closed, a slot freed, the pool resized), `dispatch` serves the queue
//! from the front: it takes the slot *for* the first waiter, pops an object or reserves a
//! creation for it, stores that grant in the waiter's node and wakes it. A newcomer never
//! overtakes a waiter (it queues whenever the queue is not empty). After `dispatch`, no
//! waiter waits while an object is idle or a creation is possible: the invariant the
//! proptest checks after every step.
//!
//! **Cancellation.** Each stage of a checkout owns what it holds in a guard: the queued
//! waiter (`Wait`), the slot with its object or creation reservation (`Pending`), a
//! maintenance creation (`Reservation`). Dropping a guard at any await point gives back
//! exactly what it held, under the lock, and dispatches: a grant that arrived after the
//! waiter gave up goes to the next waiter; an object being recycled is closed (its state
//! is unknown); a creation reservation is released. Nothing is leaked and nothing waits
//! for a slot that will never come. The loom model `checkout_return_cancel` explores
//! these races with three threads.
//!
//! **Failing fast.** A creation that still fails after its retries fails its own
//! checkout, and every queued waiter beyond the number of objects in use or being created
//! (the ones no object that may still come back will reach) is released at once with
//! `Error::Unavailable`, instead of each retrying the dead backend or waiting for its
//! timeout.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;
use weft_sync::{Arc, Mutex, MutexGuard};

use crate::budget::Budget;
use crate::config::{Builder, Config, QueueMode};
use crate::error::{AddError, ConfigError, Error, HookKind, Opaque, TimeoutKind};
use crate::manager::{Manager, Metrics};
use crate::stats::{CloseReason, Stats, Status};
use crate::timer::{Timers, deadline, run_blocking};
use crate::waitlist::{Key, WaitList};

/// An idle object with its metrics.
pub(crate) struct Idle<T> {
    pub(crate) obj: T,
    pub(crate) metrics: Metrics,
}

/// What a waiter is handed when its turn comes. `Object` and `Create` come with a slot.
pub(crate) enum Grant<T> {
    /// An idle object (`in_use` already counts it).
    Object(Idle<T>),
    /// A creation reservation (`creating` already counts it).
    Create,
    /// No object will come: the waiter fails with this.
    Failed(Failure),
}

/// Why a waiter was released without an object.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    Closed,
    TimedOut,
    Unavailable { failures: u64, last_error: String },
}

impl<E> From<Failure> for Error<E> {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Closed => Error::Closed,
            Failure::TimedOut => Error::Timeout(TimeoutKind::Wait),
            Failure::Unavailable {
                failures,
                last_error,
            } => Error::Unavailable {
                failures,
                last_error,
            },
        }
    }
}

/// A checkout's entry in the leak registry.
struct Checkout {
    since: Instant,
    location: &'static Location<'static>,
    reported: bool,
}

/// Everything the mutex guards.
pub(crate) struct State<T> {
    idle: VecDeque<Idle<T>>,
    /// Live objects: idle plus in use.
    size: usize,
    /// Objects out of the idle list for a checkout.
    in_use: usize,
    /// Creations in progress (for checkouts and for maintenance).
    creating: usize,
    /// The part of `creating` that maintenance does (it holds no slot).
    creating_bg: usize,
    /// Slots held by checkouts in progress and `Object` guards.
    slots: usize,
    max_size: usize,
    min_idle: usize,
    queue_mode: QueueMode,
    test_on_checkout: bool,
    waiters: WaitList<Grant<T>>,
    closed: bool,
    stats: Stats,
    consecutive_failures: u64,
    last_error: Option<String>,
    /// Checkouts holding a slot, when leak detection is on.
    checkouts: Option<Slab<Checkout>>,
    /// Set when maintenance should run soon (an object closed below `min_idle`).
    kick: bool,
    /// The background maintenance task, parked until `kick` or its interval.
    maintainer: Option<Waker>,
    budget: Option<Arc<Budget>>,
}

impl<T> State<T> {
    fn pop_idle(&mut self) -> Option<Idle<T>> {
        match self.queue_mode {
            QueueMode::Fifo => self.idle.pop_front(),
            QueueMode::Lifo => self.idle.pop_back(),
        }
    }

    /// Takes a slot and fills it from the idle list or with a creation reservation, if
    /// both are possible now.
    fn next_grant(&mut self) -> Option<Grant<T>> {
        if self.closed || self.slots >= self.max_size {
            return None;
        }
        let grant = if let Some(idle) = self.pop_idle() {
            self.in_use += 1;
            if self.test_on_checkout {
                self.stats.recycled += 1;
            }
            Grant::Object(idle)
        } else if self.size + self.creating < self.max_size {
            self.creating += 1;
            Grant::Create
        } else {
            return None;
        };
        self.slots += 1;
        Some(grant)
    }

    /// A newcomer's grant: only if nobody is queued ahead of it.
    fn take_direct(&mut self) -> Option<Grant<T>> {
        if self.waiters.is_empty() {
            self.next_grant()
        } else {
            None
        }
    }

    /// Serves the queue from the front while objects or creations are available.
    fn dispatch(&mut self) {
        while !self.waiters.is_empty() {
            match self.next_grant() {
                Some(grant) => {
                    self.waiters.grant_front(grant);
                }
                None => break,
            }
        }
    }

    /// Accounts for one object closed (the caller drops it after unlocking).
    fn close(&mut self, reason: CloseReason) {
        self.size -= 1;
        self.stats.closed.count(reason);
        if let Some(b) = &self.budget {
            b.give();
        }
        tracing::debug!(?reason, size = self.size, "pool closed an object");
        self.kick_if_low();
    }

    /// Wakes background maintenance if idle objects fell below `min_idle`.
    fn kick_if_low(&mut self) {
        if self.min_idle > 0 && !self.closed && self.idle.len() + self.creating_bg < self.min_idle {
            self.kick = true;
            if let Some(w) = self.maintainer.take() {
                w.wake();
            }
        }
    }

    /// Registers a checkout that got its slot (leak detection) and counts its wait.
    fn on_slot(
        &mut self,
        location: &'static Location<'static>,
        now: Option<Instant>,
        waited: Option<Duration>,
    ) -> Option<usize> {
        match waited {
            None => {
                self.stats.gets_direct += 1;
                self.stats.wait_time.record(Duration::ZERO);
            }
            Some(w) => {
                self.stats.gets_waited += 1;
                self.stats.wait_time.record(w);
            }
        }
        let (checkouts, now) = (self.checkouts.as_mut()?, now?);
        Some(checkouts.insert(Checkout {
            since: now,
            location,
            reported: false,
        }))
    }

    /// Frees a slot and its leak-registry entry.
    fn free_slot(&mut self, checkout: Option<usize>) {
        self.slots -= 1;
        if let (Some(c), Some(id)) = (self.checkouts.as_mut(), checkout) {
            c.try_remove(id);
        }
    }

    /// Releases the waiters that no object in use or being created can reach (from the
    /// back of the queue).
    fn fail_tail(&mut self) {
        let Some(last_error) = self.last_error.clone() else {
            return;
        };
        let failures = self.consecutive_failures;
        let n = self
            .waiters
            .len()
            .saturating_sub(self.in_use + self.creating);
        for _ in 0..n {
            self.waiters.grant_back(Grant::Failed(Failure::Unavailable {
                failures,
                last_error: last_error.clone(),
            }));
        }
        self.stats.gets_failed_fast += n as u64;
        if n > 0 {
            tracing::warn!(
                failures,
                released = n,
                %last_error,
                "pool cannot create objects; released queued checkouts"
            );
        }
    }

    fn record_create_failure(&mut self, error: String) {
        self.stats.create_failures += 1;
        self.consecutive_failures += 1;
        tracing::debug!(%error, consecutive = self.consecutive_failures, "pool creation attempt failed");
        self.last_error = Some(error);
    }

    fn record_created(&mut self) {
        self.stats.created += 1;
        self.consecutive_failures = 0;
        self.size += 1;
    }
}

/// What a pool shares between its handles, its objects and its background task.
pub(crate) struct Shared<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: Config<M::Object>,
    pub(crate) state: Mutex<State<M::Object>>,
}

impl<M: Manager> Shared<M> {
    fn lock(&self) -> MutexGuard<'_, State<M::Object>> {
        self.state.lock()
    }
}

/// A pool of objects made by a [`Manager`]: fair, cancellation-safe, async and blocking.
///
/// `Pool` is a cheap handle (`Clone` shares the same pool). Check an object out with
/// [`get`](Pool::get) (async, waits its turn in FIFO order), [`try_get`](Pool::try_get)
/// (never waits for another checkout), or [`get_blocking`](Pool::get_blocking) (the same
/// for synchronous code); the [`Object`] guard returns it on drop.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use weft_pool::{Manager, Pool};
///
/// struct Counter(std::sync::atomic::AtomicU32);
/// impl Manager for Counter {
///     type Object = u32;
///     type Error = std::io::Error;
///     async fn create(&self) -> Result<u32, std::io::Error> {
///         Ok(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
///     }
/// }
///
/// let pool = Pool::builder(Counter(0.into())).max_size(2).build()?;
/// let a = pool.get().await?;
/// let b = pool.get().await?;
/// assert_eq!((*a, *b), (0, 1));
/// assert!(pool.try_get().await.is_err()); // both slots taken, and try_get never waits
/// drop(a);
/// assert_eq!(*pool.get().await?, 0); // the returned object is reused
/// # Ok(())
/// # }
/// ```
pub struct Pool<M: Manager> {
    pub(crate) shared: Arc<Shared<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Pool {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.status();
        f.debug_struct("Pool")
            .field("max_size", &s.max_size)
            .field("size", &s.size)
            .field("idle", &s.idle)
            .field("waiters", &s.waiters)
            .finish_non_exhaustive()
    }
}

/// What one [`Pool::maintain`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Maintenance {
    /// Idle objects closed (lifetime or idle timeout).
    pub closed: usize,
    /// Objects created towards `min_idle`.
    pub created: usize,
    /// Creations towards `min_idle` that failed.
    pub create_failures: usize,
    /// Queued checkouts whose wait deadline had passed, released with a timeout.
    pub expired_waiters: usize,
    /// Checkouts newly reported as held past the leak threshold.
    pub leaks: usize,
}

impl<M: Manager> Pool<M> {
    /// A builder for a pool of `manager`'s objects.
    ///
    /// ```
    /// # use weft_pool::{Manager, Pool};
    /// # struct Numbers;
    /// # impl Manager for Numbers {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> { Ok(0) }
    /// # }
    /// let pool = Pool::builder(Numbers).max_size(8).build()?;
    /// assert_eq!(pool.status().size, 0); // objects are created on demand
    /// # Ok::<(), weft_pool::ConfigError>(())
    /// ```
    pub fn builder(manager: M) -> Builder<M> {
        Builder {
            manager,
            config: Config::new(),
        }
    }

    /// Validates `config`, picks the timer, builds the pool and starts its background
    /// maintenance if configured.
    pub(crate) fn from_config(
        manager: M,
        mut config: Config<M::Object>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        resolve_timer(&mut config);
        let interval = config.maintenance_interval;
        let pool = Self::from_validated(manager, config, None);
        if let Some(interval) = interval {
            crate::maintain::spawn(&pool, interval)?;
        }
        Ok(pool)
    }

    /// Builds a pool from settings already validated (a keyed pool's sub-pools, which
    /// share the keyed pool's budget and maintenance).
    pub(crate) fn from_validated(
        manager: M,
        config: Config<M::Object>,
        budget: Option<Arc<Budget>>,
    ) -> Self {
        let checkouts = config.leak_threshold.map(|_| Slab::new());
        let state = State {
            idle: VecDeque::with_capacity(config.max_size),
            size: 0,
            in_use: 0,
            creating: 0,
            creating_bg: 0,
            slots: 0,
            max_size: config.max_size,
            min_idle: config.min_idle,
            queue_mode: config.queue_mode,
            test_on_checkout: config.test_on_checkout,
            waiters: WaitList::new(),
            closed: false,
            stats: Stats::default(),
            consecutive_failures: 0,
            last_error: None,
            checkouts,
            kick: false,
            maintainer: None,
            budget,
        };
        Pool {
            shared: Arc::new(Shared {
                manager,
                config,
                state: Mutex::new(state),
            }),
        }
    }

    /// The manager.
    pub fn manager(&self) -> &M {
        &self.shared.manager
    }

    fn timers(&self) -> Timers<'_> {
        Timers::Async(self.shared.config.timer.as_deref())
    }

    /// Checks an object out, waiting in FIFO order behind earlier checkouts if none is
    /// available, for at most [`wait_timeout`](Builder::wait_timeout).
    ///
    /// An idle object is recycled first ([`Manager::recycle`] and the hooks, unless
    /// [`test_on_checkout`](Builder::test_on_checkout) is off); one that fails is closed
    /// and the next is tried. With no idle object and room in the pool, a new one is
    /// created, with retries.
    ///
    /// The future is cancellation-safe at every await point: dropping it frees its queue
    /// place and slot, passes on any object it was handed, and closes an object it was
    /// recycling.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], [`Error::Closed`], [`Error::Create`], [`Error::Unavailable`],
    /// [`Error::Hook`], and [`Error::NoTimer`] if a timeout is set but the pool has no
    /// timer.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use weft_pool::{Error, Manager, Pool, TimeoutKind};
    /// # struct Numbers;
    /// # impl Manager for Numbers {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> { Ok(0) }
    /// # }
    /// # // tokio's timer, also without this crate's `tokio` feature (as TokioTimer does).
    /// # #[derive(Debug)]
    /// # struct Tokio;
    /// # impl weft_pool::Timer for Tokio {
    /// #     fn sleep(&self, d: Duration) -> weft_pool::Sleep<'_> { Box::pin(tokio::time::sleep(d)) }
    /// # }
    ///
    /// let pool = Pool::builder(Numbers)
    ///     .max_size(1)
    ///     .wait_timeout(Duration::from_millis(100))
    /// #   .timer(Tokio)
    ///     .build()?;
    /// let held = pool.get().await?;
    /// let err = pool.get().await.unwrap_err(); // waits 100 ms, then gives up
    /// assert!(matches!(err, Error::Timeout(TimeoutKind::Wait)));
    /// drop(held);
    /// assert!(pool.get().await.is_ok());
    /// # Ok(())
    /// # }
    /// ```
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<Object<M>, Error<M::Error>>> + Send + '_ {
        let location = Location::caller();
        async move { self.checkout(self.timers(), location, true).await }
    }

    /// Checks an object out if one is idle or can be created without queueing behind
    /// anyone; never waits for another checkout (it may still await a recycle or a
    /// creation).
    ///
    /// # Errors
    ///
    /// [`Error::Exhausted`] when it would have to wait; otherwise as [`get`](Pool::get).
    #[track_caller]
    pub fn try_get(&self) -> impl Future<Output = Result<Object<M>, Error<M::Error>>> + Send + '_ {
        let location = Location::caller();
        async move { self.checkout(self.timers(), location, false).await }
    }

    /// [`get`](Pool::get) for synchronous code: blocks the calling thread (on a condition
    /// variable, up to [`wait_timeout`](Builder::wait_timeout)) and runs the manager's
    /// futures on it. Use it with managers whose futures need no async runtime (blocking
    /// I/O inside an `async fn` is fine here). Same fairness, same guarantees.
    ///
    /// # Errors
    ///
    /// As [`get`](Pool::get) (never [`Error::NoTimer`]).
    ///
    /// ```
    /// use weft_pool::{Manager, Pool};
    /// # struct Numbers;
    /// # impl Manager for Numbers {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> { Ok(5) }
    /// # }
    /// let pool = Pool::builder(Numbers).max_size(1).build()?;
    /// let obj = pool.get_blocking()?;
    /// assert_eq!(*obj, 5);
    /// let waiter = {
    ///     let pool = pool.clone();
    ///     std::thread::spawn(move || *pool.get_blocking().unwrap())
    /// };
    /// drop(obj); // hands the object to the blocked thread
    /// assert_eq!(waiter.join().unwrap(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn get_blocking(&self) -> Result<Object<M>, Error<M::Error>> {
        let location = Location::caller();
        run_blocking!(&*self.shared.config.clock, |timers| self
            .checkout(timers, location, true))
    }

    /// [`try_get`](Pool::try_get) for synchronous code.
    ///
    /// # Errors
    ///
    /// As [`try_get`](Pool::try_get).
    #[track_caller]
    pub fn try_get_blocking(&self) -> Result<Object<M>, Error<M::Error>> {
        let location = Location::caller();
        run_blocking!(&*self.shared.config.clock, |timers| self
            .checkout(timers, location, false))
    }

    /// The checkout state machine, for both APIs.
    pub(crate) async fn checkout(
        &self,
        timers: Timers<'_>,
        location: &'static Location<'static>,
        wait: bool,
    ) -> Result<Object<M>, Error<M::Error>> {
        let shared = &*self.shared;
        let clock = &*shared.config.clock;
        let leak_detection = shared.config.leak_threshold.is_some();
        let mut requeue = false;
        let mut started: Option<(Instant, Option<Instant>)> = None;
        loop {
            let mut pending = Pending::new(shared);
            let direct = {
                let mut st = shared.lock();
                if st.closed {
                    return Err(Error::Closed);
                }
                let grant = if requeue { None } else { st.take_direct() };
                if let Some(grant) = grant {
                    let now = leak_detection.then(|| clock.now());
                    pending.checkout = st.on_slot(location, now, None);
                    pending.active = true;
                    Some(grant)
                } else {
                    None
                }
            };
            let grant = match direct {
                Some(grant) => grant,
                None => {
                    let wait_timeout = shared.config.wait_timeout;
                    if !wait || wait_timeout == Some(Duration::ZERO) {
                        let mut st = shared.lock();
                        if wait {
                            st.stats.gets_timed_out += 1;
                            return Err(Error::Timeout(TimeoutKind::Wait));
                        }
                        return Err(Error::Exhausted {
                            max_size: st.max_size,
                        });
                    }
                    if wait_timeout.is_some() && !timers.available() {
                        return Err(Error::NoTimer);
                    }
                    let (start, wait_deadline) = *started.get_or_insert_with(|| {
                        let now = clock.now();
                        (now, wait_timeout.map(|d| deadline(clock, d)))
                    });
                    let remaining = wait_deadline.map(|d| d.saturating_duration_since(clock.now()));
                    let waiter = Wait {
                        shared,
                        key: None,
                        front: requeue,
                        deadline: wait_deadline,
                        start,
                        location,
                        leak_detection,
                    };
                    match timers.timeout(remaining, clock, waiter).await {
                        Some(Ok((grant, checkout))) => {
                            pending.checkout = checkout;
                            pending.active = true;
                            grant
                        }
                        Some(Err(failure)) => return Err(failure.into()),
                        None => {
                            shared.lock().stats.gets_timed_out += 1;
                            return Err(Error::Timeout(TimeoutKind::Wait));
                        }
                    }
                }
            };
            match self.fill(&mut pending, grant, timers).await {
                Ok(()) => return Ok(pending.into_object(&self.shared)),
                Err(None) => requeue = true,
                Err(Some(e)) => return Err(e),
            }
        }
    }

    /// Turns a grant into a ready object, moving on to the next idle object or a creation
    /// when one is rejected. `Err(None)`: the slot was given up and the checkout must
    /// queue again (at the front).
    async fn fill(
        &self,
        pending: &mut Pending<'_, M>,
        mut grant: Grant<M::Object>,
        timers: Timers<'_>,
    ) -> Result<(), Option<Error<M::Error>>> {
        let shared = &*self.shared;
        loop {
            match grant {
                Grant::Object(idle) => {
                    pending.obj = Some(idle);
                    let Some(reason) = self.prepare(pending, timers).await else {
                        return Ok(());
                    };
                    let rejected = pending.obj.take();
                    let mut st = shared.lock();
                    st.in_use -= 1;
                    match reason {
                        CloseReason::RecycleFailed => st.stats.recycle_failures += 1,
                        // Counted as a recycle when popped, but rejected before one ran.
                        CloseReason::Expired if st.test_on_checkout => st.stats.recycled -= 1,
                        _ => {}
                    }
                    st.close(reason);
                    match refill(&mut st) {
                        Some(next) => grant = next,
                        None => {
                            pending.release(&mut st);
                            st.dispatch();
                            drop(st);
                            drop(rejected);
                            return Err(None);
                        }
                    }
                    drop(st);
                    drop(rejected);
                }
                Grant::Create => {
                    pending.creating = true;
                    return self.create_for(pending, timers).await.map_err(Some);
                }
                Grant::Failed(f) => return Err(Some(f.into())),
            }
        }
    }

    /// Checks an idle object at checkout; `Some(reason)` rejects it.
    async fn prepare(
        &self,
        pending: &mut Pending<'_, M>,
        timers: Timers<'_>,
    ) -> Option<CloseReason> {
        let config = &self.shared.config;
        let clock = &*config.clock;
        let idle = pending.obj.as_mut()?;
        if let Some(lifetime) = config.max_lifetime {
            if idle.metrics.age(clock.now()) >= lifetime {
                return Some(CloseReason::Expired);
            }
        }
        if !config.test_on_checkout {
            return None;
        }
        for hook in &config.pre_recycle {
            if let Err(e) = hook(&mut idle.obj, &idle.metrics) {
                tracing::debug!(error = %e, "pre_recycle hook rejected an object");
                return Some(CloseReason::RecycleFailed);
            }
        }
        let recycled = timers
            .timeout(
                config.recycle_timeout,
                clock,
                self.shared.manager.recycle(&mut idle.obj, &idle.metrics),
            )
            .await;
        match recycled {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::debug!(error = %e, "recycle rejected an object");
                return Some(CloseReason::RecycleFailed);
            }
            None => {
                tracing::debug!("recycle timed out");
                return Some(CloseReason::RecycleFailed);
            }
        }
        for hook in &config.post_recycle {
            if let Err(e) = hook(&mut idle.obj, &idle.metrics) {
                tracing::debug!(error = %e, "post_recycle hook rejected an object");
                return Some(CloseReason::RecycleFailed);
            }
        }
        idle.metrics.recycled = Some(clock.now());
        idle.metrics.recycle_count += 1;
        None
    }

    /// Creates an object for a checkout holding a creation reservation.
    async fn create_for(
        &self,
        pending: &mut Pending<'_, M>,
        timers: Timers<'_>,
    ) -> Result<(), Error<M::Error>> {
        let shared = &*self.shared;
        let budget = shared.lock().budget.clone();
        if let Some(budget) = budget {
            if !budget.try_take() {
                let clock = &*shared.config.clock;
                let limit = shared.config.wait_timeout;
                if timers.timeout(limit, clock, budget.take()).await.is_none() {
                    shared.lock().stats.gets_timed_out += 1;
                    return Err(Error::Timeout(TimeoutKind::Wait));
                }
            }
            pending.budget = true;
        }
        let created = self.create_object(timers, true).await;
        let mut st = shared.lock();
        st.creating -= 1;
        pending.creating = false;
        match created {
            Ok(idle) => {
                pending.budget = false; // the unit now belongs to the object
                st.record_created();
                st.in_use += 1;
                pending.obj = Some(idle);
                Ok(())
            }
            Err(e) => {
                if std::mem::take(&mut pending.budget) {
                    if let Some(b) = &st.budget {
                        b.give();
                    }
                }
                pending.release(&mut st);
                if matches!(e, Error::Create(_) | Error::Timeout(TimeoutKind::Create)) {
                    st.fail_tail();
                }
                st.dispatch();
                Err(e)
            }
        }
    }

    /// Calls [`Manager::create`] (with the create timeout, retries when `retry`, and the
    /// post-create hooks). Counts failures; the caller accounts for success.
    pub(crate) async fn create_object(
        &self,
        timers: Timers<'_>,
        retry: bool,
    ) -> Result<Idle<M::Object>, Error<M::Error>> {
        let config = &self.shared.config;
        let clock = &*config.clock;
        let mut delays = config
            .create_retries
            .filter(|_| retry)
            .map(|policy| policy.iter());
        loop {
            let attempt = timers
                .timeout(config.create_timeout, clock, self.shared.manager.create())
                .await;
            let err = match attempt {
                Some(Ok(mut obj)) => {
                    let metrics = Metrics::new(clock.now());
                    for hook in &config.post_create {
                        if let Err(source) = hook(&mut obj, &metrics) {
                            self.shared
                                .lock()
                                .record_create_failure(format!("post_create hook: {source}"));
                            return Err(Error::Hook {
                                kind: HookKind::PostCreate,
                                source,
                            });
                        }
                    }
                    return Ok(Idle { obj, metrics });
                }
                Some(Err(e)) => Error::Create(e),
                None => Error::Timeout(TimeoutKind::Create),
            };
            self.shared.lock().record_create_failure(match &err {
                Error::Create(e) => e.to_string(),
                other => other.to_string(),
            });
            match delays.as_mut().and_then(Iterator::next) {
                Some(delay) => timers.sleep(delay, clock).await,
                None => return Err(err),
            }
        }
    }

    /// A snapshot of sizes and counters.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use weft_pool::{Manager, Pool};
    /// # struct Numbers;
    /// # impl Manager for Numbers {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> { Ok(0) }
    /// # }
    /// let pool = Pool::builder(Numbers).max_size(4).build()?;
    /// let obj = pool.get().await?;
    /// let s = pool.status();
    /// assert_eq!((s.size, s.in_use, s.idle, s.waiters), (1, 1, 0, 0));
    /// drop(obj);
    /// let s = pool.status();
    /// assert_eq!((s.size, s.in_use, s.idle), (1, 0, 1));
    /// assert_eq!((s.stats.created, s.stats.gets_direct), (1, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn status(&self) -> Status {
        let st = self.shared.lock();
        Status {
            max_size: st.max_size,
            size: st.size,
            idle: st.idle.len(),
            in_use: st.in_use,
            creating: st.creating,
            waiters: st.waiters.len(),
            closed: st.closed,
            stats: st.stats,
        }
    }

    /// Changes `max_size`. Shrinking closes idle objects beyond the new size at once and
    /// objects in use as they come back; growing serves queued checkouts at once.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroMaxSize`], or [`ConfigError::MinIdleAboveMax`] below `min_idle`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use weft_pool::{Manager, Pool};
    /// # struct Numbers;
    /// # impl Manager for Numbers {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> { Ok(0) }
    /// # }
    /// let pool = Pool::builder(Numbers).max_size(2).build()?;
    /// let (a, b) = (pool.get().await?, pool.get().await?);
    /// drop((a, b));
    /// pool.resize(1)?;
    /// assert_eq!(pool.status().size, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn resize(&self, max_size: usize) -> Result<(), ConfigError> {
        if max_size == 0 {
            return Err(ConfigError::ZeroMaxSize);
        }
        let mut closed = Vec::new();
        {
            let mut st = self.shared.lock();
            if max_size < st.min_idle {
                return Err(ConfigError::MinIdleAboveMax {
                    min_idle: st.min_idle,
                    max_size,
                });
            }
            st.max_size = max_size;
            while st.size + st.creating > max_size {
                // The least recently used idle object first.
                let Some(idle) = st.idle.pop_front() else {
                    break;
                };
                st.close(CloseReason::Resized);
                closed.push(idle);
            }
            st.dispatch();
        }
        drop(closed);
        Ok(())
    }

    /// Adds an object made outside the pool (an "unmanaged" object: the manager's
    /// `create` is not called). It counts towards `max_size` like any other, goes to the
    /// first waiter or the idle list, and is recycled and returned like any other.
    ///
    /// # Errors
    ///
    /// [`AddError::Full`] when the pool holds (or is creating) `max_size` objects,
    /// [`AddError::Closed`] when it is closed; the object is handed back.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use weft_pool::{AddError, Manager, Pool};
    /// # struct Numbers;
    /// # impl Manager for Numbers {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> { Ok(0) }
    /// # }
    /// let pool = Pool::builder(Numbers).max_size(1).build()?;
    /// pool.add(42).unwrap();
    /// assert!(matches!(pool.add(43), Err(AddError::Full(43))));
    /// assert_eq!(*pool.get().await?, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub fn add(&self, obj: M::Object) -> Result<(), AddError<M::Object>> {
        let now = self.shared.config.clock.now();
        let mut st = self.shared.lock();
        if st.closed {
            return Err(AddError::Closed(obj));
        }
        if st.size + st.creating >= st.max_size {
            return Err(AddError::Full(obj));
        }
        if let Some(b) = &st.budget {
            if !b.try_take() {
                return Err(AddError::Full(obj));
            }
        }
        st.size += 1;
        st.idle.push_back(Idle {
            obj,
            metrics: Metrics::new(now),
        });
        st.dispatch();
        Ok(())
    }

    /// Closes every idle object for which `keep` returns `false`; returns how many.
    ///
    /// `keep` runs under the pool's lock: keep it short and do not call back into the
    /// pool from it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use weft_pool::{Manager, Pool};
    /// # struct Numbers(std::sync::atomic::AtomicU32);
    /// # impl Manager for Numbers {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> {
    /// #         Ok(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    /// #     }
    /// # }
    /// let pool = Pool::builder(Numbers(0.into())).max_size(3).build()?;
    /// let objs = (pool.get().await?, pool.get().await?, pool.get().await?);
    /// drop(objs);
    /// assert_eq!(pool.retain(|n, _metrics| n % 2 == 0), 1); // closes object 1
    /// assert_eq!(pool.status().idle, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn retain(&self, mut keep: impl FnMut(&M::Object, &Metrics) -> bool) -> usize {
        let mut closed = Vec::new();
        {
            let mut st = self.shared.lock();
            let idle = std::mem::take(&mut st.idle);
            for entry in idle {
                if keep(&entry.obj, &entry.metrics) {
                    st.idle.push_back(entry);
                } else {
                    st.close(CloseReason::Retained);
                    closed.push(entry);
                }
            }
            st.dispatch();
        }
        closed.len()
    }

    /// Closes the pool: idle objects are closed now, objects in use when they come back;
    /// queued and future checkouts fail with [`Error::Closed`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use weft_pool::{Error, Manager, Pool};
    /// # struct Numbers;
    /// # impl Manager for Numbers {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> { Ok(0) }
    /// # }
    /// let pool = Pool::builder(Numbers).build()?;
    /// let obj = pool.get().await?;
    /// pool.close();
    /// assert!(matches!(pool.get().await, Err(Error::Closed)));
    /// drop(obj);
    /// assert_eq!(pool.status().size, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&self) {
        let idle = {
            let mut st = self.shared.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            let idle = std::mem::take(&mut st.idle);
            for _ in &idle {
                st.close(CloseReason::PoolClosed);
            }
            st.waiters.grant_all(|| Grant::Failed(Failure::Closed));
            if let Some(w) = st.maintainer.take() {
                w.wake();
            }
            idle
        };
        tracing::debug!("pool closed");
        drop(idle);
    }

    /// Whether [`close`](Pool::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// One maintenance pass: closes idle objects past `max_lifetime`, and past
    /// `idle_timeout` down to `min_idle`; releases queued checkouts whose wait deadline
    /// passed on the pool's clock; reports checkouts held past `leak_threshold`; then
    /// creates objects up to `min_idle` idle. Background maintenance
    /// ([`Builder::maintenance_interval`]) calls it; so can you, on your own schedule.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use weft_pool::{Manager, Pool};
    /// # struct Numbers;
    /// # impl Manager for Numbers {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> { Ok(0) }
    /// # }
    /// let pool = Pool::builder(Numbers).max_size(4).min_idle(2).build()?;
    /// let pass = pool.maintain().await;
    /// assert_eq!(pass.created, 2);
    /// assert_eq!(pool.status().idle, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn maintain(&self) -> Maintenance {
        crate::maintain::run(self, self.timers()).await
    }

    /// [`maintain`](Pool::maintain) for synchronous code.
    pub fn maintain_blocking(&self) -> Maintenance {
        run_blocking!(&*self.shared.config.clock, |timers| crate::maintain::run(
            self, timers
        ))
    }

    /// Creates objects until `min_idle` are idle, reporting the first creation error
    /// (pre-warming at start-up, where a backend that is down should be noticed).
    ///
    /// # Errors
    ///
    /// [`Error::Create`] (after retries), [`Error::Timeout`], [`Error::Hook`],
    /// [`Error::Closed`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use weft_pool::{Manager, Pool};
    /// # struct Numbers;
    /// # impl Manager for Numbers {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> { Ok(0) }
    /// # }
    /// let pool = Pool::builder(Numbers).max_size(4).min_idle(3).build()?;
    /// pool.warm_up().await?;
    /// assert_eq!(pool.status().idle, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn warm_up(&self) -> Result<(), Error<M::Error>> {
        crate::maintain::warm_up(self, self.timers()).await
    }

    /// [`warm_up`](Pool::warm_up) for synchronous code.
    ///
    /// # Errors
    ///
    /// As [`warm_up`](Pool::warm_up).
    pub fn warm_up_blocking(&self) -> Result<(), Error<M::Error>> {
        run_blocking!(&*self.shared.config.clock, |timers| {
            crate::maintain::warm_up(self, timers)
        })
    }
}

/// With the `tokio` feature, a pool built inside a tokio runtime without a timer gets
/// tokio's.
pub(crate) fn resolve_timer<T>(config: &mut Config<T>) {
    #[cfg(feature = "tokio")]
    if config.timer.is_none() && tokio::runtime::Handle::try_current().is_ok() {
        config.timer = Some(std::sync::Arc::new(crate::TokioTimer));
    }
    let _ = config;
}

/// After a checkout's object was rejected: its next grant (it keeps its slot), or `None`
/// when nothing is possible now.
fn refill<T>(st: &mut State<T>) -> Option<Grant<T>> {
    if st.closed {
        return None;
    }
    if let Some(idle) = st.pop_idle() {
        st.in_use += 1;
        if st.test_on_checkout {
            st.stats.recycled += 1;
        }
        return Some(Grant::Object(idle));
    }
    if st.size + st.creating < st.max_size {
        st.creating += 1;
        return Some(Grant::Create);
    }
    None
}

/// A queued checkout. Dropping it (a timeout or a cancelled `get`) leaves the queue and
/// hands back anything granted meanwhile.
struct Wait<'a, M: Manager> {
    shared: &'a Shared<M>,
    /// `None` until queued on the first poll, and again once served.
    key: Option<Key>,
    front: bool,
    deadline: Option<Instant>,
    start: Instant,
    location: &'static Location<'static>,
    leak_detection: bool,
}

impl<M: Manager> Future for Wait<'_, M> {
    type Output = Result<(Grant<M::Object>, Option<usize>), Failure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let shared = self.shared;
        let mut st = shared.lock();
        let key = match self.key {
            Some(key) => key,
            None => {
                if st.closed {
                    return Poll::Ready(Err(Failure::Closed));
                }
                // Queued behind everyone (or at the front, after losing an object); a
                // dispatch may serve it at once if the state changed since the caller
                // looked.
                let key = st.waiters.push(self.deadline, self.front);
                self.key = Some(key);
                st.dispatch();
                key
            }
        };
        match st.waiters.poll_grant(key, Some(cx.waker())) {
            None => Poll::Pending,
            Some(Grant::Failed(f)) => {
                self.key = None;
                Poll::Ready(Err(f))
            }
            Some(grant) => {
                self.key = None;
                let now = shared.config.clock.now();
                let waited = now.saturating_duration_since(self.start);
                let checkout = st.on_slot(
                    self.location,
                    self.leak_detection.then_some(now),
                    Some(waited),
                );
                Poll::Ready(Ok((grant, checkout)))
            }
        }
    }
}

impl<M: Manager> Drop for Wait<'_, M> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut st = self.shared.lock();
        let mut closed = None;
        match st.waiters.remove(key) {
            Some(Grant::Object(idle)) => {
                st.in_use -= 1;
                st.slots -= 1;
                if st.closed {
                    st.close(CloseReason::PoolClosed);
                    closed = Some(idle);
                } else {
                    st.idle.push_back(idle);
                }
            }
            Some(Grant::Create) => {
                st.creating -= 1;
                st.slots -= 1;
            }
            Some(Grant::Failed(_)) | None => {}
        }
        st.dispatch();
        drop(st);
        drop(closed);
    }
}

/// A checkout holding a slot, and with it perhaps an object, a creation reservation or a
/// budget unit. Dropped before it became an [`Object`], it gives all of them back.
struct Pending<'a, M: Manager> {
    shared: &'a Shared<M>,
    /// Holds a slot.
    active: bool,
    /// The object being prepared (`in_use` counts it).
    obj: Option<Idle<M::Object>>,
    /// Holds a creation reservation.
    creating: bool,
    /// Holds a budget unit for that creation.
    budget: bool,
    /// The leak-registry entry.
    checkout: Option<usize>,
}

impl<'a, M: Manager> Pending<'a, M> {
    fn new(shared: &'a Shared<M>) -> Self {
        Pending {
            shared,
            active: false,
            obj: None,
            creating: false,
            budget: false,
            checkout: None,
        }
    }

    /// Gives up the slot (with nothing else held).
    fn release(&mut self, st: &mut State<M::Object>) {
        if std::mem::take(&mut self.active) {
            st.free_slot(self.checkout.take());
        }
    }

    fn into_object(mut self, pool: &Arc<Shared<M>>) -> Object<M> {
        self.active = false;
        let idle = self.obj.take();
        Object {
            inner: idle.map(|idle| Held {
                idle,
                checkout: self.checkout.take(),
            }),
            pool: Arc::clone(pool),
        }
    }
}

impl<M: Manager> Drop for Pending<'_, M> {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        let mut st = self.shared.lock();
        let obj = self.obj.take();
        if obj.is_some() {
            st.in_use -= 1;
            st.close(CloseReason::Cancelled);
        }
        if self.creating {
            st.creating -= 1;
        }
        if self.budget {
            if let Some(b) = &st.budget {
                b.give();
            }
        }
        self.active = false;
        st.free_slot(self.checkout.take());
        st.dispatch();
        drop(st);
        drop(obj);
    }
}

struct Held<T> {
    idle: Idle<T>,
    checkout: Option<usize>,
}

/// A checked-out object: derefs to it, and returns it to the pool when dropped (or
/// closes it, if [`Manager::has_broken`] says so, it outlived `max_lifetime`, or the pool
/// was closed or shrunk meanwhile). [`Object::take`] detaches it for good.
pub struct Object<M: Manager> {
    inner: Option<Held<M::Object>>,
    pool: Arc<Shared<M>>,
}

impl<M: Manager> Object<M> {
    /// Detaches the object from the pool: it is yours, and its place in the pool is
    /// freed (counted in [`Stats::detached`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use weft_pool::{Manager, Object, Pool};
    /// # struct Numbers;
    /// # impl Manager for Numbers {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> { Ok(9) }
    /// # }
    /// let pool = Pool::builder(Numbers).max_size(1).build()?;
    /// let n: u32 = Object::take(pool.get().await?);
    /// assert_eq!(n, 9);
    /// assert_eq!(pool.status().size, 0);
    /// assert_eq!(pool.status().stats.detached, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn take(mut this: Self) -> M::Object {
        let held = this.take_held();
        let mut st = this.pool.lock();
        st.in_use -= 1;
        st.size -= 1;
        st.stats.detached += 1;
        if let Some(b) = &st.budget {
            b.give();
        }
        st.free_slot(held.checkout);
        st.kick_if_low();
        st.dispatch();
        drop(st);
        held.idle.obj
    }

    /// What the pool knows about the object.
    pub fn metrics(this: &Self) -> &Metrics {
        &this.held().idle.metrics
    }

    fn held(&self) -> &Held<M::Object> {
        match &self.inner {
            Some(h) => h,
            // `inner` is `None` only inside `take` and `drop`, after which no method runs.
            None => unreachable!("an Object always holds its object until consumed"),
        }
    }

    fn take_held(&mut self) -> Held<M::Object> {
        match self.inner.take() {
            Some(h) => h,
            None => unreachable!("an Object always holds its object until consumed"),
        }
    }
}

impl<M: Manager> Deref for Object<M> {
    type Target = M::Object;
    fn deref(&self) -> &M::Object {
        &self.held().idle.obj
    }
}

impl<M: Manager> DerefMut for Object<M> {
    fn deref_mut(&mut self) -> &mut M::Object {
        match &mut self.inner {
            Some(h) => &mut h.idle.obj,
            None => unreachable!("an Object always holds its object until consumed"),
        }
    }
}

impl<M: Manager> fmt::Debug for Object<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("object", &Opaque(std::any::type_name::<M::Object>()))
            .field("metrics", &self.inner.as_ref().map(|h| h.idle.metrics))
            .finish()
    }
}

impl<M: Manager> Drop for Object<M> {
    fn drop(&mut self) {
        let Some(mut held) = self.inner.take() else {
            return;
        };
        let shared = &*self.pool;
        let broken = shared.manager.has_broken(&mut held.idle.obj);
        let now = shared.config.clock.now();
        let expired = shared
            .config
            .max_lifetime
            .is_some_and(|l| held.idle.metrics.age(now) >= l);
        let mut st = shared.lock();
        st.in_use -= 1;
        st.free_slot(held.checkout);
        let reason = if st.closed {
            Some(CloseReason::PoolClosed)
        } else if broken {
            Some(CloseReason::Broken)
        } else if expired {
            Some(CloseReason::Expired)
        } else if st.size + st.creating > st.max_size {
            Some(CloseReason::Resized)
        } else if st.waiters.is_empty() && st.budget.as_ref().is_some_and(|b| b.has_waiters()) {
            Some(CloseReason::Evicted)
        } else {
            None
        };
        let closed = match reason {
            Some(reason) => {
                st.close(reason);
                Some(held.idle)
            }
            None => {
                held.idle.metrics.last_used = now;
                st.idle.push_back(held.idle);
                None
            }
        };
        st.dispatch();
        drop(st);
        drop(closed);
    }
}

/// What maintenance needs from a pool's internals.
pub(crate) mod internals {
    use super::*;

    /// Closes idle objects past their lifetime or idle timeout (never below `min_idle`
    /// for the latter), expires overdue waiters, reports leaks, and reserves the
    /// creations needed to reach `min_idle`. Returns the closed objects (to drop after
    /// unlocking), the number of creations reserved, and the report so far.
    pub(crate) fn sweep<M: Manager>(
        shared: &Shared<M>,
        now: Instant,
    ) -> (Vec<Idle<M::Object>>, usize, Maintenance) {
        let config = &shared.config;
        let mut report = Maintenance::default();
        let mut closed = Vec::new();
        let mut st = shared.lock();
        let idle = std::mem::take(&mut st.idle);
        let mut idle_left = idle.len();
        for entry in idle {
            let expired = config
                .max_lifetime
                .is_some_and(|l| entry.metrics.age(now) >= l);
            let stale = config
                .idle_timeout
                .is_some_and(|t| entry.metrics.idle_for(now) >= t)
                && idle_left > st.min_idle;
            if expired || stale {
                idle_left -= 1;
                st.close(if expired {
                    CloseReason::Expired
                } else {
                    CloseReason::IdleTimeout
                });
                closed.push(entry);
            } else {
                st.idle.push_back(entry);
            }
        }
        report.closed = closed.len();
        report.expired_waiters = st.waiters.expire(now, || Grant::Failed(Failure::TimedOut));
        st.stats.gets_timed_out += report.expired_waiters as u64;
        if let (Some(threshold), Some(checkouts)) = (config.leak_threshold, st.checkouts.as_mut()) {
            for (_, c) in checkouts.iter_mut() {
                let held = now.saturating_duration_since(c.since);
                if !c.reported && held >= threshold {
                    c.reported = true;
                    report.leaks += 1;
                    tracing::warn!(
                        location = %c.location,
                        held_for = ?held,
                        "pooled object checked out longer than the leak threshold"
                    );
                }
            }
        }
        st.stats.leaks += report.leaks as u64;
        let reserved = reserve_for_min_idle(&mut st);
        st.kick = false;
        st.dispatch();
        (closed, reserved, report)
    }

    /// Reserves creations (and budget units) towards `min_idle`.
    pub(crate) fn reserve_for_min_idle<T>(st: &mut State<T>) -> usize {
        if st.closed {
            return 0;
        }
        let want = st.min_idle.saturating_sub(st.idle.len() + st.creating_bg);
        let room = st.max_size.saturating_sub(st.size + st.creating);
        let mut n = 0;
        while n < want.min(room) {
            if let Some(b) = &st.budget {
                if !b.try_take() {
                    break;
                }
            }
            n += 1;
        }
        st.creating += n;
        st.creating_bg += n;
        n
    }

    /// Maintenance creations in flight; dropping it (cancelled maintenance) releases the
    /// ones not yet settled.
    pub(crate) struct Reservation<'a, M: Manager> {
        pub(crate) shared: &'a Shared<M>,
        pub(crate) left: usize,
    }

    impl<M: Manager> Reservation<'_, M> {
        /// One reserved creation finished: its object goes to the idle list (and from
        /// there, by dispatch, to a waiter), or its reservation is released.
        pub(crate) fn settle(&mut self, created: Option<Idle<M::Object>>) {
            self.left -= 1;
            let mut st = self.shared.lock();
            st.creating -= 1;
            st.creating_bg -= 1;
            match created {
                Some(idle) => {
                    st.record_created();
                    if st.closed {
                        st.close(CloseReason::PoolClosed);
                    } else {
                        st.idle.push_back(idle);
                    }
                }
                None => {
                    if let Some(b) = &st.budget {
                        b.give();
                    }
                }
            }
            st.dispatch();
        }
    }

    impl<M: Manager> Drop for Reservation<'_, M> {
        fn drop(&mut self) {
            if self.left == 0 {
                return;
            }
            let mut st = self.shared.lock();
            st.creating -= self.left;
            st.creating_bg -= self.left;
            if let Some(b) = &st.budget {
                for _ in 0..self.left {
                    b.give();
                }
            }
            st.dispatch();
        }
    }

    /// Reserves one creation towards `min_idle` for `warm_up`, if one is needed.
    pub(crate) fn reserve_one<M: Manager>(shared: &Shared<M>) -> Result<bool, Failure> {
        let mut st = shared.lock();
        if st.closed {
            return Err(Failure::Closed);
        }
        if st.idle.len() + st.creating_bg >= st.min_idle {
            return Ok(false);
        }
        if st.size + st.creating >= st.max_size {
            return Ok(false);
        }
        if let Some(b) = &st.budget {
            if !b.try_take() {
                return Ok(false);
            }
        }
        st.creating += 1;
        st.creating_bg += 1;
        Ok(true)
    }

    /// Parks the background task until kicked; `true` if it was kicked (or the pool
    /// closed), registering `waker` otherwise.
    #[cfg(all(feature = "tokio", not(loom)))]
    pub(crate) fn poll_kick<M: Manager>(shared: &Shared<M>, waker: &Waker) -> bool {
        let mut st = shared.lock();
        if st.kick || st.closed {
            st.kick = false;
            return true;
        }
        st.maintainer = Some(waker.clone());
        false
    }

    /// Closes one idle object to free global capacity (keyed pools); `true` if there was
    /// one.
    pub(crate) fn evict_one<M: Manager>(shared: &Shared<M>) -> bool {
        let victim = {
            let mut st = shared.lock();
            let Some(idle) = st.idle.pop_front() else {
                return false;
            };
            st.close(CloseReason::Evicted);
            st.dispatch();
            idle
        };
        drop(victim);
        true
    }

    /// The most recent use of any idle object (keyed pools pick the least recently used
    /// key to evict from); `None` when nothing is idle.
    pub(crate) fn idle_recency<M: Manager>(shared: &Shared<M>) -> Option<Instant> {
        let st = shared.lock();
        st.idle.iter().map(|i| i.metrics.last_used).max()
    }
}
