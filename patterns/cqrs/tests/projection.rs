//! Tracking projections: catch-up, position guard, checkpoints, lag, read-your-writes,
//! blue/green rebuilds and subscription queries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use weft_cqrs::{
    Checkpoint, CheckpointStore, Error, EventLog, EventSource, FileCheckpoints, MemoryCheckpoints,
    MemoryLog, Position, Projection, Query, QueryBus, Recorded, SubscriptionError, projection,
};

/// Sum and count per key; `version` tells blue from green.
#[derive(Debug, Default, Clone, PartialEq)]
struct Totals {
    version: u32,
    per_key: BTreeMap<String, (i64, u64)>,
    last: Position,
}

impl Totals {
    fn v(version: u32) -> Self {
        Totals {
            version,
            ..Totals::default()
        }
    }
    fn count(&self) -> u64 {
        self.per_key.values().map(|(_, c)| c).sum()
    }
}

impl Projection for Totals {
    type Event = i64;
    fn apply(&mut self, e: &Recorded<i64>) {
        assert!(e.position > self.last, "applied out of order or twice");
        let slot = self.per_key.entry(e.key.clone()).or_default();
        slot.0 += e.event;
        slot.1 += 1;
        self.last = e.position;
    }
    fn snapshot(&self) -> Option<Vec<u8>> {
        let pairs: Vec<(&String, &(i64, u64))> = self.per_key.iter().collect();
        Some(serde_json::to_vec(&(self.last, pairs)).unwrap())
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        type Saved = (Position, Vec<(String, (i64, u64))>);
        let (last, pairs): Saved = serde_json::from_slice(state).map_err(|e| e.to_string())?;
        self.last = last;
        self.per_key = pairs.into_iter().collect();
        Ok(())
    }
}

async fn replay(log: &impl EventSource<Event = i64>, upto: Position) -> Totals {
    let mut t = Totals::default();
    for e in log.read(0, upto as usize).await.unwrap() {
        t.apply(&e);
    }
    t
}

async fn fill(log: &MemoryLog<i64>, n: i64) -> Position {
    let mut at = 0;
    for i in 0..n {
        at = log.append(&format!("k{}", i % 5), vec![i]).await.unwrap();
    }
    at
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "current_thread")]
async fn catches_up_reports_lag_and_matches_a_replay() {
    let log = Arc::new(MemoryLog::new());
    let totals = projection("totals", Arc::clone(&log), Totals::default())
        .batch_size(7)
        .start()
        .unwrap();
    // The processor has not run yet (same thread): the lag is the whole log.
    let head = fill(&log, 100).await;
    assert_eq!(totals.lag(), 100);
    assert_eq!(totals.status().lag, 100);
    assert_eq!(totals.wait_for(head, WAIT).await.unwrap(), head);
    assert_eq!(totals.lag(), 0);
    let mut replayed = replay(&*log, head).await;
    replayed.version = 0;
    assert_eq!(totals.query(Totals::clone), replayed);
    let s = totals.status();
    assert_eq!((s.position, s.head, s.applied), (100, 100, 100));
    assert_eq!(s.stopped, None);
    totals.shutdown().await; // saves a final checkpoint
    let s = totals.status();
    assert_eq!(
        (s.checkpointed, s.stopped.as_deref()),
        (100, Some("shut down"))
    );
}

/// A source that delivers every event twice: each read restarts a few events back.
struct Redelivering(Arc<MemoryLog<i64>>);

impl EventSource for Redelivering {
    type Event = i64;
    async fn read(&self, after: Position, limit: usize) -> Result<Vec<Recorded<i64>>, Error> {
        self.0.read(after.saturating_sub(3), limit.max(4)).await
    }
    fn watch_head(&self) -> watch::Receiver<Position> {
        self.0.watch_head()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_position_guard_applies_redelivered_events_once() {
    let log = Arc::new(MemoryLog::new());
    let totals = projection(
        "totals",
        Arc::new(Redelivering(Arc::clone(&log))),
        Totals::default(),
    )
    .batch_size(5)
    .start()
    .unwrap();
    let head = fill(&log, 50).await;
    totals.wait_for(head, WAIT).await.unwrap();
    assert_eq!(totals.query(Totals::clone), replay(&*log, head).await);
    assert!(totals.status().duplicates_skipped > 0);
    assert_eq!(totals.status().applied, 50);
}

#[tokio::test(flavor = "current_thread")]
async fn restarts_from_its_checkpoint_with_its_state() {
    let log = Arc::new(MemoryLog::new());
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpoints::new());
    let first = projection("totals", Arc::clone(&log), Totals::default())
        .checkpoints(Arc::clone(&store))
        .checkpoint_every(10)
        .start()
        .unwrap();
    let head = fill(&log, 40).await;
    first.wait_for(head, WAIT).await.unwrap();
    first.shutdown().await;
    assert_eq!(store.load("totals").unwrap().unwrap().position, 40);
    assert!(first.wait_for(41, WAIT).await.is_err(), "stopped");

    let more = fill(&log, 15).await;
    let second = projection("totals", Arc::clone(&log), Totals::default())
        .checkpoints(Arc::clone(&store))
        .start()
        .unwrap();
    assert_eq!(second.position(), 40, "resumed at the checkpoint");
    second.wait_for(more, WAIT).await.unwrap();
    assert_eq!(
        second.status().applied,
        15,
        "only the events after the checkpoint"
    );
    assert_eq!(second.query(Totals::clone), replay(&*log, more).await);
}

#[tokio::test(flavor = "current_thread")]
async fn a_bad_checkpoint_state_is_an_error_not_a_silent_reset() {
    let log = Arc::new(MemoryLog::<i64>::new());
    let store = Arc::new(MemoryCheckpoints::new());
    store
        .save(
            "totals",
            &Checkpoint {
                position: 3,
                state: Some(b"garbage".to_vec()),
            },
        )
        .unwrap();
    let err = projection("totals", log, Totals::default())
        .checkpoints(store)
        .start()
        .unwrap_err();
    assert!(matches!(err, Error::Restore { position: 3, .. }), "{err}");
}

#[test]
fn file_checkpoints_round_trip_and_replace_atomically() {
    let dir = std::env::temp_dir().join(format!("weft-cqrs-cp-{}", std::process::id()));
    let store = FileCheckpoints::open(&dir).unwrap();
    assert_eq!(store.load("p").unwrap(), None);
    for position in 1..=3 {
        let cp = Checkpoint {
            position,
            state: Some(vec![position as u8; 4]),
        };
        store.save("p", &cp).unwrap();
        assert_eq!(store.load("p").unwrap(), Some(cp));
    }
    store
        .save(
            "q",
            &Checkpoint {
                position: 9,
                state: None,
            },
        )
        .unwrap();
    assert_eq!(
        FileCheckpoints::open(&dir)
            .unwrap()
            .load("q")
            .unwrap()
            .unwrap()
            .state,
        None
    );
    assert!(store.save("../evil", &Checkpoint::default()).is_err());
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 2, "no temporary files left: {files:?}");
    std::fs::write(dir.join("r.checkpoint"), b"nope").unwrap();
    assert!(store.load("r").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn read_your_writes_waits_for_the_position_until_the_deadline() {
    let log = Arc::new(MemoryLog::new());
    let totals = projection("totals", Arc::clone(&log), Totals::default())
        .start()
        .unwrap();
    let at = log.append("a", vec![1]).await.unwrap();
    // A write that lands later: the wait returns as soon as the projection has it.
    let writer = tokio::spawn({
        let log = Arc::clone(&log);
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            log.append("a", vec![2]).await.unwrap()
        }
    });
    let start = tokio::time::Instant::now();
    assert_eq!(
        totals
            .wait_for(at + 1, Duration::from_secs(1))
            .await
            .unwrap(),
        2
    );
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    assert_eq!(writer.await.unwrap(), 2);
    // A position nobody writes: the deadline.
    let start = tokio::time::Instant::now();
    let err = totals
        .wait_for(10, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(
        matches!(
            err,
            Error::WaitTimeout {
                wanted: 10,
                reached: 2,
                ..
            }
        ),
        "{err}"
    );
    let sum = totals
        .query_at(2, Duration::from_secs(1), |t| t.per_key["a"].0)
        .await
        .unwrap();
    assert_eq!(sum, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_rebuild_swaps_in_a_caught_up_model_and_never_shows_a_partial_one() {
    let log = Arc::new(MemoryLog::new());
    let totals = projection("totals", Arc::clone(&log), Totals::v(1))
        .batch_size(4)
        .start()
        .unwrap();
    let head = fill(&log, 2000).await;
    totals.wait_for(head, WAIT).await.unwrap();
    // Readers poll while the rebuild runs; writes keep coming.
    // The reader reports its first blue answer before the rebuild starts, so
    // the test does not depend on the scheduler running it in time.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (reading_tx, reading) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn({
        let (totals, stop) = (totals.clone(), Arc::clone(&stop));
        async move {
            let mut seen = (0, 0);
            let mut reading_tx = Some(reading_tx);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (version, count) = totals.query(|t| (t.version, t.count()));
                if version == 1 {
                    seen.0 += 1;
                    if let Some(tx) = reading_tx.take() {
                        let _ = tx.send(());
                    }
                } else {
                    assert!(
                        count >= head,
                        "a half-built green model was visible: {count}"
                    );
                    seen.1 += 1;
                }
                tokio::task::yield_now().await;
            }
            seen
        }
    });
    let writer = tokio::spawn({
        let log = Arc::clone(&log);
        async move {
            for i in 0..200 {
                log.append("w", vec![i]).await.unwrap();
                tokio::task::yield_now().await;
            }
        }
    });
    reading.await.unwrap();
    let swapped_at = totals.rebuild(Totals::v(2)).await.unwrap();
    assert!(swapped_at >= head);
    writer.await.unwrap();
    let end = log.watch_head().borrow().to_owned();
    totals.wait_for(end, WAIT).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    assert!(seen.0 > 0, "the blue model served queries until the swap");
    let now = totals.query(Totals::clone);
    assert_eq!(now.version, 2);
    let mut replayed = replay(&*log, end).await;
    replayed.version = 2;
    assert_eq!(
        now, replayed,
        "the rebuilt model equals a replay and keeps tracking"
    );
    assert_eq!(totals.status().rebuilds, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn subscriptions_get_the_initial_result_then_updates_and_slow_ones_are_dropped_loudly() {
    let log = Arc::new(MemoryLog::new());
    let totals = projection("totals", Arc::clone(&log), Totals::default())
        .start()
        .unwrap();
    log.append("a", vec![5]).await.unwrap();
    totals.wait_for(1, WAIT).await.unwrap();

    let mut fast = totals.subscribe(8, |t| t.count()).unwrap();
    let mut slow = totals.subscribe(1, |t| t.count()).unwrap();
    let first = fast.recv().await.unwrap();
    assert_eq!((first.position, first.value), (1, 1));
    assert_eq!(totals.status().subscribers, 2);

    for i in 0..3 {
        let at = log.append("a", vec![i]).await.unwrap();
        totals.wait_for(at, WAIT).await.unwrap(); // one batch per append
        let u = fast.recv().await.unwrap();
        assert_eq!((u.position, u.value), (at, at));
    }
    // The slow one never read: initial, one buffered update, then disconnected.
    assert_eq!(slow.recv().await.unwrap().value, 1);
    assert_eq!(slow.recv().await.unwrap().value, 2);
    assert_eq!(slow.recv().await.unwrap_err(), SubscriptionError::Lagged);
    let s = totals.status();
    assert_eq!((s.subscribers, s.subscribers_dropped), (1, 1));
    assert!(totals.subscribe(0, |t| t.count()).is_err());
    totals.shutdown().await;
    assert_eq!(fast.recv().await.unwrap_err(), SubscriptionError::Closed);
}

struct Count(String);
impl Query for Count {
    type Output = u64;
}
struct Unrouted;
impl Query for Unrouted {
    type Output = ();
}

#[tokio::test(flavor = "current_thread")]
async fn the_query_bus_routes_waits_and_subscribes() {
    let log = Arc::new(MemoryLog::new());
    let totals = projection("totals", Arc::clone(&log), Totals::default())
        .start()
        .unwrap();
    let queries = QueryBus::builder()
        .handler(totals.clone(), |t: &Totals, q: &Count| {
            t.per_key.get(&q.0).map_or(0, |(_, c)| *c)
        })
        .build();
    assert_eq!(queries.query(&Count("a".into())).unwrap(), 0);
    assert!(matches!(
        queries.query(&Unrouted),
        Err(Error::NoHandler { kind: "query", .. })
    ));
    let mut sub = queries.subscribe(Count("a".into()), 4).unwrap();
    assert_eq!(sub.recv().await.unwrap().value, 0);
    let at = log.append("a", vec![1, 1]).await.unwrap();
    assert_eq!(
        queries
            .query_at(&Count("a".into()), at, WAIT)
            .await
            .unwrap(),
        2
    );
    assert_eq!(sub.recv().await.unwrap().value, 2);
    assert!(sub.try_recv().unwrap().is_none());
}

/// A source whose reads after its first page fail `failures` times (all of them if
/// `None`).
struct Failing {
    log: Arc<MemoryLog<i64>>,
    failures: Option<u64>,
    failed: std::sync::atomic::AtomicU64,
}

impl Failing {
    fn new(log: &Arc<MemoryLog<i64>>, failures: Option<u64>) -> Arc<Self> {
        Arc::new(Failing {
            log: Arc::clone(log),
            failures,
            failed: std::sync::atomic::AtomicU64::new(0),
        })
    }
}

impl EventSource for Failing {
    type Event = i64;
    async fn read(&self, after: Position, limit: usize) -> Result<Vec<Recorded<i64>>, Error> {
        let failed = self.failed.load(std::sync::atomic::Ordering::SeqCst);
        if after > 0 && self.failures.is_none_or(|f| failed < f) {
            self.failed
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Err(Error::Log("disk on fire".into()));
        }
        self.log.read(after, limit).await
    }
    fn watch_head(&self) -> watch::Receiver<Position> {
        self.log.watch_head()
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn transient_read_failures_are_retried_with_backoff() {
    let log = Arc::new(MemoryLog::new());
    let p = projection("p", Failing::new(&log, Some(3)), Totals::default())
        .start()
        .unwrap();
    log.append("a", vec![1]).await.unwrap();
    p.wait_for(1, WAIT).await.unwrap();
    let start = tokio::time::Instant::now();
    let at = log.append("a", vec![2]).await.unwrap();
    p.wait_for(at, WAIT).await.unwrap();
    // Default policy: 10 + 20 + 40 ms of backoff for three failures.
    assert_eq!(start.elapsed(), Duration::from_millis(70));
    assert_eq!(p.status().read_errors, 3);
    assert_eq!(p.status().stopped, None);
    assert_eq!(p.query(|t| t.per_key["a"].0), 3);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failed_source_stops_the_projection_once_retries_run_out() {
    let log = Arc::new(MemoryLog::new());
    let retry = weft_time::Backoff::constant(Duration::from_millis(5))
        .max_retries(2)
        .build()
        .unwrap();
    let p = projection("p", Failing::new(&log, None), Totals::default())
        .read_retry(retry)
        .start()
        .unwrap();
    log.append("a", vec![1]).await.unwrap();
    let err = p.wait_for(5, WAIT).await.unwrap_err();
    assert!(err.to_string().contains("disk on fire"), "{err}");
    let s = p.status();
    assert!(s.stopped.is_some());
    assert_eq!(s.read_errors, 3, "the first try and two retries");
}
