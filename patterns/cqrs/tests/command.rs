//! The command bus: routing, middleware order, per-key serialisation, timeouts.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_cqrs::{
    Command, CommandBus, CommandInfo, Error, EventSource, MemoryLog, Middleware, Position,
};

/// A command on `key` carrying a number; `trace` records the stages it passes.
struct Cmd {
    key: String,
    n: u64,
    trace: Option<Arc<Mutex<Vec<String>>>>,
    valid: bool,
}

impl Cmd {
    fn new(key: &str, n: u64) -> Self {
        Cmd {
            key: key.to_owned(),
            n,
            trace: None,
            valid: true,
        }
    }
}

impl Command for Cmd {
    fn key(&self) -> &str {
        &self.key
    }
    fn validate(&self) -> Result<(), String> {
        if let Some(t) = &self.trace {
            t.lock().unwrap().push("validate".into());
        }
        if self.valid {
            Ok(())
        } else {
            Err("n is bad".into())
        }
    }
}

async fn events(log: &MemoryLog<u64>) -> Vec<(String, u64)> {
    log.read(0, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.event))
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn same_key_commands_run_one_at_a_time_in_arrival_order() {
    let log = Arc::new(MemoryLog::new());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (f, m) = (Arc::clone(&in_flight), Arc::clone(&max));
    let bus = CommandBus::builder(Arc::clone(&log))
        .handler(move |c: Cmd| {
            let (f, m) = (Arc::clone(&f), Arc::clone(&m));
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                for _ in 0..3 {
                    tokio::task::yield_now().await; // let the others try to run
                }
                f.fetch_sub(1, Ordering::SeqCst);
                Ok(vec![c.n])
            }
        })
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let bus = bus.clone();
            tokio::spawn(async move { bus.execute(Cmd::new("k", n)).await })
        })
        .collect();
    let mut positions = Vec::new();
    for t in tasks {
        positions.push(t.await.unwrap().unwrap());
    }
    assert_eq!(
        max.load(Ordering::SeqCst),
        1,
        "two handlers of one key overlapped"
    );
    let order: Vec<u64> = events(&log).await.into_iter().map(|(_, n)| n).collect();
    assert_eq!(order, (0..50).collect::<Vec<_>>(), "not in arrival order");
    assert_eq!(positions, (1..=50).collect::<Vec<Position>>());
    assert_eq!(bus.stats().held_keys, 0, "idle keys are cleaned up");
    assert_eq!(bus.stats().executed, 50);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn different_keys_run_concurrently() {
    // The handler for "a" waits until the handler for "b" has run: with a global lock
    // (or any serialisation across keys) this deadlocks and the timeout fails the test.
    let log = Arc::new(MemoryLog::new());
    let b_ran = Arc::new(tokio::sync::Notify::new());
    let b = Arc::clone(&b_ran);
    let bus = CommandBus::builder(Arc::clone(&log))
        .handler(move |c: Cmd| {
            let b = Arc::clone(&b);
            async move {
                if c.key == "a" {
                    b.notified().await;
                } else {
                    b.notify_one();
                }
                Ok(vec![c.n])
            }
        })
        .build()
        .unwrap();
    let a = tokio::spawn({
        let bus = bus.clone();
        async move { bus.execute(Cmd::new("a", 1)).await }
    });
    tokio::task::yield_now().await; // "a" is now inside its handler, holding its key
    assert_eq!(bus.stats().held_keys, 1);
    let both = async {
        bus.execute(Cmd::new("b", 2)).await.unwrap();
        a.await.unwrap().unwrap()
    };
    tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("commands on different keys were serialised");
    assert_eq!(
        events(&log).await,
        [("b".to_owned(), 2), ("a".to_owned(), 1)]
    );
}

#[test]
fn many_keys_across_threads_conserve_every_command_and_never_overlap_per_key() {
    const KEYS: u64 = 8;
    const PER_KEY: u64 = 200;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    rt.block_on(async {
        let log = Arc::new(MemoryLog::new());
        let in_flight: Arc<HashMap<String, AtomicUsize>> = Arc::new(
            (0..KEYS)
                .map(|k| (format!("k{k}"), AtomicUsize::new(0)))
                .collect(),
        );
        let f = Arc::clone(&in_flight);
        let bus = CommandBus::builder(Arc::clone(&log))
            .key_shards(4)
            .handler(move |c: Cmd| {
                let f = Arc::clone(&f);
                async move {
                    let slot = &f[&c.key];
                    assert_eq!(
                        slot.fetch_add(1, Ordering::SeqCst),
                        0,
                        "overlap on {}",
                        c.key
                    );
                    tokio::task::yield_now().await;
                    slot.fetch_sub(1, Ordering::SeqCst);
                    Ok(vec![c.n])
                }
            })
            .build()
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..KEYS * PER_KEY {
            let bus = bus.clone();
            tasks.push(tokio::spawn(async move {
                bus.execute(Cmd::new(&format!("k{}", i % KEYS), i)).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let mut seen: Vec<u64> = events(&log).await.into_iter().map(|(_, n)| n).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..KEYS * PER_KEY).collect::<Vec<_>>());
        assert_eq!(bus.stats().held_keys, 0);
    });
}

#[derive(Debug)]
struct Recorder {
    name: &'static str,
    trace: Arc<Mutex<Vec<String>>>,
    refuse: bool,
}

impl Middleware for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }
    fn before(&self, info: &CommandInfo<'_>, command: &dyn Any) -> Result<(), String> {
        assert!(info.name.ends_with("Cmd"));
        assert!(command.downcast_ref::<Cmd>().is_some());
        self.trace
            .lock()
            .unwrap()
            .push(format!("{}.before", self.name));
        if self.refuse {
            Err("no".into())
        } else {
            Ok(())
        }
    }
    fn after(&self, _: &CommandInfo<'_>, outcome: &Result<Position, Error>) {
        let tag = if outcome.is_ok() { "ok" } else { "err" };
        self.trace
            .lock()
            .unwrap()
            .push(format!("{}.after.{tag}", self.name));
    }
}

fn traced_bus(
    log: &Arc<MemoryLog<u64>>,
    trace: &Arc<Mutex<Vec<String>>>,
    refuse_m2: bool,
) -> CommandBus<MemoryLog<u64>> {
    let (t_auth, t_handler) = (Arc::clone(trace), Arc::clone(trace));
    CommandBus::builder(Arc::clone(log))
        .middleware(Recorder {
            name: "m1",
            trace: Arc::clone(trace),
            refuse: false,
        })
        .middleware(Recorder {
            name: "m2",
            trace: Arc::clone(trace),
            refuse: refuse_m2,
        })
        .authorize(move |info, _| {
            t_auth.lock().unwrap().push("authorize".into());
            if info.key == "forbidden" {
                Err("not yours".into())
            } else {
                Ok(())
            }
        })
        .handler(move |c: Cmd| {
            t_handler.lock().unwrap().push("handler".into());
            async move { Ok(vec![c.n]) }
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn middleware_runs_in_the_documented_order_and_a_refusal_stops_later_stages() {
    let log = Arc::new(MemoryLog::new());
    let trace = Arc::new(Mutex::new(Vec::new()));
    let cmd = |key: &str, valid| Cmd {
        key: key.to_owned(),
        n: 1,
        trace: Some(Arc::clone(&trace)),
        valid,
    };
    let take = || std::mem::take(&mut *trace.lock().unwrap());

    let bus = traced_bus(&log, &trace, false);
    assert_eq!(bus.execute(cmd("k", true)).await.unwrap(), 1);
    let before = ["authorize", "validate", "m1.before", "m2.before"];
    let after_ok = ["handler", "m2.after.ok", "m1.after.ok"];
    assert_eq!(take(), [&before[..], &after_ok[..]].concat());

    let err = bus.execute(cmd("forbidden", true)).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert_eq!(take(), ["authorize"]);

    let err = bus.execute(cmd("k", false)).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert_eq!(take(), ["authorize", "validate"]);

    let bus = traced_bus(&log, &trace, true);
    let err = bus.execute(cmd("k", true)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                middleware: "m2",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(take(), [&before[..], &["m1.after.err"][..]].concat());
    assert_eq!(log.len(), 1, "refused commands append nothing");
    assert_eq!(bus.stats().refused, 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_timed_out_command_appends_nothing_and_frees_its_key() {
    let log = Arc::new(MemoryLog::new());
    let bus = CommandBus::builder(Arc::clone(&log))
        .timeout(Duration::from_secs(1))
        .handler(|c: Cmd| async move {
            if c.n == 0 {
                tokio::time::sleep(Duration::from_secs(60)).await; // a stuck handler
            }
            Ok(vec![c.n])
        })
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let err = bus.execute(Cmd::new("k", 0)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(log.len(), 0);
    assert_eq!(
        bus.stats().held_keys,
        0,
        "the timed-out command released its key"
    );

    // A command queued behind a stuck one times out while waiting for the key.
    let stuck = tokio::spawn({
        let bus = bus.clone();
        async move { bus.execute(Cmd::new("k", 0)).await }
    });
    tokio::task::yield_now().await;
    let err = bus.execute(Cmd::new("k", 5)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(stuck.await.unwrap().is_err());
    assert_eq!(bus.execute(Cmd::new("k", 7)).await.unwrap(), 1);
    assert_eq!(bus.stats().timed_out, 3);
}

#[tokio::test(flavor = "current_thread")]
async fn rejections_missing_handlers_and_empty_decisions() {
    struct Other;
    impl Command for Other {
        fn key(&self) -> &str {
            "o"
        }
    }
    let log = Arc::new(MemoryLog::new());
    let bus = CommandBus::builder(Arc::clone(&log))
        .handler(|c: Cmd| async move {
            match c.n {
                0 => Err("balance too low".into()),
                1 => Ok(vec![]),
                n => Ok(vec![n, n]),
            }
        })
        .build()
        .unwrap();
    let err = bus.execute(Cmd::new("k", 0)).await.unwrap_err();
    assert!(err.to_string().contains("balance too low"), "{err}");
    assert!(matches!(
        bus.execute(Other).await,
        Err(Error::NoHandler {
            kind: "command",
            ..
        })
    ));
    assert_eq!(bus.execute(Cmd::new("k", 2)).await.unwrap(), 2);
    assert_eq!(
        bus.execute(Cmd::new("k", 1)).await.unwrap(),
        2,
        "no events: the head"
    );
    let s = bus.stats();
    assert_eq!((s.executed, s.rejected, s.refused), (2, 1, 1));
}

#[test]
fn invalid_configuration_is_an_error() {
    let log = Arc::new(MemoryLog::<u64>::new());
    assert!(matches!(
        CommandBus::builder(Arc::clone(&log))
            .timeout(Duration::ZERO)
            .build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        CommandBus::builder(log).key_shards(0).build(),
        Err(Error::Config(_))
    ));
}
