//! `ActorRef`: tell/ask ordering, backpressure, overflow policies, dead letters, ask
//! deadlines and cancellation, self-ask, caught panics, lifecycle hooks, signals.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use weft_actor::{
    Actor, AskError, BoxError, Context, DeadLetterReason, Handler, Overflow, SendError,
    SpawnOptions, StopReason, System,
};

/// Records every message; `Block` parks the actor until the notify fires.
#[derive(Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<(u32, u32)>>>,
    events: Arc<Mutex<Vec<&'static str>>>,
}

struct Msg(u32, u32); // (sender, seq)
struct Block(Arc<Notify>);
struct Seen;
struct Boom;
struct AskSelf;
struct Sleep(Duration);

impl Actor for Recorder {
    async fn started(&mut self, _: &mut Context<Self>) -> Result<(), BoxError> {
        self.events.lock().unwrap().push("started");
        Ok(())
    }
    async fn stopping(&mut self, _: &mut Context<Self>) {
        self.events.lock().unwrap().push("stopping");
    }
    async fn stopped(&mut self, _: &mut Context<Self>, _: &StopReason) {
        self.events.lock().unwrap().push("stopped");
    }
}

impl Handler<Msg> for Recorder {
    type Reply = ();
    async fn handle(&mut self, Msg(s, n): Msg, _: &mut Context<Self>) {
        self.seen.lock().unwrap().push((s, n));
    }
}

impl Handler<Block> for Recorder {
    type Reply = ();
    async fn handle(&mut self, Block(n): Block, _: &mut Context<Self>) {
        n.notified().await;
    }
}

impl Handler<Seen> for Recorder {
    type Reply = Vec<(u32, u32)>;
    async fn handle(&mut self, _: Seen, _: &mut Context<Self>) -> Vec<(u32, u32)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Handler<Boom> for Recorder {
    type Reply = ();
    async fn handle(&mut self, _: Boom, _: &mut Context<Self>) {
        panic!("boom");
    }
}

impl Handler<AskSelf> for Recorder {
    type Reply = bool;
    async fn handle(&mut self, _: AskSelf, ctx: &mut Context<Self>) -> bool {
        let me = ctx.myself().clone();
        matches!(
            me.ask(Seen, Duration::from_secs(1)).await,
            Err(AskError::SelfAsk(Seen))
        )
    }
}

impl Handler<Sleep> for Recorder {
    type Reply = u32;
    async fn handle(&mut self, Sleep(d): Sleep, _: &mut Context<Self>) -> u32 {
        tokio::time::sleep(d).await;
        7
    }
}

const SEC: Duration = Duration::from_secs(1);

/// Yields until the actor has emptied its mailbox, so a following `ask` is not itself
/// subject to the overflow policy of a full mailbox.
async fn drained<A: Actor>(actor: &weft_actor::ActorRef<A>) {
    for _ in 0..1000 {
        if actor.metrics().mailbox_len == 0 {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the actor did not drain its mailbox");
}

fn opts(capacity: usize, overflow: Overflow) -> SpawnOptions {
    SpawnOptions::new().capacity(capacity).overflow(overflow)
}

/// Blocks the actor inside a handler so the mailbox fills up; returns the release.
async fn block<A: Handler<Block>>(actor: &weft_actor::ActorRef<A>) -> Arc<Notify> {
    let gate = Arc::new(Notify::new());
    actor.try_tell(Block(gate.clone())).unwrap();
    // Let the actor take the Block message and park in it.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        actor.metrics().mailbox_len,
        0,
        "the actor took the Block message"
    );
    gate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_each_sender_are_handled_in_send_order() {
    let system = System::new();
    let rec = system
        .spawn_with(Recorder::default(), opts(4, Overflow::Wait))
        .unwrap();
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let rec = rec.clone();
            tokio::spawn(async move {
                for n in 0..200 {
                    rec.tell(Msg(s, n)).await.unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    let seen = rec.ask(Seen, SEC).await.unwrap();
    assert_eq!(seen.len(), 800);
    for s in 0..4 {
        let mine: Vec<u32> = seen
            .iter()
            .filter(|(x, _)| *x == s)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(
            mine,
            (0..200).collect::<Vec<_>>(),
            "sender {s} out of order"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tell_waits_for_capacity_and_try_tell_hands_the_message_back() {
    let system = System::new();
    let rec = system
        .spawn_with(Recorder::default(), opts(2, Overflow::Wait))
        .unwrap();
    let gate = block(&rec).await;
    rec.try_tell(Msg(0, 1)).unwrap();
    rec.try_tell(Msg(0, 2)).unwrap();
    match rec.try_tell(Msg(0, 3)) {
        Err(SendError::Full(Msg(0, 3))) => {}
        other => panic!("expected Full(Msg 3), got {other:?}"),
    }
    // A waiting tell does not complete while the mailbox is full...
    let waiting = tokio::spawn({
        let rec = rec.clone();
        async move { rec.tell(Msg(0, 3)).await.is_ok() }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !waiting.is_finished(),
        "tell must wait while the mailbox is full"
    );
    assert_eq!(rec.metrics().mailbox_len, 2);
    // ...and completes once the actor makes room.
    gate.notify_one();
    assert!(waiting.await.unwrap());
    let seen = rec.ask(Seen, SEC).await.unwrap();
    assert_eq!(seen, vec![(0, 1), (0, 2), (0, 3)]);
    assert_eq!(system.dead_letters().total(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn fail_policy_returns_the_message_from_tell() {
    let system = System::new();
    let rec = system
        .spawn_with(Recorder::default(), opts(1, Overflow::Fail))
        .unwrap();
    let gate = block(&rec).await;
    rec.tell(Msg(0, 1)).await.unwrap();
    let err = rec.tell(Msg(0, 2)).await.unwrap_err();
    assert!(matches!(err, SendError::Full(_)));
    let Msg(_, n) = err.into_inner();
    assert_eq!(n, 2);
    gate.notify_one();
    drained(&rec).await;
    assert_eq!(rec.ask(Seen, SEC).await.unwrap(), vec![(0, 1)]);
    assert_eq!(
        system.dead_letters().total(),
        0,
        "Fail hands back, it does not drop"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn drop_oldest_evicts_to_dead_letters() {
    let system = System::new();
    let rec = system
        .spawn_with(Recorder::default(), opts(2, Overflow::DropOldest))
        .unwrap();
    let gate = block(&rec).await;
    for n in 1..=5 {
        rec.tell(Msg(0, n)).await.unwrap();
    }
    assert_eq!(rec.metrics().mailbox_len, 2);
    gate.notify_one();
    drained(&rec).await;
    assert_eq!(rec.ask(Seen, SEC).await.unwrap(), vec![(0, 4), (0, 5)]);
    let dead = system.dead_letters();
    assert_eq!(dead.count(DeadLetterReason::DropOldest), 3);
    let lost: Vec<u32> = dead
        .take()
        .into_iter()
        .map(|d| d.downcast::<Msg>().unwrap().1)
        .collect();
    assert_eq!(lost, vec![1, 2, 3]);
    assert_eq!(rec.metrics().dead_letters, 3);
}

#[tokio::test(flavor = "current_thread")]
async fn drop_newest_rejects_to_dead_letters() {
    let system = System::new();
    let rec = system
        .spawn_with(Recorder::default(), opts(2, Overflow::DropNewest))
        .unwrap();
    let gate = block(&rec).await;
    for n in 1..=5 {
        rec.try_tell(Msg(0, n)).unwrap();
    }
    gate.notify_one();
    drained(&rec).await;
    assert_eq!(rec.ask(Seen, SEC).await.unwrap(), vec![(0, 1), (0, 2)]);
    let dead = system.dead_letters();
    assert_eq!(dead.count(DeadLetterReason::DropNewest), 3);
    let lost: Vec<u32> = dead
        .take()
        .into_iter()
        .map(|d| d.downcast::<Msg>().unwrap().1)
        .collect();
    assert_eq!(lost, vec![3, 4, 5]);
}

#[tokio::test(flavor = "current_thread")]
async fn stop_overtakes_queued_messages_which_become_dead_letters() {
    let hooked = Arc::new(Mutex::new(0u32));
    let system = System::builder()
        .on_dead_letter({
            let hooked = hooked.clone();
            move |_| *hooked.lock().unwrap() += 1
        })
        .build();
    let rec = Recorder::default();
    let (seen, events) = (rec.seen.clone(), rec.events.clone());
    let rec = system.spawn_with(rec, opts(8, Overflow::Wait)).unwrap();
    let gate = block(&rec).await;
    for n in 0..5 {
        rec.try_tell(Msg(0, n)).unwrap();
    }
    assert!(rec.stop());
    gate.notify_one();
    assert_eq!(rec.wait().await, StopReason::Normal);
    assert!(
        seen.lock().unwrap().is_empty(),
        "stop overtook the 5 messages"
    );
    assert_eq!(system.dead_letters().count(DeadLetterReason::Stopped), 5);
    assert_eq!(*hooked.lock().unwrap(), 5);
    assert_eq!(*events.lock().unwrap(), ["started", "stopping", "stopped"]);
    assert!(matches!(rec.try_tell(Msg(0, 9)), Err(SendError::Closed(_))));
    assert!(!rec.stop(), "already stopped");
}

#[tokio::test(flavor = "current_thread")]
async fn kill_skips_stopping_and_drain_handles_the_queue() {
    let system = System::new();
    let killed = Recorder::default();
    let events = killed.events.clone();
    let killed = system.spawn(killed).unwrap();
    tokio::task::yield_now().await;
    killed.kill();
    assert_eq!(killed.wait().await, StopReason::Killed);
    assert_eq!(*events.lock().unwrap(), ["started", "stopped"]);

    let drained = Recorder::default();
    let seen = drained.seen.clone();
    let drained = system.spawn(drained).unwrap();
    for n in 0..5 {
        drained.try_tell(Msg(0, n)).unwrap();
    }
    drained.drain_and_stop();
    assert!(matches!(
        drained.try_tell(Msg(0, 9)),
        Err(SendError::Closed(_))
    ));
    assert_eq!(drained.wait().await, StopReason::Normal);
    assert_eq!(seen.lock().unwrap().len(), 5);
    assert_eq!(system.dead_letters().total(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn ask_deadline_passes_and_the_queued_message_is_cancelled() {
    let system = System::new();
    let rec = system
        .spawn_with(Recorder::default(), opts(4, Overflow::Wait))
        .unwrap();
    // The handler takes 10 s: a 1 s ask times out.
    let r = rec.ask(Sleep(Duration::from_secs(10)), SEC).await;
    assert!(matches!(r, Err(AskError::Timeout(None))));
    // Queued behind a blocked handler, an ask whose deadline passes is never handled.
    let rec = system
        .spawn_with(Recorder::default(), opts(4, Overflow::Wait))
        .unwrap();
    let gate = block(&rec).await;
    let r = rec.ask(Sleep(Duration::ZERO), SEC).await;
    assert!(matches!(r, Err(AskError::Timeout(None))));
    gate.notify_one();
    assert!(rec.ask(Seen, SEC).await.is_ok());
    assert_eq!(system.dead_letters().count(DeadLetterReason::Cancelled), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropped_ask_future_cancels_the_message_and_timeout_waiting_for_room_returns_it() {
    let system = System::new();
    let rec = system
        .spawn_with(Recorder::default(), opts(1, Overflow::Wait))
        .unwrap();
    let gate = block(&rec).await;
    {
        let ask = rec.ask(Sleep(Duration::ZERO), SEC);
        let _ = tokio::time::timeout(Duration::from_millis(1), ask).await; // dropped
    }
    // The mailbox is full (the abandoned ask): a new ask times out waiting for room and
    // gets its message back.
    match rec.ask(Msg(1, 1), SEC).await {
        Err(AskError::Timeout(Some(Msg(1, 1)))) => {}
        other => panic!("expected Timeout(Some(msg)), got {other:?}"),
    }
    gate.notify_one();
    drained(&rec).await;
    assert!(rec.ask(Seen, SEC).await.unwrap().is_empty());
    assert_eq!(system.dead_letters().count(DeadLetterReason::Cancelled), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn asking_yourself_fails_at_once() {
    let system = System::new();
    let rec = system.spawn(Recorder::default()).unwrap();
    assert!(rec.ask(AskSelf, SEC).await.unwrap());
}

#[tokio::test(flavor = "current_thread")]
async fn a_panicking_handler_stops_the_actor_and_the_asker_gets_no_reply() {
    let system = System::new();
    let rec = Recorder::default();
    let events = rec.events.clone();
    let rec = system.spawn(rec).unwrap();
    assert!(matches!(rec.ask(Boom, SEC).await, Err(AskError::NoReply)));
    assert_eq!(rec.wait().await, StopReason::Panicked("boom".into()));
    assert_eq!(rec.metrics().panics, 1);
    assert_eq!(*events.lock().unwrap(), ["started", "stopping", "stopped"]);
    assert!(matches!(
        rec.ask(Seen, SEC).await,
        Err(AskError::Closed(Seen))
    ));
}

struct FailsToStart;
impl Actor for FailsToStart {
    async fn started(&mut self, _: &mut Context<Self>) -> Result<(), BoxError> {
        Err("no database".into())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_failing_started_hook_stops_the_actor() {
    let a = System::new().spawn(FailsToStart).unwrap();
    assert_eq!(a.wait().await, StopReason::Failed("no database".into()));
}

#[tokio::test(flavor = "current_thread")]
async fn zero_capacity_is_rejected() {
    let err = System::new()
        .spawn_with(Recorder::default(), SpawnOptions::new().capacity(0))
        .unwrap_err();
    assert_eq!(err, weft_actor::Error::ZeroCapacity);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn metrics_count_handled_messages_and_latency() {
    let system = System::new();
    let rec = system.spawn(Recorder::default()).unwrap();
    rec.ask(Sleep(Duration::from_millis(30)), SEC)
        .await
        .unwrap();
    rec.ask(Sleep(Duration::from_millis(10)), SEC)
        .await
        .unwrap();
    let m = rec.metrics();
    assert_eq!(m.handled, 2);
    assert_eq!(m.latency_max, Duration::from_millis(30));
    assert_eq!(m.latency_mean(), Duration::from_millis(20));
    assert_eq!(m.mailbox_capacity, 64);
}

#[tokio::test(flavor = "current_thread")]
async fn recipient_erases_the_actor_type() {
    let system = System::new();
    let rec = system.spawn(Recorder::default()).unwrap();
    let r = rec.recipient::<Msg>();
    r.tell(Msg(5, 5)).await.unwrap();
    r.try_tell(Msg(5, 6)).unwrap();
    assert_eq!(r.id(), rec.id());
    assert_eq!(rec.ask(Seen, SEC).await.unwrap(), vec![(5, 5), (5, 6)]);
}

/// Tells itself until its own mailbox is full: must get `Full` back, not hang.
struct Flood;
impl Actor for Flood {}
struct Go;
impl Handler<Go> for Flood {
    type Reply = usize;
    async fn handle(&mut self, _: Go, ctx: &mut Context<Self>) -> usize {
        let me = ctx.myself().clone();
        let mut queued = 0;
        while me.tell(Msg(0, 0)).await.is_ok() {
            queued += 1;
        }
        queued
    }
}
impl Handler<Msg> for Flood {
    type Reply = ();
    async fn handle(&mut self, _: Msg, _: &mut Context<Self>) {}
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn telling_yourself_into_a_full_mailbox_fails_instead_of_deadlocking() {
    let system = System::new();
    let flood = system.spawn_with(Flood, opts(3, Overflow::Wait)).unwrap();
    assert_eq!(flood.ask(Go, SEC).await.unwrap(), 3);
}

#[test]
fn spawning_outside_a_runtime_is_an_error() {
    let err = System::new().spawn(Recorder::default()).unwrap_err();
    assert_eq!(err, weft_actor::Error::NoRuntime);
}
