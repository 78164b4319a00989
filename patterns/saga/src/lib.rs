//! Durable orchestrated sagas: typed steps with compensations, parallel groups, retries
//! and deadlines, a crash-safe journal that resumes in-flight sagas without repeating
//! side effects, dead-lettering and manual resume.
//!
//! A *saga* is a multi-step operation over services that share no transaction (reserve
//! stock, charge a card, book a courier). Each step has an *action* and a
//! *compensation* that semantically undoes it. The orchestrator runs the actions in
//! order; if one fails for good (after its retries), it runs the compensations of the
//! completed steps in reverse. Use a saga where a distributed transaction is not
//! available or not wanted, and every step can be undone by another action; see the
//! book chapter `docs/src/saga.md` for the design.
//!
//! What this crate adds to the textbook pattern, all without a server:
//!
//! - **Durability**: every step's intent and outcome go to a [`Journal`] (in memory, or
//!   the crash-safe [`FileJournal`] with CRC-checked records and group commit) before
//!   and after the side effect. After a crash, [`Orchestrator::recover`] drives every
//!   in-flight saga on: completed steps are not run again (their outputs come from the
//!   journal), an in-doubt step runs again with the **same idempotency key**.
//! - **Idempotency keys**: every action gets `"{saga_id}/{step}"`, every compensation
//!   `"{saga_id}/{step}/compensate"` ([`StepCtx::idempotency_key`]); a participant that
//!   deduplicates by key applies each effect at most once. The crate's crash-matrix test
//!   SIGKILLs a child process at every step boundary to prove it.
//! - **Retries before compensation** (per-step [`BackoffPolicy`](weft_time::BackoffPolicy)),
//!   permanent errors that skip them ([`StepError::permanent`]), per-attempt timeouts
//!   and a saga deadline.
//! - **Parallel groups** whose members all complete or all compensate.
//! - **Compensation failure is never silent**: retried with backoff, then the saga is
//!   *dead-lettered* with its full history, until [`Orchestrator::resume`] retries it
//!   or [`Orchestrator::resolve`] closes it by hand.
//! - **Per-instance serialisation**: every operation on one instance holds its lock, so
//!   two events for one saga are never processed at once.
//! - **Observability**: [`Orchestrator::status`], [`Orchestrator::metrics`], and
//!   `tracing` spans (`saga`) and events on every transition.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use serde::{Deserialize, Serialize};
//! use weft_saga::{MemoryJournal, Orchestrator, Outcome, Saga, StepError};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Order { item: String, cents: u64 }
//!
//! let saga = Saga::<Order>::builder("checkout")
//!     .step(
//!         "reserve",
//!         |cx| async move { Ok::<_, StepError>(format!("hold:{}", cx.input().item)) },
//!         |_cx, hold: String| async move { println!("release {hold}"); Ok(()) },
//!     )
//!     .step(
//!         "charge",
//!         |cx| async move {
//!             if cx.input().cents > 10_000 {
//!                 return Err(StepError::permanent("card declined"));
//!             }
//!             Ok(cx.input().cents)
//!         },
//!         |_cx, cents: u64| async move { println!("refund {cents}"); Ok(()) },
//!     )
//!     .build()?;
//!
//! let orch = Orchestrator::builder(MemoryJournal::new()).register(&saga).build()?;
//! let ok = orch.run(&saga, "order-1", Order { item: "book".into(), cents: 1_500 }).await?;
//! assert!(matches!(ok, Outcome::Completed(_)));
//!
//! let declined = orch.run(&saga, "order-2", Order { item: "car".into(), cents: 5_000_000 }).await?;
//! assert!(matches!(declined, Outcome::Compensated { ref failed_step, .. } if failed_step == "charge"));
//! assert_eq!(orch.status("order-2").await?.compensated, ["reserve"]);
//! # Ok(()) }
//! ```
//!
//! # Contents
//!
//! - Definitions: [`Saga`] built by [`SagaBuilder`] (parallel groups with
//!   [`GroupBuilder`]); actions and compensations receive a [`StepCtx`] and fail with a
//!   [`StepError`].
//! - Running: [`Orchestrator`] built by [`OrchestratorBuilder`]; results are
//!   [`Outcome`]s with the steps' [`Outputs`].
//! - Observing: [`SagaStatus`] with its [`SagaState`], [`Metrics`].
//! - Durability: the [`Journal`] trait of [`Record`]s of [`Event`]s, [`MemoryJournal`],
//!   [`FileJournal`] with its [`FsyncPolicy`] and [`FileJournalStats`].
//! - [`Error`]: what the orchestrator or the journal could not do.

#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod definition;
mod error;
mod journal;
mod locks;
mod orchestrator;
mod state;

pub(crate) use definition::Definition;
pub use definition::{GroupBuilder, Saga, SagaBuilder, StepCtx};
pub use error::{Error, StepError};
pub use journal::{
    Event, FileJournal, FileJournalStats, FsyncPolicy, Journal, JournalFuture, MemoryJournal,
    Record,
};
pub use orchestrator::{Metrics, Orchestrator, OrchestratorBuilder};
pub use state::{Outcome, Outputs, SagaState, SagaStatus};
