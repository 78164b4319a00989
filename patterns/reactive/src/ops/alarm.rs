//! [`Alarm`]: the one re-armable sleep every time operator waits on.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::timer::Timer;

/// `t + d`, saturating far in the future instead of panicking when a huge duration
/// (say `Duration::MAX`, or an uncapped backoff) does not fit in an `Instant`.
pub(crate) fn after(t: Instant, d: Duration) -> Instant {
    /// About 30 years: far enough to mean "never" for a timer, and representable.
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    t.checked_add(d).or_else(|| t.checked_add(FAR)).unwrap_or(t)
}

/// A sleep that is re-armed only when needed: a deadline that moves later keeps the
/// armed sleep and re-arms when it fires early (so `debounce` allocates once per quiet
/// period, not once per item); a deadline that moves earlier re-arms at once.
pub(crate) struct Alarm<Tm: Timer> {
    pub(crate) timer: Tm,
    armed: Option<(Instant, Pin<Box<Tm::Sleep>>)>,
}

impl<Tm: Timer> Alarm<Tm> {
    pub(crate) fn new(timer: Tm) -> Self {
        Alarm { timer, armed: None }
    }

    pub(crate) fn now(&self) -> Instant {
        self.timer.now()
    }

    /// The instant `d` from now (saturating, see [`after`]).
    pub(crate) fn in_(&self, d: Duration) -> Instant {
        after(self.timer.now(), d)
    }

    /// Ready once the timer reads `deadline` or later; otherwise arranges a wake-up.
    pub(crate) fn poll_at(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        loop {
            if self.timer.now() >= deadline {
                self.armed = None;
                return Poll::Ready(());
            }
            match &mut self.armed {
                Some((at, sleep)) if *at <= deadline => match sleep.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    // Fired for an earlier deadline: look at the clock again.
                    Poll::Ready(()) => self.armed = None,
                },
                _ => {
                    self.armed = Some((deadline, Box::pin(self.timer.sleep_until(deadline))));
                }
            }
        }
    }
}

impl<Tm: Timer> fmt::Debug for Alarm<Tm> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alarm")
            .field("armed_for", &self.armed.as_ref().map(|(at, _)| *at))
            .finish_non_exhaustive()
    }
}
