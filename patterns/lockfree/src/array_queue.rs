//! A bounded multi-producer multi-consumer queue.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>), in the
//! form crossbeam-queue's `ArrayQueue` gives it: positions carry a lap number so that any
//! capacity (not only powers of two) works without a division on the hot path.
//!
//! # Design
//!
//! A position (`head`, `tail`, a slot's `stamp`) packs two numbers: the low bits are an
//! index into the buffer, the high bits a *lap* counter, incremented each time the index
//! wraps. `one_lap` is the smallest power of two greater than the capacity, so the index
//! always fits in the bits below it.
//!
//! Each slot carries a stamp that says whose turn it is:
//!
//! - `stamp == pos`: the slot is empty and waits for the producer that claims tail `pos`;
//! - `stamp == pos + 1`: the slot holds the value pushed at `pos` and waits for the
//!   consumer that claims head `pos`; popping sets it to `pos + one_lap`, which is the
//!   empty stamp for the same index one lap later.
//!
//! A producer reads `tail`, checks the slot's stamp, and claims the position with a CAS on
//! `tail`; only then does it write the value and publish it with a `Release` store of the
//! stamp. A consumer mirrors this on `head`. Because the stamp, not the index, decides
//! who may touch a slot, a producer cannot overwrite a value that a slow consumer has
//! claimed but not yet read (the race a plain ring buffer with two indices has under
//! multiple consumers): the slot's stamp still says "full" until that consumer is done.
//!
//! Full and empty are detected when a slot's stamp is one lap behind (full) or equal to
//! the head (empty); the `SeqCst` fence before re-reading the other index orders that
//! check against the other side's CAS so that "full" and "empty" are never reported while
//! the queue is neither (the loom models `array_queue_full_boundary` and
//! `array_queue_empty_boundary` check this).

use std::fmt;
use std::mem::MaybeUninit;

use weft_sync::atomic::{self, AtomicUsize, Ordering};
use weft_sync::{Backoff, CachePadded, UnsafeCell};

use crate::error::{Error, PushError};

/// One buffer slot: a stamp that says whose turn it is and the value storage.
struct Slot<T> {
    /// The position this slot is waiting for (see the module docs).
    stamp: AtomicUsize,
    /// The value, initialised exactly when `stamp == pos + 1` for the current lap.
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded multi-producer multi-consumer queue (Vyukov's algorithm).
///
/// Every operation is lock-free. `push` hands the value back in [`PushError::Full`] when
/// the queue is at capacity; [`force_push`](ArrayQueue::force_push) instead displaces the
/// oldest item and returns it. [`push_batch`](ArrayQueue::push_batch) and
/// [`pop_batch`](ArrayQueue::pop_batch) claim several slots with a single CAS.
///
/// # Examples
///
/// ```
/// use weft_lockfree::ArrayQueue;
///
/// let q = ArrayQueue::new(2).unwrap();
/// assert!(q.push('a').is_ok());
/// assert!(q.push('b').is_ok());
/// assert_eq!(q.push('c').unwrap_err().into_inner(), 'c'); // full: the value comes back
/// assert_eq!(q.pop(), Some('a'));
/// ```
pub struct ArrayQueue<T> {
    /// The next position to pop. Written by consumers, read by everyone: own cache line.
    head: CachePadded<AtomicUsize>,
    /// The next position to push. Written by producers, read by everyone: own cache line.
    tail: CachePadded<AtomicUsize>,
    /// The slots; `buffer.len() == cap`.
    buffer: Box<[Slot<T>]>,
    /// The capacity: how many items the queue holds at most.
    cap: usize,
    /// `(cap + 1).next_power_of_two()`: adding it to a position moves one lap ahead.
    one_lap: usize,
}

// SAFETY: values of type `T` are moved between threads through the queue (so `T: Send` is
// required) but never shared: each value is accessed by exactly one thread at a time,
// the one whose position matches the slot's stamp. Hence `ArrayQueue<T>` is `Send` and
// `Sync` whenever `T: Send`, exactly like `crossbeam_queue::ArrayQueue`.
unsafe impl<T: Send> Sync for ArrayQueue<T> {}
// SAFETY: see above; moving the queue moves the values it owns.
unsafe impl<T: Send> Send for ArrayQueue<T> {}

impl<T> ArrayQueue<T> {
    /// The largest capacity a queue can have.
    pub const MAX_CAPACITY: usize = usize::MAX / 4;

    /// Creates a queue holding at most `cap` items.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroCapacity`] if `cap == 0`, [`Error::CapacityTooLarge`] above
    /// [`ArrayQueue::MAX_CAPACITY`]. (Allocation failure aborts, as for `Vec`.)
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_lockfree::{ArrayQueue, Error};
    /// assert_eq!(ArrayQueue::<u8>::new(0).unwrap_err(), Error::ZeroCapacity);
    /// assert_eq!(ArrayQueue::<u8>::new(3).unwrap().capacity(), 3);
    /// ```
    pub fn new(cap: usize) -> Result<Self, Error> {
        if cap == 0 {
            return Err(Error::ZeroCapacity);
        }
        if cap > Self::MAX_CAPACITY {
            return Err(Error::CapacityTooLarge {
                requested: cap,
                max: Self::MAX_CAPACITY,
            });
        }
        // Slot `i` starts empty and waits for position `i` of lap 0.
        let buffer: Box<[Slot<T>]> = (0..cap)
            .map(|i| Slot {
                stamp: AtomicUsize::new(i),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ok(ArrayQueue {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            buffer,
            cap,
            one_lap: (cap + 1).next_power_of_two(),
        })
    }

    /// The position `k` steps after `pos` (`k <= cap`), carrying into the lap bits.
    #[inline]
    fn advance(&self, pos: usize, k: usize) -> usize {
        let index = pos & (self.one_lap - 1);
        let lap = pos & !(self.one_lap - 1);
        let i = index + k;
        if i < self.cap {
            pos + k
        } else {
            lap.wrapping_add(self.one_lap) + (i - self.cap)
        }
    }

    /// The slot for position `pos`.
    #[inline]
    fn slot(&self, pos: usize) -> &Slot<T> {
        let index = pos & (self.one_lap - 1);
        debug_assert!(index < self.cap);
        // SAFETY: every position the queue produces has an index below `cap` (see
        // `advance`), and `buffer.len() == cap`.
        unsafe { self.buffer.get_unchecked(index) }
    }

    /// Pushes `value`, or returns it in [`PushError::Full`] if the queue is full.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = weft_lockfree::ArrayQueue::new(1).unwrap();
    /// q.push(10).unwrap();
    /// assert!(q.push(20).unwrap_err().is_full());
    /// ```
    pub fn push(&self, value: T) -> Result<(), PushError<T>> {
        self.push_or_else(value, |v, tail, _, _| {
            // The slot is one lap behind: the queue is full unless a consumer has moved
            // `head` since. Relaxed suffices: the fence in `push_or_else` orders this load
            // after our stamp load, and a stale head only makes us retry.
            let head = self.head.load(Ordering::Relaxed);
            if head.wrapping_add(self.one_lap) == tail {
                Err(PushError::Full(v))
            } else {
                Ok(v)
            }
        })
    }

    /// Pushes `value`; if the queue is full, displaces the oldest item and returns it.
    ///
    /// Use it for "keep the latest N" buffers: nothing is lost silently, the displaced item
    /// is handed back to the caller.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = weft_lockfree::ArrayQueue::new(2).unwrap();
    /// assert_eq!(q.force_push(1), None);
    /// assert_eq!(q.force_push(2), None);
    /// assert_eq!(q.force_push(3), Some(1));
    /// assert_eq!(q.pop(), Some(2));
    /// ```
    pub fn force_push(&self, value: T) -> Option<T> {
        let r = self.push_or_else(value, |v, tail, new_tail, slot| {
            let head = tail.wrapping_sub(self.one_lap);
            let new_head = new_tail.wrapping_sub(self.one_lap);
            // The queue is full and the oldest item sits in `slot`. Claim it by moving the
            // head past it, exactly as a consumer would; the CAS fails if a consumer popped
            // it first, and then we retry as a normal push.
            if self
                .head
                .compare_exchange_weak(head, new_head, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                // We own the slot as both its consumer (head moved) and its producer: move
                // the tail past it too, swap the value, and publish the new one.
                self.tail.store(new_tail, Ordering::SeqCst);
                // SAFETY: the slot held the initialised value pushed at `head` (its stamp
                // said full), and the head CAS made us its only consumer; no producer can
                // touch it until the stamp below says empty.
                let old = slot.value.with_mut(|p| unsafe {
                    std::ptr::replace(p, MaybeUninit::new(v)).assume_init()
                });
                // Release: publishes the new value to the consumer that acquires the stamp.
                slot.stamp.store(tail + 1, Ordering::Release);
                Err(PushError::Full(old))
            } else {
                Ok(v)
            }
        });
        r.err().map(PushError::into_inner)
    }

    /// The push loop shared by [`push`](Self::push) and [`force_push`](Self::force_push):
    /// `on_full(value, tail, new_tail, slot)` decides what to do when the slot at `tail`
    /// is still full from the previous lap: `Err` ends the push, `Ok(value)` retries.
    #[inline]
    fn push_or_else<F>(&self, mut value: T, on_full: F) -> Result<(), PushError<T>>
    where
        F: Fn(T, usize, usize, &Slot<T>) -> Result<T, PushError<T>>,
    {
        let backoff = Backoff::new();
        // Relaxed: the tail is only a guess here; the stamp's Acquire load below is what
        // synchronises with the consumer that emptied the slot.
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            let new_tail = self.advance(tail, 1);
            let slot = self.slot(tail);
            // Acquire: pairs with the consumer's Release store of the empty stamp, so its
            // read of the old value happens before our write below.
            let stamp = slot.stamp.load(Ordering::Acquire);

            if tail == stamp {
                // The slot is empty for this lap: try to claim position `tail`.
                match self.tail.compare_exchange_weak(
                    tail,
                    new_tail,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS made us the only producer of this position and
                        // the stamp says no consumer holds the slot, so the access is
                        // exclusive; the slot is uninitialised (popped or never written).
                        slot.value
                            .with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
                        // Release: publishes the value to the consumer that acquires it.
                        slot.stamp.store(tail + 1, Ordering::Release);
                        return Ok(());
                    }
                    Err(t) => {
                        tail = t;
                        backoff.spin();
                    }
                }
            } else if stamp.wrapping_add(self.one_lap) == tail + 1 {
                // The slot still holds the value pushed one lap ago.
                atomic::full_fence();
                value = on_full(value, tail, new_tail, slot)?;
                backoff.spin();
                tail = self.tail.load(Ordering::Relaxed);
            } else {
                // Another producer claimed `tail` and has not published yet, or our tail
                // is stale: wait for it to move.
                backoff.snooze();
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Pops the oldest item, or `None` if the queue is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = weft_lockfree::ArrayQueue::new(4).unwrap();
    /// assert_eq!(q.pop(), None::<u8>);
    /// q.push(7).unwrap();
    /// assert_eq!(q.pop(), Some(7));
    /// ```
    pub fn pop(&self) -> Option<T> {
        let backoff = Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(head);
            // Acquire: pairs with the producer's Release store of the full stamp, so its
            // write of the value happens before our read.
            let stamp = slot.stamp.load(Ordering::Acquire);

            if head + 1 == stamp {
                let new = self.advance(head, 1);
                match self.head.compare_exchange_weak(
                    head,
                    new,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS made us the only consumer of position `head`, and
                        // the stamp said its value is initialised and published.
                        let v = slot.value.with(|p| unsafe { p.read().assume_init() });
                        // Release: our read happens before the next producer's write.
                        slot.stamp
                            .store(head.wrapping_add(self.one_lap), Ordering::Release);
                        return Some(v);
                    }
                    Err(h) => {
                        head = h;
                        backoff.spin();
                    }
                }
            } else if stamp == head {
                // The slot is empty for this lap: the queue is empty unless a producer has
                // moved `tail` since. The fence orders our stamp load before the tail load.
                atomic::full_fence();
                let tail = self.tail.load(Ordering::Relaxed);
                if tail == head {
                    return None;
                }
                backoff.spin();
                head = self.head.load(Ordering::Relaxed);
            } else {
                // A producer claimed this position but has not published yet, or our head
                // is stale.
                backoff.snooze();
                head = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Pushes items from the front of `items` with one CAS on the tail, as many as fit
    /// now; the pushed items are removed from `items` and the rest stay there, in order.
    /// Returns how many were pushed (0 when the queue is full).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = weft_lockfree::ArrayQueue::new(3).unwrap();
    /// let mut items = vec![1, 2, 3, 4];
    /// assert_eq!(q.push_batch(&mut items), 3);
    /// assert_eq!(items, [4]); // did not fit: still the caller's
    /// ```
    pub fn push_batch(&self, items: &mut Vec<T>) -> usize {
        if items.is_empty() {
            return 0;
        }
        let want = items.len().min(self.cap);
        let backoff = Backoff::new();
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            // Count the empty slots from `tail` on, in order.
            let mut n = 0;
            while n < want {
                let pos = self.advance(tail, n);
                // Acquire: as in `push`, for each slot we may write.
                if self.slot(pos).stamp.load(Ordering::Acquire) != pos {
                    break;
                }
                n += 1;
            }
            if n == 0 {
                let stamp = self.slot(tail).stamp.load(Ordering::Acquire);
                if stamp.wrapping_add(self.one_lap) == tail + 1 {
                    atomic::full_fence();
                    let head = self.head.load(Ordering::Relaxed);
                    if head.wrapping_add(self.one_lap) == tail {
                        return 0;
                    }
                    backoff.spin();
                } else {
                    backoff.snooze();
                }
                tail = self.tail.load(Ordering::Relaxed);
                continue;
            }
            let new_tail = self.advance(tail, n);
            match self.tail.compare_exchange_weak(
                tail,
                new_tail,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // The CAS claimed positions tail..tail+n; each slot was seen empty for
                    // its lap, and no consumer can claim a position the tail has not passed.
                    for (i, value) in items.drain(..n).enumerate() {
                        let pos = self.advance(tail, i);
                        let slot = self.slot(pos);
                        // SAFETY: as in `push`: we are the only producer of `pos` and the
                        // slot is empty.
                        slot.value
                            .with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
                        slot.stamp.store(pos + 1, Ordering::Release);
                    }
                    return n;
                }
                Err(t) => {
                    tail = t;
                    backoff.spin();
                }
            }
        }
    }

    /// Pops up to `max` of the oldest items with one CAS on the head, appending them to
    /// `out` in queue order. Returns how many were popped (0 when empty).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = weft_lockfree::ArrayQueue::new(8).unwrap();
    /// for i in 0..5 {
    ///     q.push(i).unwrap();
    /// }
    /// let mut out = Vec::new();
    /// assert_eq!(q.pop_batch(&mut out, 3), 3);
    /// assert_eq!(out, [0, 1, 2]);
    /// ```
    pub fn pop_batch(&self, out: &mut Vec<T>, max: usize) -> usize {
        let want = max.min(self.cap);
        if want == 0 {
            return 0;
        }
        let backoff = Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let mut n = 0;
            while n < want {
                let pos = self.advance(head, n);
                // Acquire: as in `pop`, for each value we may read.
                if self.slot(pos).stamp.load(Ordering::Acquire) != pos + 1 {
                    break;
                }
                n += 1;
            }
            if n == 0 {
                let stamp = self.slot(head).stamp.load(Ordering::Acquire);
                if stamp == head {
                    atomic::full_fence();
                    if self.tail.load(Ordering::Relaxed) == head {
                        return 0;
                    }
                    backoff.spin();
                } else {
                    backoff.snooze();
                }
                head = self.head.load(Ordering::Relaxed);
                continue;
            }
            let new_head = self.advance(head, n);
            match self.head.compare_exchange_weak(
                head,
                new_head,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // The CAS claimed positions head..head+n; each slot was seen full for
                    // its lap, and only the consumer of a position may empty its slot.
                    out.reserve(n);
                    for i in 0..n {
                        let pos = self.advance(head, i);
                        let slot = self.slot(pos);
                        // SAFETY: as in `pop`: we are the only consumer of `pos` and the
                        // value is initialised and published.
                        let v = slot.value.with(|p| unsafe { p.read().assume_init() });
                        slot.stamp
                            .store(pos.wrapping_add(self.one_lap), Ordering::Release);
                        out.push(v);
                    }
                    return n;
                }
                Err(h) => {
                    head = h;
                    backoff.spin();
                }
            }
        }
    }

    /// The most items the queue can hold.
    ///
    /// ```
    /// assert_eq!(weft_lockfree::ArrayQueue::<()>::new(5).unwrap().capacity(), 5);
    /// ```
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The number of items in the queue: exact when no other thread is using the queue, a
    /// consistent snapshot of some moment during the call otherwise.
    ///
    /// ```
    /// let q = weft_lockfree::ArrayQueue::new(5).unwrap();
    /// q.push(()).unwrap();
    /// assert_eq!(q.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        loop {
            // SeqCst loads, re-reading the tail: the head and tail read are from one moment.
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) == tail {
                return self.len_between(head, tail);
            }
        }
    }

    /// The number of items between positions `head` and `tail`.
    fn len_between(&self, head: usize, tail: usize) -> usize {
        let hix = head & (self.one_lap - 1);
        let tix = tail & (self.one_lap - 1);
        if hix < tix {
            tix - hix
        } else if hix > tix {
            self.cap - hix + tix
        } else if tail == head {
            0
        } else {
            self.cap
        }
    }

    /// `true` if the queue holds no items (a snapshot, like [`len`](Self::len)).
    ///
    /// ```
    /// assert!(weft_lockfree::ArrayQueue::<u8>::new(1).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        let head = self.head.load(Ordering::SeqCst);
        let tail = self.tail.load(Ordering::SeqCst);
        // The queue is empty when head and tail are the same position; a concurrent push
        // makes this answer stale but never wrong for the moment it was taken.
        tail == head
    }

    /// `true` if the queue is at capacity (a snapshot, like [`len`](Self::len)).
    ///
    /// ```
    /// let q = weft_lockfree::ArrayQueue::new(1).unwrap();
    /// q.push(1).unwrap();
    /// assert!(q.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        let tail = self.tail.load(Ordering::SeqCst);
        let head = self.head.load(Ordering::SeqCst);
        // Full when the head is exactly one lap behind the tail.
        head.wrapping_add(self.one_lap) == tail
    }
}

impl<T> Drop for ArrayQueue<T> {
    fn drop(&mut self) {
        if !std::mem::needs_drop::<T>() {
            return;
        }
        // `&mut self`: no other thread can hold the queue, Relaxed loads see the final
        // values (the thread that handed us the queue synchronised with us).
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        let len = self.len_between(head, tail);
        for i in 0..len {
            let slot = self.slot(self.advance(head, i));
            // SAFETY: positions head..tail hold initialised values that nobody else can
            // reach any more; each is dropped exactly once here.
            slot.value.with_mut(|p| unsafe { (*p).assume_init_drop() });
        }
    }
}

impl<T> fmt::Debug for ArrayQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayQueue")
            .field("len", &self.len())
            .field("capacity", &self.cap)
            .finish_non_exhaustive()
    }
}
