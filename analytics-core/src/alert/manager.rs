//! The alert manager: the rule commands (a weft-cqrs `CommandBus` over a
//! weft-eventsourcing store, with validation and a known-sinks middleware), the rules
//! read model, the per-rule alert aggregates, and the evaluation of closed windows.
//!
//! Evaluation (one round, [`AlertManager::evaluate`]):
//!
//! 1. ask every shard for a barrier; the minimum watermark `W` is reached everywhere,
//!    so every window with `end + allowed lateness <= W` is final on every shard (the
//!    live feed's rule);
//! 2. wait until the window store has applied the closed-window log up to its head;
//! 3. per rule, read the final windows ending after the last one it evaluated, merged
//!    over the rule's series, and (tumbling and hopping windows) fill windows without
//!    events: count
//!    and sum are 0 there, the other aggregates have no value;
//! 4. feed them in order to the rule's alert aggregate, which records every evaluation
//!    and every transition; firing and resolving notify the rule's sinks.

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use weft_cqrs::{CommandBus, CommandInfo, Middleware, Position, ProjectionHandle};
use weft_eventsourcing::{
    EventStore, InMemorySnapshotStore, InMemoryStore, Repository, SnapshotStore,
};
use weft_sync::Mutex;
use weft_sync::atomic::{AtomicU64, Ordering};

use super::rule::{AlertRule, ChangeRule, CreateRule, DeleteRule, RuleEvent, RuleRegistry};
use super::state::{AlertEvent, AlertState, AlertStatus, Observe, ObservedWindow};
use crate::Error;
use crate::engine::Engine;
use crate::webhook::{Notification, Notifier};
use crate::window::{WindowKind, pane_of};

use super::log::RuleLog;

/// Empty windows filled per rule and round at most (a long quiet stretch evaluates its
/// last ones: enough for any for-duration or resolve count below this many windows).
const MAX_FILL: i64 = 10_000;

/// Builds an [`AlertManager`].
pub struct AlertManagerBuilder {
    engine: Engine,
    rules_store: Arc<dyn EventStore>,
    state_store: Arc<dyn EventStore>,
    snapshots: Option<WithSnapshots>,
    notifier: Notifier,
    timeout: Duration,
}

/// The alert-state repository.
type States = Repository<AlertState, Arc<dyn EventStore>>;

/// Puts a snapshot store on the repository (the store's type is erased here).
type WithSnapshots = Box<dyn FnOnce(States) -> Result<States, weft_eventsourcing::Error> + Send>;

/// Snapshot interval of the default in-memory snapshot store, in events.
const SNAPSHOT_EVERY: u64 = 256;

impl fmt::Debug for AlertManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertManagerBuilder")
            .field("notifier", &self.notifier)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AlertManagerBuilder {
    /// Where rule commands are recorded (default: in memory). Give a
    /// [`weft_eventsourcing::FileLog`] to keep rules across restarts.
    pub fn rules_store(mut self, store: impl EventStore + 'static) -> Self {
        self.rules_store = Arc::new(store);
        self
    }

    /// Where alert state and history are recorded (default: in memory). Use a different
    /// store (or directory) from the rules store.
    pub fn state_store(mut self, store: impl EventStore + 'static) -> Self {
        self.state_store = Arc::new(store);
        self
    }

    /// Snapshots of alert state every `every` events into `store` (default: in memory,
    /// every 256 events), so loading a rule's state replays a bounded tail of its
    /// history. Give a `weft_eventsourcing::FileSnapshotStore` to keep them across
    /// restarts.
    pub fn snapshots(mut self, store: impl SnapshotStore + 'static, every: u64) -> Self {
        self.snapshots = Some(Box::new(move |r: States| r.with_snapshots(store, every)));
        self
    }

    /// The notifier and its sinks (default: no sinks).
    pub fn notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// How long a round waits for the engine and a command for the rules model
    /// (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the rules projection and the command bus.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a zero timeout or outside a tokio runtime.
    pub fn build(self) -> Result<AlertManager, Error> {
        if self.timeout.is_zero() {
            return Err(Error::Config("the timeout must be positive".into()));
        }
        let cfg = |e: weft_cqrs::Error| Error::Config(e.to_string());
        let log: Arc<RuleLog> = Arc::new(RuleLog::new(Arc::clone(&self.rules_store)));
        let registry = weft_cqrs::projection(
            "weft-analytics-rules",
            Arc::clone(&log),
            RuleRegistry::default(),
        )
        .start()
        .map_err(cfg)?;
        let timeout = self.timeout;
        let states = Repository::new(self.state_store);
        let states = match self.snapshots {
            Some(with) => with(states),
            None => states.with_snapshots(InMemorySnapshotStore::new(), SNAPSHOT_EVERY),
        }
        .map_err(|e| Error::Config(e.to_string()))?;
        let (r1, r2, r3) = (registry.clone(), registry.clone(), registry.clone());
        let (l1, l2, l3) = (Arc::clone(&log), Arc::clone(&log), Arc::clone(&log));
        let bus = CommandBus::builder(Arc::clone(&log))
            .middleware(KnownSinks(self.notifier.clone()))
            .handler(move |c: CreateRule| {
                let (reg, log) = (r1.clone(), Arc::clone(&l1));
                async move {
                    let key = c.0.key();
                    if current(&reg, &log, timeout).await?.contains_key(&key) {
                        return Err(
                            format!("rule `{key}` exists; change or delete it instead").into()
                        );
                    }
                    Ok(vec![RuleEvent::Created(c.0)])
                }
            })
            .handler(move |c: ChangeRule| {
                let (reg, log) = (r2.clone(), Arc::clone(&l2));
                async move {
                    let key = c.0.key();
                    if !current(&reg, &log, timeout).await?.contains_key(&key) {
                        return Err(format!("no rule `{key}` to change; create it").into());
                    }
                    Ok(vec![RuleEvent::Changed(c.0)])
                }
            })
            .handler(move |c: DeleteRule| {
                let (reg, log) = (r3.clone(), Arc::clone(&l3));
                async move {
                    if !current(&reg, &log, timeout).await?.contains_key(&c.key) {
                        return Err(format!("no rule `{}` to delete", c.key).into());
                    }
                    Ok(vec![RuleEvent::Deleted { key: c.key }])
                }
            })
            .timeout(timeout)
            .build()
            .map_err(cfg)?;
        Ok(AlertManager {
            inner: Arc::new(Inner {
                engine: self.engine,
                bus,
                log,
                registry,
                states,
                notifier: self.notifier,
                through: Mutex::new(HashMap::new()),
                round: tokio::sync::Mutex::new(()),
                rounds: AtomicU64::new(0),
                windows: AtomicU64::new(0),
                transitions: AtomicU64::new(0),
                timeout,
            }),
        })
    }
}

/// The rules read model once it has applied everything logged so far.
async fn current(
    reg: &ProjectionHandle<RuleRegistry>,
    log: &RuleLog,
    timeout: Duration,
) -> Result<BTreeMap<String, AlertRule>, weft_cqrs::BoxError> {
    let head = log.head();
    reg.wait_for(head, timeout).await?;
    Ok(reg.query(|r| r.rules.clone()))
}

/// Validation middleware: a rule may only name sinks the notifier has.
#[derive(Debug)]
struct KnownSinks(Notifier);

impl Middleware for KnownSinks {
    fn name(&self) -> &'static str {
        "known-sinks"
    }

    fn before(&self, _info: &CommandInfo<'_>, command: &dyn Any) -> Result<(), String> {
        let rule = if let Some(CreateRule(r)) = command.downcast_ref::<CreateRule>() {
            r
        } else if let Some(ChangeRule(r)) = command.downcast_ref::<ChangeRule>() {
            r
        } else {
            return Ok(());
        };
        match rule.sinks.iter().find(|s| !self.0.has_sink(s)) {
            Some(s) => Err(format!(
                "rule `{}` names sink `{s}`, which is not configured",
                rule.key()
            )),
            None => Ok(()),
        }
    }
}

/// The alert manager's counters and the rules by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlertMetrics {
    /// Rules defined.
    pub rules: usize,
    /// Rules pending.
    pub pending: usize,
    /// Rules firing.
    pub firing: usize,
    /// Evaluation rounds completed.
    pub rounds: u64,
    /// Windows evaluated, all rules.
    pub windows: u64,
    /// Transitions recorded.
    pub transitions: u64,
    /// Alert-state events replayed to load states (bounded per load by snapshots).
    pub state_events_replayed: u64,
    /// Alert-state loads that started from a snapshot.
    pub snapshot_hits: u64,
}

/// What one evaluation round did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalReport {
    /// The watermark every shard had reached (`i64::MIN`: no event yet).
    pub watermark: i64,
    /// Windows evaluated, all rules.
    pub windows: usize,
    /// The transitions recorded, by rule key, in order.
    pub transitions: Vec<(String, AlertEvent)>,
    /// Notifications delivered (one per sink).
    pub delivered: usize,
    /// Notifications dead-lettered (one per sink).
    pub dead_lettered: usize,
}

/// Alert rules over an [`Engine`]'s closed windows. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use weft_analytics::{AlertManager, AlertRule, Comparison, Condition, Engine, RuleAggregate};
/// let engine = Engine::builder().tick_interval(None).build()?;
/// let alerts = AlertManager::builder(engine).build()?;
/// let rule = AlertRule::new("acme", "errors", "http.errors", RuleAggregate::Count,
///     Condition::new(Comparison::Above, 10.0));
/// alerts.create_rule(rule.clone()).await?;
/// assert!(alerts.create_rule(rule).await.is_err(), "already exists");
/// assert_eq!(alerts.rules().await?.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AlertManager {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    bus: CommandBus<RuleLog>,
    log: Arc<RuleLog>,
    registry: ProjectionHandle<RuleRegistry>,
    states: States,
    notifier: Notifier,
    /// Per rule: the end of the newest window evaluated.
    through: Mutex<HashMap<String, i64>>,
    /// One round at a time.
    round: tokio::sync::Mutex<()>,
    rounds: AtomicU64,
    windows: AtomicU64,
    transitions: AtomicU64,
    timeout: Duration,
}

impl fmt::Debug for AlertManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertManager")
            .field("rules", &self.inner.registry.query(|r| r.rules.len()))
            .field("notifier", &self.inner.notifier)
            .finish_non_exhaustive()
    }
}

impl AlertManager {
    /// The engine whose windows this manager evaluates.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// A builder over `engine`, with in-memory stores and no sinks.
    pub fn builder(engine: Engine) -> AlertManagerBuilder {
        AlertManagerBuilder {
            engine,
            rules_store: Arc::new(InMemoryStore::new()),
            state_store: Arc::new(InMemoryStore::new()),
            notifier: Notifier::default(),
            snapshots: None,
            timeout: Duration::from_secs(5),
        }
    }

    fn command_error(e: weft_cqrs::Error) -> Error {
        Error::RuleCommand(e.to_string())
    }

    /// Creates a rule (command `CreateRule`).
    ///
    /// The returned future owns what it needs (no borrow of `self`), so it can be
    /// spawned or awaited inside a saga step.
    ///
    /// # Errors
    ///
    /// [`Error::RuleCommand`]: invalid rule, unknown sink, a rule with its key exists.
    pub fn create_rule(
        &self,
        rule: AlertRule,
    ) -> impl Future<Output = Result<Position, Error>> + Send + 'static {
        let bus = self.inner.bus.clone();
        async move {
            bus.execute(CreateRule(rule))
                .await
                .map_err(Self::command_error)
        }
    }

    /// Replaces a rule's definition (command `ChangeRule`); its alert state is kept.
    ///
    /// # Errors
    ///
    /// [`Error::RuleCommand`]: invalid rule, unknown sink, no such rule.
    pub fn change_rule(
        &self,
        rule: AlertRule,
    ) -> impl Future<Output = Result<Position, Error>> + Send + 'static {
        let bus = self.inner.bus.clone();
        async move {
            bus.execute(ChangeRule(rule))
                .await
                .map_err(Self::command_error)
        }
    }

    /// Deletes a rule (command `DeleteRule`); its alert history is kept.
    ///
    /// # Errors
    ///
    /// [`Error::RuleCommand`]: malformed key, no such rule.
    pub fn delete_rule(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Position, Error>> + Send + 'static {
        let bus = self.inner.bus.clone();
        let command = DeleteRule {
            key: key.to_owned(),
        };
        async move { bus.execute(command).await.map_err(Self::command_error) }
    }

    /// The rules, by key, once the read model has applied every command so far.
    ///
    /// # Errors
    ///
    /// [`Error::AlertStore`] if the read model does not catch up within the timeout.
    pub fn rules(&self) -> impl Future<Output = Result<Vec<AlertRule>, Error>> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        async move {
            let rules = current(&inner.registry, &inner.log, inner.timeout)
                .await
                .map_err(|e| Error::AlertStore(e.to_string()))?;
            Ok(rules.into_values().collect())
        }
    }

    /// The alert state of rule `key` (`tenant/name`), rebuilt from its events.
    ///
    /// # Errors
    ///
    /// [`Error::AlertStore`] if the state store fails.
    pub fn state(&self, key: &str) -> Result<AlertState, Error> {
        self.inner
            .states
            .load(key)
            .map(|l| l.state)
            .map_err(|e| Error::AlertStore(e.to_string()))
    }

    /// Rule `key`'s history: every recorded event, oldest first (filter with
    /// [`AlertEvent::is_transition`] for the transitions).
    ///
    /// # Errors
    ///
    /// [`Error::AlertStore`] if the state store fails.
    pub fn history(&self, key: &str) -> Result<Vec<AlertEvent>, Error> {
        let states = &self.inner.states;
        let stream = states.stream_id(key);
        let store = |e: weft_eventsourcing::Error| Error::AlertStore(e.to_string());
        let mut out = Vec::new();
        loop {
            let chunk = states
                .store()
                .read_stream(&stream, out.len() as u64 + 1, 1024)
                .map_err(store)?;
            let n = chunk.len();
            for r in chunk {
                out.push(states.decode_event(r).map_err(store)?);
            }
            if n < 1024 {
                return Ok(out);
            }
        }
    }

    /// A snapshot of the counters and of how many rules are in each state.
    ///
    /// # Errors
    ///
    /// [`Error::AlertStore`] if the rules model or the state store fails.
    pub async fn metrics(&self) -> Result<AlertMetrics, Error> {
        let mut m = AlertMetrics {
            rounds: self.inner.rounds.load(Ordering::Relaxed),
            windows: self.inner.windows.load(Ordering::Relaxed),
            transitions: self.inner.transitions.load(Ordering::Relaxed),
            ..AlertMetrics::default()
        };
        let repo = self.inner.states.metrics();
        m.state_events_replayed = repo.events_replayed;
        m.snapshot_hits = repo.snapshot_hits;
        for r in self.rules().await? {
            m.rules += 1;
            match self.state(&r.key())?.status {
                AlertStatus::Pending => m.pending += 1,
                AlertStatus::Firing => m.firing += 1,
                _ => {}
            }
        }
        Ok(m)
    }

    /// The notifier (dead letters, counters, breaker states).
    pub fn notifier(&self) -> &Notifier {
        &self.inner.notifier
    }

    /// Runs evaluation rounds in the background until the manager is dropped: one as
    /// soon as the window store applies newly closed windows, and at least one every
    /// `interval` (windows that close without events for a rule, and quiet periods,
    /// are seen on the interval).
    pub fn spawn(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let store = self.inner.engine.inner.store.clone();
        tokio::spawn(async move {
            loop {
                // Returns early when a shard's closed windows reach the store.
                let _ = store.wait_for(store.position() + 1, interval).await;
                let Some(inner) = weak.upgrade() else { break };
                let m = AlertManager { inner };
                if let Err(e) = m.evaluate().await {
                    tracing::warn!(error = %e, "alert evaluation round failed");
                    drop(m);
                    // Do not spin on a failing engine.
                    tokio::time::sleep(interval).await;
                }
            }
        })
    }

    /// Stops the rules projection (the manager answers no more commands).
    pub async fn shutdown(&self) {
        self.inner.registry.shutdown().await;
    }

    /// One evaluation round over the windows closed since the last (see the module
    /// docs); notifications are delivered (concurrently) before it returns.
    ///
    /// The alert-state store is synchronous and called inline: with a
    /// `weft_eventsourcing::FileLog`, each rule with new windows waits for one group
    /// commit per round.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] or [`Error::Closed`] if the engine does not answer within the timeout,
    /// [`Error::AlertStore`] if the state store fails.
    pub async fn evaluate(&self) -> Result<EvalReport, Error> {
        let inner = &*self.inner;
        let _round = inner.round.lock().await;
        let engine = &inner.engine.inner;
        let timeout = inner.timeout;
        let wm = engine.barrier(timeout).await?;
        let mut report = EvalReport {
            watermark: wm,
            ..EvalReport::default()
        };
        if wm == i64::MIN {
            return Ok(report);
        }
        let closed_end = wm.saturating_sub(engine.cfg.lateness);
        engine
            .store
            .wait_for(engine.log_head(), timeout)
            .await
            .map_err(|_| crate::Error::Timeout(timeout))?;
        let rules = self.rules().await?;
        // Forget the progress of deleted rules (their state stays in the store: a rule
        // created again under the same key goes on from it).
        let keys: HashSet<String> = rules.iter().map(AlertRule::key).collect();
        inner.through.lock().retain(|k, _| keys.contains(k));
        // Windows on a grid (tumbling, hopping): (size, slide) in ms.
        let grid = match engine.cfg.spec.kind {
            WindowKind::Panes { size, slide } => Some((size, slide)),
            WindowKind::Session { .. } => None,
        };
        let mut notes: Vec<(String, Notification)> = Vec::new();
        let round = Round {
            wm,
            closed_end,
            grid,
        };
        let mut failure = None;
        for rule in rules {
            // A failure stops the round, but what it recorded is still notified.
            if let Err(e) = self.evaluate_rule(&rule, &round, &mut report, &mut notes) {
                failure = Some(e);
                break;
            }
        }
        inner.rounds.fetch_add(1, Ordering::Relaxed);
        inner
            .windows
            .fetch_add(report.windows as u64, Ordering::Relaxed);
        inner
            .transitions
            .fetch_add(report.transitions.len() as u64, Ordering::Relaxed);
        let notifier = &inner.notifier;
        let results =
            futures_util::future::join_all(notes.iter().map(|(sink, n)| notifier.deliver(sink, n)))
                .await;
        for r in results {
            match r {
                Ok(_) => report.delivered += 1,
                Err(_) => report.dead_lettered += 1,
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Evaluates `rule` on the windows closed since its last evaluation: records them
    /// in its alert aggregate and queues its notifications.
    fn evaluate_rule(
        &self,
        rule: &AlertRule,
        round: &Round,
        report: &mut EvalReport,
        notes: &mut Vec<(String, Notification)>,
    ) -> Result<(), Error> {
        let inner = &*self.inner;
        let engine = &inner.engine.inner;
        let Round {
            wm,
            closed_end,
            grid,
        } = *round;
        let key = rule.key();
        let remembered = inner.through.lock().get(&key).copied();
        let through = match remembered {
            Some(t) => Some(t),
            None => self.state(&key)?.last_end,
        };
        let mut q = rule.query();
        q.end_range = Some((through.unwrap_or(i64::MIN), closed_end));
        // Tumbling: a step of one window picks the finest tier (windows as emitted).
        q.step = grid.filter(|(size, slide)| size == slide).map(|g| g.0);
        let result = engine.store.query(|s| s.run(&q))?;
        // Keyed by (end, start): session windows of different series may share an end.
        let mut windows: BTreeMap<(i64, i64), Option<f64>> = BTreeMap::new();
        for g in &result.groups {
            for p in &g.points {
                windows.insert((p.end, p.start), p.values.first().and_then(|v| v.as_f64()));
            }
        }
        let mut newest = through;
        if let Some((size, slide)) = grid {
            // Fill windows without events after the first window seen, up to the
            // newest closed one (after `finish` the watermark is at the end of
            // time: only up to the newest window with data).
            let upper = if wm == i64::MAX {
                windows.keys().next_back().map(|k| k.0).or(through)
            } else {
                Some(pane_of(closed_end, slide))
            };
            let first = through.or_else(|| windows.keys().next().map(|k| k.0));
            if let (Some(first), Some(upper)) = (first, upper) {
                let lo = first.max(upper.saturating_sub(MAX_FILL * slide));
                let mut end = lo.saturating_add(slide);
                while end <= upper {
                    windows
                        .entry((end, end - size))
                        .or_insert(rule.aggregate.empty_value());
                    end += slide;
                }
                newest = newest.max(Some(upper));
            }
        }
        let observed: Vec<ObservedWindow> = windows
            .iter()
            .filter(|((end, _), _)| through.is_none_or(|t| *end > t))
            .map(|(&(end, start), &value)| ObservedWindow { start, end, value })
            .collect();
        if let Some(last) = observed.last() {
            newest = newest.max(Some(last.end));
        }
        report.windows += observed.len();
        if !observed.is_empty() {
            // One command, one append, for every window of the round.
            let done = inner
                .states
                .execute(
                    &key,
                    &Observe {
                        rule: rule.clone(),
                        windows: observed,
                    },
                )
                .map_err(|e| Error::AlertStore(e.to_string()))?;
            for e in done.events {
                let (status, at, value) = match e {
                    AlertEvent::Firing { at, value } => (Some(AlertStatus::Firing), at, value),
                    AlertEvent::Resolved { at, value } => (Some(AlertStatus::Resolved), at, value),
                    AlertEvent::Evaluated { .. } => continue,
                    _ => (None, 0, None),
                };
                tracing::info!(rule = %key, event = ?e, "alert transition");
                if let Some(status) = status {
                    for sink in &rule.sinks {
                        notes.push((
                            sink.clone(),
                            Notification {
                                rule: key.clone(),
                                status,
                                at,
                                value,
                                metric: rule.metric.clone(),
                                threshold: rule.condition.threshold,
                            },
                        ));
                    }
                }
                report.transitions.push((key.clone(), e));
            }
        }
        if let Some(n) = newest {
            inner.through.lock().insert(key, n);
        }
        Ok(())
    }
}

/// What one round knows about the engine.
struct Round {
    /// The watermark every shard reached.
    wm: i64,
    /// Windows ending at or before this are final.
    closed_end: i64,
    /// The windows' (size, slide) in ms, if they are on a grid (not sessions).
    grid: Option<(i64, i64)>,
}
