//! Windows: [`CountWindows`] (by item count) and [`TimeWindows`] (by time), tumbling or
//! sliding.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::alarm::{Alarm, after};
use crate::metrics::Meter;
use crate::timer::Timer;

/// Upstream items a time window stage takes in one poll before yielding.
const BUDGET: usize = 256;

/// Pushes a clone of `item` into every window but the last, and `item` into the last.
fn fan_out<T: Clone>(windows: &mut VecDeque<(Instant, Vec<T>)>, item: T) {
    let Some(((_, last), rest)) = windows.make_contiguous().split_last_mut() else {
        return;
    };
    for (_, w) in rest {
        w.push(item.clone());
    }
    last.push(item);
}

pin_project! {
    /// The stream of [`ReactiveExt::count_windows`](crate::ReactiveExt::count_windows).
    ///
    /// A window opens at every `step`-th item (the first item opens one) and closes when
    /// it holds `size` items: `step == size` is tumbling, `step < size` sliding (an item
    /// is in several windows), `step > size` leaves gaps, whose items are dropped and
    /// counted. When the upstream ends, open windows are emitted partial, oldest first
    /// (RxJava's `buffer(count, skip)`). Meter: `items_in`, `items_out` windows,
    /// `buffered` open windows, `dropped` gap items.
    #[must_use = "streams do nothing unless polled"]
    pub struct CountWindows<S: Stream> {
        #[pin]
        stream: S,
        size: usize,
        step: usize,
        open: VecDeque<(Instant, Vec<S::Item>)>,
        seen: u64,
        done: bool,
        meter: Meter,
        // Windows need no time; one fixed instant fills the slot `fan_out` shares with
        // time windows.
        epoch: Instant,
    }
}

impl<S: Stream> CountWindows<S> {
    pub(crate) fn new(stream: S, size: usize, step: usize) -> Self {
        CountWindows {
            stream,
            size,
            step,
            open: VecDeque::new(),
            seen: 0,
            done: false,
            meter: Meter::new(),
            epoch: Instant::now(),
        }
    }

    /// A handle on this stage's counters.
    pub fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<S: Stream> Stream for CountWindows<S>
where
    S::Item: Clone,
{
    type Item = Vec<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        while !*this.done {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.meter.add_in(1);
                    if *this.seen % *this.step as u64 == 0 {
                        this.open
                            .push_back((*this.epoch, Vec::with_capacity((*this.size).min(1024))));
                    }
                    *this.seen += 1;
                    if this.open.is_empty() {
                        this.meter.add_dropped(1);
                        continue;
                    }
                    fan_out(this.open, item);
                    if this
                        .open
                        .front()
                        .is_some_and(|(_, w)| w.len() >= *this.size)
                    {
                        break;
                    }
                }
                Poll::Ready(None) => *this.done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        // Here a window is full, or the upstream has ended.
        let out = this.open.pop_front().map(|(_, w)| w);
        this.meter.emit(out, this.open.len())
    }
}

impl<S: Stream> FusedStream for CountWindows<S>
where
    S::Item: Clone,
{
    fn is_terminated(&self) -> bool {
        self.done && self.open.is_empty()
    }
}

impl<S: Stream> fmt::Debug for CountWindows<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountWindows")
            .field("size", &self.size)
            .field("step", &self.step)
            .field("meter", &self.meter)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The stream of [`ReactiveExt::time_windows`](crate::ReactiveExt::time_windows).
    ///
    /// Windows start every `every`, from the first poll, and each lasts `length`: `every ==
    /// length` is tumbling, `every < length` sliding (an item is in every window open when
    /// it arrives), `every > length` leaves gaps whose items are dropped and counted. A
    /// window is emitted when its time is up, even if empty, so the stream ticks while
    /// the upstream is idle; when the upstream ends, open windows are emitted at once,
    /// oldest first (RxJava's `buffer(timespan, timeskip)`). Item times are arrival
    /// times on the timer. Meter: `items_in`, `items_out` windows, `buffered` open
    /// windows, `dropped` gap items.
    #[must_use = "streams do nothing unless polled"]
    pub struct TimeWindows<S: Stream, Tm: Timer> {
        #[pin]
        stream: S,
        length: Duration,
        every: Duration,
        open: VecDeque<(Instant, Vec<S::Item>)>,
        next_start: Option<Instant>,
        // How many windows can be open at once: `length / every`, rounded up.
        max_open: usize,
        alarm: Alarm<Tm>,
        done: bool,
        meter: Meter,
    }
}

impl<S: Stream, Tm: Timer> TimeWindows<S, Tm> {
    pub(crate) fn new(stream: S, length: Duration, every: Duration, timer: Tm) -> Self {
        TimeWindows {
            stream,
            length,
            every,
            open: VecDeque::new(),
            next_start: None,
            max_open: usize::try_from(length.as_nanos().div_ceil(every.as_nanos().max(1)))
                .unwrap_or(usize::MAX),
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

impl<S: Stream, Tm: Timer> Stream for TimeWindows<S, Tm>
where
    S::Item: Clone,
{
    type Item = Vec<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let (length, every) = (*this.length, *this.every);
        let emit = |open: &mut VecDeque<(Instant, Vec<S::Item>)>, meter: &Meter| {
            let out = open.pop_front().map(|(_, w)| w);
            meter.emit(out, open.len())
        };
        let mut budget = BUDGET;
        loop {
            if *this.done {
                return emit(this.open, this.meter);
            }
            let now = this.alarm.now();
            let mut next_start = this.next_start.unwrap_or(now);
            // Open the windows that have started, but never more than can overlap: after a
            // long pause the front ones are already over, are emitted one per poll, and
            // the catching up goes on in later polls (memory stays bounded).
            while next_start <= now && this.open.len() <= *this.max_open {
                this.open.push_back((next_start, Vec::new()));
                let following = after(next_start, every);
                if following <= next_start {
                    break; // the end of representable time: no further windows
                }
                next_start = following;
            }
            *this.next_start = Some(next_start);
            if this
                .open
                .front()
                .is_some_and(|(start, _)| after(*start, length) <= now)
            {
                return emit(this.open, this.meter);
            }
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.meter.add_in(1);
                    if this.open.is_empty() {
                        this.meter.add_dropped(1);
                    } else {
                        fan_out(this.open, item);
                    }
                    budget -= 1;
                    if budget == 0 {
                        // A busy upstream: yield, and come back for the rest.
                        this.meter.set_buffered(this.open.len());
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    continue;
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    continue;
                }
                Poll::Pending => {}
            }
            this.meter.set_buffered(this.open.len());
            let next_event = match this.open.front() {
                Some((start, _)) => after(*start, length).min(next_start),
                None => next_start,
            };
            if this.alarm.poll_at(cx, next_event).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<S: Stream, Tm: Timer> FusedStream for TimeWindows<S, Tm>
where
    S::Item: Clone,
{
    fn is_terminated(&self) -> bool {
        self.done && self.open.is_empty()
    }
}

impl<S: Stream, Tm: Timer> fmt::Debug for TimeWindows<S, Tm> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeWindows")
            .field("length", &self.length)
            .field("every", &self.every)
            .field("meter", &self.meter)
            .finish_non_exhaustive()
    }
}
