//! The bounded mailbox: a user lane with an overflow policy and a priority signal lane.
//
// Design
// ------
// One mailbox per actor, one consumer (the actor's task), many producers (every
// `ActorRef` clone). All state sits under one `weft_sync::Mutex`, so every operation is a
// short critical section and the protocol is easy to model with loom:
//
// - `messages`: the user lane, at most `capacity` items, FIFO. Because one producer's
//   pushes are serialised by the lock and popped in FIFO order, messages from one sender
//   are handled in the order it sent them.
// - `signals`: the priority lane (stop, kill, restart, terminated notifications). It is
//   not bounded by `capacity` (signals are few and must never be refused while the actor
//   lives) and `recv` always takes a signal before a message, so a stop overtakes queued
//   user messages.
// - `closed`: the user lane refuses new messages; what is queued can still be received
//   (drain). `terminated`: both lanes refuse everything; `terminate` hands back every
//   queued message so the caller delivers it to the dead-letter sink.
//
// The race that matters is close (or terminate) against send. Both take the lock, so a
// push either lands before the close (and is then received or handed back by
// `terminate`) or sees `closed` and returns the message to its sender. No interleaving
// leaves a message in the queue after `terminate` has drained it, which is what the
// loom model `loom-tests/tests/actor.rs` checks: delivered + dead-lettered + returned
// == sent.
//
// A sender that finds the user lane full (overflow policy `Wait`) first yields for up
// to `ROOM_WAIT` (20 µs), watching the lane's length through the `queued` mirror
// without the lock, and sends once the lane is down to an eighth of its capacity. Only
// then does it park: waiting senders park a waker in `send_waiters`. A pop of a
// user message that leaves the lane at an eighth of its capacity or less wakes the first
// waiter and removes it from the list (the lane keeps draining while it holds messages,
// so it always reaches that mark; waking on every pop made a fast sender and its actor
// wake each other, across threads, once per message, and waking at half capacity
// measured 1.5x slower than at an eighth on `actor/tell_1to1`: the later the mark, the
// more a woken sender refills per wake-up). Wakers are called after the lock is
// released. A woken sender that
// finds the lane full again (a newcomer took the slot) re-registers at the front. A
// waiting send that is dropped after being woken passes the wake-up on to the next
// waiter, so a cancelled send never strands the others. Closing wakes every waiter.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

use weft_sync::atomic::{AtomicUsize, Ordering};
use weft_sync::{Mutex, MutexGuard};

/// What a mailbox does with a user message when its lane is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// `tell` waits for capacity (backpressure); `try_tell` returns the message.
    ///
    /// A waiting sender first stays runnable for up to 20 µs (it yields, watching the
    /// mailbox drain), then parks; either way it sends once the mailbox is down to an
    /// eighth of its capacity, so it refills most of the mailbox per wait.
    #[default]
    Wait,
    /// `tell` and `try_tell` fail at once, returning the message to the sender.
    Fail,
    /// The oldest queued message is evicted to the dead-letter sink to make room.
    DropOldest,
    /// The incoming message goes to the dead-letter sink; the queue is unchanged.
    DropNewest,
}

/// A successful push.
#[derive(Debug)]
pub(crate) enum Pushed<T> {
    /// The message is queued.
    Queued,
    /// The message is queued and this older one was evicted (`DropOldest`).
    Evicted(T),
    /// The lane was full and the message itself was dropped (`DropNewest`).
    Rejected(T),
}

/// A failed push: the message comes back.
#[derive(Debug)]
pub(crate) enum PushError<T> {
    /// The lane is full (`Wait` on a non-waiting push, or `Fail`).
    Full(T),
    /// The lane is closed.
    Closed(T),
}

/// What the consumer receives.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Item<T, S> {
    /// A priority signal.
    Signal(S),
    /// A user message.
    Message(T),
}

/// The shared state under the lock.
#[derive(Debug)]
struct State<T, S> {
    /// The user lane.
    messages: VecDeque<T>,
    /// The priority lane.
    signals: VecDeque<S>,
    /// The user lane refuses new messages.
    closed: bool,
    /// Both lanes refuse everything; the mailbox is dead.
    terminated: bool,
    /// The consumer's waker while it waits.
    receiver: Option<Waker>,
    /// Senders waiting for capacity, first to be served at the front.
    send_waiters: VecDeque<(u64, Waker)>,
    /// The id of the next waiting sender.
    next_waiter: u64,
}

/// A bounded multi-producer single-consumer mailbox with a priority lane.
#[derive(Debug)]
pub(crate) struct Mailbox<T, S> {
    state: Mutex<State<T, S>>,
    /// `messages.len()`, written under the lock after every change: read without it by
    /// a sender waiting for room (`push_wait`).
    queued: AtomicUsize,
    capacity: usize,
    overflow: Overflow,
}

impl<T, S> Mailbox<T, S> {
    /// A mailbox holding up to `capacity` (at least 1) user messages.
    pub(crate) fn new(capacity: usize, overflow: Overflow) -> Self {
        Mailbox {
            state: Mutex::new(State {
                messages: VecDeque::with_capacity(capacity.min(1024)),
                signals: VecDeque::new(),
                closed: false,
                terminated: false,
                receiver: None,
                send_waiters: VecDeque::new(),
                next_waiter: 0,
            }),
            queued: AtomicUsize::new(0),
            capacity: capacity.max(1),
            overflow,
        }
    }

    /// The overflow policy.
    pub(crate) fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// The capacity of the user lane.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// User messages queued now.
    pub(crate) fn len(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Publishes the lane's length (called under the lock after every change).
    fn count(&self, st: &State<T, S>) {
        self.queued.store(st.messages.len(), Ordering::Relaxed);
    }

    /// The length at or below which a waiting sender is let in again.
    fn low_mark(&self) -> usize {
        self.capacity / 8
    }

    /// Whether the user lane is closed (drain or termination under way).
    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Pushes without waiting, applying the overflow policy when the lane is full.
    pub(crate) fn try_push(&self, msg: T) -> Result<Pushed<T>, PushError<T>> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(PushError::Closed(msg));
        }
        if st.messages.len() < self.capacity {
            st.messages.push_back(msg);
            self.count(&st);
            wake_after_unlock(st);
            return Ok(Pushed::Queued);
        }
        match self.overflow {
            Overflow::Wait | Overflow::Fail => Err(PushError::Full(msg)),
            Overflow::DropNewest => Ok(Pushed::Rejected(msg)),
            Overflow::DropOldest => {
                // The lane is full, so there is an oldest message to evict.
                let evicted = st.messages.pop_front();
                st.messages.push_back(msg);
                wake_after_unlock(st);
                match evicted {
                    Some(old) => Ok(Pushed::Evicted(old)),
                    None => Ok(Pushed::Queued),
                }
            }
        }
    }

    /// Pushes the message in `slot`, waiting for capacity while the lane is full
    /// (whatever the policy: callers use it for `Overflow::Wait`). Cancel-safe: if the
    /// future is dropped before it completes, the message is still in `slot` (so a
    /// deadline can hand it back) and any wake-up it received passes to the next waiter.
    /// `slot` must hold a message when called; an empty slot completes as `Queued`.
    pub(crate) async fn push_wait(&self, slot: &mut Option<T>) -> Result<Pushed<T>, PushError<T>> {
        let mut guard = WaitGuard {
            mailbox: self,
            id: None,
        };
        // Set when the lane was first found full: the sender then yields (staying
        // runnable) until the lane is down to the low mark, for up to `ROOM_WAIT`,
        // before it registers and parks. See `ROOM_WAIT`.
        let mut full_since: Option<std::time::Instant> = None;
        poll_fn(|cx| {
            let yielding = full_since.is_some_and(still_yielding);
            // A look without the lock, so a yielding sender does not contend with the
            // consumer's pops.
            if yielding && self.queued.load(Ordering::Relaxed) > self.low_mark() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut st = self.state.lock();
            let Some(m) = slot.take() else {
                guard.deregister(&mut st);
                return Poll::Ready(Ok(Pushed::Queued));
            };
            if st.closed {
                guard.deregister(&mut st);
                return Poll::Ready(Err(PushError::Closed(m)));
            }
            let len = st.messages.len();
            if len < self.capacity && (!yielding || len <= self.low_mark()) {
                guard.deregister(&mut st);
                st.messages.push_back(m);
                self.count(&st);
                wake_after_unlock(st);
                return Poll::Ready(Ok(Pushed::Queued));
            }
            *slot = Some(m);
            // The first look at a full lane starts the yielding.
            if still_yielding(*full_since.get_or_insert_with(std::time::Instant::now)) {
                drop(st);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            guard.register(&mut st, cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Queues a priority signal; fails (returning it) once the mailbox is terminated.
    pub(crate) fn push_signal(&self, signal: S) -> Result<(), S> {
        let mut st = self.state.lock();
        if st.terminated {
            return Err(signal);
        }
        st.signals.push_back(signal);
        wake_after_unlock(st);
        Ok(())
    }

    /// Takes the next item: a signal first, else a message. `None` means nothing is
    /// queued now.
    #[cfg(any(test, loom))]
    pub(crate) fn try_recv(&self) -> Option<Item<T, S>> {
        let mut st = self.state.lock();
        let (item, sender) = self.pop(&mut st);
        drop(st);
        if let Some(waker) = sender {
            waker.wake();
        }
        item
    }

    /// Takes the next item, and the waker of the sender its slot is for (to be woken
    /// once the lock is released).
    ///
    /// A waiting sender is woken only once the lane is down to an eighth of its capacity
    /// (or less): a fast sender then refills most of a lane per wake-up instead of one slot,
    /// and the sender and the actor stop waking each other (usually across threads) on
    /// every message. The lane keeps draining while it holds messages, so it always
    /// reaches the mark; `close` and `terminate` wake every sender.
    fn pop(&self, st: &mut State<T, S>) -> (Option<Item<T, S>>, Option<Waker>) {
        if let Some(signal) = st.signals.pop_front() {
            return (Some(Item::Signal(signal)), None);
        }
        let Some(msg) = st.messages.pop_front() else {
            return (None, None);
        };
        self.count(st);
        let sender = if st.messages.len() <= self.low_mark() {
            st.send_waiters.pop_front().map(|(_, waker)| waker)
        } else {
            None
        };
        (Some(Item::Message(msg)), sender)
    }

    /// Waits for the next item. `None` once the user lane is closed and empty and no
    /// signal is queued.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Item<T, S>>> {
        let mut st = self.state.lock();
        if let (Some(item), sender) = self.pop(&mut st) {
            drop(st);
            if let Some(waker) = sender {
                waker.wake();
            }
            return Poll::Ready(Some(item));
        }
        if st.closed {
            return Poll::Ready(None);
        }
        match &mut st.receiver {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits for the next item (see [`Mailbox::poll_recv`]).
    #[cfg(loom)]
    pub(crate) async fn recv(&self) -> Option<Item<T, S>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Closes the user lane: new messages are refused, queued ones can still be received.
    /// Wakes every waiting sender (they see `Closed`) and the receiver.
    pub(crate) fn close(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        let senders: Vec<Waker> = st.send_waiters.drain(..).map(|(_, w)| w).collect();
        wake_after_unlock(st);
        senders.into_iter().for_each(Waker::wake);
    }

    /// Kills the mailbox: both lanes refuse everything from now on. Returns the user
    /// messages still queued, for the dead-letter sink, and the signals still queued.
    pub(crate) fn terminate(&self) -> (Vec<T>, Vec<S>) {
        let mut st = self.state.lock();
        st.closed = true;
        st.terminated = true;
        for (_, waker) in st.send_waiters.drain(..) {
            waker.wake();
        }
        st.receiver = None;
        let queued = (
            st.messages.drain(..).collect(),
            st.signals.drain(..).collect(),
        );
        self.count(&st);
        queued
    }
}

/// How long a sender that found the lane full yields, watching for the lane to drain
/// to the low mark, before it registers as a waiter and parks.
///
/// Parking costs a wake-up per refill, and when the sender is a thread (`block_on`) or
/// its worker has nothing else to run, that is a futex sleep and wake-up, after which
/// the scheduler tends to run the woken sender on the consumer's core: sender and
/// actor then take turns on one core instead of running on two (`perf sched` on
/// `actor/tell_1to1`: 4 µs of sending and 12 µs of handling, alternating, with the other
/// core idle). Yielding keeps the sender runnable and lets other tasks on its worker
/// run; 20 µs covers draining a 64-slot lane at a few hundred nanoseconds per message
/// (5 µs measured slower than not yielding at all: the sender still parked, after
/// spending the 5 µs). The same spin-then-block shape as crossbeam-channel's bounded
/// `send`. Real time, not the system's `Clock`: it bounds CPU spent, decides no
/// outcome, and must not stand still under a manual clock.
pub(crate) const ROOM_WAIT: std::time::Duration = std::time::Duration::from_micros(20);

/// Whether a wait that began at `since` may still yield rather than park (never under
/// loom, whose models check the parking path).
pub(crate) fn still_yielding(since: std::time::Instant) -> bool {
    !weft_sync::IS_LOOM && since.elapsed() < ROOM_WAIT
}

/// Releases the lock, then wakes the consumer if it was waiting: waking under the lock
/// would let the woken task (on another worker thread) run straight into the held lock.
fn wake_after_unlock<T, S>(mut st: MutexGuard<'_, State<T, S>>) {
    let waker = st.receiver.take();
    drop(st);
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// A waiting sender's place in `send_waiters`, cleaned up on drop.
struct WaitGuard<'a, T, S> {
    mailbox: &'a Mailbox<T, S>,
    /// Our waiter id once we have registered (whether still listed or already woken).
    id: Option<u64>,
}

impl<T, S> WaitGuard<'_, T, S> {
    /// Registers (or refreshes) our waker: at the back the first time, at the front when
    /// a wake-up found the lane full again.
    fn register(&mut self, st: &mut State<T, S>, waker: &Waker) {
        if let Some(id) = self.id {
            if let Some(entry) = st.send_waiters.iter_mut().find(|(i, _)| *i == id) {
                if !entry.1.will_wake(waker) {
                    entry.1 = waker.clone();
                }
                return;
            }
            st.send_waiters.push_front((id, waker.clone()));
        } else {
            let id = st.next_waiter;
            st.next_waiter = st.next_waiter.wrapping_add(1);
            self.id = Some(id);
            st.send_waiters.push_back((id, waker.clone()));
        }
    }

    /// Leaves the wait list (the send completed).
    fn deregister(&mut self, st: &mut State<T, S>) {
        if let Some(id) = self.id.take() {
            st.send_waiters.retain(|(i, _)| *i != id);
        }
    }
}

impl<T, S> Drop for WaitGuard<'_, T, S> {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let mut st = self.mailbox.state.lock();
        let before = st.send_waiters.len();
        st.send_waiters.retain(|(i, _)| *i != id);
        if st.send_waiters.len() == before && st.messages.len() < self.mailbox.capacity {
            // We were woken for a free slot but are going away: pass the wake-up on.
            if let Some((_, waker)) = st.send_waiters.pop_front() {
                waker.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_overtake_messages_and_fifo_holds() {
        let mb: Mailbox<u32, &str> = Mailbox::new(4, Overflow::Fail);
        mb.try_push(1).unwrap();
        mb.try_push(2).unwrap();
        mb.push_signal("stop").unwrap();
        assert_eq!(mb.try_recv(), Some(Item::Signal("stop")));
        assert_eq!(mb.try_recv(), Some(Item::Message(1)));
        assert_eq!(mb.try_recv(), Some(Item::Message(2)));
        assert_eq!(mb.try_recv(), None);
    }

    #[test]
    fn policies_on_a_full_lane() {
        let fail: Mailbox<u32, ()> = Mailbox::new(1, Overflow::Fail);
        fail.try_push(1).unwrap();
        assert!(matches!(fail.try_push(2), Err(PushError::Full(2))));

        let oldest: Mailbox<u32, ()> = Mailbox::new(2, Overflow::DropOldest);
        oldest.try_push(1).unwrap();
        oldest.try_push(2).unwrap();
        assert!(matches!(oldest.try_push(3), Ok(Pushed::Evicted(1))));
        assert_eq!(oldest.len(), 2);

        let newest: Mailbox<u32, ()> = Mailbox::new(1, Overflow::DropNewest);
        newest.try_push(1).unwrap();
        assert!(matches!(newest.try_push(2), Ok(Pushed::Rejected(2))));
        assert_eq!(newest.try_recv(), Some(Item::Message(1)));
    }

    /// A waker that counts its wake-ups.
    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn a_sender_finding_the_lane_full_yields_before_it_registers() {
        let mb: Mailbox<u32, ()> = Mailbox::new(8, Overflow::Wait);
        for i in 0..8 {
            mb.try_push(i).unwrap();
        }
        let counter = std::sync::Arc::new(CountingWaker(Default::default()));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut slot = Some(8);
        let mut send = std::pin::pin!(mb.push_wait(&mut slot));

        // The first look at a full lane: the sender stays runnable (it woke itself, a
        // yield) and is not on the wait list yet.
        assert!(send.as_mut().poll(&mut cx).is_pending());
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(mb.state.lock().send_waiters.is_empty());

        // Drained to the low mark (8 / 8 = 1 queued), the next poll sends, whether it was
        // still yielding or had registered meanwhile.
        for want in 0..7 {
            assert_eq!(mb.try_recv(), Some(Item::Message(want)));
        }
        assert!(matches!(
            send.as_mut().poll(&mut cx),
            Poll::Ready(Ok(Pushed::Queued))
        ));
        assert!(mb.state.lock().send_waiters.is_empty());
        assert_eq!(mb.try_recv(), Some(Item::Message(7)));
        assert_eq!(mb.try_recv(), Some(Item::Message(8)));
    }

    #[test]
    fn close_refuses_new_but_drains_old_and_terminate_hands_back() {
        let mb: Mailbox<u32, ()> = Mailbox::new(4, Overflow::Wait);
        mb.try_push(1).unwrap();
        mb.try_push(2).unwrap();
        mb.close();
        assert!(matches!(mb.try_push(3), Err(PushError::Closed(3))));
        assert_eq!(mb.try_recv(), Some(Item::Message(1)));
        let (left, _) = mb.terminate();
        assert_eq!(left, vec![2]);
        assert!(mb.push_signal(()).is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiting_send_completes_after_a_pop_and_cancelled_send_passes_the_wakeup() {
        let mb: std::sync::Arc<Mailbox<u32, ()>> =
            std::sync::Arc::new(Mailbox::new(1, Overflow::Wait));
        mb.try_push(1).unwrap();
        let a = tokio::spawn({
            let mb = mb.clone();
            async move { mb.push_wait(&mut Some(2)).await.is_ok() }
        });
        let b = tokio::spawn({
            let mb = mb.clone();
            async move { mb.push_wait(&mut Some(3)).await.is_ok() }
        });
        tokio::task::yield_now().await;
        assert!(!a.is_finished() && !b.is_finished());
        a.abort();
        let _ = a.await;
        assert_eq!(mb.try_recv(), Some(Item::Message(1)));
        assert!(b.await.unwrap());
        assert_eq!(mb.try_recv(), Some(Item::Message(3)));
    }

    mod prop {
        use std::collections::VecDeque;

        use proptest::prelude::*;

        use super::super::*;

        #[derive(Debug, Clone)]
        enum Op {
            Push,
            Signal,
            Recv,
            Close,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => Just(Op::Push),
                1 => Just(Op::Signal),
                3 => Just(Op::Recv),
                1 => Just(Op::Close),
            ]
        }

        fn policy() -> impl Strategy<Value = Overflow> {
            prop_oneof![
                Just(Overflow::Wait),
                Just(Overflow::Fail),
                Just(Overflow::DropOldest),
                Just(Overflow::DropNewest),
            ]
        }

        proptest! {
            /// Any sequence of pushes, signals, receives and a close behaves like a
            /// plain reference model (bounded FIFO lane, priority lane, the policy on a
            /// full lane), and conserves messages: received + dropped + handed back +
            /// left at termination == pushed.
            #[test]
            fn mailbox_matches_the_reference_model(
                capacity in 1usize..5,
                overflow in policy(),
                ops in proptest::collection::vec(op(), 0..60),
            ) {
                let mb: Mailbox<u32, u32> = Mailbox::new(capacity, overflow);
                let (mut msgs, mut sigs) = (VecDeque::new(), VecDeque::new());
                let mut closed = false;
                let (mut next, mut received, mut dropped, mut returned) = (0u32, 0usize, 0usize, 0usize);
                for op in ops {
                    match op {
                        Op::Push => {
                            next += 1;
                            let got = mb.try_push(next);
                            if closed {
                                prop_assert!(matches!(got, Err(PushError::Closed(m)) if m == next));
                                returned += 1;
                            } else if msgs.len() < capacity {
                                prop_assert!(matches!(got, Ok(Pushed::Queued)));
                                msgs.push_back(next);
                            } else {
                                match overflow {
                                    Overflow::Wait | Overflow::Fail => {
                                        prop_assert!(matches!(got, Err(PushError::Full(m)) if m == next));
                                        returned += 1;
                                    }
                                    Overflow::DropNewest => {
                                        prop_assert!(matches!(got, Ok(Pushed::Rejected(m)) if m == next));
                                        dropped += 1;
                                    }
                                    Overflow::DropOldest => {
                                        let old = msgs.pop_front();
                                        prop_assert!(matches!(got, Ok(Pushed::Evicted(m)) if Some(m) == old));
                                        msgs.push_back(next);
                                        dropped += 1;
                                    }
                                }
                            }
                        }
                        Op::Signal => {
                            prop_assert!(mb.push_signal(next).is_ok());
                            sigs.push_back(next);
                        }
                        Op::Recv => {
                            let want = match sigs.pop_front() {
                                Some(s) => Some(Item::Signal(s)),
                                None => msgs.pop_front().map(Item::Message),
                            };
                            if matches!(want, Some(Item::Message(_))) {
                                received += 1;
                            }
                            prop_assert_eq!(mb.try_recv(), want);
                        }
                        Op::Close => {
                            mb.close();
                            closed = true;
                        }
                    }
                    prop_assert_eq!(mb.len(), msgs.len());
                    prop_assert!(mb.len() <= capacity);
                }
                let (left, _) = mb.terminate();
                prop_assert_eq!(&left, &Vec::from(msgs));
                prop_assert_eq!(received + dropped + returned + left.len(), next as usize);
            }
        }
    }
}
