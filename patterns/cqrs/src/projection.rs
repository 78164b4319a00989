//! The query side's engine: [`Projection`]s run by tracking processors, reached through
//! a [`ProjectionHandle`].
//!
//! # Design
//!
//! One task per projection (the *tracking processor*) is the only writer of its read
//! model. It loops: read a batch after its position from the [`EventSource`], apply
//! each event whose position is past the read model's (the position guard: a
//! re-delivered event is skipped, so at-least-once delivery applies each event exactly
//! once to the state), publish the new position, push subscription updates, and every
//! `checkpoint_every` events (and whenever it catches up) save a [`Checkpoint`]. When
//! caught up it sleeps on the log's head watch.
//!
//! The checkpoint saves position and state together, atomically, so after a crash the
//! processor restores a state that contains exactly the events up to the saved
//! position and re-reads everything after it: events applied after the last checkpoint
//! are applied again to a state that does not contain them. No update is lost or
//! doubled.
//!
//! A blue/green rebuild runs in the same task: a fresh read model (green) is fed from
//! position 0 one batch per loop turn, interleaved with the live (blue) one, and never
//! past blue's position; when the two positions are equal the models are swapped under
//! the read-model lock, so a query sees either the old model or the new one at the same
//! position, never a half-built one.

use std::fmt;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use weft_sync::atomic::{AtomicBool, AtomicU64, Ordering};
use weft_sync::{Arc, Mutex};
use weft_time::{Backoff, BackoffPolicy, Rng};

use crate::error::SubscriptionError;
use crate::{
    BoxError, Checkpoint, CheckpointStore, Error, EventSource, MemoryCheckpoints, Position,
    Recorded,
};

/// A read model updated from the event log.
///
/// ```
/// use std::collections::HashMap;
/// use weft_cqrs::{Projection, Recorded};
///
/// #[derive(Default)]
/// struct Balances(HashMap<String, i64>);
/// impl Projection for Balances {
///     type Event = i64;
///     fn apply(&mut self, e: &Recorded<i64>) {
///         *self.0.entry(e.key.clone()).or_default() += e.event;
///     }
/// }
/// let mut b = Balances::default();
/// b.apply(&Recorded { position: 1, key: "a".into(), event: 5 });
/// assert_eq!(b.0["a"], 5);
/// ```
pub trait Projection: Send + 'static {
    /// The events it reads.
    type Event: Clone + Send + Sync + 'static;

    /// Applies one event. The processor calls it once per event, in position order,
    /// only for events past the read model's position.
    fn apply(&mut self, event: &Recorded<Self::Event>);

    /// The read model's state to save with a checkpoint, or `None` (the default) if it
    /// keeps none there.
    ///
    /// A projection that returns `None` and keeps its read model in memory must use
    /// [`MemoryCheckpoints`] (it is rebuilt from zero on start); with a durable store
    /// its read model must be durable itself (and guard by
    /// [`Recorded::position`](crate::Recorded), since events after the checkpoint are
    /// delivered again after a crash).
    fn snapshot(&self) -> Option<Vec<u8>> {
        None
    }

    /// Restores the state saved by [`snapshot`](Projection::snapshot).
    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let _ = state;
        Err("this projection does not restore saved state".to_owned())
    }
}

/// A projection's progress as published to waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Progress {
    position: Position,
    stopped: bool,
}

/// One pushed result of a subscription query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update<R> {
    /// The projection position the result reflects.
    pub position: Position,
    /// The query's result.
    pub value: R,
}

/// Receives a subscription query's initial result, then one update per batch of events
/// the projection applies.
///
/// **Slow-subscriber policy**: each subscriber has a bounded channel. If it is full
/// when an update is pushed, the subscriber is disconnected: [`recv`](Self::recv)
/// returns the updates still buffered, then [`SubscriptionError::Lagged`], and the
/// projection's status counts it in `subscribers_dropped`. Updates are never skipped
/// silently; a lagged client subscribes again and gets a fresh initial result.
#[derive(Debug)]
pub struct Subscription<R> {
    initial: Option<Update<R>>,
    rx: mpsc::Receiver<Update<R>>,
    lagged: Arc<AtomicBool>,
}

impl<R> Subscription<R> {
    /// The next result: the initial one first, then pushed updates in position order.
    pub async fn recv(&mut self) -> Result<Update<R>, SubscriptionError> {
        if let Some(first) = self.initial.take() {
            return Ok(first);
        }
        match self.rx.recv().await {
            Some(update) => Ok(update),
            None => Err(self.end()),
        }
    }

    /// Like [`recv`](Self::recv) without waiting: `Ok(None)` if nothing is ready yet.
    pub fn try_recv(&mut self) -> Result<Option<Update<R>>, SubscriptionError> {
        if let Some(first) = self.initial.take() {
            return Ok(Some(first));
        }
        match self.rx.try_recv() {
            Ok(update) => Ok(Some(update)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(self.end()),
        }
    }

    fn end(&self) -> SubscriptionError {
        if self.lagged.load(Ordering::Acquire) {
            SubscriptionError::Lagged
        } else {
            SubscriptionError::Closed
        }
    }
}

trait Subscriber<P>: Send {
    /// Pushes the current result; `false` removes the subscriber.
    fn push(&mut self, model: &P, position: Position, dropped: &AtomicU64) -> bool;
}

struct Sub<R, F> {
    query: F,
    tx: mpsc::Sender<Update<R>>,
    lagged: Arc<AtomicBool>,
}

impl<P, R, F> Subscriber<P> for Sub<R, F>
where
    R: Send + 'static,
    F: Fn(&P) -> R + Send + 'static,
{
    fn push(&mut self, model: &P, position: Position, dropped: &AtomicU64) -> bool {
        let value = (self.query)(model);
        match self.tx.try_send(Update { position, value }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagged.store(true, Ordering::Release);
                dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(position, "slow subscriber disconnected");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

struct Model<P> {
    model: P,
    position: Position,
    subscribers: Vec<Box<dyn Subscriber<P>>>,
}

impl<P: Projection> Model<P> {
    /// Applies the events past the position; returns how many were applied.
    fn apply(&mut self, batch: &[Recorded<P::Event>], skipped: &AtomicU64) -> u64 {
        let mut applied = 0;
        for event in batch {
            if event.position <= self.position {
                skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.model.apply(event);
            self.position = event.position;
            applied += 1;
        }
        applied
    }

    fn push(&mut self, dropped: &AtomicU64) {
        let (model, position) = (&self.model, self.position);
        self.subscribers
            .retain_mut(|s| s.push(model, position, dropped));
    }
}

#[derive(Default)]
struct Counters {
    applied: AtomicU64,
    skipped: AtomicU64,
    checkpointed: AtomicU64,
    checkpoint_failures: AtomicU64,
    read_errors: AtomicU64,
    subscribers_dropped: AtomicU64,
    rebuilds: AtomicU64,
}

struct Shared<P> {
    name: String,
    model: Mutex<Model<P>>,
    progress: watch::Sender<Progress>,
    head: watch::Receiver<Position>,
    stopped: Mutex<Option<String>>,
    counters: Counters,
}

enum Control<P> {
    Rebuild(P, oneshot::Sender<Result<Position, Error>>),
    Shutdown(oneshot::Sender<()>),
}

/// A snapshot of a projection's state and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// The position the read model has applied up to.
    pub position: Position,
    /// The log's head.
    pub head: Position,
    /// `head - position`: how many events the read model is behind.
    pub lag: u64,
    /// The position of the last saved checkpoint.
    pub checkpointed: Position,
    /// Events applied since start (a rebuild's events included).
    pub applied: u64,
    /// Re-delivered events the position guard skipped.
    pub duplicates_skipped: u64,
    /// Checkpoint saves that failed (logged; retried at the next checkpoint).
    pub checkpoint_failures: u64,
    /// Reads from the event source that failed and were retried (or, the last one,
    /// stopped the processor once the retry policy gave up).
    pub read_errors: u64,
    /// Live subscription queries.
    pub subscribers: usize,
    /// Subscribers disconnected because they fell behind.
    pub subscribers_dropped: u64,
    /// Blue/green rebuilds swapped in.
    pub rebuilds: u64,
    /// Why the processor stopped, if it did.
    pub stopped: Option<String>,
}

/// Configures and starts a projection's tracking processor.
pub struct ProjectionBuilder<S: EventSource, P: Projection<Event = S::Event>> {
    name: String,
    source: std::sync::Arc<S>,
    model: P,
    store: std::sync::Arc<dyn CheckpointStore>,
    batch_size: usize,
    checkpoint_every: u64,
    read_retry: Option<BackoffPolicy>,
}

impl<S: EventSource, P: Projection<Event = S::Event>> fmt::Debug for ProjectionBuilder<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectionBuilder")
            .field("name", &self.name)
            .field("batch_size", &self.batch_size)
            .field("checkpoint_every", &self.checkpoint_every)
            .finish_non_exhaustive()
    }
}

impl<S: EventSource, P: Projection<Event = S::Event>> ProjectionBuilder<S, P> {
    /// Where the checkpoint is kept (default: [`MemoryCheckpoints`], i.e. not durable).
    pub fn checkpoints(mut self, store: std::sync::Arc<dyn CheckpointStore>) -> Self {
        self.store = store;
        self
    }

    /// How many events one read fetches (default 512, at least 1).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events;
        self
    }

    /// Save a checkpoint after this many applied events (default 1024, at least 1);
    /// one is also saved whenever the processor catches up with the log.
    pub fn checkpoint_every(mut self, events: u64) -> Self {
        self.checkpoint_every = events;
        self
    }

    /// How failed reads from the event source are retried before the processor stops
    /// (default: exponential from 10 ms, doubling up to 5 s, 30 retries: about two
    /// minutes). Each failure is logged and counted in
    /// [`ProjectionStatus::read_errors`].
    pub fn read_retry(mut self, policy: BackoffPolicy) -> Self {
        self.read_retry = Some(policy);
        self
    }

    /// Loads the checkpoint (restoring its state into the read model) and starts the
    /// tracking processor on the current tokio runtime.
    pub fn start(self) -> Result<ProjectionHandle<P>, Error> {
        if self.batch_size == 0 || self.checkpoint_every == 0 {
            return Err(Error::Config(
                "batch_size and checkpoint_every must be at least 1".into(),
            ));
        }
        let mut model = self.model;
        let mut position = 0;
        let loaded = self
            .store
            .load(&self.name)
            .map_err(|source| Error::Checkpoint {
                projection: self.name.clone(),
                source,
            })?;
        if let Some(cp) = loaded {
            if let Some(state) = &cp.state {
                model.restore(state).map_err(|reason| Error::Restore {
                    projection: self.name.clone(),
                    position: cp.position,
                    reason,
                })?;
            }
            position = cp.position;
            tracing::debug!(projection = %self.name, position, "projection resumed from checkpoint");
        }
        let shared = Arc::new(Shared {
            name: self.name,
            model: Mutex::new(Model {
                model,
                position,
                subscribers: Vec::new(),
            }),
            progress: watch::Sender::new(Progress {
                position,
                stopped: false,
            }),
            head: self.source.watch_head(),
            stopped: Mutex::new(None),
            counters: Counters::default(),
        });
        shared
            .counters
            .checkpointed
            .store(position, Ordering::Relaxed);
        let read_retry = match self.read_retry {
            Some(policy) => policy,
            None => Backoff::exponential(Duration::from_millis(10))
                .max_delay(Duration::from_secs(5))
                .max_retries(30)
                .build()
                .map_err(|e| Error::Config(e.to_string()))?,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let processor = Processor {
            read_retry,
            rng: Rng::new(),
            shared: Arc::clone(&shared),
            source: self.source,
            store: self.store,
            batch_size: self.batch_size,
            checkpoint_every: self.checkpoint_every,
            control: rx,
        };
        tokio::spawn(processor.run());
        Ok(ProjectionHandle {
            shared,
            control: tx,
        })
    }
}

/// Starts configuring the tracking processor of projection `name`, reading `source`
/// into `model`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_cqrs::Error> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use weft_cqrs::{projection, EventLog, MemoryLog, Projection, Recorded};
///
/// #[derive(Default)]
/// struct Count(u64);
/// impl Projection for Count {
///     type Event = &'static str;
///     fn apply(&mut self, _: &Recorded<&'static str>) { self.0 += 1; }
/// }
///
/// let log = Arc::new(MemoryLog::new());
/// let count = projection("count", Arc::clone(&log), Count::default()).start()?;
/// let at = log.append("k", vec!["a", "b"]).await?;
/// count.wait_for(at, Duration::from_secs(5)).await?; // read your write
/// assert_eq!(count.query(|c| c.0), 2);
/// assert_eq!(count.status().lag, 0);
/// # Ok(()) }
/// ```
pub fn projection<S, P>(
    name: impl Into<String>,
    source: std::sync::Arc<S>,
    model: P,
) -> ProjectionBuilder<S, P>
where
    S: EventSource,
    P: Projection<Event = S::Event>,
{
    ProjectionBuilder {
        name: name.into(),
        source,
        model,
        store: std::sync::Arc::new(MemoryCheckpoints::new()),
        batch_size: 512,
        checkpoint_every: 1024,
        read_retry: None,
    }
}

struct Processor<S: EventSource, P: Projection<Event = S::Event>> {
    shared: Arc<Shared<P>>,
    source: std::sync::Arc<S>,
    store: std::sync::Arc<dyn CheckpointStore>,
    batch_size: usize,
    checkpoint_every: u64,
    read_retry: BackoffPolicy,
    rng: Rng,
    control: mpsc::UnboundedReceiver<Control<P>>,
}

/// A read model being rebuilt beside the live one.
struct Green<P> {
    model: Model<P>,
    reply: oneshot::Sender<Result<Position, Error>>,
}

impl<S: EventSource, P: Projection<Event = S::Event>> Processor<S, P> {
    async fn run(mut self) {
        let reason = match self.track().await {
            Ok(()) => "shut down".to_owned(),
            Err(e) => {
                tracing::error!(projection = %self.shared.name, error = %e, "projection stopped");
                e.to_string()
            }
        };
        *self.shared.stopped.lock() = Some(reason);
        self.shared.progress.send_modify(|p| p.stopped = true);
        // Ends every subscription (their senders drop). A `subscribe` that takes the
        // model lock after this sees `stopped` and fails instead of waiting forever.
        self.shared.model.lock().subscribers.clear();
    }

    fn position(&self) -> Position {
        self.shared.model.lock().position
    }

    /// Reads a page, retrying failures by the retry policy.
    async fn read(
        &mut self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<Recorded<P::Event>>, Error> {
        let mut retry = 0;
        loop {
            match self.source.read(after, limit).await {
                Ok(page) => return Ok(page),
                Err(e) => {
                    self.shared
                        .counters
                        .read_errors
                        .fetch_add(1, Ordering::Relaxed);
                    let Some(delay) = self.read_retry.delay(retry, &mut self.rng) else {
                        return Err(e);
                    };
                    tracing::warn!(projection = %self.shared.name, error = %e, ?delay, "event source read failed; retrying");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
            }
        }
    }

    async fn track(&mut self) -> Result<(), Error> {
        let mut head = self.source.watch_head();
        let mut since_checkpoint = 0;
        let mut green: Option<Green<P>> = None;
        loop {
            // Control requests first.
            loop {
                match self.control.try_recv() {
                    Ok(Control::Rebuild(model, reply)) => {
                        green = Some(self.green(model, reply, green.take()));
                    }
                    Ok(Control::Shutdown(done)) => {
                        self.checkpoint().await;
                        let _ = done.send(());
                        return Ok(());
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        self.checkpoint().await;
                        return Ok(()); // every handle dropped
                    }
                }
            }
            head.borrow_and_update();
            let from = self.position();
            let batch = self.read(from, self.batch_size).await?;
            // Progress is a higher position, not a non-empty page: a source that
            // re-delivers would otherwise keep the loop spinning.
            let mut live_moved = false;
            if !batch.is_empty() {
                let position = {
                    let mut m = self.shared.model.lock();
                    let applied = m.apply(&batch, &self.shared.counters.skipped);
                    self.shared
                        .counters
                        .applied
                        .fetch_add(applied, Ordering::Relaxed);
                    since_checkpoint += applied;
                    if applied > 0 {
                        m.push(&self.shared.counters.subscribers_dropped);
                    }
                    m.position
                };
                live_moved = position > from;
                if live_moved {
                    self.shared.progress.send_modify(|p| p.position = position);
                }
                if since_checkpoint >= self.checkpoint_every {
                    self.checkpoint().await;
                    since_checkpoint = 0;
                }
            }
            if let Some(g) = green.take() {
                green = self.step_green(g).await?;
                if green.is_none() {
                    since_checkpoint = 0; // the swap saved one
                }
                continue;
            }
            if live_moved {
                continue;
            }
            if since_checkpoint > 0 {
                self.checkpoint().await;
                since_checkpoint = 0;
            }
            tokio::select! {
                changed = head.changed() => {
                    if changed.is_err() {
                        // The source is gone: nothing more will come.
                        self.checkpoint().await;
                        return Ok(());
                    }
                }
                request = self.control.recv() => match request {
                    Some(Control::Rebuild(model, reply)) => {
                        green = Some(self.green(model, reply, None));
                    }
                    Some(Control::Shutdown(done)) => {
                        let _ = done.send(());
                        return Ok(());
                    }
                    None => return Ok(()),
                },
            }
        }
    }

    fn green(
        &self,
        model: P,
        reply: oneshot::Sender<Result<Position, Error>>,
        replaced: Option<Green<P>>,
    ) -> Green<P> {
        if let Some(old) = replaced {
            let _ = old.reply.send(Err(Error::Stopped {
                projection: self.shared.name.clone(),
                reason: "a newer rebuild replaced this one".into(),
            }));
        }
        tracing::info!(projection = %self.shared.name, "blue/green rebuild started");
        Green {
            model: Model {
                model,
                position: 0,
                subscribers: Vec::new(),
            },
            reply,
        }
    }

    /// Feeds the green model one batch, never past the live position; swaps it in when
    /// it has caught up. Returns it if it is still rebuilding.
    async fn step_green(&mut self, mut g: Green<P>) -> Result<Option<Green<P>>, Error> {
        let target = self.position();
        if g.model.position < target {
            let limit = usize::try_from(target - g.model.position)
                .unwrap_or(usize::MAX)
                .min(self.batch_size);
            let batch = self.read(g.model.position, limit).await?;
            let applied = g.model.apply(&batch, &self.shared.counters.skipped);
            self.shared
                .counters
                .applied
                .fetch_add(applied, Ordering::Relaxed);
        }
        let position = {
            let mut m = self.shared.model.lock();
            if g.model.position < m.position {
                return Ok(Some(g));
            }
            std::mem::swap(&mut m.model, &mut g.model.model);
            m.push(&self.shared.counters.subscribers_dropped);
            m.position
        };
        self.shared
            .counters
            .rebuilds
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(projection = %self.shared.name, position, "blue/green rebuild swapped in");
        self.checkpoint().await;
        let _ = g.reply.send(Ok(position));
        Ok(None)
    }

    /// Saves the read model's position and state. A failure is logged and counted; the
    /// next checkpoint retries (the projection keeps running, its restart point is older).
    async fn checkpoint(&self) {
        let cp = {
            let m = self.shared.model.lock();
            Checkpoint {
                position: m.position,
                state: m.model.snapshot(),
            }
        };
        let store = std::sync::Arc::clone(&self.store);
        let name = self.shared.name.clone();
        let position = cp.position;
        let saved: Result<(), BoxError> =
            match tokio::task::spawn_blocking(move || store.save(&name, &cp)).await {
                Ok(r) => r,
                Err(e) => Err(e.into()),
            };
        match saved {
            Ok(()) => self
                .shared
                .counters
                .checkpointed
                .store(position, Ordering::Relaxed),
            Err(e) => {
                self.shared
                    .counters
                    .checkpoint_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(projection = %self.shared.name, error = %e, "checkpoint save failed");
            }
        }
    }
}

/// A running projection: queries over its read model, read-your-writes waits,
/// subscription queries, blue/green rebuilds and its status.
///
/// Cloning is cheap; the processor stops when every handle is dropped (saving a
/// checkpoint) or on [`shutdown`](Self::shutdown).
pub struct ProjectionHandle<P> {
    shared: Arc<Shared<P>>,
    control: mpsc::UnboundedSender<Control<P>>,
}

impl<P> Clone for ProjectionHandle<P> {
    fn clone(&self) -> Self {
        ProjectionHandle {
            shared: Arc::clone(&self.shared),
            control: self.control.clone(),
        }
    }
}

impl<P: Projection> fmt::Debug for ProjectionHandle<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectionHandle")
            .field("status", &self.status())
            .finish()
    }
}

impl<P: Projection> ProjectionHandle<P> {
    /// The projection's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The position the read model has applied up to.
    pub fn position(&self) -> Position {
        self.shared.progress.borrow().position
    }

    /// How many events the read model is behind the log's head.
    pub fn lag(&self) -> u64 {
        self.shared.head.borrow().saturating_sub(self.position())
    }

    /// Runs `query` over the read model as it is now (eventually consistent).
    pub fn query<R>(&self, query: impl FnOnce(&P) -> R) -> R {
        query(&self.shared.model.lock().model)
    }

    /// Waits until the read model has applied every event up to `position` (as returned
    /// by [`CommandBus::execute`](crate::CommandBus::execute)), for at most `timeout`;
    /// returns the position reached. Fails with [`Error::WaitTimeout`] at the deadline
    /// and [`Error::Stopped`] if the processor stopped.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> Result<Position, Error> {
        let mut rx = self.shared.progress.subscribe();
        let reached = tokio::time::timeout(
            timeout,
            rx.wait_for(|p| p.position >= position || p.stopped),
        )
        .await
        .map(|waited| waited.map(|p| *p));
        let progress = match reached {
            Ok(Ok(p)) => p,
            Ok(Err(_)) | Err(_) => *rx.borrow(),
        };
        if progress.position >= position {
            Ok(progress.position)
        } else if progress.stopped {
            Err(self.stopped_error())
        } else {
            Err(Error::WaitTimeout {
                projection: self.shared.name.clone(),
                wanted: position,
                reached: progress.position,
            })
        }
    }

    /// [`wait_for`](Self::wait_for) `position`, then [`query`](Self::query): read your
    /// own write.
    pub async fn query_at<R>(
        &self,
        position: Position,
        timeout: Duration,
        query: impl FnOnce(&P) -> R,
    ) -> Result<R, Error> {
        self.wait_for(position, timeout).await?;
        Ok(self.query(query))
    }

    /// Subscribes to `query`: the returned [`Subscription`] yields its result now, then
    /// its result after every batch the projection applies, through a channel of
    /// `capacity` updates (at least 1; see [`Subscription`] for the slow-subscriber
    /// policy).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use weft_cqrs::{projection, EventLog, MemoryLog, Projection, Recorded};
    /// #[derive(Default)]
    /// struct Sum(i64);
    /// impl Projection for Sum {
    ///     type Event = i64;
    ///     fn apply(&mut self, e: &Recorded<i64>) { self.0 += e.event; }
    /// }
    /// let log = Arc::new(MemoryLog::new());
    /// let sum = projection("sum", Arc::clone(&log), Sum::default()).start()?;
    /// let mut sub = sum.subscribe(16, |s| s.0)?;
    /// assert_eq!(sub.recv().await?.value, 0); // the initial result
    /// log.append("k", vec![2, 3]).await?;
    /// let update = sub.recv().await?;
    /// assert_eq!((update.position, update.value), (2, 5));
    /// # Ok(()) }
    /// ```
    pub fn subscribe<R, F>(&self, capacity: usize, query: F) -> Result<Subscription<R>, Error>
    where
        R: Send + 'static,
        F: Fn(&P) -> R + Send + 'static,
    {
        if capacity == 0 {
            return Err(Error::Config(
                "a subscription needs a capacity of at least 1".into(),
            ));
        }
        let (tx, rx) = mpsc::channel(capacity);
        let lagged = Arc::new(AtomicBool::new(false));
        // Under the model lock: no batch is applied between the initial result and the
        // registration, so the subscriber misses no update.
        let mut m = self.shared.model.lock();
        if self.shared.progress.borrow().stopped {
            drop(m);
            return Err(self.stopped_error());
        }
        let initial = Update {
            position: m.position,
            value: query(&m.model),
        };
        m.subscribers.push(Box::new(Sub {
            query,
            tx,
            lagged: Arc::clone(&lagged),
        }));
        Ok(Subscription {
            initial: Some(initial),
            rx,
            lagged,
        })
    }

    /// Rebuilds the read model from position 0 into `fresh`, beside the live one, and
    /// swaps it in once it has caught up (blue/green); returns the position of the swap.
    /// Queries keep reading the old model until then.
    pub async fn rebuild(&self, fresh: P) -> Result<Position, Error> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::Rebuild(fresh, tx))
            .map_err(|_| self.stopped_error())?;
        rx.await.map_err(|_| self.stopped_error())?
    }

    /// Stops the processor after saving a checkpoint.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// A snapshot of the projection's state and counters.
    pub fn status(&self) -> ProjectionStatus {
        let c = &self.shared.counters;
        let position = self.position();
        let head = *self.shared.head.borrow();
        ProjectionStatus {
            name: self.shared.name.clone(),
            position,
            head,
            lag: head.saturating_sub(position),
            checkpointed: c.checkpointed.load(Ordering::Relaxed),
            applied: c.applied.load(Ordering::Relaxed),
            duplicates_skipped: c.skipped.load(Ordering::Relaxed),
            checkpoint_failures: c.checkpoint_failures.load(Ordering::Relaxed),
            read_errors: c.read_errors.load(Ordering::Relaxed),
            subscribers: self.shared.model.lock().subscribers.len(),
            subscribers_dropped: c.subscribers_dropped.load(Ordering::Relaxed),
            rebuilds: c.rebuilds.load(Ordering::Relaxed),
            stopped: self.shared.stopped.lock().clone(),
        }
    }

    fn stopped_error(&self) -> Error {
        Error::Stopped {
            projection: self.shared.name.clone(),
            reason: self
                .shared
                .stopped
                .lock()
                .clone()
                .unwrap_or_else(|| "stopping".to_owned()),
        }
    }
}
