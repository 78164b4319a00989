//! Snapshots: restart from the newest snapshot plus the log tail gives the state a full
//! replay (and the streaming run) gives.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Rng, T0, builder, clock, events};
use weft_analytics::{
    Ack, Aggregate, Batch, Durability, Engine, EngineBuilder, Error, Event, Query, Tier, Value,
    WindowSpec,
};
use weft_time::ManualClock;

const WAIT: Duration = Duration::from_secs(10);

type Cells = BTreeMap<(String, i64, i64), (u64, f64, Option<f64>, Option<f64>)>;

/// Every final window of `engine` (count, sum, min, max per host and window).
fn cells(engine: &Engine, step: Option<Duration>) -> Cells {
    let mut q = Query::new("default", "latency", T0 - 3_600_000, T0 + 10 * 3_600_000)
        .group_by("host")
        .aggregates([
            Aggregate::Count,
            Aggregate::Sum,
            Aggregate::Min,
            Aggregate::Max,
        ]);
    if let Some(s) = step {
        q = q.step(s);
    }
    let r = engine.query(&q).unwrap();
    let mut m = BTreeMap::new();
    for g in &r.groups {
        for p in &g.points {
            let Value::Count(c) = p.values[0] else {
                panic!("not a count")
            };
            let num = |v: &Value| match v {
                Value::Number(x) => *x,
                other => panic!("not a number: {other:?}"),
            };
            m.insert(
                (g.group[0].clone(), p.start, p.end),
                (
                    c,
                    p.values[1].as_f64().unwrap(),
                    num(&p.values[2]),
                    num(&p.values[3]),
                ),
            );
        }
    }
    m
}

fn configure(b: EngineBuilder, spec: WindowSpec) -> EngineBuilder {
    let b = b.shards(3).window(spec);
    if spec.is_tumbling() {
        b.tiers([
            Tier::new(Duration::from_secs(10), Duration::from_secs(3_600)),
            Tier::new(Duration::from_secs(60), Duration::from_secs(86_400)),
        ])
    } else {
        b
    }
}

fn durable(clock: &ManualClock, dir: &std::path::Path, spec: WindowSpec) -> EngineBuilder {
    configure(builder(clock), spec).durable(
        Durability::new(dir)
            .ack(Ack::AfterAppend)
            .segment_size(64 * 1024),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_plus_tail_equals_the_streaming_run() {
    for spec in [
        WindowSpec::tumbling(Duration::from_secs(10)),
        WindowSpec::hopping(Duration::from_secs(10), Duration::from_secs(2)),
        WindowSpec::session(Duration::from_secs(3)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let input = events(&mut Rng::new(11), 4_000, 12, 60);
        let reference = configure(builder(&clock), spec).build().unwrap();
        let batches: Vec<Vec<Event>> = input.chunks(50).map(<[Event]>::to_vec).collect();
        let (head, tail) = batches.split_at(50);
        {
            let engine = durable(&clock, dir.path(), spec).build().unwrap();
            engine.ready().await.unwrap();
            for b in head {
                engine.ingest(Batch::new(b.clone())).await.unwrap();
                reference.ingest(Batch::new(b.clone())).await.unwrap();
            }
            let snap = engine.snapshot().await.unwrap();
            assert_eq!(snap.position, 50);
            assert!(snap.path.exists());
            // Windows open at the snapshot are completed by the tail.
            for b in tail {
                engine.ingest(Batch::new(b.clone())).await.unwrap();
                reference.ingest(Batch::new(b.clone())).await.unwrap();
            }
            engine.shutdown(WAIT).await;
        }
        reference.finish(WAIT).await.unwrap();
        let step = spec.is_tumbling().then_some(Duration::from_secs(60));
        let want = cells(&reference, None);
        let want_coarse = step.map(|s| cells(&reference, Some(s)));
        assert!(want.len() > 10, "{spec:?}");

        let engine = durable(&clock, dir.path(), spec).build().unwrap();
        engine.ready().await.unwrap();
        let (_, replayed) = engine.log_counts();
        assert_eq!(
            replayed,
            tail.len() as u64,
            "{spec:?}: only the tail is replayed"
        );
        assert_eq!(engine.last_snapshot().unwrap().position, 50);
        engine.finish(WAIT).await.unwrap();
        assert_eq!(cells(&engine, None), want, "{spec:?}");
        if let Some(s) = step {
            assert_eq!(Some(cells(&engine, Some(s))), want_coarse, "coarse tier");
        }
        engine.shutdown(WAIT).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_snapshots_bound_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let spec = WindowSpec::tumbling(Duration::from_secs(10));
    let input = events(&mut Rng::new(3), 2_300, 5, 60);
    let reference = configure(builder(&clock), spec).build().unwrap();
    {
        let engine = configure(builder(&clock), spec)
            .durable(Durability::new(dir.path()).snapshot_every(Some(10)))
            .build()
            .unwrap();
        for b in input.chunks(100) {
            engine.ingest(Batch::new(b.to_vec())).await.unwrap();
            reference.ingest(Batch::new(b.to_vec())).await.unwrap();
        }
        // The background snapshot after batch 20 runs while ingest goes on; one more
        // on demand makes the outcome independent of its timing.
        engine.snapshot().await.unwrap();
        engine.shutdown(WAIT).await;
    }
    let files: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "older snapshots are deleted: {files:?}");
    reference.finish(WAIT).await.unwrap();
    let engine = configure(builder(&clock), spec)
        .durable(Durability::new(dir.path()).snapshot_every(Some(10)))
        .build()
        .unwrap();
    engine.ready().await.unwrap();
    assert_eq!(
        engine.log_counts(),
        (0, 0),
        "the snapshot covers the whole log"
    );
    engine.finish(WAIT).await.unwrap();
    assert_eq!(cells(&engine, None), cells(&reference, None));
}

#[tokio::test]
async fn a_snapshot_of_another_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let spec = WindowSpec::tumbling(Duration::from_secs(10));
    {
        let engine = durable(&clock, dir.path(), spec).build().unwrap();
        engine
            .ingest(Batch::new(vec![Event::new("latency", T0, 1.0)]))
            .await
            .unwrap();
        engine.snapshot().await.unwrap();
        engine.shutdown(WAIT).await;
    }
    // Open windows live per shard: another shard count cannot use the snapshot.
    let e = durable(&clock, dir.path(), spec)
        .shards(2)
        .build()
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(ref m) if m.contains("another configuration")),
        "{e}"
    );
    // In-memory engines have no snapshots.
    let mem = builder(&clock).build().unwrap();
    assert!(matches!(mem.snapshot().await, Err(Error::Config(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_deletes_covered_segments_and_restart_still_matches() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let spec = WindowSpec::tumbling(Duration::from_secs(10));
    let input = events(&mut Rng::new(5), 3_000, 8, 60);
    let reference = configure(builder(&clock), spec).build().unwrap();
    let build = || {
        configure(builder(&clock), spec)
            .durable(
                Durability::new(dir.path())
                    .segment_size(8 * 1024)
                    .compact_after_snapshot(true),
            )
            .build()
            .unwrap()
    };
    let segments = || {
        std::fs::read_dir(dir.path().join("log"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log")
            })
            .count()
    };
    let batches: Vec<Vec<Event>> = input.chunks(30).map(<[Event]>::to_vec).collect();
    {
        let engine = build();
        assert!(
            matches!(engine.compact_log().await, Err(Error::Config(_))),
            "no snapshot yet"
        );
        for b in &batches[..80] {
            engine.ingest(Batch::new(b.clone())).await.unwrap();
            reference.ingest(Batch::new(b.clone())).await.unwrap();
        }
        let before = segments();
        assert!(before > 3, "{before} segments");
        engine.snapshot().await.unwrap(); // compacts right after
        let after = segments();
        assert!(after < before, "{after} of {before} segments left");
        for b in &batches[80..] {
            engine.ingest(Batch::new(b.clone())).await.unwrap();
            reference.ingest(Batch::new(b.clone())).await.unwrap();
        }
        // A backfill sees only the kept part of the log.
        let r = engine
            .backfill(weft_analytics::BackfillRange::new(
                T0 - 60_000,
                T0 + 3_600_000,
            ))
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert!(
            r.batches < batches.len() as u64 && r.batches >= 20,
            "{}",
            r.batches
        );
        engine.shutdown(WAIT).await;
    }
    reference.finish(WAIT).await.unwrap();
    let engine = build();
    engine.ready().await.unwrap();
    assert_eq!(engine.log_counts().1, 20, "the tail behind the snapshot");
    engine.finish(WAIT).await.unwrap();
    assert_eq!(cells(&engine, None), cells(&reference, None));
    engine.shutdown(WAIT).await;
    drop(engine);

    // Without the snapshot that covers the compacted part, the engine refuses to start
    // rather than rebuild a partial state.
    for f in std::fs::read_dir(dir.path().join("snapshots")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let e = configure(builder(&clock), spec)
        .durable(Durability::new(dir.path()).segment_size(8 * 1024))
        .build()
        .unwrap_err();
    assert!(
        matches!(e, Error::Log(ref m) if m.contains("no snapshot covering it")),
        "{e}"
    );
}
