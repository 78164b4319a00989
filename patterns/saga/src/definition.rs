//! Saga definitions: [`Saga`], built by [`SagaBuilder`] (with [`GroupBuilder`] for
//! parallel groups), and the [`StepCtx`] every action and compensation receives.

use std::any::Any;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use weft_time::{Backoff, BackoffPolicy};

use crate::{Error, StepError};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub(crate) type AnyInput = Arc<dyn Any + Send + Sync>;
type ErasedAction = Arc<dyn Fn(ErasedCtx) -> BoxFuture<Result<Value, StepError>> + Send + Sync>;
type ErasedCompensation =
    Arc<dyn Fn(ErasedCtx, &Value) -> BoxFuture<Result<(), StepError>> + Send + Sync>;
type DecodeInput = fn(&Value) -> Result<AnyInput, String>;

/// What the orchestrator hands an action or compensation, before the input is typed.
#[derive(Clone)]
pub(crate) struct ErasedCtx {
    pub(crate) input: AnyInput,
    pub(crate) saga_id: Arc<str>,
    pub(crate) step: Arc<str>,
    pub(crate) key: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) outputs: Arc<BTreeMap<String, Value>>,
}

impl ErasedCtx {
    fn typed<I: Send + Sync + 'static>(self) -> Result<StepCtx<I>, StepError> {
        let input = Arc::downcast::<I>(self.input).map_err(|_| {
            StepError::permanent(
                "internal error: the saga input has another type than its definition",
            )
        })?;
        Ok(StepCtx {
            input,
            saga_id: self.saga_id,
            step: self.step,
            key: self.key,
            attempt: self.attempt,
            outputs: self.outputs,
        })
    }
}

/// What an action or a compensation receives: the saga's input, its identity, the
/// step's idempotency key and attempt number, and the outputs of the steps completed
/// before it.
///
/// The **idempotency key** is stable: every attempt of a step's action, in this process
/// or after a crash and restart, gets the same key (`"{saga_id}/{step}"`), and every
/// attempt of its compensation gets `"{saga_id}/{step}/compensate"`. A participant that
/// records the keys it has applied and answers a repeated key with the recorded result
/// applies each effect at most once, although the orchestrator may call it more than
/// once (a retry after a timeout, a re-run after a crash between the call and the
/// journal write).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_saga::Error> {
/// use weft_saga::{MemoryJournal, Orchestrator, Outcome, Saga, StepCtx, StepError};
/// async fn reserve(cx: StepCtx<u64>) -> Result<String, StepError> {
///     assert_eq!(cx.idempotency_key(), "o-1/reserve");
///     assert_eq!(cx.attempt(), 1);
///     Ok(format!("hold for {}", cx.input()))
/// }
/// async fn ship(cx: StepCtx<u64>) -> Result<(), StepError> {
///     let hold: String = cx.output("reserve")?;
///     assert_eq!(hold, "hold for 7");
///     Ok(())
/// }
/// let saga = Saga::builder("order")
///     .step("reserve", reserve, |_cx, _hold: String| async { Ok(()) })
///     .step_without_compensation("ship", ship)
///     .build()?;
/// let orch = Orchestrator::builder(MemoryJournal::new()).register(&saga).build()?;
/// assert!(matches!(orch.run(&saga, "o-1", 7).await?, Outcome::Completed(_)));
/// # Ok(()) }
/// ```
pub struct StepCtx<I> {
    input: Arc<I>,
    saga_id: Arc<str>,
    step: Arc<str>,
    key: Arc<str>,
    attempt: u32,
    outputs: Arc<BTreeMap<String, Value>>,
}

impl<I> StepCtx<I> {
    /// The saga instance's input.
    pub fn input(&self) -> &I {
        &self.input
    }

    /// The saga instance's id.
    pub fn saga_id(&self) -> &str {
        &self.saga_id
    }

    /// The step's name.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The stable key participants deduplicate by (see the type's docs).
    pub fn idempotency_key(&self) -> &str {
        &self.key
    }

    /// The attempt number, from 1. Actions count attempts across restarts;
    /// compensations count from the saga's last resume.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The output of `step`, a step completed before this one (for a compensation: any
    /// completed step), decoded as `T`.
    ///
    /// Fails with [`Error::Codec`] if that step has no output here (it has not
    /// completed, or runs in the same parallel group) or its output is not a `T`.
    pub fn output<T: DeserializeOwned>(&self, step: &str) -> Result<T, Error> {
        let value = self.outputs.get(step).ok_or_else(|| Error::Codec {
            what: format!("the output of step `{step}`"),
            reason: "that step has not completed before this one".into(),
        })?;
        T::deserialize(value).map_err(|e| Error::Codec {
            what: format!("the output of step `{step}`"),
            reason: e.to_string(),
        })
    }
}

impl<I> Clone for StepCtx<I> {
    fn clone(&self) -> Self {
        StepCtx {
            input: Arc::clone(&self.input),
            saga_id: Arc::clone(&self.saga_id),
            step: Arc::clone(&self.step),
            key: Arc::clone(&self.key),
            attempt: self.attempt,
            outputs: Arc::clone(&self.outputs),
        }
    }
}

impl<I> fmt::Debug for StepCtx<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepCtx")
            .field("saga_id", &self.saga_id)
            .field("step", &self.step)
            .field("key", &self.key)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// One step of a definition, type-erased.
pub(crate) struct StepDef {
    pub(crate) name: String,
    pub(crate) action: ErasedAction,
    pub(crate) compensation: Option<ErasedCompensation>,
    pub(crate) retry: Option<BackoffPolicy>,
    pub(crate) timeout: Option<Duration>,
}

impl fmt::Debug for StepDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepDef")
            .field("name", &self.name)
            .field("compensated", &self.compensation.is_some())
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A unit of forward execution: one step, or a parallel group (indices into `steps`).
#[derive(Debug, Clone)]
pub(crate) enum Unit {
    Single(usize),
    Parallel(Vec<usize>),
}

impl Unit {
    pub(crate) fn members(&self) -> &[usize] {
        match self {
            Unit::Single(i) => std::slice::from_ref(i),
            Unit::Parallel(v) => v,
        }
    }
}

/// A saga's definition with its input type erased: what the orchestrator stores.
#[derive(Debug)]
pub(crate) struct Definition {
    pub(crate) name: String,
    pub(crate) steps: Vec<StepDef>,
    pub(crate) units: Vec<Unit>,
    pub(crate) retry: BackoffPolicy,
    pub(crate) compensation_retry: BackoffPolicy,
    pub(crate) deadline: Option<Duration>,
    pub(crate) decode_input: DecodeInput,
}

impl Definition {
    pub(crate) fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }
}

/// A saga definition: named steps, each an async action with an async compensation, run
/// in order (or in parallel groups) over an input of type `I`.
///
/// Build one with [`Saga::builder`]; run instances of it with an
/// [`Orchestrator`](crate::Orchestrator) it is registered with. Cloning is cheap.
///
/// `I` is the instance's input, journaled as JSON when the instance starts and decoded
/// again when it is recovered after a crash. Each step's output is journaled as JSON
/// too, so a resumed saga hands the completed steps' outputs to later steps and to the
/// compensations without running those steps again.
///
/// ```
/// use std::time::Duration;
/// use weft_saga::{Saga, StepError};
/// use weft_time::Backoff;
///
/// let saga = Saga::<u64>::builder("transfer")
///     .step(
///         "debit",
///         |cx| async move { Ok::<_, StepError>(*cx.input()) },
///         |_cx, _amount: u64| async { Ok(()) },
///     )
///     .retry(Backoff::exponential(Duration::from_millis(50)).max_retries(3).build()?)
///     .parallel(|g| {
///         g.step("credit", |_cx| async { Ok::<_, StepError>(()) }, |_cx, ()| async { Ok(()) })
///             .step("notify", |_cx| async { Ok::<_, StepError>(()) }, |_cx, ()| async { Ok(()) })
///     })
///     .deadline(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(saga.name(), "transfer");
/// assert_eq!(saga.step_names(), ["debit", "credit", "notify"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Saga<I> {
    pub(crate) def: Arc<Definition>,
    _input: PhantomData<fn(I)>,
}

impl<I> Clone for Saga<I> {
    fn clone(&self) -> Self {
        Saga {
            def: Arc::clone(&self.def),
            _input: PhantomData,
        }
    }
}

impl<I> fmt::Debug for Saga<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Saga")
            .field("name", &self.def.name)
            .field("steps", &self.step_names())
            .finish()
    }
}

impl<I: Serialize + DeserializeOwned + Send + Sync + 'static> Saga<I> {
    /// Starts a definition named `name` (the name is journaled with every instance and
    /// picks the definition again on recovery).
    pub fn builder(name: impl Into<String>) -> SagaBuilder<I> {
        SagaBuilder {
            name: name.into(),
            steps: Vec::new(),
            units: Vec::new(),
            retry: None,
            compensation_retry: None,
            deadline: None,
            errors: Vec::new(),
            _input: PhantomData,
        }
    }
}

impl<I> Saga<I> {
    /// The definition's name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The step names in definition order (parallel group members in the order given).
    pub fn step_names(&self) -> Vec<&str> {
        self.def.steps.iter().map(|s| s.name.as_str()).collect()
    }
}

fn decode<I: DeserializeOwned + Send + Sync + 'static>(v: &Value) -> Result<AnyInput, String> {
    I::deserialize(v)
        .map(|i| Arc::new(i) as AnyInput)
        .map_err(|e| e.to_string())
}

fn erase<I, O, A, AF, C, CF>(name: &str, action: A, compensation: Option<C>) -> StepDef
where
    I: Send + Sync + 'static,
    O: Serialize + DeserializeOwned + Send + 'static,
    A: Fn(StepCtx<I>) -> AF + Send + Sync + 'static,
    AF: Future<Output = Result<O, StepError>> + Send + 'static,
    C: Fn(StepCtx<I>, O) -> CF + Send + Sync + 'static,
    CF: Future<Output = Result<(), StepError>> + Send + 'static,
{
    let action: ErasedAction = Arc::new(move |cx: ErasedCtx| {
        let fut = cx.typed::<I>().map(&action);
        Box::pin(async move {
            let out = fut?.await?;
            serde_json::to_value(out).map_err(|e| {
                StepError::permanent(format!("the step's output does not encode as JSON: {e}"))
            })
        })
    });
    let compensation = compensation.map(|c| {
        Arc::new(move |cx: ErasedCtx, output: &Value| {
            let fut = cx.typed::<I>().and_then(|cx| {
                let out = O::deserialize(output).map_err(|e| {
                    StepError::permanent(format!(
                        "the journaled output does not decode as the step's output type: {e}"
                    ))
                })?;
                Ok(c(cx, out))
            });
            Box::pin(async move { fut?.await }) as BoxFuture<Result<(), StepError>>
        }) as ErasedCompensation
    });
    StepDef {
        name: name.to_owned(),
        action,
        compensation,
        retry: None,
        timeout: None,
    }
}

/// The async closure types a compensation-less step stands in with.
type NoCompensation<I, O> = fn(StepCtx<I>, O) -> std::future::Ready<Result<(), StepError>>;

/// Builder of a [`Saga`]; see [`Saga::builder`].
///
/// Steps run in the order they are added. [`retry`](SagaBuilder::retry) and
/// [`timeout`](SagaBuilder::timeout) apply to the step (or parallel group) added last;
/// [`default_retry`](SagaBuilder::default_retry),
/// [`compensation_retry`](SagaBuilder::compensation_retry) and
/// [`deadline`](SagaBuilder::deadline) to the whole saga. Mistakes are reported by
/// [`build`](SagaBuilder::build).
///
/// Defaults: an action is tried up to 3 times (exponential backoff from 100 ms, capped
/// at 5 s); a compensation up to 11 times (exponential from 100 ms, capped at 30 s)
/// before the saga is dead-lettered; no step timeout; no saga deadline.
#[must_use = "a SagaBuilder does nothing until `.build()` is called"]
pub struct SagaBuilder<I> {
    name: String,
    steps: Vec<StepDef>,
    units: Vec<Unit>,
    retry: Option<BackoffPolicy>,
    compensation_retry: Option<BackoffPolicy>,
    deadline: Option<Duration>,
    errors: Vec<String>,
    _input: PhantomData<fn(I)>,
}

impl<I> fmt::Debug for SagaBuilder<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SagaBuilder")
            .field("name", &self.name)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl<I: Serialize + DeserializeOwned + Send + Sync + 'static> SagaBuilder<I> {
    /// Adds a step: `action` does the work and returns an output (journaled as JSON),
    /// `compensation` undoes it given that output if a later step fails for good.
    pub fn step<O, A, AF, C, CF>(mut self, name: &str, action: A, compensation: C) -> Self
    where
        O: Serialize + DeserializeOwned + Send + 'static,
        A: Fn(StepCtx<I>) -> AF + Send + Sync + 'static,
        AF: Future<Output = Result<O, StepError>> + Send + 'static,
        C: Fn(StepCtx<I>, O) -> CF + Send + Sync + 'static,
        CF: Future<Output = Result<(), StepError>> + Send + 'static,
    {
        self.units.push(Unit::Single(self.steps.len()));
        self.steps.push(erase(name, action, Some(compensation)));
        self
    }

    /// Adds a step with nothing to undo (a read, a validation, or a *pivot* step after
    /// which the saga cannot be undone anyway). It is skipped when compensating.
    pub fn step_without_compensation<O, A, AF>(mut self, name: &str, action: A) -> Self
    where
        O: Serialize + DeserializeOwned + Send + 'static,
        A: Fn(StepCtx<I>) -> AF + Send + Sync + 'static,
        AF: Future<Output = Result<O, StepError>> + Send + 'static,
    {
        self.units.push(Unit::Single(self.steps.len()));
        self.steps
            .push(erase::<I, O, A, AF, NoCompensation<I, O>, _>(
                name, action, None,
            ));
        self
    }

    /// Adds a parallel group: its steps run at once; the saga goes on once all have
    /// completed. If any fails for good, the group waits for the others to finish, then
    /// the saga compensates every completed step, the group's members in parallel.
    pub fn parallel(mut self, group: impl FnOnce(GroupBuilder<I>) -> GroupBuilder<I>) -> Self {
        let g = group(GroupBuilder {
            steps: Vec::new(),
            errors: Vec::new(),
            _input: PhantomData,
        });
        if g.steps.is_empty() {
            self.errors.push("a parallel group has no steps".into());
        }
        let first = self.steps.len();
        self.units
            .push(Unit::Parallel((first..first + g.steps.len()).collect()));
        self.steps.extend(g.steps);
        self.errors.extend(g.errors);
        self
    }

    /// The retry policy of the step (or of every member of the parallel group) added
    /// last: after a failed attempt it waits the policy's next delay and tries again,
    /// until the policy's `max_retries` are used up.
    pub fn retry(mut self, policy: BackoffPolicy) -> Self {
        match self.units.last() {
            Some(unit) => {
                for &i in unit.members() {
                    self.steps[i].retry = Some(policy);
                }
            }
            None => self.errors.push("`retry` called before any step".into()),
        }
        self
    }

    /// A time limit on each attempt of the step (or of each member of the group) added
    /// last, and on each attempt of its compensation. A timed-out attempt is a failed
    /// attempt (retried per the policy); its future is dropped.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        match self.units.last() {
            Some(unit) => {
                for &i in unit.members() {
                    self.steps[i].timeout = Some(timeout);
                }
            }
            None => self.errors.push("`timeout` called before any step".into()),
        }
        if timeout.is_zero() {
            self.errors
                .push("a step timeout must be more than zero".into());
        }
        self
    }

    /// The retry policy of every step without one of its own.
    pub fn default_retry(mut self, policy: BackoffPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The retry policy of compensations. When its retries are used up (or a
    /// compensation fails permanently) the saga is dead-lettered. A policy with
    /// unlimited retries never dead-letters: it retries until the compensation succeeds.
    pub fn compensation_retry(mut self, policy: BackoffPolicy) -> Self {
        self.compensation_retry = Some(policy);
        self
    }

    /// The saga's deadline, counted from the instance's start (across restarts, by the
    /// journaled wall-clock start time). No new step starts after it; a running attempt
    /// is cut off at it; the saga then compensates. Compensation itself has no deadline.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        if deadline.is_zero() {
            self.errors
                .push("the saga deadline must be more than zero".into());
        }
        self.deadline = Some(deadline);
        self
    }

    /// Checks the definition: a non-empty name, at least one step, unique step names
    /// without `/` (they are part of the idempotency keys), no setting before a step.
    pub fn build(self) -> Result<Saga<I>, Error> {
        let invalid = |reason: String| Error::InvalidDefinition {
            saga: self.name.clone(),
            reason,
        };
        if let Some(e) = self.errors.first() {
            return Err(invalid(e.clone()));
        }
        if self.name.is_empty() {
            return Err(invalid("the saga name is empty".into()));
        }
        if self.steps.is_empty() {
            return Err(invalid("the saga has no steps".into()));
        }
        let mut seen = HashSet::new();
        for s in &self.steps {
            if s.name.is_empty() || s.name.contains('/') {
                return Err(invalid(format!(
                    "step name `{}` must be non-empty and without `/`",
                    s.name
                )));
            }
            if !seen.insert(s.name.as_str()) {
                return Err(invalid(format!("two steps are named `{}`", s.name)));
            }
        }
        let retry = match self.retry {
            Some(r) => r,
            None => default_policy(Duration::from_secs(5), 2)?,
        };
        let compensation_retry = match self.compensation_retry {
            Some(r) => r,
            None => default_policy(Duration::from_secs(30), 10)?,
        };
        Ok(Saga {
            def: Arc::new(Definition {
                name: self.name,
                steps: self.steps,
                units: self.units,
                retry,
                compensation_retry,
                deadline: self.deadline,
                decode_input: decode::<I>,
            }),
            _input: PhantomData,
        })
    }
}

fn default_policy(cap: Duration, retries: u32) -> Result<BackoffPolicy, Error> {
    Backoff::exponential(Duration::from_millis(100))
        .max_delay(cap)
        .max_retries(retries)
        .build()
        .map_err(|e| Error::InvalidConfig(e.to_string()))
}

/// Builder of a parallel group; see [`SagaBuilder::parallel`].
#[must_use = "a GroupBuilder must be returned from the `parallel` closure"]
pub struct GroupBuilder<I> {
    steps: Vec<StepDef>,
    errors: Vec<String>,
    _input: PhantomData<fn(I)>,
}

impl<I> fmt::Debug for GroupBuilder<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupBuilder")
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl<I: Serialize + DeserializeOwned + Send + Sync + 'static> GroupBuilder<I> {
    /// Adds a member step, as [`SagaBuilder::step`].
    pub fn step<O, A, AF, C, CF>(mut self, name: &str, action: A, compensation: C) -> Self
    where
        O: Serialize + DeserializeOwned + Send + 'static,
        A: Fn(StepCtx<I>) -> AF + Send + Sync + 'static,
        AF: Future<Output = Result<O, StepError>> + Send + 'static,
        C: Fn(StepCtx<I>, O) -> CF + Send + Sync + 'static,
        CF: Future<Output = Result<(), StepError>> + Send + 'static,
    {
        self.steps.push(erase(name, action, Some(compensation)));
        self
    }

    /// The retry policy of the member added last.
    pub fn retry(mut self, policy: BackoffPolicy) -> Self {
        match self.steps.last_mut() {
            Some(s) => s.retry = Some(policy),
            None => self
                .errors
                .push("`retry` called before any group step".into()),
        }
        self
    }

    /// The per-attempt timeout of the member added last (actions and compensations).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        match self.steps.last_mut() {
            Some(s) if !timeout.is_zero() => s.timeout = Some(timeout),
            Some(_) => self
                .errors
                .push("a step timeout must be more than zero".into()),
            None => self
                .errors
                .push("`timeout` called before any group step".into()),
        }
        self
    }
}
