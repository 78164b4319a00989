//! [`PublisherStream`]: any publisher consumed as a `Stream`, through a bounded buffer.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use weft_sync::{Arc, Mutex};

use super::{Subscriber, Subscription};
use crate::channel::{Overflow, Receiver, Sender, channel};
use crate::demand::Demand;
use crate::error::{Error, Failure, TrySendError};
use crate::metrics::StageMetrics;

/// A [`Publisher`](super::Publisher) consumed as a [`Stream`] of
/// `Result<T, Failure<E>>`: the items, then the failure if the publisher failed; made by
/// [`Publisher::subscribe_stream`](super::Publisher::subscribe_stream).
///
/// Dropping it cancels the subscription.
pub struct PublisherStream<T, E> {
    rx: Receiver<T>,
    shared: Arc<Shared<E>>,
    /// Items taken since the last `request` (under [`Overflow::Block`]).
    consumed: u64,
    /// Request more after this many items; 0 when demand is unbounded.
    replenish: u64,
    done: bool,
}

/// What the subscriber half and the stream half share.
struct Shared<E> {
    subscription: Mutex<Option<Subscription>>,
    failure: Mutex<Option<Failure<E>>>,
}

/// The subscriber half: pushes into the buffer under its policy.
struct BridgeSubscriber<T, E> {
    tx: Option<Sender<T>>,
    shared: Arc<Shared<E>>,
    /// Initial request: the capacity under `Block`, unbounded otherwise.
    initial: u64,
}

pub(super) fn bridge<T, E>(
    capacity: usize,
    policy: Overflow,
) -> Result<(impl Subscriber<T, E> + 'static, PublisherStream<T, E>), Error>
where
    T: Send + 'static,
    E: Send + 'static,
{
    let (tx, rx) = channel(capacity, policy)?;
    let shared = Arc::new(Shared {
        subscription: Mutex::new(None),
        failure: Mutex::new(None),
    });
    let capacity = capacity as u64;
    let (initial, replenish) = match policy {
        // Replenish after three quarters of a buffer (RxJava's prefetch limit).
        Overflow::Block => (capacity, (capacity - capacity / 4).max(1)),
        _ => (Demand::UNBOUNDED, 0),
    };
    let subscriber = BridgeSubscriber {
        tx: Some(tx),
        shared: Arc::clone(&shared),
        initial,
    };
    let stream = PublisherStream {
        rx,
        shared,
        consumed: 0,
        replenish,
        done: false,
    };
    Ok((subscriber, stream))
}

impl<E> Shared<E> {
    /// A handle on the subscription, to call outside the lock (a publisher may deliver,
    /// and so re-enter the bridge, inside `request` or `cancel`).
    fn subscription(&self) -> Option<Subscription> {
        self.subscription.lock().clone()
    }
}

impl<T, E> BridgeSubscriber<T, E> {
    /// Ends the bridge: stores the failure (if any), cancels upstream, closes the buffer.
    fn end(&mut self, failure: Option<Failure<E>>) {
        if let Some(f) = failure {
            self.shared.failure.lock().get_or_insert(f);
        }
        if let Some(s) = self.shared.subscription() {
            s.cancel();
        }
        self.tx = None; // the last sender: closes the buffer
    }
}

impl<T: Send, E: Send> Subscriber<T, E> for BridgeSubscriber<T, E> {
    fn on_subscribe(&mut self, subscription: Subscription) {
        {
            let mut slot = self.shared.subscription.lock();
            if slot.is_some() {
                drop(slot);
                subscription.cancel(); // rule 2.5: a second subscription is cancelled
                return;
            }
            *slot = Some(subscription.clone());
        }
        // Outside the lock: a publisher may deliver inside `request`.
        subscription.request(self.initial);
    }

    fn on_next(&mut self, item: T) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(item) {
            Ok(_) => {}
            Err(TrySendError::Full(_)) => {
                // Only under `Block`, where demand never exceeds the free room: the
                // publisher broke rule 1.1. Count the item, end the bridge.
                tx.core().count_dropped(1);
                self.end(Some(Failure::Unrequested));
            }
            Err(TrySendError::Overflow(_)) => {
                // The refused item cannot go back to the publisher: count it.
                tx.core().count_dropped(1);
                let capacity = tx.capacity();
                self.end(Some(Failure::Overflowed { capacity }));
            }
            Err(TrySendError::Closed(_)) => self.end(None),
        }
    }

    fn on_error(&mut self, error: Failure<E>) {
        self.end(Some(error));
    }

    fn on_complete(&mut self) {
        self.end(None);
    }
}

impl<T, E> PublisherStream<T, E> {
    /// The bridge's counters: the buffer's (see [`Sender::metrics`]), with `demand` the
    /// demand outstanding upstream.
    pub fn metrics(&self) -> StageMetrics {
        let mut m = self.rx.metrics();
        m.demand = self
            .shared
            .subscription
            .lock()
            .as_ref()
            .map_or(0, Subscription::outstanding);
        m
    }
}

impl<T, E> Stream for PublisherStream<T, E> {
    type Item = Result<T, Failure<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.rx).poll_next(cx) {
            Poll::Ready(Some(item)) => {
                if this.replenish > 0 {
                    this.consumed += 1;
                    if this.consumed >= this.replenish {
                        if let Some(s) = this.shared.subscription() {
                            s.request(this.consumed);
                        }
                        this.consumed = 0;
                    }
                }
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(this.shared.failure.lock().take().map(Err))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T, E> FusedStream for PublisherStream<T, E> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<T, E> Drop for PublisherStream<T, E> {
    fn drop(&mut self) {
        let subscription = self.shared.subscription.lock().take();
        if let Some(s) = subscription {
            s.cancel();
        }
    }
}

impl<T, E> fmt::Debug for PublisherStream<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublisherStream")
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}
