//! The TCP adapter end to end: a pool of connections to a loopback echo server the test
//! starts, validated by round trip; a connection the server closes is replaced.
#![cfg(feature = "tokio")]

#[path = "../examples/common/echo.rs"]
#[allow(dead_code)] // the example uses parts the test does not
mod echo;

use std::time::Duration;

use echo::{EchoManager, start_echo_server};
use weft_pool::Pool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_shared_validated_and_replaced() {
    let addr = start_echo_server().await.unwrap();
    let pool = Pool::builder(EchoManager { addr })
        .max_size(3)
        .wait_timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.get().await.unwrap();
                conn.echo(&format!("message {i}")).await.unwrap()
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap(), format!("message {i}"));
    }
    let s = pool.status();
    assert!(s.size <= 3 && s.stats.created <= 3, "{s:?}");
    assert_eq!(s.stats.gets_direct + s.stats.gets_waited, 24);

    // Every idle connection is asked to close by the server...
    let idle = s.size;
    let mut conns = Vec::new();
    for _ in 0..idle {
        conns.push(pool.get().await.unwrap());
    }
    for conn in &mut conns {
        conn.ask_server_to_close().await.unwrap();
    }
    drop(conns);
    // ...so the next checkout's ping fails on each of them, and a new one is made.
    let mut conn = pool.get().await.unwrap();
    assert_eq!(conn.echo("after").await.unwrap(), "after");
    let s = pool.status();
    assert_eq!(s.stats.closed.recycle_failed as usize, idle);
    assert_eq!(s.size, 1);
}

#[tokio::test]
async fn a_connection_that_errors_in_use_is_not_reused() {
    let addr = start_echo_server().await.unwrap();
    let pool = Pool::builder(EchoManager { addr })
        .max_size(1)
        .build()
        .unwrap();
    let mut conn = pool.get().await.unwrap();
    conn.ask_server_to_close().await.unwrap();
    assert!(conn.echo("lost").await.is_err()); // marks it broken
    drop(conn);
    let s = pool.status();
    assert_eq!((s.size, s.stats.closed.broken), (0, 1));
    let mut fresh = pool.get().await.unwrap();
    assert_eq!(fresh.echo("hi").await.unwrap(), "hi");
}
