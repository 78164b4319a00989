//! The shared part of a running actor (mailbox, counters, watchers) and its task's loop.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use tokio::sync::{oneshot, watch};
use tracing::Instrument;
use weft_sync::Mutex;
use weft_sync::atomic::{AtomicU64, Ordering};

use crate::actor::{Actor, ActorId, Context, Handler, StopReason, Terminated};
use crate::actor_ref::ActorRef;
use crate::dead_letter::DeadLetterReason;
use crate::mailbox::{Item, Mailbox};
use crate::system::System;

/// A boxed, sendable future borrowing for `'a`.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

tokio::task_local! {
    /// The address of the cell of the actor whose task is running (self-ask detection).
    pub(crate) static CURRENT_ACTOR: usize;
}

/// Priority-lane signals.
#[derive(Debug)]
pub(crate) enum Signal {
    /// Stop after the current message; queued messages go to the dead letters.
    Stop,
    /// Stop at once, skipping `stopping`.
    Kill,
    /// Stop for shutdown: `None` from the system (always applies), `Some(n)` from a
    /// supervisor for incarnation `n` only (a later incarnation ignores a stale one).
    Shutdown(Option<u64>),
    /// A watched actor terminated.
    Terminated(Terminated),
    /// A linked actor terminated.
    LinkDied(Terminated),
}

/// A queued user message of some type the actor handles.
pub(crate) trait Envelope<A: Actor>: Send {
    /// Runs the handler and sends the reply, if anyone asked.
    fn handle<'a>(self: Box<Self>, actor: &'a mut A, ctx: &'a mut Context<A>) -> BoxFuture<'a, ()>;
    /// The message's type name, for dead letters and tracing.
    fn type_name(&self) -> &'static str;
    /// Whether an asker gave up waiting (dropped its future or its deadline passed).
    fn is_cancelled(&self) -> bool;
    /// The user's message, for the dead-letter sink.
    fn into_message(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// A message and the channel its reply goes to.
pub(crate) struct MessageEnvelope<M, R> {
    pub(crate) msg: M,
    pub(crate) reply: Option<oneshot::Sender<R>>,
}

impl<A, M> Envelope<A> for MessageEnvelope<M, <A as Handler<M>>::Reply>
where
    A: Handler<M>,
    M: Send + 'static,
{
    fn handle<'a>(self: Box<Self>, actor: &'a mut A, ctx: &'a mut Context<A>) -> BoxFuture<'a, ()> {
        let MessageEnvelope { msg, reply } = *self;
        Box::pin(async move {
            let out = actor.handle(msg, ctx).await;
            if let Some(reply) = reply {
                let _ = reply.send(out); // the asker may have gone: nothing to do
            }
        })
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<M>()
    }

    fn is_cancelled(&self) -> bool {
        self.reply.as_ref().is_some_and(|r| r.is_closed())
    }

    fn into_message(self: Box<Self>) -> Box<dyn Any + Send> {
        Box::new(self.msg)
    }
}

/// The mailbox type of an actor.
pub(crate) type ActorMailbox<A> = Mailbox<Box<dyn Envelope<A>>, Signal>;

/// How a watcher is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchKind {
    /// Gets `Terminated`.
    Monitor,
    /// Gets `LinkDied` (stops on an abnormal reason).
    Link,
}

/// Something signals can be sent to, whatever its actor type.
pub(crate) trait SignalSink: Send + Sync {
    /// Queues a signal; false if the target is gone.
    fn signal(&self, signal: Signal) -> bool;
}

/// Watchers and the final outcome, under one lock so watch-vs-terminate cannot race.
#[derive(Default)]
pub(crate) struct Watch {
    pub(crate) terminated: Option<Terminated>,
    pub(crate) watchers: Vec<(WatchKind, Arc<dyn SignalSink>)>,
}

/// Per-actor counters.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) handled: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) dead_letters: AtomicU64,
    pub(crate) latency_total_ns: AtomicU64,
    pub(crate) latency_max_ns: AtomicU64,
}

impl Counters {
    fn new() -> Self {
        Counters {
            handled: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            latency_total_ns: AtomicU64::new(0),
            latency_max_ns: AtomicU64::new(0),
        }
    }
}

/// Everything an `ActorRef<A>` points to.
pub(crate) struct Inner<A: Actor> {
    pub(crate) id: ActorId,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) system: System,
    pub(crate) mailbox: ActorMailbox<A>,
    pub(crate) counters: Counters,
    pub(crate) watch: Mutex<Watch>,
    pub(crate) done: watch::Sender<Option<StopReason>>,
}

impl<A: Actor> Inner<A> {
    pub(crate) fn new(
        id: ActorId,
        name: Option<Arc<str>>,
        system: System,
        mailbox: ActorMailbox<A>,
    ) -> Self {
        Inner {
            id,
            name,
            system,
            mailbox,
            counters: Counters::new(),
            watch: Mutex::new(Watch::default()),
            done: watch::channel(None).0,
        }
    }

    /// Sends an envelope that will not be handled to the dead-letter sink.
    pub(crate) fn dead_letter(&self, env: Box<dyn Envelope<A>>, reason: DeadLetterReason) {
        // Relaxed: a statistic, read for reporting only.
        self.counters.dead_letters.fetch_add(1, Ordering::Relaxed);
        let message_type = env.type_name();
        self.system.dead_letters().deliver(
            self.id,
            self.name.clone(),
            message_type,
            reason,
            env.into_message(),
        );
    }
}

impl<A: Actor> SignalSink for Inner<A> {
    fn signal(&self, signal: Signal) -> bool {
        self.mailbox.push_signal(signal).is_ok()
    }
}

/// Runs `fut`, turning a panic while polling it into `Err(message)`.
pub(crate) async fn catch<T>(mut fut: BoxFuture<'_, T>) -> Result<T, String> {
    poll_fn(
        |cx| match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(weft_sync::thread::panic_message(payload.as_ref()))),
        },
    )
    .await
}

/// Runs one incarnation of an actor on its mailbox until it stops; returns why.
/// The mailbox stays open (a supervisor may start the next incarnation on it).
pub(crate) async fn run_instance<A: Actor>(
    actor: &mut A,
    myself: &ActorRef<A>,
    incarnation: u64,
) -> StopReason {
    let inner = &myself.inner;
    let mut ctx = Context::new(myself.clone());
    let span = tracing::debug_span!("actor", id = inner.id.0, name = inner.name.as_deref());
    let mut killed = false;
    // The end of the last handler, while the mailbox has not run dry since.
    let mut handoff: Option<Instant> = None;
    let reason = match catch(Box::pin(actor.started(&mut ctx)))
        .instrument(span.clone())
        .await
    {
        Err(panic) => Some(StopReason::Panicked(panic)),
        Ok(Err(e)) => Some(StopReason::Failed(e.to_string())),
        Ok(Ok(())) => ctx.stop.take(),
    };
    let reason = match reason {
        Some(r) => r,
        None => loop {
            // While messages are queued back to back, the end of one handler is the
            // start of the next (plus one pop): one clock read per message instead of
            // two. After a wait, the clock is read afresh.
            let last_end = handoff.take();
            let mut waited = false;
            let received = poll_fn(|cx| {
                let p = inner.mailbox.poll_recv(cx);
                waited |= p.is_pending();
                p
            })
            .await;
            let Some(item) = received else {
                break StopReason::Normal; // closed and drained
            };
            let start_hint = if waited { None } else { last_end };
            match item {
                Item::Signal(Signal::Stop) => break StopReason::Normal,
                Item::Signal(Signal::Kill) => {
                    killed = true;
                    break StopReason::Killed;
                }
                Item::Signal(Signal::Shutdown(n)) => {
                    if n.is_none_or(|n| n == incarnation) {
                        break StopReason::Shutdown;
                    }
                }
                Item::Signal(Signal::LinkDied(t)) if t.reason.is_abnormal() => {
                    break StopReason::Linked(t.id);
                }
                Item::Signal(Signal::Terminated(t) | Signal::LinkDied(t)) => {
                    if let Err(panic) = catch(Box::pin(actor.terminated(&mut ctx, t))).await {
                        break StopReason::Panicked(panic);
                    }
                }
                Item::Message(env) => {
                    if env.is_cancelled() {
                        inner.dead_letter(env, DeadLetterReason::Cancelled);
                        continue;
                    }
                    let start = start_hint.unwrap_or_else(|| inner.system.clock().now());
                    let msg_span = tracing::trace_span!(
                        parent: &span,
                        "message",
                        message = env.type_name()
                    );
                    let outcome = catch(env.handle(actor, &mut ctx))
                        .instrument(msg_span)
                        .await;
                    let end = inner.system.clock().now();
                    record_latency(inner, start, end);
                    handoff = Some(end);
                    if let Err(panic) = outcome {
                        inner.counters.panics.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(actor = %inner.id, panic = %panic, "handler panicked");
                        break StopReason::Panicked(panic);
                    }
                }
            }
            if let Some(r) = ctx.stop.take() {
                break r;
            }
        },
    };
    if !killed && catch(Box::pin(actor.stopping(&mut ctx))).await.is_err() {
        tracing::warn!(actor = %inner.id, "`stopping` panicked");
    }
    if catch(Box::pin(actor.stopped(&mut ctx, &reason)))
        .await
        .is_err()
    {
        tracing::warn!(actor = %inner.id, "`stopped` panicked");
    }
    tracing::debug!(actor = %inner.id, reason = %reason, "actor stopped");
    reason
}

fn record_latency<A: Actor>(inner: &Inner<A>, start: Instant, end: Instant) {
    let ns = u64::try_from(end.saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX);
    // Relaxed: statistics, read for reporting only; no other memory depends on them.
    inner.counters.handled.fetch_add(1, Ordering::Relaxed);
    inner
        .counters
        .latency_total_ns
        .fetch_add(ns, Ordering::Relaxed);
    // A read first: the maximum rarely moves, and a plain load costs less than the
    // locked read-modify-write `fetch_max` is on x86.
    let max = &inner.counters.latency_max_ns;
    if ns > max.load(Ordering::Relaxed) {
        max.fetch_max(ns, Ordering::Relaxed);
    }
}

/// Ends an actor for good: the mailbox refuses everything, what it held goes to the dead
/// letters, watchers and links are told, and `wait` returns.
pub(crate) fn finalize<A: Actor>(myself: &ActorRef<A>, reason: StopReason) {
    let inner = &myself.inner;
    let terminated = Terminated {
        id: inner.id,
        name: inner.name.clone(),
        reason: reason.clone(),
    };
    let watchers = {
        let mut w = inner.watch.lock();
        if w.terminated.is_some() {
            return; // already finalized (an abort raced the task's own end)
        }
        w.terminated = Some(terminated.clone());
        std::mem::take(&mut w.watchers)
    };
    let (messages, _signals) = inner.mailbox.terminate();
    for env in messages {
        inner.dead_letter(env, DeadLetterReason::Stopped);
    }
    for (kind, sink) in watchers {
        let signal = match kind {
            WatchKind::Monitor => Signal::Terminated(terminated.clone()),
            WatchKind::Link => Signal::LinkDied(terminated.clone()),
        };
        sink.signal(signal);
    }
    inner.system.forget(inner.id);
    inner.done.send_replace(Some(reason));
}

/// Waits until `done` holds the final reason and returns it.
pub(crate) async fn wait_done(done: &watch::Sender<Option<StopReason>>) -> StopReason {
    let mut rx = done.subscribe();
    match rx.wait_for(Option::is_some).await {
        Ok(r) => r.clone().unwrap_or(StopReason::Normal),
        // The sender is borrowed from its owner, so it cannot be dropped meanwhile.
        Err(_) => StopReason::Normal,
    }
}

/// Spawns the task of an unsupervised actor.
pub(crate) fn spawn_task<A: Actor>(
    mut actor: A,
    myself: ActorRef<A>,
) -> tokio::task::JoinHandle<()> {
    let addr = myself.addr();
    tokio::spawn(CURRENT_ACTOR.scope(addr, async move {
        let reason = run_instance(&mut actor, &myself, 0).await;
        drop(actor);
        finalize(&myself, reason);
    }))
}
