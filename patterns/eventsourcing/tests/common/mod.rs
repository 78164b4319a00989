//! The conformance suite every `EventStore` backend must pass, and a small aggregate.

#![allow(dead_code)] // each test file uses a different part

use std::collections::HashSet;
use std::time::Duration;

use weft_eventsourcing::{
    Aggregate, DomainEvent, Error, EventId, EventStore, ExpectedVersion, InMemoryCheckpointStore,
    Metadata, NewEvent, Subscription,
};

pub(crate) fn ev(ty: &str, payload: &str) -> NewEvent {
    NewEvent::new(ty, 1, payload.as_bytes().to_vec())
}

/// Runs every conformance check against a fresh store from `make`.
pub(crate) fn conformance<S: EventStore>(make: impl Fn() -> S) {
    append_assigns_versions_and_positions(&make());
    conflicts_name_both_versions(&make());
    invalid_appends_are_rejected(&make());
    read_ranges(&make());
    global_order_interleaves_streams(&make());
    metadata_round_trips(&make());
    concurrent_appenders_one_winner_per_version(&make());
    subscriptions_catch_up_then_go_live(&make());
}

fn append_assigns_versions_and_positions<S: EventStore>(s: &S) {
    let r = s
        .append(
            "a",
            ExpectedVersion::NoStream,
            vec![ev("X", "1"), ev("X", "2")],
        )
        .unwrap();
    assert_eq!((r.version, r.first_position, r.last_position), (2, 0, 1));
    let r = s
        .append("a", ExpectedVersion::Exact(2), vec![ev("Y", "3")])
        .unwrap();
    assert_eq!((r.version, r.first_position, r.last_position), (3, 2, 2));
    let r = s
        .append("b", ExpectedVersion::Any, vec![ev("Z", "4")])
        .unwrap();
    assert_eq!((r.version, r.first_position), (1, 3));
    assert_eq!(s.stream_version("a").unwrap(), 3);
    assert_eq!(s.stream_version("nope").unwrap(), 0);
    assert_eq!(s.head_position(), 4);
    let a = s.read_stream("a", 1, 100).unwrap();
    let payloads: Vec<_> = a.iter().map(|e| e.payload.to_vec()).collect();
    assert_eq!(payloads, [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
    assert!(a.iter().all(|e| &*e.stream_id == "a"));
    assert_eq!(a.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(&*a[2].event_type, "Y");
}

fn conflicts_name_both_versions<S: EventStore>(s: &S) {
    s.append("c", ExpectedVersion::NoStream, vec![ev("X", "")])
        .unwrap();
    match s.append("c", ExpectedVersion::Exact(0), vec![ev("X", "")]) {
        Err(Error::Conflict {
            stream,
            expected,
            actual,
        }) => assert_eq!((stream.as_str(), expected, actual), ("c", 0, 1)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let err = s
        .append("c", ExpectedVersion::Exact(5), vec![ev("X", "")])
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("expected version 5") && msg.contains("at version 1"),
        "{msg}"
    );
    assert!(
        s.append("new", ExpectedVersion::Exact(1), vec![ev("X", "")])
            .unwrap_err()
            .is_conflict()
    );
    // A failed append leaves nothing behind.
    assert_eq!(s.stream_version("c").unwrap(), 1);
    assert_eq!(s.stream_version("new").unwrap(), 0);
    assert_eq!(s.head_position(), 1);
}

fn invalid_appends_are_rejected<S: EventStore>(s: &S) {
    assert!(matches!(
        s.append("", ExpectedVersion::Any, vec![ev("X", "")]),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        s.append("s", ExpectedVersion::Any, vec![]),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        s.append("s", ExpectedVersion::Any, vec![ev("", "")]),
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(s.head_position(), 0);
}

fn read_ranges<S: EventStore>(s: &S) {
    for i in 0..10 {
        s.append(
            "r",
            ExpectedVersion::Exact(i * 2),
            vec![
                ev("X", &format!("{}", i * 2 + 1)),
                ev("X", &format!("{}", i * 2 + 2)),
            ],
        )
        .unwrap();
    }
    let versions = |from, max| {
        s.read_stream("r", from, max)
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect::<Vec<_>>()
    };
    assert_eq!(versions(1, 3), [1, 2, 3]);
    assert_eq!(versions(6, 4), [6, 7, 8, 9]);
    assert_eq!(versions(19, 100), [19, 20]);
    assert_eq!(versions(21, 100), Vec::<u64>::new());
    assert_eq!(versions(0, 2), [1, 2]); // from 0 reads from the start
    assert_eq!(versions(5, 0), Vec::<u64>::new());
    let positions = |from, max| {
        s.read_all(from, max)
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect::<Vec<_>>()
    };
    assert_eq!(positions(0, 3), [0, 1, 2]);
    assert_eq!(positions(3, 3), [3, 4, 5]); // starting mid-record
    assert_eq!(positions(18, 10), [18, 19]);
    assert_eq!(positions(20, 10), Vec::<u64>::new());
    assert_eq!(positions(u64::MAX, 10), Vec::<u64>::new());
    assert!(s.read_stream("missing", 1, 10).unwrap().is_empty());
    // Payloads match versions.
    for e in s.read_stream("r", 1, 100).unwrap() {
        assert_eq!(&*e.payload, e.version.to_string().as_bytes());
    }
}

fn global_order_interleaves_streams<S: EventStore>(s: &S) {
    let mut expected = Vec::new();
    for i in 0..30u64 {
        let stream = format!("g{}", i % 3);
        let r = s
            .append(
                &stream,
                ExpectedVersion::Exact(i / 3),
                vec![ev("X", &i.to_string())],
            )
            .unwrap();
        expected.push((stream, r.version, r.first_position));
    }
    let all = s.read_all(0, usize::MAX).unwrap();
    assert_eq!(all.len(), 30);
    for (e, (stream, version, position)) in all.iter().zip(&expected) {
        assert_eq!(
            (&*e.stream_id, e.version, e.position),
            (stream.as_str(), *version, *position)
        );
    }
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(positions, (0..30).collect::<Vec<_>>());
    let ids: HashSet<EventId> = all.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 30);
}

fn metadata_round_trips<S: EventStore>(s: &S) {
    let corr = EventId::from_u128(0xabc);
    let cause = EventId::from_u128(0xdef);
    let mut e = NewEvent::new("Typed", 7, vec![0, 255, 1]);
    e.metadata = Metadata::new().correlation_id(corr).causation_id(cause);
    let id = e.event_id;
    s.append("m", ExpectedVersion::Any, vec![e]).unwrap();
    let got = &s.read_stream("m", 1, 1).unwrap()[0];
    assert_eq!(got.event_id, id);
    assert_eq!(got.metadata.correlation_id, Some(corr));
    assert_eq!(got.metadata.causation_id, Some(cause));
    assert_eq!(got.schema_version, 7);
    assert_eq!(&*got.payload, &[0, 255, 1]);
    assert!(got.timestamp_nanos() > 0);
}

fn concurrent_appenders_one_winner_per_version<S: EventStore>(s: &S) {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 25;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                let mut done = 0;
                while done < PER_THREAD {
                    let v = s.stream_version("hot").unwrap();
                    match s.append(
                        "hot",
                        ExpectedVersion::Exact(v),
                        vec![ev("X", &format!("{t}:{done}"))],
                    ) {
                        Ok(r) => {
                            assert_eq!(r.version, v + 1);
                            done += 1;
                        }
                        Err(e) => assert!(e.is_conflict(), "{e}"),
                    }
                }
            });
        }
    });
    let events = s.read_stream("hot", 1, usize::MAX).unwrap();
    assert_eq!(events.len(), THREADS * PER_THREAD);
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        (1..=(THREADS * PER_THREAD) as u64).collect::<Vec<_>>()
    );
    let payloads: HashSet<Vec<u8>> = events.iter().map(|e| e.payload.to_vec()).collect();
    assert_eq!(payloads.len(), THREADS * PER_THREAD, "no duplicates");
}

fn subscriptions_catch_up_then_go_live<S: EventStore>(s: &S) {
    for i in 0..5 {
        s.append(
            &format!("sub{i}"),
            ExpectedVersion::Any,
            vec![ev("X", &i.to_string())],
        )
        .unwrap();
    }
    let checkpoints = InMemoryCheckpointStore::new();
    let mut seen = Vec::new();
    let mut sub = Subscription::new(s, "reader", checkpoints.clone()).unwrap();
    let n = sub
        .process(3, Duration::ZERO, |e| {
            seen.push(e.position);
            Ok::<_, String>(())
        })
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(sub.position(), 3);
    // Restart: resume from the checkpoint, catch up the rest.
    let mut sub = Subscription::new(s, "reader", checkpoints.clone()).unwrap();
    sub.process(100, Duration::ZERO, |e| {
        seen.push(e.position);
        Ok::<_, String>(())
    })
    .unwrap();
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    // Live: a writer appends while the subscriber waits.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            s.append("live", ExpectedVersion::Any, vec![ev("L", "x")])
                .unwrap();
        });
        let mut got = Vec::new();
        while got.is_empty() {
            got = sub.next_batch(10, Duration::from_secs(10)).unwrap();
        }
        assert_eq!(&*got[0].stream_id, "live");
        assert_eq!(got[0].position, 5);
        sub.commit(6).unwrap();
    });
    // A failing handler leaves the checkpoint at the failed event: redelivered.
    s.append("f", ExpectedVersion::Any, vec![ev("X", "a"), ev("X", "b")])
        .unwrap();
    let err = sub
        .process(10, Duration::ZERO, |e| {
            if e.position == 7 { Err("boom") } else { Ok(()) }
        })
        .unwrap_err();
    assert!(err.to_string().contains("position 7"), "{err}");
    assert_eq!(sub.position(), 7);
    let again = sub.next_batch(10, Duration::ZERO).unwrap();
    assert_eq!(again[0].position, 7);
}

// ---------------------------------------------------------------------------
// A small aggregate for repository tests.
// ---------------------------------------------------------------------------

#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Account {
    pub(crate) open: bool,
    pub(crate) balance: i64,
    pub(crate) history: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum AccountEvent {
    Opened,
    Deposited { amount: i64 },
    Withdrew { amount: i64 },
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::Opened => "Opened",
            AccountEvent::Deposited { .. } => "Deposited",
            AccountEvent::Withdrew { .. } => "Withdrew",
        }
    }
    fn schema_version(&self) -> u32 {
        match self {
            AccountEvent::Deposited { .. } => 2,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum AccountCommand {
    Open,
    Deposit(i64),
    Withdraw(i64),
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = String;

    fn handle(&self, c: &AccountCommand) -> Result<Vec<AccountEvent>, String> {
        match c {
            AccountCommand::Open if self.open => Err("already open".into()),
            AccountCommand::Open => Ok(vec![AccountEvent::Opened]),
            _ if !self.open => Err("not open".into()),
            AccountCommand::Deposit(n) => Ok(vec![AccountEvent::Deposited { amount: *n }]),
            AccountCommand::Withdraw(n) if *n > self.balance => {
                Err(format!("insufficient funds: balance {}", self.balance))
            }
            AccountCommand::Withdraw(n) => Ok(vec![AccountEvent::Withdrew { amount: *n }]),
        }
    }

    fn apply(&mut self, e: &AccountEvent) {
        match e {
            AccountEvent::Opened => self.open = true,
            AccountEvent::Deposited { amount } => {
                self.balance += amount;
                self.history.push(*amount);
            }
            AccountEvent::Withdrew { amount } => {
                self.balance -= amount;
                self.history.push(-amount);
            }
        }
    }
}
