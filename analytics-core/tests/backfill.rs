//! Backfill (a weft-mapreduce job over the durable log) equals the streaming path for
//! the same events.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{T0, clock};
use proptest::prelude::*;
use weft_analytics::{
    Aggregate, BackfillRange, Batch, CancelToken, Durability, Engine, Error, Event, Query,
    TimeMode, Value, WindowSpec,
};

const WAIT: Duration = Duration::from_secs(10);

type Cells = BTreeMap<(String, i64, i64), (u64, f64, Option<f64>, Option<f64>)>;

fn engine(dir: &std::path::Path, spec: WindowSpec) -> Engine {
    Engine::builder()
        .clock(clock())
        .tick_interval(None)
        // Out-of-orderness above the input's span: no event is late, so the streaming
        // path keeps every event the backfill reads.
        .time(TimeMode::event_time(
            Duration::from_secs(3_600),
            Duration::from_secs(3_600),
        ))
        .shards(2)
        .window(spec)
        .durable(Durability::new(dir))
        .build()
        .unwrap()
}

fn streamed(engine: &Engine) -> Cells {
    let q = Query::new("default", "m", T0 - 3_600_000, T0 + 3_600_000)
        .group_by("host")
        .aggregates([
            Aggregate::Count,
            Aggregate::Sum,
            Aggregate::Min,
            Aggregate::Max,
        ]);
    let mut m = BTreeMap::new();
    for g in engine.query(&q).unwrap().groups {
        for p in g.points {
            let Value::Count(c) = p.values[0] else {
                panic!()
            };
            let num = |v: &Value| match v {
                Value::Number(x) => *x,
                _ => panic!(),
            };
            m.insert(
                (g.group[0].clone(), p.start, p.end),
                (
                    c,
                    p.values[1].as_f64().unwrap(),
                    num(&p.values[2]),
                    num(&p.values[3]),
                ),
            );
        }
    }
    m
}

async fn run(spec: WindowSpec, events: Vec<Event>, batch: usize) -> (Cells, Cells) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), spec);
    engine.ready().await.unwrap();
    for chunk in events.chunks(batch) {
        engine.ingest(Batch::new(chunk.to_vec())).await.unwrap();
    }
    let job = engine
        .backfill(BackfillRange::new(T0 - 3_600_000, T0 + 3_600_000).threads(2))
        .unwrap();
    let result = job.wait().await.unwrap();
    engine.finish(WAIT).await.unwrap();
    let mut backfilled = BTreeMap::new();
    for w in result.windows {
        assert_eq!(w.key.metric(), "m");
        backfilled.insert(
            (w.key.dim("host").unwrap().to_owned(), w.start, w.end),
            (w.agg.count(), w.agg.sum(), w.agg.min(), w.agg.max()),
        );
    }
    let s = streamed(&engine);
    engine.shutdown(WAIT).await;
    (backfilled, s)
}

fn arb_events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0i64..600_000, 0u8..4, 1u32..1000), 1..300).prop_map(|v| {
        v.into_iter()
            .map(|(dt, host, value)| {
                Event::new("m", T0 + dt, f64::from(value)).dim("host", format!("h{host}"))
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn backfill_equals_streaming(
        events in arb_events(),
        batch in 1usize..64,
        hopping in any::<bool>(),
    ) {
        let spec = if hopping {
            WindowSpec::hopping(Duration::from_secs(60), Duration::from_secs(20))
        } else {
            WindowSpec::tumbling(Duration::from_secs(30))
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (backfilled, streamed) = rt.block_on(run(spec, events, batch));
        prop_assert!(!streamed.is_empty());
        prop_assert_eq!(backfilled, streamed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_limits_to_the_range_reports_progress_and_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), WindowSpec::tumbling(Duration::from_secs(10)));
    for i in 0..40i64 {
        let events = (0..5)
            .map(|j| Event::new("m", T0 + i * 1_000 + j, 1.0).dim("host", "a"))
            .collect();
        engine.ingest(Batch::new(events)).await.unwrap();
    }
    // Windows starting in [T0 + 10 s, T0 + 30 s): two windows of 10 batches each.
    let job = engine
        .backfill(BackfillRange::new(T0 + 10_000, T0 + 30_000))
        .unwrap();
    let r = job.wait().await.unwrap();
    assert_eq!(r.batches, 40);
    let got: Vec<(i64, u64)> = r
        .windows
        .iter()
        .map(|w| (w.start - T0, w.agg.count()))
        .collect();
    assert_eq!(got, [(10_000, 50), (20_000, 50)]);

    let job = engine
        .backfill(BackfillRange::new(T0, T0 + 60_000))
        .unwrap();
    while !job.is_finished() {
        tokio::task::yield_now().await;
    }
    assert_eq!(job.progress().batches_done, 40);
    assert_eq!(job.progress().batches_total, 40);
    job.wait().await.unwrap();

    // A cancelled token stops the job.
    let token = CancelToken::new();
    token.cancel();
    let job = engine
        .backfill(BackfillRange::new(T0, T0 + 60_000).cancel_token(token))
        .unwrap();
    assert!(matches!(job.wait().await, Err(Error::Cancelled)));

    // Misuse is a configuration error.
    assert!(matches!(
        engine.backfill(BackfillRange::new(T0, T0)),
        Err(Error::Config(_))
    ));
    let mem = Engine::builder().clock(clock()).build().unwrap();
    assert!(matches!(
        mem.backfill(BackfillRange::new(T0, T0 + 1)),
        Err(Error::Config(_))
    ));
}
