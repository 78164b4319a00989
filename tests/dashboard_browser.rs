//! The live dashboard in a real browser: the platform runs in-process (demo on, a high
//! rate, one-second windows) and headless Chromium, driven over WebDriver (fantoccini +
//! Debian's `chromedriver`), loads `GET /dashboard#token=KEY`. The test waits (with a
//! deadline, never a fixed sleep) until the page is connected, its charts have drawn
//! points that keep changing with live data, the alerts table shows the demo's rule, and
//! a query typed into the query box shows result rows; it then restarts the server under
//! the page and waits for the page to reconnect and receive updates again, and finally
//! loads the page with a wrong key (the indicator must say "auth failed" and the key
//! form must accept the right one). A screenshot is saved to
//! `<target>/test-artifacts/dashboard.png`.
//!
//! Where Chromium or chromedriver are missing (and `cargo xtask test` could not install
//! them, in which case it sets `WEFT_BROWSER_TESTS=skip: <why>`), the browser test
//! prints a loud banner and passes; `WEFT_BROWSER_TESTS=require` makes it fail instead.

#![allow(unreachable_pub)]

mod common;

use common::app;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use app::auth::TenantKey;
use app::config::Settings;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// The demo tenant's key: fixed (not generated), so the page keeps working across the
/// restart in the middle of the test.
const KEY: &str = "dashboard-test-key-0123456789";

/// How long any one condition may take to become true.
const DEADLINE: Duration = Duration::from_secs(45);

fn settings(dir: &Path, listen: SocketAddr) -> Settings {
    Settings {
        listen,
        data_dir: dir.to_path_buf(),
        demo: true,
        demo_rate: 3_000,
        window: Duration::from_secs(1),
        tenants: vec![TenantKey::from_key("demo", KEY).unwrap()],
        shutdown_timeout: Duration::from_secs(3),
        alert_interval: Duration::from_millis(500),
        ..Settings::default()
    }
}

/// A binary found on `PATH`.
fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Says loudly that the browser test did not run. Written to stderr directly rather
/// than with `eprintln!`, which the test harness captures (and hides, for a passing
/// test): a skip must be seen.
fn skip(reason: &str) {
    use std::io::Write;
    let bar = "=".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\n!! SKIPPED: the dashboard browser test did not run\n!! {reason}\n\
         !! install Debian's `chromium` and `chromium-driver` (cargo xtask test does it when\n\
         !! it can) to run it\n{bar}\n"
    );
}

/// The browser and driver to use, or why the test cannot run.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let setting = std::env::var("WEFT_BROWSER_TESTS").unwrap_or_default();
    if setting.starts_with("skip") {
        return Err(format!("WEFT_BROWSER_TESTS={setting}"));
    }
    let chromium =
        which(&["chromium", "chromium-browser", "google-chrome"]).ok_or("no `chromium` on PATH")?;
    let driver = which(&["chromedriver"]).ok_or("no `chromedriver` on PATH")?;
    Ok((chromium, driver))
}

/// The workspace's target directory (this respects `CARGO_TARGET_DIR`: cargo gives
/// integration tests `<target>/tmp`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .to_path_buf()
}

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(path: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen on port {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `window.__weft`, the page's debug object (see dashboard.js).
async fn state(c: &Client) -> Value {
    c.execute(
        "return window.__weft ? Object.assign({ href: location.href }, window.__weft) : null;",
        vec![],
    )
    .await
    .expect("execute script")
}

/// Polls `window.__weft` until `ok` holds, or panics after [`DEADLINE`] with `what`
/// and the last state.
async fn wait_for(c: &Client, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let s = state(c).await;
        if ok(&s) {
            return s;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting until {what}; the page's state: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn n(s: &Value, pointer: &str) -> u64 {
    s.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

async fn attr_u64(c: &Client, css: &str, attr: &str) -> u64 {
    let el = c.find(Locator::Css(css)).await.expect(css);
    el.attr(attr)
        .await
        .expect("attribute")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Everything the browser does; `dir` is the server's data directory.
async fn drive(c: &Client, running: app::Running, dir: &Path) {
    let addr = running.addr;
    c.goto(&format!("http://{addr}/dashboard#token={KEY}"))
        .await
        .expect("load the dashboard");

    // The key leaves the address bar (it stays in the tab's sessionStorage).
    wait_for(c, "the key is out of the URL", |s| {
        s["href"]
            .as_str()
            .is_some_and(|u| !u.contains(KEY) && u.ends_with("/dashboard"))
    })
    .await;

    // Connected, and the status indicator says so.
    wait_for(c, "the page is connected", |s| s["state"] == "connected").await;
    let status = c.find(Locator::Id("status")).await.expect("#status");
    assert_eq!(
        status.attr("data-state").await.unwrap().as_deref(),
        Some("connected")
    );
    assert_eq!(status.text().await.unwrap().trim(), "connected");

    // The charts draw points from live data: throughput from the stats push, latency
    // percentiles and per-route counts from subscriptions.
    let s = wait_for(c, "the charts have points", |s| {
        n(s, "/charts/throughput") >= 2
            && n(s, "/charts/latency") >= 2
            && n(s, "/charts/routes") >= 3
            && n(s, "/charts/paths") >= 1
            && s["lastLatency"].is_number()
    })
    .await;
    assert!(attr_u64(c, "#chart-throughput", "data-points").await >= 2);
    assert!(attr_u64(c, "#chart-latency", "data-points").await >= 2);
    assert!(attr_u64(c, "#bars-routes", "data-points").await >= 3);
    assert!(s["lastRate"].as_f64().unwrap_or(0.0) > 0.0, "{s:#}");
    assert!(s["pushLagMs"].is_number(), "{s:#}");

    // ... and keep moving: more throughput points, more latency updates (partials move
    // the open window's point, finals add closed windows).
    let (tp, lu, ru) = (
        n(&s, "/charts/throughput"),
        n(&s, "/updates/latency"),
        n(&s, "/updates/routes"),
    );
    wait_for(c, "the charts update from live data", |s| {
        n(s, "/charts/throughput") >= tp + 2
            && n(s, "/updates/latency") >= lu + 2
            && n(s, "/updates/routes") >= ru + 2
    })
    .await;

    // Windows close: the watermark (5 s behind the newest event) passes their end, a
    // `final` update fixes their points on the latency chart.
    wait_for(c, "final windows reach the latency chart", |s| {
        n(s, "/finals/latency") >= 1 && n(s, "/closedWindows") >= 1
    })
    .await;

    // The alerts panel shows the demo's rule.
    wait_for(c, "the alerts table has the demo rule", |s| {
        n(s, "/alerts") >= 1
    })
    .await;
    let alerts = c.find(Locator::Id("alerts-body")).await.unwrap();
    assert!(
        alerts.text().await.unwrap().contains("slow-checkout"),
        "alerts table: {}",
        alerts.text().await.unwrap()
    );

    // A query typed into the box shows result rows.
    for (id, text) in [
        ("q-metric", "http.request_ms"),
        ("q-agg", "count,p99"),
        ("q-group", "region"),
        ("q-from", "-2m"),
    ] {
        let input = c.find(Locator::Id(id)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }
    c.find(Locator::Id("q-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "the query shows rows", |s| n(s, "/queryRows") >= 3).await;
    let rows = c
        .find_all(Locator::Css("#query-result tbody tr"))
        .await
        .unwrap();
    assert!(rows.len() >= 3, "{} rows", rows.len());
    let head = c
        .find(Locator::Css("#query-result thead"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        head.contains("region") && head.contains("count") && head.contains("p99"),
        "{head}"
    );
    let body = c
        .find(Locator::Css("#query-result tbody"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        ["eu", "us", "apac"].iter().all(|r| body.contains(r)),
        "{body}"
    );

    // A screenshot with everything on it.
    let png = c.screenshot().await.expect("screenshot");
    let artifacts = target_dir().join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("dashboard.png");
    std::fs::write(&shot, &png).unwrap();
    eprintln!("dashboard screenshot: {}", shot.display());
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");

    // The server restarts under the page: it notices, reconnects with backoff and
    // resubscribes, and the charts move again.
    let before = state(c).await;
    running.shutdown().await;
    wait_for(c, "the page notices the restart", |s| {
        s["state"] != "connected"
    })
    .await;
    let running = restart(dir, addr).await;
    let after = wait_for(c, "the page reconnects and gets updates again", |s| {
        s["state"] == "connected"
            && n(s, "/connects") >= 2
            && n(s, "/updates/latency") >= n(&before, "/updates/latency") + 2
            && n(s, "/stats") >= n(&before, "/stats") + 2
    })
    .await;
    eprintln!("after the restart: {after}");

    // A wrong key: the indicator says so, the retries stop, and the key form asks for
    // another; the right key typed into the form connects again.
    c.goto(&format!("http://{addr}/dashboard#token=not-the-key"))
        .await
        .expect("reload with a wrong key");
    wait_for(c, "the page reports the refused key", |s| {
        s["state"] == "auth-failed"
    })
    .await;
    let status = c.find(Locator::Id("status")).await.unwrap();
    assert_eq!(status.text().await.unwrap().trim(), "auth failed");
    let input = c.find(Locator::Id("key-input")).await.unwrap();
    assert!(input.is_displayed().await.unwrap(), "the key form is shown");
    input.send_keys(KEY).await.unwrap();
    c.find(Locator::Css("#key-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "the page connects with the typed key", |s| {
        s["state"] == "connected" && n(s, "/stats") >= 1
    })
    .await;
    running.shutdown().await;
}

/// Starts the server again on the same address (the old listener may take a moment to
/// be released).
async fn restart(dir: &Path, addr: SocketAddr) -> app::Running {
    let started = Instant::now();
    loop {
        match app::start(settings(dir, addr)).await {
            Ok(r) => return r,
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "cannot restart on {addr}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_renders_live_data_and_answers_queries_in_chromium() {
    let (chromium, chromedriver) = match browser() {
        Ok(b) => b,
        Err(reason) if std::env::var("WEFT_BROWSER_TESTS").as_deref() == Ok("require") => {
            panic!("WEFT_BROWSER_TESTS=require but {reason}")
        }
        Err(reason) => return skip(&reason),
    };
    let dir = tempfile::tempdir().unwrap();
    let running = app::start(settings(dir.path(), SocketAddr::from(([127, 0, 0, 1], 0))))
        .await
        .expect("start the platform");

    let driver = Driver::start(&chromedriver);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1400,1200",
                "--hide-scrollbars",
            ],
        }),
    );
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium");

    // Always end the session (it owns a browser process), then report the outcome.
    let outcome = std::panic::AssertUnwindSafe(drive(&client, running, dir.path()))
        .catch_unwind()
        .await;
    let _ = client.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The page and its files are served without a key, with a strict CSP; the API
/// behind it still wants one. (No browser needed.)
#[tokio::test]
async fn dashboard_files_are_served_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path(), SocketAddr::from(([127, 0, 0, 1], 0)));
    s.demo = false;
    let running = app::start(s).await.unwrap();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<hyper::body::Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let get = |path: &str| {
        let uri: hyper::Uri = format!("http://{}{path}", running.addr).parse().unwrap();
        let client = client.clone();
        async move {
            let res = client.get(uri).await.unwrap();
            let status = res.status();
            let headers = res.headers().clone();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (status, headers, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (status, headers, body) = get("/dashboard").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(body.contains("/dashboard/dashboard.js"));
    let (status, headers, body) = get("/dashboard/dashboard.js").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(body.contains("/v1/live"));
    assert_eq!(get("/dashboard/dashboard.css").await.0, 200);
    assert_eq!(get("/dashboard/secrets.txt").await.0, 404);
    // The data behind the page is not public.
    assert_eq!(get("/v1/alerts").await.0, 401);
    running.shutdown().await;
}
