//! Property tests: snapshot + tail folds to the same state as a full fold; concurrent
//! appenders with retries leave a gapless, duplicate-free stream.

mod common;

use std::collections::HashSet;

use common::{Account, AccountCommand, AccountEvent};
use proptest::prelude::*;
use weft_eventsourcing::{
    Aggregate, Codec, EventStore, FileLog, FileLogConfig, FsyncPolicy, InMemorySnapshotStore,
    InMemoryStore, JsonCodec, PostcardCodec, Repository,
};

fn command() -> impl Strategy<Value = AccountCommand> {
    prop_oneof![
        Just(AccountCommand::Open),
        (1i64..100).prop_map(AccountCommand::Deposit),
        (1i64..100).prop_map(AccountCommand::Withdraw),
    ]
}

fn fold(state: &mut Account, events: &[AccountEvent]) {
    for e in events {
        state.apply(e);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any event history and any split point k: encoding the fold of the first k
    /// events as a snapshot, decoding it and folding the rest gives the full fold, with
    /// either codec.
    #[test]
    fn snapshot_plus_tail_equals_full_fold(
        commands in prop::collection::vec(command(), 0..60),
        split in any::<prop::sample::Index>(),
    ) {
        let mut state = Account::default();
        let mut events = Vec::new();
        for c in &commands {
            if let Ok(new) = state.handle(c) {
                fold(&mut state, &new);
                events.extend(new);
            }
        }
        let mut full = Account::default();
        fold(&mut full, &events);
        let k = if events.is_empty() { 0 } else { split.index(events.len() + 1) };
        let mut prefix = Account::default();
        fold(&mut prefix, &events[..k]);
        let mut from_json: Account = JsonCodec.decode(&JsonCodec.encode(&prefix).unwrap()).unwrap();
        fold(&mut from_json, &events[k..]);
        prop_assert_eq!(&from_json, &full);
        let mut from_postcard: Account = PostcardCodec.decode(&PostcardCodec.encode(&prefix).unwrap()).unwrap();
        fold(&mut from_postcard, &events[k..]);
        prop_assert_eq!(&from_postcard, &full);
    }

    /// Through the repository: with snapshots every `every` events, every load equals the
    /// load of a repository that replays everything.
    #[test]
    fn repository_snapshot_loads_equal_replays(
        commands in prop::collection::vec(command(), 1..60),
        every in 1u64..8,
    ) {
        let store = InMemoryStore::new();
        let snaps = Repository::<Account, _>::new(&store)
            .with_snapshots(InMemorySnapshotStore::new(), every)
            .unwrap();
        let replay = Repository::<Account, _>::new(&store);
        for c in &commands {
            let _ = snaps.execute("p", c);
            let a = snaps.load("p").unwrap();
            let b = replay.load("p").unwrap();
            prop_assert_eq!(&a.state, &b.state);
            prop_assert_eq!(a.version, b.version);
            if let Some(v) = a.snapshot_version {
                prop_assert!(v <= a.version && v % every == 0 || v == a.version);
            }
        }
    }
}

/// One concurrent run: `threads` writers each run `per_thread` commands through their
/// own repository against `store`, with retries; then the stream must hold exactly one
/// event per command, versions 1..=n with no gap and no duplicate.
fn concurrent_appenders<S: EventStore>(store: &S, threads: usize, per_thread: usize, seed: u64) {
    let setup = Repository::<Account, _>::new(store);
    setup.execute("race", &AccountCommand::Open).unwrap();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let repo = Repository::<Account, _>::new(store)
                    .max_attempts(10_000)
                    .unwrap();
                let mut rng = fastrand::Rng::with_seed(seed ^ t as u64);
                for i in 0..per_thread {
                    if rng.bool() {
                        std::thread::yield_now();
                    }
                    // A unique amount per command identifies it in the stream.
                    let amount = (t * 1000 + i + 1) as i64;
                    let done = repo
                        .execute("race", &AccountCommand::Deposit(amount))
                        .unwrap();
                    assert!(done.attempts >= 1);
                }
            });
        }
    });
    let events = store.read_stream("account-race", 1, usize::MAX).unwrap();
    let n = 1 + threads * per_thread;
    assert_eq!(events.len(), n);
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=n as u64).collect::<Vec<_>>(), "gapless");
    let amounts: HashSet<i64> = events[1..]
        .iter()
        .map(
            |e| match JsonCodec.decode::<AccountEvent>(&e.payload).unwrap() {
                AccountEvent::Deposited { amount } => amount,
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert_eq!(amounts.len(), threads * per_thread, "duplicate-free");
    let expected: HashSet<i64> = (0..threads)
        .flat_map(|t| (0..per_thread).map(move |i| (t * 1000 + i + 1) as i64))
        .collect();
    assert_eq!(amounts, expected, "every command landed exactly once");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn concurrent_appenders_in_memory(threads in 2usize..5, per_thread in 1usize..25, seed in any::<u64>()) {
        concurrent_appenders(&InMemoryStore::new(), threads, per_thread, seed);
    }

    #[test]
    fn concurrent_appenders_file_log(threads in 2usize..5, per_thread in 1usize..15, seed in any::<u64>()) {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::open(dir.path(), FileLogConfig::default().fsync(FsyncPolicy::Never)).unwrap();
        concurrent_appenders(&log, threads, per_thread, seed);
        drop(log);
        // And after a reopen the rebuilt index says the same.
        let log = FileLog::open(dir.path(), FileLogConfig::default()).unwrap();
        prop_assert_eq!(log.stream_version("account-race").unwrap(), 1 + (threads * per_thread) as u64);
    }
}
