//! The kill test: a child process executes commands while two projections checkpoint
//! to files; it is SIGKILLed at random points, restarted, killed again; at the end every
//! projection, restarted from its checkpoint, must equal a from-scratch replay of the
//! log: no lost and no doubled updates.
//!
//! The child is this test binary itself, re-executed on the ignored test `kill_child`.
//! The seed of the kill schedule is printed; set `WEFT_CQRS_KILL_SEED` to replay one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use weft_cqrs::{
    CheckpointStore, Command, CommandBus, EventSource, FileCheckpoints, FileLog, Position,
    Projection, ProjectionHandle, Recorded, projection,
};

const DIR_ENV: &str = "WEFT_CQRS_KILL_DIR";
const ROUNDS: usize = 6;

/// An event: a unique id (process id and counter) and an amount.
type Ev = (u64, i64);

/// Every id per key, in apply order: a lost update is a missing id, a doubled one a
/// repeated id.
#[derive(Debug, Default, Clone, PartialEq)]
struct Ledger {
    ids: BTreeMap<String, Vec<u64>>,
}

/// Sum and event count per key.
#[derive(Debug, Default, Clone, PartialEq)]
struct Sums {
    sums: BTreeMap<String, (i64, u64)>,
}

impl Projection for Ledger {
    type Event = Ev;
    fn apply(&mut self, e: &Recorded<Ev>) {
        self.ids.entry(e.key.clone()).or_default().push(e.event.0);
    }
    fn snapshot(&self) -> Option<Vec<u8>> {
        Some(serde_json::to_vec(&self.ids).unwrap())
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        self.ids = serde_json::from_slice(state).map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Projection for Sums {
    type Event = Ev;
    fn apply(&mut self, e: &Recorded<Ev>) {
        let s = self.sums.entry(e.key.clone()).or_default();
        s.0 += e.event.1;
        s.1 += 1;
    }
    fn snapshot(&self) -> Option<Vec<u8>> {
        Some(serde_json::to_vec(&self.sums).unwrap())
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        self.sums = serde_json::from_slice(state).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Adds `events` events of `amount` to account `key`.
struct Deposit {
    key: String,
    amount: i64,
    events: usize,
}

impl Command for Deposit {
    fn key(&self) -> &str {
        &self.key
    }
}

struct Files {
    log: PathBuf,
    checkpoints: PathBuf,
}

fn files(dir: &Path) -> Files {
    Files {
        log: dir.join("log.jsonl"),
        checkpoints: dir.join("checkpoints"),
    }
}

type Started = (ProjectionHandle<Ledger>, ProjectionHandle<Sums>);

fn start(log: &Arc<FileLog<Ev>>, store: &Arc<dyn CheckpointStore>) -> Started {
    let ledger = projection("ledger", Arc::clone(log), Ledger::default())
        .checkpoints(Arc::clone(store))
        .batch_size(16)
        .checkpoint_every(5)
        .start()
        .unwrap();
    let sums = projection("sums", Arc::clone(log), Sums::default())
        .checkpoints(Arc::clone(store))
        .batch_size(64)
        .checkpoint_every(13)
        .start()
        .unwrap();
    (ledger, sums)
}

/// The child: runs commands from 4 tasks forever, with both projections tracking.
#[test]
#[ignore = "the child process of `killed_processes_converge_to_a_replay`"]
fn kill_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let f = files(Path::new(&dir));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let log = Arc::new(FileLog::<Ev>::open(&f.log).unwrap());
        let store: Arc<dyn CheckpointStore> =
            Arc::new(FileCheckpoints::open(&f.checkpoints).unwrap());
        let _projections = start(&log, &store);
        let next = Arc::new(AtomicU64::new(u64::from(std::process::id()) << 32));
        let bus = CommandBus::builder(Arc::clone(&log))
            .handler(move |d: Deposit| {
                let next = Arc::clone(&next);
                async move {
                    Ok((0..d.events)
                        .map(|_| (next.fetch_add(1, Ordering::Relaxed), d.amount))
                        .collect())
                }
            })
            .build()
            .unwrap();
        let _workers: Vec<_> = (0..4)
            .map(|w| {
                let bus = bus.clone();
                tokio::spawn(async move {
                    let mut rng = fastrand::Rng::with_seed(u64::from(std::process::id()) * 31 + w);
                    loop {
                        let d = Deposit {
                            key: format!("acct-{}", rng.u8(0..6)),
                            amount: rng.i64(-50..100),
                            events: rng.usize(1..4),
                        };
                        bus.execute(d).await.unwrap();
                    }
                })
            })
            .collect();
        // Runs until SIGKILLed.
        std::future::pending::<()>().await;
    });
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn killed_processes_converge_to_a_replay() {
    let seed = std::env::var("WEFT_CQRS_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("kill schedule seed: {seed} (set WEFT_CQRS_KILL_SEED to replay it)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = std::env::temp_dir().join(format!("weft-cqrs-kill-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let f = files(&dir);
    let exe = std::env::current_exe().unwrap();
    let mut resumed_from = Vec::new();
    for round in 0..ROUNDS {
        let store = FileCheckpoints::open(&f.checkpoints).unwrap();
        resumed_from.push(store.load("ledger").unwrap().map_or(0, |c| c.position));
        let before = len(&f.log);
        let mut child = Process::new(&exe)
            .args([
                "kill_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_ENV, &dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Kill only once the child is writing, at a random point after that. (The
        // sleeps choose when to kill; they make no outcome happen.)
        let deadline = Instant::now() + Duration::from_secs(20);
        while len(&f.log) <= before {
            assert!(
                Instant::now() < deadline,
                "round {round}: the child wrote nothing"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "round {round}: the child exited"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(20..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert!(
        resumed_from.iter().skip(1).any(|&p| p > 0),
        "no restart resumed from a saved checkpoint: {resumed_from:?}"
    );

    // Restart once more (in this process) and let the projections catch up.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let log = Arc::new(FileLog::<Ev>::open(&f.log).unwrap());
        let store: Arc<dyn CheckpointStore> =
            Arc::new(FileCheckpoints::open(&f.checkpoints).unwrap());
        let head: Position = *log.watch_head().borrow();
        assert!(head > 0);
        let (ledger, sums) = start(&log, &store);
        ledger
            .wait_for(head, Duration::from_secs(30))
            .await
            .unwrap();
        sums.wait_for(head, Duration::from_secs(30)).await.unwrap();

        let mut want_ledger = Ledger::default();
        let mut want_sums = Sums::default();
        for e in log.read(0, usize::MAX).await.unwrap() {
            want_ledger.apply(&e);
            want_sums.apply(&e);
        }
        let all: usize = want_ledger.ids.values().map(Vec::len).sum();
        assert_eq!(all as u64, head);
        assert_eq!(
            ledger.query(Ledger::clone),
            want_ledger,
            "ledger differs from a replay"
        );
        assert_eq!(
            sums.query(Sums::clone),
            want_sums,
            "sums differ from a replay"
        );
        println!("{ROUNDS} kills, {head} events, restarts resumed from {resumed_from:?}");
        ledger.shutdown().await;
        sums.shutdown().await;
    });
    drop(rt); // no checkpoint write may race the clean-up
    std::fs::remove_dir_all(&dir).unwrap();
}
