//! The durable input log: replay after a clean restart, and the crash test (a child
//! process ingesting with ack-after-fsync, SIGKILLed at random points, many times).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Rng, T0, builder, cells, clock, events};
use weft_analytics::{
    Ack, Aggregate, Batch, Durability, Engine, Error, Event, Query, Readiness, RejectReason,
    TimeMode, Value, WindowSpec,
};
use weft_time::ManualClock;

const WAIT: Duration = Duration::from_secs(10);

fn durable_builder(
    clock: &ManualClock,
    dir: &std::path::Path,
    ack: Ack,
) -> weft_analytics::EngineBuilder {
    builder(clock)
        .shards(2)
        .window(WindowSpec::tumbling(Duration::from_secs(60)))
        .durable(Durability::new(dir).ack(ack).segment_size(64 * 1024))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebuilds_the_same_windows_by_replay() {
    for ack in [Ack::AfterAppend, Ack::AfterFsync] {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let input = events(&mut Rng::new(7), 3_000, 20, 100);
        // The reference: the same input through an in-memory engine.
        let reference = builder(&clock)
            .shards(2)
            .window(WindowSpec::tumbling(Duration::from_secs(60)))
            .build()
            .unwrap();
        let mut rejected_total = 0;
        {
            let engine = durable_builder(&clock, dir.path(), ack).build().unwrap();
            engine.ready().await.unwrap();
            assert!(engine.is_ready());
            for (i, chunk) in input.chunks(100).enumerate() {
                let mut batch = chunk.to_vec();
                // One invalid event per batch: rejected, and never logged.
                batch.push(Event::new("latency", T0 + i as i64, f64::NAN).dim("host", "bad"));
                let r = engine.ingest(Batch::new(batch)).await.unwrap();
                assert_eq!(r.accepted, chunk.len());
                assert_eq!(r.rejected.len(), 1);
                assert_eq!(r.rejected[0].reason, RejectReason::NonFiniteValue);
                rejected_total += 1;
                reference.ingest(Batch::new(chunk.to_vec())).await.unwrap();
            }
            assert_eq!(engine.log_counts(), (30, 0));
            engine.shutdown(WAIT).await;
        }
        assert_eq!(rejected_total, 30);
        reference.finish(WAIT).await.unwrap();
        let want = cells(&reference, "latency", "host");
        assert!(!want.is_empty());

        let engine = durable_builder(&clock, dir.path(), ack).build().unwrap();
        engine.ready().await.unwrap();
        assert_eq!(engine.readiness(), Readiness::Ready);
        assert_eq!(engine.log_counts(), (0, 30), "every batch replayed");
        // Replayed batches are not counted as newly accepted.
        assert_eq!(engine.metrics().accepted, 0);
        engine.finish(WAIT).await.unwrap();
        let got = cells(&engine, "latency", "host");
        assert_eq!(
            got, want,
            "{ack:?}: replay rebuilds exactly the streamed windows"
        );
        assert!(
            !got.keys().any(|(h, _)| h == "bad"),
            "rejected events are not logged"
        );
        engine.shutdown(WAIT).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_waits_for_the_replay_and_nothing_is_lost_across_three_lives() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    for life in 0..3i64 {
        let engine = durable_builder(&clock, dir.path(), Ack::AfterAppend)
            .build()
            .unwrap();
        // Ingest right away, without waiting for readiness: it queues behind the replay.
        let batch = (0..10)
            .map(|i| Event::new("m", T0 + life * 1_000 + i, 1.0).dim("life", life.to_string()))
            .collect();
        let r = engine.ingest(Batch::new(batch)).await.unwrap();
        assert_eq!(r.accepted, 10);
        assert!(engine.is_ready());
        assert_eq!(engine.log_counts(), (1, life as u64));
        engine.flush(WAIT).await.unwrap();
        engine.shutdown(WAIT).await;
    }
    let engine = durable_builder(&clock, dir.path(), Ack::AfterAppend)
        .build()
        .unwrap();
    engine.ready().await.unwrap();
    engine.finish(WAIT).await.unwrap();
    let got = cells(&engine, "m", "life");
    let counts: Vec<(String, u64)> = got.iter().map(|((l, _), (c, _))| (l.clone(), *c)).collect();
    assert_eq!(
        counts,
        [("0".into(), 10), ("1".into(), 10), ("2".into(), 10)]
    );
}

#[tokio::test]
async fn a_corrupt_record_fails_the_replay_and_ingest_says_so() {
    use weft_eventsourcing::{EventStore, ExpectedVersion, FileLog, FileLogConfig, NewEvent};
    let dir = tempfile::tempdir().unwrap();
    {
        // A record of the engine's stream and type whose payload is not a batch.
        let log = FileLog::open(dir.path().join("log"), FileLogConfig::default()).unwrap();
        log.append(
            "weft-analytics-input",
            ExpectedVersion::Any,
            vec![NewEvent::new("Batch", 1, vec![0xff; 7])],
        )
        .unwrap();
    }
    let clock = clock();
    let engine = durable_builder(&clock, dir.path(), Ack::AfterFsync)
        .build()
        .unwrap();
    let e = engine.ready().await.unwrap_err();
    assert!(matches!(e, Error::Log(_)), "{e}");
    assert!(matches!(engine.readiness(), Readiness::Failed(_)));
    assert!(!engine.is_ready());
    let err = engine
        .ingest(Batch::new(vec![Event::new("m", T0, 1.0)]))
        .await
        .unwrap_err();
    assert!(matches!(err.error, Error::Log(_)));
    assert_eq!(err.into_batch().len(), 1, "the batch is handed back");
}

#[test]
fn a_bad_data_directory_is_a_build_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    let file = tempfile::NamedTempFile::new().unwrap();
    // A regular file where the data directory should be.
    let clock = clock();
    let e = durable_builder(&clock, file.path(), Ack::AfterFsync)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Log(_)), "{e}");
}

// ---------------------------------------------------------------------------------------
// The crash test.

const CHILD_ENV: &str = "WEFT_ANALYTICS_CRASH_CHILD_DIR";
const RUN_ENV: &str = "WEFT_ANALYTICS_CRASH_CHILD_RUN";
const KILLS: usize = 50;
/// Events per batch; each batch is its own series (`b` = run-k), value 1 + i.
const PER_BATCH: u64 = 3;
const BATCH_SUM: f64 = 6.0; // 1 + 2 + 3

fn crash_builder(dir: &std::path::Path) -> weft_analytics::EngineBuilder {
    // A fixed manual clock: every run sees the same "now", so validation passes and
    // idle detection never fires; a 10-minute out-of-orderness bound keeps every window
    // open until `finish`.
    let clock = clock();
    Engine::builder()
        .clock(clock)
        .tick_interval(None)
        .time(TimeMode::event_time(
            Duration::from_secs(600),
            Duration::from_secs(3_600),
        ))
        .shards(2)
        .window(WindowSpec::tumbling(Duration::from_secs(60)))
        .durable(
            Durability::new(dir)
                .ack(Ack::AfterFsync)
                .segment_size(16 * 1024)
                // Kills also land during snapshots and log compactions, and
                // restarts load the snapshots.
                .snapshot_every(Some(7))
                .compact_after_snapshot(true),
        )
}

fn crash_batch(run: &str, k: u64) -> Batch {
    let events = (0..PER_BATCH)
        .map(|i| {
            Event::new("crash", T0 + ((k % 50) * 100) as i64, (1 + i) as f64)
                .dim("b", format!("{run}-{k}"))
        })
        .collect();
    Batch::new(events)
}

/// The child: ingests until killed, printing every acknowledged batch. Does nothing
/// when run normally.
#[test]
#[ignore = "run by `sigkill_at_random_points_loses_no_acknowledged_event` as its child"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let run = std::env::var(RUN_ENV).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let engine = crash_builder(std::path::Path::new(&dir)).build().unwrap();
        engine.ready().await.unwrap();
        let mut out = std::io::stdout();
        writeln!(out, "READY").unwrap();
        for k in 0u64.. {
            let r = engine.ingest(crash_batch(&run, k)).await.unwrap();
            assert_eq!(r.accepted as u64, PER_BATCH);
            writeln!(out, "ACK {run}-{k}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[cfg(unix)]
#[test]
fn sigkill_at_random_points_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = fastrand::Rng::with_seed(0xc4a5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let started = std::time::Instant::now();
    let mut kills = 0;
    let mut snapshots_loaded = 0;
    for round in 0..KILLS {
        let run = format!("r{round}");
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env(RUN_ENV, &run)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    // A line cut off by the kill is not an acknowledgement we saw.
                    Ok(_) if line.ends_with('\n') => {
                        if tx.send(line.trim_end().to_owned()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                }
            }
        });
        // Choosing a kill point, not waiting for an outcome: every fifth round during
        // start-up (open, replay), the others after the first acknowledgements.
        let mut lines = Vec::new();
        if round % 5 == 4 {
            std::thread::sleep(Duration::from_millis(rng.u64(0..30)));
        } else {
            loop {
                match rx.recv_timeout(Duration::from_secs(20)) {
                    Ok(l) if l.starts_with("ACK ") => {
                        lines.push(l);
                        break;
                    }
                    Ok(l) => lines.push(l),
                    Err(e) => panic!("the child acknowledged nothing: {e}"),
                }
            }
            std::thread::sleep(Duration::from_millis(rng.u64(1..40)));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        acked.extend(
            lines
                .iter()
                .filter_map(|l| l.strip_prefix("ACK ").map(str::to_owned)),
        );

        // Restart in this process, check, ingest something new, stop.
        rt.block_on(async {
            let engine = crash_builder(dir.path()).build().unwrap();
            engine.ready().await.unwrap();
            let (_, replayed) = engine.log_counts();
            let from_snapshot = engine.last_snapshot().map_or(0, |s| s.position);
            snapshots_loaded += u64::from(from_snapshot > 0);
            let parent = format!("p{round}");
            let r = engine.ingest(crash_batch(&parent, 0)).await.unwrap();
            assert_eq!(
                r.accepted as u64, PER_BATCH,
                "the engine accepts new events"
            );
            acked.insert(format!("{parent}-0"));
            engine.finish(WAIT).await.unwrap();
            let mut per_batch: BTreeMap<String, (u64, f64)> = BTreeMap::new();
            for ((b, _), (c, s)) in cells(&engine, "crash", "b") {
                let x = per_batch.entry(b).or_default();
                x.0 += c;
                x.1 += s;
            }
            // Exactly once: every logged batch (acknowledged or not) counts each of its
            // events once, and there are as many batches as the log holds.
            for (b, (c, s)) in &per_batch {
                assert_eq!(
                    (*c, *s),
                    (PER_BATCH, BATCH_SUM),
                    "batch {b} after kill {kills}"
                );
            }
            assert_eq!(per_batch.len() as u64, from_snapshot + replayed + 1);
            for b in &acked {
                assert!(
                    per_batch.contains_key(b),
                    "acknowledged batch {b} is missing after kill {kills}"
                );
            }
            engine.shutdown(WAIT).await;
        });
    }
    assert_eq!(kills, KILLS);
    assert!(
        acked.len() > KILLS * 3,
        "too few acknowledged batches: {}",
        acked.len()
    );
    assert!(snapshots_loaded > 0, "no restart started from a snapshot");
    let first_segment = std::fs::read_dir(dir.path().join("log"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log")?.parse::<u64>().ok()
        })
        .min()
        .unwrap();
    assert!(first_segment > 0, "the log was compacted behind snapshots");
    eprintln!(
        "{kills} SIGKILLs, {} acknowledged batches all present exactly once, {snapshots_loaded} restarts from a snapshot, log compacted to start at {first_segment} ({:?})",
        acked.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_time_replays_the_logged_arrival_times() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let build = |clock: &ManualClock| {
        Engine::builder()
            .clock(clock.clone())
            .tick_interval(None)
            .time(TimeMode::ProcessingTime)
            .window(WindowSpec::tumbling(Duration::from_secs(10)))
            .durable(Durability::new(dir.path()).ack(Ack::AfterAppend))
            .build()
            .unwrap()
    };
    {
        let engine = build(&clock);
        // Arrivals at 0 s, 12 s and 25 s: three windows, whatever the events say.
        let mut at = 0;
        for (arrival, n) in [(0u64, 2usize), (12, 3), (25, 4)] {
            clock.advance(Duration::from_secs(arrival - at));
            at = arrival;
            let batch = (0..n).map(|_| Event::new("pt", 0, 1.0)).collect();
            engine.ingest(Batch::new(batch)).await.unwrap();
        }
        engine.shutdown(WAIT).await;
    }
    // Restart much later: the replay uses the logged arrival times, not the clock.
    clock.advance(Duration::from_secs(3_600));
    let engine = build(&clock);
    engine.ready().await.unwrap();
    engine.finish(WAIT).await.unwrap();
    let q = Query::new("default", "pt", T0 - 60_000, T0 + 60_000).aggregates([Aggregate::Count]);
    let r = engine.query(&q).unwrap();
    let got: Vec<(i64, Value)> = r.groups[0]
        .points
        .iter()
        .map(|p| (p.start - T0, p.values[0].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (0, Value::Count(2)),
            (10_000, Value::Count(3)),
            (20_000, Value::Count(4))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_ingest_future_never_splits_a_logged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let engine = durable_builder(&clock, dir.path(), Ack::AfterFsync)
        .build()
        .unwrap();
    engine.ready().await.unwrap();
    for k in 0..20i64 {
        let batch = (0..5)
            .map(|i| Event::new("drop", T0 + k * 10 + i, 1.0))
            .collect();
        // Polled once, then dropped: usually while the append is on the blocking pool.
        let _ = tokio::time::timeout(Duration::ZERO, engine.ingest(Batch::new(batch))).await;
    }
    // Every call that started went on in its own task: wait for the log to have them.
    tokio::time::timeout(WAIT, async {
        while engine.log_counts().0 < 20 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every started call reaches the log");
    engine.finish(WAIT).await.unwrap();
    let q = Query::new("default", "drop", T0 - 60_000, T0 + 60_000).aggregates([Aggregate::Count]);
    let count: u64 = engine.query(&q).unwrap().groups[0]
        .points
        .iter()
        .map(|p| match p.values[0] {
            Value::Count(c) => c,
            _ => 0,
        })
        .sum();
    assert_eq!(count, 100, "every logged batch placed in full");
    engine.shutdown(WAIT).await;
}
