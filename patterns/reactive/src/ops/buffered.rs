//! [`BufferDriver`]: `buffered` / `buffer_unordered` whose in-flight futures keep running
//! while the consumer is busy.

// Why futures' `buffered` can stall or deadlock (futures-rs #2387): its in-flight futures
// are polled only from `poll_next`, i.e. only while the consumer waits for the next item.
// While the consumer works on an item, nothing polls them: their timers fire late, their
// connections time out, and if the consumer's work waits on something only an in-flight
// future would do (release a lock, answer a request), both wait forever.
//
// Here the stage is split in two at a bounded buffer. The `BufferDriver` future owns the
// upstream and the in-flight set and runs as its own task; the consumer reads the
// `Receiver`. The driver polls every in-flight future whenever one is woken, whatever
// the consumer is doing. Memory stays bounded: at most `limit` futures are in flight or
// finished-but-not-yet-buffered (`staged`), and the buffer holds at most `limit` more;
// when both are full the driver stops taking futures from upstream (backpressure), but
// still polls the ones in flight.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::stream::{FuturesOrdered, FuturesUnordered};
use weft_sync::Arc;

use crate::channel::{Core, Overflow, Receiver, Sender};
use crate::metrics::Meter;

/// A set of in-flight futures: ordered or unordered.
pub trait InFlight<F: Future>: Stream<Item = F::Output> + Unpin {
    /// An empty set.
    fn empty() -> Self;
    /// Adds a future.
    fn start(&mut self, f: F);
    /// How many futures are in flight.
    fn count(&self) -> usize;
}

impl<F: Future> InFlight<F> for FuturesOrdered<F> {
    fn empty() -> Self {
        FuturesOrdered::new()
    }
    fn start(&mut self, f: F) {
        self.push_back(f);
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl<F: Future> InFlight<F> for FuturesUnordered<F> {
    fn empty() -> Self {
        FuturesUnordered::new()
    }
    fn start(&mut self, f: F) {
        self.push(f);
    }
    fn count(&self) -> usize {
        self.len()
    }
}

/// The future that runs a [`drive_buffered`](crate::ReactiveExt::drive_buffered) or
/// [`drive_buffer_unordered`](crate::ReactiveExt::drive_buffer_unordered) stage: spawn
/// it on any executor; it completes when the upstream and every in-flight future are
/// done and their outputs buffered, or as soon as the consumer's `Receiver` is dropped
/// (dropping the futures in flight).
///
/// Meter: `items_in` futures started, `items_out` outputs handed to the buffer,
/// `buffered` futures in flight plus outputs waiting for room, `demand` how many more
/// futures it may start now.
#[must_use = "the stage runs only while its BufferDriver is polled: spawn it"]
pub struct BufferDriver<S: Stream, Q>
where
    S::Item: Future,
{
    upstream: Pin<Box<S>>,
    in_flight: Q,
    staged: VecDeque<<S::Item as Future>::Output>,
    limit: usize,
    tx: Sender<<S::Item as Future>::Output>,
    waiter: Option<u64>,
    upstream_done: bool,
    meter: Meter,
}

/// Rounds of work one poll may do before yielding to the executor.
const BUDGET: usize = 32;

impl<S, Q> BufferDriver<S, Q>
where
    S: Stream,
    S::Item: Future,
    Q: InFlight<S::Item>,
{
    pub(crate) fn new(upstream: S, limit: usize) -> (Self, Receiver<<S::Item as Future>::Output>) {
        let core = Arc::new(Core::new(limit, Overflow::Block, 1));
        let rx = Receiver::from_core(Arc::clone(&core));
        let driver = BufferDriver {
            upstream: Box::pin(upstream),
            in_flight: Q::empty(),
            staged: VecDeque::new(),
            limit,
            tx: Sender::from_core(core),
            waiter: None,
            upstream_done: false,
            meter: Meter::new(),
        };
        (driver, rx)
    }

    /// A handle on this stage's counters.
    pub fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<S: Stream, Q> Unpin for BufferDriver<S, Q> where S::Item: Future {}

impl<S, Q> Future for BufferDriver<S, Q>
where
    S: Stream,
    S::Item: Future,
    Q: InFlight<S::Item>,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        for _ in 0..BUDGET {
            if this.tx.core().poll_closed(cx).is_ready() {
                // The consumer is gone: nothing we produce can be delivered.
                return Poll::Ready(());
            }
            let mut progress = false;
            // 1. Hand finished outputs to the buffer while it has room.
            while let Some(out) = this.staged.pop_front() {
                let mut slot = Some(out);
                match this.tx.core().poll_send(cx, &mut slot, &mut this.waiter) {
                    Poll::Ready(Ok(_)) => {
                        progress = true;
                        this.meter.add_out(1);
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => {
                        if let Some(out) = slot {
                            this.staged.push_front(out);
                        }
                        break;
                    }
                }
            }
            // 2. Start futures while fewer than `limit` are in flight or staged.
            while !this.upstream_done && this.in_flight.count() + this.staged.len() < this.limit {
                match this.upstream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(f)) => {
                        this.in_flight.start(f);
                        this.meter.add_in(1);
                        progress = true;
                    }
                    Poll::Ready(None) => this.upstream_done = true,
                    Poll::Pending => break,
                }
            }
            // 3. Poll every in-flight future, whether or not the buffer has room.
            while this.in_flight.count() > 0 {
                match Pin::new(&mut this.in_flight).poll_next(cx) {
                    Poll::Ready(Some(out)) => {
                        this.staged.push_back(out);
                        progress = true;
                    }
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            let held = this.in_flight.count() + this.staged.len();
            this.meter.set_buffered(held);
            this.meter
                .set_demand(this.limit.saturating_sub(held) as u64);
            if this.upstream_done && this.in_flight.count() == 0 && this.staged.is_empty() {
                this.tx.close_channel();
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<S: Stream, Q> Drop for BufferDriver<S, Q>
where
    S::Item: Future,
{
    fn drop(&mut self) {
        self.tx.core().cancel_waiter(&mut self.waiter);
    }
}

impl<S: Stream, Q> fmt::Debug for BufferDriver<S, Q>
where
    S::Item: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferDriver")
            .field("limit", &self.limit)
            .field("staged", &self.staged.len())
            .field("upstream_done", &self.upstream_done)
            .field("meter", &self.meter)
            .finish_non_exhaustive()
    }
}
