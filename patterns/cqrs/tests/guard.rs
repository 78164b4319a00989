//! Property: whatever the batch size, checkpoint interval and re-delivery pattern of
//! the source, and wherever the processor restarts from its checkpoint, a projection
//! ends equal to a plain replay of the log (every event applied exactly once, in order).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use tokio::sync::watch;
use weft_cqrs::{
    CheckpointStore, Error, EventLog, EventSource, MemoryCheckpoints, MemoryLog, Position,
    Projection, Recorded, projection,
};

/// Every (key, amount) applied, in order, with its position.
#[derive(Debug, Default, Clone, PartialEq)]
struct Applied(Vec<(Position, String, i64)>);

impl Projection for Applied {
    type Event = i64;
    fn apply(&mut self, e: &Recorded<i64>) {
        self.0.push((e.position, e.key.clone(), e.event));
    }
    fn snapshot(&self) -> Option<Vec<u8>> {
        Some(serde_json::to_vec(&self.0).unwrap())
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        self.0 = serde_json::from_slice(state).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Each read starts `backs[i]` events before the asked position (cycling through
/// `backs`), as a source with overlapping pages or retried reads would.
struct Jittery {
    log: Arc<MemoryLog<i64>>,
    backs: Vec<u64>,
    reads: AtomicUsize,
}

impl EventSource for Jittery {
    type Event = i64;
    async fn read(&self, after: Position, limit: usize) -> Result<Vec<Recorded<i64>>, Error> {
        let i = self.reads.fetch_add(1, Ordering::Relaxed);
        let back = self.backs[i % self.backs.len()];
        let from = after.saturating_sub(back);
        self.log.read(from, limit + (after - from) as usize).await
    }
    fn watch_head(&self) -> watch::Receiver<Position> {
        self.log.watch_head()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_redelivery_and_restart_converges_to_a_replay(
        events in prop::collection::vec((0_u8..4, -100_i64..100), 1..120),
        backs in prop::collection::vec(0_u64..8, 1..8),
        batch in 1_usize..16,
        every in 1_u64..10,
        split in 0.0_f64..1.0,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (got, want) = rt.block_on(async {
            let log = Arc::new(MemoryLog::new());
            let source = Arc::new(Jittery { log: Arc::clone(&log), backs, reads: AtomicUsize::new(0) });
            let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpoints::new());
            let start = || {
                projection("p", Arc::clone(&source), Applied::default())
                    .checkpoints(Arc::clone(&store))
                    .batch_size(batch)
                    .checkpoint_every(every)
                    .start()
                    .unwrap()
            };
            let first_part = ((events.len() as f64) * split) as usize;
            let first = start();
            let mut head = 0;
            for (k, amount) in &events[..first_part] {
                head = log.append(&format!("k{k}"), vec![*amount]).await.unwrap();
                tokio::task::yield_now().await;
            }
            first.wait_for(head, Duration::from_secs(10)).await.unwrap();
            first.shutdown().await;
            let second = start(); // resumes from the checkpoint
            for (k, amount) in &events[first_part..] {
                head = log.append(&format!("k{k}"), vec![*amount]).await.unwrap();
            }
            second.wait_for(head, Duration::from_secs(10)).await.unwrap();
            let mut want = Applied::default();
            for e in log.read(0, usize::MAX).await.unwrap() {
                want.apply(&e);
            }
            (second.query(Applied::clone), want)
        });
        prop_assert_eq!(got, want);
    }
}
