//! The engine end to end against exact oracles.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::{Rng, T0, approx_eq, builder, clock, events, tumbling_oracle};
use weft_analytics::{
    Aggregate, AggregateConfig, Batch, Engine, Error, Event, LatePolicy, Limits, Query,
    RejectReason, TimeMode, Value, WindowSpec,
};
use weft_ratelimit::Quota;

const MIN: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

async fn ingest_all(engine: &Engine, events: &[Event], batch: usize) {
    for chunk in events.chunks(batch) {
        let r = engine.ingest(Batch::new(chunk.to_vec())).await.unwrap();
        assert_eq!(r.accepted, chunk.len());
        assert!(r.rejected.is_empty());
    }
}

/// Checks every (host, window) of the oracle against the engine's answer.
fn check_exact(engine: &Engine, events: &[Event], size: i64) {
    let oracle = tumbling_oracle(events, size);
    let q = Query::new("default", "latency", T0 - size, T0 + 10 * 3_600_000)
        .group_by("host")
        .aggregates([
            Aggregate::Count,
            Aggregate::Sum,
            Aggregate::Min,
            Aggregate::Max,
        ]);
    let r = engine.query(&q).unwrap();
    let mut seen = 0;
    for g in &r.groups {
        for p in &g.points {
            let x = &oracle[&(g.group[0].clone(), p.start)];
            assert_eq!(p.end - p.start, size);
            assert_eq!(p.values[0], Value::Count(x.count), "{g:?}");
            assert!(approx_eq(p.values[1].as_f64().unwrap(), x.sum));
            assert_eq!(p.values[2], Value::Number(Some(x.min)));
            assert_eq!(p.values[3], Value::Number(Some(x.max)));
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        oracle.len(),
        "every window of the oracle is in the store"
    );
}

#[tokio::test]
async fn tumbling_exact_in_order() {
    let clock = clock();
    let engine = builder(&clock)
        .shards(3)
        .window(WindowSpec::tumbling(MIN))
        .build()
        .unwrap();
    let evs = events(&mut Rng::new(1), 20_000, 17, 50);
    ingest_all(&engine, &evs, 500).await;
    engine.finish(WAIT).await.unwrap();
    check_exact(&engine, &evs, 60_000);
    let m = engine.metrics();
    assert_eq!(m.accepted, 20_000);
    assert_eq!(m.rejected(RejectReason::Late), 0);
    assert_eq!(m.store_backlog, 0);
}

#[tokio::test]
async fn tumbling_exact_out_of_order_within_bound() {
    let clock = clock();
    let engine = builder(&clock)
        .shards(2)
        .window(WindowSpec::tumbling(Duration::from_secs(10)))
        .build()
        .unwrap();
    let mut evs = events(&mut Rng::new(2), 10_000, 5, 20);
    // Shuffle inside blocks of 200 events (at most 200 * 20 ms = 4 s apart, under the
    // 5 s out-of-orderness bound): nothing is late.
    let mut rng = Rng::new(3);
    for block in evs.chunks_mut(200) {
        for i in (1..block.len()).rev() {
            block.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    ingest_all(&engine, &evs, 100).await;
    engine.finish(WAIT).await.unwrap();
    assert_eq!(engine.metrics().rejected(RejectReason::Late), 0);
    check_exact(&engine, &evs, 10_000);
}

#[tokio::test]
async fn percentiles_within_sketch_error_and_distinct_within_hll_error() {
    let clock = clock();
    let engine = builder(&clock)
        .shards(2)
        .window(WindowSpec::tumbling(MIN))
        .build()
        .unwrap();
    let mut rng = Rng::new(4);
    // One window, one series, 20 000 values over 3 orders of magnitude, 5 000 entities.
    let evs: Vec<Event> = (0..20_000)
        .map(|i| {
            Event::new(
                "latency",
                T0 + (i % 50_000) as i64,
                (rng.below(100_000) + 1) as f64 / 100.0,
            )
            .dim("host", "a")
            .entity(&format!("user-{}", rng.below(5_000)))
        })
        .collect();
    let truth_distinct = evs
        .iter()
        .map(|e| e.entity_hash().unwrap())
        .collect::<HashSet<_>>()
        .len();
    ingest_all(&engine, &evs, 1000).await;
    engine.finish(WAIT).await.unwrap();
    let qs = [0.01, 0.25, 0.5, 0.9, 0.99, 0.999];
    let q = Query::new("default", "latency", T0 - 60_000, T0 + 60_000).aggregates(
        qs.iter()
            .map(|q| Aggregate::Quantile(*q))
            .chain([Aggregate::Distinct]),
    );
    let r = engine.query(&q).unwrap();
    let p = &r.groups[0].points[0];
    let mut sorted: Vec<f64> = evs.iter().map(Event::value).collect();
    sorted.sort_by(f64::total_cmp);
    for (i, q) in qs.iter().enumerate() {
        let Value::Estimate(Some(est)) = p.values[i] else {
            panic!("{:?}", p.values[i])
        };
        let truth = sorted[(q * (sorted.len() - 1) as f64) as usize];
        assert!(
            (est.value - truth).abs() <= truth * est.rel_error * 1.0001,
            "q{q}: {} vs {truth} (±{})",
            est.value,
            est.rel_error
        );
    }
    let Value::Estimate(Some(d)) = p.values[qs.len()] else {
        panic!()
    };
    let err = (d.value - truth_distinct as f64).abs() / truth_distinct as f64;
    assert!(
        err <= 3.0 * d.rel_error,
        "distinct {} vs {truth_distinct}",
        d.value
    );
}

#[tokio::test]
async fn late_events_dropped_and_counted() {
    let clock = clock();
    let engine = builder(&clock)
        .shards(2)
        .window(WindowSpec::tumbling(Duration::from_secs(10)))
        .time(TimeMode::event_time(
            Duration::ZERO,
            Duration::from_secs(60),
        ))
        .allowed_lateness(Duration::from_secs(2))
        .build()
        .unwrap();
    let e = |ts: i64, v: f64| Event::new("latency", T0 + ts, v).dim("host", "a");
    // Watermark 25 s: window [0,10) final (10 + 2 <= 25), [10,20) final, [20,30) open.
    engine
        .ingest(Batch::new(vec![e(1_000, 1.0), e(25_000, 2.0)]))
        .await
        .unwrap();
    // 21 s: within [20,30), fine. 19 s: [10,20) is final (20 + 2 <= 25): late.
    // 3 s: late.
    engine
        .ingest(Batch::new(vec![
            e(21_000, 4.0),
            e(19_000, 8.0),
            e(3_000, 16.0),
        ]))
        .await
        .unwrap();
    // Watermark 31 s: [20,30) not final yet (30 + 2 > 31); an event at 29 s is accepted
    // though it is behind the watermark (allowed lateness).
    engine
        .ingest(Batch::new(vec![e(31_000, 32.0), e(29_000, 64.0)]))
        .await
        .unwrap();
    engine.finish(WAIT).await.unwrap();
    let m = engine.metrics();
    assert_eq!(m.rejected(RejectReason::Late), 2);
    assert_eq!(
        m.accepted, 7,
        "late events are accepted at ingest, rejected by the shard"
    );
    let q = Query::new("default", "latency", T0, T0 + 60_000).aggregates([Aggregate::Sum]);
    let r = engine.query(&q).unwrap();
    let sums: Vec<(i64, f64)> = r.groups[0]
        .points
        .iter()
        .map(|p| (p.start - T0, p.values[0].as_f64().unwrap()))
        .collect();
    assert_eq!(sums, [(0, 1.0), (20_000, 2.0 + 4.0 + 64.0), (30_000, 32.0)]);
}

#[tokio::test]
async fn late_events_to_the_late_stream() {
    let clock = clock();
    let engine = builder(&clock)
        .shards(1)
        .window(WindowSpec::tumbling(Duration::from_secs(10)))
        .time(TimeMode::event_time(
            Duration::ZERO,
            Duration::from_secs(60),
        ))
        .late_policy(LatePolicy::Stream { capacity: 2 })
        .build()
        .unwrap();
    let mut late = engine.late_events().expect("late stream");
    assert!(engine.late_events().is_none(), "taken once");
    let e = |ts: i64| Event::new("latency", T0 + ts, 1.0).dim("host", "a");
    engine.ingest(Batch::new(vec![e(50_000)])).await.unwrap();
    engine
        .ingest(Batch::new(vec![e(1), e(2), e(3)]))
        .await
        .unwrap();
    engine.flush(WAIT).await.unwrap();
    // Capacity 2, drop-oldest: the last two are there, the first was dropped and counted.
    let got: Vec<i64> = std::iter::from_fn(|| late.try_recv().ok())
        .map(|l| l.event.timestamp_ms() - T0)
        .collect();
    assert_eq!(got, [2, 3]);
    let m = engine.metrics();
    assert_eq!(m.rejected(RejectReason::Late), 3);
    assert_eq!(m.late_streamed, 3);
    assert_eq!(m.late_stream_dropped, 1);
}

#[tokio::test]
async fn session_windows_split_and_merge() {
    let clock = clock();
    let engine = builder(&clock)
        .shards(2)
        .window(WindowSpec::session(Duration::from_secs(5)))
        .time(TimeMode::event_time(
            Duration::from_secs(30),
            Duration::from_secs(60),
        ))
        .build()
        .unwrap();
    let e = |host: &str, s: i64| Event::new("clicks", T0 + s * 1000, 1.0).dim("host", host);
    // a: [0,5) and [10,15) stay apart until 7 and 12... 7 bridges nothing (7+5 = 12 > 10:
    // it overlaps [10,15)), so a: {0} , {7,10,12}. b: {0,4,8} chain into one.
    let batch = vec![
        e("a", 0),
        e("a", 10),
        e("b", 0),
        e("b", 8),
        e("a", 12),
        e("b", 4),
        e("a", 7),
    ];
    engine.ingest(Batch::new(batch)).await.unwrap();
    engine.finish(WAIT).await.unwrap();
    let q = Query::new("default", "clicks", T0 - 100_000, T0 + 100_000)
        .group_by("host")
        .aggregates([Aggregate::Count]);
    let r = engine.query(&q).unwrap();
    let sessions = |h: &str| -> Vec<(i64, i64, u64)> {
        r.group(&[h])
            .unwrap()
            .points
            .iter()
            .map(|p| {
                (
                    (p.start - T0) / 1000,
                    (p.end - T0) / 1000,
                    p.values[0].as_f64().unwrap() as u64,
                )
            })
            .collect()
    };
    assert_eq!(r.resolution_ms, 0);
    assert_eq!(sessions("a"), [(0, 5, 1), (7, 17, 3)]);
    assert_eq!(sessions("b"), [(0, 13, 3)]);
}

#[tokio::test]
async fn hopping_windows_exact() {
    let clock = clock();
    let engine = builder(&clock)
        .shards(2)
        .window(WindowSpec::hopping(
            Duration::from_secs(10),
            Duration::from_secs(2),
        ))
        .build()
        .unwrap();
    let evs = events(&mut Rng::new(5), 5_000, 3, 20);
    ingest_all(&engine, &evs, 250).await;
    engine.finish(WAIT).await.unwrap();
    // Oracle: every window [k·2s, k·2s + 10s) holding at least one event.
    let mut oracle: BTreeMap<(String, i64), (u64, f64)> = BTreeMap::new();
    for e in &evs {
        let p = e.timestamp_ms() - e.timestamp_ms().rem_euclid(2_000);
        for k in 0..5 {
            let x = oracle
                .entry((e.dim_value("host").unwrap().to_owned(), p - k * 2_000))
                .or_default();
            x.0 += 1;
            x.1 += e.value();
        }
    }
    let q = Query::new("default", "latency", T0 - 20_000, T0 + 3_600_000)
        .group_by("host")
        .aggregates([Aggregate::Count, Aggregate::Sum]);
    let r = engine.query(&q).unwrap();
    let mut n = 0;
    for g in &r.groups {
        for p in &g.points {
            let (c, s) = oracle[&(g.group[0].clone(), p.start)];
            assert_eq!(p.end - p.start, 10_000);
            assert_eq!(p.values[0], Value::Count(c));
            assert!(approx_eq(p.values[1].as_f64().unwrap(), s));
            n += 1;
        }
    }
    assert_eq!(n, oracle.len());
}

#[tokio::test]
async fn invalid_events_rejected_by_index_rest_accepted() {
    let clock = clock();
    let engine = builder(&clock)
        .limits(Limits::default().max_dims(2))
        .build()
        .unwrap();
    let ok = |v: f64| Event::new("m", T0, v);
    let batch = vec![
        ok(1.0),
        ok(f64::NAN),
        Event::new("m", T0, 1.0)
            .dim("a", "1")
            .dim("b", "2")
            .dim("c", "3"),
        ok(2.0),
        Event::new("m", T0 + 2 * 3_600_000, 1.0),
        Event::new("m", T0, 1.0).dim("k", "x".repeat(129)),
        Event::new("", T0, 1.0),
        Event::new("m", T0 - 8 * 86_400_000, 1.0),
    ];
    let r = engine.ingest(Batch::new(batch)).await.unwrap();
    assert_eq!(r.accepted, 2);
    let got: Vec<(usize, RejectReason)> = r.rejected.iter().map(|r| (r.index, r.reason)).collect();
    assert_eq!(
        got,
        [
            (1, RejectReason::NonFiniteValue),
            (2, RejectReason::TooManyDimensions),
            (4, RejectReason::TimestampInFuture),
            (5, RejectReason::DimensionTooLong),
            (6, RejectReason::InvalidMetric),
            (7, RejectReason::TimestampTooOld),
        ]
    );
    engine.finish(WAIT).await.unwrap();
    let m = engine.metrics();
    assert_eq!(m.rejected(RejectReason::NonFiniteValue), 1);
    assert_eq!(m.rejected(RejectReason::TimestampTooOld), 1);
    let r = engine
        .query(&Query::new(
            "default",
            "m",
            T0 - MIN.as_millis() as i64,
            T0 + 60_000,
        ))
        .unwrap();
    assert_eq!(r.groups[0].points[0].values[0], Value::Count(2));
}

#[tokio::test]
async fn busy_with_retry_after_hands_the_batch_back() {
    let clock = clock();
    let engine = builder(&clock)
        .shards(1)
        .mailbox_capacity(1)
        .build()
        .unwrap();
    let b = || Batch::new(vec![Event::new("m", T0, 1.0)]);
    // Current-thread runtime: the shard does not run until we yield, so the first batch
    // fills its mailbox.
    engine.try_ingest(b()).await.unwrap();
    let err = engine.try_ingest(b().source("s2")).await.unwrap_err();
    assert!(matches!(err.error, Error::Busy { .. }), "{err:?}");
    assert!(err.error.is_retryable());
    assert!(err.error.retry_after().unwrap() > Duration::ZERO);
    let back = err.into_batch();
    assert_eq!((back.len(), back.source_name()), (1, "s2"));
    assert_eq!(engine.metrics().busy, 1);
    // `ingest` waits for room instead.
    engine.ingest(back).await.unwrap();
    engine.finish(WAIT).await.unwrap();
    assert_eq!(engine.metrics().accepted, 2);
}

#[tokio::test]
async fn per_tenant_rate_limit() {
    let clock = clock();
    let engine = builder(&clock)
        .tenant_quota(Quota::per_second(10).unwrap())
        .build()
        .unwrap();
    let b = |tenant: &str, n: usize| Batch::new(vec![Event::new("m", T0, 1.0); n]).tenant(tenant);
    engine.ingest(b("acme", 10)).await.unwrap();
    let err = engine.ingest(b("acme", 1)).await.unwrap_err();
    match &err.error {
        Error::RateLimited {
            tenant,
            retry_after,
        } => {
            assert_eq!(tenant, "acme");
            assert_eq!(*retry_after, Duration::from_millis(100));
        }
        e => panic!("{e:?}"),
    }
    // Another tenant has its own budget.
    engine.ingest(b("other", 10)).await.unwrap();
    let err = engine.ingest(b("other2", 11)).await.unwrap_err();
    assert_eq!(
        err.error,
        Error::BatchTooLarge {
            events: 11,
            max: 10
        }
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(err.into_batch().len(), 11, "handed back whole");
    // A second later acme has its budget back.
    engine.ingest(b("acme", 10)).await.unwrap();
    assert_eq!(engine.metrics().rate_limited, 1);
}

#[tokio::test]
async fn idle_source_does_not_stall_the_watermark() {
    let clock = clock();
    let engine = builder(&clock)
        .window(WindowSpec::tumbling(Duration::from_secs(10)))
        .time(TimeMode::event_time(
            Duration::ZERO,
            Duration::from_secs(30),
        ))
        .build()
        .unwrap();
    let e = |ts: i64| Event::new("m", T0 + ts, 1.0);
    engine
        .ingest(Batch::new(vec![e(1_000)]).source("quiet"))
        .await
        .unwrap();
    engine
        .ingest(Batch::new(vec![e(2_000), e(45_000)]).source("busy"))
        .await
        .unwrap();
    engine.flush(WAIT).await.unwrap();
    assert_eq!(
        engine.watermark(),
        T0 + 1_000,
        "the quiet source holds it back"
    );
    let q = Query::new("default", "m", T0, T0 + 100_000);
    assert!(engine.query(&q).unwrap().groups.is_empty());
    clock.advance(Duration::from_secs(31));
    assert_eq!(engine.tick().await.unwrap(), T0 + 45_000);
    engine.flush(WAIT).await.unwrap();
    let r = engine.query(&q).unwrap();
    assert_eq!(
        r.groups[0].points.len(),
        1,
        "[0,10) closed; [40,50) still open"
    );
    assert_eq!(r.groups[0].points[0].values[0], Value::Count(2));
    let m = engine.metrics();
    assert!(m.sources.iter().any(|s| s.source == "quiet" && s.idle));
}

#[tokio::test]
async fn processing_time_windows_follow_the_clock() {
    let clock = clock();
    let engine = builder(&clock)
        .window(WindowSpec::tumbling(Duration::from_secs(1)))
        .time(TimeMode::ProcessingTime)
        .build()
        .unwrap();
    // Timestamps are ignored: events are stamped on arrival.
    engine
        .ingest(Batch::new(vec![
            Event::new("m", 0, 1.0),
            Event::new("m", 5, 2.0),
        ]))
        .await
        .unwrap();
    clock.advance(Duration::from_millis(1500));
    engine
        .ingest(Batch::new(vec![Event::new("m", 0, 4.0)]))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    engine.tick().await.unwrap();
    engine.flush(WAIT).await.unwrap();
    let r = engine
        .query(&Query::new("default", "m", T0, T0 + 10_000).aggregates([Aggregate::Sum]))
        .unwrap();
    let sums: Vec<(i64, f64)> = r.groups[0]
        .points
        .iter()
        .map(|p| (p.start - T0, p.values[0].as_f64().unwrap()))
        .collect();
    assert_eq!(sums, [(0, 3.0), (1_000, 4.0)]);
}

#[tokio::test]
async fn downsampling_tiers_and_filters() {
    let clock = clock();
    let engine = builder(&clock)
        .window(WindowSpec::tumbling(Duration::from_secs(1)))
        .tiers([
            weft_analytics::Tier::new(Duration::from_secs(1), Duration::from_secs(3600)),
            weft_analytics::Tier::new(MIN, Duration::from_secs(86_400)),
        ])
        .build()
        .unwrap();
    let evs = events(&mut Rng::new(6), 20_000, 4, 20);
    ingest_all(&engine, &evs, 1_000).await;
    engine.finish(WAIT).await.unwrap();
    let q = Query::new("default", "latency", T0 - 60_000, T0 + 3_600_000)
        .filter("host", "h1")
        .step(MIN)
        .aggregates([Aggregate::Count, Aggregate::Max]);
    let r = engine.query(&q).unwrap();
    assert_eq!(
        r.resolution_ms, 1_000,
        "the 1 s tier still covers the range"
    );
    let oracle = tumbling_oracle(&evs, 60_000);
    for p in &r.groups[0].points {
        let x = &oracle[&("h1".to_owned(), p.start)];
        assert_eq!(
            p.values,
            [Value::Count(x.count), Value::Number(Some(x.max))]
        );
    }
    assert_eq!(
        r.groups[0].points.len(),
        oracle.keys().filter(|(h, _)| h == "h1").count()
    );
    assert_eq!(engine.series("default", Some("latency")).len(), 4);
    assert!(engine.series("other", None).is_empty());
    // Bad queries are errors, not panics.
    assert!(
        engine
            .query(&Query::new("default", "latency", 10, 10))
            .is_err()
    );
    let bad = Query::new("default", "latency", 0, 10).aggregates([Aggregate::TopK(3)]);
    assert!(matches!(engine.query(&bad), Err(Error::Query(_))));
}

#[tokio::test]
async fn top_k_over_a_dimension() {
    let clock = clock();
    let engine = builder(&clock)
        .aggregates(AggregateConfig::default().top_k("path", 16))
        .build()
        .unwrap();
    let mut evs = Vec::new();
    for (path, n) in [("/a", 500), ("/b", 300), ("/c", 100)] {
        for i in 0..n {
            evs.push(
                Event::new("hits", T0 + i, 1.0)
                    .dim("path", path)
                    .dim("host", "x"),
            );
        }
    }
    for i in 0..200 {
        evs.push(
            Event::new("hits", T0 + i, 1.0)
                .dim("path", format!("/rare{i}"))
                .dim("host", "x"),
        );
    }
    ingest_all(&engine, &evs, 64).await;
    engine.finish(WAIT).await.unwrap();
    // The path is not part of the series key: one series.
    assert_eq!(engine.series("default", None).len(), 1);
    let r = engine
        .query(
            &Query::new("default", "hits", T0 - 60_000, T0 + 60_000)
                .aggregates([Aggregate::TopK(3)]),
        )
        .unwrap();
    let Value::TopK(top) = &r.groups[0].points[0].values[0] else {
        panic!()
    };
    let names: Vec<&str> = top.iter().map(|t| t.item.as_str()).collect();
    assert_eq!(names, ["/a", "/b", "/c"]);
    for (t, truth) in top.iter().zip([500, 300, 100]) {
        assert!(t.lower_bound() <= truth && truth <= t.count, "{t:?}");
    }
}

#[tokio::test]
async fn tenants_are_separate() {
    let clock = clock();
    let engine = builder(&clock).build().unwrap();
    engine
        .ingest(Batch::new(vec![Event::new("m", T0, 1.0)]).tenant("a"))
        .await
        .unwrap();
    engine
        .ingest(Batch::new(vec![Event::new("m", T0, 5.0)]).tenant("b"))
        .await
        .unwrap();
    engine.finish(WAIT).await.unwrap();
    let sum = |t: &str| {
        engine
            .query(&Query::new(t, "m", T0 - 60_000, T0 + 60_000).aggregates([Aggregate::Sum]))
            .unwrap()
            .groups[0]
            .points[0]
            .values[0]
            .clone()
    };
    assert_eq!(sum("a"), Value::Number(Some(1.0)));
    assert_eq!(sum("b"), Value::Number(Some(5.0)));
}

#[tokio::test]
async fn config_errors() {
    let clock = clock();
    assert!(builder(&clock).shards(0).build().is_err());
    assert!(builder(&clock).mailbox_capacity(0).build().is_err());
    assert!(
        builder(&clock)
            .late_policy(LatePolicy::Stream { capacity: 0 })
            .build()
            .is_err()
    );
    assert!(
        builder(&clock)
            .window(WindowSpec::hopping(MIN, Duration::from_secs(7)))
            .build()
            .is_err()
    );
    assert!(
        builder(&clock)
            .aggregates(AggregateConfig::default().distinct(Some(30)))
            .build()
            .is_err()
    );
    assert!(
        builder(&clock)
            .tick_interval(Some(Duration::ZERO))
            .build()
            .is_err()
    );
}

#[test]
fn build_outside_a_runtime_is_an_error() {
    let err = Engine::builder().build().unwrap_err();
    assert!(matches!(err, Error::Config(m) if m.contains("tokio")));
}

#[tokio::test]
async fn churned_series_are_forgotten_by_shards_and_store() {
    let clock = clock();
    let engine = builder(&clock)
        .shards(2)
        .window(WindowSpec::tumbling(Duration::from_secs(1)))
        .time(TimeMode::event_time(
            Duration::ZERO,
            Duration::from_secs(600),
        ))
        .tiers([weft_analytics::Tier::new(
            Duration::from_secs(1),
            Duration::from_secs(5),
        )])
        .build()
        .unwrap();
    // Every second a fresh set of 20 series; each lives for one window only.
    for sec in 0..30i64 {
        let batch = (0..20)
            .map(|i| Event::new("m", T0 + sec * 1000, 1.0).dim("host", format!("s{sec}-{i}")))
            .collect();
        engine.ingest(Batch::new(batch)).await.unwrap();
    }
    engine.flush(WAIT).await.unwrap();
    let m = engine.metrics();
    let held: usize = m.shard_series.iter().sum();
    // 600 series were seen; the shards keep only recent ones.
    assert!(held <= 120, "shards hold {held} series");
    // The store keeps 5 s of windows: about 100 series, not 600.
    assert!(
        m.store.series <= 200,
        "store holds {} series: {m:?}",
        m.store.series
    );
    assert_eq!(m.windows_closed, 29 * 20);
    // Queries still see what is retained, and only that.
    let r = engine
        .query(&Query::new("default", "m", T0, T0 + 60_000).aggregates([Aggregate::Count]))
        .unwrap();
    let windows: HashSet<i64> = r.groups[0].points.iter().map(|p| p.start).collect();
    assert!(
        windows.len() <= 6 && windows.contains(&(T0 + 28_000)),
        "{windows:?}"
    );
}

#[tokio::test]
async fn open_windows_are_queryable_as_partials() {
    let clock = clock();
    let engine = builder(&clock)
        .shards(2)
        .window(WindowSpec::hopping(
            Duration::from_secs(10),
            Duration::from_secs(5),
        ))
        .time(TimeMode::event_time(
            Duration::ZERO,
            Duration::from_secs(600),
        ))
        .build()
        .unwrap();
    let e = |host: &str, s: i64, v: f64| Event::new("m", T0 + s * 1000, v).dim("host", host);
    // T0 is a multiple of 5 s: windows start at T0 + k·5 s.
    engine
        .ingest(Batch::new(vec![
            e("a", 1, 1.0),
            e("b", 6, 2.0),
            e("a", 7, 4.0),
        ]))
        .await
        .unwrap();
    let q = Query::new("default", "m", T0 - 20_000, T0 + 20_000)
        .aggregates([Aggregate::Count, Aggregate::Sum]);
    let open = engine.query_open(&q, WAIT).await.unwrap();
    // At watermark 7 s only [-5 s, 5 s) is final (the store has it); [0, 10) and [5, 15)
    // are open.
    engine.flush(WAIT).await.unwrap();
    let fin = engine.query(&q).unwrap();
    assert_eq!(fin.groups[0].points.len(), 1);
    assert_eq!(fin.groups[0].points[0].start, T0 - 5_000);
    let starts: Vec<i64> = open.groups[0].points.iter().map(|p| p.start - T0).collect();
    assert_eq!(starts, [0, 5_000]);
    // Every open window matches an oracle of the hopping windows.
    for p in &open.groups[0].points {
        let want: f64 = [(1, 1.0), (6, 2.0), (7, 4.0)]
            .iter()
            .filter(|(s, _)| T0 + s * 1000 >= p.start && T0 + s * 1000 < p.end)
            .map(|(_, v)| v)
            .sum();
        assert_eq!(p.values[1], Value::Number(Some(want)), "{p:?}");
        assert_eq!(p.end - p.start, 10_000);
    }
}

#[tokio::test]
async fn per_source_rate_limit_before_the_tenant_one() {
    let clock = clock();
    let engine = builder(&clock)
        .source_quota(Quota::per_second(5).unwrap())
        .tenant_quota(Quota::per_second(8).unwrap())
        .build()
        .unwrap();
    let b = |source: &str, n: usize| {
        Batch::new(vec![Event::new("m", T0, 1.0); n])
            .tenant("acme")
            .source(source)
    };
    engine.ingest(b("s1", 5)).await.unwrap();
    let err = engine.ingest(b("s1", 1)).await.unwrap_err();
    match &err.error {
        Error::SourceRateLimited {
            tenant,
            source_name,
            retry_after,
        } => {
            assert_eq!((tenant.as_str(), source_name.as_str()), ("acme", "s1"));
            assert_eq!(*retry_after, Duration::from_millis(200));
        }
        e => panic!("{e:?}"),
    }
    assert!(err.error.is_retryable());
    // Another source of the same tenant has its own 5, but the tenant only 3 left.
    engine.ingest(b("s2", 3)).await.unwrap();
    let err = engine.ingest(b("s2", 1)).await.unwrap_err();
    assert!(matches!(err.error, Error::RateLimited { .. }), "{err:?}");
    // Oversized for the smaller burst: refused before anything is spent.
    let err = engine.ingest(b("s3", 6)).await.unwrap_err();
    assert_eq!(err.error, Error::BatchTooLarge { events: 6, max: 5 });
    assert_eq!(engine.metrics().rate_limited, 2);
}
