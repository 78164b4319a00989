//! A pool of identical, supervised workers behind one handle, with round-robin,
//! least-loaded or key-hash (sticky) routing.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use weft_sync::atomic::{AtomicUsize, Ordering};

use crate::actor::{Actor, Handler};
use crate::actor_ref::ActorRef;
use crate::error::{AskError, Error, SendError};
use crate::supervisor::{ChildSpec, Restart, Strategy, Supervisor, SupervisorRef};
use crate::system::{ShutdownMode, SpawnOptions, System};

/// How [`Router::tell`] and [`Router::ask`] pick a worker. Keyed sends
/// ([`Router::tell_keyed`], [`Router::ask_keyed`]) always route by key hash, so one key
/// always reaches the same worker (sticky routing, per-key ordering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Routing {
    /// Each worker in turn.
    #[default]
    RoundRobin,
    /// The worker with the fewest queued messages (ties: the next in turn).
    LeastLoaded,
}

/// Configures a [`Router`].
pub struct RouterBuilder<A: Actor> {
    size: usize,
    factory: Arc<dyn Fn() -> A + Send + Sync>,
    routing: Routing,
    options: SpawnOptions,
    max_restarts: (u32, Duration),
}

impl<A: Actor> std::fmt::Debug for RouterBuilder<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterBuilder")
            .field("size", &self.size)
            .field("routing", &self.routing)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<A: Actor> RouterBuilder<A> {
    /// The routing of unkeyed sends.
    pub fn routing(mut self, routing: Routing) -> Self {
        self.routing = routing;
        self
    }

    /// Mailbox options of each worker (a name is ignored: workers are `router-N`
    /// children of the router's supervisor).
    pub fn options(mut self, mut options: SpawnOptions) -> Self {
        options.name = None;
        self.options = options;
        self
    }

    /// The restart intensity of the workers' one-for-one supervisor (default 10 in 5 s).
    pub fn max_restarts(mut self, max_restarts: u32, window: Duration) -> Self {
        self.max_restarts = (max_restarts, window);
        self
    }

    /// Spawns the workers under a one-for-one supervisor (a crashed worker is
    /// restarted with a fresh actor and keeps its mailbox).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] for zero workers, or a spawn error.
    pub fn spawn(self, system: &System) -> Result<Router<A>, Error> {
        if self.size == 0 {
            return Err(Error::Empty);
        }
        let mut sup = Supervisor::builder(Strategy::OneForOne)
            .name("router")
            .max_restarts(self.max_restarts.0, self.max_restarts.1);
        for i in 0..self.size {
            let factory = Arc::clone(&self.factory);
            sup = sup.child(
                ChildSpec::new(format!("router-{i}"), move || factory())
                    .restart(Restart::Permanent)
                    .options(self.options.clone()),
            );
        }
        let supervisor = sup.spawn(system)?;
        let workers = (0..self.size)
            .filter_map(|i| supervisor.child::<A>(&format!("router-{i}")))
            .collect();
        Ok(Router {
            workers,
            supervisor,
            routing: self.routing,
            next: Arc::new(AtomicUsize::new(0)),
        })
    }
}

/// N identical workers of type `A` behind one handle. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use weft_actor::{Actor, Context, Handler, Router, Routing, System};
///
/// #[derive(Default)]
/// struct Shard { events: u64 }
/// impl Actor for Shard {}
/// struct Event;
/// impl Handler<Event> for Shard {
///     type Reply = u64;
///     async fn handle(&mut self, _: Event, _: &mut Context<Self>) -> u64 {
///         self.events += 1;
///         self.events
///     }
/// }
///
/// let system = System::new();
/// let shards = Router::builder(4, Shard::default).routing(Routing::RoundRobin).spawn(&system)?;
/// let secs = Duration::from_secs(1);
/// // The same key always reaches the same shard.
/// assert_eq!(shards.ask_keyed(&"user-7", Event, secs).await?, 1);
/// assert_eq!(shards.ask_keyed(&"user-7", Event, secs).await?, 2);
/// # Ok(())
/// # }
/// ```
pub struct Router<A: Actor> {
    workers: Vec<ActorRef<A>>,
    supervisor: SupervisorRef,
    routing: Routing,
    next: Arc<AtomicUsize>,
}

impl<A: Actor> Clone for Router<A> {
    fn clone(&self) -> Self {
        Router {
            workers: self.workers.clone(),
            supervisor: self.supervisor.clone(),
            routing: self.routing,
            next: Arc::clone(&self.next),
        }
    }
}

impl<A: Actor> std::fmt::Debug for Router<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("workers", &self.workers.len())
            .field("routing", &self.routing)
            .finish_non_exhaustive()
    }
}

impl<A: Actor> Router<A> {
    /// A router of `size` workers built by `factory` (also used for restarts).
    pub fn builder(
        size: usize,
        factory: impl Fn() -> A + Send + Sync + 'static,
    ) -> RouterBuilder<A> {
        RouterBuilder {
            size,
            factory: Arc::new(factory),
            routing: Routing::RoundRobin,
            options: SpawnOptions::new(),
            max_restarts: (10, Duration::from_secs(5)),
        }
    }

    /// The workers, in order.
    pub fn workers(&self) -> &[ActorRef<A>] {
        &self.workers
    }

    /// The supervisor of the workers.
    pub fn supervisor(&self) -> &SupervisorRef {
        &self.supervisor
    }

    /// The worker the next unkeyed send goes to.
    pub fn pick(&self) -> &ActorRef<A> {
        // Relaxed: the counter only spreads load; any interleaving is a valid turn order.
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.workers.len();
        match self.routing {
            Routing::RoundRobin => &self.workers[turn % n],
            Routing::LeastLoaded => {
                let mut best = turn % n;
                let mut best_len = usize::MAX;
                for k in 0..n {
                    let i = (turn + k) % n;
                    let len = self.workers[i].metrics().mailbox_len;
                    if len < best_len {
                        best = i;
                        best_len = len;
                        if len == 0 {
                            break;
                        }
                    }
                }
                &self.workers[best]
            }
        }
    }

    /// The worker for `key` (stable for the life of the router).
    pub fn pick_keyed<K: Hash + ?Sized>(&self, key: &K) -> &ActorRef<A> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let i = (h.finish() % self.workers.len() as u64) as usize;
        &self.workers[i]
    }

    /// [`ActorRef::tell`] to the picked worker.
    ///
    /// # Errors
    ///
    /// As [`ActorRef::tell`].
    pub async fn tell<M: Send + 'static>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
    {
        self.pick().tell(msg).await
    }

    /// [`ActorRef::try_tell`] to the picked worker.
    ///
    /// # Errors
    ///
    /// As [`ActorRef::try_tell`].
    pub fn try_tell<M: Send + 'static>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
    {
        self.pick().try_tell(msg)
    }

    /// [`ActorRef::ask`] of the picked worker.
    ///
    /// # Errors
    ///
    /// As [`ActorRef::ask_until`].
    pub async fn ask<M: Send + 'static>(
        &self,
        msg: M,
        timeout: Duration,
    ) -> Result<A::Reply, AskError<M>>
    where
        A: Handler<M>,
    {
        self.pick().ask(msg, timeout).await
    }

    /// [`ActorRef::tell`] to the worker for `key`.
    ///
    /// # Errors
    ///
    /// As [`ActorRef::tell`].
    pub async fn tell_keyed<K: Hash + ?Sized, M: Send + 'static>(
        &self,
        key: &K,
        msg: M,
    ) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
    {
        self.pick_keyed(key).tell(msg).await
    }

    /// [`ActorRef::ask`] of the worker for `key`.
    ///
    /// # Errors
    ///
    /// As [`ActorRef::ask_until`].
    pub async fn ask_keyed<K: Hash + ?Sized, M: Send + 'static>(
        &self,
        key: &K,
        msg: M,
        timeout: Duration,
    ) -> Result<A::Reply, AskError<M>>
    where
        A: Handler<M>,
    {
        self.pick_keyed(key).ask(msg, timeout).await
    }

    /// Stops the workers (see [`SupervisorRef::stop`]).
    pub fn stop(&self, mode: ShutdownMode) -> bool {
        self.supervisor.stop(mode)
    }
}
