//! The tenant-provisioning saga: a failure at each step compensates exactly the steps
//! that completed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::clock;
use weft_analytics::{
    AlertManager, AlertRule, Comparison, Condition, Engine, Notification, Notifier, Provisioned,
    Provisioner, RuleAggregate, Sink, SinkFuture, TenantDirectory, TenantQuota, TenantSpec,
};

#[derive(Debug)]
struct Null;
impl Sink for Null {
    fn deliver<'a>(&'a self, _: &'a Notification) -> SinkFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

fn rule(name: &str, sink: &str) -> AlertRule {
    AlertRule::new(
        "acme",
        name,
        "errors",
        RuleAggregate::Count,
        Condition::new(Comparison::Above, 10.0),
    )
    .sink(sink)
}

fn spec(rules: Vec<AlertRule>, rate: u32) -> TenantSpec {
    TenantSpec {
        tenant: "acme".into(),
        retention: Duration::from_secs(86_400),
        default_rules: rules,
        quota: TenantQuota {
            events_per_sec: rate,
            burst: rate * 2,
        },
    }
}

/// A directory with `capacity`, an alert manager with sink `ops`, a provisioner.
fn setup(capacity: u64) -> (TenantDirectory, AlertManager, Provisioner) {
    let clock = clock();
    let engine = Engine::builder()
        .clock(clock)
        .tick_interval(None)
        .build()
        .unwrap();
    let alerts = AlertManager::builder(engine)
        .notifier(Notifier::builder().sink("ops", Null).build().unwrap())
        .build()
        .unwrap();
    let dir = TenantDirectory::new(capacity);
    let p = Provisioner::new(dir.clone(), alerts.clone(), weft_saga::MemoryJournal::new()).unwrap();
    (dir, alerts, p)
}

async fn rule_keys(alerts: &AlertManager) -> Vec<String> {
    alerts
        .rules()
        .await
        .unwrap()
        .iter()
        .map(AlertRule::key)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn provisioning_completes_every_step() {
    let (dir, alerts, p) = setup(10_000);
    let out = p
        .provision(spec(vec![rule("a", "ops"), rule("b", "ops")], 1_000))
        .await
        .unwrap();
    assert_eq!(out, Provisioned::Completed);
    assert_eq!(dir.retention("acme"), Some(Duration::from_secs(86_400)));
    assert_eq!(dir.quota("acme").map(|q| q.events_per_sec), Some(1_000));
    assert_eq!(dir.available(), 9_000);
    let limit = alerts
        .engine()
        .tenant_quota("acme")
        .expect("the engine enforces it");
    assert_eq!(limit.burst(), dir.quota("acme").unwrap().burst);
    assert_eq!(rule_keys(&alerts).await, ["acme/a", "acme/b"]);
    let st = p.status("provision-acme").await.unwrap();
    assert_eq!(st.completed, ["retention", "rules", "quota"]);
    assert!(st.compensated.is_empty());
}

#[tokio::test(start_paused = true)]
async fn failing_at_retention_compensates_nothing() {
    let (dir, alerts, p) = setup(10_000);
    // Someone else's policy is there already: the first step fails.
    dir.set_retention("acme", Duration::from_secs(60)).unwrap();
    let out = p
        .provision(spec(vec![rule("a", "ops")], 1_000))
        .await
        .unwrap();
    match out {
        Provisioned::Compensated {
            failed_step,
            compensated,
            reason,
        } => {
            assert_eq!(failed_step, "retention");
            assert!(compensated.is_empty());
            assert!(
                reason.contains("already has a retention policy"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The existing policy is untouched; nothing else happened.
    assert_eq!(dir.retention("acme"), Some(Duration::from_secs(60)));
    assert!(rule_keys(&alerts).await.is_empty());
    assert_eq!(dir.quota("acme"), None);
}

#[tokio::test(start_paused = true)]
async fn failing_at_rules_compensates_the_retention_only() {
    let (dir, alerts, p) = setup(10_000);
    // The second rule names a sink that does not exist: the rules step fails after
    // creating the first one, deletes it again, and the saga undoes the retention.
    let out = p
        .provision(spec(vec![rule("a", "ops"), rule("b", "nowhere")], 1_000))
        .await
        .unwrap();
    match out {
        Provisioned::Compensated {
            failed_step,
            compensated,
            reason,
        } => {
            assert_eq!(failed_step, "rules");
            assert_eq!(compensated, ["retention"]);
            assert!(reason.contains("nowhere"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dir.retention("acme"), None);
    assert!(rule_keys(&alerts).await.is_empty());
    assert_eq!(dir.quota("acme"), None);
    assert_eq!(dir.available(), 10_000);
}

#[tokio::test(start_paused = true)]
async fn failing_at_quota_compensates_rules_and_retention() {
    let (dir, alerts, p) = setup(500);
    let out = p
        .provision(spec(vec![rule("a", "ops"), rule("b", "ops")], 1_000))
        .await
        .unwrap();
    match out {
        Provisioned::Compensated {
            failed_step,
            compensated,
            reason,
        } => {
            assert_eq!(failed_step, "quota");
            assert_eq!(compensated, ["rules", "retention"]);
            assert!(reason.contains("exceeds"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dir.retention("acme"), None);
    assert!(rule_keys(&alerts).await.is_empty());
    assert_eq!(dir.quota("acme"), None);
    assert_eq!(alerts.engine().tenant_quota("acme"), None);
    assert_eq!(dir.available(), 500);
}

#[tokio::test(start_paused = true)]
async fn a_rule_of_another_tenant_fails_the_rules_step() {
    let (dir, alerts, p) = setup(10_000);
    let mut foreign = rule("x", "ops");
    foreign.tenant = "globex".into();
    let out = p.provision(spec(vec![foreign], 1_000)).await.unwrap();
    assert!(
        matches!(out, Provisioned::Compensated { ref failed_step, .. } if failed_step == "rules"),
        "{out:?}"
    );
    assert!(rule_keys(&alerts).await.is_empty());
    assert_eq!(dir.retention("acme"), None);
}

/// An orchestrator "crash" at every point of a provisioning (the future dropped after
/// `polls` polls), then recovery from the file journal by a new provisioner: the tenant
/// ends fully provisioned, each effect applied once, whatever the cut point.
#[tokio::test(flavor = "current_thread")]
async fn recovery_after_a_crash_at_any_point_provisions_exactly_once() {
    use std::future::Future;
    use std::task::Poll;
    use weft_saga::{FileJournal, FsyncPolicy};

    let mut cuts_mid_saga = 0;
    for polls in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (directory, alerts, _) = setup(10_000);
        let journal = Arc::new(FileJournal::open(&path, FsyncPolicy::EveryRecord).unwrap());
        {
            let p =
                Provisioner::new(directory.clone(), alerts.clone(), Arc::clone(&journal)).unwrap();
            let mut run =
                Box::pin(p.provision(spec(vec![rule("a", "ops"), rule("b", "ops")], 1_000)));
            for _ in 0..polls {
                let done =
                    std::future::poll_fn(|cx| Poll::Ready(run.as_mut().poll(cx).is_ready())).await;
                if done {
                    break;
                }
                // Lets the journal's blocking writes progress, so the cut points spread
                // over the whole saga. Where the cut falls varies; what is asserted
                // holds for every cut.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Dropped here: the orchestrator "crashes" wherever it was.
        }
        // A write the dead orchestrator handed to the blocking pool may still land (as
        // after a real crash a write may or may not have reached the disk): let it
        // finish before the new journal opens the file. Either way the tenant must end
        // provisioned once.
        while journal.is_writing() {
            tokio::task::yield_now().await;
        }
        drop(journal);
        let journal = FileJournal::open(&path, FsyncPolicy::EveryRecord).unwrap();
        let p = Provisioner::new(directory.clone(), alerts.clone(), journal).unwrap();
        let recovered = p.orchestrator().recover().await.unwrap();
        cuts_mid_saga += usize::from(!recovered.is_empty());
        for (id, outcome) in &recovered {
            assert!(
                matches!(outcome, Ok(weft_saga::Outcome::Completed(_))),
                "polls {polls}: {id}: {outcome:?}"
            );
        }
        if recovered.is_empty() {
            // Cut before the saga started (nothing journaled) or after it finished.
            match p.status("provision-acme").await {
                Ok(st) => assert_eq!(
                    st.completed,
                    ["retention", "rules", "quota"],
                    "polls {polls}"
                ),
                Err(_) => {
                    assert_eq!(directory.retention("acme"), None, "polls {polls}");
                    continue;
                }
            }
        }
        assert_eq!(
            directory.retention("acme"),
            Some(Duration::from_secs(86_400)),
            "polls {polls}"
        );
        assert_eq!(
            directory.available(),
            9_000,
            "quota allocated once; polls {polls}"
        );
        assert_eq!(
            rule_keys(&alerts).await,
            ["acme/a", "acme/b"],
            "polls {polls}"
        );
    }
    assert!(cuts_mid_saga > 0, "some cut fell inside the saga");
}
