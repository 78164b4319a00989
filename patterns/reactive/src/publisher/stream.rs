//! [`StreamPublisher`]: any `Stream` as a single-subscriber publisher, driven by a
//! [`Drive`] future on the caller's executor.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use weft_sync::atomic::{AtomicBool, Ordering};
use weft_sync::{Arc, Mutex};

use super::{Publisher, Signals, Subscriber, Subscription};
use crate::error::Failure;

/// A [`Publisher`] over a `Stream` of `Result<T, E>`: the bridge from pull to push.
///
/// The stream is polled by a [`Drive`] future, which you run on any executor
/// (`tokio::spawn`, `futures::executor`, ...): [`new`](StreamPublisher::new) returns both.
/// The driver polls the stream only while the subscriber has demand, holding at most one
/// item ahead (so that completion and errors are signalled without waiting for demand),
/// and calls the subscriber from its own task. `request` and `cancel` wake it.
///
/// The publisher serves one subscriber (the stream can be consumed once): a second
/// `subscribe` receives `on_subscribe` with a cancelled subscription, then
/// [`Failure::AlreadySubscribed`] (rule 1.9 allows this refusal).
///
/// If the `Drive` future is dropped before the stream ends, the subscriber receives no
/// further signal; keep it running for as long as the subscription matters.
///
/// ```
/// use futures_util::StreamExt;
/// use weft_reactive::{Overflow, Publisher, StreamPublisher};
///
/// let (publisher, drive) = StreamPublisher::from_values(futures_util::stream::iter(0..10));
/// let items = publisher.subscribe_stream(4, Overflow::Block)?;
/// let pool = futures_executor::ThreadPool::new()?;
/// pool.spawn_ok(drive);
/// let got: Vec<u32> = futures_executor::block_on(items.map(Result::unwrap).collect());
/// assert_eq!(got, (0..10).collect::<Vec<_>>());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StreamPublisher<T, E> {
    shared: Arc<Shared<T, E>>,
}

/// What the publisher handle and its driver share.
struct Shared<T, E> {
    signals: Arc<Signals>,
    /// Set by the first `subscribe`.
    subscribed: AtomicBool,
    /// The subscriber, handed from `subscribe` to the driver.
    subscriber: Mutex<Option<Box<dyn Subscriber<T, E>>>>,
}

impl<T, E> StreamPublisher<T, E> {
    /// A publisher of `stream`'s items, and the future that drives it.
    pub fn new<S>(stream: S) -> (Self, Drive<S, T, E>)
    where
        S: Stream<Item = Result<T, E>>,
    {
        let shared = Arc::new(Shared {
            signals: Arc::new(Signals::new()),
            subscribed: AtomicBool::new(false),
            subscriber: Mutex::new(None),
        });
        let drive = Drive {
            stream: Box::pin(stream),
            shared: Arc::clone(&shared),
            subscriber: None,
            ahead: None,
            done: false,
        };
        (StreamPublisher { shared }, drive)
    }
}

/// The stream type of [`StreamPublisher::from_values`].
pub type OkStream<S> = futures_util::stream::Map<
    S,
    fn(<S as Stream>::Item) -> Result<<S as Stream>::Item, Infallible>,
>;

impl<T> StreamPublisher<T, Infallible> {
    /// A publisher of a stream of plain values, which cannot fail.
    pub fn from_values<S>(stream: S) -> (Self, Drive<OkStream<S>, T, Infallible>)
    where
        S: Stream<Item = T>,
    {
        use futures_util::StreamExt;
        StreamPublisher::new(stream.map(Ok as fn(T) -> Result<T, Infallible>))
    }
}

impl<T, E> fmt::Debug for StreamPublisher<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamPublisher")
            .field(
                "subscribed",
                &self.shared.subscribed.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl<T, E> Publisher for StreamPublisher<T, E> {
    type Item = T;
    type Error = E;

    fn subscribe<S>(&self, mut subscriber: S)
    where
        S: Subscriber<T, E> + 'static,
    {
        if self.shared.subscribed.swap(true, Ordering::AcqRel) {
            subscriber.on_subscribe(Subscription::cancelled());
            subscriber.on_error(Failure::AlreadySubscribed);
            return;
        }
        let signals = &self.shared.signals;
        subscriber.on_subscribe(Subscription::new(Arc::clone(signals)));
        *self.shared.subscriber.lock() = Some(Box::new(subscriber));
        signals.signal();
    }
}

/// The future that drives a [`StreamPublisher`]: polls the stream as demand allows and
/// signals the subscriber. Completes when the subscription is over (completed, failed or
/// cancelled). Spawn it on any executor.
#[must_use = "a StreamPublisher delivers nothing unless its Drive future runs"]
pub struct Drive<S, T, E> {
    stream: Pin<Box<S>>,
    shared: Arc<Shared<T, E>>,
    subscriber: Option<Box<dyn Subscriber<T, E>>>,
    /// The item read ahead of demand.
    ahead: Option<Result<T, E>>,
    done: bool,
}

impl<S, T, E> Unpin for Drive<S, T, E> {}

/// Items delivered in one poll before the driver yields to its executor.
const BUDGET: usize = 128;

impl<S, T, E> Drive<S, T, E> {
    /// Ends the subscription: drops the subscriber (rule 3.13) and the stream's item.
    fn finish(&mut self) -> Poll<()> {
        self.shared.signals.finish();
        self.subscriber = None;
        self.ahead = None;
        self.done = true;
        Poll::Ready(())
    }
}

impl<S, T, E> Future for Drive<S, T, E>
where
    S: Stream<Item = Result<T, E>>,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(());
        }
        let signals = Arc::clone(&this.shared.signals);
        // Register before looking at demand, so a `request` after our look wakes us.
        signals.register(cx.waker());
        if this.subscriber.is_none() {
            match this.shared.subscriber.lock().take() {
                Some(s) => this.subscriber = Some(s),
                None => return Poll::Pending,
            }
        }
        let mut budget = BUDGET;
        loop {
            let Some(subscriber) = this.subscriber.as_mut() else {
                return this.finish();
            };
            if signals.is_cancelled() {
                return this.finish();
            }
            if signals.take_zero_request() {
                subscriber.on_error(Failure::ZeroRequest);
                return this.finish();
            }
            if this.ahead.is_none() {
                match this.stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => this.ahead = Some(item),
                    Poll::Ready(None) => {
                        subscriber.on_complete();
                        return this.finish();
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            match this.ahead.take() {
                Some(Err(e)) => {
                    subscriber.on_error(Failure::Source(e));
                    return this.finish();
                }
                Some(Ok(item)) if signals.demand.take() => {
                    subscriber.on_next(item);
                    budget -= 1;
                    if budget == 0 {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                other => {
                    // No demand: keep the item and wait for `request`.
                    this.ahead = other;
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S, T, E> fmt::Debug for Drive<S, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drive")
            .field("done", &self.done)
            .field("demand", &self.shared.signals.demand)
            .finish_non_exhaustive()
    }
}
