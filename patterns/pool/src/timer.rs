//! Timers: the async side's [`Timer`] trait (with [`TokioTimer`] behind the `tokio`
//! feature), and the blocking side's driver, which runs the same checkout state machine on
//! the calling thread and parks it on a condition variable until a waker or a deadline.
//!
//! The checkout logic is written once, as an async state machine over `&dyn Timer`. The
//! async API hands it the pool's timer; the blocking API hands it a [`DeadlineTimer`]
//! whose sleeps only record their deadlines, and [`block_on`] waits on a `Condvar` until
//! the earliest recorded deadline or a wake-up, whichever comes first. So the blocking API
//! has the same fairness and cancellation guarantees as the async one, by construction.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use weft_sync::{Condvar, Mutex};
use weft_time::Clock;

/// A boxed sleep future, as returned by [`Timer::sleep`].
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What the async API sleeps on for timeouts and retry delays: one method, so any
/// runtime's timer plugs in.
///
/// A pool built inside a tokio runtime with the `tokio` feature uses `TokioTimer`
/// unless told otherwise ([`Builder::timer`](crate::Builder::timer)). The blocking API
/// needs no timer.
///
/// ```
/// use std::time::Duration;
/// use weft_pool::{Sleep, Timer};
///
/// /// A timer for a runtime that has `sleep(Duration)`, here a never-firing stand-in.
/// #[derive(Debug)]
/// struct Never;
/// impl Timer for Never {
///     fn sleep(&self, _: Duration) -> Sleep<'_> {
///         Box::pin(std::future::pending())
///     }
/// }
/// let _sleep = Never.sleep(Duration::from_secs(1));
/// ```
pub trait Timer: Send + Sync + fmt::Debug + 'static {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Sleep<'_>;
}

/// Sleeps on tokio's timer (feature `tokio`), so `tokio::time::pause()` drives it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use weft_pool::{Timer, TokioTimer};
/// let start = tokio::time::Instant::now();
/// TokioTimer.sleep(Duration::from_secs(3)).await;
/// assert_eq!(start.elapsed(), Duration::from_secs(3));
/// # }
/// ```
#[cfg(feature = "tokio")]
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioTimer;

#[cfg(feature = "tokio")]
impl Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> Sleep<'_> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The blocking driver's timer: a sleep is ready once the pool's clock passes its
/// deadline; until then it records the deadline so [`block_on`] knows how long it may
/// park.
pub(crate) struct DeadlineTimer<'c> {
    clock: &'c dyn Clock,
    /// The earliest deadline of a sleep polled since the last reset. Only the thread
    /// running [`block_on`] touches it (the future is polled there); the lock exists
    /// because the checkout future must be `Send`. It is per-thread bookkeeping, not
    /// shared state, so it is a `std` mutex: under loom it adds no interleavings to the
    /// models.
    next: std::sync::Mutex<Option<Instant>>,
}

impl fmt::Debug for DeadlineTimer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadlineTimer").finish_non_exhaustive()
    }
}

impl<'c> DeadlineTimer<'c> {
    pub(crate) fn new(clock: &'c dyn Clock) -> Self {
        DeadlineTimer {
            clock,
            next: std::sync::Mutex::new(None),
        }
    }

    pub(crate) fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + '_ {
        std::future::poll_fn(move |_| {
            if self.clock.now() >= deadline {
                return Poll::Ready(());
            }
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *next = Some(next.map_or(deadline, |n| n.min(deadline)));
            Poll::Pending
        })
    }
}

/// The timer a checkout runs with.
#[derive(Clone, Copy)]
pub(crate) enum Timers<'a> {
    /// The async API with the pool's timer, if it has one.
    Async(Option<&'a dyn Timer>),
    /// The blocking API.
    Blocking(&'a DeadlineTimer<'a>),
}

impl<'a> Timers<'a> {
    /// Whether timeouts can be measured.
    pub(crate) fn available(self) -> bool {
        !matches!(self, Timers::Async(None))
    }

    /// Sleeps for `d`; without a timer, returns at once.
    pub(crate) async fn sleep(self, d: Duration, clock: &dyn Clock) {
        match self {
            Timers::Async(Some(t)) => t.sleep(d).await,
            Timers::Async(None) => {}
            Timers::Blocking(t) => t.sleep_until(deadline(clock, d)).await,
        }
    }

    /// Runs `fut` for at most `limit` (forever for `None` or without a timer); `None` if
    /// the time ran out first (and `fut` was dropped).
    pub(crate) async fn timeout<F: Future>(
        self,
        limit: Option<Duration>,
        clock: &dyn Clock,
        fut: F,
    ) -> Option<F::Output> {
        let Some(limit) = limit.filter(|_| self.available()) else {
            return Some(fut.await);
        };
        let mut fut = std::pin::pin!(fut);
        let mut sleep = std::pin::pin!(self.sleep(limit, clock));
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

/// `now + d` on `clock`, saturating far in the future.
pub(crate) fn deadline(clock: &dyn Clock, d: Duration) -> Instant {
    weft_time::Deadline::after(clock, d).instant()
}

/// Wakes a thread parked in [`block_on`]. It lives in a `std::sync::Arc` because
/// [`Waker::from`] requires exactly that type; its state is a `weft_sync` mutex and
/// condition variable, so loom still sees every access that matters.
struct Parker {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Wake for Parker {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        *self.woken.lock() = true;
        self.cv.notify_one();
    }
}

/// Runs the future `$fut` (an expression using the `Timers` bound to `$timers`) to
/// completion on this thread with a [`DeadlineTimer`] on `$clock`: the one way the
/// blocking API drives the async state machines.
macro_rules! run_blocking {
    ($clock:expr, |$timers:ident| $fut:expr) => {{
        let timer = $crate::timer::DeadlineTimer::new($clock);
        let $timers = $crate::timer::Timers::Blocking(&timer);
        $crate::timer::block_on($fut, &timer)
    }};
}

pub(crate) use run_blocking;

/// Runs `fut` to completion on this thread. Between polls the thread waits on a
/// condition variable until the future's waker fires or the earliest deadline recorded in
/// `timer` passes (on the timer's clock).
pub(crate) fn block_on<F: Future>(fut: F, timer: &DeadlineTimer<'_>) -> F::Output {
    let parker = std::sync::Arc::new(Parker {
        woken: Mutex::new(false),
        cv: Condvar::new(),
    });
    let waker = Waker::from(std::sync::Arc::clone(&parker));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        *timer.next.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        let next = *timer.next.lock().unwrap_or_else(|e| e.into_inner());
        let mut woken = parker.woken.lock();
        while !*woken {
            match next {
                None => woken = parker.cv.wait(woken),
                Some(at) => {
                    let left = at.saturating_duration_since(timer.clock.now());
                    if left.is_zero() {
                        break;
                    }
                    woken = parker.cv.wait_timeout(woken, left).0;
                    if timer.clock.now() >= at {
                        break;
                    }
                }
            }
        }
        *woken = false;
    }
}
