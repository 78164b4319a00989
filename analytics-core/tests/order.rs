//! Property: final window results do not depend on arrival order, as long as every
//! event arrives within the allowed lateness.

mod common;

use std::time::Duration;

use common::{T0, builder, clock};
use proptest::prelude::*;
use weft_analytics::{
    Aggregate, Batch, Event, Query, QueryResult, RejectReason, TimeMode, WindowSpec,
};

const OOO: i64 = 1_000;

fn spec(kind: u8) -> WindowSpec {
    match kind {
        0 => WindowSpec::tumbling(Duration::from_secs(5)),
        1 => WindowSpec::hopping(Duration::from_secs(6), Duration::from_secs(2)),
        _ => WindowSpec::session(Duration::from_millis(1_500)),
    }
}

/// The allowed lateness that makes every event of `batches` on time: for each event,
/// how far the watermark (largest timestamp so far, its own batch included, minus the
/// out-of-orderness bound) can be past it.
fn needed_lateness(batches: &[Vec<Event>]) -> i64 {
    let mut max_ts = i64::MIN;
    let mut need = 0;
    for b in batches {
        for e in b {
            max_ts = max_ts.max(e.timestamp_ms());
        }
        for e in b {
            need = need.max(max_ts - OOO - e.timestamp_ms());
        }
    }
    need + 1
}

fn run(kind: u8, shards: usize, lateness: i64, batches: Vec<Vec<Event>>) -> (QueryResult, u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let clock = clock();
        let engine = builder(&clock)
            .shards(shards)
            .window(spec(kind))
            .time(TimeMode::event_time(
                Duration::from_millis(OOO as u64),
                Duration::from_secs(600),
            ))
            .allowed_lateness(Duration::from_millis(lateness as u64))
            .build()
            .unwrap();
        for b in batches {
            engine.ingest(Batch::new(b)).await.unwrap();
        }
        engine.finish(Duration::from_secs(10)).await.unwrap();
        let q = Query::new("default", "m", T0 - 100_000, T0 + 1_000_000)
            .group_by("k")
            .aggregates([
                Aggregate::Count,
                Aggregate::Sum,
                Aggregate::Min,
                Aggregate::Max,
                Aggregate::Quantile(0.5),
                Aggregate::Quantile(0.95),
                Aggregate::Distinct,
            ]);
        let r = engine.query(&q).unwrap();
        let late = engine.metrics().rejected(RejectReason::Late);
        engine.shutdown(Duration::from_secs(1)).await;
        (r, late)
    })
}

fn arb_events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0i64..30_000, 0u8..3, 1u32..100, 0u64..20), 1..120).prop_map(|v| {
        v.into_iter()
            .map(|(t, k, val, ent)| {
                Event::new("m", T0 + t, f64::from(val))
                    .dim("k", format!("k{k}"))
                    .entity_hashed(ent)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn final_results_do_not_depend_on_arrival_order(
        events in arb_events(),
        kind in 0u8..3,
        shards in 1usize..4,
        seed in any::<u64>(),
        batch in 1usize..20,
    ) {
        // In timestamp order.
        let mut sorted = events.clone();
        sorted.sort_by_key(Event::timestamp_ms);
        // A random arrival order (Fisher-Yates with a seeded xorshift).
        let mut shuffled = events;
        let mut rng = common::Rng::new(seed);
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let a: Vec<Vec<Event>> = sorted.chunks(batch).map(<[Event]>::to_vec).collect();
        let b: Vec<Vec<Event>> = shuffled.chunks(batch).map(<[Event]>::to_vec).collect();
        let lateness = needed_lateness(&a).max(needed_lateness(&b));
        let (ra, late_a) = run(kind, shards, lateness, a);
        let (rb, late_b) = run(kind, shards, lateness, b);
        prop_assert_eq!(late_a, 0);
        prop_assert_eq!(late_b, 0);
        prop_assert!(!ra.groups.is_empty());
        prop_assert_eq!(ra, rb);
    }
}
