//! [`Sample`]: the latest item at each tick of a fixed period.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::alarm::{Alarm, after};
use crate::metrics::Meter;
use crate::timer::Timer;

/// Upstream items taken in one poll before the ticks are looked at again.
const BUDGET: usize = 64;

pin_project! {
    /// The stream of [`ReactiveExt::sample`](crate::ReactiveExt::sample).
    ///
    /// Consumes the upstream as fast as it produces, keeps only the latest item, and
    /// emits it at each tick (every `period` from the first poll); a tick with no new
    /// item emits nothing. Items superseded between ticks are dropped and counted
    /// (`dropped`). When the upstream ends, the held item is emitted at once. Ticks
    /// missed while the consumer was busy are skipped, not replayed. Meter: `items_in`,
    /// `items_out`, `buffered` (0 or 1), `dropped`.
    #[must_use = "streams do nothing unless polled"]
    pub struct Sample<S: Stream, Tm: Timer> {
        #[pin]
        stream: S,
        latest: Option<S::Item>,
        period: Duration,
        tick: Option<Instant>,
        alarm: Alarm<Tm>,
        done: bool,
        meter: Meter,
    }
}

impl<S: Stream, Tm: Timer> Sample<S, Tm> {
    pub(crate) fn new(stream: S, period: Duration, timer: Tm) -> Self {
        Sample {
            stream,
            latest: None,
            period,
            tick: None,
            alarm: Alarm::new(timer),
            done: false,
            meter: Meter::new(),
        }
    }

    /// A handle on this stage's counters.
    pub fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<S: Stream, Tm: Timer> Stream for Sample<S, Tm> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        let period = *this.period;
        let mut tick = match *this.tick {
            Some(t) => t,
            None => this.alarm.in_(period),
        };
        let mut budget = BUDGET;
        while !*this.done && budget > 0 {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    budget -= 1;
                    this.meter.add_in(1);
                    if this.latest.replace(item).is_some() {
                        this.meter.add_dropped(1);
                    }
                }
                Poll::Ready(None) => *this.done = true,
                Poll::Pending => break,
            }
        }
        if *this.done {
            return this.meter.emit(this.latest.take(), 0);
        }
        let out = loop {
            if this.alarm.poll_at(cx, tick).is_pending() {
                break None;
            }
            // Next tick strictly after now, skipping missed ones.
            let now = this.alarm.now();
            let behind = now.saturating_duration_since(tick).as_nanos() / period.as_nanos().max(1);
            let skip = u32::try_from(behind + 1).unwrap_or(u32::MAX);
            tick = after(tick, period.saturating_mul(skip));
            if let Some(item) = this.latest.take() {
                break Some(item);
            }
        };
        *this.tick = Some(tick);
        match out {
            Some(item) => this.meter.emit(Some(item), 0),
            None => {
                this.meter.set_buffered(usize::from(this.latest.is_some()));
                if budget == 0 {
                    // The upstream still has items: come back for them.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }
}

impl<S: Stream, Tm: Timer> FusedStream for Sample<S, Tm> {
    fn is_terminated(&self) -> bool {
        self.done && self.latest.is_none()
    }
}

impl<S: Stream, Tm: Timer> fmt::Debug for Sample<S, Tm> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sample")
            .field("period", &self.period)
            .field("meter", &self.meter)
            .finish_non_exhaustive()
    }
}
