//! Retention compaction as a saga: snapshot → verify → truncate, and a snapshot that
//! does not verify is compensated (deleted) with the log left whole.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Rng, builder, cells, clock, events};
use weft_analytics::{Batch, Compacted, Compactor, Durability, Engine, WindowSpec};
use weft_saga::{Event, Journal, JournalFuture, MemoryJournal, Outcome, Record};

/// A journal whose process "dies" right after the `snapshot` step is journaled: that
/// append is written, then never returns (nothing after it runs).
#[derive(Debug)]
struct DiesAfterSnapshot {
    inner: Arc<MemoryJournal>,
    died: Arc<tokio::sync::Notify>,
}

impl Journal for DiesAfterSnapshot {
    fn append(&self, record: Record) -> JournalFuture<'_, ()> {
        let dies = matches!(&record.event, Event::StepCompleted { step, .. } if step == "snapshot");
        let append = self.inner.append(record);
        Box::pin(async move {
            append.await?;
            if dies {
                self.died.notify_one();
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    }

    fn load<'a>(&'a self, saga_id: &'a str) -> JournalFuture<'a, Vec<Record>> {
        self.inner.load(saga_id)
    }

    fn in_flight(&self) -> JournalFuture<'_, Vec<String>> {
        self.inner.in_flight()
    }
}
use weft_time::ManualClock;

const WAIT: Duration = Duration::from_secs(10);

fn durable(clock: &ManualClock, dir: &std::path::Path) -> Engine {
    builder(clock)
        .shards(2)
        .window(WindowSpec::tumbling(Duration::from_secs(60)))
        .durable(Durability::new(dir).segment_size(16 * 1024))
        .build()
        .unwrap()
}

/// A durable engine in `dir` holding some final windows; returns it and its cells.
async fn filled(
    clock: &ManualClock,
    dir: &std::path::Path,
) -> (Engine, BTreeMap<(String, i64), (u64, f64)>) {
    let engine = durable(clock, dir);
    engine.ready().await.unwrap();
    for chunk in events(&mut Rng::new(11), 3_000, 20, 100).chunks(100) {
        engine.ingest(Batch::new(chunk.to_vec())).await.unwrap();
    }
    engine.flush(WAIT).await.unwrap();
    let before = cells(&engine, "latency", "host");
    assert!(!before.is_empty(), "the input closes some windows");
    (engine, before)
}

/// Restarts the engine on `dir` and returns its cells after the replay.
async fn restarted(
    clock: &ManualClock,
    dir: &std::path::Path,
) -> BTreeMap<(String, i64), (u64, f64)> {
    let engine = durable(clock, dir);
    engine.ready().await.unwrap();
    engine.flush(WAIT).await.unwrap();
    let c = cells(&engine, "latency", "host");
    engine.shutdown(WAIT).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_snapshots_verifies_and_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let (engine, before) = filled(&clock, dir.path()).await;
    let compactor = Compactor::in_memory(engine.clone()).unwrap();
    let Compacted::Done { position, segments } = compactor.compact("c1").await.unwrap() else {
        panic!("the compaction was compensated")
    };
    assert!(position > 0);
    assert!(segments > 0, "whole segments lay behind the snapshot");
    let status = compactor.status("c1").await.unwrap();
    assert_eq!(status.completed, ["snapshot", "verify", "truncate"]);
    // Running the same id again returns the first outcome and does nothing twice.
    assert_eq!(
        compactor.compact("c1").await.unwrap(),
        Compacted::Done { position, segments }
    );
    engine.shutdown(WAIT).await;
    assert_eq!(
        restarted(&clock, dir.path()).await,
        before,
        "snapshot + the kept tail rebuild the same windows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_does_not_verify_is_deleted_and_the_log_kept() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let (engine, before) = filled(&clock, dir.path()).await;
    let journal = Arc::new(MemoryJournal::new());

    // The first run stops (its process "dies") right after the snapshot step is
    // journaled: the journal never returns from that append.
    let died = Arc::new(tokio::sync::Notify::new());
    let first = Compactor::new(
        engine.clone(),
        DiesAfterSnapshot {
            inner: Arc::clone(&journal),
            died: Arc::clone(&died),
        },
    )
    .unwrap();
    {
        let run = first.compact("c1");
        tokio::select! {
            _ = run => panic!("the run finished before it could be stopped"),
            () = died.notified() => {}
        }
    }
    // Meanwhile the snapshot file is damaged.
    let taken = engine.last_snapshot().expect("the snapshot step ran");
    std::fs::write(&taken.path, b"not a snapshot").unwrap();

    // Recovery resumes the saga: verify fails for good, the snapshot is undone.
    let second = Compactor::new(engine.clone(), journal).unwrap();
    let recovered = second.orchestrator().recover().await.unwrap();
    assert_eq!(recovered.len(), 1);
    match &recovered[0].1 {
        Ok(Outcome::Compensated { failed_step, .. }) => assert_eq!(failed_step, "verify"),
        other => panic!("expected a compensated compaction, got {other:?}"),
    }
    let status = second.status("c1").await.unwrap();
    assert_eq!(status.compensated, ["snapshot"]);
    assert!(!taken.path.exists(), "the untrusted snapshot was deleted");
    engine.shutdown(WAIT).await;
    assert_eq!(
        restarted(&clock, dir.path()).await,
        before,
        "nothing was truncated: the whole log replays to the same windows"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_non_durable_engine_is_refused() {
    let engine = builder(&clock()).build().unwrap();
    let err = Compactor::in_memory(engine.clone()).unwrap_err();
    assert!(err.to_string().contains("durable"), "{err}");
    engine.shutdown(WAIT).await;
}
