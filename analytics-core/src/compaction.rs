//! Retention compaction as a weft-saga saga: take a snapshot, verify it on disk, then
//! truncate the log behind it — and if the snapshot does not verify, undo it (delete the
//! file) so that nothing ever trusts it, and leave the log whole.
//!
//! [`Engine::compact_log`] does the verify-and-truncate in one call; the saga adds what a
//! multi-step operation needs in production: every step's intent and outcome journaled
//! (in memory, or weft-saga's crash-safe `FileJournal` so an interrupted compaction is
//! resumed by [`Orchestrator::recover`](weft_saga::Orchestrator::recover)), a stable
//! idempotency key per step, retries with backoff, and a status with history.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use weft_saga::{Journal, Orchestrator, Outcome, Saga, SagaStatus, StepError};

use crate::snapshot::load_newest;
use crate::{Engine, Error};

/// The snapshot step's output: what the later steps and the compensation need.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Taken {
    position: u64,
    path: PathBuf,
}

/// How a compaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compacted {
    /// The snapshot verified and the log segments wholly behind it were deleted.
    Done {
        /// The log position the snapshot covers (a restart replays from here).
        position: u64,
        /// Log segments deleted.
        segments: usize,
    },
    /// A step failed for good; the completed steps were undone (a snapshot that did not
    /// verify was deleted) and the log was left whole.
    Compensated {
        /// The step that failed (`snapshot`, `verify` or `truncate`).
        failed_step: String,
        /// Its last error.
        reason: String,
    },
}

/// Runs retention compaction of a durable [`Engine`] as a saga: `snapshot` →
/// `verify` → `truncate`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use weft_analytics::{Batch, Compacted, Compactor, Durability, Engine, Event};
/// let dir = std::env::temp_dir().join(format!("weft-compactor-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let engine = Engine::builder().durable(Durability::new(&dir)).build()?;
/// engine.ready().await?;
/// engine.ingest(Batch::new(vec![Event::new("cpu", 1_000, 1.0)])).await?;
/// let compactor = Compactor::in_memory(engine.clone())?;
/// let done = compactor.compact("nightly-1").await?;
/// assert!(matches!(done, Compacted::Done { .. }));
/// engine.shutdown(std::time::Duration::from_secs(5)).await;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Compactor {
    saga: Saga<()>,
    orchestrator: Orchestrator,
}

impl Compactor {
    /// The saga over `engine`, journaled in memory.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn in_memory(engine: Engine) -> Result<Self, Error> {
        Self::new(engine, weft_saga::MemoryJournal::new())
    }

    /// The saga over `engine`, journaled in `journal`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the engine is not durable, or the saga or orchestrator
    /// cannot be built.
    pub fn new(engine: Engine, journal: impl Journal) -> Result<Self, Error> {
        if engine.snapshot_dir().is_none() {
            return Err(Error::Config(
                "retention compaction needs a durable engine (EngineBuilder::durable)".into(),
            ));
        }
        let (e1, e2, e3) = (engine.clone(), engine.clone(), engine);
        let saga = Saga::<()>::builder("retention-compaction")
            .step(
                "snapshot",
                move |_cx| {
                    let e = e1.clone();
                    async move {
                        let info = e.snapshot().await.map_err(StepError::retryable)?;
                        Ok(Taken {
                            position: info.position,
                            path: info.path,
                        })
                    }
                },
                // Undo a snapshot that is not to be trusted: delete it, so a restart
                // falls back to an older snapshot or the whole (untruncated) log.
                |_cx, taken: Taken| async move {
                    match std::fs::remove_file(&taken.path) {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        Err(e) => Err(StepError::retryable(format!(
                            "deleting {}: {e}",
                            taken.path.display()
                        ))),
                    }
                },
            )
            .step_without_compensation("verify", move |cx| {
                let e = e2.clone();
                async move {
                    let taken: Taken = cx.output("snapshot").map_err(StepError::permanent)?;
                    let dir = e
                        .snapshot_dir()
                        .ok_or_else(|| StepError::permanent("the engine is no longer durable"))?;
                    let newest = tokio::task::spawn_blocking(move || load_newest(&dir))
                        .await
                        .map_err(StepError::retryable)?
                        .map_err(StepError::permanent)?;
                    match newest {
                        Some(s) if s.position >= taken.position => Ok(s.position),
                        Some(s) => Err(StepError::permanent(format!(
                            "the newest readable snapshot covers position {}, not {}",
                            s.position, taken.position
                        ))),
                        None => Err(StepError::permanent(format!(
                            "the snapshot at position {} does not read back",
                            taken.position
                        ))),
                    }
                }
            })
            .step_without_compensation("truncate", move |cx| {
                let e = e3.clone();
                async move {
                    let position: u64 = cx.output("verify").map_err(StepError::permanent)?;
                    e.truncate_log_before(position)
                        .await
                        .map_err(StepError::retryable)
                }
            })
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let orchestrator = Orchestrator::builder(journal)
            .register(&saga)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Compactor { saga, orchestrator })
    }

    /// Runs one compaction as saga `id` (an id already run returns its first outcome).
    ///
    /// # Errors
    ///
    /// [`Error::Log`] if the journal fails or the snapshot's compensation gave up (the
    /// saga is then dead-lettered in the [`orchestrator`](Self::orchestrator), with its
    /// history, for a manual resume).
    pub async fn compact(&self, id: &str) -> Result<Compacted, Error> {
        let out = self
            .orchestrator
            .run(&self.saga, id, ())
            .await
            .map_err(|e| Error::Log(format!("compaction saga `{id}`: {e}")))?;
        match out {
            Outcome::Completed(outputs) => {
                let get = |step: &str| {
                    outputs
                        .get::<u64>(step)
                        .map_err(|e| Error::Log(format!("compaction saga `{id}`: {e}")))
                };
                Ok(Compacted::Done {
                    position: get("verify")?,
                    segments: usize::try_from(get("truncate")?).unwrap_or(usize::MAX),
                })
            }
            Outcome::Compensated {
                failed_step,
                reason,
            } => Ok(Compacted::Compensated {
                failed_step,
                reason,
            }),
            other => Err(Error::Log(format!(
                "compaction saga `{id}` ended {other:?}"
            ))),
        }
    }

    /// The saga's status (steps completed, compensated, history).
    ///
    /// # Errors
    ///
    /// [`Error::Log`] for an unknown saga id or a journal failure.
    pub async fn status(&self, id: &str) -> Result<SagaStatus, Error> {
        self.orchestrator
            .status(id)
            .await
            .map_err(|e| Error::Log(e.to_string()))
    }

    /// The orchestrator (metrics, recovery, dead-lettered sagas).
    pub fn orchestrator(&self) -> &Orchestrator {
        &self.orchestrator
    }
}
