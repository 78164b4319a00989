//! Multicast: [`Subject`], one producer side and many subscribers, each with its own
//! bounded buffer and overflow policy.

// Design. A subject is a list of per-subscriber buffers (the same `Core` as `channel`),
// behind one lock that serializes broadcasts. A broadcast first checks, under that lock,
// that every `Block` subscriber has room, then offers a clone of the item to each buffer.
// Between the check and the offers no room can disappear: only broadcasts push into a
// subscriber's buffer, and they hold the subject lock; receivers only make room. So a
// `Block` subscriber never overflows and the slowest one bounds the producer, while a
// dropping subscriber loses only what its own policy drops, counted in its own buffer
// (its lag). Lock order is subject, then a buffer; receivers take only their buffer's.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_sink::Sink;
use weft_sync::{Arc, Mutex};

use crate::channel::{Core, Overflow, Pushed, Receiver, close_after_flush};
use crate::error::{Error, SendError, TrySendError, nonzero};
use crate::metrics::StageMetrics;

/// A multicast source: every item sent is delivered to every current subscriber, through
/// that subscriber's own bounded buffer and [`Overflow`] policy.
///
/// - Subscribers with [`Overflow::Block`] apply backpressure: a send waits until each of
///   them has room, so the slowest bounds the producer and none of them loses an item.
/// - Subscribers with a dropping policy never hold the producer back; what they drop is
///   their *lag*, counted per subscriber ([`Receiver::lagged`],
///   [`Subject::subscribers`]), never silent (unlike `tokio::sync::broadcast`, whose slow
///   receivers silently skip ahead).
/// - A subscriber with [`Overflow::Error`] is cut off when it overflows: its stream ends
///   and [`Receiver::error`] reports it; the others go on.
///
/// It is hot, like RxJava's `PublishSubject`: a subscriber sees items sent after it
/// subscribed. Items sent while nobody subscribes are counted as `unobserved`. Clones are
/// handles on the same subject; the subscribers' streams end when the last handle is
/// dropped or on [`complete`](Subject::complete). A `Subject` is also a [`Sink`].
///
/// # Examples
///
/// ```
/// use weft_reactive::{Overflow, Subject};
///
/// let subject = Subject::new();
/// let mut audit = subject.subscribe(8, Overflow::Block)?; // must see everything
/// let mut ui = subject.subscribe(1, Overflow::KeepLatest)?; // only the latest matters
///
/// for price in [100, 101, 102] {
///     subject.try_send(price)?;
/// }
/// assert_eq!(audit.try_recv(), Ok(100));
/// assert_eq!(ui.try_recv(), Ok(102));
/// assert_eq!(ui.lagged(), 2); // 100 and 101 were conflated away, and counted
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Subject<T> {
    inner: Arc<Inner<T>>,
    /// The item the `Sink` accepted but could not yet broadcast.
    pending: Option<T>,
    /// Where this handle waits for room, while a `Block` subscriber is full.
    waiter: Option<(Arc<Core<T>>, u64)>,
}

struct Inner<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    subscribers: Vec<Arc<Core<T>>>,
    closed: bool,
    /// Items broadcast.
    sent: u64,
    /// Items broadcast while nobody subscribed.
    unobserved: u64,
}

/// What one broadcast did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Broadcast {
    /// Subscribers that queued the item without dropping anything.
    pub queued: usize,
    /// Subscribers whose policy dropped an item (this one or an older one) to take it.
    pub dropped: usize,
    /// Subscribers cut off by this item ([`Overflow::Error`] overflowed).
    pub overflowed: usize,
}

impl Broadcast {
    /// How many subscribers the item was offered to.
    pub fn subscribers(&self) -> usize {
        self.queued + self.dropped + self.overflowed
    }
}

impl<T> State<T> {
    /// Forgets subscribers that are gone (receiver dropped, or cut off).
    fn prune(&mut self) {
        self.subscribers.retain(|c| c.accepting());
    }

    /// Forgets subscribers that are gone and returns the first `Block` subscriber
    /// without room, if any: one look at each buffer.
    fn prune_and_find_full(&mut self) -> Option<Arc<Core<T>>> {
        let mut full = None;
        self.subscribers.retain(|c| {
            let (accepting, blocks) = c.status();
            if blocks && full.is_none() {
                full = Some(Arc::clone(c));
            }
            accepting
        });
        full
    }
}

impl<T: Clone> State<T> {
    /// Offers `item` to every subscriber. Callers checked that no `Block` subscriber is
    /// full, under the same lock.
    fn deliver(&mut self, item: T) -> Broadcast {
        self.sent += 1;
        let mut out = Broadcast::default();
        let Some((last, rest)) = self.subscribers.split_last() else {
            self.unobserved += 1;
            return out;
        };
        let mut tally = |r: Result<Pushed<T>, TrySendError<T>>| match r {
            Ok(Pushed::Queued) => out.queued += 1,
            Ok(Pushed::Dropped(_)) => out.dropped += 1,
            Err(TrySendError::Overflow(_)) => out.overflowed += 1,
            // The receiver went away meanwhile: it is pruned on the next broadcast.
            Err(TrySendError::Closed(_) | TrySendError::Full(_)) => {}
        };
        for c in rest {
            tally(c.offer(item.clone()));
        }
        tally(last.offer(item));
        out
    }
}

impl<T> Subject<T> {
    /// A subject with no subscribers.
    pub fn new() -> Self {
        Subject {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    subscribers: Vec::new(),
                    closed: false,
                    sent: 0,
                    unobserved: 0,
                }),
            }),
            pending: None,
            waiter: None,
        }
    }

    /// Adds a subscriber with a buffer of `capacity` items and the overflow `policy`; it
    /// receives every item sent from now on.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`] if `capacity` is 0.
    pub fn subscribe(&self, capacity: usize, policy: Overflow) -> Result<Receiver<T>, Error> {
        let capacity = nonzero("capacity", capacity)?;
        let mut s = self.inner.state.lock();
        let core = Arc::new(Core::new(capacity, policy, usize::from(!s.closed)));
        if !s.closed {
            s.subscribers.push(Arc::clone(&core));
        }
        Ok(Receiver::from_core(core))
    }

    /// Completes the subject: every subscriber's stream ends after what is buffered, and
    /// later sends are refused (RxJava's `onComplete`; named so that it does not shadow
    /// `SinkExt::close`, which flushes, then does the same).
    pub fn complete(&self) {
        let subscribers = {
            let mut s = self.inner.state.lock();
            s.closed = true;
            std::mem::take(&mut s.subscribers)
        };
        subscribers.iter().for_each(|c| c.drop_sender());
    }

    /// `true` after [`complete`](Subject::complete).
    pub fn is_complete(&self) -> bool {
        self.inner.state.lock().closed
    }

    /// The number of live subscribers.
    pub fn subscriber_count(&self) -> usize {
        let mut s = self.inner.state.lock();
        s.prune();
        s.subscribers.len()
    }

    /// Each live subscriber's counters, in subscription order: `dropped` is its lag.
    pub fn subscribers(&self) -> Vec<StageMetrics> {
        let mut s = self.inner.state.lock();
        s.prune();
        s.subscribers.iter().map(|c| c.metrics()).collect()
    }

    /// The subject's counters: `items_in` broadcasts; `items_out`, `buffered` and
    /// `dropped` summed over the live subscribers; `demand` the least free room of a
    /// `Block` subscriber (how many items can be sent now without waiting; `u64::MAX`
    /// without any).
    pub fn metrics(&self) -> StageMetrics {
        let mut s = self.inner.state.lock();
        s.prune();
        let mut m = StageMetrics {
            items_in: s.sent,
            demand: u64::MAX,
            ..StageMetrics::default()
        };
        for c in &s.subscribers {
            let one = c.metrics();
            m.items_out += one.items_out;
            m.buffered += one.buffered;
            m.dropped += one.dropped;
            if c.policy() == Overflow::Block {
                m.demand = m.demand.min(one.demand);
            }
        }
        m
    }

    /// Items sent while nobody subscribed.
    pub fn unobserved(&self) -> u64 {
        self.inner.state.lock().unobserved
    }
}

impl<T: Clone> Subject<T> {
    /// Broadcasts without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if a [`Overflow::Block`] subscriber is full (nobody got the
    /// item); [`TrySendError::Closed`] after [`complete`](Subject::complete). Both hand the item
    /// back.
    pub fn try_send(&self, item: T) -> Result<Broadcast, TrySendError<T>> {
        let mut s = self.inner.state.lock();
        if s.closed {
            return Err(TrySendError::Closed(item));
        }
        if s.prune_and_find_full().is_some() {
            return Err(TrySendError::Full(item));
        }
        Ok(s.deliver(item))
    }

    /// Broadcasts, waiting until every [`Overflow::Block`] subscriber has room.
    /// Cancel-safe: dropping the future drops the item unsent.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] after [`complete`](Subject::complete), with the item.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use weft_reactive::{Overflow, Subject};
    ///
    /// futures_executor::block_on(async {
    ///     let subject = Subject::new();
    ///     let a = subject.subscribe(4, Overflow::Block)?;
    ///     let b = subject.subscribe(4, Overflow::Block)?;
    ///     subject.send("x").await?;
    ///     subject.send("y").await?;
    ///     subject.complete();
    ///     assert_eq!(a.collect::<Vec<_>>().await, ["x", "y"]);
    ///     assert_eq!(b.collect::<Vec<_>>().await, ["x", "y"]);
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, item: T) -> SubjectSend<'_, T> {
        SubjectSend {
            inner: &self.inner,
            item: Some(item),
            waiter: None,
        }
    }

    /// Broadcasts, blocking the thread until every [`Overflow::Block`] subscriber has
    /// room. For producers outside an async runtime. While it waits it holds the
    /// subject's lock, so other sends and new subscriptions wait too (broadcasts are
    /// serialized in any case).
    ///
    /// # Errors
    ///
    /// As [`send`](Subject::send).
    pub fn send_blocking(&self, item: T) -> Result<Broadcast, SendError<T>> {
        let mut s = self.inner.state.lock();
        if s.closed {
            return Err(SendError::Closed(item));
        }
        s.prune();
        for c in &s.subscribers {
            c.wait_room_blocking();
        }
        Ok(s.deliver(item))
    }

    /// One step of a waiting broadcast: Ready once delivered.
    fn poll_send(
        inner: &Inner<T>,
        cx: &mut Context<'_>,
        slot: &mut Option<T>,
        waiter: &mut Option<(Arc<Core<T>>, u64)>,
    ) -> Poll<Result<Broadcast, SendError<T>>> {
        let Some(item) = slot.take() else {
            return Poll::Ready(Ok(Broadcast::default()));
        };
        let mut s = inner.state.lock();
        if s.closed {
            cancel(waiter);
            return Poll::Ready(Err(SendError::Closed(item)));
        }
        loop {
            let Some(full) = s.prune_and_find_full() else {
                break;
            };
            // Register on that buffer in the same critical section that sees it full.
            let mut id = match waiter {
                Some((core, id)) if Arc::ptr_eq(core, &full) => Some(*id),
                _ => {
                    cancel(waiter);
                    None
                }
            };
            match full.poll_room(cx, &mut id) {
                Poll::Pending => {
                    *waiter = id.map(|id| (full, id));
                    *slot = Some(item);
                    return Poll::Pending;
                }
                // Room appeared meanwhile: look again.
                Poll::Ready(()) => *waiter = None,
            }
        }
        cancel(waiter);
        Poll::Ready(Ok(s.deliver(item)))
    }
}

/// Withdraws a waiting registration (passing a consumed wake-up on).
fn cancel<T>(waiter: &mut Option<(Arc<Core<T>>, u64)>) {
    if let Some((core, id)) = waiter.take() {
        core.cancel_waiter(&mut Some(id));
    }
}

impl<T> Default for Subject<T> {
    fn default() -> Self {
        Subject::new()
    }
}

impl<T> Clone for Subject<T> {
    /// Another handle on the same subject (with no item of its own pending as a `Sink`).
    fn clone(&self) -> Self {
        Subject {
            inner: Arc::clone(&self.inner),
            pending: None,
            waiter: None,
        }
    }
}

impl<T> Drop for Subject<T> {
    fn drop(&mut self) {
        cancel(&mut self.waiter);
    }
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        let subscribers = std::mem::take(&mut self.state.lock().subscribers);
        for c in subscribers {
            c.drop_sender();
        }
    }
}

impl<T> fmt::Debug for Subject<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subject")
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

impl<T> Unpin for Subject<T> {}

impl<T: Clone> Sink<T> for Subject<T> {
    type Error = SendError<T>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_flush(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        if self.pending.is_some() {
            // `poll_ready` was skipped: hand the item back rather than replace the held one.
            return Err(SendError::Closed(item));
        }
        self.pending = Some(item);
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = &mut *self;
        Subject::poll_send(&this.inner, cx, &mut this.pending, &mut this.waiter)
            .map(|r| r.map(drop))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        close_after_flush(Pin::new(&mut *this).poll_flush(cx), || this.complete())
    }
}

/// The future of [`Subject::send`].
#[must_use = "futures do nothing unless polled"]
pub struct SubjectSend<'a, T> {
    inner: &'a Inner<T>,
    item: Option<T>,
    waiter: Option<(Arc<Core<T>>, u64)>,
}

impl<T> Unpin for SubjectSend<'_, T> {}

impl<T: Clone> Future for SubjectSend<'_, T> {
    type Output = Result<Broadcast, SendError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        Subject::poll_send(this.inner, cx, &mut this.item, &mut this.waiter)
    }
}

impl<T> Drop for SubjectSend<'_, T> {
    fn drop(&mut self) {
        cancel(&mut self.waiter);
    }
}

impl<T> fmt::Debug for SubjectSend<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectSend")
            .field("sent", &self.item.is_none())
            .finish_non_exhaustive()
    }
}
