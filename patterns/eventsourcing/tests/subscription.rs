//! Subscriptions: durable checkpoints across restarts, at-least-once redelivery made
//! idempotent, upcasting on replay.

mod common;

use std::time::Duration;

use common::ev;
use weft_eventsourcing::{
    CheckpointStore, Error, EventStore, ExpectedVersion, FileCheckpointStore, FileLog,
    FileLogConfig, IdempotencyGuard, InMemoryCheckpointStore, InMemoryStore, JsonUpcaster,
    NewEvent, Subscription,
};

#[test]
fn a_restarted_subscriber_resumes_from_its_file_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let cp_dir = dir.path().join("checkpoints");
    let mut seen = Vec::new();
    {
        let log = FileLog::open(&log_dir, FileLogConfig::default()).unwrap();
        for i in 0..10 {
            log.append(
                "s",
                ExpectedVersion::Exact(i),
                vec![ev("X", &i.to_string())],
            )
            .unwrap();
        }
        let cps = FileCheckpointStore::open(&cp_dir).unwrap();
        let mut sub = Subscription::new(&log, "proj", cps).unwrap();
        sub.process(4, Duration::ZERO, |e| {
            seen.push(e.position);
            Ok::<_, String>(())
        })
        .unwrap();
        assert_eq!(sub.position(), 4);
    } // "crash": everything dropped
    let log = FileLog::open(&log_dir, FileLogConfig::default()).unwrap();
    let cps = FileCheckpointStore::open(&cp_dir).unwrap();
    assert_eq!(cps.load("proj").unwrap(), Some(4));
    let mut sub = Subscription::new(&log, "proj", cps).unwrap();
    assert_eq!(sub.name(), "proj");
    while sub
        .process(3, Duration::ZERO, |e| {
            seen.push(e.position);
            Ok::<_, String>(())
        })
        .unwrap()
        > 0
    {}
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
}

#[test]
fn damaged_checkpoint_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cps = FileCheckpointStore::open(dir.path()).unwrap();
    cps.save("a/b", 9).unwrap(); // odd names are escaped, never a path
    assert_eq!(cps.load("a/b").unwrap(), Some(9));
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        file.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("a%2Fb")
    );
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    assert!(matches!(cps.load("a/b"), Err(Error::Corrupt { .. })));
    assert!(Subscription::new(InMemoryStore::new(), "", InMemoryCheckpointStore::new()).is_err());
}

/// A crash after handling but before the checkpoint is saved redelivers the batch; a
/// handler that keeps an `IdempotencyGuard` with its state applies each event once.
#[test]
fn redelivery_after_a_crash_is_absorbed_by_the_idempotency_guard() {
    let store = InMemoryStore::new();
    for i in 1..=6 {
        store
            .append("n", ExpectedVersion::Any, vec![ev("Add", &i.to_string())])
            .unwrap();
    }
    let cps = InMemoryCheckpointStore::new();
    // The read model: a sum plus its guard, "persisted" together.
    let mut model = (0u64, IdempotencyGuard::new());
    let apply = |model: &mut (u64, IdempotencyGuard), e: &weft_eventsourcing::RecordedEvent| {
        if model.1.first_time(e.position) {
            model.0 += std::str::from_utf8(&e.payload)
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    };
    {
        let mut sub = Subscription::new(&store, "sum", cps.clone()).unwrap();
        sub.process(2, Duration::ZERO, |e| {
            apply(&mut model, e);
            Ok::<_, String>(())
        })
        .unwrap();
        // Handle the next batch, then crash before committing it.
        for e in sub.next_batch(3, Duration::ZERO).unwrap() {
            apply(&mut model, &e);
        }
    }
    assert_eq!(model.0, 1 + 2 + 3 + 4 + 5);
    let mut sub = Subscription::new(&store, "sum", cps).unwrap();
    assert_eq!(sub.position(), 2, "the uncommitted batch is redelivered");
    let mut delivered = 0;
    while sub
        .process(10, Duration::ZERO, |e| {
            delivered += 1;
            apply(&mut model, e);
            Ok::<_, String>(())
        })
        .unwrap()
        > 0
    {}
    assert_eq!(delivered, 4); // positions 2..=5, three of them seen before
    assert_eq!(model.0, 21, "each event counted exactly once");
    assert_eq!(model.1.next_position(), 6);
}

#[test]
fn upcasters_apply_on_replay() {
    let store = InMemoryStore::new();
    store
        .append(
            "u",
            ExpectedVersion::Any,
            vec![NewEvent::new("Named", 1, br#"{"n":"x"}"#.to_vec())],
        )
        .unwrap();
    store
        .append(
            "u",
            ExpectedVersion::Any,
            vec![NewEvent::new("Named", 2, br#"{"name":"y"}"#.to_vec())],
        )
        .unwrap();
    let mut sub = Subscription::new(&store, "replay", InMemoryCheckpointStore::new())
        .unwrap()
        .with_upcaster(JsonUpcaster::new("Named", 1, |v| {
            Ok(serde_json::json!({ "name": v["n"] }))
        }));
    let batch = sub.next_batch(10, Duration::ZERO).unwrap();
    assert_eq!(&*batch[0].payload, br#"{"name":"x"}"#);
    assert_eq!(batch[0].schema_version, 2);
    assert_eq!(&*batch[1].payload, br#"{"name":"y"}"#);
}

/// A live subscriber on the file log receives events appended by another thread after
/// it caught up, in order, each once.
#[test]
fn live_delivery_on_the_file_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path(), FileLogConfig::default()).unwrap();
    log.append("a", ExpectedVersion::Any, vec![ev("X", "0")])
        .unwrap();
    let mut sub = Subscription::new(&log, "live", InMemoryCheckpointStore::new()).unwrap();
    let mut got = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=20 {
                log.append("a", ExpectedVersion::Any, vec![ev("X", &i.to_string())])
                    .unwrap();
            }
        });
        while got.len() < 21 {
            sub.process(5, Duration::from_secs(10), |e| {
                got.push(e.position);
                Ok::<_, String>(())
            })
            .unwrap();
        }
    });
    assert_eq!(got, (0..21).collect::<Vec<_>>());
    assert_eq!(log.head_position(), 21);
}
