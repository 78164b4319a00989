//! The reference analytics server over `weft-analytics`: everything but `main`, so the
//! integration tests (`tests/platform.rs`) can start it in-process.
//!
//! - [`config`] — flags, environment, TOML file, defaults.
//! - [`auth`] — tenants and hashed API keys.
//! - [`wire`] — the JSON / NDJSON ingest parser.
//! - [`api`] — routes and handlers.
//! - [`prom`] — `/metrics`.
//! - [`demo`] — the built-in event source.
//! - [`dashboard`] — the live dashboard page (`GET /dashboard`).
//! - [`live`] — `GET /v1/live`, the WebSocket hub.

pub mod api;
pub mod auth;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod live;
pub mod prom;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use weft::analytics::{
    AggregateConfig, AlertManager, AlertRule, Comparison, Condition, Durability, Engine, HttpSink,
    Limits, Notification, Notifier, RuleAggregate, Sink, SinkFuture, Tier, TimeMode, WindowSpec,
};
use weft::eventsourcing::{FileLog, FileLogConfig};
use weft::lockfree::StripedCounter;
use weft::ratelimit::Quota;

use self::auth::{TenantKey, Tenants};
use self::config::Settings;
use self::demo::DemoStats;

/// How far into the future (by the server clock) an event's timestamp may be.
pub const MAX_FUTURE: Duration = Duration::from_secs(30);

/// The HTTP layer's counters (weft-lockfree striped counters: handlers on every core
/// write them without contention).
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Ingest requests.
    pub ingest_requests: StripedCounter,
    /// Ingest body bytes.
    pub ingest_bytes: StripedCounter,
    /// Events accepted.
    pub events_accepted: StripedCounter,
    /// Events rejected (reported by index).
    pub events_rejected: StripedCounter,
    /// Requests refused by a rate limit.
    pub rate_limited: StripedCounter,
    /// Requests refused by backpressure.
    pub busy: StripedCounter,
    /// Requests refused as too large.
    pub too_large: StripedCounter,
    /// Malformed bodies.
    pub malformed: StripedCounter,
    /// Requests without a valid key.
    pub unauthorized: StripedCounter,
    /// Log failures.
    pub log_errors: StripedCounter,
    /// Queries answered.
    pub queries: StripedCounter,
    /// Microseconds spent answering queries.
    pub query_micros: StripedCounter,
    /// Live tails opened.
    pub tails: StripedCounter,
}

/// A webhook sink shared with `/metrics` (for its pool status).
#[derive(Debug, Clone)]
pub struct SharedSink(pub Arc<HttpSink>);

impl Sink for SharedSink {
    fn deliver<'a>(&'a self, n: &'a Notification) -> SinkFuture<'a> {
        self.0.deliver(n)
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct App {
    /// The engine.
    pub engine: Engine,
    /// Alert rules, state and notifications.
    pub alerts: AlertManager,
    /// Tenants by key.
    pub tenants: Tenants,
    /// The settings.
    pub settings: Settings,
    /// HTTP counters.
    pub stats: HttpStats,
    /// Webhook sinks by name.
    pub sinks: Vec<(String, SharedSink)>,
    /// The demo's counters, when it runs.
    pub demo: Option<Arc<DemoStats>>,
    /// The WebSocket hub of `GET /v1/live`.
    pub live: Arc<live::Hub>,
    /// Turns true at shutdown: live streams end, so graceful shutdown does not wait
    /// for clients that never hang up.
    pub stopping: watch::Receiver<bool>,
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The demo tenant's key, when the server made one.
    pub demo_key: Option<String>,
    /// The shared state.
    pub app: Arc<App>,
    stop: watch::Sender<bool>,
    serve: JoinHandle<std::io::Result<()>>,
    tasks: Vec<JoinHandle<()>>,
}

fn open_log(dir: std::path::PathBuf) -> Result<FileLog, String> {
    FileLog::open(&dir, FileLogConfig::default())
        .map_err(|e| format!("cannot open {}: {e}", dir.display()))
}

/// Builds the engine, the alerting and the router, binds the listener and starts
/// serving (the log replay runs in the background: `/readyz` says when it is done).
///
/// # Errors
///
/// A message saying what could not be set up (data directory, port, configuration).
pub async fn start(settings: Settings) -> Result<Running, String> {
    settings.validate()?;
    let dir = &settings.data_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;

    let mut keys: Vec<TenantKey> = settings.tenants.clone();
    let mut demo_key = None;
    if (settings.demo || keys.is_empty()) && !keys.iter().any(|k| k.name == "demo") {
        let key = auth::generate_key()?;
        keys.push(TenantKey::from_key("demo", &key)?);
        demo_key = Some(key);
    }

    let mut engine = Engine::builder()
        .shards(settings.shards)
        .aggregates(AggregateConfig::default().top_k(settings.top_k_dim.as_str(), 32))
        // The watermark is engine-wide: a timestamp far ahead would close everyone's
        // windows early. Allow only clock skew into the future.
        .limits(Limits::default().max_future(MAX_FUTURE))
        .window(WindowSpec::tumbling(settings.window))
        .time(TimeMode::event_time(
            Duration::from_secs(5),
            Duration::from_secs(60),
        ))
        .tiers([
            Tier::new(settings.window, Duration::from_secs(3_600)),
            Tier::new(
                Duration::from_secs(60).max(settings.window),
                Duration::from_secs(86_400),
            ),
        ])
        .durable(
            Durability::new(dir.join("engine"))
                .ack(settings.ack)
                .snapshot_every(Some(20_000))
                .compact_after_snapshot(true),
        );
    if settings.tenant_rate > 0 {
        let q =
            Quota::per_second(settings.tenant_rate).map_err(|e| format!("--tenant-rate: {e}"))?;
        engine = engine.tenant_quota(q);
    }
    let engine = engine.build().map_err(|e| e.to_string())?;

    let mut notifier = Notifier::builder();
    let mut sinks = Vec::new();
    for (name, url) in &settings.webhooks {
        let sink = SharedSink(Arc::new(
            HttpSink::new(url).map_err(|e| format!("webhook `{name}`: {e}"))?,
        ));
        notifier = notifier.sink(name, sink.clone());
        sinks.push((name.clone(), sink));
    }
    let alerts = AlertManager::builder(engine.clone())
        .rules_store(open_log(dir.join("alerts").join("rules"))?)
        .state_store(open_log(dir.join("alerts").join("state"))?)
        .notifier(notifier.build().map_err(|e| e.to_string())?)
        .build()
        .map_err(|e| e.to_string())?;

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;

    // Live updates are small frames: without TCP_NODELAY, Nagle holds a frame written
    // right after another (a round's partial after its final) until the client's
    // delayed ACK, up to 40 ms. HTTP answers go out in one write either way.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let (stop, stop_rx) = watch::channel(false);
    let demo = settings.demo.then(|| Arc::new(DemoStats::default()));
    let hub = Arc::new(live::Hub::default());
    let app = Arc::new(App {
        engine: engine.clone(),
        alerts: alerts.clone(),
        tenants: Tenants::new(&keys),
        settings: settings.clone(),
        stats: HttpStats::default(),
        sinks,
        demo: demo.clone(),
        live: Arc::clone(&hub),
        stopping: stop_rx.clone(),
    });
    let mut tasks = vec![
        alerts.spawn(settings.alert_interval),
        hub.spawn_stats(engine.clone(), alerts.clone(), stop_rx.clone()),
    ];
    if let Some(stats) = demo {
        tasks.push(tokio::spawn(demo::run(
            engine.clone(),
            settings.demo_rate,
            stats,
            stop_rx.clone(),
        )));
        // A rule to show alerting: slow checkouts. Created once; kept across restarts.
        let alerts = alerts.clone();
        tasks.push(tokio::spawn(async move {
            let rule = AlertRule::new(
                "demo",
                "slow-checkout",
                "http.request_ms",
                RuleAggregate::Quantile(0.99),
                Condition::new(Comparison::Above, 1_500.0),
            )
            .filter("route", "/checkout");
            if let Ok(rules) = alerts.rules().await {
                if !rules.iter().any(|r| r.key() == rule.key()) {
                    let _ = alerts.create_rule(rule).await;
                }
            }
        }));
    }
    let router = api::router(Arc::clone(&app));
    let mut stop_serve = stop_rx;
    let serve = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop_serve.wait_for(|s| *s).await;
            })
            .await
    });
    tracing::info!(%addr, data_dir = %settings.data_dir.display(), "weft platform listening");
    Ok(Running {
        addr,
        demo_key,
        app,
        stop,
        serve,
        tasks,
    })
}

impl Running {
    /// Graceful shutdown: stop accepting, let in-flight requests finish (up to the
    /// shutdown timeout), stop the demo and the alerting, fsync the log, and drain the
    /// engine.
    pub async fn shutdown(self) {
        let timeout = self.app.settings.shutdown_timeout;
        let _ = self.stop.send(true);
        let mut serve = self.serve;
        match tokio::time::timeout(timeout, &mut serve).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the HTTP server failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the HTTP server task failed"),
            Err(_) => {
                // Stop them, so none races the engine's shutdown below.
                tracing::warn!(
                    ?timeout,
                    "in-flight requests did not finish in time; aborted"
                );
                serve.abort();
            }
        }
        for t in &self.tasks {
            t.abort();
        }
        self.app.alerts.shutdown().await;
        if let Err(e) = self.app.engine.sync_log().await {
            tracing::error!(error = %e, "the final log sync failed");
        }
        self.app.engine.shutdown(timeout).await;
        tracing::info!("weft platform stopped");
    }
}
