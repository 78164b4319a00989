//! OTP-style supervision: strategies, restart policies, restart intensity, escalation.
//
// Design
// ------
// A supervisor is one tokio task that owns an ordered list of children. Each child runs
// on its own task as a loop of incarnations over one mailbox (so an `ActorRef` to a
// child stays valid across restarts, and messages queued while it restarts wait for the
// next incarnation): build the actor with the child's factory, run it until it stops,
// report `Exited { index, reason, decision }` to the supervisor, then wait for the
// decision: `Restart` (next incarnation) or `Terminate` (the child ends for good: its
// mailbox is closed, its queue dead-lettered, its watchers told).
//
// The supervisor handles one event at a time. On an exit that its restart policy says
// to restart, it counts the restart against the intensity window; past the limit it
// stops every child (reverse start order) and ends with `StopReason::Escalated`, which
// its own parent sees as a failure. Otherwise, by strategy:
// - one-for-one: restart only the child that exited;
// - one-for-all: stop every other running child (the `Shutdown` signal carries the
//   incarnation it is meant for, so a stale one never hits the next incarnation), wait
//   for their exits, then restart all in start order (temporary ones stay down);
// - rest-for-one: the same with the children started after the one that exited.
// Exits of children outside the group that arrive meanwhile are deferred and handled
// afterwards.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use weft_sync::Mutex;
use weft_sync::atomic::{AtomicU64, Ordering};

use crate::actor::{Actor, ActorId, StopReason};
use crate::actor_ref::ActorRef;
use crate::cell::{BoxFuture, CURRENT_ACTOR, Signal, finalize, run_instance, wait_done};
use crate::error::Error;
use crate::system::{ShutdownMode, SpawnOptions, Stoppable, System};

/// Which children a supervisor restarts when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Restart only the child that exited.
    #[default]
    OneForOne,
    /// Restart every child (children that depend on each other).
    OneForAll,
    /// Restart the child and every child started after it (a pipeline where later
    /// children depend on earlier ones).
    RestForOne,
}

/// When a child is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Restart {
    /// Always, whatever the reason (also after a normal stop).
    #[default]
    Permanent,
    /// Only after an abnormal stop ([`StopReason::is_abnormal`]).
    Transient,
    /// Never.
    Temporary,
}

impl Restart {
    fn applies(self, reason: &StopReason) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        }
    }
}

/// A child of a supervisor: a factory for its actor, its restart policy and spawn
/// options.
pub struct ChildSpec<A: Actor> {
    name: String,
    factory: Arc<dyn Fn() -> A + Send + Sync>,
    restart: Restart,
    options: SpawnOptions,
}

impl<A: Actor> fmt::Debug for ChildSpec<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("restart", &self.restart)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<A: Actor> ChildSpec<A> {
    /// A permanent child called `name` (the key for [`SupervisorRef::child`]), built by
    /// `factory` at start and at every restart.
    pub fn new(name: impl Into<String>, factory: impl Fn() -> A + Send + Sync + 'static) -> Self {
        ChildSpec {
            name: name.into(),
            factory: Arc::new(factory),
            restart: Restart::Permanent,
            options: SpawnOptions::new(),
        }
    }

    /// The restart policy.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Mailbox capacity, overflow policy and registry name of the child.
    pub fn options(mut self, options: SpawnOptions) -> Self {
        self.options = options;
        self
    }
}

/// What the supervisor tells an exited child.
#[derive(Debug)]
enum Decision {
    Restart,
    Terminate,
}

/// What children and controllers tell a supervisor.
enum Event {
    Exited {
        index: usize,
        reason: StopReason,
        /// The child's mailbox is closed (`drain_and_stop`): restarting is pointless.
        closed: bool,
        decision: oneshot::Sender<Decision>,
    },
    Stop(ShutdownMode),
}

/// The type-erased start recipe of a child.
trait ChildStart: Send + Sync {
    fn name(&self) -> &str;
    fn restart(&self) -> Restart;
    fn prepare(&self, system: &System) -> Result<Box<dyn ChildHandle>, Error>;
}

/// A prepared child: its stable handle and how to run and stop it.
trait ChildHandle: Send + Sync {
    fn start(&self, index: usize, events: mpsc::UnboundedSender<Event>);
    /// Aborts the child's task at once (shutdown deadline passed).
    fn abort(&self);
    fn stop_instance(&self, incarnation: u64, mode: ShutdownMode);
    fn as_any(&self) -> &(dyn Any + Send + Sync);
}

impl<A: Actor> ChildStart for ChildSpec<A> {
    fn name(&self) -> &str {
        &self.name
    }
    fn restart(&self) -> Restart {
        self.restart
    }
    fn prepare(&self, system: &System) -> Result<Box<dyn ChildHandle>, Error> {
        let actor: ActorRef<A> = system.prepare(&self.options)?;
        Ok(Box::new(ActorChild {
            actor,
            factory: Arc::clone(&self.factory),
            task: Mutex::new(None),
        }))
    }
}

struct ActorChild<A: Actor> {
    actor: ActorRef<A>,
    factory: Arc<dyn Fn() -> A + Send + Sync>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl<A: Actor> ChildHandle for ActorChild<A> {
    fn start(&self, index: usize, events: mpsc::UnboundedSender<Event>) {
        let myself = self.actor.clone();
        let factory = Arc::clone(&self.factory);
        let task = tokio::spawn(CURRENT_ACTOR.scope(myself.addr(), async move {
            let mut incarnation = 0;
            loop {
                let built = crate::cell::catch(Box::pin(async { factory() })).await;
                let reason = match built {
                    Ok(mut actor) => run_instance(&mut actor, &myself, incarnation).await,
                    Err(panic) => StopReason::Panicked(panic),
                };
                let closed = myself.inner.mailbox.is_closed();
                match report_exit(&events, index, &reason, closed).await {
                    Decision::Restart => {
                        incarnation += 1;
                        // Relaxed: a statistic.
                        myself
                            .inner
                            .counters
                            .restarts
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::info!(actor = %myself.id(), incarnation, "child restarted");
                    }
                    Decision::Terminate => {
                        finalize(&myself, reason);
                        return;
                    }
                }
            }
        }));
        *self.task.lock() = Some(task.abort_handle());
    }

    fn abort(&self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
        finalize(&self.actor, StopReason::Killed);
    }

    fn stop_instance(&self, incarnation: u64, mode: ShutdownMode) {
        match mode {
            ShutdownMode::Drain => self.actor.drain_and_stop(),
            ShutdownMode::Drop => {
                self.actor.signal(Signal::Shutdown(Some(incarnation)));
            }
        }
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        &self.actor
    }
}

/// How many restarts a supervisor allows in a time window before it gives up and
/// escalates (default: 3 in 5 seconds, as in Erlang/OTP's 1-in-5 made a bit kinder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed within `window`.
    pub max_restarts: u32,
    /// The sliding window.
    pub window: Duration,
}

impl Default for Intensity {
    fn default() -> Self {
        Intensity {
            max_restarts: 3,
            window: Duration::from_secs(5),
        }
    }
}

/// Configures a supervisor: strategy, intensity, and the children in start order.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use weft_actor::{Actor, ChildSpec, Context, Handler, Restart, Strategy, Supervisor, System};
///
/// #[derive(Default)]
/// struct Worker { handled: u32 }
/// impl Actor for Worker {}
/// struct Job(bool); // true = crash
/// impl Handler<Job> for Worker {
///     type Reply = u32;
///     async fn handle(&mut self, Job(crash): Job, _: &mut Context<Self>) -> u32 {
///         assert!(!crash, "bad job"); // let it crash
///         self.handled += 1;
///         self.handled
///     }
/// }
///
/// let system = System::new();
/// let sup = Supervisor::builder(Strategy::OneForOne)
///     .max_restarts(3, Duration::from_secs(10))
///     .child(ChildSpec::new("worker", Worker::default).restart(Restart::Permanent))
///     .spawn(&system)?;
/// let worker = sup.child::<Worker>("worker").unwrap();
/// let secs = Duration::from_secs(1);
/// assert_eq!(worker.ask(Job(false), secs).await?, 1);
/// assert!(worker.ask(Job(true), secs).await.is_err()); // crashes, is restarted
/// assert_eq!(worker.ask(Job(false), secs).await?, 1); // same ref, fresh state
/// assert_eq!(worker.metrics().restarts, 1);
/// # Ok(())
/// # }
/// ```
pub struct SupervisorBuilder {
    strategy: Strategy,
    intensity: Intensity,
    name: Option<String>,
    children: Vec<Arc<dyn ChildStart>>,
}

impl fmt::Debug for SupervisorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.children.iter().map(|c| c.name()).collect();
        f.debug_struct("SupervisorBuilder")
            .field("strategy", &self.strategy)
            .field("intensity", &self.intensity)
            .field("children", &names)
            .finish()
    }
}

/// Namespace for [`Supervisor::builder`].
#[derive(Debug)]
pub struct Supervisor(());

impl Supervisor {
    /// A supervisor with `strategy`, the default [`Intensity`] and no children yet.
    pub fn builder(strategy: Strategy) -> SupervisorBuilder {
        SupervisorBuilder {
            strategy,
            intensity: Intensity::default(),
            name: None,
            children: Vec::new(),
        }
    }
}

impl SupervisorBuilder {
    /// At most `max_restarts` restarts within `window`; one more makes the supervisor
    /// stop all its children and terminate with [`StopReason::Escalated`].
    pub fn max_restarts(mut self, max_restarts: u32, window: Duration) -> Self {
        self.intensity = Intensity {
            max_restarts,
            window,
        };
        self
    }

    /// The restart intensity as an [`Intensity`] value (same as
    /// [`max_restarts`](SupervisorBuilder::max_restarts)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_actor::{Intensity, Strategy, Supervisor};
    /// let strict = Intensity { max_restarts: 1, window: Duration::from_secs(60) };
    /// let builder = Supervisor::builder(Strategy::OneForAll).intensity(strict);
    /// # let _ = builder;
    /// ```
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// A name, for logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a child (children start in the order added and stop in reverse).
    pub fn child<A: Actor>(mut self, spec: ChildSpec<A>) -> Self {
        self.children.push(Arc::new(spec));
        self
    }

    /// Adds a nested supervisor as a child: when it escalates, this supervisor treats
    /// it as a failed child (restarting it, with fresh children, per `restart`).
    pub fn supervisor(
        mut self,
        name: impl Into<String>,
        restart: Restart,
        spec: SupervisorBuilder,
    ) -> Self {
        self.children.push(Arc::new(NestedSpec {
            name: name.into(),
            restart,
            spec: Arc::new(spec),
        }));
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if self.children.is_empty() {
            return Err(Error::Empty);
        }
        if self.intensity.window.is_zero() {
            return Err(Error::ZeroWindow);
        }
        Ok(())
    }

    /// Starts the supervisor and its children on `system` (inside a tokio runtime).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] without children, [`Error::ZeroWindow`], or a child's spawn
    /// error ([`Error::NameTaken`], [`Error::ZeroCapacity`], [`Error::ShutDown`]).
    pub fn spawn(self, system: &System) -> Result<SupervisorRef, Error> {
        self.validate()?;
        let spec = Arc::new(self);
        let shared = Shared::new(system, spec.name.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let handles = prepare_children(&spec, system, &shared)?;
        *shared.control.lock() = Some(tx.clone());
        let sup = SupervisorRef {
            shared: Arc::clone(&shared),
        };
        let task = {
            let system = system.clone();
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let reason = run_supervisor(&spec, &system, &shared, handles, tx, rx).await;
                shared.finish(&system, reason);
            })
        };
        system.add_live(
            shared.id,
            Arc::new(SupervisorEntry {
                sup: sup.clone(),
                system: system.clone(),
                task: task.abort_handle(),
            }),
        );
        Ok(sup)
    }
}

/// The state a supervisor shares with its [`SupervisorRef`]s.
struct Shared {
    id: ActorId,
    name: Option<String>,
    children: Mutex<Vec<(String, Arc<dyn ChildHandle>)>>,
    control: Mutex<Option<mpsc::UnboundedSender<Event>>>,
    restarts: AtomicU64,
    done: watch::Sender<Option<StopReason>>,
}

impl Shared {
    fn new(system: &System, name: Option<String>) -> Arc<Self> {
        Arc::new(Shared {
            id: system.next_id(),
            name,
            children: Mutex::new(Vec::new()),
            control: Mutex::new(None),
            restarts: AtomicU64::new(0),
            done: watch::channel(None).0,
        })
    }

    fn finish(&self, system: &System, reason: StopReason) {
        if self.done.borrow().is_some() {
            return; // already finished (an abort raced the task's own end)
        }
        tracing::info!(supervisor = %self.id, reason = %reason, "supervisor stopped");
        *self.control.lock() = None;
        system.forget(self.id);
        self.done.send_replace(Some(reason));
    }
}

/// Prepares a supervisor incarnation's children and publishes them for
/// [`SupervisorRef::child`].
fn prepare_children(
    spec: &SupervisorBuilder,
    system: &System,
    shared: &Shared,
) -> Result<Vec<Arc<dyn ChildHandle>>, Error> {
    let handles: Vec<Arc<dyn ChildHandle>> = spec
        .children
        .iter()
        .map(|c| c.prepare(system).map(Arc::from))
        .collect::<Result<_, _>>()?;
    *shared.children.lock() = spec
        .children
        .iter()
        .zip(&handles)
        .map(|(c, h)| (c.name().to_owned(), Arc::clone(h)))
        .collect();
    Ok(handles)
}

/// A handle to a running supervisor. Cheap to clone.
#[derive(Clone)]
pub struct SupervisorRef {
    shared: Arc<Shared>,
}

impl fmt::Debug for SupervisorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorRef")
            .field("id", &self.shared.id)
            .field("name", &self.shared.name)
            .finish()
    }
}

impl SupervisorRef {
    /// The supervisor's id.
    pub fn id(&self) -> ActorId {
        self.shared.id
    }

    /// The child called `name`, if it is an `A`. The reference stays valid across the
    /// child's restarts (it keeps its mailbox).
    pub fn child<A: Actor>(&self, name: &str) -> Option<ActorRef<A>> {
        let children = self.shared.children.lock();
        children
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, h)| h.as_any().downcast_ref::<ActorRef<A>>().cloned())
    }

    /// The nested supervisor called `name` (see [`SupervisorBuilder::supervisor`]).
    pub fn supervisor(&self, name: &str) -> Option<SupervisorRef> {
        let children = self.shared.children.lock();
        children
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, h)| h.as_any().downcast_ref::<SupervisorRef>().cloned())
    }

    /// Aborts every child's task (their queues go to the dead letters).
    fn abort_children(&self) {
        let children: Vec<Arc<dyn ChildHandle>> = self
            .shared
            .children
            .lock()
            .iter()
            .map(|(_, h)| Arc::clone(h))
            .collect();
        for child in children {
            child.abort();
        }
    }

    /// Restarts performed so far (all children).
    pub fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::Relaxed)
    }

    /// Stops the children in reverse start order, then the supervisor
    /// ([`StopReason::Shutdown`]).
    pub fn stop(&self, mode: ShutdownMode) -> bool {
        match &*self.shared.control.lock() {
            Some(tx) => tx.send(Event::Stop(mode)).is_ok(),
            None => false,
        }
    }

    /// Waits until the supervisor terminated; [`StopReason::Escalated`] when its
    /// restart intensity was exceeded.
    pub async fn wait(&self) -> StopReason {
        wait_done(&self.shared.done).await
    }
}

struct SupervisorEntry {
    sup: SupervisorRef,
    system: System,
    task: tokio::task::AbortHandle,
}

impl Stoppable for SupervisorEntry {
    fn request_stop(&self, mode: ShutdownMode) {
        self.sup.stop(mode);
    }
    fn wait(&self) -> BoxFuture<'_, StopReason> {
        Box::pin(self.sup.wait())
    }
    fn abort(&self) {
        self.task.abort();
        self.sup.abort_children();
        self.sup.shared.finish(&self.system, StopReason::Killed);
    }
}

/// A nested supervisor as a child.
struct NestedSpec {
    name: String,
    restart: Restart,
    spec: Arc<SupervisorBuilder>,
}

impl ChildStart for NestedSpec {
    fn name(&self) -> &str {
        &self.name
    }
    fn restart(&self) -> Restart {
        self.restart
    }
    fn prepare(&self, system: &System) -> Result<Box<dyn ChildHandle>, Error> {
        self.spec.validate()?;
        let shared = Shared::new(system, Some(self.name.clone()));
        let first = prepare_children(&self.spec, system, &shared)?;
        Ok(Box::new(NestedChild {
            spec: Arc::clone(&self.spec),
            system: system.clone(),
            first: Mutex::new(Some(first)),
            task: Mutex::new(None),
            sup: SupervisorRef { shared },
        }))
    }
}

struct NestedChild {
    spec: Arc<SupervisorBuilder>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
    /// The children of the first incarnation, prepared (and published) up front.
    first: Mutex<Option<Vec<Arc<dyn ChildHandle>>>>,
    system: System,
    sup: SupervisorRef,
}

impl ChildHandle for NestedChild {
    fn start(&self, index: usize, events: mpsc::UnboundedSender<Event>) {
        let (spec, system, shared) = (
            Arc::clone(&self.spec),
            self.system.clone(),
            Arc::clone(&self.sup.shared),
        );
        let mut first = self.first.lock().take();
        let task = tokio::spawn(async move {
            loop {
                let (tx, rx) = mpsc::unbounded_channel();
                *shared.control.lock() = Some(tx.clone());
                let prepared = match first.take() {
                    Some(handles) => Ok(handles),
                    None => prepare_children(&spec, &system, &shared),
                };
                let reason = match prepared {
                    Ok(handles) => run_supervisor(&spec, &system, &shared, handles, tx, rx).await,
                    Err(e) => StopReason::Failed(e.to_string()),
                };
                match report_exit(&events, index, &reason, false).await {
                    Decision::Restart => continue,
                    Decision::Terminate => {
                        shared.finish(&system, reason);
                        return;
                    }
                }
            }
        });
        *self.task.lock() = Some(task.abort_handle());
    }

    fn stop_instance(&self, _incarnation: u64, mode: ShutdownMode) {
        self.sup.stop(mode);
    }

    fn abort(&self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
        self.sup.abort_children();
        self.sup.shared.finish(&self.system, StopReason::Killed);
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        &self.sup
    }
}

/// A child's place in the supervisor's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Dead,
}

struct Child {
    handle: Arc<dyn ChildHandle>,
    restart: Restart,
    incarnation: u64,
    state: State,
}

/// Runs one incarnation of a supervisor until it is stopped or escalates.
async fn run_supervisor(
    spec: &SupervisorBuilder,
    system: &System,
    shared: &Shared,
    handles: Vec<Arc<dyn ChildHandle>>,
    tx: mpsc::UnboundedSender<Event>,
    mut rx: mpsc::UnboundedReceiver<Event>,
) -> StopReason {
    let mut children: Vec<Child> = spec
        .children
        .iter()
        .zip(handles)
        .map(|(c, handle)| Child {
            handle,
            restart: c.restart(),
            incarnation: 0,
            state: State::Running,
        })
        .collect();
    for (i, c) in children.iter().enumerate() {
        c.handle.start(i, tx.clone());
    }
    drop(tx);
    let mut restarts: VecDeque<Instant> = VecDeque::new();
    let mut deferred: VecDeque<Event> = VecDeque::new();
    loop {
        let event = match deferred.pop_front() {
            Some(e) => e,
            None => match rx.recv().await {
                Some(e) => e,
                None => return StopReason::Shutdown, // every child and controller gone
            },
        };
        let (index, reason, closed, decision) = match event {
            Event::Stop(mode) => {
                stop_all(&mut children, &mut rx, &mut deferred, mode).await;
                return StopReason::Shutdown;
            }
            Event::Exited {
                index,
                reason,
                closed,
                decision,
            } => (index, reason, closed, decision),
        };
        let Some(child) = children.get_mut(index) else {
            let _ = decision.send(Decision::Terminate);
            continue;
        };
        tracing::debug!(supervisor = %shared.id, child = index, reason = %reason, "child exited");
        if closed || !child.restart.applies(&reason) {
            child.state = State::Dead;
            let _ = decision.send(Decision::Terminate);
            continue;
        }
        // Restart intensity: restarts within the sliding window.
        let now = system.clock().now();
        while restarts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= spec.intensity.window)
        {
            restarts.pop_front();
        }
        if restarts.len() >= spec.intensity.max_restarts as usize {
            tracing::warn!(supervisor = %shared.id, "restart intensity exceeded; escalating");
            child.state = State::Dead;
            let _ = decision.send(Decision::Terminate);
            stop_all(&mut children, &mut rx, &mut deferred, ShutdownMode::Drop).await;
            return StopReason::Escalated;
        }
        restarts.push_back(now);
        let group: Vec<usize> = match spec.strategy {
            Strategy::OneForOne => Vec::new(),
            Strategy::OneForAll => (0..children.len()).filter(|&i| i != index).collect(),
            Strategy::RestForOne => (index + 1..children.len()).collect(),
        };
        let group: Vec<usize> = group
            .into_iter()
            .filter(|&i| children[i].state == State::Running)
            .collect();
        let mut decisions = vec![(index, decision)];
        for &i in &group {
            children[i]
                .handle
                .stop_instance(children[i].incarnation, ShutdownMode::Drop);
        }
        let mut waiting = group;
        while !waiting.is_empty() {
            let Some(event) = rx.recv().await else { break };
            match event {
                Event::Exited {
                    index: i, decision, ..
                } if waiting.contains(&i) => {
                    waiting.retain(|&w| w != i);
                    decisions.push((i, decision));
                }
                other => deferred.push_back(other),
            }
        }
        decisions.sort_by_key(|(i, _)| *i);
        for (i, decision) in decisions {
            let child = &mut children[i];
            if i != index && child.restart == Restart::Temporary {
                child.state = State::Dead;
                let _ = decision.send(Decision::Terminate);
            } else {
                child.incarnation += 1;
                shared.restarts.fetch_add(1, Ordering::Relaxed);
                let _ = decision.send(Decision::Restart);
            }
        }
    }
}

/// Stops every running child in reverse start order, telling each to terminate.
async fn stop_all(
    children: &mut [Child],
    rx: &mut mpsc::UnboundedReceiver<Event>,
    deferred: &mut VecDeque<Event>,
    mode: ShutdownMode,
) {
    // Exits already waiting: those children end now.
    for event in deferred.drain(..) {
        terminate_exited(children, event);
    }
    for i in (0..children.len()).rev() {
        if children[i].state != State::Running {
            continue;
        }
        children[i]
            .handle
            .stop_instance(children[i].incarnation, mode);
        while children[i].state == State::Running {
            let Some(event) = rx.recv().await else { return };
            terminate_exited(children, event);
        }
    }
}

/// Tells the child of an `Exited` event to end for good; ignores other events.
fn terminate_exited(children: &mut [Child], event: Event) {
    if let Event::Exited {
        index, decision, ..
    } = event
    {
        if let Some(c) = children.get_mut(index) {
            c.state = State::Dead;
        }
        let _ = decision.send(Decision::Terminate);
    }
}

/// Reports an incarnation's exit to the supervisor and waits for its decision; a
/// supervisor that is gone counts as `Terminate`.
async fn report_exit(
    events: &mpsc::UnboundedSender<Event>,
    index: usize,
    reason: &StopReason,
    closed: bool,
) -> Decision {
    let (tx, rx) = oneshot::channel();
    let event = Event::Exited {
        index,
        reason: reason.clone(),
        closed,
        decision: tx,
    };
    if events.send(event).is_err() {
        return Decision::Terminate;
    }
    rx.await.unwrap_or(Decision::Terminate)
}
