//! Integration tests of the platform's `GET /v1/live` WebSocket endpoint: the server
//! runs in-process on an ephemeral loopback port and real WebSocket clients
//! (tokio-tungstenite) talk to it. Every wait is for a condition, with a timeout.

#![allow(unreachable_pub)]

mod common;

use common::{ACME, GLOBEX, Http, app, metric, now_ms};

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// How long any awaited condition may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

async fn started(dir: &Path) -> app::Running {
    common::start(dir, |s| {
        s.max_body_bytes = 1 << 20;
        s.max_batch_events = 10_000;
        s.shutdown_timeout = Duration::from_secs(30);
    })
    .await
}

/// Posts NDJSON events and checks they were accepted.
async fn ingest(addr: SocketAddr, body: String) {
    let r = Http::new(addr)
        .post("/v1/events?wait=true", Some(ACME), body.as_bytes())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// `n` events of `metric` at `ts`, `entity` taking `groups` values.
fn events(metric: &str, ts: i64, n: usize, groups: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"metric\":\"{metric}\",\"timestamp\":{ts},\"value\":{},\"dims\":{{\"route\":\"/r\",\"region\":\"eu\",\"entity\":\"entity-{:05}\"}}}}\n",
                i + 1,
                i % groups.max(1)
            )
        })
        .collect()
}

async fn connect_with(
    addr: SocketAddr,
    query: &str,
    token: Option<&str>,
) -> Result<WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>, WsError> {
    let mut req = format!("ws://{addr}/v1/live{query}")
        .into_client_request()
        .unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

async fn connect(
    addr: SocketAddr,
) -> WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    connect_with(addr, "", Some(ACME)).await.unwrap()
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next JSON frame (pings are answered by tungstenite and skipped).
async fn next_json<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Value {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str::<Value>(t.as_str()).unwrap();
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("no frame in time")
}

/// Reads frames until one satisfies `pred`; returns it and the frames before it.
async fn until<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    pred: impl Fn(&Value) -> bool,
) -> (Value, Vec<Value>) {
    let mut before = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let v = next_json(ws).await;
            if pred(&v) {
                return (v, before);
            }
            before.push(v);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no matching frame in time"))
}

/// Polls `cond` every few milliseconds until it holds (a condition wait, not a sleep
/// that makes something happen).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let ok = tokio::time::timeout(PATIENCE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(ok.is_ok(), "timed out waiting for: {what}");
}

fn subscribe(id: &str, query: Value) -> Value {
    json!({ "type": "subscribe", "id": id, "query": query })
}

fn is_update(v: &Value, id: &str, kind: &str) -> bool {
    v["type"] == "update" && v["id"] == id && v["kind"] == kind
}

/// The count of the single group's points, summed.
fn total_count(v: &Value) -> u64 {
    v["result"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["points"].as_array().unwrap())
        .map(|p| p["values"]["count"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_receives_partial_then_final_results() {
    let dir = tempfile::tempdir().unwrap();
    let srv = started(dir.path()).await;
    ingest(srv.addr, events("live.ms", now_ms(), 40, 4)).await;
    let mut ws = connect(srv.addr).await;
    send(
        &mut ws,
        subscribe(
            "q1",
            json!({ "metric": "live.ms", "agg": "count,p50,p99", "group_by": "route",
                     "filter": ["region:eu"], "window": "5m", "interval": "100ms" }),
        ),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "subscribed", "id": "q1"})
    );
    // The open window so far: all 40 events, still partial.
    let (partial, _) = until(&mut ws, |v| {
        is_update(v, "q1", "partial") && total_count(v) == 40
    })
    .await;
    assert!(partial["sent_at"].as_i64().unwrap() > 0);
    assert!(partial["watermark"].is_i64());
    assert_eq!(
        partial["result"]["aggregates"],
        json!(["count", "p50", "p99"])
    );
    assert_eq!(
        partial["result"]["groups"][0]["group"],
        json!({"route": "/r"})
    );

    // End of input: the window closes and arrives once as a final update.
    srv.app.engine.finish(PATIENCE).await.unwrap();
    let (fin, _) = until(&mut ws, |v| {
        is_update(v, "q1", "final") && total_count(v) == 40
    })
    .await;
    let p99 = &fin["result"]["groups"][0]["points"][0]["values"]["p99"];
    let p99 = p99.as_f64().or(p99["value"].as_f64()).unwrap();
    assert!((39.0..=41.0).contains(&p99), "{fin}");
    // Later finals repeat nothing: the closed window is reported exactly once.
    let (_, between) = until(&mut ws, |v| is_update(v, "q1", "partial")).await;
    assert!(
        between
            .iter()
            .all(|v| !is_update(v, "q1", "final") || total_count(v) == 0),
        "{between:?}"
    );
    let st = srv.app.live.status();
    assert_eq!((st.connections, st.subscriptions, st.feeds), (1, 1, 1));
    assert!(st.updates_sent >= 2);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_and_resubscribe_replacing() {
    let dir = tempfile::tempdir().unwrap();
    let srv = started(dir.path()).await;
    ingest(srv.addr, events("a", now_ms(), 6, 2)).await;
    let mut ws = connect(srv.addr).await;
    let q = json!({ "metric": "a", "agg": "count", "interval": "100ms" });
    send(&mut ws, subscribe("q1", q.clone())).await;
    send(
        &mut ws,
        subscribe(
            "q2",
            json!({ "metric": "a", "agg": "sum", "interval": "100ms" }),
        ),
    )
    .await;
    until(&mut ws, |v| is_update(v, "q1", "partial")).await;
    until(&mut ws, |v| is_update(v, "q2", "partial")).await;
    assert_eq!(srv.app.live.status().subscriptions, 2);

    // Unsubscribe q1: after the marker error (frames are in order), no q1 update.
    send(&mut ws, json!({ "type": "unsubscribe", "id": "q1" })).await;
    send(&mut ws, json!({ "type": "unsubscribe", "id": "nope" })).await;
    let (err, _) = until(&mut ws, |v| v["type"] == "error").await;
    assert_eq!(err["id"], "nope");
    for _ in 0..3 {
        let (_, between) = until(&mut ws, |v| is_update(v, "q2", "partial")).await;
        assert!(between.iter().all(|v| v["id"] != "q1"), "{between:?}");
    }
    assert_eq!(srv.app.live.status().subscriptions, 1);

    // Re-subscribing q2 replaces it: its updates now carry the new aggregates, and
    // there is still one subscription.
    send(&mut ws, subscribe("q2", q)).await;
    until(&mut ws, |v| v["type"] == "subscribed" && v["id"] == "q2").await;
    let (u, _) = until(&mut ws, |v| is_update(v, "q2", "partial")).await;
    assert_eq!(u["result"]["aggregates"], json!(["count"]));
    let (u, _) = until(&mut ws, |v| is_update(v, "q2", "partial")).await;
    assert_eq!(u["result"]["aggregates"], json!(["count"]));
    let st = srv.app.live.status();
    assert_eq!((st.subscriptions, st.feeds), (1, 1));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_an_error_frame_and_the_connection_survives() {
    let dir = tempfile::tempdir().unwrap();
    let srv = started(dir.path()).await;
    let mut ws = connect(srv.addr).await;
    let long = "x".repeat(65);
    let cases: Vec<(Message, Value, &str)> = vec![
        (Message::text("not json"), Value::Null, "not JSON"),
        (
            Message::text(json!({"type": "dance"}).to_string()),
            Value::Null,
            "invalid message",
        ),
        (
            Message::text(json!({"type": "subscribe", "id": "q"}).to_string()),
            json!("q"),
            "invalid message",
        ),
        (
            Message::text(subscribe("q", json!({"agg": "count"})).to_string()),
            json!("q"),
            "invalid message",
        ),
        (
            Message::text(subscribe("q", json!({"metric": "m", "interval": "10ms"})).to_string()),
            json!("q"),
            "between 100ms and 1h",
        ),
        (
            Message::text(subscribe("q", json!({"metric": "m", "agg": "median"})).to_string()),
            json!("q"),
            "unknown aggregate",
        ),
        (
            Message::text(
                subscribe("q", json!({"metric": "m", "filter": ["nocolon"]})).to_string(),
            ),
            json!("q"),
            "key:value",
        ),
        (
            Message::text(subscribe("q", json!({"metric": "m", "bogus": 1})).to_string()),
            json!("q"),
            "unknown field",
        ),
        (
            Message::text(subscribe(&long, json!({"metric": "m"})).to_string()),
            json!(long),
            "1 to 64",
        ),
        (
            Message::text(subscribe("", json!({"metric": "m"})).to_string()),
            json!(""),
            "1 to 64",
        ),
        (Message::binary(vec![1, 2, 3]), Value::Null, "binary"),
    ];
    for (msg, id, needle) in cases {
        ws.send(msg.clone()).await.unwrap();
        let v = next_json(&mut ws).await;
        assert_eq!(v["type"], "error", "{msg:?} -> {v}");
        assert_eq!(v["id"], id, "{msg:?} -> {v}");
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{msg:?} -> {v}"
        );
    }
    assert_eq!(srv.app.live.status().subscriptions, 0);
    // Still open and working.
    send(
        &mut ws,
        subscribe("ok", json!({"metric": "m", "interval": "100ms"})),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "subscribed", "id": "ok"})
    );
    until(&mut ws, |v| is_update(v, "ok", "partial")).await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failure_is_a_401_before_any_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let srv = started(dir.path()).await;
    for (query, token) in [
        ("", None),
        ("", Some("wrong-key")),
        ("?token=wrong-key", None),
        ("?token=", None),
    ] {
        match connect_with(srv.addr, query, token).await {
            Err(WsError::Http(res)) => {
                assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{query} {token:?}");
                let body: Value = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
                assert!(body["error"].as_str().unwrap().contains("key"), "{body}");
            }
            Err(e) => panic!("{query} {token:?}: expected a 401, got {e}"),
            Ok(_) => panic!("{query} {token:?}: upgraded without a valid key"),
        }
    }
    assert_eq!(srv.app.live.status().connections, 0);
    // The key as `?token=` (browsers cannot set headers on a WebSocket), or a header.
    let mut a = connect_with(srv.addr, &format!("?token={GLOBEX}"), None)
        .await
        .unwrap();
    let mut b = connect_with(srv.addr, "", Some(GLOBEX)).await.unwrap();
    for ws in [&mut a, &mut b] {
        send(
            ws,
            subscribe("q", json!({"metric": "m", "interval": "100ms"})),
        )
        .await;
        assert_eq!(next_json(ws).await["type"], "subscribed");
    }
    // The same query in one tenant: one shared feed.
    assert_eq!(srv.app.live.status().feeds, 1);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seventeenth_subscription_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srv = started(dir.path()).await;
    let mut ws = connect(srv.addr).await;
    for i in 0..16 {
        send(
            &mut ws,
            subscribe(&format!("q{i}"), json!({"metric": format!("m{i}")})),
        )
        .await;
        let (v, _) = until(&mut ws, |v| v["type"] != "update").await;
        assert_eq!(v, json!({"type": "subscribed", "id": format!("q{i}")}));
    }
    send(&mut ws, subscribe("q16", json!({"metric": "m16"}))).await;
    let (v, _) = until(&mut ws, |v| v["type"] != "update").await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["id"], "q16");
    assert!(v["error"].as_str().unwrap().contains("at most 16"), "{v}");
    // Replacing one of the sixteen is fine.
    send(&mut ws, subscribe("q3", json!({"metric": "m16"}))).await;
    let (v, _) = until(&mut ws, |v| v["type"] != "update").await;
    assert_eq!(v, json!({"type": "subscribed", "id": "q3"}));
    assert_eq!(srv.app.live.status().subscriptions, 16);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reconnects_and_resubscribes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = started(dir.path()).await;
    ingest(srv.addr, events("r", now_ms(), 5, 1)).await;
    let q = subscribe(
        "q",
        json!({"metric": "r", "agg": "count", "interval": "100ms"}),
    );
    let mut ws = connect(srv.addr).await;
    send(&mut ws, q.clone()).await;
    until(&mut ws, |v| {
        is_update(v, "q", "partial") && total_count(v) == 5
    })
    .await;
    ws.close(None).await.unwrap();
    drop(ws);
    let hub = &srv.app.live;
    eventually("the hub forgets the closed connection", || {
        let st = hub.status();
        (st.connections, st.subscriptions, st.feeds) == (0, 0, 0)
    })
    .await;
    let mut ws = connect(srv.addr).await;
    send(&mut ws, q).await;
    ingest(srv.addr, events("r", now_ms(), 3, 1)).await;
    until(&mut ws, |v| {
        is_update(v, "q", "partial") && total_count(v) == 8
    })
    .await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_costs_one_buffered_round_per_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let srv = started(dir.path()).await;
    // Big updates (2000 groups, ~200 KB each, ten a second) fill the socket quickly.
    ingest(srv.addr, events("big", now_ms(), 4000, 2000)).await;
    // A client with a tiny receive buffer that subscribes and then never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(srv.addr).await.unwrap();
    let mut req = format!("ws://{}/v1/live", srv.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {ACME}").parse().unwrap());
    let cfg = WebSocketConfig::default().read_buffer_size(4096);
    let (mut slow, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(cfg))
        .await
        .unwrap();
    for id in ["s1", "s2"] {
        send(
            &mut slow,
            subscribe(id, json!({"metric": "big", "agg": "count,sum", "group_by": "entity", "interval": "100ms"})),
        )
        .await;
    }
    let hub = &srv.app.live;
    let mut max_buffered = 0;
    // The server's writes block; the feed goes on; each of the two subscriptions
    // keeps only the newest round and counts the rest as skipped.
    eventually("rounds skipped for the client that does not read", || {
        let st = hub.status();
        max_buffered = max_buffered.max(st.buffered);
        assert!(st.buffered <= st.subscriptions, "{st:?}");
        st.updates_skipped >= 20
    })
    .await;
    let first = hub.status().updates_skipped;
    eventually("more rounds skipped, still one buffered each", || {
        let st = hub.status();
        assert!(st.buffered <= 2, "{st:?}");
        st.updates_skipped >= first + 20
    })
    .await;
    assert!(max_buffered >= 1);
    let m = metrics_text(srv.addr).await;
    let skipped = metric(&m, "weft_live_updates_skipped_total").unwrap();
    assert!(skipped >= (first + 20) as f64, "{m}");
    // Meanwhile a reading client on the same feed gets every round.
    let mut ws = connect(srv.addr).await;
    send(
        &mut ws,
        subscribe(
            "fast",
            json!({"metric": "big", "agg": "count,sum", "group_by": "entity", "interval": "100ms"}),
        ),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "subscribed");
    let (u, _) = until(&mut ws, |v| is_update(v, "fast", "partial")).await;
    assert_eq!(u["result"]["groups"].as_array().unwrap().len(), 2000);
    assert_eq!(hub.status().feeds, 1);
    drop(slow);
    srv.shutdown().await;
}

async fn metrics_text(addr: SocketAddr) -> String {
    Http::new(addr).get("/metrics", None).await.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_on_one_query_share_one_feed() {
    let dir = tempfile::tempdir().unwrap();
    let srv = started(dir.path()).await;
    ingest(srv.addr, events("s", now_ms(), 10, 2)).await;
    let mut a = connect(srv.addr).await;
    let mut b = connect(srv.addr).await;
    // The same query, written differently (filter order, aggregate case).
    send(&mut a, subscribe("x", json!({"metric": "s", "agg": "count", "filter": ["region:eu", "route:/r"], "interval": "100ms"}))).await;
    until(&mut a, |v| {
        is_update(v, "x", "partial") && total_count(v) == 10
    })
    .await;
    send(&mut b, subscribe("y", json!({"metric": "s", "agg": "COUNT", "filter": ["route:/r", "region:eu"], "interval": "100ms"}))).await;
    until(&mut b, |v| {
        is_update(v, "y", "partial") && total_count(v) == 10
    })
    .await;
    let st = srv.app.live.status();
    assert_eq!((st.connections, st.subscriptions, st.feeds), (2, 2, 1));
    let m = metrics_text(srv.addr).await;
    for line in [
        "weft_live_feeds 1",
        "weft_live_connections 2",
        "weft_live_subscriptions 2",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} missing from\n{m}");
    }
    // Another query is another feed; when its subscriber leaves, the feed goes.
    send(
        &mut b,
        subscribe(
            "z",
            json!({"metric": "s", "agg": "sum", "interval": "100ms"}),
        ),
    )
    .await;
    until(&mut b, |v| is_update(v, "z", "partial")).await;
    assert_eq!(srv.app.live.status().feeds, 2);
    send(&mut b, json!({"type": "unsubscribe", "id": "z"})).await;
    let hub = &srv.app.live;
    eventually("the unshared feed stops", || hub.status().feeds == 1).await;
    // The stats push, computed once for everyone.
    send(&mut a, json!({"type": "stats", "on": true})).await;
    let (s, _) = until(&mut a, |v| v["type"] == "stats" && v["connections"] == 2).await;
    assert_eq!(s["accepted_total"], 10, "{s}");
    assert!(
        s["events_per_s"].is_f64() && s["sent_at"].is_i64() && s["alerts_firing"] == 0,
        "{s}"
    );
    // `ingest_p99_ms` covers the accepted ingest requests of the last second: null
    // when there were none, a latency in the push that follows an ingest.
    assert!(
        s["ingest_p99_ms"].is_null() || s["ingest_p99_ms"].is_f64(),
        "{s}"
    );
    ingest(srv.addr, events("s", now_ms(), 10, 2)).await;
    let (s, _) = until(&mut a, |v| {
        v["type"] == "stats" && v["ingest_p99_ms"].is_f64()
    })
    .await;
    let p99 = s["ingest_p99_ms"].as_f64().unwrap();
    assert!(p99 > 0.0 && p99 < 10_000.0, "{s}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_live_connections() {
    let dir = tempfile::tempdir().unwrap();
    let srv = started(dir.path()).await;
    let mut ws = connect(srv.addr).await;
    send(
        &mut ws,
        subscribe("q", json!({"metric": "m", "interval": "100ms"})),
    )
    .await;
    until(&mut ws, |v| is_update(v, "q", "partial")).await;
    // The shutdown timeout is 30 s: finishing well within it means the server did not
    // wait for the open WebSocket.
    let started = std::time::Instant::now();
    let stop = tokio::spawn(srv.shutdown());
    let close = tokio::time::timeout(PATIENCE, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(u16::from(close.code), 1001);
    stop.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_keep_a_reading_client_and_silence_ends_one() {
    let dir = tempfile::tempdir().unwrap();
    let srv = started(dir.path()).await;
    let hub = &srv.app.live;
    hub.set_limits(app::live::LiveLimits {
        ping_every: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(300),
        ..hub.limits()
    });
    // A client that reads answers each ping with a pong (tungstenite does it), so it
    // outlives many idle timeouts: ten pings are 500 ms, more than the 300 ms timeout.
    let mut ws = connect(srv.addr).await;
    let pings = tokio::time::timeout(PATIENCE, async {
        let mut pings = 0;
        while pings < 10 {
            match ws.next().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(_)) => {}
                other => panic!("the reading client was closed: {other:?}"),
            }
        }
        pings
    })
    .await
    .unwrap();
    assert_eq!(pings, 10);
    // A client that does not read sends no pong: closed at the idle timeout (the
    // reading client stops reading now too).
    let mut silent = connect(srv.addr).await;
    eventually("both silent clients are closed", || {
        hub.status().connections == 0
    })
    .await;
    // The server closed it (neither client closed): its stream ends with the close
    // frame, or with the broken pipe of the pong tungstenite owes a buffered ping.
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match silent.next().await {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert_eq!(ended, Ok(true));
    drop(ws);
    srv.shutdown().await;
}
