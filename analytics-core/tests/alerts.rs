//! Alert rules end to end on a manual clock: firing after the for-duration, resolving,
//! webhook retries into an open breaker, dead letters, history after a restart, and the
//! HTTP sink against a local server.

mod common;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{T0, clock};
use weft_analytics::{
    AlertEvent, AlertManager, AlertRule, AlertStatus, Batch, Comparison, Condition, Engine, Error,
    Event, HttpSink, Notification, Notifier, Resolve, RuleAggregate, Sink, SinkError, SinkFuture,
    TimeMode, WindowSpec,
};
use weft_circuitbreaker::State;
use weft_circuitbreaker::retry::RetryPolicy;
use weft_eventsourcing::{FileLog, FileLogConfig};
use weft_time::{Backoff, ManualClock};

const W: i64 = 10_000; // window size, ms
const WAIT: Duration = Duration::from_secs(5);

fn engine(clock: &ManualClock) -> Engine {
    Engine::builder()
        .clock(clock.clone())
        .tick_interval(None)
        .shards(2)
        .window(WindowSpec::tumbling(Duration::from_millis(W as u64)))
        .time(TimeMode::event_time(
            Duration::ZERO,
            Duration::from_secs(600),
        ))
        .build()
        .unwrap()
}

/// `n` events of metric `errors` on `route` in window `k`.
async fn feed(engine: &Engine, k: i64, route: &str, n: usize) {
    let events = (0..n)
        .map(|i| Event::new("errors", T0 + k * W + i as i64, 1.0).dim("route", route))
        .collect();
    engine.ingest(Batch::new(events)).await.unwrap();
}

/// Moves the watermark to the end of window `k - 1` (a marker on another metric) and
/// waits until the closed windows are in the store.
async fn close_before(engine: &Engine, k: i64) {
    let marker = Event::new("marker", T0 + k * W, 0.0);
    engine.ingest(Batch::new(vec![marker])).await.unwrap();
    engine.flush(WAIT).await.unwrap();
}

/// A sink recording what it got; fails while `failures` is positive (counting down).
#[derive(Debug, Default, Clone)]
struct Fake {
    got: Arc<Mutex<Vec<Notification>>>,
    calls: Arc<AtomicU32>,
    failures: Arc<AtomicU32>,
}

impl Sink for Fake {
    fn deliver<'a>(&'a self, n: &'a Notification) -> SinkFuture<'a> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let failing = self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
                .is_ok();
            if failing {
                return Err(SinkError::Status(503));
            }
            self.got.lock().unwrap().push(n.clone());
            Ok(())
        })
    }
}

fn rule() -> AlertRule {
    AlertRule::new(
        "default",
        "pay-errors",
        "errors",
        RuleAggregate::Count,
        Condition::new(Comparison::Above, 5.0),
    )
    .filter("route", "/pay")
    .for_duration(Duration::from_secs(30))
    .resolve(Resolve::after_false(2))
    .sink("ops")
}

fn transitions(history: &[AlertEvent]) -> Vec<&'static str> {
    history
        .iter()
        .filter(|e| e.is_transition())
        .map(|e| match e {
            AlertEvent::Pending { .. } => "pending",
            AlertEvent::Cleared { .. } => "cleared",
            AlertEvent::Firing { .. } => "firing",
            AlertEvent::Resolved { .. } => "resolved",
            _ => "other",
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn fires_after_the_for_duration_and_resolves() {
    let clock = clock();
    let engine = engine(&clock);
    let fake = Fake::default();
    let alerts = AlertManager::builder(engine.clone())
        .notifier(
            Notifier::builder()
                .sink("ops", fake.clone())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    alerts.create_rule(rule()).await.unwrap();
    let key = "default/pay-errors";
    let status = |a: &AlertManager| a.state(key).unwrap().status;

    // Windows 0, 1, 2 breach (10 > 5); the for-duration of 30 s is reached at the end
    // of window 2.
    for k in 0..3 {
        feed(&engine, k, "/pay", 10).await;
        // Noise on another route never counts.
        feed(&engine, k, "/home", 100).await;
        close_before(&engine, k + 1).await;
        let r = alerts.evaluate().await.unwrap();
        assert_eq!(r.windows, 1, "window {k}");
        let want = if k < 2 {
            AlertStatus::Pending
        } else {
            AlertStatus::Firing
        };
        assert_eq!(status(&alerts), want, "after window {k}");
    }
    assert_eq!(fake.got.lock().unwrap().len(), 1);
    {
        let got = fake.got.lock().unwrap();
        assert_eq!(got[0].status, AlertStatus::Firing);
        assert_eq!(got[0].at, T0 + 3 * W);
        assert_eq!(got[0].value, Some(10.0));
    }
    // Window 3 is fine (2 <= 5): one window toward resolving, still firing.
    feed(&engine, 3, "/pay", 2).await;
    close_before(&engine, 4).await;
    alerts.evaluate().await.unwrap();
    assert_eq!(status(&alerts), AlertStatus::Firing);
    assert_eq!(alerts.state(key).unwrap().resolve_streak, 1);
    // Window 4 has no /pay events at all: count 0, the second window: resolved.
    feed(&engine, 4, "/home", 50).await;
    close_before(&engine, 5).await;
    let r = alerts.evaluate().await.unwrap();
    assert_eq!(status(&alerts), AlertStatus::Resolved);
    assert_eq!(r.delivered, 1);
    let got = fake.got.lock().unwrap().clone();
    assert_eq!(
        got.iter().map(|n| (n.status, n.at)).collect::<Vec<_>>(),
        [
            (AlertStatus::Firing, T0 + 3 * W),
            (AlertStatus::Resolved, T0 + 5 * W)
        ]
    );
    let h = alerts.history(key).unwrap();
    assert_eq!(transitions(&h), ["pending", "firing", "resolved"]);
    // An evaluation with nothing new closed records nothing.
    let before = alerts.history(key).unwrap().len();
    let r = alerts.evaluate().await.unwrap();
    assert_eq!((r.windows, alerts.history(key).unwrap().len()), (0, before));
}

#[tokio::test(start_paused = true)]
async fn a_pending_alert_clears_when_the_condition_stops_before_the_for_duration() {
    let clock = clock();
    let engine = engine(&clock);
    let alerts = AlertManager::builder(engine.clone()).build().unwrap();
    let r = rule();
    let mut r = r;
    r.sinks.clear();
    alerts.create_rule(r).await.unwrap();
    feed(&engine, 0, "/pay", 10).await;
    feed(&engine, 1, "/pay", 1).await;
    feed(&engine, 2, "/pay", 10).await;
    close_before(&engine, 3).await;
    let rep = alerts.evaluate().await.unwrap();
    assert_eq!(rep.windows, 3);
    let h = alerts.history("default/pay-errors").unwrap();
    assert_eq!(transitions(&h), ["pending", "cleared", "pending"]);
    assert_eq!(
        alerts.state("default/pay-errors").unwrap().status,
        AlertStatus::Pending
    );
}

#[tokio::test(start_paused = true)]
async fn hysteresis_and_percentile_rules() {
    let clock = clock();
    let engine = engine(&clock);
    let alerts = AlertManager::builder(engine.clone()).build().unwrap();
    let r = AlertRule::new(
        "default",
        "p99",
        "errors",
        RuleAggregate::Quantile(0.99),
        Condition::new(Comparison::Above, 100.0),
    )
    .resolve(Resolve::when(Condition::new(Comparison::Below, 50.0), 1));
    alerts.create_rule(r).await.unwrap();
    let put = |k: i64, v: f64| {
        let engine = engine.clone();
        async move {
            let events = (0..20)
                .map(|i| Event::new("errors", T0 + k * W + i, v))
                .collect();
            engine.ingest(Batch::new(events)).await.unwrap();
        }
    };
    put(0, 200.0).await; // fires at once (no for-duration)
    put(1, 80.0).await; // between the thresholds: still firing
    put(2, 10.0).await; // below 50: resolved
    close_before(&engine, 3).await;
    alerts.evaluate().await.unwrap();
    let h = alerts.history("default/p99").unwrap();
    assert_eq!(transitions(&h), ["pending", "firing", "resolved"]);
    match h.iter().find(|e| matches!(e, AlertEvent::Resolved { .. })) {
        Some(AlertEvent::Resolved { at, .. }) => assert_eq!(*at, T0 + 3 * W),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn rule_commands_are_validated_and_change_the_registry() {
    let clock = clock();
    let engine = engine(&clock);
    let alerts = AlertManager::builder(engine)
        .notifier(
            Notifier::builder()
                .sink("ops", Fake::default())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    // Validation middleware: bad threshold, unknown sink.
    let mut bad = rule();
    bad.condition.threshold = f64::INFINITY;
    let e = alerts.create_rule(bad).await.unwrap_err();
    assert!(
        matches!(&e, Error::RuleCommand(m) if m.contains("threshold must be finite")),
        "{e}"
    );
    let e = alerts
        .create_rule(rule().sink("nowhere"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("sink `nowhere`"), "{e}");
    // Create, duplicate, change, delete.
    alerts.create_rule(rule()).await.unwrap();
    assert!(
        alerts
            .create_rule(rule())
            .await
            .unwrap_err()
            .to_string()
            .contains("exists")
    );
    let changed = rule().for_duration(Duration::from_secs(60));
    alerts.change_rule(changed.clone()).await.unwrap();
    assert_eq!(alerts.rules().await.unwrap(), [changed]);
    let mut other = rule();
    other.name = "other".into();
    assert!(alerts.change_rule(other).await.is_err(), "no such rule");
    alerts.delete_rule("default/pay-errors").await.unwrap();
    assert!(alerts.rules().await.unwrap().is_empty());
    assert!(alerts.delete_rule("default/pay-errors").await.is_err());
    assert!(alerts.delete_rule("no-slash").await.is_err());
}

fn policy(attempts: u32, delay: Duration) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .no_max_elapsed()
        .backoff(Backoff::constant(delay).build().unwrap())
        .build()
        .unwrap()
}

fn note() -> Notification {
    Notification {
        rule: "default/r".into(),
        status: AlertStatus::Firing,
        at: T0,
        value: Some(1.0),
        metric: "m".into(),
        threshold: 0.0,
    }
}

#[tokio::test(start_paused = true)]
async fn retries_run_into_the_open_breaker_then_dead_letter() {
    let fake = Fake::default();
    fake.failures.store(u32::MAX, Ordering::SeqCst); // down for good
    let notifier = Notifier::builder()
        .sink("ops", fake.clone())
        .retry(policy(5, Duration::from_secs(1)))
        .breaker(2, Duration::from_secs(60))
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let dead = notifier.deliver("ops", &note()).await.unwrap_err();
    // Two calls reach the sink and open the breaker; the three retries after that are
    // refused without calling it.
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
    assert_eq!(dead.attempts, 5);
    assert!(
        dead.error.contains("circuit breaker is open"),
        "{}",
        dead.error
    );
    assert_eq!(notifier.breaker_state("ops"), Some(State::Open));
    let m = notifier.metrics();
    assert_eq!(
        (
            m.attempts,
            m.refused_by_breaker,
            m.dead_lettered,
            m.delivered
        ),
        (5, 3, 1, 0)
    );
    assert_eq!(notifier.dead_letters(), std::slice::from_ref(&dead));
    assert_eq!(dead.notification, note());
    // Four backoff waits of 1 s, on tokio's (paused) clock.
    assert_eq!(start.elapsed(), Duration::from_secs(4));
    assert_eq!(notifier.take_dead_letters().len(), 1);
    assert!(notifier.dead_letters().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_the_open_period_probes_and_delivers() {
    let fake = Fake::default();
    fake.failures.store(2, Ordering::SeqCst); // two failures, then up
    let notifier = Notifier::builder()
        .sink("ops", fake.clone())
        .retry(policy(6, Duration::from_millis(1500)))
        .breaker(2, Duration::from_secs(2))
        .build()
        .unwrap();
    // t=0 fail, t=1.5 fail (opens until 3.5), t=3.0 refused, t=4.5 half-open trial: ok.
    let attempts = notifier.deliver("ops", &note()).await.unwrap();
    assert_eq!(attempts, 4);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 3);
    assert_eq!(fake.got.lock().unwrap().len(), 1);
    let m = notifier.metrics();
    assert_eq!(
        (m.refused_by_breaker, m.delivered, m.dead_lettered),
        (1, 1, 0)
    );
    assert_eq!(notifier.breaker_state("ops"), Some(State::Closed));
}

#[tokio::test(start_paused = true)]
async fn evaluation_dead_letters_a_failed_notification() {
    let clock = clock();
    let engine = engine(&clock);
    let fake = Fake::default();
    fake.failures.store(u32::MAX, Ordering::SeqCst);
    let alerts = AlertManager::builder(engine.clone())
        .notifier(
            Notifier::builder()
                .sink("ops", fake.clone())
                .retry(policy(3, Duration::from_secs(1)))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    alerts
        .create_rule(rule().for_duration(Duration::ZERO))
        .await
        .unwrap();
    feed(&engine, 0, "/pay", 10).await;
    close_before(&engine, 1).await;
    let r = alerts.evaluate().await.unwrap();
    assert_eq!((r.delivered, r.dead_lettered), (0, 1));
    // The alert fired anyway; the notification is kept, not lost.
    assert_eq!(
        alerts.state("default/pay-errors").unwrap().status,
        AlertStatus::Firing
    );
    let dead = alerts.notifier().dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].notification.status, AlertStatus::Firing);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn rules_and_history_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = |sub: &str| FileLog::open(dir.path().join(sub), FileLogConfig::default()).unwrap();
    let key = "default/pay-errors";
    let clock = clock();
    {
        let engine = engine(&clock);
        let alerts = AlertManager::builder(engine.clone())
            .rules_store(open("rules"))
            .state_store(open("state"))
            .notifier(
                Notifier::builder()
                    .sink("ops", Fake::default())
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        alerts.create_rule(rule()).await.unwrap();
        for k in 0..3 {
            feed(&engine, k, "/pay", 10).await;
        }
        close_before(&engine, 3).await;
        alerts.evaluate().await.unwrap();
        assert_eq!(alerts.state(key).unwrap().status, AlertStatus::Firing);
        alerts.shutdown().await;
        engine.shutdown(WAIT).await;
    }
    // A new process: new engine, the same directories.
    let engine = engine(&clock);
    let fake = Fake::default();
    let alerts = AlertManager::builder(engine.clone())
        .rules_store(open("rules"))
        .state_store(open("state"))
        .notifier(
            Notifier::builder()
                .sink("ops", fake.clone())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert_eq!(alerts.rules().await.unwrap(), [rule()]);
    let state = alerts.state(key).unwrap();
    assert_eq!(
        (state.status, state.last_end, state.fired),
        (AlertStatus::Firing, Some(T0 + 3 * W), 1)
    );
    let h = alerts.history(key).unwrap();
    assert_eq!(transitions(&h), ["pending", "firing"]);
    assert_eq!(h.len(), 5, "3 evaluations + 2 transitions");
    // Old windows replayed into the new engine are ignored; new ones go on from the
    // rebuilt state: two quiet windows resolve it.
    feed(&engine, 2, "/pay", 10).await;
    feed(&engine, 3, "/pay", 1).await;
    feed(&engine, 4, "/pay", 1).await;
    close_before(&engine, 5).await;
    let r = alerts.evaluate().await.unwrap();
    assert_eq!(r.windows, 2);
    assert_eq!(alerts.state(key).unwrap().status, AlertStatus::Resolved);
    assert_eq!(
        transitions(&alerts.history(key).unwrap()),
        ["pending", "firing", "resolved"]
    );
    // Only the resolution is notified: the firing before the restart is not sent again.
    let got = fake.got.lock().unwrap().clone();
    assert_eq!(
        got.iter().map(|n| (n.status, n.at)).collect::<Vec<_>>(),
        [(AlertStatus::Resolved, T0 + 5 * W)]
    );
}

/// A one-connection HTTP server: answers each request with the next status of
/// `statuses` (then 200), records the bodies.
async fn serve(
    statuses: Vec<u16>,
    close_each: bool,
) -> (
    String,
    Arc<Mutex<Vec<String>>>,
    Arc<AtomicU32>,
    tokio::task::JoinHandle<()>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    let accepts = Arc::new(AtomicU32::new(0));
    let accepted = Arc::clone(&accepts);
    let task = tokio::spawn(async move {
        let mut statuses = statuses.into_iter();
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            // Keep-alive: many requests per connection.
            let mut buf = Vec::new();
            loop {
                let mut chunk = [0u8; 4096];
                let Some(head) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..head]).to_string();
                let len: usize = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while buf.len() < head + 4 + len {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buf[head + 4..head + 4 + len]).to_string();
                buf.drain(..head + 4 + len);
                assert!(text.starts_with("POST /hook HTTP/1.1"), "{text}");
                let status = statuses.next().unwrap_or(200);
                if status == 200 {
                    seen.lock().unwrap().push(body);
                }
                let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok");
                if s.write_all(reply.as_bytes()).await.is_err() || close_each {
                    break; // closing without saying so (no `Connection: close`)
                }
            }
        }
    });
    (format!("http://{addr}/hook"), bodies, accepts, task)
}

#[tokio::test(start_paused = true)]
async fn the_http_sink_posts_over_pooled_connections_and_retries_errors() {
    let (url, bodies, accepts, server) = serve(vec![500], false).await;
    let sink = HttpSink::new(&url).unwrap();
    let notifier = Notifier::builder()
        .sink("hook", sink)
        .retry(policy(3, Duration::from_millis(100)))
        .build()
        .unwrap();
    // The first attempt gets a 500, the retry a 200.
    assert_eq!(notifier.deliver("hook", &note()).await.unwrap(), 2);
    assert_eq!(notifier.deliver("hook", &note()).await.unwrap(), 1);
    let got = bodies.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let parsed: Notification = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(parsed, note());
    // Three requests, one pooled keep-alive connection.
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn the_http_sink_dead_letters_when_nobody_listens() {
    // Bind and drop: the port is (very likely) closed.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sink =
        HttpSink::with_options(&format!("http://{addr}/hook"), 2, Duration::from_secs(1)).unwrap();
    let notifier = Notifier::builder()
        .sink("hook", sink)
        .retry(policy(2, Duration::from_millis(10)))
        .build()
        .unwrap();
    let dead = notifier.deliver("hook", &note()).await.unwrap_err();
    assert_eq!(dead.attempts, 2);
    assert_eq!(notifier.metrics().dead_lettered, 1);
}

#[tokio::test(start_paused = true)]
async fn the_background_task_evaluates_when_windows_close() {
    let clock = clock();
    let engine = engine(&clock);
    let fake = Fake::default();
    let alerts = AlertManager::builder(engine.clone())
        .notifier(
            Notifier::builder()
                .sink("ops", fake.clone())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    alerts
        .create_rule(rule().for_duration(Duration::ZERO))
        .await
        .unwrap();
    // A long interval: the round must come from the closed windows reaching the store.
    let task = alerts.spawn(Duration::from_secs(3600));
    tokio::task::yield_now().await; // the task starts waiting for the store
    let started = tokio::time::Instant::now();
    feed(&engine, 0, "/pay", 10).await;
    close_before(&engine, 1).await;
    while alerts.state("default/pay-errors").unwrap().status != AlertStatus::Firing {
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(started.elapsed() < Duration::from_secs(60), "no round ran");
    }
    assert_eq!(
        alerts.state("default/pay-errors").unwrap().status,
        AlertStatus::Firing
    );
    assert_eq!(fake.got.lock().unwrap().len(), 1);
    let m = alerts.metrics().await.unwrap();
    assert_eq!((m.rules, m.firing, m.pending), (1, 1, 0));
    assert!(m.rounds >= 1, "{m:?}");
    assert_eq!((m.windows, m.transitions), (1, 2));
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_connection_the_server_closed_is_not_reused() {
    let (url, bodies, accepts, server) = serve(vec![], true).await;
    let notifier = Notifier::builder()
        .sink("hook", HttpSink::new(&url).unwrap())
        .retry(policy(1, Duration::from_millis(100)))
        .build()
        .unwrap();
    for _ in 0..3 {
        // One attempt each: the pool's recycle check drops the closed connection
        // before it is used, so no delivery fails on it.
        assert_eq!(notifier.deliver("hook", &note()).await.unwrap(), 1);
        tokio::task::yield_now().await; // let the reactor see the close
    }
    assert_eq!(bodies.lock().unwrap().len(), 3);
    assert_eq!(accepts.load(Ordering::SeqCst), 3);
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_retry_budget_dead_letters_without_retrying() {
    use weft_circuitbreaker::retry::RetryBudget;
    use weft_time::{Clock, TokioClock};
    let fake = Fake::default();
    fake.failures.store(u32::MAX, Ordering::SeqCst);
    let clock: Arc<dyn Clock> = Arc::new(TokioClock);
    // Each delivery funds a tenth of a retry, no floor: the first failure gets none.
    let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 0.1, clock).unwrap();
    let notifier = Notifier::builder()
        .sink("ops", fake.clone())
        .retry(policy(5, Duration::from_secs(1)))
        .retry_budget(budget)
        .build()
        .unwrap();
    let dead = notifier.deliver("ops", &note()).await.unwrap_err();
    assert_eq!(dead.attempts, 1);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    assert_eq!(notifier.metrics().dead_lettered, 1);
}

#[tokio::test(start_paused = true)]
async fn dead_letters_are_redelivered_once_the_sink_is_back() {
    let fake = Fake::default();
    fake.failures.store(2, Ordering::SeqCst);
    let notifier = Notifier::builder()
        .sink("ops", fake.clone())
        .retry(policy(1, Duration::from_secs(1)))
        .build()
        .unwrap();
    assert!(notifier.deliver("ops", &note()).await.is_err());
    assert_eq!(notifier.redeliver().await, 0, "still down");
    assert_eq!(notifier.dead_letters().len(), 1, "kept, not lost");
    assert_eq!(notifier.redeliver().await, 1);
    assert!(notifier.dead_letters().is_empty());
    assert_eq!(fake.got.lock().unwrap().as_slice(), [note()]);
}

#[tokio::test(start_paused = true)]
async fn a_firing_alert_reaches_a_real_webhook() {
    let (url, bodies, _accepts, server) = serve(vec![], false).await;
    let clock = clock();
    let engine = engine(&clock);
    let alerts = AlertManager::builder(engine.clone())
        .notifier(
            Notifier::builder()
                .sink("hook", HttpSink::new(&url).unwrap())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut r = rule().for_duration(Duration::ZERO);
    r.sinks = vec!["hook".into()];
    alerts.create_rule(r).await.unwrap();
    feed(&engine, 0, "/pay", 10).await;
    close_before(&engine, 1).await;
    let report = alerts.evaluate().await.unwrap();
    assert_eq!(report.delivered, 1);
    let got = bodies.lock().unwrap().clone();
    let n: Notification = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(
        (n.rule.as_str(), n.status, n.at, n.value),
        (
            "default/pay-errors",
            AlertStatus::Firing,
            T0 + W,
            Some(10.0)
        )
    );
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn hopping_windows_are_evaluated_as_they_close() {
    let clock = clock();
    let engine = Engine::builder()
        .clock(clock.clone())
        .tick_interval(None)
        .window(WindowSpec::hopping(
            Duration::from_millis(2 * W as u64),
            Duration::from_millis(W as u64),
        ))
        .time(TimeMode::event_time(
            Duration::ZERO,
            Duration::from_secs(600),
        ))
        .build()
        .unwrap();
    let alerts = AlertManager::builder(engine.clone()).build().unwrap();
    let mut r = rule().for_duration(Duration::ZERO);
    r.sinks.clear();
    alerts.create_rule(r).await.unwrap();
    // 6 events in [0, 10 s): the windows [-10, 10) and [0, 20) both count 6 > 5.
    feed(&engine, 0, "/pay", 6).await;
    close_before(&engine, 1).await;
    alerts.evaluate().await.unwrap();
    let st = alerts.state("default/pay-errors").unwrap();
    assert_eq!(
        (st.status, st.last_end),
        (AlertStatus::Firing, Some(T0 + W))
    );
    // 1 event in [10, 20): [0, 20) still counts 7, [10, 30) counts 1: one window of
    // the two the rule needs to resolve.
    feed(&engine, 1, "/pay", 1).await;
    close_before(&engine, 3).await;
    let rep = alerts.evaluate().await.unwrap();
    assert_eq!(rep.windows, 2, "windows ending at 20 s and 30 s");
    let st = alerts.state("default/pay-errors").unwrap();
    assert_eq!(
        (st.status, st.resolve_streak, st.last_end),
        (AlertStatus::Firing, 1, Some(T0 + 3 * W))
    );
    // [20, 40) has no events at all: it counts 0 and resolves the alert.
    close_before(&engine, 4).await;
    let rep = alerts.evaluate().await.unwrap();
    assert_eq!(rep.windows, 1);
    let st = alerts.state("default/pay-errors").unwrap();
    assert_eq!(
        (st.status, st.last_end),
        (AlertStatus::Resolved, Some(T0 + 4 * W))
    );
}

#[tokio::test(start_paused = true)]
async fn snapshots_bound_the_replay_of_alert_state() {
    let clock = clock();
    let engine = engine(&clock);
    let alerts = AlertManager::builder(engine.clone())
        .snapshots(weft_eventsourcing::InMemorySnapshotStore::new(), 8)
        .build()
        .unwrap();
    let mut r = rule();
    r.sinks.clear();
    alerts.create_rule(r).await.unwrap();
    let rounds = 40;
    for k in 0..rounds {
        feed(&engine, k, "/pay", if k % 7 < 4 { 10 } else { 1 }).await;
        close_before(&engine, k + 1).await;
        assert_eq!(alerts.evaluate().await.unwrap().windows, 1);
    }
    let m = alerts.metrics().await.unwrap();
    assert!(m.snapshot_hits > 0, "{m:?}");
    // Without snapshots every round would replay the whole history (over 800 events
    // in all); with one every 8 events a load replays fewer than 8 plus one round's.
    assert!(m.state_events_replayed < 12 * (rounds as u64 + 2), "{m:?}");
    let h = alerts.history("default/pay-errors").unwrap();
    assert!(
        h.len() >= rounds as usize,
        "the history is whole: {}",
        h.len()
    );
}

#[tokio::test(start_paused = true)]
async fn the_dead_letter_list_is_bounded_and_counts_what_it_discards() {
    let fake = Fake::default();
    fake.failures.store(u32::MAX, Ordering::SeqCst);
    let notifier = Notifier::builder()
        .sink("ops", fake)
        .retry(policy(1, Duration::from_secs(1)))
        .max_dead_letters(2)
        .build()
        .unwrap();
    for at in 0..5 {
        let n = Notification { at, ..note() };
        assert!(notifier.deliver("ops", &n).await.is_err());
    }
    let kept: Vec<i64> = notifier
        .dead_letters()
        .iter()
        .map(|d| d.notification.at)
        .collect();
    assert_eq!(kept, [3, 4], "the newest are kept");
    let m = notifier.metrics();
    assert_eq!((m.dead_lettered, m.dead_letters_discarded), (5, 3));
    assert!(Notifier::builder().max_dead_letters(0).build().is_err());
}
