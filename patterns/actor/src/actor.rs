//! The `Actor` and `Handler` traits, the per-instance `Context`, and why actors stop.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::actor_ref::ActorRef;
use crate::system::System;

/// A boxed error, as returned by [`Actor::started`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A state machine that owns its state and handles one message at a time on its own
/// tokio task.
///
/// Implement [`Handler<M>`] once per message type it accepts. Every hook has a default
/// that does nothing.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use weft_actor::{Actor, BoxError, Context, Handler, System};
///
/// #[derive(Default)]
/// struct Counter(u64);
///
/// impl Actor for Counter {
///     async fn started(&mut self, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
///         self.0 = 100; // e.g. load state
///         Ok(())
///     }
/// }
///
/// struct Add(u64);
///
/// impl Handler<Add> for Counter {
///     type Reply = u64;
///     async fn handle(&mut self, msg: Add, _ctx: &mut Context<Self>) -> u64 {
///         self.0 += msg.0;
///         self.0
///     }
/// }
///
/// let counter = System::new().spawn(Counter::default()).unwrap();
/// assert_eq!(counter.ask(Add(1), Duration::from_secs(1)).await.unwrap(), 101);
/// # }
/// ```
pub trait Actor: Sized + Send + 'static {
    /// Runs once before the first message. An error (or panic) stops the actor with
    /// [`StopReason::Failed`] (or [`StopReason::Panicked`]), a failure for supervision.
    fn started(
        &mut self,
        _ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }

    /// Runs when the actor is about to stop (not after [`ActorRef::kill`]).
    fn stopping(&mut self, _ctx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Runs last, with the reason the actor stopped.
    fn stopped(
        &mut self,
        _ctx: &mut Context<Self>,
        _reason: &StopReason,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A watched actor ([`Context::watch`]) terminated. Links deliver this too when
    /// the linked actor stopped normally; an abnormal stop of a linked actor stops this
    /// one with [`StopReason::Linked`] instead.
    fn terminated(
        &mut self,
        _ctx: &mut Context<Self>,
        _terminated: Terminated,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Handling of one message type `M`, with its reply type.
///
/// A panic in `handle` is caught and stops the actor with [`StopReason::Panicked`]; an
/// `ask` waiting on that message gets [`AskError::NoReply`](crate::AskError::NoReply).
pub trait Handler<M: Send + 'static>: Actor {
    /// What an [`ask`](ActorRef::ask) of `M` returns (`()` for fire-and-forget messages).
    type Reply: Send + 'static;

    /// Handles one message.
    fn handle(
        &mut self,
        msg: M,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Self::Reply> + Send;
}

/// An actor's identity, unique within its [`System`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId(pub(crate) u64);

impl ActorId {
    /// The number behind the id.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # use weft_actor::{Actor, System};
    /// # struct A; impl Actor for A {}
    /// let system = System::new();
    /// let a = system.spawn(A).unwrap();
    /// let b = system.spawn(A).unwrap();
    /// assert_ne!(a.id().as_u64(), b.id().as_u64());
    /// # }
    /// ```
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "actor#{}", self.0)
    }
}

/// Why an actor (or one incarnation of a supervised actor) stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// [`ActorRef::stop`], [`Context::stop`], or its mailbox was closed and drained.
    Normal,
    /// Stopped by its supervisor or by [`System::shutdown`].
    Shutdown,
    /// [`ActorRef::kill`]: stopped at once, `stopping` skipped.
    Killed,
    /// A handler or hook panicked, with the panic message.
    Panicked(String),
    /// [`Actor::started`] returned an error, or [`Context::fail`] was called.
    Failed(String),
    /// A linked actor stopped abnormally.
    Linked(ActorId),
    /// A supervisor exceeded its restart intensity and gave up.
    Escalated,
}

impl StopReason {
    /// Whether this is a failure: everything but `Normal` and `Shutdown`. Transient
    /// children are restarted only after an abnormal stop; links propagate only those.
    ///
    /// ```
    /// use weft_actor::StopReason;
    /// assert!(!StopReason::Normal.is_abnormal());
    /// assert!(StopReason::Panicked("boom".into()).is_abnormal());
    /// ```
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, StopReason::Normal | StopReason::Shutdown)
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Normal => f.write_str("stopped normally"),
            StopReason::Shutdown => f.write_str("shut down"),
            StopReason::Killed => f.write_str("killed"),
            StopReason::Panicked(m) => write!(f, "panicked: {m}"),
            StopReason::Failed(m) => write!(f, "failed: {m}"),
            StopReason::Linked(id) => write!(f, "linked {id} stopped abnormally"),
            StopReason::Escalated => f.write_str("restart intensity exceeded"),
        }
    }
}

/// The signal a watcher receives when a watched (or linked) actor terminates for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    /// The actor that terminated.
    pub id: ActorId,
    /// Its name, if it was spawned with one.
    pub name: Option<Arc<str>>,
    /// Why it stopped.
    pub reason: StopReason,
}

/// What an actor's handlers and hooks can do besides touching their own state.
pub struct Context<A: Actor> {
    pub(crate) myself: ActorRef<A>,
    pub(crate) stop: Option<StopReason>,
}

impl<A: Actor> fmt::Debug for Context<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.myself.id())
            .field("stop", &self.stop)
            .finish()
    }
}

impl<A: Actor> Context<A> {
    pub(crate) fn new(myself: ActorRef<A>) -> Self {
        Context { myself, stop: None }
    }

    /// A reference to this actor (to tell yourself, or hand out).
    pub fn myself(&self) -> &ActorRef<A> {
        &self.myself
    }

    /// This actor's id.
    pub fn id(&self) -> ActorId {
        self.myself.id()
    }

    /// The system this actor runs in (to spawn children, look up names, ...).
    pub fn system(&self) -> &System {
        self.myself.system()
    }

    /// Stops the actor normally once the current handler returns; queued messages go
    /// to the dead letters.
    pub fn stop(&mut self) {
        self.stop.get_or_insert(StopReason::Normal);
    }

    /// Stops the actor with a failure once the current handler returns (a supervisor
    /// restarts a transient child after this, unlike after [`Context::stop`]).
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.stop.get_or_insert(StopReason::Failed(reason.into()));
    }

    /// Watches `other`: when it terminates for good, this actor's
    /// [`Actor::terminated`] runs with the reason. Watching an actor that already
    /// terminated delivers the signal at once.
    pub fn watch<B: Actor>(&self, other: &ActorRef<B>) {
        other.add_watcher(crate::cell::WatchKind::Monitor, self.myself.sink());
    }

    /// Links this actor and `other` both ways: when either stops abnormally, the other
    /// stops with [`StopReason::Linked`] (a normal stop arrives as a
    /// [`Actor::terminated`] signal instead).
    pub fn link<B: Actor>(&self, other: &ActorRef<B>) {
        other.add_watcher(crate::cell::WatchKind::Link, self.myself.sink());
        self.myself
            .add_watcher(crate::cell::WatchKind::Link, other.sink());
    }
}
