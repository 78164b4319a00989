//! Loom models of `weft-time`: the shared `ManualClock` every time-based test drives.
#![cfg(loom)]

use std::time::Duration;

use loom::thread;
use weft_time::{Clock, ManualClock};

/// Concurrent `advance`s through clones of one `ManualClock` all take effect (none is
/// lost to a racing writer), and a reader never sees time go backwards.
#[test]
fn manual_clock_advances_add_up_and_never_go_back() {
    loom::model(|| {
        let clock = ManualClock::new();
        let writers: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|ms| {
                let clock = clock.clone();
                thread::spawn(move || clock.advance(Duration::from_millis(ms)))
            })
            .collect();
        let first = clock.now();
        let second = clock.now();
        assert!(second >= first, "manual clock went backwards");
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(clock.elapsed(), Duration::from_millis(3));
    });
}

/// `set_elapsed` racing `advance`: the clock ends at the larger of the two outcomes and a
/// backwards request is refused, never applied.
#[test]
fn manual_clock_set_elapsed_is_monotonic() {
    loom::model(|| {
        let clock = ManualClock::new();
        let setter = {
            let clock = clock.clone();
            thread::spawn(move || clock.set_elapsed(Duration::from_millis(5)).is_ok())
        };
        clock.advance(Duration::from_millis(10));
        let set_applied = setter.join().unwrap();
        // `advance` adds to whatever is there: set(5) first then +10 ends at 15; +10 first
        // makes set(5) a backwards request, which must be refused and leave 10.
        let expected = if set_applied { 15 } else { 10 };
        assert_eq!(clock.elapsed(), Duration::from_millis(expected));
    });
}
