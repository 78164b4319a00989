//! Behaviour of the orchestrator: compensation order, parallel groups, retries,
//! dead-lettering and manual resume, deadlines, per-instance serialisation, status and
//! metrics, resuming from a journal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_saga::{
    Error, Event, Journal, MemoryJournal, Orchestrator, Outcome, Record, Saga, SagaBuilder,
    SagaState, StepError,
};
use weft_time::{Backoff, BackoffPolicy};

/// What the participants did, in order: `"do:a"`, `"undo:a"`, ...
#[derive(Debug, Default, Clone)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn count(&self, s: &str) -> usize {
        self.all().iter().filter(|e| *e == s).count()
    }
}

fn no_retry() -> BackoffPolicy {
    Backoff::constant(Duration::from_millis(1))
        .max_retries(0)
        .build()
        .unwrap()
}

fn retries(n: u32, delay_ms: u64) -> BackoffPolicy {
    Backoff::constant(Duration::from_millis(delay_ms))
        .max_retries(n)
        .build()
        .unwrap()
}

/// Adds a step `name` that logs `do:name` (failing permanently instead if `fail`) and
/// whose compensation logs `undo:name`.
fn logged(b: SagaBuilder<u32>, name: &'static str, log: &Log, fail: bool) -> SagaBuilder<u32> {
    let (l1, l2) = (log.clone(), log.clone());
    b.step(
        name,
        move |_cx| {
            let l = l1.clone();
            async move {
                if fail {
                    l.push(format!("fail:{name}"));
                    return Err(StepError::permanent(format!("{name} refused")));
                }
                l.push(format!("do:{name}"));
                Ok(name.to_owned())
            }
        },
        move |_cx, out: String| {
            let l = l2.clone();
            async move {
                assert_eq!(out, name, "the compensation gets its step's output");
                l.push(format!("undo:{name}"));
                Ok(())
            }
        },
    )
}

fn orchestrator(saga: &Saga<u32>) -> Orchestrator {
    Orchestrator::builder(MemoryJournal::new())
        .register(saga)
        .build()
        .unwrap()
}

#[tokio::test]
async fn completes_every_step_in_order_and_returns_their_outputs() {
    let log = Log::default();
    let mut b = Saga::builder("s");
    for n in ["a", "b", "c"] {
        b = logged(b, n, &log, false);
    }
    let saga = b.build().unwrap();
    let orch = orchestrator(&saga);
    let Outcome::Completed(outputs) = orch.run(&saga, "i", 0).await.unwrap() else {
        panic!("not completed")
    };
    assert_eq!(log.all(), ["do:a", "do:b", "do:c"]);
    assert_eq!(outputs.get::<String>("b").unwrap(), "b");
    let status = orch.status("i").await.unwrap();
    assert_eq!(status.state, SagaState::Completed);
    assert_eq!(status.completed, ["a", "b", "c"]);
    assert!(status.current_steps.is_empty());
    assert_eq!(status.history.len(), 1 + 3 * 2 + 1);
    let m = orch.metrics();
    assert_eq!((m.started, m.completed, m.compensated), (1, 1, 0));
    assert_eq!(m.step_attempts, 3);
}

#[tokio::test]
async fn a_failed_step_compensates_the_completed_ones_in_reverse() {
    let log = Log::default();
    let mut b = Saga::builder("s");
    for n in ["a", "b", "c"] {
        b = logged(b, n, &log, false);
    }
    b = logged(b, "d", &log, true);
    b = logged(b, "e", &log, false);
    let saga = b.build().unwrap();
    let orch = orchestrator(&saga);
    let outcome = orch.run(&saga, "i", 0).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Compensated {
            failed_step: "d".into(),
            reason: "d refused".into()
        }
    );
    assert_eq!(
        log.all(),
        [
            "do:a", "do:b", "do:c", "fail:d", "undo:c", "undo:b", "undo:a"
        ]
    );
    let status = orch.status("i").await.unwrap();
    assert_eq!(status.state, SagaState::Compensated);
    assert_eq!(status.compensated, ["c", "b", "a"]);
    assert_eq!(status.failure, Some(("d".into(), "d refused".into())));
    assert_eq!(orch.metrics().compensated, 1);
    assert_eq!(
        orch.metrics().step_retries,
        0,
        "a permanent error is not retried"
    );
}

#[tokio::test]
async fn a_failing_first_step_compensates_nothing() {
    let log = Log::default();
    let b = logged(Saga::builder("s"), "a", &log, true);
    let saga = logged(b, "b", &log, false).build().unwrap();
    let orch = orchestrator(&saga);
    let outcome = orch.run(&saga, "i", 0).await.unwrap();
    assert_eq!(outcome.state(), SagaState::Compensated);
    assert_eq!(log.all(), ["fail:a"]);
}

#[tokio::test]
async fn steps_without_compensation_are_skipped_when_compensating() {
    let log = Log::default();
    let b = logged(Saga::builder("s"), "a", &log, false);
    let l = log.clone();
    let b = b.step_without_compensation("read", move |_cx| {
        let l = l.clone();
        async move {
            l.push("do:read".into());
            Ok::<_, StepError>(1u8)
        }
    });
    let saga = logged(b, "c", &log, true).build().unwrap();
    let orch = orchestrator(&saga);
    assert_eq!(
        orch.run(&saga, "i", 0).await.unwrap().state(),
        SagaState::Compensated
    );
    assert_eq!(log.all(), ["do:a", "do:read", "fail:c", "undo:a"]);
}

/// A parallel group of `members`; the member named `fail` fails permanently after
/// waiting `fail_after`, the others succeed after `ok_after`.
fn group_saga(log: &Log, fail: Option<&'static str>) -> Saga<u32> {
    let b = logged(Saga::builder("g"), "before", log, false);
    let b = b.parallel(|mut g| {
        for (n, ms) in [("p1", 30u64), ("p2", 10), ("p3", 20)] {
            let (l1, l2) = (log.clone(), log.clone());
            let failing = fail == Some(n);
            g = g.step(
                n,
                move |_cx| {
                    let l = l1.clone();
                    async move {
                        l.push(format!("start:{n}"));
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        if failing {
                            l.push(format!("fail:{n}"));
                            return Err(StepError::permanent("no"));
                        }
                        l.push(format!("do:{n}"));
                        Ok(ms)
                    }
                },
                move |_cx, _ms: u64| {
                    let l = l2.clone();
                    async move {
                        l.push(format!("undo-start:{n}"));
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        l.push(format!("undo:{n}"));
                        Ok(())
                    }
                },
            );
        }
        g
    });
    logged(b, "after", log, false).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_parallel_group_runs_its_members_at_once_and_all_complete() {
    let log = Log::default();
    let saga = group_saga(&log, None);
    let orch = orchestrator(&saga);
    let t0 = tokio::time::Instant::now();
    let outcome = orch.run(&saga, "i", 0).await.unwrap();
    assert_eq!(outcome.state(), SagaState::Completed);
    // Concurrent: the group took as long as its slowest member, not the sum.
    assert_eq!(t0.elapsed(), Duration::from_millis(30));
    let all = log.all();
    assert_eq!(&all[..4], ["do:before", "start:p1", "start:p2", "start:p3"]);
    assert_eq!(all.last().unwrap(), "do:after");
}

#[tokio::test(start_paused = true)]
async fn a_parallel_group_with_a_failed_member_waits_for_the_others_then_compensates_them_all() {
    let log = Log::default();
    let saga = group_saga(&log, Some("p2"));
    let orch = orchestrator(&saga);
    let outcome = orch.run(&saga, "i", 0).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Compensated {
            failed_step: "p2".into(),
            reason: "no".into()
        }
    );
    let all = log.all();
    // p2 failed first (10 ms), but p1 and p3 were allowed to finish...
    let pos = |s: &str| all.iter().position(|e| e == s).unwrap();
    assert!(pos("fail:p2") < pos("do:p3") && pos("do:p3") < pos("do:p1"));
    // ...then the completed members were compensated together, then `before`.
    assert!(pos("undo-start:p1") < pos("undo:p3") && pos("undo-start:p3") < pos("undo:p1"));
    assert!(pos("undo:p1") < pos("undo:before") && pos("undo:p3") < pos("undo:before"));
    assert_eq!(
        log.count("undo:p2"),
        0,
        "the failed member is not compensated"
    );
    assert_eq!(log.count("do:after"), 0);
    let status = orch.status("i").await.unwrap();
    let mut undone = status.compensated.clone();
    undone.sort();
    assert_eq!(undone, ["before", "p1", "p3"]);
}

#[tokio::test(start_paused = true)]
async fn a_step_is_retried_with_backoff_before_the_saga_compensates() {
    let log = Log::default();
    let calls = Arc::new(AtomicU32::new(0));
    let keys = Arc::new(Mutex::new(Vec::new()));
    let (c, k) = (Arc::clone(&calls), Arc::clone(&keys));
    let b = logged(Saga::builder("s"), "a", &log, false).step(
        "flaky",
        move |cx| {
            let (c, k) = (Arc::clone(&c), Arc::clone(&k));
            async move {
                k.lock()
                    .unwrap()
                    .push((cx.idempotency_key().to_owned(), cx.attempt()));
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                if n < 3 {
                    return Err(StepError::retryable(format!("transient {n}")));
                }
                Ok(n)
            }
        },
        |_cx, _n: u32| async { Ok(()) },
    );
    let saga = b.retry(retries(2, 100)).build().unwrap();
    let orch = orchestrator(&saga);
    let t0 = tokio::time::Instant::now();
    assert_eq!(
        orch.run(&saga, "i", 0).await.unwrap().state(),
        SagaState::Completed
    );
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(200),
        "two backoff delays"
    );
    assert_eq!(
        *keys.lock().unwrap(),
        [
            ("i/flaky".into(), 1),
            ("i/flaky".into(), 2),
            ("i/flaky".into(), 3)
        ],
        "every attempt gets the same key"
    );
    assert_eq!(orch.metrics().step_retries, 2);
    assert_eq!(orch.status("i").await.unwrap().attempts["flaky"], 3);

    // One more failure than retries: compensates after the last one.
    calls.store(0, Ordering::SeqCst);
    let saga2 = logged(Saga::builder("s2"), "a", &log, false)
        .step(
            "flaky",
            move |_cx| {
                let c = Arc::clone(&calls);
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(StepError::retryable("still down"))
                }
            },
            |_cx, ()| async { Ok(()) },
        )
        .retry(retries(2, 100))
        .build()
        .unwrap();
    let orch = orchestrator(&saga2);
    let outcome = orch.run(&saga2, "j", 0).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Compensated {
            failed_step: "flaky".into(),
            reason: "still down".into()
        }
    );
    let status = orch.status("j").await.unwrap();
    let failures: Vec<bool> = status
        .history
        .iter()
        .filter_map(|r| match &r.event {
            Event::StepFailed { gave_up, .. } => Some(*gave_up),
            _ => None,
        })
        .collect();
    assert_eq!(failures, [false, false, true]);
    assert_eq!(log.count("undo:a"), 1);
}

/// A saga whose step `b`'s compensation fails `fail_times` times (retryably) before
/// succeeding; `a` and `b` complete, `c` fails permanently.
fn failing_compensation(log: &Log, fail_times: u32, comp_retries: u32) -> Saga<u32> {
    let b = logged(Saga::builder("s"), "a", log, false);
    let left = Arc::new(AtomicU32::new(fail_times));
    let l = log.clone();
    let b = b.step(
        "b",
        |_cx| async { Ok::<_, StepError>(()) },
        move |cx, ()| {
            let (left, l) = (Arc::clone(&left), l.clone());
            async move {
                assert_eq!(
                    cx.idempotency_key(),
                    format!("{}/b/compensate", cx.saga_id())
                );
                if left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    l.push("undo-failed:b".into());
                    return Err(StepError::retryable("refund service down"));
                }
                l.push("undo:b".into());
                Ok(())
            }
        },
    );
    logged(b, "c", log, true)
        .compensation_retry(retries(comp_retries, 1000))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_compensation_is_retried_until_it_succeeds() {
    let log = Log::default();
    let saga = failing_compensation(&log, 2, 5);
    let orch = orchestrator(&saga);
    assert_eq!(
        orch.run(&saga, "i", 0).await.unwrap().state(),
        SagaState::Compensated
    );
    assert_eq!(
        log.all(),
        [
            "do:a",
            "fail:c",
            "undo-failed:b",
            "undo-failed:b",
            "undo:b",
            "undo:a"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_compensation_that_gives_up_dead_letters_the_saga_until_a_manual_resume() {
    let log = Log::default();
    let saga = failing_compensation(&log, 3, 1);
    let orch = orchestrator(&saga);
    let outcome = orch.run(&saga, "i", 0).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::DeadLettered {
            step: "b".into(),
            error: "refund service down".into()
        }
    );
    assert_eq!(log.count("undo:a"), 0, "`a` waits until `b` is undone");
    let status = orch.status("i").await.unwrap();
    assert_eq!(status.state, SagaState::DeadLettered);
    assert_eq!(
        orch.in_flight().await.unwrap(),
        ["i"],
        "never silently dropped"
    );
    assert_eq!(orch.metrics().dead_lettered, 1);

    // Recovery reports it but does not resume it.
    let recovered = orch.recover().await.unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(
        recovered[0].1.as_ref().unwrap().state(),
        SagaState::DeadLettered
    );
    assert_eq!(log.count("undo-failed:b"), 2);

    // A resume gets a fresh budget (2 attempts): one more failure, then success.
    let outcome = orch.resume("i").await.unwrap();
    assert_eq!(outcome.state(), SagaState::Compensated);
    assert_eq!(log.count("undo-failed:b"), 3);
    assert_eq!(log.count("undo:b"), 1);
    assert_eq!(log.count("undo:a"), 1);
    assert!(orch.in_flight().await.unwrap().is_empty());
    let m = orch.metrics();
    assert_eq!((m.resumed, m.compensated), (1, 1));
    // Resuming a finished saga does nothing.
    assert_eq!(
        orch.resume("i").await.unwrap().state(),
        SagaState::Compensated
    );
    assert_eq!(log.count("undo:a"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dead_lettered_saga_can_be_resolved_by_hand() {
    let log = Log::default();
    let saga = failing_compensation(&log, u32::MAX, 0);
    let orch = orchestrator(&saga);
    assert_eq!(
        orch.run(&saga, "i", 0).await.unwrap().state(),
        SagaState::DeadLettered
    );
    // Only a dead-lettered saga can be resolved.
    let done = orchestrator(&saga);
    let e = done.resolve("nope", "x").await.unwrap_err();
    assert!(matches!(e, Error::UnknownSaga { .. }), "{e}");
    orch.resolve("i", "refunded by the support desk")
        .await
        .unwrap();
    let status = orch.status("i").await.unwrap();
    assert_eq!(status.state, SagaState::Resolved);
    assert!(matches!(
        status.history.last().unwrap().event,
        Event::SagaResolved { ref note } if note == "refunded by the support desk"
    ));
    assert!(orch.in_flight().await.unwrap().is_empty());
    let e = orch.resolve("i", "again").await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::WrongState {
                state: SagaState::Resolved,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        orch.resume("i").await.unwrap(),
        Outcome::Resolved {
            note: "refunded by the support desk".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_times_out_is_retried_with_the_same_key() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let saga = Saga::<u32>::builder("s")
        .step(
            "slow",
            move |_cx| {
                let c = Arc::clone(&c);
                async move {
                    if c.fetch_add(1, Ordering::SeqCst) == 0 {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Ok::<_, StepError>(())
                }
            },
            |_cx, ()| async { Ok(()) },
        )
        .timeout(Duration::from_secs(1))
        .retry(retries(1, 500))
        .build()
        .unwrap();
    let orch = orchestrator(&saga);
    let t0 = tokio::time::Instant::now();
    assert_eq!(
        orch.run(&saga, "i", 0).await.unwrap().state(),
        SagaState::Completed
    );
    assert_eq!(t0.elapsed(), Duration::from_millis(1500));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let status = orch.status("i").await.unwrap();
    assert!(status.history.iter().any(|r| matches!(
        &r.event,
        Event::StepFailed { error, gave_up: false, .. } if error.contains("timed out")
    )));
}

#[tokio::test(start_paused = true)]
async fn the_saga_deadline_cuts_off_the_running_step_and_compensates() {
    let log = Log::default();
    let b = logged(Saga::builder("s"), "a", &log, false);
    let l = log.clone();
    let saga = b
        .step(
            "wait",
            move |_cx| {
                let l = l.clone();
                async move {
                    l.push("start:wait".into());
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<_, StepError>(())
                }
            },
            |_cx, ()| async { Ok(()) },
        )
        .retry(retries(10, 1))
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let orch = orchestrator(&saga);
    let t0 = tokio::time::Instant::now();
    let outcome = orch.run(&saga, "i", 0).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    let Outcome::Compensated {
        failed_step,
        reason,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(failed_step, "wait");
    assert!(reason.contains("deadline"), "{reason}");
    assert_eq!(
        log.all(),
        ["do:a", "start:wait", "undo:a"],
        "no retry past the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_backoff_longer_than_the_deadline_gives_up_at_once() {
    let saga = Saga::<u32>::builder("s")
        .step(
            "x",
            |_cx| async { Err::<(), _>(StepError::retryable("down")) },
            |_cx, ()| async { Ok(()) },
        )
        .retry(retries(5, 10_000))
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let orch = orchestrator(&saga);
    let t0 = tokio::time::Instant::now();
    assert_eq!(
        orch.run(&saga, "i", 0).await.unwrap().state(),
        SagaState::Compensated
    );
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(orch.metrics().step_attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_events_on_one_instance_are_processed_one_at_a_time() {
    // Two concurrent starts of one id (a redelivered message) and three concurrent
    // resumes: the step runs once, nobody ever sees another driver inside.
    let inside = Arc::new(AtomicU32::new(0));
    let runs = Arc::new(AtomicU32::new(0));
    let (i1, r1) = (Arc::clone(&inside), Arc::clone(&runs));
    let saga = Saga::<u32>::builder("s")
        .step(
            "only",
            move |_cx| {
                let (inside, runs) = (Arc::clone(&i1), Arc::clone(&r1));
                async move {
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two drivers");
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, StepError>(7u32)
                }
            },
            |_cx, _: u32| async { Ok(()) },
        )
        .build()
        .unwrap();
    let orch = orchestrator(&saga);
    let mut tasks = Vec::new();
    for k in 0..5 {
        let (orch, saga) = (orch.clone(), saga.clone());
        tasks.push(tokio::spawn(async move {
            if k < 2 {
                orch.run(&saga, "one", k).await
            } else {
                tokio::task::yield_now().await;
                orch.resume("one").await
            }
        }));
    }
    let mut completed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Outcome::Completed(out)) => {
                assert_eq!(out.get::<u32>("only").unwrap(), 7);
                completed += 1;
            }
            // A resume that won the race against both starts finds nothing yet.
            Err(Error::UnknownSaga { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(completed >= 2, "both starts report the one outcome");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the step ran once");
    assert_eq!(orch.metrics().started, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_resumes_of_a_dead_lettered_saga_compensate_once() {
    // `b`'s compensation fails permanently once (dead letter), then takes a while to
    // succeed: four resumes at once must neither overlap in it nor repeat it.
    let log = Log::default();
    let first = Arc::new(AtomicU32::new(0));
    let inside = Arc::new(AtomicU32::new(0));
    let b = logged(Saga::builder("s"), "a", &log, false);
    let l = log.clone();
    let b = b.step(
        "b",
        |_cx| async { Ok::<_, StepError>(()) },
        move |_cx, ()| {
            let (first, inside, l) = (Arc::clone(&first), Arc::clone(&inside), l.clone());
            async move {
                if first.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(StepError::permanent("refunds down"));
                }
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two drivers");
                // Hold the compensation open so that racing resumes would overlap.
                tokio::time::sleep(Duration::from_millis(20)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                l.push("undo:b".into());
                Ok(())
            }
        },
    );
    let saga = logged(b, "c", &log, true).build().unwrap();
    let orch = orchestrator(&saga);
    assert_eq!(
        orch.run(&saga, "i", 0).await.unwrap().state(),
        SagaState::DeadLettered
    );
    let resumes: Vec<_> = (0..4)
        .map(|_| {
            let orch = orch.clone();
            tokio::spawn(async move { orch.resume("i").await })
        })
        .collect();
    for r in resumes {
        assert_eq!(r.await.unwrap().unwrap().state(), SagaState::Compensated);
    }
    assert_eq!(log.count("undo:b"), 1);
    assert_eq!(log.count("undo:a"), 1);
    assert_eq!(
        orch.metrics().resumed,
        1,
        "only the first resume found it parked"
    );
    let history = orch.status("i").await.unwrap().history;
    assert_eq!(
        history
            .iter()
            .filter(|r| r.event == Event::SagaResumed)
            .count(),
        1
    );
}

#[tokio::test]
async fn an_instance_is_resumed_from_its_journal_without_rerunning_completed_steps() {
    // A journal as a crash would leave it: `a` completed, `b` started (in doubt).
    let journal = Arc::new(MemoryJournal::new());
    let rec = |e| Record::new("i", 0, e);
    for e in [
        Event::SagaStarted {
            saga: "s".into(),
            input: 5.into(),
        },
        Event::StepStarted {
            step: "a".into(),
            attempt: 1,
            key: "i/a".into(),
        },
        Event::StepCompleted {
            step: "a".into(),
            output: "from the journal".into(),
        },
        Event::StepStarted {
            step: "b".into(),
            attempt: 1,
            key: "i/b".into(),
        },
    ] {
        journal.append(rec(e)).await.unwrap();
    }
    let calls = Arc::new(Mutex::new(HashMap::<String, (u32, String)>::new()));
    let (c1, c2) = (Arc::clone(&calls), Arc::clone(&calls));
    let saga = Saga::<u32>::builder("s")
        .step(
            "a",
            move |_cx| {
                c1.lock().unwrap().insert("a".into(), (0, String::new()));
                async { Ok::<_, StepError>("ran again".to_owned()) }
            },
            |_cx, _: String| async { Ok(()) },
        )
        .step(
            "b",
            move |cx| {
                let a: String = cx.output("a").unwrap();
                assert_eq!(*cx.input(), 5, "the input comes from the journal");
                c2.lock()
                    .unwrap()
                    .insert(cx.idempotency_key().to_owned(), (cx.attempt(), a));
                async { Ok::<_, StepError>(()) }
            },
            |_cx, ()| async { Ok(()) },
        )
        .build()
        .unwrap();
    let orch = Orchestrator::builder(Arc::clone(&journal))
        .register(&saga)
        .build()
        .unwrap();
    let recovered = orch.recover().await.unwrap();
    assert_eq!(recovered.len(), 1);
    let Ok(Outcome::Completed(outputs)) = &recovered[0].1 else {
        panic!("{recovered:?}")
    };
    assert_eq!(outputs.get::<String>("a").unwrap(), "from the journal");
    let calls = calls.lock().unwrap();
    assert!(!calls.contains_key("a"), "a completed step ran again");
    assert_eq!(calls["i/b"], (2, "from the journal".to_owned()));
    assert_eq!(orch.metrics().recovered, 1);
}

#[tokio::test]
async fn recovery_reports_instances_of_unregistered_definitions() {
    let journal = MemoryJournal::new();
    journal
        .append(Record::new(
            "x",
            0,
            Event::SagaStarted {
                saga: "gone".into(),
                input: 1.into(),
            },
        ))
        .await
        .unwrap();
    let log = Log::default();
    let saga = logged(Saga::builder("s"), "a", &log, false)
        .build()
        .unwrap();
    let orch = Orchestrator::builder(journal)
        .register(&saga)
        .build()
        .unwrap();
    let recovered = orch.recover().await.unwrap();
    assert!(matches!(
        &recovered[..],
        [(id, Err(Error::NotRegistered { saga }))] if id == "x" && saga == "gone"
    ));
}

#[tokio::test]
async fn definitions_and_ids_are_validated() {
    let ok = |_cx| async { Ok::<_, StepError>(()) };
    let undo = |_cx, ()| async { Ok(()) };
    let bad = [
        Saga::<u32>::builder("").step("a", ok, undo).build(),
        Saga::<u32>::builder("s").build(),
        Saga::<u32>::builder("s")
            .step("a", ok, undo)
            .step("a", ok, undo)
            .build(),
        Saga::<u32>::builder("s").step("a/b", ok, undo).build(),
        Saga::<u32>::builder("s")
            .retry(no_retry())
            .step("a", ok, undo)
            .build(),
        Saga::<u32>::builder("s").parallel(|g| g).build(),
        Saga::<u32>::builder("s")
            .step("a", ok, undo)
            .timeout(Duration::ZERO)
            .build(),
    ];
    for b in bad {
        assert!(matches!(b, Err(Error::InvalidDefinition { .. })), "{b:?}");
    }
    let saga = Saga::<u32>::builder("s")
        .step("a", ok, undo)
        .build()
        .unwrap();
    let other = Saga::<u32>::builder("s")
        .step("a", ok, undo)
        .build()
        .unwrap();
    let e = Orchestrator::builder(MemoryJournal::new())
        .register(&saga)
        .register(&other)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)));
    let orch = orchestrator(&saga);
    assert!(matches!(
        orch.run(&saga, "a/b", 0).await,
        Err(Error::InvalidSagaId(_))
    ));
    assert!(matches!(
        orch.run(&other, "i", 0).await,
        Err(Error::NotRegistered { .. })
    ));
    let third = Saga::<u32>::builder("t")
        .step("a", ok, undo)
        .build()
        .unwrap();
    let orch = Orchestrator::builder(MemoryJournal::new())
        .register(&saga)
        .register(&third)
        .build()
        .unwrap();
    orch.run(&saga, "i", 0).await.unwrap();
    assert!(matches!(
        orch.run(&third, "i", 0).await,
        Err(Error::IdInUse { .. })
    ));
}

#[tokio::test]
async fn an_in_doubt_step_past_the_deadline_is_rerun_once_so_its_effect_is_compensated() {
    // A crash left `a` in doubt; the saga's deadline passed while the process was down
    // (it started at the Unix epoch). The re-run (same key) finds out `a` applied, so
    // the saga compensates it instead of forgetting it; `b` never starts.
    let journal = Arc::new(MemoryJournal::new());
    for e in [
        Event::SagaStarted {
            saga: "s".into(),
            input: 0.into(),
        },
        Event::StepStarted {
            step: "a".into(),
            attempt: 1,
            key: "i/a".into(),
        },
    ] {
        journal.append(Record::new("i", 0, e)).await.unwrap();
    }
    let log = Log::default();
    let b = logged(Saga::builder("s"), "a", &log, false);
    let saga = logged(b, "b", &log, false)
        .deadline(Duration::from_secs(60))
        .build()
        .unwrap();
    let orch = Orchestrator::builder(Arc::clone(&journal))
        .register(&saga)
        .build()
        .unwrap();
    let recovered = orch.recover().await.unwrap();
    let outcome = recovered[0].1.as_ref().unwrap();
    assert!(
        matches!(outcome, Outcome::Compensated { failed_step, reason } if failed_step == "b" && reason.contains("deadline")),
        "{outcome:?}"
    );
    assert_eq!(log.all(), ["do:a", "undo:a"]);
}

#[tokio::test]
async fn the_deadline_is_read_through_the_orchestrators_clock() {
    // A manual clock: the first step "takes" 10 s of it; the 5 s deadline has passed
    // when the second would start, so it never does and the first is compensated.
    let clock = weft_time::ManualClock::new();
    let c = clock.clone();
    let log = Log::default();
    let l = log.clone();
    let b = Saga::<u32>::builder("s").step(
        "slow",
        move |_cx| {
            c.advance(Duration::from_secs(10));
            let l = l.clone();
            async move {
                l.push("do:slow".into());
                Ok::<_, StepError>(())
            }
        },
        {
            let l = log.clone();
            move |_cx, ()| {
                let l = l.clone();
                async move {
                    l.push("undo:slow".into());
                    Ok(())
                }
            }
        },
    );
    let saga = logged(b, "next", &log, false)
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let orch = Orchestrator::builder(MemoryJournal::new())
        .clock(clock.clone())
        .register(&saga)
        .build()
        .unwrap();
    let outcome = orch.run(&saga, "i", 0).await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Compensated { failed_step, .. } if failed_step == "next"),
        "{outcome:?}"
    );
    assert_eq!(log.all(), ["do:slow", "undo:slow"]);
    // The journal's timestamps come from the same clock.
    let history = orch.status("i").await.unwrap().history;
    assert!(history.last().unwrap().at_ms - history[0].at_ms >= 10_000);
}
