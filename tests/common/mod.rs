//! What the platform's integration tests share: the app itself (compiled into each test
//! crate from `examples/platform/app`), two tenants' keys, the settings and start-up of
//! an in-process server, and a small HTTP client.

#![allow(dead_code, unreachable_pub)]

#[path = "../../examples/platform/app/mod.rs"]
pub mod app;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use app::auth::TenantKey;
use app::config::Settings;
use http_body_util::BodyExt;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A request body.
pub type Body = http_body_util::Full<hyper::body::Bytes>;

pub const ACME: &str = "acme-secret-key-1";
pub const GLOBEX: &str = "globex-secret-key-2";

/// A loopback server on an ephemeral port over `dir`, with the two tenants.
pub fn settings(dir: &Path) -> Settings {
    Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.to_path_buf(),
        demo: false,
        tenants: vec![
            TenantKey::from_key("acme", ACME).unwrap(),
            TenantKey::from_key("globex", GLOBEX).unwrap(),
        ],
        max_body_bytes: 64 << 10,
        max_batch_events: 1_000,
        shutdown_timeout: Duration::from_secs(5),
        ..Settings::default()
    }
}

/// Starts the server on [`settings`] changed by `tweak`, once its engine is ready.
pub async fn start(dir: &Path, tweak: impl FnOnce(&mut Settings)) -> app::Running {
    let mut s = settings(dir);
    tweak(&mut s);
    let running = app::start(s).await.unwrap();
    running.app.engine.ready().await.unwrap();
    running
}

pub fn now_ms() -> i64 {
    app::api::now_ms()
}

/// A response: status, `Retry-After` / `WWW-Authenticate` headers, body.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub retry_after: Option<String>,
    pub www_auth: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub struct Http {
    pub client: Client<hyper_util::client::legacy::connect::HttpConnector, Body>,
    pub base: String,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Self {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
        }
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: &[u8]) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(Body::new(hyper::body::Bytes::copy_from_slice(body)))
            .unwrap();
        let res = self.client.request(req).await.unwrap();
        let header = |n: &str| res.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
        let (status, retry_after, www_auth, content_type) = (
            res.status(),
            header("retry-after"),
            header("www-authenticate"),
            header("content-type"),
        );
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            retry_after,
            www_auth,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(Method::GET, path, token, b"").await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &[u8]) -> Resp {
        self.call(Method::POST, path, token, body).await
    }
}

/// The value of the unlabelled Prometheus sample `name` in a `/metrics` body.
pub fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
