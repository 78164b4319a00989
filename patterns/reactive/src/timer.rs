//! The timer abstraction of the time operators: [`Timer`], the test timer
//! [`ManualTimer`], and (feature `tokio`) `TokioTimer`.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use weft_sync::{Arc, Mutex};
use weft_time::{Clock, ManualClock};

/// A clock that can also wake a task at an instant: what every time operator
/// (`batch`, `debounce`, `throttle`, `sample`, `time_windows`, `timeout`, `retry`) is
/// given.
///
/// The core is runtime-agnostic: implement `Timer` for any runtime's sleep. The crate
/// ships [`ManualTimer`] for tests (time moves only when the test says so) and, with
/// the `tokio` feature, `TokioTimer` (tokio's timer, so `tokio::time::pause` drives it).
///
/// Time is read through [`Clock::now`]; `sleep_until` returns a future that completes
/// once `now() >= deadline`.
///
/// ```
/// use std::time::Duration;
/// use weft_reactive::{ManualTimer, Timer};
/// use weft_time::Clock;
///
/// let timer = ManualTimer::new();
/// let mut sleep = Box::pin(timer.sleep_until(timer.now() + Duration::from_secs(1)));
/// let waker = futures_util::task::noop_waker();
/// let mut cx = std::task::Context::from_waker(&waker);
/// assert!(sleep.as_mut().poll(&mut cx).is_pending());
/// timer.advance(Duration::from_secs(1));
/// assert!(sleep.as_mut().poll(&mut cx).is_ready());
/// # use std::future::Future;
/// ```
pub trait Timer: Clock + Clone {
    /// The future of [`sleep_until`](Timer::sleep_until).
    type Sleep: Future<Output = ()> + Send + 'static;

    /// A future that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> Self::Sleep;
}

/// A timer whose time moves only when [`advance`](ManualTimer::advance) is called: the
/// timer for deterministic tests.
///
/// It reads a [`ManualClock`] and keeps the wakers of pending sleeps; `advance` moves the
/// clock and wakes every sleep whose deadline has come. Clones share the same time and
/// sleepers. Advance it through `ManualTimer::advance`, not through the clock handle from
/// [`clock`](ManualTimer::clock) (which would move the time without waking sleepers).
///
/// ```
/// use std::time::Duration;
/// use futures_util::StreamExt;
/// use weft_reactive::{ManualTimer, ReactiveExt};
///
/// let timer = ManualTimer::new();
/// let (tx, rx) = weft_reactive::channel::<u32>(8, weft_reactive::Overflow::Block)?;
/// let mut batches = rx.batch(100, Duration::from_millis(10), timer.clone())?;
/// tx.try_send(1)?;
/// tx.try_send(2)?;
/// let waker = futures_util::task::noop_waker();
/// let mut cx = std::task::Context::from_waker(&waker);
/// assert!(batches.poll_next_unpin(&mut cx).is_pending()); // neither full nor timed out
/// timer.advance(Duration::from_millis(10));
/// assert_eq!(batches.poll_next_unpin(&mut cx), std::task::Poll::Ready(Some(vec![1, 2])));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct ManualTimer {
    clock: ManualClock,
    sleepers: Arc<Mutex<Sleepers>>,
}

/// Pending sleeps of a [`ManualTimer`], by id.
#[derive(Default)]
struct Sleepers {
    next_id: u64,
    waiting: BTreeMap<u64, (Instant, Waker)>,
}

impl ManualTimer {
    /// A timer at elapsed zero with no sleepers.
    pub fn new() -> Self {
        ManualTimer::default()
    }

    /// Moves time forward by `by` and wakes every sleep whose deadline has come.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
        let now = self.clock.now();
        let due: Vec<Waker> = {
            let mut s = self.sleepers.lock();
            let ids: Vec<u64> = s
                .waiting
                .iter()
                .filter(|(_, (deadline, _))| *deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| s.waiting.remove(id).map(|(_, w)| w))
                .collect()
        };
        due.into_iter().for_each(Waker::wake);
    }

    /// The time elapsed since the timer was created.
    pub fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    /// The number of sleeps waiting for time to move (for tests).
    pub fn pending_sleeps(&self) -> usize {
        self.sleepers.lock().waiting.len()
    }

    /// The clock this timer reads, to share with other Weft primitives.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }
}

impl fmt::Debug for ManualTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualTimer")
            .field("elapsed", &self.elapsed())
            .field("pending_sleeps", &self.pending_sleeps())
            .finish()
    }
}

impl Clock for ManualTimer {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn system_now(&self) -> SystemTime {
        self.clock.system_now()
    }

    fn monotonic_nanos(&self) -> u64 {
        self.clock.monotonic_nanos()
    }
}

impl Timer for ManualTimer {
    type Sleep = ManualSleep;

    fn sleep_until(&self, deadline: Instant) -> ManualSleep {
        ManualSleep {
            timer: self.clone(),
            deadline,
            id: None,
        }
    }
}

/// The sleep future of a [`ManualTimer`].
#[derive(Debug)]
pub struct ManualSleep {
    timer: ManualTimer,
    deadline: Instant,
    /// Our entry in the timer's sleepers, while registered.
    id: Option<u64>,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut s = this.timer.sleepers.lock();
        // Read the clock under the sleepers' lock: `advance` moves the clock before taking
        // the lock, so either we see the new time or it sees our registration.
        if this.timer.clock.now() >= this.deadline {
            if let Some(id) = this.id.take() {
                s.waiting.remove(&id);
            }
            return Poll::Ready(());
        }
        let id = *this.id.get_or_insert_with(|| {
            s.next_id += 1;
            s.next_id
        });
        s.waiting.insert(id, (this.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.timer.sleepers.lock().waiting.remove(&id);
        }
    }
}

#[cfg(feature = "tokio")]
pub use tokio_timer::TokioTimer;

#[cfg(feature = "tokio")]
mod tokio_timer {
    use super::*;
    use weft_time::TokioClock;

    /// tokio's timer (feature `tokio`): sleeps are `tokio::time::Sleep`s, time is tokio's
    /// clock, so `tokio::time::pause()` and `advance()` drive every operator in tests.
    ///
    /// Needs a tokio runtime with the time driver enabled when a sleep is polled.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures_util::StreamExt;
    /// use weft_reactive::{ReactiveExt, TokioTimer};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?.block_on(async {
    /// let batches: Vec<Vec<u32>> = futures_util::stream::iter(0..5)
    ///     .batch(2, Duration::from_secs(1), TokioTimer::new())?
    ///     .collect()
    ///     .await;
    /// assert_eq!(batches, [vec![0, 1], vec![2, 3], vec![4]]);
    /// # Ok::<(), weft_reactive::Error>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Default, Clone, Copy)]
    pub struct TokioTimer;

    impl TokioTimer {
        /// The tokio timer.
        pub fn new() -> Self {
            TokioTimer
        }
    }

    impl Clock for TokioTimer {
        fn now(&self) -> Instant {
            TokioClock.now()
        }

        fn system_now(&self) -> SystemTime {
            TokioClock.system_now()
        }
    }

    impl Timer for TokioTimer {
        type Sleep = tokio::time::Sleep;

        fn sleep_until(&self, deadline: Instant) -> tokio::time::Sleep {
            tokio::time::sleep_until(deadline.into())
        }
    }
}
