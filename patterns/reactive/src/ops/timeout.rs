//! [`Timeout`]: an error item whenever the upstream is silent for a whole period.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::alarm::Alarm;
use crate::error::Elapsed;
use crate::metrics::Meter;
use crate::timer::Timer;

pin_project! {
    /// The stream of [`ReactiveExt::timeout`](crate::ReactiveExt::timeout).
    ///
    /// Yields `Ok(item)` for each upstream item, and `Err(Elapsed)` each time `period`
    /// passes without one, counted from when the consumer starts waiting (the first poll
    /// that finds the upstream not ready) after the previous item or error. The stream goes on after an error; stop with `take_while` or `?` if a timeout
    /// should end it (tokio-stream's `timeout`, on any runtime). Meter: `items_in`,
    /// `items_out`, `dropped` counts timeouts.
    #[must_use = "streams do nothing unless polled"]
    pub struct Timeout<S, Tm: Timer> {
        #[pin]
        stream: S,
        period: Duration,
        deadline: Option<Instant>,
        alarm: Alarm<Tm>,
        meter: Meter,
    }
}

impl<S: Stream, Tm: Timer> Timeout<S, Tm> {
    pub(crate) fn new(stream: S, period: Duration, timer: Tm) -> Self {
        Timeout {
            stream,
            period,
            deadline: None,
            alarm: Alarm::new(timer),
            meter: Meter::new(),
        }
    }

    /// A handle on this stage's counters.
    pub fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<S: Stream, Tm: Timer> Stream for Timeout<S, Tm> {
    type Item = Result<S::Item, Elapsed>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        match this.stream.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                *this.deadline = None;
                this.meter.add_in(1);
                this.meter.add_out(1);
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = *this
                    .deadline
                    .get_or_insert_with(|| this.alarm.in_(*this.period));
                match this.alarm.poll_at(cx, deadline) {
                    Poll::Ready(()) => {
                        *this.deadline = None;
                        this.meter.add_dropped(1);
                        Poll::Ready(Some(Err(Elapsed(*this.period))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: FusedStream, Tm: Timer> FusedStream for Timeout<S, Tm> {
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}

impl<S, Tm: Timer> fmt::Debug for Timeout<S, Tm> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("period", &self.period)
            .field("meter", &self.meter)
            .finish_non_exhaustive()
    }
}
