//! The bounded buffer with an overflow policy: [`channel`], [`Sender`], [`Receiver`].
//!
//! It is the one buffer of the crate: the bridge from push producers to a pull
//! [`Stream`], each subscriber's buffer in a [`Subject`](crate::Subject), the output of
//! the driven [`buffered`](crate::ReactiveExt::drive_buffered) stage and the bridge from a
//! [`Publisher`](crate::Publisher).

// Design. The whole state of a buffer sits behind one lock ([`Core::state`]): the items
// (`VecDeque`), the flags (closed, receiver alive, overflowed), the counters, the
// receiver's waker and the queue of waiting senders. Every operation is one short critical
// section; wakers are collected under the lock and woken after it is released, so a
// woken task never contends on the lock its waker just left.
//
// The protocol against lost wake-ups: a party that cannot proceed (receiver on empty,
// blocking sender on full) registers its waker *in the same critical section* in which it
// saw the condition, and every party that changes the condition (a push for the receiver,
// a pop or a close for senders) takes the registered waker in *its* critical section.
// The lock orders the two, so either the waiter sees the change or the changer sees the
// waiter. Threads that block (`send_blocking`, `recv_blocking`) follow the same rule with
// a condition variable and a count of blocked threads.
//
// Waiting senders are woken one per freed slot, in arrival order. A woken `send` future
// that is dropped before it pushes passes its wake-up on to the next waiter
// ([`Core::cancel_waiter`]), so a cancelled sender can never strand the others.
//
// Conservation, checked by the tests and the loom model: every item a producer hands in is
// either returned to it (in an error), or counted in `produced`; every produced item is
// later counted exactly once in `delivered` or `dropped`, or is still buffered.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_core::{FusedStream, Stream};
use futures_sink::Sink;
use weft_sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{Error, SendError, TryRecvError, TrySendError, nonzero};
use crate::metrics::StageMetrics;

/// What a bounded buffer does with an item that arrives while it is full.
///
/// | policy | the new item | producer | counted as dropped |
/// |---|---|---|---|
/// | [`Block`](Overflow::Block) | waits for room | `send` waits, `try_send` gets `Full(item)` back | nothing |
/// | [`DropNewest`](Overflow::DropNewest) | discarded | never waits | the new item |
/// | [`DropOldest`](Overflow::DropOldest) | queued; the oldest is evicted | never waits | the evicted item |
/// | [`KeepLatest`](Overflow::KeepLatest) | replaces the newest queued item (conflation) | never waits | the replaced item |
/// | [`Error`](Overflow::Error) | refused; the buffer closes with [`Error::Overflowed`] | gets `Overflow(item)` back | nothing |
///
/// These are RxJava's `onBackpressureBuffer` (block/error), `onBackpressureDrop`,
/// `onBackpressureBuffer(DROP_OLDEST)` and `onBackpressureLatest` (with capacity 1,
/// `KeepLatest` is exactly "keep only the latest"). A dropped item is never silent: the
/// push returns it in [`Pushed::Dropped`] and the buffer counts it in
/// [`StageMetrics::dropped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Backpressure: the producer waits until there is room. The default.
    #[default]
    Block,
    /// Keep what is buffered; discard the arriving item.
    DropNewest,
    /// Evict the oldest buffered item to make room for the arriving one.
    DropOldest,
    /// Overwrite the newest buffered item with the arriving one.
    KeepLatest,
    /// Refuse the item and close the buffer: the consumer receives what was buffered,
    /// then learns of the overflow.
    Error,
}

/// The outcome of a successful push.
///
/// Under [`Overflow::Block`] it is always `Queued`; under the dropping policies, the
/// dropped item is handed back for logging or reuse, and already counted, so ignoring it
/// loses nothing silently.
#[derive(Clone, PartialEq, Eq)]
pub enum Pushed<T> {
    /// The item was queued and nothing was dropped.
    Queued,
    /// The buffer was full and its policy dropped this item: the arriving item
    /// ([`Overflow::DropNewest`]), or the one it evicted ([`Overflow::DropOldest`]) or
    /// replaced ([`Overflow::KeepLatest`]). It was counted as dropped.
    Dropped(T),
}

impl<T> Pushed<T> {
    /// `true` if nothing was dropped.
    pub fn is_queued(&self) -> bool {
        matches!(self, Pushed::Queued)
    }

    /// The dropped item, if any.
    pub fn into_dropped(self) -> Option<T> {
        match self {
            Pushed::Queued => None,
            Pushed::Dropped(t) => Some(t),
        }
    }
}

impl<T> fmt::Debug for Pushed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pushed::Queued => f.write_str("Queued"),
            Pushed::Dropped(_) => f.write_str("Dropped(..)"),
        }
    }
}

/// Creates a bounded buffer of `capacity` items with an overflow `policy`: a cloneable
/// push side ([`Sender`], also a [`Sink`]) and a pull side ([`Receiver`], a [`Stream`]).
///
/// The buffer never holds more than `capacity` items, whatever the producers do.
///
/// # Errors
///
/// [`Error::ZeroSize`] if `capacity` is 0.
///
/// # Examples
///
/// A fast producer, a slow consumer, and the oldest items evicted when it falls behind:
///
/// ```
/// use weft_reactive::{channel, Overflow, Pushed};
///
/// let (tx, mut rx) = channel(2, Overflow::DropOldest)?;
/// for i in 0..5 {
///     match tx.try_send(i)? {
///         Pushed::Queued => {}
///         Pushed::Dropped(old) => println!("evicted {old}"),
///     }
/// }
/// assert_eq!(rx.try_recv(), Ok(3));
/// assert_eq!(rx.try_recv(), Ok(4));
/// let m = rx.metrics();
/// assert_eq!((m.items_in, m.items_out, m.dropped), (5, 2, 3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn channel<T>(capacity: usize, policy: Overflow) -> Result<(Sender<T>, Receiver<T>), Error> {
    let core = Arc::new(Core::new(nonzero("capacity", capacity)?, policy, 1));
    Ok((
        Sender::from_core(Arc::clone(&core)),
        Receiver::from_core(core),
    ))
}

/// The shared state of one bounded buffer.
pub(crate) struct Core<T> {
    state: Mutex<State<T>>,
    /// Blocked `send_blocking` threads wait here for room.
    not_full: Condvar,
    /// A blocked `recv_blocking` thread waits here for an item or the end.
    not_empty: Condvar,
}

/// Everything behind [`Core`]'s lock.
struct State<T> {
    buf: VecDeque<T>,
    capacity: usize,
    policy: Overflow,
    /// Live push handles; the buffer closes when the last one goes.
    senders: usize,
    /// Whether the receiver is alive.
    receiver: bool,
    /// No more items will be accepted (every sender gone, closed, or overflowed).
    closed: bool,
    /// Closed by the [`Overflow::Error`] policy.
    overflowed: bool,
    /// The receiver's waker, registered when it found the buffer empty.
    rx_waker: Option<Waker>,
    /// Whether a thread is blocked in `recv_blocking`.
    rx_blocked: bool,
    /// Waiting `send` futures, in arrival order.
    tx_waiters: VecDeque<(u64, Waker)>,
    /// The id the next waiting future gets.
    next_waiter: u64,
    /// Threads blocked in `send_blocking`.
    tx_blocked: usize,
    /// A producer task waiting to learn that the buffer no longer accepts items.
    close_waker: Option<Waker>,
    /// Items accepted (queued, or dropped by the policy).
    produced: u64,
    /// Items handed to the receiver.
    delivered: u64,
    /// Items discarded by the policy, or left in the buffer when the receiver went away.
    dropped: u64,
}

/// Wake-ups collected under the lock, performed after it is released.
#[must_use]
#[derive(Default)]
struct Wake {
    rx: Option<Waker>,
    notify_rx: bool,
    tx: Vec<Waker>,
    notify_tx: bool,
    notify_all_tx: bool,
}

impl<T> State<T> {
    fn has_room(&self) -> bool {
        self.buf.len() < self.capacity
    }

    /// Whether pushes can still be accepted.
    fn accepting(&self) -> bool {
        self.receiver && !self.closed
    }

    /// Pushes `item` under the policy; see [`Overflow`].
    fn offer(&mut self, item: T, wake: &mut Wake) -> Result<Pushed<T>, TrySendError<T>> {
        if !self.accepting() {
            return Err(if self.overflowed {
                TrySendError::Overflow(item)
            } else {
                TrySendError::Closed(item)
            });
        }
        if self.has_room() {
            self.buf.push_back(item);
            self.produced += 1;
            self.wake_receiver(wake);
            return Ok(Pushed::Queued);
        }
        let dropped = match self.policy {
            Overflow::Block => return Err(TrySendError::Full(item)),
            Overflow::Error => {
                self.overflowed = true;
                self.close(wake);
                wake.notify_all_tx = true;
                wake.tx.extend(self.tx_waiters.drain(..).map(|(_, w)| w));
                tracing::warn!(
                    capacity = self.capacity,
                    "bounded buffer overflowed under the Error policy; closed"
                );
                return Err(TrySendError::Overflow(item));
            }
            Overflow::DropNewest => item,
            Overflow::DropOldest => {
                // Full and capacity >= 1, so there is a front item.
                let oldest = self.buf.pop_front();
                self.buf.push_back(item);
                match oldest {
                    Some(oldest) => oldest,
                    None => return Ok(Pushed::Queued),
                }
            }
            Overflow::KeepLatest => match self.buf.back_mut() {
                Some(newest) => std::mem::replace(newest, item),
                None => {
                    self.buf.push_back(item);
                    return Ok(Pushed::Queued);
                }
            },
        };
        if self.dropped == 0 {
            tracing::debug!(
                capacity = self.capacity,
                policy = ?self.policy,
                "bounded buffer full: its policy started dropping items (counted as dropped)"
            );
        }
        self.produced += 1;
        self.dropped += 1;
        Ok(Pushed::Dropped(dropped))
    }

    /// Pops the oldest item and lets one waiting sender know there is room.
    fn pop(&mut self, wake: &mut Wake) -> Option<T> {
        let item = self.buf.pop_front()?;
        self.delivered += 1;
        if let Some((_, w)) = self.tx_waiters.pop_front() {
            wake.tx.push(w);
        }
        wake.notify_tx |= self.tx_blocked > 0;
        Some(item)
    }

    fn wake_receiver(&mut self, wake: &mut Wake) {
        wake.rx = self.rx_waker.take();
        wake.notify_rx = self.rx_blocked;
    }

    /// Stops accepting items; the receiver drains what is buffered, then ends.
    fn close(&mut self, wake: &mut Wake) {
        if !self.closed {
            self.closed = true;
            self.wake_receiver(wake);
            wake.tx.extend(self.close_waker.take());
        }
    }

    /// How the receiver's stream ended, once drained.
    fn end(&self) -> TryRecvError {
        if self.overflowed {
            TryRecvError::Overflowed {
                capacity: self.capacity,
            }
        } else {
            TryRecvError::Closed
        }
    }

    fn metrics(&self) -> StageMetrics {
        StageMetrics {
            items_in: self.produced,
            items_out: self.delivered,
            buffered: self.buf.len() as u64,
            demand: (self.capacity - self.buf.len()) as u64,
            dropped: self.dropped,
        }
    }
}

impl<T> Core<T> {
    pub(crate) fn new(capacity: usize, policy: Overflow, senders: usize) -> Self {
        Core {
            state: Mutex::new(State {
                buf: VecDeque::with_capacity(capacity.min(1024)),
                capacity,
                policy,
                senders,
                receiver: true,
                closed: senders == 0,
                overflowed: false,
                rx_waker: None,
                rx_blocked: false,
                tx_waiters: VecDeque::new(),
                next_waiter: 0,
                tx_blocked: 0,
                close_waker: None,
                produced: 0,
                delivered: 0,
                dropped: 0,
            }),
            not_full: Condvar::new(),
            not_empty: Condvar::new(),
        }
    }

    /// Runs `f` under the lock, then performs the wake-ups it collected.
    fn with<R>(&self, f: impl FnOnce(&mut State<T>, &mut Wake) -> R) -> R {
        let mut wake = Wake::default();
        let r = {
            let mut s = self.state.lock();
            f(&mut s, &mut wake)
        };
        self.wake(wake);
        r
    }

    fn wake(&self, wake: Wake) {
        if wake.notify_rx {
            self.not_empty.notify_one();
        }
        if wake.notify_all_tx {
            self.not_full.notify_all();
        } else if wake.notify_tx {
            self.not_full.notify_one();
        }
        if let Some(w) = wake.rx {
            w.wake();
        }
        wake.tx.into_iter().for_each(Waker::wake);
    }

    pub(crate) fn policy(&self) -> Overflow {
        self.state.lock().policy
    }

    pub(crate) fn capacity(&self) -> usize {
        self.state.lock().capacity
    }

    pub(crate) fn metrics(&self) -> StageMetrics {
        self.state.lock().metrics()
    }

    /// Whether pushes are accepted, and whether one would have to wait
    /// ([`Overflow::Block`], full, accepting), read under one lock.
    pub(crate) fn status(&self) -> (bool, bool) {
        let s = self.state.lock();
        let accepting = s.accepting();
        (
            accepting,
            accepting && s.policy == Overflow::Block && !s.has_room(),
        )
    }

    /// Counts items lost outside the policy (a publisher that broke its demand).
    pub(crate) fn count_dropped(&self, n: u64) {
        let mut s = self.state.lock();
        s.produced += n;
        s.dropped += n;
    }

    /// Whether pushes are still accepted (receiver alive, not closed).
    pub(crate) fn accepting(&self) -> bool {
        self.state.lock().accepting()
    }

    pub(crate) fn offer(&self, item: T) -> Result<Pushed<T>, TrySendError<T>> {
        self.with(|s, wake| s.offer(item, wake))
    }

    /// Ready when an item would be accepted without waiting (room, a dropping policy, or
    /// nobody accepting any more); otherwise registers `cx`'s waker as waiter `waiter`.
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>, waiter: &mut Option<u64>) -> Poll<()> {
        let mut s = self.state.lock();
        if s.policy != Overflow::Block || s.has_room() || !s.accepting() {
            if let Some(id) = waiter.take() {
                s.tx_waiters.retain(|(w, _)| *w != id);
            }
            return Poll::Ready(());
        }
        Self::register(&mut s, cx, waiter);
        Poll::Pending
    }

    fn register(s: &mut State<T>, cx: &mut Context<'_>, waiter: &mut Option<u64>) {
        if let Some(id) = *waiter {
            if let Some((_, w)) = s.tx_waiters.iter_mut().find(|(w, _)| *w == id) {
                w.clone_from(cx.waker());
                return;
            }
        }
        let id = s.next_waiter;
        s.next_waiter += 1;
        s.tx_waiters.push_back((id, cx.waker().clone()));
        *waiter = Some(id);
    }

    /// Pushes `item` (taken from the slot), waiting for room under [`Overflow::Block`].
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<T>,
        waiter: &mut Option<u64>,
    ) -> Poll<Result<Pushed<T>, SendError<T>>> {
        let Some(item) = slot.take() else {
            return Poll::Ready(Ok(Pushed::Queued));
        };
        let mut wake = Wake::default();
        let result = {
            let mut s = self.state.lock();
            match s.offer(item, &mut wake) {
                Err(TrySendError::Full(item)) => {
                    Self::register(&mut s, cx, waiter);
                    *slot = Some(item);
                    None
                }
                other => {
                    if let Some(id) = waiter.take() {
                        s.tx_waiters.retain(|(w, _)| *w != id);
                    }
                    Some(other.map_err(|e| match e {
                        TrySendError::Overflow(t) => SendError::Overflow(t),
                        TrySendError::Closed(t) | TrySendError::Full(t) => SendError::Closed(t),
                    }))
                }
            }
        };
        self.wake(wake);
        match result {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }

    /// A waiting future goes away: forget its registration, or, if it had already been
    /// woken for a free slot it will not use, pass the wake-up on.
    pub(crate) fn cancel_waiter(&self, waiter: &mut Option<u64>) {
        let Some(id) = waiter.take() else { return };
        self.with(|s, wake| {
            let before = s.tx_waiters.len();
            s.tx_waiters.retain(|(w, _)| *w != id);
            if s.tx_waiters.len() == before && s.has_room() {
                if let Some((_, w)) = s.tx_waiters.pop_front() {
                    wake.tx.push(w);
                }
            }
        });
    }

    /// Blocks the thread until there is room, or nobody accepts items any more.
    fn wait_room<'a>(&'a self, mut s: MutexGuard<'a, State<T>>) -> MutexGuard<'a, State<T>> {
        while s.policy == Overflow::Block && !s.has_room() && s.accepting() {
            s.tx_blocked += 1;
            s = self.not_full.wait(s);
            s.tx_blocked -= 1;
        }
        s
    }

    /// Blocks the calling thread until there is room (a dropping policy never waits).
    pub(crate) fn wait_room_blocking(&self) {
        drop(self.wait_room(self.state.lock()));
    }

    pub(crate) fn send_blocking(&self, item: T) -> Result<Pushed<T>, SendError<T>> {
        let mut wake = Wake::default();
        let r = {
            let mut s = self.wait_room(self.state.lock());
            s.offer(item, &mut wake)
        };
        self.wake(wake);
        r.map_err(|e| match e {
            TrySendError::Overflow(t) => SendError::Overflow(t),
            TrySendError::Closed(t) | TrySendError::Full(t) => SendError::Closed(t),
        })
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        self.with(|s, wake| match s.pop(wake) {
            Some(t) => Ok(t),
            None if s.closed => Err(s.end()),
            None => Err(TryRecvError::Empty),
        })
    }

    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.with(|s, wake| match s.pop(wake) {
            Some(t) => Poll::Ready(Some(t)),
            None if s.closed => Poll::Ready(None),
            None => {
                match &mut s.rx_waker {
                    Some(w) => w.clone_from(cx.waker()),
                    slot @ None => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        })
    }

    pub(crate) fn recv_blocking(&self) -> Option<T> {
        let mut wake = Wake::default();
        let r = {
            let mut s = self.state.lock();
            loop {
                if let Some(t) = s.pop(&mut wake) {
                    break Some(t);
                }
                if s.closed {
                    break None;
                }
                s.rx_blocked = true;
                s = self.not_empty.wait(s);
                s.rx_blocked = false;
            }
        };
        self.wake(wake);
        r
    }

    /// Stops accepting items; what is buffered can still be received.
    pub(crate) fn close(&self) {
        self.with(|s, wake| {
            s.close(wake);
            // Waiting senders must learn that the buffer is closed.
            wake.tx.extend(s.tx_waiters.drain(..).map(|(_, w)| w));
            wake.notify_all_tx = true;
        });
    }

    /// Ready once the buffer no longer accepts items (receiver gone, closed); otherwise
    /// `cx` is woken when that happens. For a producer task that may otherwise wait on
    /// something else.
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state.lock();
        if !s.accepting() {
            return Poll::Ready(());
        }
        match &mut s.close_waker {
            Some(w) => w.clone_from(cx.waker()),
            slot @ None => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    pub(crate) fn add_sender(&self) {
        self.state.lock().senders += 1;
    }

    pub(crate) fn drop_sender(&self) {
        self.with(|s, wake| {
            s.senders -= 1;
            if s.senders == 0 {
                s.close(wake);
            }
        });
    }

    fn drop_receiver(&self) {
        // Drop the items outside the lock (their destructors are user code).
        let _leftover = self.with(|s, wake| {
            s.receiver = false;
            s.dropped += s.buf.len() as u64;
            s.rx_waker = None;
            wake.tx.extend(s.close_waker.take());
            wake.tx.extend(s.tx_waiters.drain(..).map(|(_, w)| w));
            wake.notify_all_tx = true;
            std::mem::take(&mut s.buf)
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().buf.len()
    }

    fn end_error(&self) -> Option<Error> {
        let s = self.state.lock();
        s.overflowed.then_some(Error::Overflowed {
            capacity: s.capacity,
        })
    }
}

/// The push side of a bounded buffer: cloneable, usable from threads and tasks, and a
/// [`Sink`].
///
/// - [`try_send`](Sender::try_send): never waits; a full [`Overflow::Block`] buffer hands
///   the item back in [`TrySendError::Full`].
/// - [`send`](Sender::send): waits for room under [`Overflow::Block`] (backpressure to the
///   producer); completes at once under the dropping policies.
/// - [`send_blocking`](Sender::send_blocking): the same for a thread outside any runtime.
///
/// The buffer closes when every `Sender` is dropped (or on
/// [`close_channel`](Sender::close_channel)); the
/// receiver then drains what is buffered and ends.
///
/// As a [`Sink`], a `Sender` holds at most one item of its own while the buffer is full
/// (like `futures::channel::mpsc`), so `poll_ready` never lies and `start_send` never
/// fails for lack of room; `poll_flush` waits until that item is in the buffer.
pub struct Sender<T> {
    core: Arc<Core<T>>,
    /// The item the `Sink` accepted but could not yet push.
    pending: Option<T>,
    /// This sender's registration as a waiting `Sink`.
    waiter: Option<u64>,
}

impl<T> Sender<T> {
    pub(crate) fn from_core(core: Arc<Core<T>>) -> Self {
        Sender {
            core,
            pending: None,
            waiter: None,
        }
    }

    pub(crate) fn core(&self) -> &Core<T> {
        &self.core
    }

    /// Pushes without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if the buffer is full under [`Overflow::Block`];
    /// [`TrySendError::Closed`] if the receiver is gone or the buffer closed;
    /// [`TrySendError::Overflow`] if it was full under [`Overflow::Error`] (the buffer is
    /// closed from then on). Each hands the item back.
    ///
    /// ```
    /// use weft_reactive::{channel, Overflow, TrySendError};
    ///
    /// let (tx, _rx) = channel(1, Overflow::Block)?;
    /// assert!(tx.try_send("a")?.is_queued());
    /// assert_eq!(tx.try_send("b"), Err(TrySendError::Full("b")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_send(&self, item: T) -> Result<Pushed<T>, TrySendError<T>> {
        self.core.offer(item)
    }

    /// Pushes, waiting for room under [`Overflow::Block`]. Cancel-safe: dropping the
    /// future before it completes drops the item unsent and wakes the next waiting sender
    /// if this one had been woken.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] if the receiver is gone, [`SendError::Overflow`] under
    /// [`Overflow::Error`]; each hands the item back.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use weft_reactive::{channel, Overflow};
    ///
    /// futures_executor::block_on(async {
    ///     let (tx, rx) = channel(4, Overflow::Block)?;
    ///     for i in 0..3 {
    ///         tx.send(i).await?;
    ///     }
    ///     drop(tx);
    ///     assert_eq!(rx.collect::<Vec<_>>().await, [0, 1, 2]);
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, item: T) -> SendFuture<'_, T> {
        SendFuture {
            core: &self.core,
            item: Some(item),
            waiter: None,
        }
    }

    /// Pushes, blocking the thread for room under [`Overflow::Block`]. For producers
    /// outside an async runtime; do not call it from async code.
    ///
    /// # Errors
    ///
    /// As [`send`](Sender::send).
    ///
    /// ```
    /// use weft_reactive::{channel, Overflow};
    ///
    /// let (tx, rx) = channel(2, Overflow::Block)?;
    /// let producer = std::thread::spawn(move || {
    ///     for i in 0..100 {
    ///         tx.send_blocking(i).unwrap();
    ///     }
    /// });
    /// let got: Vec<i32> = std::iter::from_fn(|| rx.recv_blocking()).collect();
    /// producer.join().unwrap();
    /// assert_eq!(got, (0..100).collect::<Vec<_>>());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_blocking(&self, item: T) -> Result<Pushed<T>, SendError<T>> {
        self.core.send_blocking(item)
    }

    /// Closes the buffer for every sender: later pushes fail with `Closed`; the receiver
    /// drains what is buffered, then ends. (Named as in `futures::channel::mpsc`, so that
    /// it does not shadow `SinkExt::close`.)
    pub fn close_channel(&self) {
        self.core.close();
    }

    /// `true` once pushes can no longer succeed (receiver gone, closed, overflowed).
    pub fn is_closed(&self) -> bool {
        !self.core.accepting()
    }

    /// The buffer's capacity.
    pub fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// The buffer's overflow policy.
    pub fn policy(&self) -> Overflow {
        self.core.policy()
    }

    /// The buffer's counters: `items_in` accepted, `items_out` received, `buffered`,
    /// `demand` (free room) and `dropped` (by the policy, or left behind by a dropped
    /// receiver). `items_in == items_out + dropped + buffered` at all times.
    pub fn metrics(&self) -> StageMetrics {
        self.core.metrics()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.core.add_sender();
        Sender::from_core(Arc::clone(&self.core))
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.core.cancel_waiter(&mut self.waiter);
        self.core.drop_sender();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

impl<T> Unpin for Sender<T> {}

impl<T> Sink<T> for Sender<T> {
    type Error = SendError<T>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_flush(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        // `poll_ready` returned Ready, so the slot is free. A caller that skipped
        // `poll_ready` gets its item back (as `Closed`) rather than replacing the held one.
        match self.pending.take() {
            None => {
                self.pending = Some(item);
                Ok(())
            }
            Some(previous) => {
                self.pending = Some(previous);
                Err(SendError::Closed(item))
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = &mut *self;
        if this.pending.is_none() {
            return Poll::Ready(Ok(()));
        }
        this.core
            .poll_send(cx, &mut this.pending, &mut this.waiter)
            .map(|r| r.map(drop))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        close_after_flush(Pin::new(&mut *this).poll_flush(cx), || this.core.close())
    }
}

/// `Sink::poll_close` of the crate's sinks: once the held item is flushed (or failed),
/// run `close`.
pub(crate) fn close_after_flush<E>(
    flushed: Poll<Result<(), E>>,
    close: impl FnOnce(),
) -> Poll<Result<(), E>> {
    if flushed.is_ready() {
        close();
    }
    flushed
}

/// The future of [`Sender::send`].
#[must_use = "futures do nothing unless polled"]
pub struct SendFuture<'a, T> {
    core: &'a Core<T>,
    item: Option<T>,
    waiter: Option<u64>,
}

impl<T> Unpin for SendFuture<'_, T> {}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<Pushed<T>, SendError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.core.poll_send(cx, &mut this.item, &mut this.waiter)
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        self.core.cancel_waiter(&mut self.waiter);
    }
}

impl<T> fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFuture")
            .field("sent", &self.item.is_none())
            .finish_non_exhaustive()
    }
}

/// The pull side of a bounded buffer: a [`Stream`] of the items in arrival order, plus
/// non-async ([`try_recv`](Receiver::try_recv)) and blocking
/// ([`recv_blocking`](Receiver::recv_blocking)) ways to take them.
///
/// The stream ends once every sender is gone (or the buffer was closed) and the buffer is
/// drained. If it ended because of [`Overflow::Error`], [`error`](Receiver::error) says
/// so. Dropping the receiver closes the buffer; items still in it are counted as dropped.
pub struct Receiver<T> {
    core: Arc<Core<T>>,
    /// The stream returned `None`.
    done: bool,
}

impl<T> Receiver<T> {
    pub(crate) fn from_core(core: Arc<Core<T>>) -> Self {
        Receiver { core, done: false }
    }

    /// Takes the oldest item without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if nothing is buffered yet; [`TryRecvError::Closed`] or
    /// [`TryRecvError::Overflowed`] once the buffer is closed and drained.
    ///
    /// ```
    /// use weft_reactive::{channel, Overflow, TryRecvError};
    ///
    /// let (tx, mut rx) = channel(1, Overflow::Error)?;
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.try_send(1)?;
    /// assert!(tx.try_send(2).is_err()); // overflow: refused, buffer closed
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Overflowed { capacity: 1 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.core.try_recv()
    }

    /// Takes the oldest item, blocking the thread until there is one; `None` once the
    /// buffer is closed and drained. Do not call it from async code.
    pub fn recv_blocking(&self) -> Option<T> {
        self.core.recv_blocking()
    }

    /// Closes the buffer: senders are refused from now on; what is buffered can still be
    /// received.
    pub fn close(&self) {
        self.core.close();
    }

    /// `Some(Error::Overflowed { .. })` if the buffer was closed by the
    /// [`Overflow::Error`] policy.
    pub fn error(&self) -> Option<Error> {
        self.core.end_error()
    }

    /// How many items the overflow policy dropped from this buffer: a subscriber's lag.
    pub fn lagged(&self) -> u64 {
        self.core.metrics().dropped
    }

    /// Items buffered now.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// `true` if nothing is buffered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's capacity.
    pub fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// The buffer's counters (see [`Sender::metrics`]).
    pub fn metrics(&self) -> StageMetrics {
        self.core.metrics()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.core.drop_receiver();
    }
}

impl<T> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if self.done {
            return Poll::Ready(None);
        }
        let r = self.core.poll_recv(cx);
        if let Poll::Ready(None) = r {
            self.done = true;
        }
        r
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (if self.done { 0 } else { self.len() }, None)
    }
}

impl<T> FusedStream for Receiver<T> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker;

    fn cx_poll<T>(rx: &mut Receiver<T>) -> Poll<Option<T>> {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        Pin::new(rx).poll_next(&mut cx)
    }

    #[test]
    fn zero_capacity_is_an_error() {
        assert_eq!(
            channel::<u8>(0, Overflow::Block).unwrap_err(),
            Error::ZeroSize { what: "capacity" }
        );
    }

    #[test]
    fn keep_latest_replaces_the_newest_item() {
        let (tx, mut rx) = channel(2, Overflow::KeepLatest).unwrap();
        for i in 0..5 {
            let _ = tx.try_send(i).unwrap();
        }
        assert_eq!(rx.try_recv(), Ok(0));
        assert_eq!(rx.try_recv(), Ok(4));
        assert_eq!(rx.metrics().dropped, 3);
    }

    #[test]
    fn drop_newest_hands_back_the_arriving_item() {
        let (tx, mut rx) = channel(1, Overflow::DropNewest).unwrap();
        assert!(tx.try_send(1).unwrap().is_queued());
        assert_eq!(tx.try_send(2).unwrap().into_dropped(), Some(2));
        assert_eq!(rx.try_recv(), Ok(1));
    }

    #[test]
    fn stream_ends_after_last_sender_and_drains_first() {
        let (tx, mut rx) = channel(4, Overflow::Block).unwrap();
        let tx2 = tx.clone();
        let _ = tx.try_send(1).unwrap();
        drop(tx);
        assert_eq!(cx_poll(&mut rx), Poll::Ready(Some(1)));
        assert_eq!(cx_poll(&mut rx), Poll::Pending);
        drop(tx2);
        assert_eq!(cx_poll(&mut rx), Poll::Ready(None));
        assert!(rx.is_terminated());
    }

    #[test]
    fn dropped_receiver_counts_leftovers_and_refuses_senders() {
        let (tx, rx) = channel(4, Overflow::Block).unwrap();
        let _ = tx.try_send(1).unwrap();
        let _ = tx.try_send(2).unwrap();
        drop(rx);
        assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
        let m = tx.metrics();
        assert_eq!((m.items_in, m.items_out, m.dropped), (2, 0, 2));
        assert!(tx.is_closed());
    }

    #[test]
    fn a_cancelled_woken_sender_passes_the_wakeup_on() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (tx, mut rx) = channel(1, Overflow::Block).unwrap();
        let _ = tx.try_send(0).unwrap();
        let (a, b) = (
            std::sync::Arc::new(Count(AtomicUsize::new(0))),
            std::sync::Arc::new(Count(AtomicUsize::new(0))),
        );
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        let mut fa = tx.send(1);
        let mut fb = tx.send(2);
        assert!(
            Pin::new(&mut fa)
                .poll(&mut Context::from_waker(&wa))
                .is_pending()
        );
        assert!(
            Pin::new(&mut fb)
                .poll(&mut Context::from_waker(&wb))
                .is_pending()
        );
        assert_eq!(rx.try_recv(), Ok(0)); // wakes `fa` only
        assert_eq!(
            (a.0.load(Ordering::SeqCst), b.0.load(Ordering::SeqCst)),
            (1, 0)
        );
        drop(fa); // woken but never used the slot: `fb` is woken instead
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            Pin::new(&mut fb).poll(&mut Context::from_waker(&wb)),
            Poll::Ready(Ok(Pushed::Queued))
        ));
    }
}
