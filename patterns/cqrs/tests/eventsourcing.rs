//! The `eventsourcing` feature: commands, aggregates and projections over one
//! weft-eventsourcing store.
#![cfg(feature = "eventsourcing")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_cqrs::{Command, CommandBus, EventSource, Projection, Recorded, StoreLog, projection};
use weft_eventsourcing::{Aggregate, DomainEvent, EventStore, FileLog, FileLogConfig, Repository};

/// Guards against a hung test only; outcomes never depend on it.
const HANG: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum AccountEvent {
    Deposited(i64),
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> &'static str {
        "Deposited"
    }
}

/// An aggregate whose events share the stream `Account-{id}` with the bus's commands.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: i64,
}

impl Aggregate for Account {
    const TYPE: &'static str = "Account";
    type Command = i64;
    type Event = AccountEvent;
    type Error = String;

    fn handle(&self, amount: &i64) -> Result<Vec<AccountEvent>, String> {
        if *amount <= 0 {
            return Err("amount must be positive".to_owned());
        }
        Ok(vec![AccountEvent::Deposited(*amount)])
    }

    fn apply(&mut self, AccountEvent::Deposited(n): &AccountEvent) {
        self.balance += n;
    }
}

/// A command sent through the bus, for account stream `key`.
struct Deposit {
    key: String,
    amount: i64,
}

impl Command for Deposit {
    fn key(&self) -> &str {
        &self.key
    }
}

#[derive(Default)]
struct Balances(HashMap<String, i64>);

impl Projection for Balances {
    type Event = AccountEvent;
    fn apply(&mut self, e: &Recorded<AccountEvent>) {
        let AccountEvent::Deposited(n) = e.event;
        *self.0.entry(e.key.clone()).or_default() += n;
    }
}

#[tokio::test]
async fn commands_aggregates_and_projections_share_one_durable_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileLog::open(dir.path(), FileLogConfig::default()).unwrap());
    let log = Arc::new(StoreLog::<_, AccountEvent>::new(Arc::clone(&store)));
    let bus = CommandBus::builder(Arc::clone(&log))
        .handler(|d: Deposit| async move { Ok(vec![AccountEvent::Deposited(d.amount)]) })
        .build()
        .unwrap();
    let balances = projection("balances", Arc::clone(&log), Balances::default())
        .start()
        .unwrap();

    // Through the bus: the returned position is the store's, shifted to 1-based.
    let at = bus
        .execute(Deposit {
            key: "Account-alice".to_owned(),
            amount: 10,
        })
        .await
        .unwrap();
    assert_eq!(at, store.head_position());
    assert_eq!(
        balances
            .query_at(at, HANG, |b| b.0["Account-alice"])
            .await
            .unwrap(),
        10
    );

    // Through an aggregate's repository, straight into the same store: the projection
    // sees it (the store's head is followed), and the aggregate sees the bus's event.
    let repo: Repository<Account, _> = Repository::new(Arc::clone(&store));
    let executed = repo.execute("alice", &5).unwrap();
    assert_eq!(
        executed.state.balance, 15,
        "the aggregate folded the bus's event too"
    );
    let head = store.head_position();
    assert_eq!(
        balances
            .query_at(head, HANG, |b| b.0["Account-alice"])
            .await
            .unwrap(),
        15
    );

    // Reads decode the payloads with their keys and 1-based positions.
    let all = log.read(0, 10).await.unwrap();
    let seen: Vec<_> = all
        .iter()
        .map(|r| (r.position, r.key.as_str(), &r.event))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "Account-alice", &AccountEvent::Deposited(10)),
            (2, "Account-alice", &AccountEvent::Deposited(5)),
        ]
    );
}

#[tokio::test]
async fn a_payload_the_codec_cannot_decode_is_an_error_not_a_skip() {
    let store = Arc::new(weft_eventsourcing::InMemoryStore::new());
    store
        .append(
            "Account-bob",
            weft_eventsourcing::ExpectedVersion::Any,
            vec![weft_eventsourcing::NewEvent::new(
                "Deposited",
                1,
                b"not json".to_vec(),
            )],
        )
        .unwrap();
    let log = StoreLog::<_, AccountEvent>::new(store);
    assert!(matches!(
        log.read(0, 10).await,
        Err(weft_cqrs::Error::Log(_))
    ));
}
