//! The admission gate: the queue bound, the "is there work" count, and the shutdown
//! switch in one atomic word.
//!
//! # Design
//!
//! The word counts jobs admitted and not yet started; its top bit says the pool has
//! stopped admitting. A submission reserves its place with one CAS that fails if the bit
//! is set or the count is at capacity; a shutdown sets the bit with one `fetch_or`. The
//! two are therefore ordered: a reservation either precedes the shutdown (it is counted,
//! so workers keep running until its job has been taken) or follows it (it is refused and
//! the job handed back). Checking a separate state flag before reserving would leave a
//! window, between the check and the reservation, in which the last worker could see "no
//! work, shutting down" and exit, and the graceful shutdown report completion while an
//! accepted job had not run. The loom model `shutdown_drains_exactly_the_accepted_jobs`
//! checks the ordering.

use weft_sync::CachePadded;
use weft_sync::atomic::{AtomicUsize, Ordering};

/// The top bit: no more admissions.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// Why a reservation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shut {
    /// At capacity.
    Full,
    /// The gate is closed.
    Closed,
}

/// Jobs admitted and not yet started, and whether admission is closed.
#[derive(Debug)]
pub(crate) struct Gate {
    word: CachePadded<AtomicUsize>,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Gate {
            word: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// Reserves a place for one job if the gate is open and fewer than `cap` jobs wait.
    pub(crate) fn reserve(&self, cap: usize) -> Result<(), Shut> {
        // One `fetch_add`, undone on failure, rather than a CAS loop: submitters and
        // workers update this word constantly, and a contended CAS retries. The
        // transient overshoot of a failed reservation is harmless: it can only make a
        // concurrent reservation see "full" at the boundary, or a worker stay a moment
        // longer. SeqCst: this increment is the submitter's half of the sleep protocol.
        let was = self.word.fetch_add(1, Ordering::SeqCst);
        if was & CLOSED == 0 && was < cap {
            return Ok(());
        }
        self.word.fetch_sub(1, Ordering::SeqCst);
        Err(if was & CLOSED != 0 {
            Shut::Closed
        } else {
            Shut::Full
        })
    }

    /// Counts one job outside the bound and regardless of the gate (the tickets of a
    /// scope, whose owner waits for them anyway).
    pub(crate) fn force(&self) {
        self.word.fetch_add(1, Ordering::SeqCst);
    }

    /// `n` jobs were taken from the queue (to run or to discard); returns how many are
    /// left.
    pub(crate) fn take(&self, n: usize) -> usize {
        (self.word.fetch_sub(n, Ordering::SeqCst) - n) & !CLOSED
    }

    /// Stops admissions; `true` if this call closed the gate.
    pub(crate) fn close(&self) -> bool {
        self.word.fetch_or(CLOSED, Ordering::SeqCst) & CLOSED == 0
    }

    /// Jobs admitted and not yet taken.
    pub(crate) fn count(&self) -> usize {
        self.word.load(Ordering::SeqCst) & !CLOSED
    }

    /// A cheap hint of [`count`](Self::count)` > 0` (no ordering; for spinning).
    pub(crate) fn hint(&self) -> bool {
        self.word.load(Ordering::Relaxed) & !CLOSED > 0
    }

    /// `true` once the gate is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.word.load(Ordering::SeqCst) & CLOSED != 0
    }

    /// `true` when the gate is closed and every admitted job was taken: a worker may
    /// leave.
    pub(crate) fn drained(&self) -> bool {
        self.word.load(Ordering::SeqCst) == CLOSED
    }
}
