//! Supervision: each strategy, each restart policy, restart intensity and escalation,
//! nested supervisors. Time is paused: restart windows are driven by `advance`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_actor::{
    Actor, ActorRef, AskError, BoxError, ChildSpec, Context, Handler, Restart, ShutdownMode,
    StopReason, Strategy, Supervisor, SupervisorRef, System,
};

/// Counts `Inc`s since it started; records its starts in a shared log.
struct Worker {
    name: &'static str,
    count: u32,
    starts: Arc<Mutex<Vec<&'static str>>>,
}

impl Actor for Worker {
    async fn started(&mut self, _: &mut Context<Self>) -> Result<(), BoxError> {
        self.starts.lock().unwrap().push(self.name);
        Ok(())
    }
}

struct Inc;
struct Crash;
struct Quit;
struct Fail;
struct Hang;

impl Handler<Fail> for Worker {
    type Reply = ();
    async fn handle(&mut self, _: Fail, ctx: &mut Context<Self>) {
        ctx.fail("bad state");
    }
}

impl Handler<Hang> for Worker {
    type Reply = ();
    async fn handle(&mut self, _: Hang, _: &mut Context<Self>) {
        std::future::pending::<()>().await;
    }
}

impl Handler<Inc> for Worker {
    type Reply = u32;
    async fn handle(&mut self, _: Inc, _: &mut Context<Self>) -> u32 {
        self.count += 1;
        self.count
    }
}

impl Handler<Crash> for Worker {
    type Reply = ();
    async fn handle(&mut self, _: Crash, _: &mut Context<Self>) {
        panic!("crash requested");
    }
}

impl Handler<Quit> for Worker {
    type Reply = ();
    async fn handle(&mut self, _: Quit, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

const SEC: Duration = Duration::from_secs(1);

type Log = Arc<Mutex<Vec<&'static str>>>;

fn spec(name: &'static str, log: &Log) -> ChildSpec<Worker> {
    let log = log.clone();
    ChildSpec::new(name, move || Worker {
        name,
        count: 0,
        starts: log.clone(),
    })
}

fn three(strategy: Strategy, log: &Log, system: &System) -> SupervisorRef {
    Supervisor::builder(strategy)
        .max_restarts(10, Duration::from_secs(10))
        .child(spec("a", log))
        .child(spec("b", log))
        .child(spec("c", log))
        .spawn(system)
        .unwrap()
}

fn child(sup: &SupervisorRef, name: &str) -> ActorRef<Worker> {
    sup.child::<Worker>(name).unwrap()
}

/// Bumps every child once and returns their counts.
async fn bump(sup: &SupervisorRef) -> Vec<u32> {
    let mut out = Vec::new();
    for name in ["a", "b", "c"] {
        out.push(child(sup, name).ask(Inc, SEC).await.unwrap());
    }
    out
}

async fn crash(w: &ActorRef<Worker>) {
    assert!(matches!(w.ask(Crash, SEC).await, Err(AskError::NoReply)));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn one_for_one_restarts_only_the_failed_child() {
    let (system, log) = (System::new(), Log::default());
    let sup = three(Strategy::OneForOne, &log, &system);
    assert_eq!(bump(&sup).await, [1, 1, 1]);
    crash(&child(&sup, "b")).await;
    assert_eq!(bump(&sup).await, [2, 1, 2], "only b lost its state");
    assert_eq!(*log.lock().unwrap(), ["a", "b", "c", "b"]);
    assert_eq!(child(&sup, "b").metrics().restarts, 1);
    assert_eq!(sup.restarts(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn one_for_all_restarts_every_child_in_start_order() {
    let (system, log) = (System::new(), Log::default());
    let sup = three(Strategy::OneForAll, &log, &system);
    assert_eq!(bump(&sup).await, [1, 1, 1]);
    crash(&child(&sup, "b")).await;
    assert_eq!(bump(&sup).await, [1, 1, 1], "everyone restarted");
    assert_eq!(*log.lock().unwrap(), ["a", "b", "c", "a", "b", "c"]);
    assert_eq!(sup.restarts(), 3);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let (system, log) = (System::new(), Log::default());
    let sup = three(Strategy::RestForOne, &log, &system);
    assert_eq!(bump(&sup).await, [1, 1, 1]);
    crash(&child(&sup, "b")).await;
    assert_eq!(
        bump(&sup).await,
        [2, 1, 1],
        "a kept its state; b and c restarted"
    );
    assert_eq!(*log.lock().unwrap(), ["a", "b", "c", "b", "c"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn restart_policies_decide_by_reason() {
    let (system, log) = (System::new(), Log::default());
    let sup = Supervisor::builder(Strategy::OneForOne)
        .child(spec("a", &log).restart(Restart::Permanent))
        .child(spec("b", &log).restart(Restart::Transient))
        .child(spec("c", &log).restart(Restart::Temporary))
        .child(spec("d", &log).restart(Restart::Transient))
        .spawn(&system)
        .unwrap();
    let (a, b, c, d) = (
        child(&sup, "a"),
        child(&sup, "b"),
        child(&sup, "c"),
        child(&sup, "d"),
    );
    // Normal stops: permanent comes back, transient does not.
    a.ask(Quit, SEC).await.unwrap();
    b.ask(Quit, SEC).await.unwrap();
    assert_eq!(
        a.ask(Inc, SEC).await.unwrap(),
        1,
        "permanent restarted after a normal stop"
    );
    assert_eq!(
        b.wait().await,
        StopReason::Normal,
        "transient not restarted after a normal stop"
    );
    // Failures: transient comes back, temporary does not.
    crash(&d).await;
    assert_eq!(
        d.ask(Inc, SEC).await.unwrap(),
        1,
        "transient restarted after a panic"
    );
    crash(&c).await;
    assert_eq!(
        c.wait().await,
        StopReason::Panicked("crash requested".into())
    );
    assert!(matches!(c.ask(Inc, SEC).await, Err(AskError::Closed(Inc))));
    assert_eq!(*log.lock().unwrap(), ["a", "b", "c", "d", "a", "d"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn restart_intensity_exceeded_escalates_and_stops_all_children() {
    let (system, log) = (System::new(), Log::default());
    let sup = Supervisor::builder(Strategy::OneForOne)
        .max_restarts(2, Duration::from_secs(10))
        .child(spec("a", &log))
        .child(spec("b", &log))
        .spawn(&system)
        .unwrap();
    let (a, b) = (child(&sup, "a"), child(&sup, "b"));
    crash(&b).await;
    crash(&b).await; // 2 restarts within the window: allowed
    assert_eq!(b.ask(Inc, SEC).await.unwrap(), 1);
    crash(&b).await; // the third in 10 s: escalate
    assert_eq!(sup.wait().await, StopReason::Escalated);
    assert_eq!(a.wait().await, StopReason::Shutdown, "siblings are stopped");
    assert!(!b.is_alive());
    assert_eq!(system.live(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn restarts_outside_the_window_do_not_count() {
    let (system, log) = (System::new(), Log::default());
    let sup = Supervisor::builder(Strategy::OneForOne)
        .max_restarts(1, Duration::from_secs(10))
        .child(spec("a", &log))
        .spawn(&system)
        .unwrap();
    let a = child(&sup, "a");
    for _ in 0..5 {
        crash(&a).await;
        assert_eq!(a.ask(Inc, SEC).await.unwrap(), 1);
        tokio::time::advance(Duration::from_secs(11)).await;
    }
    assert_eq!(sup.restarts(), 5);
    assert!(a.is_alive());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_nested_supervisor_escalates_to_its_parent() {
    let (system, log) = (System::new(), Log::default());
    let inner = Supervisor::builder(Strategy::OneForOne)
        .max_restarts(0, Duration::from_secs(10))
        .child(spec("w", &log));
    let root = Supervisor::builder(Strategy::OneForOne)
        .max_restarts(5, Duration::from_secs(10))
        .supervisor("inner", Restart::Permanent, inner)
        .spawn(&system)
        .unwrap();
    let nested = root.supervisor("inner").unwrap();
    let w = nested.child::<Worker>("w").unwrap();
    assert_eq!(w.ask(Inc, SEC).await.unwrap(), 1);
    crash(&w).await; // the inner supervisor allows no restart: it escalates
    assert_eq!(
        w.wait().await,
        StopReason::Panicked("crash requested".into())
    );
    // The root restarted the inner supervisor, which started a fresh worker.
    for _ in 0..100 {
        if root.restarts() == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(root.restarts(), 1);
    let w2 = nested.child::<Worker>("w").unwrap();
    assert_ne!(w2.id(), w.id());
    assert_eq!(w2.ask(Inc, SEC).await.unwrap(), 1);
    assert_eq!(*log.lock().unwrap(), ["w", "w"]);
    assert!(root.stop(ShutdownMode::Drop));
    assert_eq!(root.wait().await, StopReason::Shutdown);
    assert!(!w2.is_alive());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn invalid_supervisors_are_rejected() {
    let system = System::new();
    let err = Supervisor::builder(Strategy::OneForOne)
        .spawn(&system)
        .unwrap_err();
    assert_eq!(err, weft_actor::Error::Empty);
    let log = Log::default();
    let err = Supervisor::builder(Strategy::OneForOne)
        .max_restarts(1, Duration::ZERO)
        .child(spec("a", &log))
        .spawn(&system)
        .unwrap_err();
    assert_eq!(err, weft_actor::Error::ZeroWindow);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn context_fail_restarts_a_transient_child() {
    let (system, log) = (System::new(), Log::default());
    let sup = Supervisor::builder(Strategy::OneForOne)
        .child(spec("a", &log).restart(Restart::Transient))
        .spawn(&system)
        .unwrap();
    let a = child(&sup, "a");
    a.ask(Inc, SEC).await.unwrap();
    a.ask(Fail, SEC).await.unwrap(); // replies, then stops with a failure
    assert_eq!(
        a.ask(Inc, SEC).await.unwrap(),
        1,
        "restarted with fresh state"
    );
    assert_eq!(sup.restarts(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_drained_child_is_not_restarted_even_if_permanent() {
    let (system, log) = (System::new(), Log::default());
    let sup = Supervisor::builder(Strategy::OneForOne)
        .child(spec("a", &log))
        .child(spec("b", &log))
        .spawn(&system)
        .unwrap();
    let a = child(&sup, "a");
    a.try_tell(Inc).unwrap();
    a.drain_and_stop();
    assert_eq!(a.wait().await, StopReason::Normal);
    assert_eq!(sup.restarts(), 0);
    assert_eq!(child(&sup, "b").ask(Inc, SEC).await.unwrap(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn system_shutdown_stops_supervised_children_and_aborts_stuck_ones() {
    let (system, log) = (System::new(), Log::default());
    let sup = three(Strategy::OneForOne, &log, &system);
    let (a, b, c) = (child(&sup, "a"), child(&sup, "b"), child(&sup, "c"));
    b.try_tell(Hang).unwrap();
    b.try_tell(Inc).unwrap(); // queued behind the hang
    let err = system
        .shutdown(ShutdownMode::Drain, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(err, weft_actor::Error::ShutdownTimeout(1));
    assert_eq!(
        c.wait().await,
        StopReason::Normal,
        "c drained and stopped first"
    );
    assert_eq!(b.wait().await, StopReason::Killed, "b hung and was aborted");
    assert_eq!(a.wait().await, StopReason::Killed);
    assert_eq!(sup.wait().await, StopReason::Killed);
    assert_eq!(
        system
            .dead_letters()
            .count(weft_actor::DeadLetterReason::Stopped),
        1,
        "the Inc queued behind the hang"
    );
    assert_eq!(system.live(), 0);
}
