//! Repository: loads, conflict retries, snapshots (with fallback), upcasting, codecs.

mod common;

use std::sync::Arc;

use common::{Account, AccountCommand as C, AccountEvent};
use weft_eventsourcing::{
    AggregateTest, Error, EventStore, ExecuteError, ExpectedVersion, FileLog, FileLogConfig,
    FileSnapshotStore, InMemorySnapshotStore, InMemoryStore, JsonUpcaster, Metadata, NewEvent,
    PostcardCodec, Repository, Snapshot, SnapshotStore,
};

#[test]
fn given_when_then() {
    AggregateTest::<Account>::given_no_previous_events()
        .when(&C::Open)
        .then_expect_events(&[AccountEvent::Opened]);
    AggregateTest::<Account>::given(&[AccountEvent::Opened, AccountEvent::Deposited { amount: 5 }])
        .when(&C::Withdraw(6))
        .then_expect_error("insufficient funds: balance 5");
    let r = AggregateTest::<Account>::given(&[AccountEvent::Opened])
        .when(&C::Deposit(3))
        .into_result();
    assert_eq!(r, Ok(vec![AccountEvent::Deposited { amount: 3 }]));
}

#[test]
fn execute_appends_with_metadata_and_rejects_without_appending() {
    let repo = Repository::<Account, _>::new(InMemoryStore::new());
    let meta = Metadata::new().correlation_id(weft_eventsourcing::EventId::from_u128(5));
    repo.execute_with("a", &C::Open, meta).unwrap();
    let done = repo.execute("a", &C::Deposit(10)).unwrap();
    assert_eq!(
        (done.version, done.attempts, done.state.balance),
        (2, 1, 10)
    );
    match repo.execute("a", &C::Withdraw(11)) {
        Err(ExecuteError::Rejected(msg)) => assert_eq!(msg, "insufficient funds: balance 10"),
        other => panic!("{other:?}"),
    }
    let events = repo.store().read_stream("account-a", 1, 10).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].metadata.correlation_id, meta.correlation_id);
    assert_eq!(&*events[1].event_type, "Deposited");
    assert_eq!(events[1].schema_version, 2);
}

/// A writer slips in between the load and the append: the repository re-reads only the
/// tail (one event), decides again on the new state, and succeeds on the second attempt.
#[test]
fn conflict_is_retried_on_the_tail_only() {
    struct Interfering {
        inner: InMemoryStore,
        armed: std::sync::atomic::AtomicBool,
    }
    impl std::fmt::Debug for Interfering {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Interfering")
        }
    }
    impl EventStore for Interfering {
        fn append(
            &self,
            stream: &str,
            expected: ExpectedVersion,
            events: Vec<NewEvent>,
        ) -> Result<weft_eventsourcing::AppendResult, Error> {
            if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
                let e = serde_json::to_vec(&AccountEvent::Deposited { amount: 100 }).unwrap();
                self.inner
                    .append(
                        stream,
                        ExpectedVersion::Any,
                        vec![NewEvent::new("Deposited", 2, e)],
                    )
                    .unwrap();
            }
            self.inner.append(stream, expected, events)
        }
        fn read_stream(
            &self,
            s: &str,
            from: u64,
            max: usize,
        ) -> Result<Vec<weft_eventsourcing::RecordedEvent>, Error> {
            self.inner.read_stream(s, from, max)
        }
        fn read_all(
            &self,
            from: u64,
            max: usize,
        ) -> Result<Vec<weft_eventsourcing::RecordedEvent>, Error> {
            self.inner.read_all(from, max)
        }
        fn stream_version(&self, s: &str) -> Result<u64, Error> {
            self.inner.stream_version(s)
        }
        fn head_position(&self) -> u64 {
            self.inner.head_position()
        }
        fn wait_for_position(&self, p: u64, t: std::time::Duration) -> bool {
            self.inner.wait_for_position(p, t)
        }
    }
    let store = Interfering {
        inner: InMemoryStore::new(),
        armed: false.into(),
    };
    let repo = Repository::<Account, _>::new(store);
    repo.execute("x", &C::Open).unwrap();
    repo.store()
        .armed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // The first append conflicts with the interfering deposit of 100; the retry decides
    // on the state that includes it.
    let done = repo.execute("x", &C::Deposit(30)).unwrap();
    assert_eq!(done.attempts, 2);
    assert_eq!(done.state.balance, 130);
    assert_eq!(done.state.history, vec![100, 30]);
    assert_eq!(done.version, 3);
    let m = repo.metrics();
    assert_eq!(m.conflicts_retried, 1);
    // Loads: 2 (one per execute); events replayed: 1 (open) + the tail of 1, not the
    // whole stream again.
    assert_eq!(m.loads, 2);
    assert_eq!(m.events_replayed, 2);
}

#[test]
fn too_many_conflicts_is_an_error_naming_the_stream() {
    let store = Arc::new(InMemoryStore::new());
    let repo = Repository::<Account, _>::new(Arc::clone(&store))
        .max_attempts(1)
        .unwrap();
    repo.execute("y", &C::Open).unwrap();
    assert!(
        Repository::<Account, _>::new(InMemoryStore::new())
            .max_attempts(0)
            .is_err()
    );
    // Simulate a lost race by appending behind the repository's back between load and
    // append: with one attempt allowed, there is no retry.
    struct Racing(Arc<InMemoryStore>);
    impl std::fmt::Debug for Racing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Racing")
        }
    }
    impl EventStore for Racing {
        fn append(
            &self,
            s: &str,
            e: ExpectedVersion,
            ev: Vec<NewEvent>,
        ) -> Result<weft_eventsourcing::AppendResult, Error> {
            let d = serde_json::to_vec(&AccountEvent::Deposited { amount: 1 }).unwrap();
            self.0.append(
                s,
                ExpectedVersion::Any,
                vec![NewEvent::new("Deposited", 2, d)],
            )?;
            self.0.append(s, e, ev)
        }
        fn read_stream(
            &self,
            s: &str,
            f: u64,
            m: usize,
        ) -> Result<Vec<weft_eventsourcing::RecordedEvent>, Error> {
            self.0.read_stream(s, f, m)
        }
        fn read_all(
            &self,
            f: u64,
            m: usize,
        ) -> Result<Vec<weft_eventsourcing::RecordedEvent>, Error> {
            self.0.read_all(f, m)
        }
        fn stream_version(&self, s: &str) -> Result<u64, Error> {
            self.0.stream_version(s)
        }
        fn head_position(&self) -> u64 {
            self.0.head_position()
        }
        fn wait_for_position(&self, p: u64, t: std::time::Duration) -> bool {
            self.0.wait_for_position(p, t)
        }
    }
    let racing = Repository::<Account, _>::new(Racing(Arc::clone(&store)))
        .max_attempts(3)
        .unwrap();
    match racing.execute("y", &C::Deposit(5)) {
        Err(ExecuteError::Store(Error::TooManyConflicts { stream, attempts })) => {
            assert_eq!((stream.as_str(), attempts), ("account-y", 3));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(racing.metrics().conflicts_retried, 3);
}

#[test]
fn concurrent_commands_all_land_through_retries() {
    let repo = Repository::<Account, _>::new(InMemoryStore::new())
        .max_attempts(1000)
        .unwrap();
    repo.execute("hot", &C::Open).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    repo.execute("hot", &C::Deposit(1)).unwrap();
                }
            });
        }
    });
    let loaded = repo.load("hot").unwrap();
    assert_eq!((loaded.state.balance, loaded.version), (200, 201));
}

#[test]
fn snapshots_every_n_events_and_load_reads_only_the_tail() {
    let snapshots = InMemorySnapshotStore::new();
    let repo = Repository::<Account, _>::new(InMemoryStore::new())
        .with_snapshots(snapshots.clone(), 10)
        .unwrap();
    assert!(
        Repository::<Account, _>::new(InMemoryStore::new())
            .with_snapshots(InMemorySnapshotStore::new(), 0)
            .is_err()
    );
    repo.execute("s", &C::Open).unwrap();
    for i in 0..24 {
        repo.execute("s", &C::Deposit(i)).unwrap();
    }
    let snap = snapshots.load("account-s").unwrap().unwrap();
    assert_eq!(snap.version, 20);
    assert_eq!(repo.metrics().snapshots_saved, 2);
    let before = repo.metrics().events_replayed;
    let loaded = repo.load("s").unwrap();
    assert_eq!(loaded.snapshot_version, Some(20));
    assert_eq!(loaded.version, 25);
    assert_eq!(repo.metrics().events_replayed - before, 5);
    // Same state as a full replay without snapshots.
    let plain = Repository::<Account, _>::new(repo.store());
    assert_eq!(plain.load("s").unwrap().state, loaded.state);
}

#[test]
fn unusable_snapshots_fall_back_to_replay() {
    let snapshots = InMemorySnapshotStore::new();
    let repo = Repository::<Account, _>::new(InMemoryStore::new())
        .with_snapshots(snapshots.clone(), 2)
        .unwrap();
    for c in [C::Open, C::Deposit(4), C::Deposit(6)] {
        repo.execute("f", &c).unwrap();
    }
    // Garbage payload: does not decode.
    snapshots
        .save(Snapshot {
            stream_id: "account-f".into(),
            version: 2,
            schema_version: 1,
            payload: b"not json".to_vec(),
        })
        .unwrap();
    let loaded = repo.load("f").unwrap();
    assert_eq!(loaded.snapshot_version, None);
    assert_eq!((loaded.state.balance, loaded.version), (10, 3));
    // An old snapshot schema version: ignored too, even if it would decode.
    let old = serde_json::to_vec(&Account {
        open: true,
        balance: 999,
        history: vec![],
    })
    .unwrap();
    snapshots
        .save(Snapshot {
            stream_id: "account-f".into(),
            version: 3,
            schema_version: 0,
            payload: old,
        })
        .unwrap();
    let loaded = repo.load("f").unwrap();
    assert_eq!(loaded.state.balance, 10);
    assert_eq!(repo.metrics().snapshot_fallbacks, 2);
}

#[test]
fn file_snapshots_survive_reopen_and_damage_means_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path().join("log"), FileLogConfig::default()).unwrap();
    let snaps = FileSnapshotStore::open(dir.path().join("snaps")).unwrap();
    let repo = Repository::<Account, _>::new(&log)
        .with_snapshots(snaps.clone(), 3)
        .unwrap();
    for c in [C::Open, C::Deposit(1), C::Deposit(2), C::Deposit(3)] {
        repo.execute("fs/1", &c).unwrap();
    }
    assert_eq!(repo.load("fs/1").unwrap().snapshot_version, Some(3));
    // Damage the snapshot file: the checksum catches it and the load replays.
    let file = std::fs::read_dir(dir.path().join("snaps"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let loaded = repo.load("fs/1").unwrap();
    assert_eq!(loaded.snapshot_version, None);
    assert_eq!(loaded.state.balance, 6);
}

/// Version 1 of `Deposited` stored `{"Deposited":{"cents":N}}`; version 2 is
/// `{"Deposited":{"amount":N/100}}`. The upcaster lifts old events on every load.
#[test]
fn upcasters_apply_on_load() {
    let store = InMemoryStore::new();
    let opened = serde_json::to_vec(&AccountEvent::Opened).unwrap();
    store
        .append(
            "account-u",
            ExpectedVersion::NoStream,
            vec![
                NewEvent::new("Opened", 1, opened),
                NewEvent::new("Deposited", 1, br#"{"Deposited":{"cents":500}}"#.to_vec()),
            ],
        )
        .unwrap();
    let without = Repository::<Account, _>::new(&store);
    assert!(matches!(without.load("u"), Err(Error::Codec { .. })));
    let repo = Repository::<Account, _>::new(&store).with_upcaster(JsonUpcaster::new(
        "Deposited",
        1,
        |v| {
            let cents = v["Deposited"]["cents"].as_i64().ok_or("cents missing")?;
            Ok(serde_json::json!({ "Deposited": { "amount": cents / 100 } }))
        },
    ));
    let loaded = repo.load("u").unwrap();
    assert_eq!(loaded.state.balance, 5);
    // New events are written at the current version and need no upcasting.
    repo.execute("u", &C::Deposit(1)).unwrap();
    assert_eq!(
        store.read_stream("account-u", 3, 1).unwrap()[0].schema_version,
        2
    );
    assert_eq!(repo.load("u").unwrap().state.balance, 6);
    // A failing upcaster is an error naming the event type and version.
    let broken = Repository::<Account, _>::new(&store).with_upcaster(JsonUpcaster::new(
        "Deposited",
        1,
        |_| Err("nope".into()),
    ));
    let err = broken.load("u").unwrap_err();
    assert!(
        matches!(
            err,
            Error::Upcast {
                from_version: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn postcard_codec_round_trips_through_the_file_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = FileLog::open(dir.path(), FileLogConfig::default()).unwrap();
        let repo = Repository::<Account, _>::new(&log).with_codec(PostcardCodec);
        for c in [C::Open, C::Deposit(7), C::Withdraw(2)] {
            repo.execute("p", &c).unwrap();
        }
    }
    let log = FileLog::open(dir.path(), FileLogConfig::default()).unwrap();
    let repo = Repository::<Account, _>::new(&log).with_codec(PostcardCodec);
    let loaded = repo.load("p").unwrap();
    assert_eq!(loaded.state.history, vec![7, -2]);
    // The JSON codec cannot read postcard payloads: a clear codec error, not a panic.
    let json = Repository::<Account, _>::new(&log);
    let err = json.load("p").unwrap_err();
    assert!(err.to_string().contains("account-p"), "{err}");
}
