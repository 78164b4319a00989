//! `ConcurrencyLimiter`: never more than `max` permits out, each released on drop.

use weft_ratelimit::{ConcurrencyLimiter, Error};

#[test]
fn never_more_than_max_in_flight() {
    let limit = ConcurrencyLimiter::new(3).unwrap();
    let peak = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..2000 {
                    if let Some(_p) = limit.try_acquire() {
                        let now = limit.in_flight();
                        peak.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
                        assert!(now <= 3);
                    }
                }
            });
        }
    });
    assert_eq!(limit.in_flight(), 0);
    assert!(peak.into_inner() <= 3);
    assert_eq!(
        ConcurrencyLimiter::new(0).unwrap_err(),
        Error::ZeroConcurrency
    );
}
