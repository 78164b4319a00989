//! Properties, for any saga shape (sequential steps and parallel groups) and any
//! pattern of transient and permanent failures:
//!
//! - the saga completes iff no step gave up, and otherwise exactly the completed steps
//!   are compensated, once each, unit by unit in the reverse of the order they ran; the
//!   journal's status says the same;
//! - recovering from any prefix of the journal (a crash after any record) ends
//!   completed or fully compensated and calls nothing the prefix shows done.

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

/// A participant that deduplicates by idempotency key: `calls` counts every call,
/// `applied` holds the keys whose effect happened.
#[derive(Debug, Default, Clone)]
struct Dedup(Arc<Mutex<(Vec<String>, BTreeSet<String>)>>);

impl Dedup {
    /// Records a call of `key`; whether its effect had already been applied (then the
    /// participant answers with the stored success, whatever this attempt would do).
    fn seen(&self, key: &str) -> bool {
        let mut g = self.0.lock().unwrap();
        g.0.push(key.to_owned());
        g.1.contains(key)
    }

    fn apply(&self, key: &str) {
        self.0.lock().unwrap().1.insert(key.to_owned());
    }
}

fn dedup_saga(shape: &Shape, p: &Dedup) -> Saga<u32> {
    let mut b = Saga::builder("p").default_retry(
        Backoff::constant(Duration::from_millis(10))
            .max_retries(1)
            .build()
            .unwrap(),
    );
    for (u, unit) in shape.iter().enumerate() {
        let step = |m: usize, beh: Behaviour| {
            let (p1, p2) = (p.clone(), p.clone());
            let action = move |cx: weft_saga::StepCtx<u32>| {
                let p = p1.clone();
                async move {
                    if p.seen(cx.idempotency_key()) {
                        return Ok(());
                    }
                    match beh {
                        Behaviour::FailsPermanently => Err(StepError::permanent("no")),
                        Behaviour::FailsTransiently(k) if cx.attempt() <= k => {
                            Err(StepError::retryable("later"))
                        }
                        _ => {
                            p.apply(cx.idempotency_key());
                            Ok(())
                        }
                    }
                }
            };
            let compensation = move |cx: weft_saga::StepCtx<u32>, ()| {
                let p = p2.clone();
                async move {
                    if !p.seen(cx.idempotency_key()) {
                        p.apply(cx.idempotency_key());
                    }
                    Ok(())
                }
            };
            (format!("u{u}m{m}"), action, compensation)
        };
        if unit.len() == 1 {
            let (n, a, c) = step(0, unit[0]);
            b = b.step(&n, a, c);
        } else {
            b = b.parallel(|mut g| {
                for (m, &beh) in unit.iter().enumerate() {
                    let (n, a, c) = step(m, beh);
                    g = g.step(&n, a, c);
                }
                g
            });
        }
    }
    b.build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A crash after any record (every prefix of a full run's journal), with the
    /// in-doubt effects applied or not: recovery ends completed or fully compensated,
    /// re-calls nothing whose outcome was journaled, and applies no key twice.
    #[test]
    fn recovery_from_any_journal_prefix_ends_clean(shape in shape()) {
        use weft_saga::{Event, Journal};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let full = Arc::new(MemoryJournal::new());
        let p = Dedup::default();
        let saga = dedup_saga(&shape, &p);
        let orch = Orchestrator::builder(Arc::clone(&full)).register(&saga).build().unwrap();
        rt.block_on(orch.run(&saga, "i", 0)).unwrap();
        let records = rt.block_on(full.load("i")).unwrap();
        for cut in 1..=records.len() {
            for in_doubt_applied in [false, true] {
                let prefix = &records[..cut];
                // The participants' state at the crash.
                let mut applied = BTreeSet::new();
                let mut done = BTreeSet::new();
                let mut open: Vec<String> = Vec::new();
                for r in prefix {
                    match &r.event {
                        Event::StepStarted { key, .. } | Event::CompensationStarted { key, .. } => {
                            open.push(key.clone());
                        }
                        Event::StepCompleted { step, .. } => {
                            let key = format!("i/{step}");
                            open.retain(|k| *k != key);
                            applied.insert(key.clone());
                            done.insert(key);
                        }
                        Event::CompensationCompleted { step } => {
                            let key = format!("i/{step}/compensate");
                            open.retain(|k| *k != key);
                            applied.insert(key.clone());
                            done.insert(key);
                        }
                        Event::StepFailed { step, .. } => {
                            let key = format!("i/{step}");
                            open.retain(|k| *k != key);
                        }
                        _ => {}
                    }
                }
                if in_doubt_applied {
                    applied.extend(open.iter().cloned());
                }
                let journal = MemoryJournal::new();
                for r in prefix {
                    rt.block_on(journal.append(r.clone())).unwrap();
                }
                let p = Dedup(Arc::new(Mutex::new((Vec::new(), applied))));
                let saga = dedup_saga(&shape, &p);
                let orch = Orchestrator::builder(journal).register(&saga).build().unwrap();
                let recovered = rt.block_on(orch.recover()).unwrap();
                let outcome = match &recovered[..] {
                    [] => rt.block_on(orch.resume("i")).unwrap(), // the prefix was finished
                    [(_, r)] => r.as_ref().unwrap().clone(),
                    more => panic!("{more:?}"),
                };
                let (calls, applied) = p.0.lock().unwrap().clone();
                for k in &calls {
                    prop_assert!(!done.contains(k), "cut {}: {} was journaled done but called again", cut, k);
                }
                let forward: BTreeSet<&String> = applied.iter().filter(|k| !k.ends_with("/compensate")).collect();
                let undone: BTreeSet<String> = applied
                    .iter()
                    .filter_map(|k| k.strip_suffix("/compensate").map(str::to_owned))
                    .collect();
                match outcome.state() {
                    SagaState::Completed => {
                        prop_assert!(undone.is_empty(), "cut {}: completed but compensated {:?}", cut, undone);
                        let all: usize = shape.iter().map(Vec::len).sum();
                        prop_assert_eq!(forward.len(), all);
                    }
                    SagaState::Compensated => {
                        let forward: BTreeSet<String> = forward.into_iter().cloned().collect();
                        prop_assert_eq!(&undone, &forward, "cut {}: not fully compensated", cut);
                    }
                    other => prop_assert!(false, "cut {}: ended {:?}", cut, other),
                }
            }
        }
    }
}
