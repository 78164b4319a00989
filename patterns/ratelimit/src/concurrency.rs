//! Limiting calls in flight (a counting semaphore without waiting).

use std::fmt;

use weft_sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use weft_sync::{Arc, CachePadded};

use crate::Error;

/// At most `max` calls in flight: [`try_acquire`](Self::try_acquire) hands out a
/// [`Permit`] that frees its place when dropped, or refuses at once. Pairs with a rate
/// limiter: the rate bounds how often calls start, this bounds how many run at once.
///
/// ```
/// use weft_ratelimit::ConcurrencyLimiter;
/// let limit = ConcurrencyLimiter::new(2)?;
/// let a = limit.try_acquire().unwrap();
/// let _b = limit.try_acquire().unwrap();
/// assert!(limit.try_acquire().is_none()); // two in flight
/// drop(a);
/// assert!(limit.try_acquire().is_some());
/// # Ok::<(), weft_ratelimit::Error>(())
/// ```
pub struct ConcurrencyLimiter {
    /// Calls in flight.
    in_flight: CachePadded<AtomicUsize>,
    /// The limit.
    max: usize,
    /// Acquisitions refused.
    rejected: AtomicU64,
}

impl ConcurrencyLimiter {
    /// A limiter allowing `max` calls in flight.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroConcurrency`] for zero.
    pub fn new(max: usize) -> Result<Self, Error> {
        if max == 0 {
            return Err(Error::ZeroConcurrency);
        }
        Ok(ConcurrencyLimiter {
            in_flight: CachePadded::new(AtomicUsize::new(0)),
            max,
            rejected: AtomicU64::new(0),
        })
    }

    /// Takes a place if one is free.
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        self.take().then_some(Permit { limiter: self })
    }

    /// Takes a place if one is free, returning a permit that owns a handle to the
    /// limiter (to move into a spawned task).
    ///
    /// ```
    /// use weft_ratelimit::ConcurrencyLimiter;
    /// use weft_sync::Arc;
    /// let limit = Arc::new(ConcurrencyLimiter::new(1)?);
    /// let permit = ConcurrencyLimiter::try_acquire_owned(&limit).unwrap();
    /// std::thread::spawn(move || drop(permit)).join().unwrap();
    /// assert_eq!(limit.in_flight(), 0);
    /// # Ok::<(), weft_ratelimit::Error>(())
    /// ```
    pub fn try_acquire_owned(this: &Arc<Self>) -> Option<OwnedPermit> {
        this.take().then(|| OwnedPermit {
            limiter: Arc::clone(this),
        })
    }

    fn take(&self) -> bool {
        // Relaxed: the count is the only state and guards no other memory; the RMW's
        // modification order is what keeps it at most `max`.
        let ok = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !ok {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Acquisitions refused since creation.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for ConcurrencyLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimiter")
            .field("in_flight", &self.in_flight())
            .field("max", &self.max)
            .finish()
    }
}

/// A place in a [`ConcurrencyLimiter`], freed on drop.
#[derive(Debug)]
#[must_use = "the place is freed as soon as the permit is dropped"]
pub struct Permit<'a> {
    limiter: &'a ConcurrencyLimiter,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.limiter.release();
    }
}

/// A place in a shared [`ConcurrencyLimiter`], freed on drop; `'static`.
#[derive(Debug)]
#[must_use = "the place is freed as soon as the permit is dropped"]
pub struct OwnedPermit {
    limiter: Arc<ConcurrencyLimiter>,
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        self.limiter.release();
    }
}
