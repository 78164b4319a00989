//! Sliding windows of call outcomes, lock-free and O(1) per call.
//!
//! # Design
//!
//! **Count-based** (the last `size` calls): a ring of one-byte outcome slots and one
//! packed word of totals. Recording a call takes the next position with `fetch_add`,
//! `swap`s its outcome into the slot, and adds the difference between the new outcome
//! and the evicted one to the totals. In steady state the evicted outcome usually equals
//! the new one and the totals are not touched at all. Because each slot is swapped, every
//! outcome is removed from the totals exactly once, by the call that evicts it: the
//! totals always equal the sum over the slots once in-flight records finish (the loom
//! model `window_conserves_calls` checks it). The totals' fields carry a bias so
//! that a transiently negative field (an eviction subtracted before the matching insert
//! was added, under concurrency) never borrows from its neighbour.
//!
//! **Time-based** (the last `buckets × bucket_len`): a ring of buckets, each three
//! 64-bit counters plus an epoch word (which `bucket_len`-long interval it holds). The
//! first call of a new interval rotates the bucket: it locks the epoch word, takes the
//! old counts out of the totals, and publishes the new epoch; callers of that interval
//! that arrive meanwhile wait for the rotation (once per bucket per interval). A
//! separately tracked head epoch makes the caller that moves time forward also clear the
//! buckets of the intervals nobody called in, so the totals never include expired calls.

use weft_sync::CachePadded;
use weft_sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// An outcome as the windows store it.
pub(crate) const PRESENT: u8 = 0b100;
/// The call failed.
pub(crate) const FAILED: u8 = 0b001;
/// The call was slow.
pub(crate) const SLOW: u8 = 0b010;

/// Bits per field of a packed totals word.
const FIELD: u32 = 21;
/// Mask of one field.
const MASK: u64 = (1 << FIELD) - 1;
/// Bias added to each field of the count window's totals (see the module docs).
const BIAS: u64 = 1 << (FIELD - 2);
/// The largest count-window size the packed totals support.
pub(crate) const MAX_COUNT_WINDOW: u32 = (BIAS - 1) as u32;

/// Totals of a window: calls, failed calls, slow calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

impl Totals {
    /// Failure rate in `[0, 1]` (0 with no calls).
    pub(crate) fn failure_rate(&self) -> f64 {
        rate(self.failures, self.calls)
    }

    /// Slow-call rate in `[0, 1]`.
    pub(crate) fn slow_rate(&self) -> f64 {
        rate(self.slow, self.calls)
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The packed (calls, failures, slow) contribution of one outcome code.
#[inline]
fn weight(code: u8) -> u64 {
    u64::from(code & PRESENT != 0)
        | (u64::from(code & FAILED != 0) << FIELD)
        | (u64::from(code & SLOW != 0) << (2 * FIELD))
}

/// `value` with each field minus `bias`, as totals.
fn unpack(value: u64, bias: u64) -> Totals {
    let field = |i: u32| ((value >> (i * FIELD)) & MASK).saturating_sub(bias);
    Totals {
        calls: field(0),
        failures: field(1),
        slow: field(2),
    }
}

/// All three fields set to `bias`.
const fn biased(bias: u64) -> u64 {
    bias | (bias << FIELD) | (bias << (2 * FIELD))
}

/// `x mod d` for `x: u32` by Lemire's multiply-shift (no division on the hot path).
#[derive(Debug, Clone, Copy)]
struct FastMod {
    d: u64,
    m: u64,
}

impl FastMod {
    fn new(d: u32) -> Self {
        let d = u64::from(d.max(1));
        FastMod {
            d,
            m: (u64::MAX / d).wrapping_add(1),
        }
    }

    #[inline]
    fn reduce(&self, x: u32) -> usize {
        let low = self.m.wrapping_mul(u64::from(x));
        ((u128::from(low) * u128::from(self.d)) >> 64) as usize
    }
}

/// The last `size` calls.
#[derive(Debug)]
pub(crate) struct CountWindow {
    /// The next position (wraps at 2³², where one position's order is off by one lap).
    next: CachePadded<AtomicU64>,
    /// The packed, biased totals.
    totals: CachePadded<AtomicU64>,
    /// One outcome code per position; 0 = empty.
    slots: Box<[AtomicU8]>,
    /// `position mod size`.
    modulo: FastMod,
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        CountWindow {
            next: CachePadded::new(AtomicU64::new(0)),
            totals: CachePadded::new(AtomicU64::new(biased(BIAS))),
            slots: (0..size.max(1)).map(|_| AtomicU8::new(0)).collect(),
            modulo: FastMod::new(size),
        }
    }

    /// Records one outcome code (`PRESENT` plus flags); returns whether the totals
    /// changed (they do not when the evicted outcome equals the new one, the steady state
    /// of a healthy dependency, and then the rates cannot have changed either).
    #[inline]
    pub(crate) fn record(&self, code: u8) -> bool {
        // Relaxed throughout: the window's atomics publish no other memory, and each RMW's
        // modification order is what makes every slot value subtracted exactly once.
        let position = self.next.fetch_add(1, Ordering::Relaxed) as u32;
        let slot = &self.slots[self.modulo.reduce(position)];
        let old = slot.swap(code, Ordering::Relaxed);
        if old == code {
            return false;
        }
        let delta = weight(code).wrapping_sub(weight(old));
        self.totals.fetch_add(delta, Ordering::Relaxed);
        true
    }

    pub(crate) fn totals(&self) -> Totals {
        unpack(self.totals.load(Ordering::Relaxed), BIAS)
    }

    /// Empties the window (on entering the closed state). A call admitted in the
    /// previous closed period that finishes exactly while the reset runs can land in the
    /// new window, skewing its totals by that one call until the next reset; the
    /// generation check before recording makes this a narrow race, not a rule.
    pub(crate) fn reset(&self) {
        for slot in self.slots.iter() {
            slot.store(0, Ordering::Relaxed);
        }
        self.next.store(0, Ordering::Relaxed);
        self.totals.store(biased(BIAS), Ordering::Relaxed);
    }
}

/// The epoch word's lock bit: set while a bucket is being rotated.
const ROTATING: u64 = 1 << 63;

/// Three counters: calls, failures, slow calls.
#[derive(Debug, Default)]
struct Counts {
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

impl Counts {
    /// Adds one outcome.
    #[inline]
    fn add(&self, code: u8) {
        // Relaxed: statistics; the bucket epoch's Release/Acquire orders rotations.
        self.calls.fetch_add(1, Ordering::Relaxed);
        if code & FAILED != 0 {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        if code & SLOW != 0 {
            self.slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes all three counts, leaving zeros.
    fn take(&self) -> Totals {
        Totals {
            calls: self.calls.swap(0, Ordering::Relaxed),
            failures: self.failures.swap(0, Ordering::Relaxed),
            slow: self.slow.swap(0, Ordering::Relaxed),
        }
    }

    /// Subtracts `t` (wrapping: a total may be transiently "negative" while a rotation's
    /// subtraction races a record's addition; reads saturate such a value to zero).
    fn subtract(&self, t: Totals) {
        self.calls.fetch_sub(t.calls, Ordering::Relaxed);
        self.failures.fetch_sub(t.failures, Ordering::Relaxed);
        self.slow.fetch_sub(t.slow, Ordering::Relaxed);
    }

    fn read(&self) -> Totals {
        // A wrapped (transiently negative) value reads as zero.
        let get = |a: &AtomicU64| {
            let v = a.load(Ordering::Relaxed);
            if v > u64::MAX / 2 { 0 } else { v }
        };
        Totals {
            calls: get(&self.calls),
            failures: get(&self.failures),
            slow: get(&self.slow),
        }
    }
}

/// A bucket of the time window.
#[derive(Debug)]
struct Bucket {
    /// The interval number this bucket holds (`ROTATING` set while it changes).
    epoch: AtomicU64,
    /// The interval's counts: only ever added to, or taken whole by a rotation.
    counts: Counts,
}

/// The calls of the last `buckets × bucket_len` nanoseconds. Unlike the count window, its
/// counters are full 64-bit words each, so no call rate can overflow them.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    /// The latest interval number seen.
    head: CachePadded<AtomicU64>,
    /// Totals over the live buckets.
    totals: CachePadded<Counts>,
    buckets: Box<[Bucket]>,
    /// Nanoseconds per bucket.
    bucket_len: u64,
}

impl TimeWindow {
    pub(crate) fn new(buckets: u32, bucket_len_ns: u64) -> Self {
        TimeWindow {
            head: CachePadded::new(AtomicU64::new(0)),
            totals: CachePadded::new(Counts::default()),
            buckets: (0..buckets.max(1))
                .map(|_| Bucket {
                    epoch: AtomicU64::new(0),
                    counts: Counts::default(),
                })
                .collect(),
            bucket_len: bucket_len_ns.max(1),
        }
    }

    /// Records an outcome at `now` (nanoseconds of the breaker's clock).
    pub(crate) fn record(&self, code: u8, now: u64) {
        let epoch = now / self.bucket_len;
        self.advance(epoch);
        let bucket = &self.buckets[(epoch % self.buckets.len() as u64) as usize];
        loop {
            // Acquire: pairs with the rotator's Release store of the epoch, so its reset
            // of the counts is visible before we add to them.
            let current = bucket.epoch.load(Ordering::Acquire);
            if current == epoch {
                bucket.counts.add(code);
                self.totals.add(code);
                return;
            }
            if current & ROTATING != 0 {
                weft_sync::thread::yield_now();
                continue;
            }
            if current > epoch {
                // The bucket already holds a later interval: this call is older than the
                // window (its thread stalled for a whole window); it no longer counts.
                return;
            }
            self.rotate(bucket, current, epoch);
        }
    }

    /// Moves the head to `epoch`, clearing the buckets of every interval skipped.
    fn advance(&self, epoch: u64) {
        let head = self.head.load(Ordering::Relaxed);
        if epoch <= head {
            return;
        }
        if self
            .head
            .compare_exchange(head, epoch, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another caller advances (or advanced) it
        }
        let n = self.buckets.len() as u64;
        let first = head.saturating_add(1).max(epoch.saturating_sub(n - 1));
        for e in first..=epoch {
            let bucket = &self.buckets[(e % n) as usize];
            let current = bucket.epoch.load(Ordering::Acquire);
            if current & ROTATING == 0 && current < e {
                self.rotate(bucket, current, e);
            }
        }
    }

    /// Rotates `bucket` from interval `from` to `to` if nobody else did.
    fn rotate(&self, bucket: &Bucket, from: u64, to: u64) {
        // Acquire on success: we read the counts the previous interval's callers added.
        if bucket
            .epoch
            .compare_exchange(from, to | ROTATING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            let old = bucket.counts.take();
            self.totals.subtract(old);
            // Release: the reset counts are visible to whoever sees the new epoch.
            bucket.epoch.store(to, Ordering::Release);
        }
    }

    /// The totals at `now` (expired buckets are cleared first).
    pub(crate) fn totals(&self, now: u64) -> Totals {
        self.advance(now / self.bucket_len);
        self.totals.read()
    }

    /// Empties the window.
    pub(crate) fn reset(&self) {
        for bucket in self.buckets.iter() {
            let old = bucket.counts.take();
            self.totals.subtract(old);
        }
    }
}

/// Either window.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    /// Records an outcome; returns whether the rates may have changed.
    #[inline]
    pub(crate) fn record(&self, code: u8, now: u64) -> bool {
        match self {
            Window::Count(w) => w.record(code),
            Window::Time(w) => {
                w.record(code, now);
                // Expiry moves rates too, so a time window is always re-judged.
                true
            }
        }
    }

    pub(crate) fn totals(&self, now: u64) -> Totals {
        match self {
            Window::Count(w) => w.totals(),
            Window::Time(w) => w.totals(now),
        }
    }

    pub(crate) fn reset(&self) {
        match self {
            Window::Count(w) => w.reset(),
            Window::Time(w) => w.reset(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fastmod_matches_division() {
        for d in [1u32, 2, 3, 7, 10, 100, 1000, 4095, 65_537, 500_000] {
            let m = FastMod::new(d);
            for x in [0u32, 1, 2, d - 1, d, d + 1, 12_345, u32::MAX - 1, u32::MAX] {
                assert_eq!(m.reduce(x), (x % d) as usize, "{x} mod {d}");
            }
        }
    }

    #[test]
    fn count_window_keeps_the_last_n() {
        let w = CountWindow::new(3);
        for code in [PRESENT | FAILED, PRESENT, PRESENT | SLOW, PRESENT, PRESENT] {
            w.record(code);
        }
        // The last three: SLOW, ok, ok.
        assert_eq!(
            w.totals(),
            Totals {
                calls: 3,
                failures: 0,
                slow: 1
            }
        );
        w.reset();
        assert_eq!(w.totals(), Totals::default());
    }

    #[test]
    fn time_window_expires_old_buckets() {
        let w = TimeWindow::new(4, 1_000); // 4 buckets of 1 µs
        w.record(PRESENT | FAILED, 0);
        w.record(PRESENT, 1_500);
        assert_eq!(w.totals(1_999).calls, 2);
        assert_eq!(w.totals(4_000).calls, 1); // bucket 0 expired
        assert_eq!(w.totals(5_500), Totals::default());
        // Skipped intervals are cleared by whoever moves time forward.
        w.record(PRESENT | SLOW, 10_000);
        assert_eq!(
            w.totals(10_000),
            Totals {
                calls: 1,
                failures: 0,
                slow: 1
            }
        );
    }
}
