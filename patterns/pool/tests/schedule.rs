//! Randomised schedules (proptest): many tasks checking out, holding, breaking,
//! detaching, cancelling mid-wait and timing out, on tokio's paused clock. After every
//! step and at every millisecond: `size <= max`, `idle + in_use == size`, and no waiter
//! waits while an object is idle. At the end: nothing in use, nobody waiting, and every
//! object created is either in the pool or was dropped.
#![cfg(feature = "tokio")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Things, check};
use proptest::prelude::*;
use weft_pool::{Error, Object, Pool, QueueMode};
use weft_time::{Backoff, TokioClock};

/// What one task does after its start delay.
#[derive(Debug, Clone)]
enum Act {
    /// `get` (bounded by the pool's wait timeout), hold, return.
    Get,
    /// `get`, but give up after this many ms (the future is dropped mid-wait, or
    /// mid-create / mid-recycle).
    GetCancelAfter(u64),
    /// `get` in a sub-task that is aborted after this many ms: its future is dropped
    /// without being polled again, perhaps after it was handed an object.
    GetAbortAfter(u64),
    /// `try_get`, hold, return.
    TryGet,
    /// `get`, hold, mark broken (closed on return).
    GetBreak,
    /// `get`, hold, then detach the object.
    GetDetach,
    /// `get`, mark stale (rejected by the next checkout's recycle).
    GetStale,
}

#[derive(Debug, Clone)]
struct Plan {
    start_ms: u64,
    hold_ms: u64,
    act: Act,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => Just(Act::Get),
        2 => (0u64..6).prop_map(Act::GetCancelAfter),
        2 => (0u64..6).prop_map(Act::GetAbortAfter),
        1 => Just(Act::TryGet),
        1 => Just(Act::GetBreak),
        1 => Just(Act::GetDetach),
        1 => Just(Act::GetStale),
    ]
}

fn plan() -> impl Strategy<Value = Plan> {
    (0u64..20, 0u64..8, act()).prop_map(|(start_ms, hold_ms, act)| Plan {
        start_ms,
        hold_ms,
        act,
    })
}

async fn run_task(pool: Pool<Things>, plan: Plan, served: Arc<AtomicUsize>) {
    tokio::time::sleep(Duration::from_millis(plan.start_ms)).await;
    check(&pool.status());
    let got = match plan.act {
        Act::GetCancelAfter(ms) => {
            match tokio::time::timeout(Duration::from_millis(ms), pool.get()).await {
                Ok(r) => r,
                Err(_) => {
                    check(&pool.status());
                    return;
                }
            }
        }
        Act::GetAbortAfter(ms) => {
            let sub = tokio::spawn({
                let (pool, served) = (pool.clone(), Arc::clone(&served));
                async move {
                    let obj = pool.get().await;
                    if obj.is_ok() {
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                    std::future::pending::<()>().await; // hold until aborted
                }
            });
            tokio::time::sleep(Duration::from_millis(ms)).await;
            sub.abort();
            let _ = sub.await;
            check(&pool.status());
            return;
        }
        Act::TryGet => pool.try_get().await,
        _ => pool.get().await,
    };
    check(&pool.status());
    let mut obj = match got {
        Ok(obj) => obj,
        Err(Error::Timeout(_) | Error::Exhausted { .. } | Error::Create(_)) => return,
        Err(Error::Unavailable { .. }) => return,
        Err(other) => panic!("unexpected error {other:?}"),
    };
    served.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(plan.hold_ms)).await;
    match plan.act {
        Act::GetBreak => obj.broken = true,
        Act::GetStale => obj.stale = true,
        Act::GetDetach => {
            drop(Object::take(obj));
            check(&pool.status());
            return;
        }
        _ => {}
    }
    drop(obj);
    check(&pool.status());
}

fn run(max_size: usize, mode: QueueMode, delays: (u32, u32), fail_every: usize, plans: Vec<Plan>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let (things, script) = Things::new();
        script.create_delay_ms.store(delays.0, Ordering::SeqCst);
        script.recycle_delay_ms.store(delays.1, Ordering::SeqCst);
        let pool = Pool::builder(things)
            .clock(TokioClock)
            .max_size(max_size)
            .queue_mode(mode)
            .wait_timeout(Duration::from_millis(15))
            .create_retries(
                Backoff::constant(Duration::from_millis(1))
                    .max_retries(1)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let monitor = tokio::spawn({
            let (pool, done, script) = (pool.clone(), Arc::clone(&done), Arc::clone(&script));
            async move {
                let mut tick = 0usize;
                while !done.load(Ordering::SeqCst) {
                    check(&pool.status());
                    // Creation failures come and go.
                    if fail_every > 0 {
                        script
                            .fail_all
                            .store(tick % fail_every == 0, Ordering::SeqCst);
                    }
                    tick += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                script.fail_all.store(false, Ordering::SeqCst);
            }
        });
        let tasks: Vec<_> = plans
            .into_iter()
            .map(|p| tokio::spawn(run_task(pool.clone(), p, Arc::clone(&served))))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        done.store(true, Ordering::SeqCst);
        monitor.await.unwrap();

        let s = pool.status();
        check(&s);
        assert_eq!((s.in_use, s.waiters, s.creating), (0, 0, 0), "{s:?}");
        let st = s.stats;
        assert!(served.load(Ordering::SeqCst) as u64 <= st.gets_direct + st.gets_waited);
        let created = st.created as usize;
        let dropped = script.dropped.load(Ordering::SeqCst);
        // Detached objects were dropped by their task, so they count as dropped too.
        assert_eq!(created, s.size + dropped, "{s:?}");
        assert_eq!(
            st.closed.total() as usize + st.detached as usize,
            created - s.size
        );
        // The pool still works after the storm.
        assert!(pool.get().await.is_ok());
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_schedules_keep_the_invariants(
        max_size in 1usize..5,
        lifo in any::<bool>(),
        create_delay in 0u32..3,
        recycle_delay in 0u32..3,
        fail_every in prop_oneof![Just(0usize), 2usize..6],
        plans in prop::collection::vec(plan(), 1..40),
    ) {
        let mode = if lifo { QueueMode::Lifo } else { QueueMode::Fifo };
        run(max_size, mode, (create_delay, recycle_delay), fail_every, plans);
    }
}
