//! The file journal: reopening, torn-tail recovery, corruption detection, group commit
//! under concurrent appenders, and a saga recovered from a reopened file.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use weft_saga::{
    Error, Event, FileJournal, FsyncPolicy, Journal, Orchestrator, Outcome, Record, Saga,
    SagaState, StepError,
};

fn started(id: &str) -> Record {
    Record::new(
        id,
        1,
        Event::SagaStarted {
            saga: "s".into(),
            input: serde_json::json!({ "id": id }),
        },
    )
}

fn intent(id: &str, step: &str) -> Record {
    Record::new(
        id,
        2,
        Event::StepStarted {
            step: step.into(),
            attempt: 1,
            key: format!("{id}/{step}"),
        },
    )
}

#[tokio::test]
async fn records_survive_a_reopen_in_order_with_the_in_flight_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    for policy in [
        FsyncPolicy::EveryRecord,
        FsyncPolicy::Batch,
        FsyncPolicy::Never,
    ] {
        let _ = std::fs::remove_file(&path);
        let j = FileJournal::open(&path, policy).unwrap();
        assert!(j.is_empty());
        for id in ["a", "b", "c"] {
            j.append(started(id)).await.unwrap();
            j.append(intent(id, "x")).await.unwrap();
        }
        j.append(Record::new("b", 3, Event::SagaCompleted))
            .await
            .unwrap();
        j.sync().unwrap();
        drop(j);
        let j = FileJournal::open(&path, policy).unwrap();
        assert_eq!(j.len(), 7);
        assert_eq!(j.in_flight().await.unwrap(), ["a", "c"]);
        assert_eq!(
            j.load("c").await.unwrap(),
            [started("c"), intent("c", "x")],
            "{policy:?}"
        );
        // Appends go on after the reopened records.
        j.append(Record::new("a", 4, Event::SagaCompleted))
            .await
            .unwrap();
        drop(j);
        let j = FileJournal::open(&path, policy).unwrap();
        assert_eq!(j.in_flight().await.unwrap(), ["c"]);
    }
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_on_open_at_every_cut_point() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let j = FileJournal::open(&path, FsyncPolicy::Batch).unwrap();
    j.append(started("a")).await.unwrap();
    let one = std::fs::metadata(&path).unwrap().len();
    j.append(intent("a", "x")).await.unwrap();
    drop(j);
    let whole = std::fs::read(&path).unwrap();
    // Cut the second record anywhere: the first survives, the torn bytes go.
    for cut in one..whole.len() as u64 {
        std::fs::write(&path, &whole[..cut as usize]).unwrap();
        let j = FileJournal::open(&path, FsyncPolicy::Batch).unwrap();
        assert_eq!(j.load("a").await.unwrap(), [started("a")], "cut at {cut}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), one, "cut at {cut}");
        // And the journal appends cleanly after the cut.
        j.append(intent("a", "y")).await.unwrap();
        drop(j);
        let j = FileJournal::open(&path, FsyncPolicy::Batch).unwrap();
        assert_eq!(j.load("a").await.unwrap(), [started("a"), intent("a", "y")]);
    }
}

#[tokio::test]
async fn a_damaged_record_before_the_tail_is_reported_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let j = FileJournal::open(&path, FsyncPolicy::Batch).unwrap();
    j.append(started("a")).await.unwrap();
    let one = std::fs::metadata(&path).unwrap().len();
    j.append(started("b")).await.unwrap();
    j.append(started("c")).await.unwrap();
    drop(j);
    let before = std::fs::read(&path).unwrap();
    // Flip one payload byte of the second record.
    let mut f = OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(one + 20)).unwrap();
    f.write_all(&[before[(one + 20) as usize] ^ 0x20]).unwrap();
    drop(f);
    match FileJournal::open(&path, FsyncPolicy::Batch) {
        Err(Error::Corrupt { offset, reason }) => {
            assert_eq!(offset, one);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The file is left as it was for a person to look at.
    assert_eq!(std::fs::read(&path).unwrap().len(), before.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_acknowledges_every_record_of_concurrent_appenders() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let j = Arc::new(FileJournal::open(&path, FsyncPolicy::Batch).unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let j = Arc::clone(&j);
            tokio::spawn(async move {
                let id = format!("s{t}");
                j.append(started(&id)).await.unwrap();
                for k in 0..25 {
                    j.append(intent(&id, &format!("x{k}"))).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(j.len(), 8 * 26);
    let stats = j.stats();
    assert_eq!(stats.records, 8 * 26);
    assert_eq!(stats.syncs, stats.writes, "one sync per flushed batch");
    assert!(stats.syncs <= stats.records);
    drop(j);
    let j = FileJournal::open(&path, FsyncPolicy::Batch).unwrap();
    assert_eq!(j.len(), 8 * 26);
    for t in 0..8 {
        let id = format!("s{t}");
        let records = j.load(&id).await.unwrap();
        assert_eq!(records[0], started(&id));
        let steps: Vec<String> = records[1..]
            .iter()
            .map(|r| match &r.event {
                Event::StepStarted { step, .. } => step.clone(),
                e => panic!("{e:?}"),
            })
            .collect();
        let want: Vec<String> = (0..25).map(|k| format!("x{k}")).collect();
        assert_eq!(steps, want, "each appender's records in its order");
    }
}

#[tokio::test]
async fn appends_work_outside_a_multi_thread_runtime_too() {
    // A current-thread runtime: the flush runs on the blocking pool all the same.
    let dir = tempfile::tempdir().unwrap();
    let j = FileJournal::open(dir.path().join("j"), FsyncPolicy::EveryRecord).unwrap();
    for k in 0..10 {
        j.append(intent("a", &format!("{k}"))).await.unwrap();
    }
    assert_eq!(j.len(), 10);
    assert_eq!(j.stats().syncs, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_syncs_and_every_record_does_not() {
    // Appenders that each wait for their previous record: with `Batch`, the records of
    // the others queue while a sync runs and share the next one; `EveryRecord` syncs
    // each on its own; `Never` never syncs.
    for policy in [
        FsyncPolicy::Batch,
        FsyncPolicy::EveryRecord,
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let j = Arc::new(FileJournal::open(dir.path().join("j"), policy).unwrap());
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let j = Arc::clone(&j);
                tokio::spawn(async move {
                    for k in 0..20 {
                        j.append(intent(&format!("s{t}"), &format!("x{k}")))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let stats = j.stats();
        assert_eq!(stats.records, 320, "{policy:?}");
        match policy {
            FsyncPolicy::Never => assert_eq!(stats.syncs, 0),
            FsyncPolicy::EveryRecord => assert_eq!(stats.syncs, 320),
            _ => assert!(
                stats.syncs < stats.records,
                "{policy:?}: {stats:?}, no batch formed"
            ),
        }
        println!("{policy:?}: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_interrupted_mid_step_is_resumed_from_a_reopened_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagas");
    let runs = Arc::new(AtomicU32::new(0));
    let make = |runs: Arc<AtomicU32>| {
        Saga::<String>::builder("s")
            .step(
                "first",
                move |cx| {
                    let runs = Arc::clone(&runs);
                    async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, StepError>(format!("{}!", cx.input()))
                    }
                },
                |_cx, _: String| async { Ok(()) },
            )
            .step(
                "second",
                |cx| async move {
                    if cx.attempt() == 1 {
                        // The process "dies" here: the test drops the future.
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, StepError>(cx.output::<String>("first")?)
                },
                |_cx, _: String| async { Ok(()) },
            )
            .build()
            .unwrap()
    };
    {
        let saga = make(Arc::clone(&runs));
        let orch = Orchestrator::builder(FileJournal::open(&path, FsyncPolicy::Batch).unwrap())
            .register(&saga)
            .build()
            .unwrap();
        let stopped = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            orch.run(&saga, "i", "hello".to_owned()),
        )
        .await;
        assert!(stopped.is_err());
        let status = orch.status("i").await.unwrap();
        assert_eq!(status.state, SagaState::Running);
        assert_eq!(status.current_steps, ["second"]);
    }
    let saga = make(Arc::clone(&runs));
    let orch = Orchestrator::builder(FileJournal::open(&path, FsyncPolicy::Batch).unwrap())
        .register(&saga)
        .build()
        .unwrap();
    let recovered = orch.recover().await.unwrap();
    let Ok(Outcome::Completed(outputs)) = &recovered[0].1 else {
        panic!("{recovered:?}")
    };
    assert_eq!(outputs.get::<String>("second").unwrap(), "hello!");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "`first` ran once");
    assert_eq!(orch.status("i").await.unwrap().attempts["second"], 2);
}
