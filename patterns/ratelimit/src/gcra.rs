//! The Generic Cell Rate Algorithm on plain integers, shared by every limiter.
//!
//! # Design
//!
//! GCRA (ITU-T I.371; the "virtual scheduling" form) keeps one number per limited thing:
//! the *theoretical arrival time* `tat`, the instant at which the bucket would be full
//! again. With emission interval `T` (time to replenish one cell) and delay tolerance
//! `τ = T × burst`, a request for `n` cells at time `now` is admitted iff
//!
//! ```text
//! max(tat, now) + n·T − now ≤ τ
//! ```
//!
//! and admission sets `tat = max(tat, now) + n·T`. This is exactly a token bucket of
//! `burst` tokens refilled one per `T`, measured in time instead of tokens: the bucket
//! holds `(τ − max(0, tat − now)) / T` tokens. A denied request learns the earliest time
//! it could succeed, `max(tat, now) + n·T − τ`, without any timer running.
//!
//! Times are nanoseconds since the limiter's epoch (`u64`: ~584 years), so the whole
//! state is one machine word: the direct limiter keeps it in a single `AtomicU64` and
//! updates it with one compare-and-swap.

/// The arithmetic of one quota: emission interval and delay tolerance, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// `T`: nanoseconds to replenish one cell.
    t: u64,
    /// `τ = T × burst`.
    tau: u64,
}

impl Gcra {
    /// The arithmetic for `quota`.
    pub(crate) fn new(quota: &crate::Quota) -> Self {
        Gcra {
            t: quota.interval_ns(),
            tau: quota.tau_ns(),
        }
    }

    /// Tests `n` cells (`n <= burst`) at `now` against `tat`: `Ok(new_tat)` to admit,
    /// `Err(earliest)` with the earliest time the same request would be admitted.
    #[inline]
    pub(crate) fn test(&self, tat: u64, now: u64, n: u32) -> Result<u64, u64> {
        // `n <= burst`, so `inc <= τ`, which was checked not to overflow.
        let inc = self.t * u64::from(n);
        let new_tat = tat.max(now).saturating_add(inc);
        if new_tat - now <= self.tau {
            Ok(new_tat)
        } else {
            Err(new_tat - self.tau)
        }
    }

    /// Like [`test`](Self::test) but always books the cells: returns the new `tat` and the
    /// time at which the booked cells are admitted (now or later). Fair waiting uses it.
    #[inline]
    pub(crate) fn reserve(&self, tat: u64, now: u64, n: u32) -> (u64, u64) {
        let inc = self.t * u64::from(n);
        let new_tat = tat.max(now).saturating_add(inc);
        (new_tat, new_tat.saturating_sub(self.tau).max(now))
    }

    /// Cells available at `now` with the given `tat` (what a request could take at once).
    #[inline]
    pub(crate) fn remaining(&self, tat: u64, now: u64) -> u32 {
        let debt = tat.saturating_sub(now);
        let left = self.tau.saturating_sub(debt) / self.t;
        u32::try_from(left).unwrap_or(u32::MAX)
    }

    /// The `tat` after returning the latest `n` booked cells (a cancelled reservation).
    #[inline]
    pub(crate) fn refund(&self, tat: u64, now: u64, n: u32) -> u64 {
        tat.saturating_sub(self.t * u64::from(n)).max(now.min(tat))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quota;

    #[test]
    fn burst_then_one_per_interval() {
        let g = Gcra::new(&Quota::per_second(3).unwrap()); // T = 333_333_333 ns
        let mut tat = 0;
        for _ in 0..3 {
            tat = g.test(tat, 0, 1).unwrap();
        }
        let earliest = g.test(tat, 0, 1).unwrap_err();
        assert_eq!(earliest, 333_333_333);
        assert!(g.test(tat, earliest - 1, 1).is_err());
        assert!(g.test(tat, earliest, 1).is_ok());
        assert_eq!(g.remaining(tat, 0), 0);
        assert_eq!(g.remaining(tat, 1_000_000_000), 3);
    }

    #[test]
    fn reserve_books_future_slots_in_order() {
        let g = Gcra::new(&Quota::per_second(1).unwrap());
        let (tat, at) = g.reserve(0, 0, 1);
        assert_eq!(at, 0);
        let (tat, at2) = g.reserve(tat, 0, 1);
        let (_, at3) = g.reserve(tat, 0, 1);
        assert_eq!((at2, at3), (1_000_000_000, 2_000_000_000));
    }
}
