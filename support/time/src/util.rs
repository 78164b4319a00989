//! Saturating duration arithmetic shared by the clock, deadline and backoff modules.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Converts a nanosecond count to a [`Duration`], saturating at [`Duration::MAX`].
pub(crate) fn duration_from_nanos(nanos: u128) -> Duration {
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0); // always < 10^9
    match u64::try_from(nanos / NANOS_PER_SEC) {
        Ok(secs) => Duration::new(secs, subsec),
        Err(_) => Duration::MAX,
    }
}

/// The largest offset `<= limit` for which `fits` holds.
///
/// `fits` must be monotone (if an offset fits, every smaller one does) and hold for
/// [`Duration::ZERO`]; `checked_add` on [`Instant`](std::time::Instant) and
/// [`SystemTime`](std::time::SystemTime) qualifies. The search costs at most ~97 calls and
/// only runs when `limit` itself does not fit.
pub(crate) fn largest_fitting(limit: Duration, fits: impl Fn(Duration) -> bool) -> Duration {
    if fits(limit) {
        return limit;
    }
    // Invariant: `lo` fits, `hi` does not.
    let (mut lo, mut hi) = (0u128, limit.as_nanos());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(duration_from_nanos(mid)) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    duration_from_nanos(lo)
}

/// Nanoseconds from a process-wide base instant (taken at the first call) to `now`,
/// saturating: the default [`Clock::monotonic_nanos`](crate::Clock::monotonic_nanos).
pub(crate) fn nanos_since_process_base(now: std::time::Instant) -> u64 {
    // A plain `OnceLock`: set once, read-only afterwards; nothing for loom to model.
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(std::time::Instant::now);
    u64::try_from(now.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_from_nanos_round_trips_and_saturates() {
        let d = Duration::new(3, 141_592_653);
        assert_eq!(duration_from_nanos(d.as_nanos()), d);
        assert_eq!(duration_from_nanos(Duration::MAX.as_nanos()), Duration::MAX);
        assert_eq!(duration_from_nanos(u128::MAX), Duration::MAX);
        assert_eq!(duration_from_nanos(0), Duration::ZERO);
    }

    #[test]
    fn largest_fitting_finds_the_exact_threshold() {
        let threshold = Duration::new(1_000, 7);
        let fits = |d: Duration| d <= threshold;
        assert_eq!(largest_fitting(Duration::MAX, fits), threshold);
        assert_eq!(
            largest_fitting(Duration::from_secs(5), fits),
            Duration::from_secs(5)
        );
        assert_eq!(
            largest_fitting(Duration::MAX, |d| d.is_zero()),
            Duration::ZERO
        );
    }
}
