//! The built-in demo event source: a small web shop's request latencies and orders, so
//! a newcomer sees live data at once. It ingests through the engine like any client
//! (tenant `demo`, source `demo`), and a refused batch is counted, never retried in a
//! loop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use weft::analytics::{Batch, Engine, Event};
use weft::lockfree::StripedCounter;

use super::api::now_ms;

/// The demo's counters.
#[derive(Debug, Default)]
pub struct DemoStats {
    /// Events sent and accepted.
    pub sent: StripedCounter,
    /// Batches refused (busy, rate-limited).
    pub refused: StripedCounter,
}

const ROUTES: [&str; 5] = ["/", "/search", "/product", "/cart", "/checkout"];
const SEARCHES: [&str; 6] = ["shoes", "socks", "hat", "shoes", "bag", "shoes"];
const REGIONS: [&str; 3] = ["eu", "us", "apac"];

/// One tick's events (`n` of them) at `now`.
pub fn events(rng: &mut fastrand::Rng, n: usize, now: i64) -> Vec<Event> {
    let mut out = Vec::with_capacity(n + n / 10);
    for _ in 0..n {
        let route = ROUTES[rng.usize(..ROUTES.len())];
        let region = REGIONS[rng.usize(..REGIONS.len())];
        // A long-tailed latency: mostly 5-60 ms, sometimes seconds; /checkout slower.
        let base = if route == "/checkout" { 40.0 } else { 8.0 };
        let tail = if rng.u32(..100) < 2 {
            rng.f64() * 2_000.0
        } else {
            0.0
        };
        let latency = base + rng.f64() * 50.0 + tail;
        let status = if rng.u32(..100) < 3 { "500" } else { "200" };
        let user = rng.u32(..2_000);
        let path = match route {
            "/product" => format!("/product/{}", rng.u32(..50) * rng.u32(..4)),
            "/search" => format!("/search?q={}", SEARCHES[rng.usize(..SEARCHES.len())]),
            r => r.to_owned(),
        };
        out.push(
            Event::new("http.request_ms", now - rng.i64(0..500), latency)
                .dim("route", route)
                .dim("region", region)
                .dim("status", status)
                .dim("path", path)
                .entity(&user),
        );
        if route == "/checkout" {
            out.push(
                Event::new("shop.order_value", now, 5.0 + rng.f64() * 300.0)
                    .dim("region", region)
                    .entity(&user),
            );
        }
    }
    out
}

/// Runs the demo until `stop` turns true: `rate` events per second in ten batches.
pub async fn run(
    engine: Engine,
    rate: u32,
    stats: Arc<DemoStats>,
    mut stop: watch::Receiver<bool>,
) {
    if engine.ready().await.is_err() {
        return;
    }
    let mut rng = fastrand::Rng::new();
    let per_tick = (rate as usize).div_ceil(10).max(1);
    let mut every = tokio::time::interval(Duration::from_millis(100));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let batch = Batch::new(events(&mut rng, per_tick, now_ms()))
            .tenant("demo")
            .source("demo");
        match engine.try_ingest(batch).await {
            Ok(r) => stats.sent.add(r.accepted as u64),
            Err(_) => stats.refused.incr(),
        }
    }
}
