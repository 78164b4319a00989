//! Conservation under concurrency: producers on several threads, every accepted event
//! counted exactly once in the final windows.

mod common;

use std::time::Duration;

use common::{T0, builder, clock};
use weft_analytics::{Aggregate, Batch, Event, Query, RejectReason, TimeMode, Value, WindowSpec};

/// Events per producer (scaled down under valgrind).
const PER_PRODUCER: i64 = if cfg!(debug_assertions) {
    4_000
} else {
    40_000
};
const PRODUCERS: i64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_conserve_events() {
    let clock = clock();
    let engine = builder(&clock)
        .shards(3)
        .mailbox_capacity(4)
        .window(WindowSpec::tumbling(Duration::from_secs(1)))
        // Each batch spans 200 ms of event time; 10 s of out-of-orderness covers any
        // interleaving of the producers' messages at the shards.
        .time(TimeMode::event_time(
            Duration::from_secs(10),
            Duration::from_secs(600),
        ))
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let events: Vec<Event> = (0..PER_PRODUCER)
                    .map(|i| {
                        Event::new("m", T0 + i, (p * PER_PRODUCER + i) as f64)
                            .dim("host", format!("h{}", i % 97))
                    })
                    .collect();
                for chunk in events.chunks(200) {
                    let b = Batch::new(chunk.to_vec()).source(format!("p{p}"));
                    // Alternate the waiting and the busy-retrying entry points.
                    if chunk[0].timestamp_ms() % 400 == T0 % 400 {
                        engine.ingest(b).await.unwrap();
                    } else {
                        let mut b = b;
                        loop {
                            match engine.try_ingest(b).await {
                                Ok(_) => break,
                                Err(e) => {
                                    assert!(e.error.is_retryable(), "{e}");
                                    tokio::time::sleep(e.error.retry_after().unwrap()).await;
                                    b = e.into_batch();
                                }
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    engine.finish(Duration::from_secs(30)).await.unwrap();
    let m = engine.metrics();
    assert_eq!(m.accepted, (PRODUCERS * PER_PRODUCER) as u64);
    assert_eq!(m.rejected(RejectReason::Late), 0);
    let q = Query::new("default", "m", T0 - 1_000, T0 + PER_PRODUCER + 1_000)
        .step(Duration::from_secs(3600))
        .aggregates([Aggregate::Count, Aggregate::Sum]);
    let r = engine.query(&q).unwrap();
    let count: u64 = r.groups[0]
        .points
        .iter()
        .map(|p| p.values[0].as_f64().unwrap() as u64)
        .sum();
    let sum: f64 = r.groups[0]
        .points
        .iter()
        .map(|p| p.values[1].as_f64().unwrap())
        .sum();
    let n = PRODUCERS * PER_PRODUCER;
    assert_eq!(count, n as u64, "every event counted exactly once");
    assert_eq!(sum, (n * (n - 1) / 2) as f64);
    assert!(matches!(r.groups[0].points[0].values[0], Value::Count(_)));
}
