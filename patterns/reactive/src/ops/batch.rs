//! [`Batch`]: groups of up to `max` items, or whatever arrived within `period`.

use std::fmt;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::alarm::Alarm;
use crate::metrics::Meter;
use crate::timer::Timer;

pin_project! {
    /// The stream of [`ReactiveExt::batch`](crate::ReactiveExt::batch).
    ///
    /// A batch is emitted when it holds `max` items, or when `period` has passed since
    /// its first item arrived, whichever comes first; never empty. When the upstream ends
    /// the partial batch is emitted. Meter: `items_in` items, `items_out` batches,
    /// `buffered` items in the open batch.
    #[must_use = "streams do nothing unless polled"]
    pub struct Batch<S: Stream, Tm: Timer> {
        #[pin]
        stream: S,
        items: Vec<S::Item>,
        max: usize,
        period: Duration,
        deadline: Option<Instant>,
        alarm: Alarm<Tm>,
        done: bool,
        meter: Meter,
    }
}

impl<S: Stream, Tm: Timer> Batch<S, Tm> {
    pub(crate) fn new(stream: S, max: usize, period: Duration, timer: Tm) -> Self {
        Batch {
            stream,
            items: Vec::with_capacity(max.min(1024)),
            max,
            period,
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

impl<S: Stream, Tm: Timer> Stream for Batch<S, Tm> {
    type Item = Vec<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let emit = |items: &mut Vec<S::Item>, deadline: &mut Option<Instant>, meter: &Meter| {
            *deadline = None;
            let cap = items.len();
            meter.emit(Some(mem::replace(items, Vec::with_capacity(cap))), 0)
        };
        if let Some(d) = *this.deadline {
            if this.alarm.now() >= d {
                return emit(this.items, this.deadline, this.meter);
            }
        }
        while !*this.done {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    if this.items.is_empty() {
                        *this.deadline = Some(this.alarm.in_(*this.period));
                    }
                    this.items.push(item);
                    this.meter.add_in(1);
                    if this.items.len() >= *this.max {
                        return emit(this.items, this.deadline, this.meter);
                    }
                }
                Poll::Ready(None) => *this.done = true,
                Poll::Pending => break,
            }
        }
        if *this.done {
            if this.items.is_empty() {
                return Poll::Ready(None);
            }
            return emit(this.items, this.deadline, this.meter);
        }
        this.meter.set_buffered(this.items.len());
        match *this.deadline {
            Some(d) if this.alarm.poll_at(cx, d).is_ready() => {
                emit(this.items, this.deadline, this.meter)
            }
            _ => Poll::Pending,
        }
    }
}

impl<S: Stream, Tm: Timer> FusedStream for Batch<S, Tm> {
    fn is_terminated(&self) -> bool {
        self.done && self.items.is_empty()
    }
}

impl<S: Stream, Tm: Timer> fmt::Debug for Batch<S, Tm> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("max", &self.max)
            .field("period", &self.period)
            .field("meter", &self.meter)
            .finish_non_exhaustive()
    }
}
