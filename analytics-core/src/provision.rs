//! Tenant provisioning as a weft-saga saga: create the tenant's retention policy,
//! register its default alert rules, allocate its quota and rate limits — and, when a
//! step fails for good, undo exactly the steps that completed, in reverse.
//!
//! Each step is all-or-nothing on its own (the rules step deletes the rules it created
//! before failing), so the saga's compensations only ever see completed steps. The saga
//! journal (in memory, or weft-saga's crash-safe `FileJournal`) records every step's
//! intent and outcome, so an interrupted provisioning is resumed or compensated by
//! [`Orchestrator::recover`](weft_saga::Orchestrator::recover), not left half-done.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_ratelimit::Quota;
use weft_saga::{Journal, Orchestrator, Outcome, Saga, SagaStatus, StepError};
use weft_sync::Mutex;

use crate::Error;
use crate::alert::{AlertManager, AlertRule};

/// A tenant's rate limit: sustained events per second and a burst.
///
/// ```
/// let q = weft_analytics::TenantQuota { events_per_sec: 1_000, burst: 5_000 };
/// assert_eq!(q.events_per_sec, 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantQuota {
    /// Sustained events per second.
    pub events_per_sec: u32,
    /// Most events at once.
    pub burst: u32,
}

/// What a tenant is provisioned with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantSpec {
    /// The tenant.
    pub tenant: String,
    /// How long its windows are kept.
    pub retention: Duration,
    /// Alert rules registered for it (their tenant must be this one).
    pub default_rules: Vec<AlertRule>,
    /// Its quota.
    pub quota: TenantQuota,
}

/// The per-tenant settings provisioning writes: retention policies and quota
/// allocations out of a fixed total capacity (events per second). Cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use weft_analytics::{TenantDirectory, TenantQuota};
/// let dir = TenantDirectory::new(10_000);
/// dir.set_retention("acme", Duration::from_secs(86_400))?;
/// dir.allocate("acme", TenantQuota { events_per_sec: 4_000, burst: 8_000 })?;
/// assert_eq!(dir.available(), 6_000);
/// assert!(dir.allocate("globex", TenantQuota { events_per_sec: 7_000, burst: 1 }).is_err());
/// # Ok::<(), weft_analytics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TenantDirectory {
    inner: Arc<Mutex<Directory>>,
}

#[derive(Debug)]
struct Directory {
    capacity: u64,
    /// Per tenant: the policy and the idempotency key of the write that set it.
    retention: BTreeMap<String, (Duration, Option<String>)>,
    quotas: BTreeMap<String, (TenantQuota, Option<String>)>,
}

impl TenantDirectory {
    /// A directory whose quotas may add up to `capacity` events per second.
    pub fn new(capacity: u64) -> Self {
        TenantDirectory {
            inner: Arc::new(Mutex::new(Directory {
                capacity,
                retention: BTreeMap::new(),
                quotas: BTreeMap::new(),
            })),
        }
    }

    /// Sets `tenant`'s retention policy.
    ///
    /// # Errors
    ///
    /// [`Error::Provisioning`] if the tenant has one already or `retention` is zero.
    pub fn set_retention(&self, tenant: &str, retention: Duration) -> Result<(), Error> {
        self.set_retention_once(tenant, retention, None)
    }

    /// Like [`set_retention`](Self::set_retention), idempotent under `key`: a repeat
    /// with the same key and policy (a saga step run again after a crash) succeeds
    /// without a second write.
    ///
    /// # Errors
    ///
    /// As [`set_retention`](Self::set_retention), unless the policy was set with `key`.
    pub fn set_retention_once(
        &self,
        tenant: &str,
        retention: Duration,
        key: Option<&str>,
    ) -> Result<(), Error> {
        if retention.is_zero() {
            return Err(Error::Provisioning(format!(
                "retention for `{tenant}` must be positive"
            )));
        }
        let mut d = self.inner.lock();
        if let Some((had, by)) = d.retention.get(tenant) {
            if key.is_some() && by.as_deref() == key && *had == retention {
                return Ok(());
            }
            return Err(Error::Provisioning(format!(
                "tenant `{tenant}` already has a retention policy"
            )));
        }
        d.retention
            .insert(tenant.to_owned(), (retention, key.map(str::to_owned)));
        Ok(())
    }

    /// Removes `tenant`'s retention policy; returns whether it had one.
    pub fn remove_retention(&self, tenant: &str) -> bool {
        self.inner.lock().retention.remove(tenant).is_some()
    }

    /// `tenant`'s retention policy.
    pub fn retention(&self, tenant: &str) -> Option<Duration> {
        self.inner.lock().retention.get(tenant).map(|r| r.0)
    }

    /// Allocates `quota` to `tenant` out of the remaining capacity.
    ///
    /// # Errors
    ///
    /// [`Error::Provisioning`] if the tenant has a quota, the quota is zero or
    /// the capacity left is too small.
    pub fn allocate(&self, tenant: &str, quota: TenantQuota) -> Result<(), Error> {
        self.allocate_once(tenant, quota, None)
    }

    /// Like [`allocate`](Self::allocate), idempotent under `key` (see
    /// [`set_retention_once`](Self::set_retention_once)).
    ///
    /// # Errors
    ///
    /// As [`allocate`](Self::allocate), unless the quota was allocated with `key`.
    pub fn allocate_once(
        &self,
        tenant: &str,
        quota: TenantQuota,
        key: Option<&str>,
    ) -> Result<(), Error> {
        if quota.events_per_sec == 0 || quota.burst == 0 {
            return Err(Error::Provisioning(
                "a quota needs a positive rate and burst".into(),
            ));
        }
        let mut d = self.inner.lock();
        if let Some((had, by)) = d.quotas.get(tenant) {
            if key.is_some() && by.as_deref() == key && *had == quota {
                return Ok(());
            }
            return Err(Error::Provisioning(format!(
                "tenant `{tenant}` already has a quota"
            )));
        }
        let used: u64 = d
            .quotas
            .values()
            .map(|q| u64::from(q.0.events_per_sec))
            .sum();
        let left = d.capacity.saturating_sub(used);
        if u64::from(quota.events_per_sec) > left {
            return Err(Error::Provisioning(format!(
                "quota of {} events/s for `{tenant}` exceeds the {left} events/s left",
                quota.events_per_sec
            )));
        }
        d.quotas
            .insert(tenant.to_owned(), (quota, key.map(str::to_owned)));
        Ok(())
    }

    /// Releases `tenant`'s quota; returns whether it had one.
    pub fn release(&self, tenant: &str) -> bool {
        self.inner.lock().quotas.remove(tenant).is_some()
    }

    /// `tenant`'s quota.
    pub fn quota(&self, tenant: &str) -> Option<TenantQuota> {
        self.inner.lock().quotas.get(tenant).map(|q| q.0)
    }

    /// Capacity not allocated yet (events per second).
    pub fn available(&self) -> u64 {
        let d = self.inner.lock();
        let used: u64 = d
            .quotas
            .values()
            .map(|q| u64::from(q.0.events_per_sec))
            .sum();
        d.capacity.saturating_sub(used)
    }
}

/// How a provisioning ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Provisioned {
    /// Every step completed.
    Completed,
    /// `failed_step` failed (`reason`); the steps in `compensated` were undone (most
    /// recent first).
    Compensated {
        /// The step that failed.
        failed_step: String,
        /// Why.
        reason: String,
        /// The steps undone.
        compensated: Vec<String>,
    },
}

/// Runs the tenant-provisioning saga (`retention`, `rules`, `quota`).
///
/// The steps are idempotent, as a saga run again after a crash needs: retention and
/// quota are written under the step's idempotency key, and the rules step takes a rule
/// identical to its own as created.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use weft_analytics::{AlertManager, Engine, Provisioned, Provisioner, TenantDirectory,
///     TenantQuota, TenantSpec};
/// let alerts = AlertManager::builder(Engine::builder().tick_interval(None).build()?).build()?;
/// let dir = TenantDirectory::new(1_000);
/// let p = Provisioner::in_memory(dir.clone(), alerts)?;
/// let spec = TenantSpec { tenant: "acme".into(), retention: Duration::from_secs(3600),
///     default_rules: vec![], quota: TenantQuota { events_per_sec: 5_000, burst: 5_000 } };
/// // Over capacity: the quota step fails and the retention policy is removed again.
/// let out = p.provision(spec).await?;
/// assert!(matches!(out, Provisioned::Compensated { ref failed_step, .. } if failed_step == "quota"));
/// assert_eq!(dir.retention("acme"), None);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Provisioner {
    saga: Saga<TenantSpec>,
    orchestrator: Orchestrator,
}

impl Provisioner {
    /// The saga over `directory` and `alerts`, journaled in memory (use
    /// [`new`](Self::new) with a `weft_saga::FileJournal` to resume after a crash).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn in_memory(directory: TenantDirectory, alerts: AlertManager) -> Result<Self, Error> {
        Self::new(directory, alerts, weft_saga::MemoryJournal::new())
    }

    /// The saga over `directory` and `alerts`, journaled in `journal`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the saga or orchestrator cannot be built.
    pub fn new(
        directory: TenantDirectory,
        alerts: AlertManager,
        journal: impl Journal,
    ) -> Result<Self, Error> {
        let (d1, d2, d3, d4) = (
            directory.clone(),
            directory.clone(),
            directory.clone(),
            directory,
        );
        let (e1, e2) = (alerts.engine().clone(), alerts.engine().clone());
        let (a1, a2) = (alerts.clone(), alerts);
        let saga = Saga::<TenantSpec>::builder("provision-tenant")
            .step(
                "retention",
                move |cx| {
                    let d = d1.clone();
                    async move {
                        let s = cx.input();
                        d.set_retention_once(&s.tenant, s.retention, Some(cx.idempotency_key()))
                            .map_err(StepError::permanent)?;
                        Ok(s.tenant.clone())
                    }
                },
                move |_cx, tenant: String| {
                    let d = d2.clone();
                    async move {
                        d.remove_retention(&tenant);
                        Ok(())
                    }
                },
            )
            .step(
                "rules",
                move |cx| {
                    let a = a1.clone();
                    register(a, cx.input().clone())
                },
                move |_cx, keys: Vec<String>| {
                    let a = a2.clone();
                    unregister(a, keys)
                },
            )
            .step(
                "quota",
                move |cx| {
                    let (d, e) = (d3.clone(), e1.clone());
                    async move {
                        let s = cx.input();
                        let limit = Quota::per_second(s.quota.events_per_sec)
                            .and_then(|q| q.allow_burst(s.quota.burst))
                            .map_err(StepError::permanent)?;
                        d.allocate_once(&s.tenant, s.quota, Some(cx.idempotency_key()))
                            .map_err(StepError::permanent)?;
                        // The allocation takes effect: the engine's rate limit for the
                        // tenant from its next batch.
                        e.set_tenant_quota(&s.tenant, Some(limit));
                        Ok(s.tenant.clone())
                    }
                },
                move |_cx, tenant: String| {
                    let (d, e) = (d4.clone(), e2.clone());
                    async move {
                        e.set_tenant_quota(&tenant, None);
                        d.release(&tenant);
                        Ok(())
                    }
                },
            )
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let orchestrator = Orchestrator::builder(journal)
            .register(&saga)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Provisioner { saga, orchestrator })
    }

    /// Provisions `spec.tenant` (saga id `provision-<tenant>`).
    ///
    /// # Errors
    ///
    /// [`Error::Provisioning`] if the journal fails or a compensation gave up
    /// (the saga is then dead-lettered in the orchestrator, see
    /// [`orchestrator`](Self::orchestrator)).
    pub async fn provision(&self, spec: TenantSpec) -> Result<Provisioned, Error> {
        let id = format!("provision-{}", spec.tenant);
        let p = |e: &dyn std::fmt::Display| Error::Provisioning(e.to_string());
        let out = self
            .orchestrator
            .run(&self.saga, &id, spec)
            .await
            .map_err(|e| p(&e))?;
        match out {
            Outcome::Completed(_) => Ok(Provisioned::Completed),
            Outcome::Compensated {
                failed_step,
                reason,
            } => {
                let status = self.status(&id).await?;
                Ok(Provisioned::Compensated {
                    failed_step,
                    reason,
                    compensated: status.compensated,
                })
            }
            other => Err(p(&format_args!("{other:?}"))),
        }
    }

    /// The saga's status (steps completed, compensated, history).
    ///
    /// # Errors
    ///
    /// [`Error::Provisioning`] for an unknown saga id or a journal failure.
    pub async fn status(&self, saga_id: &str) -> Result<SagaStatus, Error> {
        self.orchestrator
            .status(saga_id)
            .await
            .map_err(|e| Error::Provisioning(e.to_string()))
    }

    /// The orchestrator (metrics, recovery, dead-lettered sagas).
    pub fn orchestrator(&self) -> &Orchestrator {
        &self.orchestrator
    }
}

/// Deletes the rules `keys` (newest first); a rule already gone (deleted by hand
/// meanwhile) counts as undone.
async fn unregister(alerts: AlertManager, keys: Vec<String>) -> Result<(), StepError> {
    let present: Vec<String> = alerts
        .rules()
        .await
        .map_err(StepError::retryable)?
        .into_iter()
        .map(|r| r.key())
        .collect();
    for k in keys.into_iter().rev() {
        if present.contains(&k) {
            alerts.delete_rule(&k).await.map_err(StepError::retryable)?;
        }
    }
    Ok(())
}

/// Creates the spec's rules; all or nothing.
async fn register(alerts: AlertManager, spec: TenantSpec) -> Result<Vec<String>, StepError> {
    let mut created: Vec<String> = Vec::new();
    for r in spec.default_rules.clone() {
        let outcome = if r.tenant != spec.tenant {
            Err(Error::RuleCommand(format!(
                "rule `{}` belongs to tenant `{}`, not `{}`",
                r.key(),
                r.tenant,
                spec.tenant
            )))
        } else {
            let key = r.key();
            match alerts.create_rule(r.clone()).await {
                Ok(_) => Ok(key),
                // Run again after a crash: the rule this step created is there, the
                // same; take it as created (a different rule with its key is a
                // conflict and fails the step).
                Err(e) => match alerts.rules().await {
                    Ok(rules) if rules.contains(&r) => Ok(key),
                    _ => Err(e),
                },
            }
        };
        match outcome {
            Ok(key) => created.push(key),
            Err(e) => {
                while let Some(k) = created.pop() {
                    // Best effort: what cannot be deleted is reported in the error.
                    if let Err(d) = alerts.delete_rule(&k).await {
                        return Err(StepError::permanent(format!(
                            "{e}; and rule `{k}` could not be deleted again: {d}"
                        )));
                    }
                }
                return Err(StepError::permanent(e));
            }
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_writes_are_idempotent_under_their_key() {
        let d = TenantDirectory::new(100);
        let day = Duration::from_secs(86_400);
        d.set_retention_once("t", day, Some("p/retention")).unwrap();
        d.set_retention_once("t", day, Some("p/retention")).unwrap();
        assert!(d.set_retention_once("t", day, Some("other")).is_err());
        assert!(d.set_retention("t", day).is_err(), "no key: never a repeat");
        let q = TenantQuota {
            events_per_sec: 60,
            burst: 60,
        };
        d.allocate_once("t", q, Some("p/quota")).unwrap();
        d.allocate_once("t", q, Some("p/quota")).unwrap();
        assert_eq!(d.available(), 40, "allocated once");
        let more = TenantQuota {
            events_per_sec: 70,
            burst: 70,
        };
        assert!(
            d.allocate_once("t", more, Some("p/quota")).is_err(),
            "different quota"
        );
        assert!(d.release("t"));
        assert!(!d.release("t"));
        assert_eq!(d.available(), 100);
    }

    #[tokio::test]
    async fn the_rules_step_run_again_takes_its_own_rules_as_created() {
        use crate::{Comparison, Condition, Engine, RuleAggregate};
        let alerts = AlertManager::builder(Engine::builder().tick_interval(None).build().unwrap())
            .build()
            .unwrap();
        let rule = AlertRule::new(
            "t",
            "r",
            "m",
            RuleAggregate::Count,
            Condition::new(Comparison::Above, 1.0),
        );
        let spec = TenantSpec {
            tenant: "t".into(),
            retention: Duration::from_secs(1),
            default_rules: vec![rule.clone()],
            quota: TenantQuota {
                events_per_sec: 1,
                burst: 1,
            },
        };
        assert_eq!(
            register(alerts.clone(), spec.clone()).await.unwrap(),
            ["t/r"]
        );
        assert_eq!(
            register(alerts.clone(), spec.clone()).await.unwrap(),
            ["t/r"]
        );
        assert_eq!(alerts.rules().await.unwrap(), std::slice::from_ref(&rule));
        // A different rule under the same key is a conflict.
        let mut other = spec;
        other.default_rules[0].condition.threshold = 9.0;
        assert!(register(alerts.clone(), other).await.is_err());
        assert_eq!(alerts.rules().await.unwrap(), [rule], "left as it was");
    }
}
