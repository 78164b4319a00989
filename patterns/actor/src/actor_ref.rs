//! `ActorRef<A>`: the typed, cloneable handle; `Recipient<M, R>`: the type-erased one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::actor::{Actor, ActorId, Handler, StopReason};
use crate::cell::{
    BoxFuture, CURRENT_ACTOR, Envelope, Inner, MessageEnvelope, Signal, SignalSink, WatchKind,
    wait_done,
};
use crate::dead_letter::DeadLetterReason;
use crate::error::{AskError, SendError};
use crate::mailbox::{Overflow, PushError, Pushed, still_yielding};
use crate::system::System;

/// A cloneable handle to a running actor of type `A`: send it messages, ask it
/// questions, stop it, watch its metrics.
///
/// Dropping every `ActorRef` does not stop the actor; stop it with
/// [`stop`](ActorRef::stop), [`kill`](ActorRef::kill), [`drain_and_stop`](ActorRef::drain_and_stop)
/// or [`System::shutdown`].
pub struct ActorRef<A: Actor> {
    pub(crate) inner: Arc<Inner<A>>,
}

impl<A: Actor> Clone for ActorRef<A> {
    fn clone(&self) -> Self {
        ActorRef {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<A: Actor> fmt::Debug for ActorRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorRef")
            .field("id", &self.inner.id)
            .field("name", &self.inner.name)
            .finish()
    }
}

impl<A: Actor> PartialEq for ActorRef<A> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<A: Actor> Eq for ActorRef<A> {}

/// Snapshot of an actor's counters ([`ActorRef::metrics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ActorMetrics {
    /// User messages queued now.
    pub mailbox_len: usize,
    /// The mailbox's capacity.
    pub mailbox_capacity: usize,
    /// Messages handled (including ones whose handler panicked).
    pub handled: u64,
    /// Handlers that panicked.
    pub panics: u64,
    /// Times a supervisor restarted the actor.
    pub restarts: u64,
    /// Messages of this actor sent to the dead-letter sink.
    pub dead_letters: u64,
    /// Sum of handler latencies. A latency runs from the handler's start to its end;
    /// when the message was already queued as the previous handler ended, it runs from
    /// that end (so it includes taking the message from the mailbox, tens of
    /// nanoseconds, and saves a clock read per message).
    pub latency_total: Duration,
    /// Longest handler latency.
    pub latency_max: Duration,
}

impl ActorMetrics {
    /// Mean handler latency (zero before the first message).
    ///
    /// ```
    /// let m = weft_actor::ActorMetrics::default();
    /// assert_eq!(m.latency_mean(), std::time::Duration::ZERO);
    /// ```
    pub fn latency_mean(&self) -> Duration {
        match u32::try_from(self.handled) {
            Ok(0) => Duration::ZERO,
            Ok(n) => self.latency_total / n,
            Err(_) => Duration::from_nanos(
                u64::try_from(self.latency_total.as_nanos() / u128::from(self.handled))
                    .unwrap_or(u64::MAX),
            ),
        }
    }
}

impl<A: Actor> ActorRef<A> {
    pub(crate) fn from_inner(inner: Arc<Inner<A>>) -> Self {
        ActorRef { inner }
    }

    /// The address used for self-ask detection.
    pub(crate) fn addr(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }

    /// Whether this code runs on this actor's own task.
    fn is_current(&self) -> bool {
        CURRENT_ACTOR
            .try_with(|addr| *addr == self.addr())
            .unwrap_or(false)
    }

    pub(crate) fn sink(&self) -> Arc<dyn SignalSink> {
        self.inner.clone()
    }

    pub(crate) fn signal(&self, signal: Signal) -> bool {
        self.inner.mailbox.push_signal(signal).is_ok()
    }

    pub(crate) fn add_watcher(&self, kind: WatchKind, sink: Arc<dyn SignalSink>) {
        let mut w = self.inner.watch.lock();
        if let Some(t) = &w.terminated {
            let t = t.clone();
            drop(w);
            sink.signal(match kind {
                WatchKind::Monitor => Signal::Terminated(t),
                WatchKind::Link => Signal::LinkDied(t),
            });
        } else {
            w.watchers.push((kind, sink));
        }
    }

    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.inner.id
    }

    /// The name it was spawned with, if any.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// The system the actor runs in.
    pub fn system(&self) -> &System {
        &self.inner.system
    }

    /// Whether the actor has not terminated for good yet.
    pub fn is_alive(&self) -> bool {
        self.inner.done.borrow().is_none()
    }

    /// Sends `msg`. Under [`Overflow::Wait`] this waits while the mailbox is full
    /// (backpressure); under the other policies it never waits. Messages from one
    /// sender are handled in the order sent. An actor telling itself never waits (it
    /// would wait for itself): a full mailbox returns [`SendError::Full`].
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] if the actor stopped, [`SendError::Full`] under
    /// [`Overflow::Fail`]; the message comes back in both. Under `DropOldest` and
    /// `DropNewest` a full mailbox is not an error: the dropped message goes to the
    /// dead-letter sink.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use weft_actor::{Actor, Context, Handler, System};
    /// struct Log(Vec<String>);
    /// impl Actor for Log {}
    /// impl Handler<String> for Log {
    ///     type Reply = usize;
    ///     async fn handle(&mut self, line: String, _: &mut Context<Self>) -> usize {
    ///         self.0.push(line);
    ///         self.0.len()
    ///     }
    /// }
    /// let system = System::new();
    /// let log = system.spawn(Log(Vec::new())).unwrap();
    /// log.tell("a".to_owned()).await.unwrap();
    /// log.tell("b".to_owned()).await.unwrap();
    /// let n = log.ask("c".to_owned(), std::time::Duration::from_secs(1)).await.unwrap();
    /// assert_eq!(n, 3);
    /// # }
    /// ```
    pub async fn tell<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
        M: Send + 'static,
    {
        let env: Box<dyn Envelope<A>> =
            Box::new(MessageEnvelope::<M, A::Reply> { msg, reply: None });
        // An actor telling itself never waits: it would wait for itself to make room.
        let res = if self.inner.mailbox.overflow() == Overflow::Wait && !self.is_current() {
            self.inner.mailbox.push_wait(&mut Some(env)).await
        } else {
            self.inner.mailbox.try_push(env)
        };
        self.settle(res).map_err(send_error)
    }

    /// Sends `msg` without waiting: like [`tell`](ActorRef::tell), but a full mailbox
    /// under [`Overflow::Wait`] returns [`SendError::Full`] with the message.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use weft_actor::{Actor, Context, Handler, SendError, SpawnOptions, System};
    /// struct Sink;
    /// impl Actor for Sink {}
    /// impl Handler<u32> for Sink {
    ///     type Reply = ();
    ///     async fn handle(&mut self, _: u32, _: &mut Context<Self>) {}
    /// }
    /// let system = System::new();
    /// let sink = system.spawn_with(Sink, SpawnOptions::new().capacity(1)).unwrap();
    /// sink.try_tell(1).unwrap(); // fills the mailbox (the actor has not run yet)
    /// match sink.try_tell(2) {
    ///     Err(SendError::Full(m)) => assert_eq!(m, 2), // handed back
    ///     other => panic!("{other:?}"),
    /// }
    /// # }
    /// ```
    pub fn try_tell<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
        M: Send + 'static,
    {
        let env: Box<dyn Envelope<A>> =
            Box::new(MessageEnvelope::<M, A::Reply> { msg, reply: None });
        let res = self.inner.mailbox.try_push(env);
        self.settle(res).map_err(send_error)
    }

    /// Sends the evicted or rejected message of a push to the dead letters.
    fn settle(&self, res: PushResult<A>) -> Result<(), PushError<Box<dyn Envelope<A>>>> {
        match res? {
            Pushed::Queued => {}
            Pushed::Evicted(old) => self.inner.dead_letter(old, DeadLetterReason::DropOldest),
            Pushed::Rejected(new) => self.inner.dead_letter(new, DeadLetterReason::DropNewest),
        }
        Ok(())
    }

    /// Sends `msg` and waits for the reply, for at most `timeout` (waiting for mailbox
    /// capacity included). See [`ask_until`](ActorRef::ask_until).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use weft_actor::{Actor, AskError, Context, Handler, System};
    /// struct Slow;
    /// impl Actor for Slow {}
    /// impl Handler<Duration> for Slow {
    ///     type Reply = &'static str;
    ///     async fn handle(&mut self, d: Duration, _: &mut Context<Self>) -> &'static str {
    ///         tokio::time::sleep(d).await;
    ///         "done"
    ///     }
    /// }
    /// let system = System::new();
    /// let slow = system.spawn(Slow).unwrap();
    /// let quick = slow.ask(Duration::from_millis(10), Duration::from_secs(1)).await;
    /// assert_eq!(quick.unwrap(), "done");
    /// let late = slow.ask(Duration::from_secs(5), Duration::from_secs(1)).await;
    /// assert!(matches!(late, Err(AskError::Timeout(None))));
    /// # }
    /// ```
    pub async fn ask<M>(&self, msg: M, timeout: Duration) -> Result<A::Reply, AskError<M>>
    where
        A: Handler<M>,
        M: Send + 'static,
    {
        self.ask_until(msg, Instant::now() + timeout).await
    }

    /// Sends `msg` and waits for the reply until `deadline` (tokio time, so
    /// `tokio::time::pause` drives it).
    ///
    /// Cancellation is clean: if the deadline passes, or the caller drops this future,
    /// while the message is still queued, the actor does not handle it (it goes to the
    /// dead letters as [`DeadLetterReason::Cancelled`]); if it passes while waiting for
    /// mailbox capacity, the message comes back in [`AskError::Timeout`].
    ///
    /// While it waits for the reply, the caller first stays runnable for up to 20 µs (it
    /// yields), so a quick reply does not have to wake it; then it parks.
    ///
    /// # Errors
    ///
    /// [`AskError::SelfAsk`] at once when an actor asks itself from its own task;
    /// `Closed`, `Full` (policy `Fail`), `Timeout`, or `NoReply` (see [`AskError`]).
    pub async fn ask_until<M>(&self, msg: M, deadline: Instant) -> Result<A::Reply, AskError<M>>
    where
        A: Handler<M>,
        M: Send + 'static,
    {
        if CURRENT_ACTOR
            .try_with(|addr| *addr == self.addr())
            .unwrap_or(false)
        {
            return Err(AskError::SelfAsk(msg));
        }
        let (tx, rx) = oneshot::channel();
        let env: Box<dyn Envelope<A>> = Box::new(MessageEnvelope::<M, A::Reply> {
            msg,
            reply: Some(tx),
        });
        let res = if self.inner.mailbox.overflow() == Overflow::Wait {
            let mut slot = Some(env);
            let pushed =
                tokio::time::timeout_at(deadline, self.inner.mailbox.push_wait(&mut slot)).await;
            match pushed {
                Ok(res) => res,
                Err(_) => return Err(AskError::Timeout(slot.map(unwrap_msg))),
            }
        } else {
            self.inner.mailbox.try_push(env)
        };
        if let Err(e) = self.settle(res) {
            return Err(match e {
                PushError::Full(env) => AskError::Full(unwrap_msg(env)),
                PushError::Closed(env) => AskError::Closed(unwrap_msg(env)),
            });
        }
        match tokio::time::timeout_at(deadline, reply(rx)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(AskError::NoReply),
            Err(_) => Err(AskError::Timeout(None)),
        }
    }

    /// Stops the actor after the message it is handling: the stop overtakes queued
    /// messages (they go to the dead letters). Returns false if it already stopped.
    pub fn stop(&self) -> bool {
        self.signal(Signal::Stop)
    }

    /// Stops the actor at once, skipping its `stopping` hook; reason
    /// [`StopReason::Killed`]. Returns false if it already stopped.
    pub fn kill(&self) -> bool {
        self.signal(Signal::Kill)
    }

    /// Closes the mailbox to new messages and stops once the queued ones are handled.
    pub fn drain_and_stop(&self) {
        self.inner.mailbox.close();
    }

    /// Waits until the actor terminated for good and returns why.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use weft_actor::{Actor, StopReason, System};
    /// struct Idle;
    /// impl Actor for Idle {}
    /// let idle = System::new().spawn(Idle).unwrap();
    /// idle.stop();
    /// assert_eq!(idle.wait().await, StopReason::Normal);
    /// assert!(!idle.is_alive());
    /// # }
    /// ```
    pub async fn wait(&self) -> StopReason {
        wait_done(&self.inner.done).await
    }

    /// A snapshot of the actor's counters.
    pub fn metrics(&self) -> ActorMetrics {
        let c = &self.inner.counters;
        // Relaxed: independent statistics; a snapshot need not be atomic as a whole.
        ActorMetrics {
            mailbox_len: self.inner.mailbox.len(),
            mailbox_capacity: self.inner.mailbox.capacity(),
            handled: c.handled.load(std::sync::atomic::Ordering::Relaxed),
            panics: c.panics.load(std::sync::atomic::Ordering::Relaxed),
            restarts: c.restarts.load(std::sync::atomic::Ordering::Relaxed),
            dead_letters: c.dead_letters.load(std::sync::atomic::Ordering::Relaxed),
            latency_total: Duration::from_nanos(
                c.latency_total_ns
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
            latency_max: Duration::from_nanos(
                c.latency_max_ns.load(std::sync::atomic::Ordering::Relaxed),
            ),
        }
    }

    /// A type-erased handle accepting `M` (and replying `A::Reply`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use weft_actor::{Actor, Context, Handler, Recipient, System};
    /// struct Doubler;
    /// impl Actor for Doubler {}
    /// impl Handler<u32> for Doubler {
    ///     type Reply = u32;
    ///     async fn handle(&mut self, n: u32, _: &mut Context<Self>) -> u32 { n * 2 }
    /// }
    /// let r: Recipient<u32, u32> = System::new().spawn(Doubler).unwrap().recipient();
    /// assert_eq!(r.ask(21, std::time::Duration::from_secs(1)).await.unwrap(), 42);
    /// # }
    /// ```
    pub fn recipient<M>(&self) -> Recipient<M, A::Reply>
    where
        A: Handler<M>,
        M: Send + 'static,
    {
        Recipient {
            inner: Arc::new(self.clone()),
        }
    }
}

/// A failed push as the sender's error, with its message.
fn send_error<A: Actor, M: 'static>(e: PushError<Box<dyn Envelope<A>>>) -> SendError<M> {
    match e {
        PushError::Full(env) => SendError::Full(unwrap_msg(env)),
        PushError::Closed(env) => SendError::Closed(unwrap_msg(env)),
    }
}

/// The outcome of pushing an envelope.
type PushResult<A> = Result<Pushed<Box<dyn Envelope<A>>>, PushError<Box<dyn Envelope<A>>>>;

/// Takes the user's message back out of an envelope we built moments ago.
fn unwrap_msg<A: Actor, M: 'static>(env: Box<dyn Envelope<A>>) -> M {
    match env.into_message().downcast::<M>() {
        Ok(m) => *m,
        // Every envelope passed here was built from an `M` by the caller.
        Err(_) => unreachable!("envelope holds a message of another type"),
    }
}

/// The object-safe side of an `ActorRef<A>` seen as a receiver of `M`.
trait ErasedRef<M, R>: Send + Sync {
    fn tell(&self, msg: M) -> BoxFuture<'_, Result<(), SendError<M>>>;
    fn try_tell(&self, msg: M) -> Result<(), SendError<M>>;
    fn ask(&self, msg: M, deadline: Instant) -> BoxFuture<'_, Result<R, AskError<M>>>;
    fn id(&self) -> ActorId;
    fn metrics(&self) -> ActorMetrics;
    fn stop(&self) -> bool;
    fn wait(&self) -> BoxFuture<'_, StopReason>;
}

impl<A, M> ErasedRef<M, A::Reply> for ActorRef<A>
where
    A: Handler<M>,
    M: Send + 'static,
{
    fn tell(&self, msg: M) -> BoxFuture<'_, Result<(), SendError<M>>> {
        Box::pin(ActorRef::tell(self, msg))
    }
    fn try_tell(&self, msg: M) -> Result<(), SendError<M>> {
        ActorRef::try_tell(self, msg)
    }
    fn ask(&self, msg: M, deadline: Instant) -> BoxFuture<'_, Result<A::Reply, AskError<M>>> {
        Box::pin(ActorRef::ask_until(self, msg, deadline))
    }
    fn id(&self) -> ActorId {
        ActorRef::id(self)
    }
    fn metrics(&self) -> ActorMetrics {
        ActorRef::metrics(self)
    }
    fn stop(&self) -> bool {
        ActorRef::stop(self)
    }
    fn wait(&self) -> BoxFuture<'_, StopReason> {
        Box::pin(ActorRef::wait(self))
    }
}

/// Waits for an ask's reply, yielding (staying runnable) for up to `ROOM_WAIT` before
/// letting the caller park: a short handler's reply then arrives without a wake-up of the
/// caller, which on a machine with no idle core would queue it for a CPU behind a
/// worker (the reasoning of the mailbox's `ROOM_WAIT`). Real time, not the system's
/// `Clock`: it bounds CPU spent and decides no outcome.
async fn reply<T>(mut rx: oneshot::Receiver<T>) -> Result<T, oneshot::error::RecvError> {
    let start = std::time::Instant::now();
    std::future::poll_fn(|cx| {
        let polled = std::pin::Pin::new(&mut rx).poll(cx);
        if polled.is_pending() && still_yielding(start) {
            cx.waker().wake_by_ref();
        }
        polled
    })
    .await
}

/// A handle to some actor that accepts `M` and replies `R`, whatever its type: lists
/// of heterogeneous subscribers, routers, process groups.
pub struct Recipient<M, R = ()> {
    inner: Arc<dyn ErasedRef<M, R>>,
}

impl<M, R> Clone for Recipient<M, R> {
    fn clone(&self) -> Self {
        Recipient {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<M, R> fmt::Debug for Recipient<M, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipient")
            .field("id", &self.inner.id())
            .finish()
    }
}

impl<M: Send + 'static, R: Send + 'static> Recipient<M, R> {
    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.inner.id()
    }

    /// Like [`ActorRef::tell`].
    ///
    /// # Errors
    ///
    /// As [`ActorRef::tell`].
    pub async fn tell(&self, msg: M) -> Result<(), SendError<M>> {
        self.inner.tell(msg).await
    }

    /// Like [`ActorRef::try_tell`].
    ///
    /// # Errors
    ///
    /// As [`ActorRef::try_tell`].
    pub fn try_tell(&self, msg: M) -> Result<(), SendError<M>> {
        self.inner.try_tell(msg)
    }

    /// Like [`ActorRef::ask`].
    ///
    /// # Errors
    ///
    /// As [`ActorRef::ask_until`].
    pub async fn ask(&self, msg: M, timeout: Duration) -> Result<R, AskError<M>> {
        self.inner.ask(msg, Instant::now() + timeout).await
    }

    /// Like [`ActorRef::ask_until`].
    ///
    /// # Errors
    ///
    /// As [`ActorRef::ask_until`].
    pub async fn ask_until(&self, msg: M, deadline: Instant) -> Result<R, AskError<M>> {
        self.inner.ask(msg, deadline).await
    }

    /// Like [`ActorRef::metrics`].
    pub fn metrics(&self) -> ActorMetrics {
        self.inner.metrics()
    }

    /// Like [`ActorRef::stop`].
    pub fn stop(&self) -> bool {
        self.inner.stop()
    }

    /// Like [`ActorRef::wait`].
    pub async fn wait(&self) -> StopReason {
        self.inner.wait().await
    }
}
