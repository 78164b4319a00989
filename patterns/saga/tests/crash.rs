//! The crash matrix: a 4-step saga with compensations runs in a child process (this test
//! binary, re-executed on the ignored test `crash_child`) over a `FileJournal`; the child
//! stops at one named injection point and the parent SIGKILLs it there. The parent then
//! recovers the saga from the journal in its own process and checks that
//!
//! - the saga ended completed (forward cells) or fully compensated (compensation cells);
//! - every participant applied each idempotency key at most once (participants record
//!   each call and each applied key in a file, deduplicating by key);
//! - nothing completed was run again: every key was called exactly once, except the one
//!   whose effect was applied just before the kill and not yet journaled (twice: the
//!   re-run of an in-doubt step, which the participant deduplicated).
//!
//! The injection points, for every step `s` (forward) or compensated step (backward):
//!
//! | point | the child stops |
//! |---|---|
//! | `before_intent` | before `StepStarted` of `s` is journaled |
//! | `after_intent` | after `StepStarted`, before the action runs |
//! | `after_effect` | inside the action, after the participant applied it, before the outcome is journaled |
//! | `after_journal` | after `StepCompleted` of `s` is journaled |
//! | `compensating` | after the `Compensating` record |
//! | `comp_after_intent` | after `CompensationStarted` of `s` |
//! | `comp_after_effect` | inside the compensation, after it applied, before the outcome is journaled |
//! | `comp_after_journal` | after `CompensationCompleted` of `s` |
//!
//! Each cell runs on two saga shapes: four sequential steps, and `a, (b ∥ c), d` with a
//! parallel group. Stopping is deterministic (the child blocks at the point and tells the
//! parent, which kills it), so each cell is exercised exactly; a cell whose point is
//! never reached fails the test.

#![cfg(unix)]

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use weft_saga::{
    Event, FileJournal, FsyncPolicy, Journal, JournalFuture, Orchestrator, Outcome, Record, Saga,
    SagaState, StepError,
};

const DIR_ENV: &str = "WEFT_SAGA_CRASH_DIR";
const POINT_ENV: &str = "WEFT_SAGA_CRASH_POINT";
const SHAPE_ENV: &str = "WEFT_SAGA_CRASH_SHAPE";
const FAIL_ENV: &str = "WEFT_SAGA_CRASH_FAIL";
const MARKER: &str = "WEFT_SAGA_STOPPED_AT_INJECTION_POINT";
const SAGA_ID: &str = "order-1";

/// The injection point of this process, if any: `(point, step)`.
fn point() -> Option<(String, String)> {
    let p = std::env::var(POINT_ENV).ok()?;
    let (point, step) = p.split_once(':')?;
    Some((point.to_owned(), step.to_owned()))
}

fn at(point: &str, step: &str) -> bool {
    self::point().is_some_and(|(p, s)| p == point && s == step)
}

/// Tells the parent where we are and blocks until it SIGKILLs us.
fn stop_here() -> ! {
    let mut out = std::io::stdout();
    writeln!(out, "{MARKER}").unwrap();
    out.flush().unwrap();
    loop {
        std::thread::park();
    }
}

/// A participant: appends `call <key>` for every invocation and `apply <key>` the first
/// time it sees a key (the effect), in one file shared by every process.
#[derive(Debug, Clone)]
struct Participant {
    file: PathBuf,
}

impl Participant {
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write(&self, line: &str) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .unwrap();
        f.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    /// Applies `key` at most once; returns whether it was applied now.
    fn apply(&self, key: &str) -> bool {
        self.write(&format!("call {key}"));
        let applied = format!("apply {key}");
        if self.lines().contains(&applied) {
            return false;
        }
        self.write(&applied);
        true
    }
}

/// The saga under test: steps `a b c d`, sequential or with `b ∥ c`; `d` fails
/// permanently when `fail`.
fn saga(participant: &Participant, parallel: bool, fail: bool) -> Saga<u32> {
    let step = |name: &'static str| {
        let (p1, p2) = (participant.clone(), participant.clone());
        let action = move |cx: weft_saga::StepCtx<u32>| {
            let p = p1.clone();
            async move {
                if fail && name == "d" {
                    p.write(&format!("call {}", cx.idempotency_key()));
                    return Err(StepError::permanent("d refused"));
                }
                p.apply(cx.idempotency_key());
                if at("after_effect", name) {
                    stop_here();
                }
                Ok::<_, StepError>(format!("{name}-output"))
            }
        };
        let compensation = move |cx: weft_saga::StepCtx<u32>, out: String| {
            let p = p2.clone();
            async move {
                assert_eq!(out, format!("{name}-output"), "output from the journal");
                p.apply(cx.idempotency_key());
                if at("comp_after_effect", name) {
                    stop_here();
                }
                Ok(())
            }
        };
        (name, action, compensation)
    };
    let (a, aa, ac) = step("a");
    let (b, ba, bc) = step("b");
    let (c, ca, cc) = step("c");
    let (d, da, dc) = step("d");
    let builder = Saga::builder("order").step(a, aa, ac);
    let builder = if parallel {
        builder.parallel(|g| g.step(b, ba, bc).step(c, ca, cc))
    } else {
        builder.step(b, ba, bc).step(c, ca, cc)
    };
    builder.step(d, da, dc).build().unwrap()
}

/// A journal that stops the process at the journal-side injection points.
#[derive(Debug)]
struct Stopping(FileJournal);

impl Journal for Stopping {
    fn append(&self, record: Record) -> JournalFuture<'_, ()> {
        let (before, after) = match &record.event {
            Event::StepStarted { step, .. } => {
                (at("before_intent", step), at("after_intent", step))
            }
            Event::StepCompleted { step, .. } => (false, at("after_journal", step)),
            Event::Compensating { .. } => (false, at("compensating", "-")),
            Event::CompensationStarted { step, .. } => (false, at("comp_after_intent", step)),
            Event::CompensationCompleted { step } => (false, at("comp_after_journal", step)),
            _ => (false, false),
        };
        if before {
            stop_here();
        }
        let append = self.0.append(record);
        Box::pin(async move {
            append.await?;
            if after {
                stop_here();
            }
            Ok(())
        })
    }

    fn load<'a>(&'a self, saga_id: &'a str) -> JournalFuture<'a, Vec<Record>> {
        self.0.load(saga_id)
    }

    fn in_flight(&self) -> JournalFuture<'_, Vec<String>> {
        self.0.in_flight()
    }
}

fn files(dir: &Path) -> (PathBuf, Participant) {
    (
        dir.join("saga.journal"),
        Participant {
            file: dir.join("effects"),
        },
    )
}

/// The child: runs the saga once with the injection point of its environment.
#[test]
#[ignore = "the child process of `crash_matrix`"]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let (journal, participant) = files(Path::new(&dir));
    let parallel = std::env::var(SHAPE_ENV).is_ok_and(|s| s == "parallel");
    let fail = std::env::var(FAIL_ENV).is_ok();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let journal = Stopping(FileJournal::open(&journal, FsyncPolicy::EveryRecord).unwrap());
        let saga = saga(&participant, parallel, fail);
        let orch = Orchestrator::builder(journal)
            .register(&saga)
            .build()
            .unwrap();
        let outcome = orch.run(&saga, SAGA_ID, 42).await.unwrap();
        println!("finished without reaching the injection point: {outcome:?}");
    });
}

/// One cell: run the child to its kill point, SIGKILL it, recover here, check.
fn cell(exe: &Path, parallel: bool, fail: bool, point: &str, step: &str) {
    let name = format!(
        "{}/{}/{point}:{step}",
        if parallel { "parallel" } else { "sequential" },
        if fail { "fail" } else { "ok" }
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "crash_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(DIR_ENV, dir.path())
    .env(POINT_ENV, format!("{point}:{step}"))
    .env(SHAPE_ENV, if parallel { "parallel" } else { "sequential" })
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if fail {
        cmd.env(FAIL_ENV, "1");
    }
    let mut child = cmd.spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut reached = false;
    for line in out.lines() {
        if line.unwrap().ends_with(MARKER) {
            reached = true;
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        reached,
        "{name}: the child never reached its injection point"
    );

    // Restart: recover in this process, with no injection point.
    let (journal, participant) = files(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (recovered, status) = rt.block_on(async {
        let journal = FileJournal::open(&journal, FsyncPolicy::EveryRecord).unwrap();
        let saga = saga(&participant, parallel, fail);
        let orch = Orchestrator::builder(journal)
            .register(&saga)
            .build()
            .unwrap();
        let recovered = orch.recover().await.unwrap();
        let status = orch.status(SAGA_ID).await.unwrap();
        (recovered, status)
    });
    assert_eq!(recovered.len(), 1, "{name}: {recovered:?}");
    let outcome = recovered[0].1.as_ref().unwrap();

    let lines = participant.lines();
    let mut calls: HashMap<&str, usize> = HashMap::new();
    let mut applies: HashMap<&str, usize> = HashMap::new();
    for l in &lines {
        let (kind, key) = l.split_once(' ').unwrap();
        *match kind {
            "call" => &mut calls,
            _ => &mut applies,
        }
        .entry(key)
        .or_default() += 1;
    }
    for (key, n) in &applies {
        assert_eq!(*n, 1, "{name}: {key} applied {n} times\n{lines:#?}");
    }
    let key = |s: &str| format!("{SAGA_ID}/{s}");
    let comp = |s: &str| format!("{SAGA_ID}/{s}/compensate");
    let applied = |k: &str| applies.contains_key(k);
    if fail {
        assert!(
            matches!(outcome, Outcome::Compensated { failed_step, .. } if failed_step == "d"),
            "{name}: {outcome:?}"
        );
        for s in ["a", "b", "c"] {
            assert!(
                applied(&key(s)) && applied(&comp(s)),
                "{name}: {s} not undone"
            );
        }
        assert!(!applied(&key("d")) && !applied(&comp("d")));
        assert_eq!(status.compensated.len(), 3);
    } else {
        let Outcome::Completed(outputs) = outcome else {
            panic!("{name}: {outcome:?}")
        };
        for s in ["a", "b", "c", "d"] {
            assert!(applied(&key(s)), "{name}: {s} not applied");
            assert!(!applied(&comp(s)), "{name}: {s} compensated");
            assert_eq!(outputs.get::<String>(s).unwrap(), format!("{s}-output"));
        }
    }
    assert!(status.state.is_finished() && status.state != SagaState::Resolved);
    // Nothing completed ran again: one call per key, two for the key whose effect was
    // applied but not journaled when the child died.
    let twice = match point {
        "after_effect" => Some(key(step)),
        "comp_after_effect" => Some(comp(step)),
        _ => None,
    };
    for (k, n) in &calls {
        let want = if Some(*k) == twice.as_deref() { 2 } else { 1 };
        if parallel && ["b", "c"].iter().any(|s| k.starts_with(&key(s))) {
            // The other member of the group may have been in doubt at the kill too.
            assert!(*n == want || *n == 2, "{name}: {k} called {n} times");
        } else {
            assert_eq!(*n, want, "{name}: {k} called {n} times\n{lines:#?}");
        }
    }
    if let Some(k) = twice {
        assert_eq!(
            calls[k.as_str()],
            2,
            "{name}: the in-doubt step was not re-run"
        );
    }
}

#[test]
fn crash_matrix() {
    let exe = std::env::current_exe().unwrap();
    let mut cells = 0;
    for parallel in [false, true] {
        for step in ["a", "b", "c", "d"] {
            for point in [
                "before_intent",
                "after_intent",
                "after_effect",
                "after_journal",
            ] {
                cell(&exe, parallel, false, point, step);
                cells += 1;
            }
        }
        cell(&exe, parallel, true, "compensating", "-");
        cells += 1;
        for step in ["a", "b", "c"] {
            for point in [
                "comp_after_intent",
                "comp_after_effect",
                "comp_after_journal",
            ] {
                cell(&exe, parallel, true, point, step);
                cells += 1;
            }
        }
    }
    assert_eq!(cells, 2 * (16 + 1 + 9));
}

/// The journal keeps its promise under the kill too: a record acknowledged before the
/// kill is there after it (checked through the status history of one cell).
#[test]
fn the_journal_holds_every_record_written_before_the_kill() {
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&exe)
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir.path())
        .env(POINT_ENV, "after_journal:c")
        .env(SHAPE_ENV, "sequential")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    assert!(out.lines().any(|l| l.unwrap().ends_with(MARKER)));
    child.kill().unwrap();
    child.wait().unwrap();
    let (journal, _) = files(dir.path());
    let journal = Arc::new(FileJournal::open(&journal, FsyncPolicy::Batch).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let records = rt.block_on(journal.load(SAGA_ID)).unwrap();
    let kinds: Vec<String> = records
        .iter()
        .map(|r| match &r.event {
            Event::SagaStarted { .. } => "started".to_owned(),
            Event::StepStarted { step, .. } => format!("intent:{step}"),
            Event::StepCompleted { step, .. } => format!("done:{step}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "started", "intent:a", "done:a", "intent:b", "done:b", "intent:c", "done:c"
        ]
    );
    assert_eq!(rt.block_on(journal.in_flight()).unwrap(), [SAGA_ID]);
}
