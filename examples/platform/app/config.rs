//! Settings: command-line flags (each also settable by an environment variable), an
//! optional TOML file, and embedded defaults, in that order of precedence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use weft::analytics::Ack;

use super::auth::{self, TenantKey};

/// Weft's reference real-time analytics server.
///
/// Every flag can also be set by the environment variable named in its help, or in the
/// TOML file given by `--config` (the flags' names: `data-dir = "..."`, plus
/// `[[tenants]]` and `[[webhooks]]` tables); flags win over the environment, which wins
/// over the file.
#[derive(Debug, Default, Parser)]
#[command(name = "platform", version, about, long_about = None)]
pub struct Cli {
    /// Address to listen on. Only a loopback address is allowed unless tenants are
    /// configured (`--tenant` or the config file). Port 0 picks a free port.
    #[arg(long, env = "WEFT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory: the durable event log, snapshots and alert state.
    #[arg(long, env = "WEFT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A TOML configuration file.
    #[arg(long, env = "WEFT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Do not run the built-in demo event source.
    #[arg(long, env = "WEFT_NO_DEMO")]
    pub no_demo: bool,
    /// Events per second the demo source sends.
    #[arg(long, env = "WEFT_DEMO_RATE")]
    pub demo_rate: Option<u32>,
    /// A tenant and its API key: `NAME=KEY` (hashed at start-up; the key itself is not
    /// kept) or `NAME=sha256:HEX` (the hex SHA-256 of the key). Repeatable; in the
    /// environment, comma-separated.
    #[arg(long = "tenant", env = "WEFT_TENANTS", value_delimiter = ',')]
    pub tenants: Vec<String>,
    /// Events per second each tenant may send (0: no limit). The burst is one second's
    /// worth.
    #[arg(long, env = "WEFT_TENANT_RATE")]
    pub tenant_rate: Option<u32>,
    /// Engine shards (actors owning the series hashed to them).
    #[arg(long, env = "WEFT_SHARDS")]
    pub shards: Option<usize>,
    /// Tumbling window length, e.g. `10s`, `1m`.
    #[arg(long, env = "WEFT_WINDOW")]
    pub window: Option<humantime::Duration>,
    /// When a batch is acknowledged: `append` (written to the log; `?wait=true` adds an
    /// fsync) or `fsync` (every batch fsynced before its answer).
    #[arg(long, env = "WEFT_ACK")]
    pub ack: Option<AckArg>,
    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, env = "WEFT_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most events one ingest request may carry (more: 413).
    #[arg(long, env = "WEFT_MAX_BATCH_EVENTS")]
    pub max_batch_events: Option<usize>,
    /// Alert webhook sink: `NAME=http://host:port/path`. Repeatable; in the environment,
    /// comma-separated.
    #[arg(long = "webhook", env = "WEFT_WEBHOOKS", value_delimiter = ',')]
    pub webhooks: Vec<String>,
    /// The high-cardinality dimension counted by top-k (`agg=top5`) inside each series
    /// instead of splitting series (default `path`).
    #[arg(long, env = "WEFT_TOP_K_DIM")]
    pub top_k_dim: Option<String>,
    /// Tokio worker threads (default: one per core).
    #[arg(long, env = "WEFT_WORKERS")]
    pub workers: Option<usize>,
    /// Log filter, `tracing_subscriber::EnvFilter` syntax (e.g. `info`, `weft=debug`).
    #[arg(long, env = "WEFT_LOG")]
    pub log: Option<String>,
}

/// `--ack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckArg {
    /// Acknowledge once the batch is written to the log.
    Append,
    /// Acknowledge once the batch is fsynced.
    Fsync,
}

/// The TOML file: the flags' names, plus tables for tenants and webhooks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    demo: Option<bool>,
    demo_rate: Option<u32>,
    tenant_rate: Option<u32>,
    shards: Option<usize>,
    window: Option<String>,
    ack: Option<AckArg>,
    max_body_bytes: Option<usize>,
    max_batch_events: Option<usize>,
    top_k_dim: Option<String>,
    workers: Option<usize>,
    log: Option<String>,
    #[serde(default)]
    tenants: Vec<FileTenant>,
    #[serde(default)]
    webhooks: Vec<FileWebhook>,
}

/// `[[tenants]]`: `name` and `key_sha256` (hex), or `key` (plain; prefer the hash).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileTenant {
    name: String,
    key_sha256: Option<String>,
    key: Option<String>,
}

/// `[[webhooks]]`: `name` and `url`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebhook {
    name: String,
    url: String,
}

/// The resolved, validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Whether the demo source runs.
    pub demo: bool,
    /// Demo events per second.
    pub demo_rate: u32,
    /// Configured tenants (the demo tenant is added at start-up when needed).
    pub tenants: Vec<TenantKey>,
    /// Events per second per tenant (0: unlimited).
    pub tenant_rate: u32,
    /// Engine shards.
    pub shards: usize,
    /// Window length.
    pub window: Duration,
    /// Acknowledgement mode.
    pub ack: Ack,
    /// Largest body, bytes.
    pub max_body_bytes: usize,
    /// Most events per request.
    pub max_batch_events: usize,
    /// The top-k dimension.
    pub top_k_dim: String,
    /// Webhook sinks, `(name, url)`.
    pub webhooks: Vec<(String, String)>,
    /// Tokio worker threads.
    pub workers: usize,
    /// Log filter.
    pub log: String,
    /// How long graceful shutdown waits for in-flight work.
    pub shutdown_timeout: Duration,
    /// How often the alert rules are evaluated at most (they also run when windows
    /// close).
    pub alert_interval: Duration,
}

impl Default for Settings {
    /// The embedded defaults: loopback port 8080, `./weft-data`, the demo at 200
    /// events/s, 10-second windows, 2 shards, ack after append.
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("weft-data"),
            demo: true,
            demo_rate: 200,
            tenants: Vec::new(),
            tenant_rate: 0,
            shards: 2,
            window: Duration::from_secs(10),
            ack: Ack::AfterAppend,
            max_body_bytes: 16 << 20,
            max_batch_events: 100_000,
            top_k_dim: "path".to_owned(),
            webhooks: Vec::new(),
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            log: "info".to_owned(),
            shutdown_timeout: Duration::from_secs(10),
            alert_interval: Duration::from_secs(1),
        }
    }
}

impl Settings {
    /// Resolves the flags over the config file (if any) over the defaults, and checks
    /// the result.
    ///
    /// # Errors
    ///
    /// A message naming the bad setting.
    pub fn resolve(cli: Cli) -> Result<Settings, String> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| format!("config file {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let d = Settings::default();
        let window = match (cli.window, &file.window) {
            (Some(w), _) => w.into(),
            (None, Some(w)) => humantime::parse_duration(w)
                .map_err(|e| format!("config file: window {w:?}: {e}"))?,
            (None, None) => d.window,
        };
        let mut tenants = Vec::new();
        for t in &file.tenants {
            let key = match (&t.key_sha256, &t.key) {
                (Some(h), None) => TenantKey::from_hex(&t.name, h)?,
                (None, Some(k)) => TenantKey::from_key(&t.name, k)?,
                _ => {
                    return Err(format!(
                        "config file: tenant `{}` needs exactly one of key-sha256 or key",
                        t.name
                    ));
                }
            };
            tenants.push(key);
        }
        for spec in &cli.tenants {
            tenants.push(auth::parse_tenant_flag(spec)?);
        }
        let mut webhooks: Vec<(String, String)> = file
            .webhooks
            .iter()
            .map(|w| (w.name.clone(), w.url.clone()))
            .collect();
        for spec in &cli.webhooks {
            let (name, url) = spec
                .split_once('=')
                .ok_or_else(|| format!("--webhook {spec:?}: expected NAME=URL"))?;
            webhooks.push((name.to_owned(), url.to_owned()));
        }
        let s = Settings {
            listen: cli.listen.or(file.listen).unwrap_or(d.listen),
            data_dir: cli.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
            demo: !cli.no_demo && file.demo.unwrap_or(d.demo),
            demo_rate: cli.demo_rate.or(file.demo_rate).unwrap_or(d.demo_rate),
            tenants,
            tenant_rate: cli
                .tenant_rate
                .or(file.tenant_rate)
                .unwrap_or(d.tenant_rate),
            shards: cli.shards.or(file.shards).unwrap_or(d.shards),
            window,
            ack: match cli.ack.or(file.ack) {
                Some(AckArg::Append) => Ack::AfterAppend,
                Some(AckArg::Fsync) => Ack::AfterFsync,
                None => d.ack,
            },
            max_body_bytes: cli
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(d.max_body_bytes),
            max_batch_events: cli
                .max_batch_events
                .or(file.max_batch_events)
                .unwrap_or(d.max_batch_events),
            top_k_dim: cli.top_k_dim.or(file.top_k_dim).unwrap_or(d.top_k_dim),
            webhooks,
            workers: cli.workers.or(file.workers).unwrap_or(d.workers),
            log: cli.log.or(file.log).unwrap_or(d.log),
            ..d
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks the settings together.
    ///
    /// # Errors
    ///
    /// A message naming the bad setting and what to do.
    pub fn validate(&self) -> Result<(), String> {
        if !self.listen.ip().is_loopback() && self.tenants.is_empty() {
            return Err(format!(
                "refusing to listen on non-loopback address {} without configured tenants: \
                 add --tenant NAME=KEY (or [[tenants]] in the config file), or listen on 127.0.0.1",
                self.listen
            ));
        }
        if !(1..=256).contains(&self.shards) {
            return Err(format!("--shards {}: must be 1..=256", self.shards));
        }
        if self.window < Duration::from_secs(1) {
            return Err(format!("--window {:?}: must be at least 1s", self.window));
        }
        if self.max_body_bytes < 1024 {
            return Err("--max-body-bytes: must be at least 1024".into());
        }
        if self.max_batch_events == 0 {
            return Err("--max-batch-events: must be positive".into());
        }
        if self.workers == 0 {
            return Err("--workers: must be positive".into());
        }
        let mut names: Vec<&str> = self.tenants.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("tenant `{}` is configured twice", w[0]));
        }
        let mut hooks: Vec<&str> = self.webhooks.iter().map(|w| w.0.as_str()).collect();
        hooks.sort_unstable();
        if let Some(w) = hooks.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("webhook `{}` is configured twice", w[0]));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("platform").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_are_loopback_with_the_demo() {
        let s = Settings::resolve(cli(&[])).unwrap();
        assert!(s.listen.ip().is_loopback());
        assert!(s.demo);
        assert_eq!(s.data_dir, PathBuf::from("weft-data"));
    }

    #[test]
    fn non_loopback_needs_tenants() {
        let e = Settings::resolve(cli(&["--listen", "0.0.0.0:8080"])).unwrap_err();
        assert!(e.contains("non-loopback"), "{e}");
        let s = Settings::resolve(cli(&[
            "--listen",
            "0.0.0.0:8080",
            "--tenant",
            "a=secret-key",
        ]));
        assert!(s.is_ok());
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        std::fs::write(
            &path,
            "shards = 4\nwindow = \"30s\"\ndemo = false\n[[tenants]]\nname = \"acme\"\nkey = \"key-of-acme\"\n",
        )
        .unwrap();
        let s =
            Settings::resolve(cli(&["--config", path.to_str().unwrap(), "--shards", "3"])).unwrap();
        assert_eq!(s.shards, 3);
        assert_eq!(s.window, Duration::from_secs(30));
        assert!(!s.demo);
        assert_eq!(s.tenants[0].name, "acme");
    }

    #[test]
    fn the_books_example_config_parses() {
        let chapter = include_str!("../../../docs/src/platform.md");
        let toml = chapter
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        std::fs::write(&path, toml).unwrap();
        let s = Settings::resolve(cli(&["--config", path.to_str().unwrap()])).unwrap();
        assert!(!s.listen.ip().is_loopback());
        assert!(!s.demo);
        assert_eq!(s.tenant_rate, 200_000);
        // The hash in the example is SHA-256("test").
        let tenants = super::super::auth::Tenants::new(&s.tenants);
        assert_eq!(
            &*tenants.authenticate(Some(b"Bearer test")).unwrap(),
            "acme"
        );
        assert_eq!(s.webhooks[0].0, "ops");
    }

    #[test]
    fn bad_files_and_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        std::fs::write(&path, "shardz = 4\n").unwrap();
        let e = Settings::resolve(cli(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(e.contains("shardz"), "{e}");
        let e = Settings::resolve(cli(&["--shards", "0"])).unwrap_err();
        assert!(e.contains("--shards"), "{e}");
        let e = Settings::resolve(cli(&["--tenant", "a=key-one-1", "--tenant", "a=key-two-2"]))
            .unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }
}
