//! The crate's error type.

use std::time::Duration;

/// What went wrong configuring or using a limiter. Rate-limit *denials* are not errors of
/// this type: they are [`NotUntil`](crate::NotUntil) values, part of normal operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A quota of zero cells was requested.
    #[error("a quota must admit at least 1 cell; use a positive rate and burst")]
    ZeroQuota,
    /// The replenish interval is zero or shorter than 1 ns.
    #[error(
        "the rate is too high: {cells} cells per {period:?} is more than 1 per nanosecond; lower the rate"
    )]
    RateTooHigh {
        /// Cells asked for per period.
        cells: u32,
        /// The period.
        period: Duration,
    },
    /// `replenish interval x burst` does not fit the limiter's 64-bit nanosecond clock.
    #[error(
        "burst {burst} x replenish interval {interval:?} overflows ~584 years; lower the burst or the interval"
    )]
    QuotaOverflow {
        /// The burst.
        burst: u32,
        /// The replenish interval of one cell.
        interval: Duration,
    },
    /// More cells were asked for at once than the burst allows: such a request could never
    /// succeed, so it is refused instead of waiting forever.
    #[error(
        "{requested} cells requested but the burst is {burst}; split the request or raise the burst"
    )]
    InsufficientCapacity {
        /// Cells in the request.
        requested: u32,
        /// The largest request the quota can ever admit.
        burst: u32,
    },
    /// The fair waiting queue is at its configured length; the request was not queued.
    #[error("{max} waiters already queued; retry later or raise `max_waiters`")]
    QueueFull {
        /// The configured maximum number of waiters.
        max: usize,
    },
    /// A limiter needs at least one quota.
    #[error("a multi-quota limiter needs at least one quota")]
    NoQuota,
    /// A keyed limiter's key capacity is zero.
    #[error("a keyed limiter needs room for at least 1 key; set `max_keys` >= 1")]
    ZeroKeys,
    /// A concurrency limit of zero.
    #[error("a concurrency limit must allow at least 1 call in flight")]
    ZeroConcurrency,
}
