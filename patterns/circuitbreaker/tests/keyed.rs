//! Keyed breakers: independent per key, bounded in number.

use weft_circuitbreaker::{CircuitBreaker, KeyedBreakers, SlidingWindow, State};

#[test]
fn keys_are_independent_and_bounded() {
    let breakers = KeyedBreakers::new(32, |_: &u32| {
        CircuitBreaker::builder()
            .sliding_window(SlidingWindow::count(1))
            .minimum_calls(1)
            .build()
            .unwrap()
    });
    let _ = breakers.call(&1, || Err::<(), _>(()));
    assert_eq!(breakers.get(&1).state(), State::Open);
    assert_eq!(breakers.get(&2).state(), State::Closed);
    for k in 0..10_000 {
        let _ = breakers.call(&k, || Ok::<_, ()>(()));
    }
    assert!(breakers.len() <= breakers.max_keys());
    assert!(breakers.evicted() > 0);
    // The open breaker of key 1 is kept while closed ones can go instead.
    assert_eq!(breakers.get(&1).state(), State::Open);
}
