//! The push-side ingest stream: backpressure, rate limits waited out, oversized
//! batches split, nothing lost.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weft_analytics::{Aggregate, Batch, Engine, Event, Query, Value, WindowSpec};
use weft_ratelimit::Quota;
use weft_time::TokioClock;

#[tokio::test(start_paused = true)]
async fn sink_waits_out_limits_and_splits_batches() {
    let engine = Engine::builder()
        .clock(TokioClock)
        .window(WindowSpec::tumbling(Duration::from_secs(3600)))
        .tenant_quota(Quota::per_second(10).unwrap())
        .tick_interval(None)
        .build()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = now - now.rem_euclid(3_600_000);
    let sink = engine.batch_sink(2).unwrap();
    // 25 events in one batch: over the burst of 10, so split in three; the second and
    // third chunks wait for the quota (paused tokio time advances by itself).
    let events = (0..25).map(|i| Event::new("m", start + i, 1.0)).collect();
    sink.send(Batch::new(events).tenant("acme")).await.unwrap();
    for i in 0..3 {
        sink.send(Batch::new(vec![Event::new("m", start + 100 + i, 1.0)]).tenant("acme"))
            .await
            .unwrap();
    }
    drop(sink);
    tokio::time::sleep(Duration::from_secs(10)).await;
    engine.finish(Duration::from_secs(5)).await.unwrap();
    let m = engine.metrics();
    assert_eq!(m.accepted, 28);
    assert!(m.rate_limited >= 2, "{m:?}");
    let q = Query::new("acme", "m", start, start + 3_600_000).aggregates([Aggregate::Count]);
    let r = engine.query(&q).unwrap();
    assert_eq!(r.groups[0].points[0].values[0], Value::Count(28));
}

#[tokio::test]
async fn zero_capacity_is_an_error() {
    let engine = Engine::builder().tick_interval(None).build().unwrap();
    assert!(engine.batch_sink(0).is_err());
}
