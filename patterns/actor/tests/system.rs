//! The system: links and monitors, registry and process groups, graceful shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use weft_actor::{
    Actor, ActorRef, BoxError, Context, DeadLetterReason, Error, Handler, ShutdownMode,
    SpawnOptions, StopReason, System, Terminated,
};

type Log = Arc<Mutex<Vec<String>>>;

/// Logs its lifecycle and the `Terminated` signals it receives.
struct Node {
    name: &'static str,
    log: Log,
}

impl Node {
    fn new(name: &'static str, log: &Log) -> Self {
        Node {
            name,
            log: log.clone(),
        }
    }
}

impl Actor for Node {
    async fn started(&mut self, _: &mut Context<Self>) -> Result<(), BoxError> {
        Ok(())
    }
    async fn stopping(&mut self, _: &mut Context<Self>) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} stopping", self.name));
    }
    async fn terminated(&mut self, _: &mut Context<Self>, t: Terminated) {
        self.log.lock().unwrap().push(format!(
            "{} saw {:?} {}",
            self.name,
            t.name.as_deref(),
            t.reason
        ));
    }
}

struct Watch(ActorRef<Node>);
struct Link(ActorRef<Node>);
struct Crash;
struct Work(u32);
struct Hold(Arc<Notify>);

impl Handler<Watch> for Node {
    type Reply = ();
    async fn handle(&mut self, Watch(other): Watch, ctx: &mut Context<Self>) {
        ctx.watch(&other);
    }
}

impl Handler<Link> for Node {
    type Reply = ();
    async fn handle(&mut self, Link(other): Link, ctx: &mut Context<Self>) {
        ctx.link(&other);
    }
}

impl Handler<Crash> for Node {
    type Reply = ();
    async fn handle(&mut self, _: Crash, _: &mut Context<Self>) {
        panic!("node crashed");
    }
}

impl Handler<Work> for Node {
    type Reply = ();
    async fn handle(&mut self, Work(n): Work, _: &mut Context<Self>) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} work {n}", self.name));
    }
}

impl Handler<Hold> for Node {
    type Reply = ();
    async fn handle(&mut self, Hold(n): Hold, _: &mut Context<Self>) {
        n.notified().await;
    }
}

const SEC: Duration = Duration::from_secs(1);

fn named(name: &'static str) -> SpawnOptions {
    SpawnOptions::new().name(name)
}

#[tokio::test(flavor = "current_thread")]
async fn a_monitor_gets_terminated_with_the_reason() {
    let (system, log) = (System::new(), Log::default());
    let watcher = system.spawn(Node::new("w", &log)).unwrap();
    let target = system.spawn_with(Node::new("t", &log), named("t")).unwrap();
    watcher.ask(Watch(target.clone()), SEC).await.unwrap();
    target.tell(Crash).await.unwrap();
    assert_eq!(
        target.wait().await,
        StopReason::Panicked("node crashed".into())
    );
    watcher.ask(Work(0), SEC).await.unwrap(); // the signal was handled before this
    let log = log.lock().unwrap().clone();
    assert!(
        log.contains(&"w saw Some(\"t\") panicked: node crashed".to_owned()),
        "{log:?}"
    );
    assert!(watcher.is_alive(), "a monitor does not die with the target");
}

#[tokio::test(flavor = "current_thread")]
async fn watching_a_dead_actor_delivers_terminated_at_once() {
    let (system, log) = (System::new(), Log::default());
    let target = system.spawn(Node::new("t", &log)).unwrap();
    target.stop();
    target.wait().await;
    let watcher = system.spawn(Node::new("w", &log)).unwrap();
    watcher.ask(Watch(target), SEC).await.unwrap();
    watcher.ask(Work(0), SEC).await.unwrap();
    assert!(
        log.lock()
            .unwrap()
            .contains(&"w saw None stopped normally".to_owned())
    );
}

#[tokio::test(flavor = "current_thread")]
async fn links_propagate_abnormal_stops_but_not_normal_ones() {
    let (system, log) = (System::new(), Log::default());
    let a = system.spawn(Node::new("a", &log)).unwrap();
    let b = system.spawn(Node::new("b", &log)).unwrap();
    a.ask(Link(b.clone()), SEC).await.unwrap();
    b.tell(Crash).await.unwrap();
    assert_eq!(a.wait().await, StopReason::Linked(b.id()));

    let c = system.spawn(Node::new("c", &log)).unwrap();
    let d = system.spawn(Node::new("d", &log)).unwrap();
    c.ask(Link(d.clone()), SEC).await.unwrap();
    d.stop();
    d.wait().await;
    c.ask(Work(1), SEC).await.unwrap();
    assert!(c.is_alive(), "a normal stop does not take the link down");
    assert!(
        log.lock()
            .unwrap()
            .contains(&"c saw None stopped normally".to_owned())
    );
}

#[tokio::test(flavor = "current_thread")]
async fn registry_names_are_unique_and_go_with_their_actor() {
    let (system, log) = (System::new(), Log::default());
    let a = system
        .spawn_with(Node::new("a", &log), named("svc"))
        .unwrap();
    let err = system
        .spawn_with(Node::new("b", &log), named("svc"))
        .unwrap_err();
    assert_eq!(err, Error::NameTaken("svc".into()));
    assert_eq!(system.lookup::<Node>("svc"), Some(a.clone()));
    assert_eq!(a.name(), Some("svc"));
    a.stop();
    a.wait().await;
    assert_eq!(system.lookup::<Node>("svc"), None);
    let b = system
        .spawn_with(Node::new("b", &log), named("svc"))
        .unwrap();
    assert_eq!(system.lookup::<Node>("svc"), Some(b.clone()));
    assert!(system.unregister("svc"));
    assert_eq!(system.lookup::<Node>("svc"), None);
}

#[derive(Clone)]
struct Ping(u32);

impl Handler<Ping> for Node {
    type Reply = ();
    async fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self>) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} ping {n}", self.name));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn process_groups_broadcast_to_live_members() {
    let (system, log) = (System::new(), Log::default());
    let members: Vec<_> = ["x", "y", "z"]
        .into_iter()
        .map(|n| system.spawn(Node::new(n, &log)).unwrap())
        .collect();
    for m in &members {
        system.join_group("g", m.recipient::<Ping>());
    }
    assert_eq!(system.group::<Ping, ()>("g").len(), 3);
    members[1].stop();
    members[1].wait().await;
    assert_eq!(system.broadcast("g", Ping(7)), 2);
    for m in [&members[0], &members[2]] {
        m.ask(Work(0), SEC).await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    assert!(log.contains(&"x ping 7".to_owned()) && log.contains(&"z ping 7".to_owned()));
    assert!(!log.contains(&"y ping 7".to_owned()));
    assert_eq!(system.broadcast("nobody", Ping(1)), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_stops_in_reverse_spawn_order_and_drains() {
    let (system, log) = (System::new(), Log::default());
    let db = system.spawn(Node::new("db", &log)).unwrap();
    let cache = system.spawn(Node::new("cache", &log)).unwrap();
    let api = system.spawn(Node::new("api", &log)).unwrap();
    for n in 0..3 {
        api.try_tell(Work(n)).unwrap();
    }
    system.shutdown(ShutdownMode::Drain, SEC).await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "api work 0",
            "api work 1",
            "api work 2",
            "api stopping",
            "cache stopping",
            "db stopping"
        ]
    );
    for a in [&db, &cache, &api] {
        assert_eq!(a.wait().await, StopReason::Normal);
    }
    assert_eq!(
        system.spawn(Node::new("late", &log)).unwrap_err(),
        Error::ShutDown
    );
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_drop_mode_dead_letters_the_queue() {
    let (system, log) = (System::new(), Log::default());
    let a = system.spawn(Node::new("a", &log)).unwrap();
    let gate = Arc::new(Notify::new());
    a.try_tell(Hold(gate.clone())).unwrap();
    tokio::task::yield_now().await;
    for n in 0..4 {
        a.try_tell(Work(n)).unwrap();
    }
    let shutdown = tokio::spawn({
        let system = system.clone();
        async move { system.shutdown(ShutdownMode::Drop, SEC).await }
    });
    tokio::task::yield_now().await;
    gate.notify_one();
    shutdown.await.unwrap().unwrap();
    assert_eq!(a.wait().await, StopReason::Shutdown);
    assert_eq!(system.dead_letters().count(DeadLetterReason::Stopped), 4);
    assert_eq!(*log.lock().unwrap(), ["a stopping"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shutdown_deadline_aborts_what_is_still_running() {
    let (system, log) = (System::new(), Log::default());
    let fine = system.spawn(Node::new("fine", &log)).unwrap();
    let stuck = system.spawn(Node::new("stuck", &log)).unwrap();
    stuck.try_tell(Hold(Arc::new(Notify::new()))).unwrap(); // never released
    tokio::task::yield_now().await;
    stuck.try_tell(Work(1)).unwrap();
    let err = system
        .shutdown(ShutdownMode::Drain, Duration::from_secs(3))
        .await
        .unwrap_err();
    assert_eq!(err, Error::ShutdownTimeout(2));
    assert_eq!(stuck.wait().await, StopReason::Killed);
    assert_eq!(fine.wait().await, StopReason::Killed);
    assert_eq!(system.dead_letters().count(DeadLetterReason::Stopped), 1);
    assert_eq!(system.live(), 0);
}
