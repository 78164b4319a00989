//! Test helpers: a deterministic generator, an exact oracle, an engine on a manual clock.

#![allow(dead_code, unreachable_pub)] // each test file uses a different subset

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use weft_analytics::{Aggregate, Engine, EngineBuilder, Event, Query, TimeMode, Value};
use weft_time::ManualClock;

/// The tests' epoch: 2023-11-14, so timestamps pass the engine's sanity checks.
pub const T0: i64 = 1_700_000_000_000;

pub fn clock() -> ManualClock {
    ManualClock::starting_at(UNIX_EPOCH + Duration::from_millis(T0 as u64))
}

/// An engine on `clock`, no background tick.
pub fn builder(clock: &ManualClock) -> EngineBuilder {
    Engine::builder()
        .clock(clock.clone())
        .tick_interval(None)
        .time(TimeMode::event_time(
            Duration::from_secs(5),
            Duration::from_secs(60),
        ))
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Exact per-(host, window) aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct Exact {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub values: Vec<f64>,
}

/// The oracle for tumbling windows of `size` ms over events with a `host` dimension.
pub fn tumbling_oracle(events: &[Event], size: i64) -> BTreeMap<(String, i64), Exact> {
    let mut m: BTreeMap<(String, i64), Exact> = BTreeMap::new();
    for e in events {
        let start = e.timestamp_ms() - e.timestamp_ms().rem_euclid(size);
        let host = e.dim_value("host").unwrap_or("").to_owned();
        let x = m.entry((host, start)).or_insert(Exact {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            values: Vec::new(),
        });
        x.count += 1;
        x.sum += e.value();
        x.min = x.min.min(e.value());
        x.max = x.max.max(e.value());
        x.values.push(e.value());
    }
    m
}

/// `n` events over `hosts` series, timestamps increasing from `T0` by 0..`gap` ms,
/// integer values (exact sums), entity ids.
pub fn events(rng: &mut Rng, n: usize, hosts: u64, gap: u64) -> Vec<Event> {
    let mut ts = T0;
    (0..n)
        .map(|_| {
            ts += rng.below(gap + 1) as i64;
            Event::new("latency", ts, (rng.below(1000) + 1) as f64)
                .dim("host", format!("h{}", rng.below(hosts)))
                .entity_hashed(rng.below(500))
        })
        .collect()
}

pub fn approx_eq(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Count and sum per (host, window start) of the final windows of `engine`.
pub fn cells(engine: &Engine, metric: &str, dim: &str) -> BTreeMap<(String, i64), (u64, f64)> {
    let q = Query::new("default", metric, T0 - 3_600_000, T0 + 10 * 3_600_000)
        .group_by(dim)
        .aggregates([Aggregate::Count, Aggregate::Sum]);
    let r = engine.query(&q).unwrap();
    let mut m = BTreeMap::new();
    for g in &r.groups {
        for p in &g.points {
            let Value::Count(c) = p.values[0] else {
                panic!("not a count: {:?}", p.values[0])
            };
            m.insert(
                (g.group[0].clone(), p.start),
                (c, p.values[1].as_f64().unwrap()),
            );
        }
    }
    m
}
