//! The [`Orchestrator`]: runs, resumes, recovers and resolves saga instances against a
//! [`Journal`].
//!
//! # How an instance is driven
//!
//! Every operation on an instance (`run`, `resume`, `recover`, `resolve`) first takes
//! the instance's async lock (see `locks.rs`) and keeps it until it returns, so one
//! instance is only ever driven by one task: two events for it are processed one after
//! the other, the second seeing the journal the first left.
//!
//! Under the lock, the instance's records are folded into a `Replay` and the driver
//! goes on from there:
//!
//! - **forward**, unit by unit (a step, or a parallel group whose members run together
//!   in the driving task): for each step not completed and not given up, append
//!   `StepStarted` (the intent, with the attempt number and idempotency key), run the
//!   action, append `StepCompleted` with its output or `StepFailed`. A failed attempt is
//!   retried after the policy's delay; the last failure is marked `gave_up`. When a
//!   unit ends with a given-up step, `Compensating` is appended; when all units are done,
//!   `SagaCompleted`.
//! - **compensating**, units in reverse: each completed, not yet compensated step with a
//!   compensation gets `CompensationStarted`, its compensation, then
//!   `CompensationCompleted` or `CompensationFailed`; retried per the compensation
//!   policy; a given-up compensation appends `SagaDeadLettered` once its unit is done.
//!   When all are undone, `SagaCompensated`.
//!
//! A crash (or a dropped future) anywhere leaves a prefix of these records. Resuming
//! from it: completed steps are not run again (their outputs come from the journal); a
//! step with an intent and no outcome is *in doubt* and runs again with the same
//! idempotency key; the phase and the retry budgets used are read back too. Each record
//! is appended only after the previous one is durable, so the journal never shows an
//! outcome without its intent.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use futures_util::future::join_all;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;
use weft_sync::atomic::{AtomicU64, Ordering};
use weft_time::{Clock, Deadline, Rng, TokioClock};

use crate::definition::{AnyInput, Definition, ErasedCtx};
use crate::journal::{Event, Journal, Record};
use crate::locks::Locks;
use crate::state::{Outputs, Phase, Replay};
use crate::{Error, Outcome, Saga, SagaStatus, StepError};

/// Counters of an [`Orchestrator`] since it was built: a cheap snapshot from
/// [`Orchestrator::metrics`].
///
/// ```
/// use weft_saga::Metrics;
/// let m = Metrics::default();
/// assert_eq!(m.started, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Instances started by [`Orchestrator::run`].
    pub started: u64,
    /// Instances that completed every step.
    pub completed: u64,
    /// Instances that compensated every completed step.
    pub compensated: u64,
    /// Instances parked because a compensation gave up.
    pub dead_lettered: u64,
    /// Dead-lettered instances resumed by [`Orchestrator::resume`].
    pub resumed: u64,
    /// Dead-lettered instances marked resolved by [`Orchestrator::resolve`].
    pub resolved: u64,
    /// In-flight instances picked up by [`Orchestrator::recover`] or `resume` after a
    /// crash (driven from a journal no live task was driving).
    pub recovered: u64,
    /// Action attempts started.
    pub step_attempts: u64,
    /// Action attempts that failed and were retried.
    pub step_retries: u64,
    /// Compensation attempts started.
    pub compensation_attempts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    completed: AtomicU64,
    compensated: AtomicU64,
    dead_lettered: AtomicU64,
    resumed: AtomicU64,
    resolved: AtomicU64,
    recovered: AtomicU64,
    step_attempts: AtomicU64,
    step_retries: AtomicU64,
    compensation_attempts: AtomicU64,
}

/// Counting only: nothing is ordered by these, so `Relaxed` suffices.
fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Runs saga instances and keeps them going across failures and restarts.
///
/// Build it with [`Orchestrator::builder`] over a [`Journal`], registering every
/// [`Saga`] definition whose instances it may run or recover. Cloning is cheap (the
/// clones share everything).
///
/// - [`run`](Orchestrator::run) starts an instance and drives it to its end;
/// - [`recover`](Orchestrator::recover), after a restart, drives every instance the
///   journal shows in flight;
/// - [`resume`](Orchestrator::resume) retries a dead-lettered instance's compensations
///   (or drives any in-flight instance);
/// - [`resolve`](Orchestrator::resolve) marks a dead-lettered instance as fixed by hand;
/// - [`status`](Orchestrator::status) and [`metrics`](Orchestrator::metrics) observe.
///
/// Time (attempt timeouts, the saga deadline, the journal's timestamps) is read through
/// the [`Clock`] given to the builder, by default [`TokioClock`], and waited for on
/// tokio's timer, so `tokio::time::pause` drives it in tests.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_saga::Error> {
/// use weft_saga::{MemoryJournal, Orchestrator, Outcome, Saga, StepError};
///
/// let saga = Saga::<u32>::builder("double")
///     .step("double", |cx| async move { Ok::<_, StepError>(cx.input() * 2) }, |_cx, _: u32| async { Ok(()) })
///     .build()?;
/// let orch = Orchestrator::builder(MemoryJournal::new()).register(&saga).build()?;
/// let Outcome::Completed(outputs) = orch.run(&saga, "d-1", 21).await? else { panic!() };
/// assert_eq!(outputs.get::<u32>("double")?, 42);
/// assert_eq!(orch.metrics().completed, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

struct Inner {
    journal: Arc<dyn Journal>,
    clock: Arc<dyn Clock>,
    sagas: HashMap<String, Arc<Definition>>,
    locks: Locks,
    counters: Counters,
}

impl fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Orchestrator")
            .field("journal", &self.inner.journal)
            .field("sagas", &self.inner.sagas.keys().collect::<Vec<_>>())
            .field("metrics", &self.metrics())
            .finish()
    }
}

/// Builder of an [`Orchestrator`]; see [`Orchestrator::builder`].
#[must_use = "an OrchestratorBuilder does nothing until `.build()` is called"]
pub struct OrchestratorBuilder {
    journal: Arc<dyn Journal>,
    clock: Arc<dyn Clock>,
    sagas: Vec<Arc<Definition>>,
}

impl fmt::Debug for OrchestratorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrchestratorBuilder")
            .field("journal", &self.journal)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl OrchestratorBuilder {
    /// The clock time is read from (default [`TokioClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Registers a saga definition, so its instances can be run and recovered.
    pub fn register<I>(mut self, saga: &Saga<I>) -> Self {
        self.sagas.push(Arc::clone(&saga.def));
        self
    }

    /// Checks that no two definitions share a name.
    pub fn build(self) -> Result<Orchestrator, Error> {
        let mut sagas = HashMap::new();
        for def in self.sagas {
            let name = def.name.clone();
            if let Some(prev) = sagas.insert(name.clone(), def) {
                if !Arc::ptr_eq(&prev, &sagas[&name]) {
                    return Err(Error::InvalidConfig(format!(
                        "two different saga definitions are named `{name}`"
                    )));
                }
            }
        }
        Ok(Orchestrator {
            inner: Arc::new(Inner {
                journal: self.journal,
                clock: self.clock,
                sagas,
                locks: Locks::default(),
                counters: Counters::default(),
            }),
        })
    }
}

/// What `run_step` / `compensate_step` report when the journal worked.
enum StepEnd {
    Done(Value),
    GaveUp(String),
}

impl Orchestrator {
    /// A builder over `journal`.
    pub fn builder(journal: impl Journal) -> OrchestratorBuilder {
        OrchestratorBuilder {
            journal: Arc::new(journal),
            clock: Arc::new(TokioClock),
            sagas: Vec::new(),
        }
    }

    /// Starts instance `saga_id` of `saga` with `input` and drives it until it completes,
    /// is compensated or is dead-lettered.
    ///
    /// Idempotent by id: if `saga_id` already exists (a redelivered start message), its
    /// `input` is ignored and the existing instance is driven on (if a crash left it in
    /// flight) or its outcome returned. An id that belongs to another definition is an
    /// [`Error::IdInUse`].
    ///
    /// Dropping the returned future stops the instance where it is, as a crash would:
    /// it stays in flight in the journal for [`resume`](Orchestrator::resume) or
    /// [`recover`](Orchestrator::recover).
    pub async fn run<I>(&self, saga: &Saga<I>, saga_id: &str, input: I) -> Result<Outcome, Error>
    where
        I: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        check_id(saga_id)?;
        let def = self.definition(&saga.def.name)?;
        if !Arc::ptr_eq(&def, &saga.def) {
            return Err(Error::NotRegistered {
                saga: saga.def.name.clone(),
            });
        }
        let encoded = serde_json::to_value(&input).map_err(|e| Error::Codec {
            what: format!("the input of saga `{saga_id}`"),
            reason: e.to_string(),
        })?;
        let inner = &self.inner;
        let _guard = inner.locks.lock(saga_id).await;
        let mut records = inner.journal.load(saga_id).await?;
        if records.is_empty() {
            let started = Record::new(
                saga_id,
                inner.now_ms(),
                Event::SagaStarted {
                    saga: def.name.clone(),
                    input: encoded,
                },
            );
            inner.journal.append(started.clone()).await?;
            bump(&inner.counters.started);
            tracing::info!(saga = %def.name, saga_id, "saga started");
            records.push(started);
            let replay = Replay::fold(saga_id, &records, Some(&def))?;
            return inner
                .drive(&def, saga_id, replay, Arc::new(input) as AnyInput)
                .await;
        }
        let replay = Replay::fold(saga_id, &records, None)?;
        if replay.saga != def.name {
            return Err(Error::IdInUse {
                saga_id: saga_id.to_owned(),
                existing: replay.saga,
            });
        }
        inner.drive_existing(saga_id, records, false).await
    }

    /// Drives instance `saga_id` on from its journal, holding it exclusively meanwhile:
    ///
    /// - dead-lettered: appends `SagaResumed` and retries its pending compensations with
    ///   a fresh retry budget (the manual "try again" after fixing what made them fail);
    /// - in flight with no task driving it (after a crash): goes on as
    ///   [`recover`](Orchestrator::recover) would;
    /// - finished: returns its outcome, doing nothing.
    ///
    /// If another task is driving the instance, this waits until that one returns, then
    /// acts on what it left: concurrent calls never drive one instance twice.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_saga::Error> {
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use weft_saga::{MemoryJournal, Orchestrator, Outcome, Saga, SagaState, StepError};
    ///
    /// let fixed = Arc::new(AtomicBool::new(false));
    /// let f = fixed.clone();
    /// let saga = Saga::<()>::builder("s")
    ///     .step("a", |_cx| async { Ok::<_, StepError>(()) }, move |_cx, ()| {
    ///         let ok = f.load(Ordering::SeqCst);
    ///         async move { if ok { Ok(()) } else { Err(StepError::permanent("broken")) } }
    ///     })
    ///     .step("b", |_cx| async { Err::<(), _>(StepError::permanent("no")) }, |_cx, ()| async { Ok(()) })
    ///     .build()?;
    /// let orch = Orchestrator::builder(MemoryJournal::new()).register(&saga).build()?;
    /// assert!(matches!(orch.run(&saga, "i", ()).await?, Outcome::DeadLettered { .. }));
    /// fixed.store(true, Ordering::SeqCst);
    /// assert_eq!(orch.resume("i").await?.state(), SagaState::Compensated);
    /// # Ok(()) }
    /// ```
    pub async fn resume(&self, saga_id: &str) -> Result<Outcome, Error> {
        let _guard = self.inner.locks.lock(saga_id).await;
        let records = self.inner.journal.load(saga_id).await?;
        self.inner.drive_existing(saga_id, records, true).await
    }

    /// After a restart: drives every instance the journal shows in flight, all at once,
    /// each to its end. Completed steps are not run again; in-doubt steps run again with
    /// their idempotency key. Dead-lettered instances are reported, not resumed (that
    /// takes [`resume`](Orchestrator::resume)).
    ///
    /// Returns each in-flight instance's id with its outcome, or the error that stopped
    /// it (e.g. [`Error::NotRegistered`] for a definition this orchestrator lacks): no
    /// instance is skipped silently.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_saga::Error> {
    /// use weft_saga::{FileJournal, FsyncPolicy, Orchestrator, Saga, StepError};
    /// let dir = tempfile::tempdir()?;
    /// let saga = Saga::<u8>::builder("s")
    ///     .step("a", |_cx| async { Ok::<_, StepError>(()) }, |_cx, ()| async { Ok(()) })
    ///     .build()?;
    /// // At start-up, before taking new work:
    /// let journal = FileJournal::open(dir.path().join("sagas"), FsyncPolicy::Batch)?;
    /// let orch = Orchestrator::builder(journal).register(&saga).build()?;
    /// for (id, result) in orch.recover().await? {
    ///     println!("{id}: {result:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn recover(&self) -> Result<Vec<(String, Result<Outcome, Error>)>, Error> {
        let ids = self.inner.journal.in_flight().await?;
        if !ids.is_empty() {
            tracing::info!(in_flight = ids.len(), "recovering sagas");
        }
        let results = join_all(ids.iter().map(|id| async move {
            let _guard = self.inner.locks.lock(id).await;
            let records = self.inner.journal.load(id).await?;
            self.inner.drive_existing(id, records, false).await
        }))
        .await;
        Ok(ids.into_iter().zip(results).collect())
    }

    /// Marks dead-lettered instance `saga_id` as resolved by hand (`note` says how); it
    /// is then finished. Fails with [`Error::WrongState`] unless it is dead-lettered.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_saga::Error> {
    /// use weft_saga::{MemoryJournal, Orchestrator, Saga, SagaState, StepError};
    /// let saga = Saga::<()>::builder("s")
    ///     .step("a", |_cx| async { Ok::<_, StepError>(()) }, |_cx, ()| async { Err(StepError::permanent("gone")) })
    ///     .step("b", |_cx| async { Err::<(), _>(StepError::permanent("no")) }, |_cx, ()| async { Ok(()) })
    ///     .build()?;
    /// let orch = Orchestrator::builder(MemoryJournal::new()).register(&saga).build()?;
    /// orch.run(&saga, "i", ()).await?;
    /// orch.resolve("i", "refunded by hand, ticket 123").await?;
    /// assert_eq!(orch.status("i").await?.state, SagaState::Resolved);
    /// assert!(orch.in_flight().await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn resolve(&self, saga_id: &str, note: &str) -> Result<(), Error> {
        let inner = &self.inner;
        let _guard = inner.locks.lock(saga_id).await;
        let records = inner.journal.load(saga_id).await?;
        let replay = Replay::fold(saga_id, &records, None)?;
        if !matches!(replay.phase, Phase::DeadLettered { .. }) {
            return Err(Error::WrongState {
                saga_id: saga_id.to_owned(),
                state: replay.state(),
                what: "only a dead-lettered saga can be resolved by hand",
            });
        }
        inner
            .journal
            .append(Record::new(
                saga_id,
                inner.now_ms(),
                Event::SagaResolved {
                    note: note.to_owned(),
                },
            ))
            .await?;
        bump(&inner.counters.resolved);
        tracing::info!(saga = %replay.saga, saga_id, note, "dead-lettered saga resolved by hand");
        Ok(())
    }

    /// A snapshot of instance `saga_id`, folded from its journal: state, steps in
    /// progress, attempts, completed and compensated steps, and the full history.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_saga::Error> {
    /// use weft_saga::{MemoryJournal, Orchestrator, Saga, SagaState, StepError};
    /// let saga = Saga::<()>::builder("s")
    ///     .step("a", |_cx| async { Ok::<_, StepError>(()) }, |_cx, ()| async { Ok(()) })
    ///     .build()?;
    /// let orch = Orchestrator::builder(MemoryJournal::new()).register(&saga).build()?;
    /// orch.run(&saga, "i", ()).await?;
    /// let status = orch.status("i").await?;
    /// assert_eq!(status.state, SagaState::Completed);
    /// assert_eq!(status.attempts["a"], 1);
    /// assert_eq!(status.history.len(), 4); // started, intent, outcome, completed
    /// # Ok(()) }
    /// ```
    pub async fn status(&self, saga_id: &str) -> Result<SagaStatus, Error> {
        let records = self.inner.journal.load(saga_id).await?;
        let replay = Replay::fold(saga_id, &records, None)?;
        Ok(replay.status(saga_id, records))
    }

    /// The ids of the instances in flight (including dead-lettered ones).
    pub async fn in_flight(&self) -> Result<Vec<String>, Error> {
        self.inner.journal.in_flight().await
    }

    /// The counters so far.
    pub fn metrics(&self) -> Metrics {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Metrics {
            started: get(&c.started),
            completed: get(&c.completed),
            compensated: get(&c.compensated),
            dead_lettered: get(&c.dead_lettered),
            resumed: get(&c.resumed),
            resolved: get(&c.resolved),
            recovered: get(&c.recovered),
            step_attempts: get(&c.step_attempts),
            step_retries: get(&c.step_retries),
            compensation_attempts: get(&c.compensation_attempts),
        }
    }

    fn definition(&self, name: &str) -> Result<Arc<Definition>, Error> {
        self.inner.definition(name)
    }
}

fn check_id(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.contains('/') {
        Err(Error::InvalidSagaId(id.to_owned()))
    } else {
        Ok(())
    }
}

/// One drive of one instance (under its lock).
struct Drive<'a> {
    inner: &'a Inner,
    def: &'a Definition,
    id: Arc<str>,
    input: AnyInput,
    deadline: Option<Deadline>,
}

impl Inner {
    fn definition(&self, name: &str) -> Result<Arc<Definition>, Error> {
        self.sagas
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotRegistered {
                saga: name.to_owned(),
            })
    }

    fn now_ms(&self) -> u64 {
        self.clock
            .system_now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Drives an instance found in the journal (`records`). `resume_dead_letter`: whether
    /// a dead-lettered one is resumed or just reported.
    async fn drive_existing(
        &self,
        saga_id: &str,
        records: Vec<crate::Record>,
        resume_dead_letter: bool,
    ) -> Result<Outcome, Error> {
        let replay = Replay::fold(saga_id, &records, None)?;
        if let Phase::Finished(outcome) = &replay.phase {
            return Ok(outcome.clone());
        }
        let def = self.definition(&replay.saga)?;
        let mut replay = Replay::fold(saga_id, &records, Some(&def))?;
        let input = (def.decode_input)(&replay.input).map_err(|reason| Error::Codec {
            what: format!("the journaled input of saga `{saga_id}`"),
            reason,
        })?;
        match &replay.phase {
            Phase::DeadLettered { step, error } if !resume_dead_letter => {
                return Ok(Outcome::DeadLettered {
                    step: step.clone(),
                    error: error.clone(),
                });
            }
            Phase::DeadLettered { .. } => {
                self.journal
                    .append(Record::new(saga_id, self.now_ms(), Event::SagaResumed))
                    .await?;
                bump(&self.counters.resumed);
                tracing::info!(saga = %def.name, saga_id, "dead-lettered saga resumed");
                replay.resumed();
            }
            _ => {
                bump(&self.counters.recovered);
                tracing::info!(
                    saga = %def.name,
                    saga_id,
                    state = %replay.state(),
                    in_doubt = ?replay.open,
                    "driving an in-flight saga from its journal"
                );
            }
        }
        self.drive(&def, saga_id, replay, input).await
    }

    async fn drive(
        &self,
        def: &Definition,
        saga_id: &str,
        replay: Replay,
        input: AnyInput,
    ) -> Result<Outcome, Error> {
        let deadline = def.deadline.map(|limit| {
            let elapsed = Duration::from_millis(self.now_ms().saturating_sub(replay.started_at_ms));
            Deadline::after(&*self.clock, limit.saturating_sub(elapsed))
        });
        let drive = Drive {
            inner: self,
            def,
            id: Arc::from(saga_id),
            input,
            deadline,
        };
        let span = tracing::info_span!("saga", saga = %def.name, saga_id);
        drive.run(replay).instrument(span).await
    }
}

impl Drive<'_> {
    async fn append(&self, event: Event) -> Result<(), Error> {
        let record = Record::new(&*self.id, self.inner.now_ms(), event);
        self.inner.journal.append(record).await
    }

    async fn run(&self, replay: Replay) -> Result<Outcome, Error> {
        match replay.phase {
            Phase::Finished(ref o) => Ok(o.clone()),
            Phase::DeadLettered {
                ref step,
                ref error,
            } => Ok(Outcome::DeadLettered {
                step: step.clone(),
                error: error.clone(),
            }),
            Phase::Forward => self.forward(replay).await,
            Phase::Compensating => self.compensate(replay).await,
        }
    }

    fn ctx(
        &self,
        step: &str,
        key: String,
        attempt: u32,
        outputs: &Arc<BTreeMap<String, Value>>,
    ) -> ErasedCtx {
        ErasedCtx {
            input: Arc::clone(&self.input),
            saga_id: Arc::clone(&self.id),
            step: Arc::from(step),
            key: Arc::from(key),
            attempt,
            outputs: Arc::clone(outputs),
        }
    }

    async fn forward(&self, mut replay: Replay) -> Result<Outcome, Error> {
        for unit in &self.def.units {
            let todo: Vec<usize> = unit
                .members()
                .iter()
                .copied()
                .filter(|&i| {
                    let name = &self.def.steps[i].name;
                    !replay.outputs.contains_key(name) && !replay.given_up.contains_key(name)
                })
                .collect();
            if !todo.is_empty() {
                let snapshot = Arc::clone(&replay.outputs);
                let ends = join_all(todo.iter().map(|&i| {
                    let name = &self.def.steps[i].name;
                    self.run_step(
                        i,
                        &snapshot,
                        replay.failures.get(name).copied().unwrap_or(0),
                        replay.attempts.get(name).copied().unwrap_or(0),
                        replay.open.contains(name),
                    )
                }))
                .await;
                drop(snapshot); // so that the inserts below do not copy the map
                let mut journal_error = None;
                for (&i, end) in todo.iter().zip(ends) {
                    let name = self.def.steps[i].name.clone();
                    match end {
                        Ok(StepEnd::Done(v)) => {
                            replay.completed_order.push(name.clone());
                            Arc::make_mut(&mut replay.outputs).insert(name, v);
                        }
                        Ok(StepEnd::GaveUp(reason)) => {
                            replay.given_up.insert(name, reason);
                        }
                        Err(e) => {
                            journal_error.get_or_insert(e);
                        }
                    }
                }
                if let Some(e) = journal_error {
                    return Err(e);
                }
            }
            // Members run in definition order, so the first given-up one is reported.
            if let Some((step, reason)) = unit.members().iter().find_map(|&i| {
                let name = &self.def.steps[i].name;
                replay.given_up.get(name).map(|r| (name.clone(), r.clone()))
            }) {
                tracing::warn!(step = %step, reason = %reason, "step failed for good; compensating");
                self.append(Event::Compensating {
                    step: step.clone(),
                    reason: reason.clone(),
                })
                .await?;
                replay.failure = Some((step, reason));
                return self.compensate(replay).await;
            }
        }
        self.append(Event::SagaCompleted).await?;
        bump(&self.inner.counters.completed);
        tracing::info!("saga completed");
        Ok(Outcome::Completed(Outputs(Arc::unwrap_or_clone(
            replay.outputs,
        ))))
    }

    /// Runs step `i`'s action until it succeeds or gives up. `failures` and `attempt`:
    /// what the journal already shows; `in_doubt`: the journal shows an attempt started
    /// with no outcome (a crash), which may have applied.
    ///
    /// An in-doubt step gets one attempt even past the saga's deadline (bounded by its
    /// own timeout only): its participant deduplicates by key, so the re-run only finds
    /// out whether the effect happened, and the saga then knows whether to compensate
    /// it. Giving it up unseen could leave an applied effect uncompensated.
    async fn run_step(
        &self,
        i: usize,
        outputs: &Arc<BTreeMap<String, Value>>,
        mut failures: u32,
        mut attempt: u32,
        mut in_doubt: bool,
    ) -> Result<StepEnd, Error> {
        let step = &self.def.steps[i];
        let policy = step.retry.unwrap_or(self.def.retry);
        let key = format!("{}/{}", self.id, step.name);
        let clock = &*self.inner.clock;
        let mut rng = Rng::new();
        loop {
            let deadline = if std::mem::take(&mut in_doubt) {
                None
            } else {
                self.deadline
            };
            if deadline.is_some_and(|d| d.is_expired(clock)) {
                let error = "the saga's deadline passed before the step could run".to_owned();
                self.append(Event::StepFailed {
                    step: step.name.clone(),
                    attempt,
                    error: error.clone(),
                    gave_up: true,
                })
                .await?;
                return Ok(StepEnd::GaveUp(error));
            }
            attempt += 1;
            self.append(Event::StepStarted {
                step: step.name.clone(),
                attempt,
                key: key.clone(),
            })
            .await?;
            bump(&self.inner.counters.step_attempts);
            tracing::debug!(step = %step.name, attempt, "step attempt");
            let fut = (step.action)(self.ctx(&step.name, key.clone(), attempt, outputs));
            let saga_left = deadline.map(|d| d.remaining(clock));
            let limit = [step.timeout, saga_left].into_iter().flatten().min();
            let result = match limit {
                None => fut.await,
                Some(limit) => match tokio::time::timeout(limit, fut).await {
                    Ok(r) => r,
                    Err(_) if saga_left.is_some_and(|s| s <= limit) => Err(StepError::permanent(
                        format!("the saga's deadline passed during attempt {attempt}"),
                    )),
                    Err(_) => Err(StepError::retryable(format!(
                        "attempt {attempt} timed out after {limit:?}"
                    ))),
                },
            };
            match result {
                Ok(output) => {
                    self.append(Event::StepCompleted {
                        step: step.name.clone(),
                        output: output.clone(),
                    })
                    .await?;
                    return Ok(StepEnd::Done(output));
                }
                Err(e) => {
                    failures += 1;
                    let delay = if e.is_permanent() {
                        None
                    } else {
                        policy.delay(failures - 1, &mut rng)
                    };
                    let delay =
                        delay.filter(|&d| self.deadline.is_none_or(|dl| d < dl.remaining(clock)));
                    self.append(Event::StepFailed {
                        step: step.name.clone(),
                        attempt,
                        error: e.message().to_owned(),
                        gave_up: delay.is_none(),
                    })
                    .await?;
                    let Some(delay) = delay else {
                        return Ok(StepEnd::GaveUp(e.message().to_owned()));
                    };
                    bump(&self.inner.counters.step_retries);
                    tracing::warn!(step = %step.name, attempt, error = %e, ?delay, "step attempt failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn compensate(&self, mut replay: Replay) -> Result<Outcome, Error> {
        let (failed_step, reason) = replay.failure.clone().unwrap_or_default();
        for unit in self.def.units.iter().rev() {
            let todo: Vec<usize> = unit
                .members()
                .iter()
                .copied()
                .filter(|&i| {
                    let s = &self.def.steps[i];
                    s.compensation.is_some()
                        && replay.outputs.contains_key(&s.name)
                        && !replay.compensated.contains(&s.name)
                })
                .collect();
            if todo.is_empty() {
                continue;
            }
            let snapshot = Arc::clone(&replay.outputs);
            let ends = join_all(todo.iter().map(|&i| {
                let name = &self.def.steps[i].name;
                self.compensate_step(
                    i,
                    &snapshot,
                    replay.comp_failures.get(name).copied().unwrap_or(0),
                    replay.comp_attempts.get(name).copied().unwrap_or(0),
                )
            }))
            .await;
            let mut gave_up = None;
            let mut journal_error = None;
            for (&i, end) in todo.iter().zip(ends) {
                let name = self.def.steps[i].name.clone();
                match end {
                    Ok(StepEnd::Done(_)) => {
                        replay.compensated.insert(name);
                    }
                    Ok(StepEnd::GaveUp(error)) => {
                        gave_up.get_or_insert((name, error));
                    }
                    Err(e) => {
                        journal_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = journal_error {
                return Err(e);
            }
            if let Some((step, error)) = gave_up {
                self.append(Event::SagaDeadLettered {
                    step: step.clone(),
                    error: error.clone(),
                })
                .await?;
                bump(&self.inner.counters.dead_lettered);
                tracing::error!(step = %step, error = %error, "compensation gave up; saga dead-lettered");
                return Ok(Outcome::DeadLettered { step, error });
            }
        }
        self.append(Event::SagaCompensated).await?;
        bump(&self.inner.counters.compensated);
        tracing::info!(failed_step = %failed_step, "saga compensated");
        Ok(Outcome::Compensated {
            failed_step,
            reason,
        })
    }

    /// Runs step `i`'s compensation until it succeeds or gives up.
    async fn compensate_step(
        &self,
        i: usize,
        outputs: &Arc<BTreeMap<String, Value>>,
        mut failures: u32,
        mut attempt: u32,
    ) -> Result<StepEnd, Error> {
        let step = &self.def.steps[i];
        let Some(compensation) = &step.compensation else {
            return Ok(StepEnd::Done(Value::Null));
        };
        let output = outputs.get(&step.name).unwrap_or(&Value::Null);
        let policy = self.def.compensation_retry;
        let key = format!("{}/{}/compensate", self.id, step.name);
        let mut rng = Rng::new();
        loop {
            attempt += 1;
            self.append(Event::CompensationStarted {
                step: step.name.clone(),
                attempt,
                key: key.clone(),
            })
            .await?;
            bump(&self.inner.counters.compensation_attempts);
            tracing::debug!(step = %step.name, attempt, "compensation attempt");
            let fut = compensation(self.ctx(&step.name, key.clone(), attempt, outputs), output);
            let result = match step.timeout {
                None => fut.await,
                Some(limit) => tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
                    Err(StepError::retryable(format!(
                        "compensation attempt {attempt} timed out after {limit:?}"
                    )))
                }),
            };
            match result {
                Ok(()) => {
                    self.append(Event::CompensationCompleted {
                        step: step.name.clone(),
                    })
                    .await?;
                    return Ok(StepEnd::Done(Value::Null));
                }
                Err(e) => {
                    failures += 1;
                    let delay = if e.is_permanent() {
                        None
                    } else {
                        policy.delay(failures - 1, &mut rng)
                    };
                    self.append(Event::CompensationFailed {
                        step: step.name.clone(),
                        attempt,
                        error: e.message().to_owned(),
                        gave_up: delay.is_none(),
                    })
                    .await?;
                    let Some(delay) = delay else {
                        return Ok(StepEnd::GaveUp(e.message().to_owned()));
                    };
                    tracing::warn!(step = %step.name, attempt, error = %e, ?delay, "compensation failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}
