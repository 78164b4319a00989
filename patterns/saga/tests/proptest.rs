//! Property: for any saga shape (sequential steps and parallel groups) and any pattern
//! of transient and permanent failures, the saga completes iff no step gave up, and
//! otherwise exactly the completed steps are compensated, once each, unit by unit in
//! the reverse of the order they ran; the journal's status says the same.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use weft_saga::{MemoryJournal, Orchestrator, Outcome, Saga, SagaState, StepError};
use weft_time::Backoff;

/// How a step behaves: transient failures before it succeeds (more than the one retry
/// allowed makes it give up), or a permanent failure.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    FailsTransiently(u32),
    FailsPermanently,
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        6 => (0u32..=1).prop_map(Behaviour::FailsTransiently),
        1 => Just(Behaviour::FailsTransiently(2)),
        1 => Just(Behaviour::FailsPermanently),
    ]
}

type Shape = Vec<Vec<Behaviour>>;

fn shape() -> impl Strategy<Value = Shape> {
    prop::collection::vec(prop::collection::vec(behaviour(), 1..=3), 1..=6)
}

#[derive(Debug, Default, Clone)]
struct Log(Arc<Mutex<Vec<(bool, usize, String)>>>);

fn build(shape: &Shape, log: &Log) -> Saga<u32> {
    let mut b = Saga::builder("p").default_retry(
        Backoff::constant(Duration::from_millis(10))
            .max_retries(1)
            .build()
            .unwrap(),
    );
    for (u, unit) in shape.iter().enumerate() {
        let members: Vec<(String, Behaviour)> = unit
            .iter()
            .enumerate()
            .map(|(m, &beh)| (format!("u{u}m{m}"), beh))
            .collect();
        let step = |name: String, beh: Behaviour| {
            let (l1, l2) = (log.clone(), log.clone());
            let n1 = name.clone();
            let action = move |cx: weft_saga::StepCtx<u32>| {
                let (l, n) = (l1.clone(), n1.clone());
                async move {
                    tokio::time::sleep(Duration::from_millis(u as u64 % 3)).await;
                    match beh {
                        Behaviour::FailsPermanently => Err(StepError::permanent("no")),
                        Behaviour::FailsTransiently(k) if cx.attempt() <= k => {
                            Err(StepError::retryable("later"))
                        }
                        _ => {
                            l.0.lock().unwrap().push((true, u, n.clone()));
                            Ok(n)
                        }
                    }
                }
            };
            let compensation = move |_cx: weft_saga::StepCtx<u32>, out: String| {
                let l = l2.clone();
                async move {
                    l.0.lock().unwrap().push((false, u, out));
                    Ok(())
                }
            };
            (name, action, compensation)
        };
        if members.len() == 1 {
            let (n, a, c) = step(members[0].0.clone(), members[0].1);
            b = b.step(&n, a, c);
        } else {
            b = b.parallel(|mut g| {
                for (name, beh) in members {
                    let (n, a, c) = step(name, beh);
                    g = g.step(&n, a, c);
                }
                g
            });
        }
    }
    b.build().unwrap()
}

fn gives_up(beh: Behaviour) -> bool {
    matches!(
        beh,
        Behaviour::FailsPermanently | Behaviour::FailsTransiently(2..)
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn exactly_the_completed_steps_are_compensated_in_reverse(shape in shape()) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let log = Log::default();
        let saga = build(&shape, &log);
        let orch = Orchestrator::builder(MemoryJournal::new()).register(&saga).build().unwrap();
        let (outcome, status) = rt.block_on(async {
            let o = orch.run(&saga, "i", 0).await.unwrap();
            (o, orch.status("i").await.unwrap())
        });
        let entries = log.0.lock().unwrap().clone();
        let done: Vec<(usize, String)> =
            entries.iter().filter(|e| e.0).map(|e| (e.1, e.2.clone())).collect();
        let undone: Vec<(usize, String)> =
            entries.iter().filter(|e| !e.0).map(|e| (e.1, e.2.clone())).collect();

        // Forward runs unit by unit and stops after the first unit with a give-up.
        let first_bad = shape.iter().position(|unit| unit.iter().copied().any(gives_up));
        let ran_units = first_bad.map_or(shape.len(), |u| u + 1);
        let want_done: BTreeSet<(usize, String)> = shape[..ran_units]
            .iter()
            .enumerate()
            .flat_map(|(u, unit)| {
                unit.iter().enumerate().filter(|(_, b)| !gives_up(**b)).map(move |(m, _)| (u, format!("u{u}m{m}")))
            })
            .collect();
        prop_assert_eq!(done.iter().cloned().collect::<BTreeSet<_>>(), want_done.clone());
        prop_assert_eq!(done.len(), want_done.len(), "a step completed twice");
        prop_assert!(done.windows(2).all(|w| w[0].0 <= w[1].0), "units ran out of order");

        match first_bad {
            None => {
                prop_assert!(matches!(outcome, Outcome::Completed(_)));
                prop_assert!(undone.is_empty());
                prop_assert_eq!(status.state, SagaState::Completed);
            }
            Some(_) => {
                prop_assert_eq!(outcome.state(), SagaState::Compensated);
                // Exactly the completed steps, once each...
                prop_assert_eq!(undone.iter().cloned().collect::<BTreeSet<_>>(), want_done);
                prop_assert_eq!(undone.len(), done.len());
                // ...unit by unit, in reverse.
                prop_assert!(undone.windows(2).all(|w| w[0].0 >= w[1].0), "not in reverse: {:?}", undone);
                let journaled: Vec<String> = status.compensated.clone();
                let logged: Vec<String> = undone.iter().map(|e| e.1.clone()).collect();
                prop_assert_eq!(journaled, logged);
            }
        }
        let completed_in_status: BTreeSet<String> = status.completed.iter().cloned().collect();
        prop_assert_eq!(completed_in_status, done.iter().map(|e| e.1.clone()).collect::<BTreeSet<_>>());
    }
}
