//! What an instance's records add up to: [`SagaState`], [`SagaStatus`], [`Outcome`],
//! and the replay the orchestrator resumes from.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::journal::{Event, Record};
use crate::{Definition, Error};

/// Where a saga instance is in its life.
///
/// ```
/// use weft_saga::SagaState;
/// assert!(SagaState::Compensated.is_finished());
/// assert!(!SagaState::DeadLettered.is_finished());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SagaState {
    /// Running its steps forward (or, if no process is driving it, waiting to be
    /// recovered).
    Running,
    /// A step failed for good; undoing the completed steps.
    Compensating,
    /// Every step completed.
    Completed,
    /// Every completed step was undone.
    Compensated,
    /// A compensation gave up: parked until [`resume`](crate::Orchestrator::resume) or
    /// [`resolve`](crate::Orchestrator::resolve).
    DeadLettered,
    /// Dead-lettered, then marked resolved by a person.
    Resolved,
}

impl SagaState {
    /// Whether nothing more will happen to the instance.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            SagaState::Completed | SagaState::Compensated | SagaState::Resolved
        )
    }
}

impl fmt::Display for SagaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SagaState::Running => "running",
            SagaState::Compensating => "compensating",
            SagaState::Completed => "completed",
            SagaState::Compensated => "compensated",
            SagaState::DeadLettered => "dead-lettered",
            SagaState::Resolved => "resolved",
        })
    }
}

/// The journaled outputs of a saga's completed steps.
///
/// ```
/// use weft_saga::Outputs;
/// let outputs = Outputs::default();
/// assert!(outputs.get::<u32>("missing").is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs(pub(crate) BTreeMap<String, Value>);

impl Outputs {
    /// The output of `step`, decoded as `T`.
    pub fn get<T: DeserializeOwned>(&self, step: &str) -> Result<T, Error> {
        let v = self.0.get(step).ok_or_else(|| Error::Codec {
            what: format!("the output of step `{step}`"),
            reason: "no such completed step".into(),
        })?;
        T::deserialize(v).map_err(|e| Error::Codec {
            what: format!("the output of step `{step}`"),
            reason: e.to_string(),
        })
    }

    /// The raw JSON output of `step`.
    pub fn raw(&self, step: &str) -> Option<&Value> {
        self.0.get(step)
    }

    /// The names of the steps with an output.
    pub fn steps(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// How a saga instance ended (or parked).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// Every step completed; their outputs.
    Completed(Outputs),
    /// `failed_step` failed for good (`reason`) and every completed step was undone.
    Compensated {
        /// The step that failed.
        failed_step: String,
        /// Its last error.
        reason: String,
    },
    /// `step`'s compensation gave up; the saga waits for
    /// [`resume`](crate::Orchestrator::resume) or [`resolve`](crate::Orchestrator::resolve).
    DeadLettered {
        /// The step whose compensation gave up.
        step: String,
        /// Its last error.
        error: String,
    },
    /// Dead-lettered, then resolved by hand with this note.
    Resolved {
        /// The note given to [`resolve`](crate::Orchestrator::resolve).
        note: String,
    },
}

impl Outcome {
    /// The state this outcome leaves the instance in.
    ///
    /// ```
    /// use weft_saga::{Outcome, SagaState};
    /// let o = Outcome::Resolved { note: "refunded by hand".into() };
    /// assert_eq!(o.state(), SagaState::Resolved);
    /// ```
    pub fn state(&self) -> SagaState {
        match self {
            Outcome::Completed(_) => SagaState::Completed,
            Outcome::Compensated { .. } => SagaState::Compensated,
            Outcome::DeadLettered { .. } => SagaState::DeadLettered,
            Outcome::Resolved { .. } => SagaState::Resolved,
        }
    }
}

/// A snapshot of one instance, folded from its journal: what
/// [`Orchestrator::status`](crate::Orchestrator::status) returns.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SagaStatus {
    /// The instance's id.
    pub saga_id: String,
    /// The definition's name.
    pub saga: String,
    /// Where it is.
    pub state: SagaState,
    /// The steps started and not yet finished (action or compensation), in start order.
    pub current_steps: Vec<String>,
    /// Attempts started per step (actions).
    pub attempts: BTreeMap<String, u32>,
    /// Completed steps, in completion order.
    pub completed: Vec<String>,
    /// Compensated steps, in compensation order.
    pub compensated: Vec<String>,
    /// The step that failed for good and why, once compensating.
    pub failure: Option<(String, String)>,
    /// Every record of the instance, in order.
    pub history: Vec<Record>,
}

/// The phase the orchestrator resumes an instance in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Phase {
    Forward,
    Compensating,
    DeadLettered { step: String, error: String },
    Finished(Outcome),
}

/// An instance's records folded for the orchestrator.
#[derive(Debug)]
pub(crate) struct Replay {
    pub(crate) saga: String,
    pub(crate) input: Value,
    pub(crate) started_at_ms: u64,
    pub(crate) phase: Phase,
    /// Completed steps' outputs (shared with the running steps' contexts, copied on
    /// write only if a context outlives its step).
    pub(crate) outputs: Arc<BTreeMap<String, Value>>,
    pub(crate) completed_order: Vec<String>,
    /// Failed action attempts per step (the retry budget used).
    pub(crate) failures: HashMap<String, u32>,
    /// The last action attempt number started per step.
    pub(crate) attempts: BTreeMap<String, u32>,
    /// Started actions or compensations with no outcome yet.
    pub(crate) open: Vec<String>,
    pub(crate) compensated: HashSet<String>,
    pub(crate) compensated_order: Vec<String>,
    /// Actions that gave up, with their last error.
    pub(crate) given_up: BTreeMap<String, String>,
    /// Failed compensation attempts per step since the last resume.
    pub(crate) comp_failures: HashMap<String, u32>,
    /// The last compensation attempt number started per step since the last resume.
    pub(crate) comp_attempts: HashMap<String, u32>,
    pub(crate) failure: Option<(String, String)>,
}

impl Replay {
    /// A dead-lettered saga resumed: compensation starts again with a fresh budget
    /// (the `SagaResumed` record, replayed or just appended).
    pub(crate) fn resumed(&mut self) {
        self.phase = Phase::Compensating;
        self.comp_failures.clear();
        self.comp_attempts.clear();
    }

    /// Folds `records` (all of one instance, in order). `def`, when given, is checked
    /// against them.
    pub(crate) fn fold(
        saga_id: &str,
        records: &[Record],
        def: Option<&Definition>,
    ) -> Result<Replay, Error> {
        let bad = |reason: String| Error::Inconsistent {
            saga_id: saga_id.to_owned(),
            reason,
        };
        let Some(first) = records.first() else {
            return Err(Error::UnknownSaga {
                saga_id: saga_id.to_owned(),
            });
        };
        let Event::SagaStarted { saga, input } = &first.event else {
            return Err(bad("the first record is not `SagaStarted`".into()));
        };
        let mut r = Replay {
            saga: saga.clone(),
            input: input.clone(),
            started_at_ms: first.at_ms,
            phase: Phase::Forward,
            outputs: Arc::new(BTreeMap::new()),
            completed_order: Vec::new(),
            failures: HashMap::new(),
            attempts: BTreeMap::new(),
            open: Vec::new(),
            compensated: HashSet::new(),
            compensated_order: Vec::new(),
            given_up: BTreeMap::new(),
            comp_failures: HashMap::new(),
            comp_attempts: HashMap::new(),
            failure: None,
        };
        let known = |step: &str| match def {
            Some(d) if d.step_index(step).is_none() => Err(bad(format!(
                "the journal names step `{step}`, which definition `{}` does not have",
                d.name
            ))),
            _ => Ok(()),
        };
        for rec in &records[1..] {
            match &rec.event {
                Event::SagaStarted { .. } => return Err(bad("a second `SagaStarted`".into())),
                Event::StepStarted { step, attempt, .. } => {
                    known(step)?;
                    r.attempts.insert(step.clone(), *attempt);
                    r.open_step(step);
                }
                Event::StepCompleted { step, output } => {
                    known(step)?;
                    r.close_step(step);
                    if Arc::make_mut(&mut r.outputs)
                        .insert(step.clone(), output.clone())
                        .is_none()
                    {
                        r.completed_order.push(step.clone());
                    }
                }
                Event::StepFailed {
                    step,
                    error,
                    gave_up,
                    ..
                } => {
                    known(step)?;
                    r.close_step(step);
                    *r.failures.entry(step.clone()).or_default() += 1;
                    if *gave_up {
                        r.given_up.insert(step.clone(), error.clone());
                        r.failure
                            .get_or_insert_with(|| (step.clone(), error.clone()));
                    }
                }
                Event::Compensating { step, reason } => {
                    r.phase = Phase::Compensating;
                    r.failure = Some((step.clone(), reason.clone()));
                }
                Event::CompensationStarted { step, attempt, .. } => {
                    known(step)?;
                    r.comp_attempts.insert(step.clone(), *attempt);
                    r.open_step(step);
                }
                Event::CompensationCompleted { step } => {
                    known(step)?;
                    r.close_step(step);
                    if r.compensated.insert(step.clone()) {
                        r.compensated_order.push(step.clone());
                    }
                }
                Event::CompensationFailed { step, .. } => {
                    known(step)?;
                    r.close_step(step);
                    *r.comp_failures.entry(step.clone()).or_default() += 1;
                }
                Event::SagaCompleted => {
                    r.phase = Phase::Finished(Outcome::Completed(Outputs((*r.outputs).clone())));
                }
                Event::SagaCompensated => {
                    let (failed_step, reason) = r.failure.clone().unwrap_or_default();
                    r.phase = Phase::Finished(Outcome::Compensated {
                        failed_step,
                        reason,
                    });
                }
                Event::SagaDeadLettered { step, error } => {
                    r.phase = Phase::DeadLettered {
                        step: step.clone(),
                        error: error.clone(),
                    };
                }
                Event::SagaResumed => r.resumed(),
                Event::SagaResolved { note } => {
                    r.phase = Phase::Finished(Outcome::Resolved { note: note.clone() });
                }
            }
        }
        Ok(r)
    }

    fn open_step(&mut self, step: &str) {
        if !self.open.iter().any(|s| s == step) {
            self.open.push(step.to_owned());
        }
    }

    fn close_step(&mut self, step: &str) {
        self.open.retain(|s| s != step);
    }

    pub(crate) fn state(&self) -> SagaState {
        match &self.phase {
            Phase::Forward => SagaState::Running,
            Phase::Compensating => SagaState::Compensating,
            Phase::DeadLettered { .. } => SagaState::DeadLettered,
            Phase::Finished(o) => o.state(),
        }
    }

    pub(crate) fn status(self, saga_id: &str, history: Vec<Record>) -> SagaStatus {
        SagaStatus {
            saga_id: saga_id.to_owned(),
            state: self.state(),
            saga: self.saga,
            current_steps: self.open,
            attempts: self.attempts,
            completed: self.completed_order,
            compensated: self.compensated_order,
            failure: self.failure,
            history,
        }
    }
}
