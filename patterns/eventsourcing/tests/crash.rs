//! Crash test of the file log: a child process (this test binary, re-executed) appends
//! with group commit and fsync per batch from two threads, printing every acknowledged
//! append; the parent SIGKILLs it at random points, many times, then reopens the log and
//! checks that every acknowledged append is there, that no append is half there, that
//! streams are gapless, and that the log accepts new appends.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use weft_eventsourcing::{
    EventStore, ExpectedVersion, FileLog, FileLogConfig, FsyncPolicy, NewEvent,
};

const CHILD_ENV: &str = "WEFT_EVENTSOURCING_CRASH_CHILD_DIR";
const ROUNDS: usize = 25;

fn config() -> FileLogConfig {
    // Small segments so that kills also land around rollovers.
    FileLogConfig::default()
        .fsync(FsyncPolicy::Batch)
        .segment_size(16 * 1024)
}

/// The child: appends forever until killed. Does nothing when run normally.
#[test]
#[ignore = "run by `sigkill_at_random_points` as its child process"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let log = FileLog::open(&dir, config()).unwrap();
    let out = std::sync::Mutex::new(std::io::stdout());
    let run = std::process::id();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (log, out) = (&log, &out);
            s.spawn(move || {
                for k in 0u64.. {
                    let n = 1 + (k % 4);
                    let stream = format!("t{t}");
                    let events = (0..n)
                        .map(|i| {
                            NewEvent::new("E", 1, format!("{run}:{t}:{k}:{i}/{n}").into_bytes())
                        })
                        .collect();
                    let r = log.append(&stream, ExpectedVersion::Any, events).unwrap();
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ACK {stream} {} {}", r.version, r.last_position).unwrap();
                    o.flush().unwrap();
                }
            });
        }
    });
}

#[cfg(unix)]
#[test]
fn sigkill_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut acked: Vec<(String, u64, u64)> = Vec::new();
    let mut total_truncated = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    // A line cut off by the kill is not an acknowledgement we saw.
                    Ok(_) if line.ends_with('\n') && line.starts_with("ACK ") => {
                        if tx.send(line.trim_end().to_owned()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                }
            }
        });
        // Choosing a kill point, not waiting for an outcome: sometimes right away
        // (during open or recovery), usually after the first acknowledgements.
        if round % 5 == 0 {
            std::thread::sleep(Duration::from_millis(rng.u64(0..5)));
        } else {
            let first = rx.recv_timeout(Duration::from_secs(20));
            if let Ok(line) = first {
                acked.push(parse(&line));
            }
            std::thread::sleep(Duration::from_millis(rng.u64(1..40)));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        acked.extend(rx.try_iter().map(|l| parse(&l)));

        let log = FileLog::open(dir.path(), config()).unwrap();
        total_truncated += log.recovery().truncated_bytes;
        check(&log, &acked);
        // The log accepts new appends after recovery.
        let v = log.stream_version("parent").unwrap();
        log.append(
            "parent",
            ExpectedVersion::Exact(v),
            vec![NewEvent::new("P", 1, b"p".to_vec())],
        )
        .unwrap();
    }
    assert!(
        acked.len() > ROUNDS * 5,
        "too few acknowledged appends: {}",
        acked.len()
    );
    eprintln!(
        "{} acknowledged appends over {ROUNDS} kills; {total_truncated} torn bytes truncated",
        acked.len()
    );
}

fn parse(line: &str) -> (String, u64, u64) {
    let mut it = line.split(' ').skip(1);
    let stream = it.next().unwrap().to_owned();
    let version = it.next().unwrap().parse().unwrap();
    let position = it.next().unwrap().parse().unwrap();
    (stream, version, position)
}

fn check(log: &FileLog, acked: &[(String, u64, u64)]) {
    let all = log.read_all(0, usize::MAX).unwrap();
    // Positions are gapless.
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64);
    }
    // Every acknowledged append is present, at the position and version acknowledged.
    for (stream, version, position) in acked {
        let e = all
            .get(*position as usize)
            .unwrap_or_else(|| panic!("acknowledged position {position} of {stream} is missing"));
        assert_eq!((&*e.stream_id, e.version), (stream.as_str(), *version));
    }
    // Every append is wholly present: its events are consecutive and complete.
    let mut appends: BTreeMap<String, Vec<(u64, u64, u64)>> = BTreeMap::new();
    let mut versions: HashMap<String, u64> = HashMap::new();
    for e in &all {
        let v = versions.entry(e.stream_id.to_string()).or_default();
        *v += 1;
        assert_eq!(e.version, *v, "stream {} has a gap", e.stream_id);
        let text = std::str::from_utf8(&e.payload).unwrap();
        if &*e.event_type != "E" {
            continue;
        }
        let (key, rest) = text.rsplit_once(':').unwrap();
        let (i, n) = rest.split_once('/').unwrap();
        appends.entry(key.to_owned()).or_default().push((
            i.parse().unwrap(),
            n.parse().unwrap(),
            e.position,
        ));
    }
    for (key, events) in appends {
        let n = events[0].1;
        assert_eq!(
            events.len() as u64,
            n,
            "append {key} is half there: {events:?}"
        );
        for (j, (i, _, position)) in events.iter().enumerate() {
            assert_eq!(*i, j as u64);
            assert_eq!(*position, events[0].2 + j as u64);
        }
    }
}
