//! Router: round-robin, least-loaded and key-hash routing; crashed workers restart.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use weft_actor::{Actor, AskError, Context, Handler, Router, Routing, System};

#[derive(Default)]
struct Worker {
    seen: Vec<u32>,
}
impl Actor for Worker {}

struct Job(u32);
struct Seen;
struct Hold(Arc<Notify>);
struct Crash;

impl Handler<Job> for Worker {
    type Reply = ();
    async fn handle(&mut self, Job(n): Job, _: &mut Context<Self>) {
        self.seen.push(n);
    }
}
impl Handler<Seen> for Worker {
    type Reply = Vec<u32>;
    async fn handle(&mut self, _: Seen, _: &mut Context<Self>) -> Vec<u32> {
        self.seen.clone()
    }
}
impl Handler<Hold> for Worker {
    type Reply = ();
    async fn handle(&mut self, Hold(n): Hold, _: &mut Context<Self>) {
        n.notified().await;
    }
}
impl Handler<Crash> for Worker {
    type Reply = ();
    async fn handle(&mut self, _: Crash, _: &mut Context<Self>) {
        panic!("worker crashed");
    }
}

const SEC: Duration = Duration::from_secs(1);

async fn seen(router: &Router<Worker>) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for w in router.workers() {
        out.push(w.ask(Seen, SEC).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn round_robin_spreads_evenly() {
    let system = System::new();
    let router = Router::builder(3, Worker::default).spawn(&system).unwrap();
    for n in 0..6 {
        router.tell(Job(n)).await.unwrap();
    }
    assert_eq!(seen(&router).await, [vec![0, 3], vec![1, 4], vec![2, 5]]);
}

#[tokio::test(flavor = "current_thread")]
async fn least_loaded_avoids_a_busy_worker() {
    let system = System::new();
    let router = Router::builder(2, Worker::default)
        .routing(Routing::LeastLoaded)
        .spawn(&system)
        .unwrap();
    let gate = Arc::new(Notify::new());
    let busy = &router.workers()[0];
    busy.try_tell(Hold(gate.clone())).unwrap();
    tokio::task::yield_now().await;
    busy.try_tell(Job(100)).unwrap(); // worker 0 now has a queued message
    for n in 0..4 {
        router.try_tell(Job(n)).unwrap();
        tokio::task::yield_now().await; // worker 1 keeps its mailbox empty
    }
    gate.notify_one();
    assert_eq!(seen(&router).await, [vec![100], vec![0, 1, 2, 3]]);
}

#[tokio::test(flavor = "current_thread")]
async fn key_hash_is_sticky_and_ordered_per_key() {
    let system = System::new();
    let router = Router::builder(4, Worker::default).spawn(&system).unwrap();
    for n in 0..20 {
        let key = format!("k{}", n % 5);
        router.tell_keyed(&key, Job(n)).await.unwrap();
    }
    let all = seen(&router).await;
    for k in 0..5 {
        let key = format!("k{k}");
        let target = router.pick_keyed(&key).id();
        let idx = router
            .workers()
            .iter()
            .position(|w| w.id() == target)
            .unwrap();
        let mine: Vec<u32> = all[idx].iter().copied().filter(|n| n % 5 == k).collect();
        assert_eq!(
            mine,
            vec![k, k + 5, k + 10, k + 15],
            "key {key} split or reordered"
        );
        for (i, other) in all.iter().enumerate() {
            if i != idx {
                assert!(
                    other.iter().all(|n| n % 5 != k),
                    "key {key} reached two workers"
                );
            }
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_crashed_worker_is_restarted_behind_the_same_handle() {
    let system = System::new();
    let router = Router::builder(2, Worker::default).spawn(&system).unwrap();
    let w = router.workers()[1].clone();
    w.tell(Job(1)).await.unwrap();
    assert!(matches!(w.ask(Crash, SEC).await, Err(AskError::NoReply)));
    assert_eq!(w.ask(Seen, SEC).await.unwrap(), Vec::<u32>::new());
    assert_eq!(router.supervisor().restarts(), 1);
    assert!(Router::builder(0, Worker::default).spawn(&system).is_err());
}
