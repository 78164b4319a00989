//! [`Debounce`]: an item goes out only after a quiet period with no newer item.

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
    /// The stream of [`ReactiveExt::debounce`](crate::ReactiveExt::debounce).
    ///
    /// Holds the latest item and emits it once `quiet` has passed without a newer one;
    /// an item superseded before that is dropped and counted (`dropped`). When the
    /// upstream ends, the held item is emitted at once. Meter: `items_in`, `items_out`,
    /// `buffered` (0 or 1), `dropped`.
    #[must_use = "streams do nothing unless polled"]
    pub struct Debounce<S: Stream, Tm: Timer> {
        #[pin]
        stream: S,
        held: Option<S::Item>,
        quiet: Duration,
        deadline: Option<Instant>,
        alarm: Alarm<Tm>,
        done: bool,
        meter: Meter,
    }
}

impl<S: Stream, Tm: Timer> Debounce<S, Tm> {
    pub(crate) fn new(stream: S, quiet: Duration, timer: Tm) -> Self {
        Debounce {
            stream,
            held: None,
            quiet,
            deadline: None,
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

impl<S: Stream, Tm: Timer> Stream for Debounce<S, Tm> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        while !*this.done {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.meter.add_in(1);
                    if this.held.replace(item).is_some() {
                        this.meter.add_dropped(1);
                    }
                    *this.deadline = Some(this.alarm.in_(*this.quiet));
                }
                Poll::Ready(None) => *this.done = true,
                Poll::Pending => break,
            }
        }
        let due = match *this.deadline {
            _ if *this.done => true,
            Some(d) => this.alarm.poll_at(cx, d).is_ready(),
            None => false,
        };
        if !due {
            this.meter.set_buffered(usize::from(this.held.is_some()));
            return Poll::Pending;
        }
        *this.deadline = None;
        this.meter.emit(this.held.take(), 0)
    }
}

impl<S: Stream, Tm: Timer> FusedStream for Debounce<S, Tm> {
    fn is_terminated(&self) -> bool {
        self.done && self.held.is_none()
    }
}

impl<S: Stream, Tm: Timer> fmt::Debug for Debounce<S, Tm> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Debounce")
            .field("quiet", &self.quiet)
            .field("meter", &self.meter)
            .finish_non_exhaustive()
    }
}
