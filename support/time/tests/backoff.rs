//! Integration tests of `Backoff`, `BackoffPolicy`, `BackoffIter` and `Jitter`.

use std::time::Duration;

use proptest::prelude::*;
use weft_time::{Backoff, BackoffPolicy, Error, Jitter, ManualClock, Rng};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

#[test]
fn public_types_are_thread_safe() {
    fn assert_thread_safe<T: Send + Sync + Unpin + std::fmt::Debug + 'static>() {}
    assert_thread_safe::<Backoff>();
    assert_thread_safe::<BackoffPolicy>();
    assert_thread_safe::<weft_time::BackoffIter>();
    assert_thread_safe::<Jitter>();
    assert_thread_safe::<Error>();
}

#[test]
fn zero_exponential_initial_delay_is_rejected() {
    let err = Backoff::exponential(Duration::ZERO).build().unwrap_err();
    assert_eq!(err, Error::ZeroInitialDelay);
    assert!(
        err.to_string()
            .contains("Backoff::exponential(Duration::from_millis(100))")
    );
}

#[test]
fn zero_constant_delay_means_retry_immediately() {
    let policy = Backoff::constant(Duration::ZERO)
        .max_retries(2)
        .build()
        .unwrap();
    assert_eq!(policy.iter().collect::<Vec<_>>(), [Duration::ZERO; 2]);
}

#[test]
fn invalid_factors_are_rejected() {
    for factor in [0.0, 0.999, -2.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = Backoff::exponential(ms(1))
            .factor(factor)
            .build()
            .unwrap_err();
        match err {
            Error::InvalidFactor { factor: got } => {
                assert!(got.to_bits() == factor.to_bits(), "{got} vs {factor}")
            }
            other => panic!("factor {factor}: unexpected {other:?}"),
        }
        assert!(err.to_string().contains(">= 1.0"));
    }
}

#[test]
fn factor_one_is_a_valid_constant_exponential() {
    let policy = Backoff::exponential(ms(7)).factor(1.0).build().unwrap();
    let mut rng = Rng::with_seed(0);
    assert_eq!(policy.delay(0, &mut rng), Some(ms(7)));
    assert_eq!(policy.delay(u32::MAX, &mut rng), Some(ms(7)));
}

#[test]
fn max_delay_below_initial_is_rejected_and_equal_is_accepted() {
    let err = Backoff::exponential(ms(500))
        .max_delay(ms(499))
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        Error::MaxDelayBelowInitial {
            initial: ms(500),
            max_delay: ms(499)
        }
    );
    assert!(err.to_string().contains("raise max_delay"));
    let err = Backoff::constant(ms(500))
        .max_delay(ms(1))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::MaxDelayBelowInitial { .. }));

    let flat = Backoff::exponential(ms(500))
        .max_delay(ms(500))
        .build()
        .unwrap();
    assert_eq!(flat.delay(10, &mut Rng::with_seed(0)), Some(ms(500)));
}

#[test]
fn settings_the_policy_would_ignore_are_rejected() {
    let cases = [
        (
            Backoff::constant(ms(1)).factor(2.0),
            "factor",
            "constant backoff",
        ),
        (
            Backoff::constant(ms(1)).jitter(Jitter::Decorrelated),
            "Jitter::Decorrelated",
            "constant backoff",
        ),
        (
            Backoff::exponential(ms(1))
                .factor(2.0)
                .jitter(Jitter::Decorrelated),
            "factor",
            "decorrelated jitter",
        ),
    ];
    for (builder, want_setting, want_policy) in cases {
        match builder.build() {
            Err(
                err @ Error::IgnoredSetting {
                    setting,
                    policy,
                    hint,
                },
            ) => {
                assert_eq!(setting, want_setting);
                assert_eq!(policy, want_policy);
                assert!(!hint.is_empty());
                assert!(err.to_string().contains(hint));
            }
            other => panic!("{want_setting} on {want_policy}: unexpected {other:?}"),
        }
    }
}

#[test]
fn accessors_report_the_configuration() {
    let policy = Backoff::exponential(ms(10))
        .factor(3.0)
        .max_delay(ms(900))
        .max_retries(4)
        .jitter(Jitter::Equal)
        .build()
        .unwrap();
    assert_eq!(policy.initial_delay(), ms(10));
    assert_eq!(policy.factor(), 3.0);
    assert_eq!(policy.max_delay(), Some(ms(900)));
    assert_eq!(policy.max_retries(), Some(4));
    assert_eq!(policy.jitter(), Jitter::Equal);
    let constant = Backoff::constant(ms(10)).build().unwrap();
    assert_eq!(constant.factor(), 1.0);
    assert_eq!(constant.max_retries(), None);
    assert_eq!(Jitter::default(), Jitter::None);
}

// ---------------------------------------------------------------------------------------
// Sequences
// ---------------------------------------------------------------------------------------

#[test]
fn exponential_sequence_doubles_then_caps() {
    let policy = Backoff::exponential(ms(100))
        .max_delay(ms(1_000))
        .max_retries(7)
        .build()
        .unwrap();
    let got: Vec<_> = policy.iter().map(|d| d.as_millis()).collect();
    assert_eq!(got, [100, 200, 400, 800, 1_000, 1_000, 1_000]);
}

#[test]
fn uncapped_exponential_saturates_at_duration_max() {
    let policy = Backoff::exponential(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut rng = Rng::with_seed(0);
    assert_eq!(policy.delay(10, &mut rng), Some(Duration::from_secs(1024)));
    assert_eq!(policy.delay(u32::MAX, &mut rng), Some(Duration::MAX));
}

#[test]
fn zero_retries_never_retries() {
    let policy = Backoff::exponential(ms(1)).max_retries(0).build().unwrap();
    assert_eq!(policy.iter().next(), None);
    assert_eq!(policy.delay(0, &mut Rng::with_seed(0)), None);
}

#[test]
fn exhausted_iterator_stays_exhausted() {
    let policy = Backoff::constant(ms(1)).max_retries(3).build().unwrap();
    let mut it = policy.iter();
    assert_eq!(it.by_ref().count(), 3);
    for _ in 0..5 {
        assert_eq!(it.next(), None);
    }
    assert_eq!(it.retries(), 3);
}

#[test]
fn reset_restarts_the_sequence_and_the_retry_budget() {
    let policy = Backoff::exponential(ms(1)).max_retries(2).build().unwrap();
    let mut it = policy.iter();
    assert_eq!(it.by_ref().collect::<Vec<_>>(), [ms(1), ms(2)]);
    it.reset();
    assert_eq!(it.collect::<Vec<_>>(), [ms(1), ms(2)]);
}

#[test]
fn reset_restarts_decorrelated_growth() {
    let policy = Backoff::exponential(ms(1))
        .max_delay(Duration::from_secs(3600))
        .jitter(Jitter::Decorrelated)
        .build()
        .unwrap();
    let mut it = policy.iter_with_rng(Rng::with_seed(3));
    for _ in 0..30 {
        it.next();
    }
    it.reset();
    let first = it.next().unwrap();
    assert!(first >= ms(1) && first <= ms(3), "{first:?}");
}

#[test]
fn same_seed_same_delays_different_seed_different_delays() {
    for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
        let policy = Backoff::exponential(ms(100))
            .max_delay(Duration::from_secs(60))
            .jitter(jitter)
            .build()
            .unwrap();
        let run = |seed| {
            policy
                .iter_with_rng(Rng::with_seed(seed))
                .take(20)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1), "{jitter:?}");
        assert_ne!(run(1), run(2), "{jitter:?}");
    }
}

#[test]
fn cloned_iterator_replays_the_same_delays() {
    let policy = Backoff::exponential(ms(10))
        .max_delay(ms(10_000))
        .jitter(Jitter::Decorrelated)
        .build()
        .unwrap();
    let mut a = policy.iter_with_rng(Rng::with_seed(99));
    a.next();
    let b = a.clone();
    assert_eq!(
        a.take(10).collect::<Vec<_>>(),
        b.take(10).collect::<Vec<_>>()
    );
}

#[test]
fn full_jitter_actually_spreads_the_delays() {
    let policy = Backoff::constant(Duration::from_secs(1))
        .jitter(Jitter::Full)
        .build()
        .unwrap();
    let delays: Vec<_> = policy
        .iter_with_rng(Rng::with_seed(12))
        .take(1_000)
        .collect();
    let mean = delays.iter().sum::<Duration>() / 1_000;
    // Uniform on [0, 1s]: mean 500ms; 1000 samples put it well within 450..550ms.
    assert!(mean > ms(450) && mean < ms(550), "mean {mean:?}");
    assert!(delays.iter().any(|d| *d < ms(100)));
    assert!(delays.iter().any(|d| *d > ms(900)));
}

#[test]
fn equal_jitter_spreads_over_the_upper_half() {
    let policy = Backoff::constant(Duration::from_secs(1))
        .jitter(Jitter::Equal)
        .build()
        .unwrap();
    let delays: Vec<_> = policy
        .iter_with_rng(Rng::with_seed(13))
        .take(1_000)
        .collect();
    assert!(delays.iter().all(|d| *d >= ms(500) && *d <= ms(1_000)));
    assert!(delays.iter().any(|d| *d < ms(550)));
    assert!(delays.iter().any(|d| *d > ms(950)));
}

#[test]
fn decorrelated_jitter_grows_then_hits_the_cap() {
    let policy = Backoff::exponential(ms(10))
        .max_delay(Duration::from_secs(1))
        .jitter(Jitter::Decorrelated)
        .build()
        .unwrap();
    let delays: Vec<_> = policy.iter_with_rng(Rng::with_seed(21)).take(200).collect();
    assert!(
        delays.iter().any(|d| *d == Duration::from_secs(1)),
        "never reached the cap"
    );
    assert!(delays.iter().any(|d| *d < ms(500)), "never came back down");
}

#[test]
fn policy_is_shared_by_concurrent_operations() {
    let policy = Backoff::exponential(ms(1)).max_retries(5).build().unwrap();
    let total: Duration = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(move || policy.iter().sum::<Duration>()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(total, ms(4 * (1 + 2 + 4 + 8 + 16)));
}

#[test]
fn retry_loop_with_a_manual_clock_never_sleeps() {
    let clock = ManualClock::new();
    let policy = Backoff::exponential(Duration::from_secs(1))
        .max_delay(Duration::from_secs(4))
        .max_retries(4)
        .build()
        .unwrap();
    let mut attempts = 0;
    let mut delays = policy.iter();
    let result: Result<(), &str> = loop {
        attempts += 1;
        match delays.next() {
            Some(d) => clock.advance(d),
            None => break Err("always failing"),
        }
    };
    assert_eq!(result, Err("always failing"));
    assert_eq!(attempts, 5); // 1 call + 4 retries
    assert_eq!(clock.elapsed(), Duration::from_secs(1 + 2 + 4 + 4));
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

fn any_jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
    ]
}

/// A valid exponential builder (without jitter) and its cap.
fn exponential() -> impl Strategy<Value = (Backoff, Duration)> {
    (
        1u64..=10_000_000_000,           // initial, ns (up to 10 s)
        1.0f64..=16.0,                   // factor
        0u32..=80,                       // cap = initial * 2^k (+ extra)
        0u64..=1_000_000,                // extra ns on the cap
        proptest::option::of(0u32..=64), // max retries
    )
        .prop_map(|(initial, factor, k, extra, retries)| {
            let initial = Duration::from_nanos(initial);
            let cap = initial
                .checked_mul(2u32.saturating_pow(k.min(31)))
                .and_then(|c| c.checked_add(Duration::from_nanos(extra)))
                .unwrap_or(Duration::MAX);
            let mut b = Backoff::exponential(initial).factor(factor).max_delay(cap);
            if let Some(r) = retries {
                b = b.max_retries(r);
            }
            (b, cap)
        })
}

/// Any valid policy, with any jitter, and the same policy without jitter.
fn any_policy() -> impl Strategy<Value = (BackoffPolicy, BackoffPolicy)> {
    let constant = (0u64..=10_000_000_000, proptest::option::of(0u32..=64)).prop_map(|(d, r)| {
        let b = Backoff::constant(Duration::from_nanos(d));
        r.map_or(b, |r| b.max_retries(r))
    });
    let exp = exponential().prop_map(|(b, _)| b);
    let uncapped = (1u64..=1_000_000_000, 1.0f64..=1_000.0)
        .prop_map(|(i, f)| Backoff::exponential(Duration::from_nanos(i)).factor(f));
    (prop_oneof![constant, exp, uncapped], any_jitter()).prop_filter_map(
        "combination rejected by build",
        |(b, jitter)| {
            let plain = b.build().ok()?;
            let jittered = b.jitter(jitter).build().ok()?;
            Some((jittered, plain))
        },
    )
}

fn retry_number() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..=100, any::<u32>(), Just(u32::MAX)]
}

proptest! {
    /// Without jitter, exponential delays never decrease and never exceed max_delay.
    #[test]
    fn exponential_without_jitter_is_non_decreasing_and_capped((builder, cap) in exponential()) {
        let policy = builder.build().unwrap();
        let mut rng = Rng::with_seed(0);
        let mut previous = Duration::ZERO;
        for d in policy.iter().take(200) {
            prop_assert!(d >= previous, "{d:?} after {previous:?}");
            prop_assert!(d <= cap);
            prop_assert!(d >= policy.initial_delay());
            previous = d;
        }
        // The stateless form agrees with the iterator, including at huge retry numbers.
        let limit = policy.max_retries().unwrap_or(u32::MAX);
        for (n, d) in policy.iter().take(50).enumerate() {
            prop_assert_eq!(policy.delay(n as u32, &mut rng), Some(d));
        }
        if limit > 0 {
            let last = policy.delay(limit - 1, &mut rng).unwrap();
            prop_assert!(last >= previous && last <= cap);
        }
    }

    /// With an integer factor, the delay is exactly initial * factor^n, capped.
    #[test]
    fn integer_factors_are_exact(initial in 1u64..=1_000_000_000, factor in 1u32..=10, n in 0u32..=40) {
        let policy = Backoff::exponential(Duration::from_nanos(initial))
            .factor(f64::from(factor))
            .max_delay(Duration::from_secs(1 << 40))
            .build()
            .unwrap();
        let cap = Duration::from_secs(1 << 40).as_nanos();
        let expected = u128::from(factor)
            .checked_pow(n)
            .and_then(|p| p.checked_mul(u128::from(initial)))
            .map_or(cap, |x| x.min(cap));
        // f64 holds integers exactly up to 2^53; beyond it, allow f64's relative rounding.
        let got = policy.delay(n, &mut Rng::with_seed(0)).unwrap().as_nanos();
        if expected < 1 << 53 {
            prop_assert_eq!(got, expected);
        } else {
            let diff = got.abs_diff(expected) as f64;
            prop_assert!(diff <= expected as f64 * 1e-12, "{got} vs {expected}");
        }
    }

    /// No retry number panics or overflows, for any valid policy; limited policies say
    /// `None` exactly from `max_retries` on.
    #[test]
    fn any_retry_number_is_safe((policy, _) in any_policy(), n in retry_number(), seed: u64) {
        let mut rng = Rng::with_seed(seed);
        let d = policy.delay(n, &mut rng);
        match policy.max_retries() {
            Some(max) if n >= max => prop_assert_eq!(d, None),
            _ => {
                let d = d.unwrap();
                if let Some(cap) = policy.max_delay() {
                    prop_assert!(d <= cap);
                }
            }
        }
    }

    /// Full jitter stays in [0, d] and equal jitter in [d/2, d], for d the un-jittered delay.
    #[test]
    fn full_and_equal_jitter_stay_within_bounds(
        (builder, _) in exponential(),
        n in retry_number(),
        seed: u64,
    ) {
        let builder = builder.unlimited_retries();
        let base = builder.build().unwrap().delay(n, &mut Rng::with_seed(0)).unwrap();
        let full = builder.jitter(Jitter::Full).build().unwrap();
        let equal = builder.jitter(Jitter::Equal).build().unwrap();
        let mut rng = Rng::with_seed(seed);
        for _ in 0..8 {
            let f = full.delay(n, &mut rng).unwrap();
            prop_assert!(f <= base, "full {f:?} > {base:?}");
            let e = equal.delay(n, &mut rng).unwrap();
            prop_assert!(e <= base, "equal {e:?} > {base:?}");
            prop_assert!(e.as_nanos() * 2 >= base.as_nanos(), "equal {e:?} < {base:?}/2");
        }
        // The iterator applies the same bounds retry by retry.
        let plain: Vec<_> = builder.build().unwrap().iter().take(30).collect();
        for (f, b) in full.iter_with_rng(Rng::with_seed(seed)).zip(&plain) {
            prop_assert!(f <= *b);
        }
        for (e, b) in equal.iter_with_rng(Rng::with_seed(seed)).zip(&plain) {
            prop_assert!(e <= *b && e.as_nanos() * 2 >= b.as_nanos());
        }
    }

    /// Decorrelated jitter: every delay is in [initial, min(max_delay, 3 * previous)],
    /// with the first "previous" being the initial delay.
    #[test]
    fn decorrelated_jitter_stays_within_bounds(
        initial in 1u64..=1_000_000_000,
        cap_mult in 1u64..=100_000,
        seed: u64,
        n in retry_number(),
    ) {
        let initial = Duration::from_nanos(initial);
        let cap = initial * u32::try_from(cap_mult).unwrap();
        let policy = Backoff::exponential(initial)
            .max_delay(cap)
            .jitter(Jitter::Decorrelated)
            .build()
            .unwrap();
        let mut previous = initial;
        for d in policy.iter_with_rng(Rng::with_seed(seed)).take(60) {
            prop_assert!(d >= initial, "{d:?} < {initial:?}");
            prop_assert!(d <= cap, "{d:?} > {cap:?}");
            prop_assert!(d <= previous.saturating_mul(3), "{d:?} > 3 * {previous:?}");
            previous = d;
        }
        // The stateless form stays in the envelope [initial, cap].
        let d = policy.delay(n, &mut Rng::with_seed(seed)).unwrap();
        prop_assert!(d >= initial && d <= cap);
        if n == 0 {
            prop_assert!(d <= initial * 3);
        }
    }

    /// Without decorrelated jitter, the iterator yields exactly the stateless delays
    /// drawn from the same generator, and exactly `max_retries` of them.
    #[test]
    fn iterator_matches_the_stateless_delays((policy, _) in any_policy(), seed: u64) {
        prop_assume!(policy.jitter() != Jitter::Decorrelated);
        let from_iter: Vec<_> = policy.iter_with_rng(Rng::with_seed(seed)).take(100).collect();
        let mut rng = Rng::with_seed(seed);
        let stateless: Vec<_> = (0..100u32).map_while(|n| policy.delay(n, &mut rng)).collect();
        prop_assert_eq!(&from_iter, &stateless);
        if let Some(max) = policy.max_retries() {
            prop_assert_eq!(from_iter.len(), max.min(100) as usize);
        }
    }
}
