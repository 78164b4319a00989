//! A pool of TCP connections to a loopback echo server that the example starts itself.
//! Idle connections are validated by a round trip when checked out; a connection the
//! server closed is noticed there and replaced.
//!
//! ```text
//! cargo run -p weft-pool --features tokio --example tcp_pool
//! ```

#[path = "common/echo.rs"]
mod echo;

use std::time::Duration;

use echo::{EchoManager, start_echo_server};
use weft_pool::Pool;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = start_echo_server().await?;
    let pool = Pool::builder(EchoManager { addr })
        .max_size(4)
        .min_idle(2)
        .wait_timeout(Duration::from_secs(5))
        .create_timeout(Duration::from_secs(2))
        .recycle_timeout(Duration::from_secs(1))
        .build()?;
    pool.warm_up().await?;
    println!("warmed up: {:?}", pool.status());

    // Sixteen tasks share four connections.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.get().await?;
                let reply = conn.echo(&format!("hello {i}")).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(reply)
            })
        })
        .collect();
    for task in tasks {
        println!("{}", task.await?.map_err(|e| e.to_string())?);
    }

    // The server drops every connection while they sit idle: the next checkout's ping
    // fails on each, they are closed, and a fresh connection is made.
    let mut conns = Vec::new();
    for _ in 0..pool.status().idle {
        conns.push(pool.get().await?);
    }
    for conn in &mut conns {
        conn.ask_server_to_close().await?;
    }
    drop(conns);
    let mut conn = pool.get().await?;
    println!(
        "after a server-side close: {}",
        conn.echo("still here").await?
    );
    drop(conn);

    let s = pool.status();
    println!(
        "size {}, idle {}, created {}, closed after a failed ping {}, p99 wait {:?}",
        s.size,
        s.idle,
        s.stats.created,
        s.stats.closed.recycle_failed,
        s.stats.wait_time.percentile(0.99),
    );
    Ok(())
}
