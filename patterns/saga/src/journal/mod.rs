//! The saga journal: the records, the [`Journal`] trait and the in-memory backend.
//!
//! The journal is the saga's only memory. The orchestrator appends a record *before*
//! each side effect (the intent: [`Event::StepStarted`], [`Event::CompensationStarted`])
//! and one *after* it (the outcome), and waits for each append to be durable under the
//! backend's policy before going on. Everything else (the status query, recovery after a
//! crash, manual resume) is a fold over an instance's records.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_sync::Mutex;

use crate::Error;

mod file;

pub use file::{FileJournal, FileJournalStats, FsyncPolicy};

/// The future a [`Journal`] method returns.
pub type JournalFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// One journal entry: which saga instance, when (milliseconds since the Unix epoch, read
/// from the orchestrator's [`Clock`](weft_time::Clock)), and what happened.
///
/// ```
/// use weft_saga::{Event, Record};
/// let r = Record::new("t-1", 0, Event::SagaCompleted);
/// assert!(r.event.is_terminal());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The saga instance.
    pub saga_id: String,
    /// Wall-clock time of the record, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    pub event: Event,
}

impl Record {
    /// A record of `event` for instance `saga_id` at `at_ms`.
    pub fn new(saga_id: impl Into<String>, at_ms: u64, event: Event) -> Self {
        Record {
            saga_id: saga_id.into(),
            at_ms,
            event,
        }
    }
}

/// What a [`Record`] says happened.
///
/// Step and compensation records carry the attempt number (1-based, counted across
/// restarts) and the idempotency key the participant received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum Event {
    /// The instance was started with this input (JSON).
    SagaStarted {
        /// The definition's name.
        saga: String,
        /// The input, as JSON.
        input: Value,
    },
    /// An attempt of a step's action is about to run (the intent, written before it).
    StepStarted {
        /// The step.
        step: String,
        /// The attempt number, from 1.
        attempt: u32,
        /// The idempotency key handed to the action.
        key: String,
    },
    /// The step's action succeeded with this output (JSON).
    StepCompleted {
        /// The step.
        step: String,
        /// The action's output, as JSON.
        output: Value,
    },
    /// An attempt of the step's action failed.
    StepFailed {
        /// The step.
        step: String,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
        /// Whether this was the last attempt (permanent error, retries exhausted or the
        /// saga's deadline passed): the step has failed and the saga compensates.
        gave_up: bool,
    },
    /// The saga turned to compensation because this step failed for good.
    Compensating {
        /// The step that failed.
        step: String,
        /// Why it failed.
        reason: String,
    },
    /// An attempt of a step's compensation is about to run (the intent).
    CompensationStarted {
        /// The step being compensated.
        step: String,
        /// The attempt number, from 1 (counted from the last resume).
        attempt: u32,
        /// The idempotency key handed to the compensation.
        key: String,
    },
    /// The step's compensation succeeded.
    CompensationCompleted {
        /// The step.
        step: String,
    },
    /// An attempt of the step's compensation failed.
    CompensationFailed {
        /// The step.
        step: String,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
        /// Whether the compensation gave up (permanent error or retries exhausted): the
        /// saga is dead-lettered.
        gave_up: bool,
    },
    /// Every step completed: the saga succeeded.
    SagaCompleted,
    /// Every completed step was compensated: the saga failed cleanly.
    SagaCompensated,
    /// A compensation gave up: the saga is parked until a person resumes or resolves it.
    SagaDeadLettered {
        /// The step whose compensation gave up.
        step: String,
        /// Its last error.
        error: String,
    },
    /// A dead-lettered saga was resumed: its compensations are retried with a fresh budget.
    SagaResumed,
    /// A person marked the dead-lettered saga as resolved by hand; it is finished.
    SagaResolved {
        /// What they said.
        note: String,
    },
}

impl Event {
    /// Whether the instance is finished after this event (completed, compensated or
    /// resolved). A dead-lettered saga is not finished: it waits for a person.
    ///
    /// ```
    /// use weft_saga::Event;
    /// assert!(Event::SagaCompensated.is_terminal());
    /// assert!(!Event::SagaResumed.is_terminal());
    /// ```
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::SagaCompleted | Event::SagaCompensated | Event::SagaResolved { .. }
        )
    }
}

/// Where a saga orchestrator keeps its records: append, read back one instance, list
/// the instances in flight.
///
/// The contract an implementation must keep:
///
/// - [`append`](Journal::append) resolves only once the record is as durable as the
///   backend promises; records of one instance are read back in append order (the
///   orchestrator never appends two records of one instance concurrently).
/// - A failed append may or may not have stored the record; the orchestrator stops the
///   instance and a later resume reads whatever is there.
/// - [`in_flight`](Journal::in_flight) lists every instance with a `SagaStarted` record
///   and no terminal record ([`Event::is_terminal`]).
///
/// [`MemoryJournal`] and [`FileJournal`] are provided; a database table with one row
/// per record fits the same trait.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_saga::Error> {
/// use weft_saga::{Event, Journal, MemoryJournal, Record};
/// let j = MemoryJournal::new();
/// j.append(Record::new("t-1", 0, Event::SagaStarted { saga: "s".into(), input: 1.into() })).await?;
/// assert_eq!(j.in_flight().await?, ["t-1"]);
/// j.append(Record::new("t-1", 1, Event::SagaCompleted)).await?;
/// assert!(j.in_flight().await?.is_empty());
/// assert_eq!(j.load("t-1").await?.len(), 2);
/// # Ok(()) }
/// ```
pub trait Journal: Send + Sync + fmt::Debug + 'static {
    /// Appends `record`, resolving once it is durable under the backend's policy.
    fn append(&self, record: Record) -> JournalFuture<'_, ()>;

    /// Every record of instance `saga_id`, in append order (empty if unknown).
    fn load<'a>(&'a self, saga_id: &'a str) -> JournalFuture<'a, Vec<Record>>;

    /// The ids of every instance started and not finished, in the order they started.
    fn in_flight(&self) -> JournalFuture<'_, Vec<String>>;
}

impl<J: Journal + ?Sized> Journal for std::sync::Arc<J> {
    fn append(&self, record: Record) -> JournalFuture<'_, ()> {
        (**self).append(record)
    }

    fn load<'a>(&'a self, saga_id: &'a str) -> JournalFuture<'a, Vec<Record>> {
        (**self).load(saga_id)
    }

    fn in_flight(&self) -> JournalFuture<'_, Vec<String>> {
        (**self).in_flight()
    }
}

impl<J: Journal + ?Sized> Journal for Box<J> {
    fn append(&self, record: Record) -> JournalFuture<'_, ()> {
        (**self).append(record)
    }

    fn load<'a>(&'a self, saga_id: &'a str) -> JournalFuture<'a, Vec<Record>> {
        (**self).load(saga_id)
    }

    fn in_flight(&self) -> JournalFuture<'_, Vec<String>> {
        (**self).in_flight()
    }
}

/// The records of every instance, indexed by instance: what both provided backends keep
/// in memory.
#[derive(Debug, Default)]
pub(crate) struct Index {
    by_saga: HashMap<String, Vec<Record>>,
    /// Start sequence number of each instance in flight (for the start order).
    in_flight: HashMap<String, u64>,
    /// `(start sequence, id)` of the instances in flight.
    order: BTreeSet<(u64, String)>,
    next_seq: u64,
}

impl Index {
    pub(crate) fn apply(&mut self, record: Record) {
        match &record.event {
            Event::SagaStarted { .. } if !self.in_flight.contains_key(&record.saga_id) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.in_flight.insert(record.saga_id.clone(), seq);
                self.order.insert((seq, record.saga_id.clone()));
            }
            e if e.is_terminal() => {
                if let Some(seq) = self.in_flight.remove(&record.saga_id) {
                    self.order.remove(&(seq, record.saga_id.clone()));
                }
            }
            _ => {}
        }
        match self.by_saga.get_mut(&record.saga_id) {
            Some(records) => records.push(record),
            None => {
                self.by_saga.insert(record.saga_id.clone(), vec![record]);
            }
        }
    }

    pub(crate) fn load(&self, saga_id: &str) -> Vec<Record> {
        self.by_saga.get(saga_id).cloned().unwrap_or_default()
    }

    pub(crate) fn in_flight(&self) -> Vec<String> {
        self.order.iter().map(|(_, id)| id.clone()).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_saga.values().map(Vec::len).sum()
    }
}

/// A journal in memory: fast, and gone with the process. For tests, benchmarks, and
/// sagas whose participants are themselves in memory.
///
/// Every record is kept for the journal's lifetime (the status query of a finished saga
/// reads them).
///
/// ```
/// use weft_saga::MemoryJournal;
/// let j = MemoryJournal::new();
/// assert_eq!(j.len(), 0);
/// ```
#[derive(Debug, Default)]
pub struct MemoryJournal {
    index: Mutex<Index>,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.index.lock().len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Journal for MemoryJournal {
    fn append(&self, record: Record) -> JournalFuture<'_, ()> {
        self.index.lock().apply(record);
        Box::pin(std::future::ready(Ok(())))
    }

    fn load<'a>(&'a self, saga_id: &'a str) -> JournalFuture<'a, Vec<Record>> {
        let records = self.index.lock().load(saga_id);
        Box::pin(std::future::ready(Ok(records)))
    }

    fn in_flight(&self) -> JournalFuture<'_, Vec<String>> {
        let ids = self.index.lock().in_flight();
        Box::pin(std::future::ready(Ok(ids)))
    }
}
