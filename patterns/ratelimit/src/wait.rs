//! Waiting for capacity on tokio timers (feature `tokio`).

use std::time::Duration;

use weft_time::Clock;

use crate::{Admitted, Error, RateLimiter};

impl<C: Clock> RateLimiter<C> {
    /// Waits until one cell is admitted; see [`until_ready_n`](Self::until_ready_n).
    ///
    /// # Errors
    ///
    /// [`Error::QueueFull`] at once when `max_waiters` callers are already waiting.
    pub async fn until_ready(&self) -> Result<Admitted, Error> {
        self.until_ready_n(1).await
    }

    /// Waits until `n` cells are admitted, in fair FIFO order.
    ///
    /// The cells are booked at call time ([`reserve_n`](Self::reserve_n)), so concurrent
    /// callers are admitted in the order they called, each sleeping exactly until its own
    /// slot: no polling, no thundering herd when capacity returns. The future is
    /// cancellation-safe: dropping it before its slot releases its waiter place and gives
    /// the cells back when it is the latest booking (see [`Reservation`](crate::Reservation)).
    ///
    /// Sleeps on tokio's timer, so the limiter's clock should be real time (the default
    /// `FastClock`) or, in tests under `tokio::time::pause()`, `weft_time::TokioClock`.
    ///
    /// # Errors
    ///
    /// [`Error::InsufficientCapacity`] if `n` exceeds the burst; [`Error::QueueFull`] at
    /// once when `max_waiters` callers are already waiting.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), weft_ratelimit::Error> {
    /// use std::time::Duration;
    /// use weft_ratelimit::{Quota, RateLimiter};
    /// use weft_time::TokioClock;
    ///
    /// let limiter = RateLimiter::with_clock(Quota::per_second(1)?, TokioClock);
    /// let start = tokio::time::Instant::now();
    /// limiter.until_ready().await?; // the burst: at once
    /// limiter.until_ready().await?; // waits for the next cell
    /// assert_eq!(start.elapsed(), Duration::from_secs(1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn until_ready_n(&self, n: u32) -> Result<Admitted, Error> {
        self.until_ready_jittered(n, Duration::ZERO).await
    }

    /// Like [`until_ready_n`](Self::until_ready_n), but wakes up to `max_jitter` after
    /// the slot (uniformly at random), to spread out callers that would otherwise all act
    /// at the same instant downstream. Never wakes before the slot.
    ///
    /// # Errors
    ///
    /// As [`until_ready_n`](Self::until_ready_n).
    pub async fn until_ready_jittered(
        &self,
        n: u32,
        max_jitter: Duration,
    ) -> Result<Admitted, Error> {
        let reservation = self.reserve_n(n)?;
        let mut wake = reservation.ready_at();
        if !max_jitter.is_zero() {
            let nanos = u64::try_from(max_jitter.as_nanos()).unwrap_or(u64::MAX);
            wake = wake
                .checked_add(Duration::from_nanos(fastrand::u64(0..=nanos)))
                .unwrap_or(wake);
        }
        if wake > self.clock().now() {
            // Dropping this future here drops `reservation`, which settles the booking.
            tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
        }
        Ok(reservation.consume())
    }
}
