//! Per-key serialisation without a global lock: a sharded table of per-key FIFO queues.
//!
//! # Design
//!
//! A key is *held* exactly while it has an entry in its shard's map; the entry is the
//! FIFO queue of tickets of the commands waiting for it. Everything about one key
//! happens under its shard's mutex, held only for a map lookup and a queue push or pop,
//! never across an `await` or a handler; different keys mostly hash to different shards,
//! so commands on different keys neither share a lock on the hot path nor wait for each
//! other.
//!
//! - **acquire**: no entry: insert an empty queue, the caller holds the key. An entry:
//!   push a `WAITING` ticket and wait for it to become `GRANTED`.
//! - **release** (the holder is done): pop tickets from the front; the first one that
//!   moves `WAITING -> GRANTED` (compare-exchange) now holds the key and is woken: a
//!   direct hand-off, so nobody can overtake a waiter and same-key commands run in
//!   arrival order. Tickets already `CANCELLED` are skipped. An empty queue removes the
//!   entry: idle keys cost nothing.
//! - **cancel** (a waiter gives up, e.g. its timeout fired or its future was dropped):
//!   `WAITING -> CANCELLED`. If that fails the ticket was already `GRANTED`, so the
//!   waiter holds the key and must release it: the hand-off is never lost.
//!
//! The one race is the waker: a waiter stores its waker and re-reads the state, both
//! under/after the ticket's waker mutex; release moves the state first and takes the
//! waker under that mutex second. Either release takes the stored waker and wakes it, or
//! the waiter's store came after release's take, and then the mutex orders the state
//! change before the waiter's re-read, which sees `GRANTED`. The loom model
//! `loom-tests/tests/cqrs.rs` checks mutual exclusion, FIFO hand-off, cancellation and
//! cleanup.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::hash::BuildHasher;
use std::task::{Context, Poll, Waker};

use weft_sync::atomic::{AtomicU8, Ordering};
use weft_sync::{Arc, CachePadded, Mutex};

/// The ticket waits for the key.
const WAITING: u8 = 0;
/// The releaser handed the key to this ticket's owner.
const GRANTED: u8 = 1;
/// The owner gave up before being granted; releasers skip it.
const CANCELLED: u8 = 2;

/// A waiter's place in a key's queue.
#[derive(Debug)]
pub(crate) struct Ticket {
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

impl Ticket {
    fn new() -> Self {
        Ticket {
            state: AtomicU8::new(WAITING),
            waker: Mutex::new(None),
        }
    }

    /// Whether the key was handed to this ticket.
    pub(crate) fn granted(&self) -> bool {
        // Acquire: pairs with the releaser's AcqRel compare-exchange, so whatever the
        // previous holder did is visible to the new one.
        self.state.load(Ordering::Acquire) == GRANTED
    }

    fn poll_granted(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.granted() {
            return Poll::Ready(());
        }
        *self.waker.lock() = Some(cx.waker().clone());
        // Re-read after publishing the waker (see the design note above).
        if self.granted() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The outcome of [`KeyLocks::acquire`].
#[derive(Debug)]
pub(crate) enum Acquire {
    /// The caller holds the key.
    Held,
    /// The caller waits with this ticket.
    Queued(Arc<Ticket>),
}

type Shard = Mutex<HashMap<String, VecDeque<Arc<Ticket>>, foldhash::fast::RandomState>>;

/// The table of held keys.
#[derive(Debug)]
pub(crate) struct KeyLocks {
    shards: Box<[CachePadded<Shard>]>,
    hasher: foldhash::fast::RandomState,
}

impl KeyLocks {
    /// A table with `shards` shards (at least one).
    pub(crate) fn new(shards: usize) -> Self {
        KeyLocks {
            shards: (0..shards.max(1))
                .map(|_| CachePadded::new(Mutex::new(HashMap::default())))
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, key: &str) -> &Shard {
        let i = self.hasher.hash_one(key) as usize % self.shards.len();
        &self.shards[i]
    }

    /// Takes the key if it is free, else queues a ticket for it.
    pub(crate) fn acquire(&self, key: &str) -> Acquire {
        let mut map = self.shard(key).lock();
        match map.get_mut(key) {
            None => {
                map.insert(key.to_owned(), VecDeque::new());
                Acquire::Held
            }
            Some(queue) => {
                let ticket = Arc::new(Ticket::new());
                queue.push_back(Arc::clone(&ticket));
                Acquire::Queued(ticket)
            }
        }
    }

    /// The holder of `key` is done: hand the key to the first live waiter, or free it.
    pub(crate) fn release(&self, key: &str) {
        let mut map = self.shard(key).lock();
        let Some(queue) = map.get_mut(key) else {
            return; // not held: nothing to release (never happens with a KeyGuard)
        };
        while let Some(ticket) = queue.pop_front() {
            // AcqRel: releases the holder's writes to the grantee; Acquire side of a
            // cancellation so a skipped ticket is really given up.
            if ticket
                .state
                .compare_exchange(WAITING, GRANTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                drop(map);
                let waker = ticket.waker.lock().take();
                if let Some(waker) = waker {
                    waker.wake();
                }
                return;
            }
        }
        map.remove(key);
    }

    /// The owner of `ticket` (queued on `key`) gives up. If the key was handed to it in
    /// the meantime, it is released on.
    pub(crate) fn cancel(&self, key: &str, ticket: &Ticket) {
        if ticket
            .state
            .compare_exchange(WAITING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.release(key);
        }
    }

    /// How many keys are held (entries in the table): idle keys are not.
    pub(crate) fn held(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Waits for `key` in FIFO order; the guard releases it. Dropping the future while
    /// it waits gives up its place (and passes the key on if it was just granted).
    pub(crate) async fn lock(this: &Arc<Self>, key: &str) -> KeyGuard {
        if let Acquire::Queued(ticket) = this.acquire(key) {
            let mut waiting = CancelOnDrop {
                locks: this,
                key,
                ticket: Some(ticket),
            };
            poll_fn(|cx| match &waiting.ticket {
                Some(t) => t.poll_granted(cx),
                None => Poll::Ready(()),
            })
            .await;
            waiting.ticket = None; // granted: the guard below owns the key now
        }
        KeyGuard {
            locks: Arc::clone(this),
            key: key.to_owned(),
        }
    }
}

/// Gives up a queued ticket if the waiting future is dropped.
struct CancelOnDrop<'a> {
    locks: &'a KeyLocks,
    key: &'a str,
    ticket: Option<Arc<Ticket>>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.locks.cancel(self.key, &ticket);
        }
    }
}

/// Holds a key; releasing it on drop hands it to the next waiter.
#[derive(Debug)]
pub(crate) struct KeyGuard {
    locks: Arc<KeyLocks>,
    key: String,
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.locks.release(&self.key);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn hands_off_in_order_and_cleans_up() {
        let locks = Arc::new(KeyLocks::new(4));
        let first = KeyLocks::lock(&locks, "k").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (locks, order) = (Arc::clone(&locks), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let _g = KeyLocks::lock(&locks, "k").await;
                order.lock().push(i);
                tokio::task::yield_now().await;
            }));
            tokio::task::yield_now().await; // queue in spawn order
        }
        assert_eq!(locks.held(), 1);
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock(), [0, 1, 2, 3, 4]);
        assert_eq!(locks.held(), 0, "idle keys are removed");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_waiter_is_skipped_and_a_granted_one_passes_on() {
        let locks = Arc::new(KeyLocks::new(1));
        let g = KeyLocks::lock(&locks, "k").await;
        // Cancelled while waiting.
        let mut fut = Box::pin(KeyLocks::lock(&locks, "k"));
        assert!(futures_poll(&mut fut).is_none());
        drop(fut);
        drop(g);
        assert_eq!(locks.held(), 0);
        // Granted, then dropped before it was polled again.
        let g = KeyLocks::lock(&locks, "k").await;
        let mut fut = Box::pin(KeyLocks::lock(&locks, "k"));
        assert!(futures_poll(&mut fut).is_none());
        drop(g); // hands the key to `fut`
        assert_eq!(locks.held(), 1);
        drop(fut); // passes it on: nobody waits, so the key is free
        assert_eq!(locks.held(), 0);
        let _g = KeyLocks::lock(&locks, "k").await;
    }

    fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        match std::pin::Pin::new(f).poll(&mut cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }
}
