//! [`Alarm`]: the one re-armable sleep every time operator waits on.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::timer::Timer;

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
