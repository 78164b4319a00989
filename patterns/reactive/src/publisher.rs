//! The push side with explicit demand: [`Publisher`], [`Subscriber`], [`Subscription`],
//! after the Reactive Streams specification, and the publishers this crate ships.

// Design: the serialized drain ("trampoline"). Reactive Streams requires that signals to
// a subscriber never overlap (rule 1.3) and that `request` called from inside `on_next`
// does not recurse without bound (rule 3.3). Every subscription therefore has one
// `Signals` block: the demand counter, the cancelled and bad-request flags, and a
// work-in-progress counter `wip`. Whoever changes demand or cancels increments `wip`; the
// caller that moved it from 0 becomes the drainer and loops, delivering what demand
// allows, until it can subtract every increment it saw (`missed`) and reach 0 again. A
// `request` made while someone drains — from another thread, or re-entrantly from
// `on_next` — only bumps `wip`, so the running drainer goes round once more: no signal
// is lost, no two threads ever call the subscriber at once, and the stack stays flat.
// (This is the queue-drain loop of RxJava and Reactor.) The drain state is behind a
// lock that only the drainer takes, so it is never contended.
//
// Publishers driven by an async source (`StreamPublisher`) do not drain in `request`;
// they register a waker in `Signals`, and `request`/`cancel` wake it.

mod bridge;
mod iter;
mod stream;

use std::fmt;
use std::task::Waker;

use weft_sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use weft_sync::{Arc, Mutex};

use crate::channel::Overflow;
use crate::demand::Demand;
use crate::error::{Error, Failure};

pub use bridge::PublisherStream;
pub use iter::{IterPublisher, OkIter};
pub use stream::{Drive, OkStream, StreamPublisher};

/// A source of items that pushes them to [`Subscriber`]s, never more than requested
/// (the Reactive Streams `Publisher`).
///
/// `subscribe` calls [`Subscriber::on_subscribe`] first, always (rule 1.9), then, as the
/// subscriber requests items through its [`Subscription`], `on_next` at most as many
/// times as requested in total (rule 1.1), then at most one terminal signal,
/// `on_complete` or `on_error` (rules 1.4, 1.7), after which nothing more. Signals to one
/// subscriber never overlap (rule 1.3). After `cancel`, signals stop (rule 3.12).
///
/// The crate's publishers: [`IterPublisher`] (an iterator, cold, any number of
/// subscribers) and [`StreamPublisher`] (any `Stream`, single subscriber, driven by a
/// [`Drive`] future). The rules suite in `tests/rules.rs` runs against both, including
/// over a [`Receiver`](crate::Receiver) and a [`Subject`](crate::Subject) subscription.
///
/// [`subscribe_stream`](Publisher::subscribe_stream) bridges any publisher to a pull
/// [`Stream`](futures_core::Stream).
pub trait Publisher {
    /// The items published.
    type Item;
    /// The source's error type (delivered as [`Failure::Source`]).
    type Error;

    /// Subscribes `subscriber`: it receives `on_subscribe` before this returns.
    fn subscribe<S>(&self, subscriber: S)
    where
        S: Subscriber<Self::Item, Self::Error> + 'static;

    /// Subscribes a bounded buffer of `capacity` items and returns its consuming
    /// [`Stream`](futures_core::Stream) of `Result<Item, Failure<Error>>`.
    ///
    /// With [`Overflow::Block`] the bridge drives the publisher by demand: it requests
    /// `capacity` items, then asks for more as the consumer takes them (after three
    /// quarters of a buffer), so the buffer never overflows and the producer is held back
    /// (RxJava's `observeOn` prefetch). With a dropping policy it requests without bound
    /// and lets the policy drop (RxJava's `onBackpressureDrop`/`Latest`); with
    /// [`Overflow::Error`] the stream ends with [`Failure::Overflowed`].
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`] if `capacity` is 0.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use weft_reactive::{IterPublisher, Overflow, Publisher};
    ///
    /// let publisher = IterPublisher::from_values(1..=5);
    /// let stream = publisher.subscribe_stream(2, Overflow::Block)?;
    /// let got: Vec<u32> = futures_executor::block_on(stream.map(Result::unwrap).collect());
    /// assert_eq!(got, [1, 2, 3, 4, 5]);
    /// # Ok::<(), weft_reactive::Error>(())
    /// ```
    fn subscribe_stream(
        &self,
        capacity: usize,
        policy: Overflow,
    ) -> Result<PublisherStream<Self::Item, Self::Error>, Error>
    where
        Self::Item: Send + 'static,
        Self::Error: Send + 'static,
    {
        let (subscriber, stream) = bridge::bridge(capacity, policy)?;
        self.subscribe(subscriber);
        Ok(stream)
    }
}

/// A consumer of a [`Publisher`]'s signals (the Reactive Streams `Subscriber`).
///
/// The publisher calls `on_subscribe` once, then `on_next` for each item (never more than
/// requested through the subscription), then at most one of `on_error` / `on_complete`.
/// The calls never overlap, but may come from different threads, hence `Send`. The
/// methods may call [`Subscription::request`] and [`Subscription::cancel`]; keep them
/// short, since they run on the publisher's thread.
///
/// ```
/// use weft_reactive::{Failure, IterPublisher, Publisher, Subscriber, Subscription};
///
/// /// Takes items one at a time, and stops after three.
/// struct FirstThree(Option<Subscription>, std::sync::mpsc::Sender<u32>);
///
/// impl Subscriber<u32, std::convert::Infallible> for FirstThree {
///     fn on_subscribe(&mut self, s: Subscription) {
///         s.request(1);
///         self.0 = Some(s);
///     }
///     fn on_next(&mut self, item: u32) {
///         self.1.send(item).unwrap();
///         let s = self.0.as_ref().unwrap();
///         if item < 3 { s.request(1) } else { s.cancel() }
///     }
///     fn on_error(&mut self, _: Failure<std::convert::Infallible>) {}
///     fn on_complete(&mut self) {}
/// }
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// IterPublisher::from_values(1..).subscribe(FirstThree(None, tx));
/// assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2, 3]);
/// ```
pub trait Subscriber<T, E>: Send {
    /// The subscription, before any other signal. Request items through it.
    fn on_subscribe(&mut self, subscription: Subscription);
    /// One item.
    fn on_next(&mut self, item: T);
    /// The publisher failed; no signal follows.
    fn on_error(&mut self, error: Failure<E>);
    /// The publisher has no more items; no signal follows.
    fn on_complete(&mut self);
}

/// One subscriber's link to its publisher: request items, or cancel (the Reactive Streams
/// `Subscription`).
///
/// Cloneable and thread-safe: `request` and `cancel` may be called from any thread,
/// including from inside the subscriber's own signal methods.
///
/// - [`request(n)`](Subscription::request) adds `n` to the demand; demand saturates at
///   [`Demand::UNBOUNDED`] (rule 3.17). `request(0)` is a protocol error: the
///   subscription is cancelled and the subscriber receives [`Failure::ZeroRequest`]
///   (rule 3.9).
/// - [`cancel`](Subscription::cancel) stops delivery; the publisher drops its reference
///   to the subscriber (rule 3.13). Requests after it do nothing (rule 3.6).
///
/// A subscription ends when the publisher signals completion or an error, or when it is
/// cancelled. A subscriber that keeps its `Subscription` (the usual pattern) and is
/// abandoned before then forms a reference cycle with a publisher that delivers inside
/// `request` ([`IterPublisher`]): cancel an unfinished subscription you no longer need.
/// [`PublisherStream`] does so when dropped; a [`StreamPublisher`]'s subscriber is
/// released when its [`Drive`] future is dropped.
#[derive(Clone)]
pub struct Subscription {
    signals: Arc<Signals>,
}

impl Subscription {
    pub(crate) fn new(signals: Arc<Signals>) -> Self {
        Subscription { signals }
    }

    /// A subscription that is already cancelled (for refused subscribers).
    pub(crate) fn cancelled() -> Self {
        let signals = Signals::new();
        signals.cancelled.store(true, Ordering::Release);
        Subscription::new(Arc::new(signals))
    }

    /// Asks for `n` more items.
    pub fn request(&self, n: u64) {
        self.signals.request(n);
    }

    /// Stops delivery. Idempotent.
    pub fn cancel(&self) {
        self.signals.cancel();
    }

    /// `true` once cancelled (by the subscriber, or by the publisher after a terminal
    /// signal caused by a protocol error).
    pub fn is_cancelled(&self) -> bool {
        self.signals.cancelled.load(Ordering::Acquire)
    }

    /// The demand requested and not yet delivered.
    pub fn outstanding(&self) -> u64 {
        self.signals.demand.get()
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("demand", &self.signals.demand)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// A publisher's synchronous delivery loop, run by whoever wins the drain.
pub(crate) trait Drain: Send {
    /// Delivers what demand allows; `true` once the subscription is over (terminal signal
    /// sent, or cancelled), after which the drain is dropped.
    fn drain(&mut self, signals: &Signals) -> bool;
}

/// The shared control block of one subscription (see the design note at the top).
pub(crate) struct Signals {
    pub(crate) demand: Demand,
    cancelled: AtomicBool,
    /// `request(0)` was called: the drain must signal `ZeroRequest`.
    zero_request: AtomicBool,
    /// Pending drain requests; the thread that moves it from 0 drains.
    wip: AtomicUsize,
    /// The synchronous delivery loop, for publishers that deliver inside `request`.
    drain: Mutex<Option<Box<dyn Drain>>>,
    /// The task to wake, for publishers driven by a future.
    waker: Mutex<Option<Waker>>,
}

impl Signals {
    pub(crate) fn new() -> Self {
        Signals {
            demand: Demand::new(),
            cancelled: AtomicBool::new(false),
            zero_request: AtomicBool::new(false),
            wip: AtomicUsize::new(0),
            drain: Mutex::new(None),
            waker: Mutex::new(None),
        }
    }

    fn request(&self, n: u64) {
        if self.is_cancelled() {
            return; // rule 3.6
        }
        if n == 0 {
            // Release: the drainer that sees the flag (Acquire) acts on it.
            self.zero_request.store(true, Ordering::Release);
        } else {
            self.demand.add(n);
        }
        self.signal();
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.signal();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Marks the subscription over (after a terminal signal the publisher sent itself).
    pub(crate) fn finish(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// Takes a pending `request(0)`: if there was one, the subscription is cancelled and
    /// the caller must signal [`Failure::ZeroRequest`].
    pub(crate) fn take_zero_request(&self) -> bool {
        if self.zero_request.swap(false, Ordering::AcqRel) {
            self.finish();
            true
        } else {
            false
        }
    }

    /// Installs the synchronous delivery loop and runs it for demand already requested.
    pub(crate) fn install(&self, drain: Box<dyn Drain>) {
        *self.drain.lock() = Some(drain);
        self.signal();
    }

    /// Registers the task of an async publisher, to be woken by `request` and `cancel`.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = self.waker.lock();
        match &mut *slot {
            Some(w) => w.clone_from(waker),
            None => *slot = Some(waker.clone()),
        }
    }

    /// Demand or cancellation changed: wake the async driver, and/or run the drain loop
    /// unless another call is running it (see the design note).
    pub(crate) fn signal(&self) {
        if let Some(w) = self.waker.lock().take() {
            w.wake();
        }
        // AcqRel: the winner of the 0 -> 1 transition sees every change made before the
        // increments it later subtracts; a loser's change happens before its increment,
        // which the winner observes before it may stop.
        if self.wip.fetch_add(1, Ordering::AcqRel) != 0 {
            return;
        }
        let mut missed = 1;
        loop {
            {
                let mut slot = self.drain.lock();
                if let Some(drain) = slot.as_mut() {
                    if drain.drain(self) {
                        self.finish();
                        *slot = None;
                    }
                }
            }
            missed = self.wip.fetch_sub(missed, Ordering::AcqRel) - missed;
            if missed == 0 {
                break;
            }
        }
    }
}
