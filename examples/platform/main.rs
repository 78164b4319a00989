//! `cargo run --release --example platform`: Weft's reference real-time analytics
//! server. See the README for the tour and the API, `--help` for every setting.

// `app` is shared with `tests/platform.rs` (which includes it by path), so its items
// are `pub` for the tests though unreachable from this binary.
#![allow(unreachable_pub)]

mod app;

use std::process::ExitCode;

use clap::Parser;

use app::config::{Cli, Settings};

fn main() -> ExitCode {
    let settings = match Settings::resolve(Cli::parse()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // 10K WebSocket clients need 10K descriptors; the usual soft limit is 1024.
    app::live::raise_fd_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.workers)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let running = match app::start(settings).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        print_banner(&running);
        wait_for_signal().await;
        eprintln!("shutting down: finishing in-flight requests, syncing the log");
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}

fn print_banner(r: &app::Running) {
    let url = format!("http://{}", r.addr);
    let s = &r.app.settings;
    println!("listening on {url}");
    println!("data directory: {}", s.data_dir.display());
    if let Some(key) = &r.demo_key {
        println!("demo tenant key: {key}");
        println!("dashboard: {url}/dashboard#token={key}");
        if s.demo {
            println!(
                "demo source: {} events/s into tenant `demo` (metrics http.request_ms, shop.order_value)",
                s.demo_rate
            );
        }
        println!();
        println!("try:");
        println!(
            "  curl -H 'Authorization: Bearer {key}' '{url}/v1/query?metric=http.request_ms&agg=count,p50,p99&group_by=route&from=-5m'"
        );
        println!(
            "  WEFT_URL={url} WEFT_TOKEN={key} cargo run --release --example client -- query --metric http.request_ms --agg count,p50,p99 --group-by route"
        );
        println!(
            "  WEFT_URL={url} WEFT_TOKEN={key} cargo run --release --example client -- send-events --count 100000 --rate 20000"
        );
    }
    println!("metrics: {url}/metrics   health: {url}/healthz   ready: {url}/readyz");
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
