//! The live feed: partial updates at an interval, finals exactly once when the
//! watermark closes windows, a slow subscriber's lag counted.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{T0, builder, clock};
use futures_util::StreamExt;
use weft_analytics::{
    Aggregate, Batch, Event, LiveKind, LiveUpdate, Query, TimeMode, Value, WindowSpec,
};
use weft_reactive::{Overflow, Receiver};

async fn next_of(
    rx: &mut Receiver<Arc<LiveUpdate>>,
    kind: LiveKind,
    pred: impl Fn(&LiveUpdate) -> bool,
) -> Arc<LiveUpdate> {
    loop {
        let u = rx.next().await.expect("feed ended");
        if u.kind == kind && pred(&u) {
            return u;
        }
    }
}

fn counts(u: &LiveUpdate) -> Vec<(String, i64, u64)> {
    u.result
        .groups
        .iter()
        .flat_map(|g| {
            g.points.iter().map(move |p| {
                let Value::Count(n) = p.values[0] else {
                    panic!()
                };
                (g.group[0].clone(), p.start - T0, n)
            })
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn partials_then_finals_exactly_once() {
    let clock = clock();
    let engine = builder(&clock)
        .shards(3)
        .window(WindowSpec::tumbling(Duration::from_secs(10)))
        .time(TimeMode::event_time(
            Duration::ZERO,
            Duration::from_secs(600),
        ))
        .build()
        .unwrap();
    let q = Query::new("default", "m", T0, T0 + 1_000_000)
        .group_by("host")
        .aggregates([Aggregate::Count]);
    let feed = engine.live(q, Duration::from_millis(100)).unwrap();
    let mut rx = feed.subscribe(64, Overflow::Block).unwrap();
    let mut slow = feed.subscribe(1, Overflow::KeepLatest).unwrap();
    let e = |host: &str, s: i64| Event::new("m", T0 + s * 1000, 1.0).dim("host", host);

    engine
        .ingest(Batch::new(vec![e("a", 1), e("b", 2), e("a", 3)]))
        .await
        .unwrap();
    let p = next_of(&mut rx, LiveKind::Partial, |u| !u.result.groups.is_empty()).await;
    assert_eq!(counts(&p), [("a".into(), 0, 2), ("b".into(), 0, 1)]);

    // Watermark 25 s: [0,10) and [10,20) close; [20,30) is open.
    engine
        .ingest(Batch::new(vec![e("b", 12), e("c", 25)]))
        .await
        .unwrap();
    let f = next_of(&mut rx, LiveKind::Final, |u| !u.result.groups.is_empty()).await;
    assert_eq!(f.watermark, T0 + 25_000);
    assert_eq!(
        counts(&f),
        [
            ("a".into(), 0, 2),
            ("b".into(), 0, 1),
            ("b".into(), 10_000, 1)
        ]
    );
    let p = next_of(&mut rx, LiveKind::Partial, |_| true).await;
    assert_eq!(counts(&p), [("c".into(), 20_000, 1)]);

    // Rounds whose watermark moved without closing a window send empty finals: no
    // window is reported twice.
    for i in 0..3 {
        engine
            .ingest(Batch::new(vec![e("z", 26 + i)]))
            .await
            .unwrap();
        let f = next_of(&mut rx, LiveKind::Final, |_| true).await;
        assert_eq!(f.watermark, T0 + (26 + i) * 1000);
        assert!(f.result.groups.is_empty(), "{f:?}");
    }
    engine.finish(Duration::from_secs(5)).await.unwrap();
    let f = next_of(&mut rx, LiveKind::Final, |u| !u.result.groups.is_empty()).await;
    assert_eq!(
        counts(&f),
        [("c".into(), 20_000, 1), ("z".into(), 20_000, 3)]
    );

    // The slow subscriber kept only the latest and counts what it missed.
    assert!(slow.lagged() > 0);
    assert!(slow.try_recv().is_ok());
    assert_eq!(feed.subscribers().len(), 2);
    drop(feed);
    // Dropping the feed ends the streams.
    while rx.next().await.is_some() {}
}

#[tokio::test]
async fn live_rejects_bad_settings() {
    let clock = clock();
    let engine = builder(&clock).build().unwrap();
    let q = Query::new("default", "m", 0, 10);
    assert!(engine.live(q.clone(), Duration::ZERO).is_err());
    assert!(
        engine
            .live(Query::new("default", "m", 10, 0), Duration::from_secs(1))
            .is_err()
    );
    let feed = engine.live(q, Duration::from_secs(1)).unwrap();
    assert!(feed.subscribe(0, Overflow::Block).is_err());
}
