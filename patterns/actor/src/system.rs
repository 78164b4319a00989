//! The actor system: spawning, dead letters, the name registry, process groups and
//! graceful shutdown.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use weft_sync::Mutex;
use weft_sync::atomic::{AtomicBool, AtomicU64, Ordering};
use weft_time::{Clock, TokioClock};

use crate::actor::{Actor, ActorId, StopReason};
use crate::actor_ref::{ActorRef, Recipient};
use crate::cell::{BoxFuture, Inner, Signal, spawn_task};
use crate::dead_letter::{DeadLetter, DeadLetterHook, DeadLetters};
use crate::error::Error;
use crate::mailbox::{Mailbox, Overflow};

/// The default mailbox capacity.
pub const DEFAULT_CAPACITY: usize = 64;

/// How an actor is spawned: mailbox capacity and overflow policy, optional name.
///
/// ```
/// use weft_actor::{Overflow, SpawnOptions};
/// let opts = SpawnOptions::new().capacity(128).overflow(Overflow::DropOldest).name("ingest");
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnOptions {
    pub(crate) capacity: usize,
    pub(crate) overflow: Overflow,
    pub(crate) name: Option<String>,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            capacity: DEFAULT_CAPACITY,
            overflow: Overflow::Wait,
            name: None,
        }
    }
}

impl SpawnOptions {
    /// Capacity [`DEFAULT_CAPACITY`] (64), policy [`Overflow::Wait`], no name.
    pub fn new() -> Self {
        SpawnOptions::default()
    }

    /// The mailbox capacity (user messages); at least 1, checked at spawn.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// What a full mailbox does with one more message.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Registers the actor under `name` ([`System::lookup`]) while it lives.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.capacity == 0 {
            return Err(Error::ZeroCapacity);
        }
        Ok(())
    }
}

/// What [`System::shutdown`] does with messages still queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ShutdownMode {
    /// Each actor handles what is queued (new messages are refused) before it stops.
    #[default]
    Drain,
    /// Each actor stops after its current message; queued ones go to the dead letters.
    Drop,
}

/// A live top-level entity (actor or supervisor) the system stops on shutdown.
pub(crate) trait Stoppable: Send + Sync {
    fn request_stop(&self, mode: ShutdownMode);
    fn wait(&self) -> BoxFuture<'_, StopReason>;
    fn abort(&self);
}

struct ActorEntry<A: Actor> {
    actor: ActorRef<A>,
    task: tokio::task::AbortHandle,
}

impl<A: Actor> Stoppable for ActorEntry<A> {
    fn request_stop(&self, mode: ShutdownMode) {
        match mode {
            ShutdownMode::Drain => self.actor.drain_and_stop(),
            ShutdownMode::Drop => {
                self.actor.signal(Signal::Shutdown(None));
            }
        }
    }
    fn wait(&self) -> BoxFuture<'_, StopReason> {
        Box::pin(self.actor.wait())
    }
    fn abort(&self) {
        self.task.abort();
        crate::cell::finalize(&self.actor, StopReason::Killed);
    }
}

/// An actor's id and a type-erased handle to it (`ActorRef<A>` or `Recipient<M, R>`).
type GroupMember = (ActorId, Box<dyn Any + Send + Sync>);

struct SystemInner {
    next_id: AtomicU64,
    clock: Arc<dyn Clock>,
    dead_letters: DeadLetters,
    shut_down: AtomicBool,
    live: Mutex<BTreeMap<ActorId, Arc<dyn Stoppable>>>,
    names: Mutex<HashMap<String, GroupMember>>,
    groups: Mutex<HashMap<String, Vec<GroupMember>>>,
}

/// An actor system: spawns actors, owns the dead-letter sink, the name registry and
/// process groups, and shuts everything down in order. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use weft_actor::{Actor, ShutdownMode, StopReason, System};
/// struct Service;
/// impl Actor for Service {}
/// let system = System::new();
/// let svc = system.spawn(Service).unwrap();
/// system.shutdown(ShutdownMode::Drain, Duration::from_secs(5)).await.unwrap();
/// assert_eq!(svc.wait().await, StopReason::Normal);
/// # }
/// ```
#[derive(Clone)]
pub struct System {
    inner: Arc<SystemInner>,
}

impl fmt::Debug for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("System")
            .field("live", &self.inner.live.lock().len())
            .field("dead_letters", &self.inner.dead_letters.total())
            .finish_non_exhaustive()
    }
}

impl Default for System {
    fn default() -> Self {
        System::new()
    }
}

/// Configures a [`System`].
#[derive(Default)]
pub struct SystemBuilder {
    retention: Option<usize>,
    hook: Option<DeadLetterHook>,
    clock: Option<Arc<dyn Clock>>,
}

impl fmt::Debug for SystemBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemBuilder")
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl SystemBuilder {
    /// How many recent dead letters to keep for [`DeadLetters::take`] (default 1024;
    /// all are counted whatever the retention).
    pub fn dead_letter_retention(mut self, n: usize) -> Self {
        self.retention = Some(n);
        self
    }

    /// Calls `hook` with every dead letter as it arrives (keep it quick: it runs on the
    /// sender's or the actor's task).
    pub fn on_dead_letter(mut self, hook: impl Fn(&DeadLetter) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// The clock for handler latencies and restart windows (default
    /// [`TokioClock`], which `tokio::time::pause` drives).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the system.
    ///
    /// ```
    /// let system = weft_actor::System::builder().dead_letter_retention(16).build();
    /// assert_eq!(system.dead_letters().total(), 0);
    /// ```
    pub fn build(self) -> System {
        System {
            inner: Arc::new(SystemInner {
                next_id: AtomicU64::new(1),
                clock: self.clock.unwrap_or_else(|| Arc::new(TokioClock)),
                dead_letters: DeadLetters::new(self.retention.unwrap_or(1024), self.hook),
                shut_down: AtomicBool::new(false),
                live: Mutex::new(BTreeMap::new()),
                names: Mutex::new(HashMap::new()),
                groups: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl System {
    /// A system with the default configuration.
    pub fn new() -> Self {
        SystemBuilder::default().build()
    }

    /// Configures a system.
    pub fn builder() -> SystemBuilder {
        SystemBuilder::default()
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    pub(crate) fn next_id(&self) -> ActorId {
        // Relaxed: only uniqueness matters, which the atomic increment gives.
        ActorId(self.inner.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The dead-letter sink.
    pub fn dead_letters(&self) -> &DeadLetters {
        &self.inner.dead_letters
    }

    /// Spawns `actor` on a tokio task with the default [`SpawnOptions`].
    ///
    /// # Errors
    ///
    /// [`Error::NoRuntime`] outside a tokio runtime, [`Error::ShutDown`] once
    /// [`System::shutdown`] has started.
    pub fn spawn<A: Actor>(&self, actor: A) -> Result<ActorRef<A>, Error> {
        self.spawn_with(actor, SpawnOptions::new())
    }

    /// Spawns `actor` with `options`.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroCapacity`], [`Error::NameTaken`], [`Error::NoRuntime`],
    /// [`Error::ShutDown`].
    pub fn spawn_with<A: Actor>(
        &self,
        actor: A,
        options: SpawnOptions,
    ) -> Result<ActorRef<A>, Error> {
        let myself = self.prepare(&options)?;
        let task = spawn_task(actor, myself.clone());
        let entry = ActorEntry {
            actor: myself.clone(),
            task: task.abort_handle(),
        };
        self.inner.live.lock().insert(myself.id(), Arc::new(entry));
        Ok(myself)
    }

    /// Builds the cell of a new actor and registers its name; spawns nothing.
    pub(crate) fn prepare<A: Actor>(&self, options: &SpawnOptions) -> Result<ActorRef<A>, Error> {
        options.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime);
        }
        if self.inner.shut_down.load(Ordering::SeqCst) {
            return Err(Error::ShutDown);
        }
        let id = self.next_id();
        let name: Option<Arc<str>> = options.name.as_deref().map(Arc::from);
        let mailbox = Mailbox::new(options.capacity, options.overflow);
        let myself = ActorRef::from_inner(Arc::new(Inner::new(id, name, self.clone(), mailbox)));
        if let Some(name) = &options.name {
            self.register(name, &myself)?;
        }
        Ok(myself)
    }

    pub(crate) fn add_live(&self, id: ActorId, entry: Arc<dyn Stoppable>) {
        self.inner.live.lock().insert(id, entry);
    }

    /// Drops everything the system holds about a terminated actor.
    pub(crate) fn forget(&self, id: ActorId) {
        self.inner.live.lock().remove(&id);
        self.inner.names.lock().retain(|_, (owner, _)| *owner != id);
        for members in self.inner.groups.lock().values_mut() {
            members.retain(|(owner, _)| *owner != id);
        }
    }

    /// Registers `actor` under `name` until it terminates.
    ///
    /// # Errors
    ///
    /// [`Error::NameTaken`] if a live actor holds the name.
    pub fn register<A: Actor>(&self, name: &str, actor: &ActorRef<A>) -> Result<(), Error> {
        let mut names = self.inner.names.lock();
        if names.contains_key(name) {
            return Err(Error::NameTaken(name.to_owned()));
        }
        names.insert(name.to_owned(), (actor.id(), Box::new(actor.clone())));
        Ok(())
    }

    /// The live actor of type `A` registered under `name`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use weft_actor::{Actor, SpawnOptions, System};
    /// struct Db;
    /// impl Actor for Db {}
    /// let system = System::new();
    /// let db = system.spawn_with(Db, SpawnOptions::new().name("db")).unwrap();
    /// assert_eq!(system.lookup::<Db>("db"), Some(db.clone()));
    /// db.stop();
    /// db.wait().await;
    /// assert_eq!(system.lookup::<Db>("db"), None); // names go with their actor
    /// # }
    /// ```
    pub fn lookup<A: Actor>(&self, name: &str) -> Option<ActorRef<A>> {
        let names = self.inner.names.lock();
        names
            .get(name)
            .and_then(|(_, any)| any.downcast_ref::<ActorRef<A>>().cloned())
    }

    /// Removes a name; returns whether it was registered.
    pub fn unregister(&self, name: &str) -> bool {
        self.inner.names.lock().remove(name).is_some()
    }

    /// Adds a recipient to the process group `group` (until its actor terminates).
    pub fn join_group<M: Send + 'static, R: Send + 'static>(
        &self,
        group: &str,
        member: Recipient<M, R>,
    ) {
        self.inner
            .groups
            .lock()
            .entry(group.to_owned())
            .or_default()
            .push((member.id(), Box::new(member)));
    }

    /// The members of `group` that accept `M` and reply `R`.
    pub fn group<M: Send + 'static, R: Send + 'static>(&self, group: &str) -> Vec<Recipient<M, R>> {
        let groups = self.inner.groups.lock();
        groups.get(group).map_or_else(Vec::new, |members| {
            members
                .iter()
                .filter_map(|(_, any)| any.downcast_ref::<Recipient<M, R>>().cloned())
                .collect()
        })
    }

    /// Sends a clone of `msg` to every member of `group` accepting `M` (without
    /// waiting: a full or stopped member does not get it). Returns how many did.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use weft_actor::{Actor, Context, Handler, System};
    /// #[derive(Clone)]
    /// struct Reload;
    /// struct Cache;
    /// impl Actor for Cache {}
    /// impl Handler<Reload> for Cache {
    ///     type Reply = ();
    ///     async fn handle(&mut self, _: Reload, _: &mut Context<Self>) {}
    /// }
    /// let system = System::new();
    /// for _ in 0..3 {
    ///     let cache = system.spawn(Cache).unwrap();
    ///     system.join_group("caches", cache.recipient::<Reload>());
    /// }
    /// assert_eq!(system.broadcast("caches", Reload), 3);
    /// # }
    /// ```
    pub fn broadcast<M: Clone + Send + 'static>(&self, group: &str, msg: M) -> usize {
        self.group::<M, ()>(group)
            .iter()
            .filter(|r| r.try_tell(msg.clone()).is_ok())
            .count()
    }

    /// Live top-level actors and supervisors.
    pub fn live(&self) -> usize {
        self.inner.live.lock().len()
    }

    /// Stops every top-level actor and supervisor in reverse spawn order (an actor
    /// spawned later may depend on one spawned earlier, never the other way round),
    /// waiting for each to terminate before stopping the next, then refuses new spawns.
    /// `mode` says whether queued messages are handled or dead-lettered.
    ///
    /// # Errors
    ///
    /// [`Error::ShutdownTimeout`] if `timeout` passes first: the actors still running
    /// are aborted (their queued messages go to the dead letters, watchers see
    /// [`StopReason::Killed`]).
    pub async fn shutdown(&self, mode: ShutdownMode, timeout: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.inner.shut_down.store(true, Ordering::SeqCst);
        let entries: Vec<Arc<dyn Stoppable>> =
            self.inner.live.lock().values().rev().cloned().collect();
        for (i, entry) in entries.iter().enumerate() {
            entry.request_stop(mode);
            if tokio::time::timeout_at(deadline, entry.wait())
                .await
                .is_err()
            {
                let rest = &entries[i..];
                for e in rest {
                    e.abort();
                }
                return Err(Error::ShutdownTimeout(rest.len()));
            }
        }
        Ok(())
    }
}
