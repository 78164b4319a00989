//! [`Throttle`]: at most one item per period, without losing any.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::alarm::Alarm;
use crate::metrics::Meter;
use crate::timer::Timer;

pin_project! {
    /// The stream of [`ReactiveExt::throttle`](crate::ReactiveExt::throttle).
    ///
    /// Lets an item through, then does not poll the upstream again until `period` has
    /// passed: items are delayed, never dropped, and the upstream feels the slowdown as
    /// backpressure (tokio-stream's `throttle`, on any runtime). For "latest value per
    /// period, drop the rest" use [`sample`](crate::ReactiveExt::sample). Meter:
    /// `items_in`, `items_out`.
    #[must_use = "streams do nothing unless polled"]
    pub struct Throttle<S, Tm: Timer> {
        #[pin]
        stream: S,
        period: Duration,
        next: Option<Instant>,
        alarm: Alarm<Tm>,
        meter: Meter,
    }
}

impl<S: Stream, Tm: Timer> Throttle<S, Tm> {
    pub(crate) fn new(stream: S, period: Duration, timer: Tm) -> Self {
        Throttle {
            stream,
            period,
            next: None,
            alarm: Alarm::new(timer),
            meter: Meter::new(),
        }
    }

    /// A handle on this stage's counters.
    pub fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<S: Stream, Tm: Timer> Stream for Throttle<S, Tm> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        if let Some(next) = *this.next {
            if this.alarm.poll_at(cx, next).is_pending() {
                return Poll::Pending;
            }
            *this.next = None;
        }
        let r = this.stream.poll_next(cx);
        if let Poll::Ready(Some(_)) = &r {
            *this.next = Some(this.alarm.in_(*this.period));
            this.meter.add_in(1);
            this.meter.add_out(1);
        }
        r
    }
}

impl<S: FusedStream, Tm: Timer> FusedStream for Throttle<S, Tm> {
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}

impl<S, Tm: Timer> fmt::Debug for Throttle<S, Tm> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("period", &self.period)
            .field("meter", &self.meter)
            .finish_non_exhaustive()
    }
}
