//! A bounded single-producer single-consumer ring buffer.
//!
//! # Design
//!
//! The ring is Lamport's single-producer single-consumer queue with the cached-index
//! refinement used by rtrb, ringbuf and folly's `ProducerConsumerQueue`:
//!
//! - `tail` is written only by the [`Producer`], `head` only by the [`Consumer`]; each
//!   sits on its own cache line, so the two sides never write the same line.
//! - Each side keeps a private copy of its own index and a *cached* copy of the other
//!   side's. The producer reloads the real `head` only when its cached value says the
//!   ring is full; the consumer reloads `tail` only when its cached value says empty. In a
//!   streaming workload that is once per ring's worth of items, not once per item.
//! - Positions run over `0..2 * capacity` so that `head == tail` means empty and a
//!   distance of `capacity` means full, with any capacity (no power-of-two rounding).
//!
//! The hand-off is one Release/Acquire pair per direction: the producer writes the slot,
//! then stores `tail` with Release; the consumer loads `tail` with Acquire, so the slot
//! write happens before its read. Symmetrically, the consumer's Release store of `head`
//! after reading orders that read before the producer's next write to the slot (the loom
//! model `spsc_wraparound` runs values around the ring several times).
//!
//! Each side's drop sets a flag (Release) that the other side reads: a producer whose
//! consumer is gone gets its value back in [`PushError::Closed`], and a consumer whose
//! producer is gone drains what is left and then gets [`PopError::Closed`].

use std::fmt;
use std::mem::MaybeUninit;

use weft_sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use weft_sync::{Arc, CachePadded, UnsafeCell};

use crate::error::{Error, PopError, PushError};

/// Creates a ring holding at most `capacity` items and returns its two ends.
///
/// # Errors
///
/// [`Error::ZeroCapacity`] for a zero capacity, [`Error::CapacityTooLarge`] above
/// `usize::MAX / 4`.
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = weft_lockfree::spsc::channel(2).unwrap();
/// let t = std::thread::spawn(move || {
///     for i in 0..100u32 {
///         let mut v = i;
///         while let Err(e) = tx.push(v) {
///             v = e.into_inner(); // full: keep the value and retry
///             std::thread::yield_now();
///         }
///     }
/// });
/// let mut sum = 0;
/// let mut seen = 0;
/// while seen < 100 {
///     if let Ok(v) = rx.pop() {
///         sum += v;
///         seen += 1;
///     }
/// }
/// t.join().unwrap();
/// assert_eq!(sum, (0..100).sum::<u32>());
/// ```
pub fn channel<T>(capacity: usize) -> Result<(Producer<T>, Consumer<T>), Error> {
    if capacity == 0 {
        return Err(Error::ZeroCapacity);
    }
    let max = usize::MAX / 4;
    if capacity > max {
        return Err(Error::CapacityTooLarge {
            requested: capacity,
            max,
        });
    }
    let buffer: Box<[UnsafeCell<MaybeUninit<T>>]> = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        producer_alive: AtomicBool::new(true),
        consumer_alive: AtomicBool::new(true),
        buffer,
        cap: capacity,
    });
    Ok((
        Producer {
            shared: Arc::clone(&shared),
            tail: 0,
            cached_head: 0,
        },
        Consumer {
            shared,
            head: 0,
            cached_tail: 0,
        },
    ))
}

/// The state both ends share.
struct Shared<T> {
    /// The consumer's position; written only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// The producer's position; written only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// Cleared (Release) when the producer drops.
    producer_alive: AtomicBool,
    /// Cleared (Release) when the consumer drops.
    consumer_alive: AtomicBool,
    /// The slots; positions `p` and `p + cap` share slot `p % cap`.
    buffer: Box<[UnsafeCell<MaybeUninit<T>>]>,
    /// The capacity.
    cap: usize,
}

impl<T> Shared<T> {
    /// Items between positions `head` and `tail`.
    #[inline]
    fn distance(&self, head: usize, tail: usize) -> usize {
        if tail >= head {
            tail - head
        } else {
            tail + 2 * self.cap - head
        }
    }

    /// The position after `pos`, `n` steps on (`n <= cap`).
    #[inline]
    fn step(&self, pos: usize, n: usize) -> usize {
        let p = pos + n;
        if p >= 2 * self.cap {
            p - 2 * self.cap
        } else {
            p
        }
    }

    /// The buffer index for position `pos`.
    #[inline]
    fn index(&self, pos: usize) -> usize {
        if pos < self.cap { pos } else { pos - self.cap }
    }

    /// The slot for position `pos`.
    #[inline]
    fn slot(&self, pos: usize) -> &UnsafeCell<MaybeUninit<T>> {
        // SAFETY: positions are kept below `2 * cap`, so the index is below
        // `cap == buffer.len()`.
        unsafe { self.buffer.get_unchecked(self.index(pos)) }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Both ends are gone (this is the last `Arc`), so the indices are final.
        let mut head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        while head != tail {
            // SAFETY: positions head..tail hold initialised values nobody else can reach;
            // each is dropped exactly once here.
            self.slot(head)
                .with_mut(|p| unsafe { (*p).assume_init_drop() });
            head = self.step(head, 1);
        }
    }
}

/// The writing end of an SPSC ring, created by [`channel`].
///
/// ```
/// let (mut tx, mut rx) = weft_lockfree::spsc::channel(4).unwrap();
/// tx.push(1).unwrap();
/// assert_eq!(tx.slots(), 3);
/// assert_eq!(rx.pop(), Ok(1));
/// ```
pub struct Producer<T> {
    /// The shared ring.
    shared: Arc<Shared<T>>,
    /// Our own position (the authoritative copy; `shared.tail` mirrors it).
    tail: usize,
    /// The consumer's position as last read; may lag, never leads.
    cached_head: usize,
}

/// The reading end of an SPSC ring, created by [`channel`].
///
/// ```
/// let (tx, mut rx) = weft_lockfree::spsc::channel::<u8>(4).unwrap();
/// assert_eq!(rx.pop(), Err(weft_lockfree::PopError::Empty));
/// drop(tx);
/// assert_eq!(rx.pop(), Err(weft_lockfree::PopError::Closed));
/// ```
pub struct Consumer<T> {
    /// The shared ring.
    shared: Arc<Shared<T>>,
    /// Our own position (the authoritative copy; `shared.head` mirrors it).
    head: usize,
    /// The producer's position as last read; may lag, never leads.
    cached_tail: usize,
}

// SAFETY: a producer moves `T`s into the ring for another thread to take out, so it may
// move to another thread when `T: Send`. It is not `Sync`: its methods take `&mut self`,
// and sharing it would allow two producers.
unsafe impl<T: Send> Send for Producer<T> {}
// SAFETY: as for `Producer`.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T> Producer<T> {
    /// Free slots, refreshing the cached head only if the cache says fewer than `want`.
    #[inline]
    fn free(&mut self, want: usize) -> usize {
        let s = &*self.shared;
        let free = s.cap - s.distance(self.cached_head, self.tail);
        if free >= want {
            return free;
        }
        // Acquire: pairs with the consumer's Release store of `head`, so its reads of the
        // slots it freed happen before our writes to them.
        self.cached_head = s.head.load(Ordering::Acquire);
        s.cap - s.distance(self.cached_head, self.tail)
    }

    /// Pushes `value`; returns it in [`PushError::Full`] when the ring is full, or in
    /// [`PushError::Closed`] when the consumer has been dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, rx) = weft_lockfree::spsc::channel(1).unwrap();
    /// tx.push('a').unwrap();
    /// assert!(tx.push('b').unwrap_err().is_full());
    /// drop(rx);
    /// assert!(tx.push('c').unwrap_err().is_closed());
    /// ```
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), PushError<T>> {
        // Relaxed: a hint. A consumer dropped after this load simply drops the value with
        // the ring, as with any channel whose receiver goes away.
        if !self.shared.consumer_alive.load(Ordering::Relaxed) {
            return Err(PushError::Closed(value));
        }
        if self.free(1) == 0 {
            return Err(PushError::Full(value));
        }
        let s = &*self.shared;
        // SAFETY: the slot at `tail` is free (the consumer has moved past it, seen through
        // the Acquire load in `free`), and only this producer writes slots.
        s.slot(self.tail)
            .with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
        self.tail = s.step(self.tail, 1);
        // Release: publishes the slot write to the consumer's Acquire load of `tail`.
        s.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Pushes items taken from `iter` until the ring is full or the iterator ends, with
    /// one publishing store for the whole batch. Items the ring had no room for stay in
    /// the iterator. Returns how many were pushed (0 also when the consumer is gone).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = weft_lockfree::spsc::channel(3).unwrap();
    /// let mut it = 0..5;
    /// assert_eq!(tx.push_iter(&mut it), 3);
    /// assert_eq!(it.next(), Some(3)); // not taken: still in the iterator
    /// let mut out = Vec::new();
    /// assert_eq!(rx.pop_into(&mut out, 10), 3);
    /// assert_eq!(out, [0, 1, 2]);
    /// ```
    pub fn push_iter<I: Iterator<Item = T>>(&mut self, iter: &mut I) -> usize {
        if !self.shared.consumer_alive.load(Ordering::Relaxed) {
            return 0;
        }
        let free = self.free(usize::MAX);
        let mut batch = Publish {
            shared: &self.shared,
            tail: &mut self.tail,
            written: 0,
        };
        while batch.written < free {
            let Some(value) = iter.next() else { break };
            let pos = batch.shared.step(*batch.tail, batch.written);
            // SAFETY: as in `push`: `pos` is within the free region only we write.
            batch
                .shared
                .slot(pos)
                .with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
            batch.written += 1;
        }
        batch.written
        // `batch` drops here and publishes the writes (also if `iter.next()` panicked).
    }

    /// Copies as many items from the front of `items` as fit, with one publishing store.
    /// Returns how many were pushed; `items[n..]` were not.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = weft_lockfree::spsc::channel(4).unwrap();
    /// assert_eq!(tx.push_slice(&[1, 2, 3, 4, 5]), 4);
    /// let mut buf = [0; 8];
    /// assert_eq!(rx.pop_slice(&mut buf), 4);
    /// assert_eq!(buf[..4], [1, 2, 3, 4]);
    /// ```
    pub fn push_slice(&mut self, items: &[T]) -> usize
    where
        T: Copy,
    {
        if !self.shared.consumer_alive.load(Ordering::Relaxed) {
            return 0;
        }
        let n = self.free(items.len()).min(items.len());
        if n == 0 {
            return 0;
        }
        let s = &*self.shared;
        let start = s.index(self.tail);
        if let Some(base) = UnsafeCell::slice_as_mut_ptr(&s.buffer) {
            // The free region starts at `start` and may wrap to the buffer's front.
            let first = n.min(s.cap - start);
            // SAFETY: `base` covers the `cap` slots (laid out as `[MaybeUninit<T>]`, the
            // same layout as `[T]`); slots `start..start + first` and `0..n - first` are
            // the free region, which only this producer writes, and `items` is a distinct
            // allocation with at least `n` elements. `T: Copy`, so nothing is dropped.
            unsafe {
                let base = base.cast::<T>();
                std::ptr::copy_nonoverlapping(items.as_ptr(), base.add(start), first);
                std::ptr::copy_nonoverlapping(items.as_ptr().add(first), base, n - first);
            }
        } else {
            // The per-slot path (the one loom checks).
            let mut pos = self.tail;
            for &v in &items[..n] {
                // SAFETY: as in `push`: `pos` is within the free region only we write.
                s.slot(pos)
                    .with_mut(|p| unsafe { p.write(MaybeUninit::new(v)) });
                pos = s.step(pos, 1);
            }
        }
        self.tail = s.step(self.tail, n);
        // Release: publishes all `n` slot writes at once.
        s.tail.store(self.tail, Ordering::Release);
        n
    }

    /// Free slots right now (the consumer may free more concurrently).
    pub fn slots(&mut self) -> usize {
        self.free(usize::MAX)
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> usize {
        self.shared.cap
    }

    /// `true` once the [`Consumer`] has been dropped: nothing pushed will be read.
    ///
    /// ```
    /// let (tx, rx) = weft_lockfree::spsc::channel::<u8>(1).unwrap();
    /// assert!(!tx.is_abandoned());
    /// drop(rx);
    /// assert!(tx.is_abandoned());
    /// ```
    pub fn is_abandoned(&self) -> bool {
        !self.shared.consumer_alive.load(Ordering::Acquire)
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        // Release: our last `tail` store happens before a consumer that sees `false`.
        self.shared.producer_alive.store(false, Ordering::Release);
    }
}

impl<T> Consumer<T> {
    /// Items available, refreshing the cached tail only if the cache says fewer than
    /// `want`.
    #[inline]
    fn available(&mut self, want: usize) -> usize {
        let s = &*self.shared;
        let n = s.distance(self.head, self.cached_tail);
        if n >= want {
            return n;
        }
        // Acquire: pairs with the producer's Release store of `tail`, so its slot writes
        // happen before our reads.
        self.cached_tail = s.tail.load(Ordering::Acquire);
        s.distance(self.head, self.cached_tail)
    }

    /// The error for an empty ring: `Closed` if the producer is gone and left nothing.
    #[cold]
    fn empty_error(&mut self) -> PopError {
        // Acquire: pairs with the producer's Release in its drop, so a final push before
        // the drop is visible to the re-check below.
        if self.shared.producer_alive.load(Ordering::Acquire) || self.available(1) > 0 {
            PopError::Empty
        } else {
            PopError::Closed
        }
    }

    /// Pops the oldest item; [`PopError::Empty`] if there is none yet, [`PopError::Closed`]
    /// if there is none and the producer has been dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = weft_lockfree::spsc::channel(2).unwrap();
    /// tx.push(5).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.pop(), Ok(5)); // what was pushed is still delivered
    /// assert_eq!(rx.pop(), Err(weft_lockfree::PopError::Closed));
    /// ```
    #[inline]
    pub fn pop(&mut self) -> Result<T, PopError> {
        let s = &*self.shared;
        if self.head == self.cached_tail {
            // Acquire: pairs with the producer's Release store of `tail`, so its slot
            // writes happen before our reads.
            self.cached_tail = s.tail.load(Ordering::Acquire);
            if self.head == self.cached_tail {
                return Err(self.empty_error());
            }
        }
        // SAFETY: the slot at `head` was written and published by the producer (seen
        // through the Acquire load of `tail`), and only this consumer reads slots.
        let v = s
            .slot(self.head)
            .with(|p| unsafe { p.read().assume_init() });
        self.head = s.step(self.head, 1);
        // Release: our read of the slot happens before the producer reuses it.
        s.head.store(self.head, Ordering::Release);
        Ok(v)
    }

    /// Returns a reference to the oldest item without removing it.
    ///
    /// ```
    /// let (mut tx, mut rx) = weft_lockfree::spsc::channel(2).unwrap();
    /// tx.push(9).unwrap();
    /// assert_eq!(rx.peek(), Some(&9));
    /// assert_eq!(rx.pop(), Ok(9));
    /// ```
    pub fn peek(&mut self) -> Option<&T> {
        if self.available(1) == 0 {
            return None;
        }
        let s = &*self.shared;
        // SAFETY: as in `pop`; the slot stays ours (and initialised) for as long as the
        // returned borrow of `self` lives, since only `pop` moves `head`.
        Some(
            s.slot(self.head)
                .with(|p| unsafe { (*p).assume_init_ref() }),
        )
    }

    /// Pops up to `max` items into `out` (any `Extend`, e.g. a `Vec`), with one store
    /// freeing all their slots. Returns how many were popped.
    ///
    /// ```
    /// let (mut tx, mut rx) = weft_lockfree::spsc::channel(8).unwrap();
    /// tx.push_slice(&[1, 2, 3]);
    /// let mut out = Vec::new();
    /// assert_eq!(rx.pop_into(&mut out, 2), 2);
    /// assert_eq!(out, [1, 2]);
    /// ```
    pub fn pop_into<E: Extend<T>>(&mut self, out: &mut E, max: usize) -> usize {
        let n = self.available(max).min(max);
        if n == 0 {
            return 0;
        }
        let mut drain = Drain {
            shared: &self.shared,
            head: &mut self.head,
            left: n,
        };
        out.extend(&mut drain);
        n - drain.left
    }

    /// Copies up to `buf.len()` items into `buf`, with one store freeing their slots.
    /// Returns how many were copied into `buf[..n]`.
    ///
    /// ```
    /// let (mut tx, mut rx) = weft_lockfree::spsc::channel(4).unwrap();
    /// tx.push_slice(&[7, 8]);
    /// let mut buf = [0u8; 4];
    /// assert_eq!(rx.pop_slice(&mut buf), 2);
    /// assert_eq!(buf, [7, 8, 0, 0]);
    /// ```
    pub fn pop_slice(&mut self, buf: &mut [T]) -> usize
    where
        T: Copy,
    {
        let n = self.available(buf.len()).min(buf.len());
        if n == 0 {
            return 0;
        }
        let s = &*self.shared;
        let start = s.index(self.head);
        if let Some(base) = UnsafeCell::slice_as_mut_ptr(&s.buffer) {
            let first = n.min(s.cap - start);
            // SAFETY: `base` covers the `cap` slots; slots `start..start + first` and
            // `0..n - first` hold values the producer published (Acquire in `available`)
            // and only this consumer reads; `buf` is a distinct allocation with at least
            // `n` elements. `T: Copy`, so reading does not duplicate ownership.
            unsafe {
                let base = base.cast::<T>().cast_const();
                std::ptr::copy_nonoverlapping(base.add(start), buf.as_mut_ptr(), first);
                std::ptr::copy_nonoverlapping(base, buf.as_mut_ptr().add(first), n - first);
            }
        } else {
            let mut pos = self.head;
            for dst in &mut buf[..n] {
                // SAFETY: as in `pop`, for each of the `n` published slots.
                *dst = s.slot(pos).with(|p| unsafe { p.read().assume_init() });
                pos = s.step(pos, 1);
            }
        }
        self.head = s.step(self.head, n);
        // Release: all `n` reads happen before the producer reuses the slots.
        s.head.store(self.head, Ordering::Release);
        n
    }

    /// Items ready to pop right now (the producer may add more concurrently).
    pub fn len(&mut self) -> usize {
        self.available(usize::MAX)
    }

    /// `true` if nothing is ready to pop right now.
    pub fn is_empty(&mut self) -> bool {
        self.available(1) == 0
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> usize {
        self.shared.cap
    }

    /// `true` once the [`Producer`] has been dropped (items it pushed may remain).
    pub fn is_abandoned(&self) -> bool {
        !self.shared.producer_alive.load(Ordering::Acquire)
    }
}

/// Publishes a batch of slot writes with one Release store of `tail` when dropped, so
/// that a panic in the caller's iterator still hands over every value already written.
struct Publish<'a, T> {
    shared: &'a Shared<T>,
    tail: &'a mut usize,
    written: usize,
}

impl<T> Drop for Publish<'_, T> {
    fn drop(&mut self) {
        if self.written > 0 {
            *self.tail = self.shared.step(*self.tail, self.written);
            // Release: publishes all the slot writes of the batch at once.
            self.shared.tail.store(*self.tail, Ordering::Release);
        }
    }
}

/// Moves up to `left` published values out of the ring; when dropped, frees the slots of
/// the values it handed out with one Release store of `head`. Values it did not hand out
/// (the caller's `Extend` stopped early or panicked) stay in the ring.
struct Drain<'a, T> {
    shared: &'a Shared<T>,
    head: &'a mut usize,
    left: usize,
}

impl<T> Iterator for Drain<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.left == 0 {
            return None;
        }
        let pos = *self.head;
        // SAFETY: as in `pop`: the slot was published by the producer (Acquire load in
        // `available`) and is read once, since `head` moves past it right away.
        let v = self
            .shared
            .slot(pos)
            .with(|p| unsafe { p.read().assume_init() });
        *self.head = self.shared.step(pos, 1);
        self.left -= 1;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> Drop for Drain<'_, T> {
    fn drop(&mut self) {
        // Release: our reads of the drained slots happen before the producer reuses them.
        self.shared.head.store(*self.head, Ordering::Release);
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // Release: pairs with the producer's Acquire in `is_abandoned`.
        self.shared.consumer_alive.store(false, Ordering::Release);
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.shared.cap)
            .field("abandoned", &self.is_abandoned())
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.shared.cap)
            .field("abandoned", &self.is_abandoned())
            .finish_non_exhaustive()
    }
}
