//! Loom models of `weft-eventsourcing`: the optimistic-concurrency check of the in-memory
//! store admits exactly one of two writers expecting the same version, and the file log's
//! group-commit handoff acknowledges every append exactly once, in a gapless order, loses
//! no wake-up (loom reports a deadlock if a queued appender could wait forever), and never
//! lets a reader see half of an append.
#![cfg(loom)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use loom::sync::Arc;
use loom::thread;
use weft_eventsourcing::{
    EventStore, ExpectedVersion, FileLog, FileLogConfig, FsyncPolicy, InMemoryStore, NewEvent,
};

fn event(payload: &str) -> Vec<NewEvent> {
    vec![NewEvent::new("E", 1, payload.as_bytes().to_vec())]
}

/// A fresh directory per model iteration (std's temp dir; removed on drop).
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("weft-es-loom-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two writers both expect the stream to be empty: exactly one succeeds, the other gets a
/// conflict naming expected 0 and actual 1, and the stream holds one event.
#[test]
fn in_memory_one_winner_per_expected_version() {
    loom::model(|| {
        let store = Arc::new(InMemoryStore::new());
        let other = {
            let store = Arc::clone(&store);
            thread::spawn(move || store.append("s", ExpectedVersion::NoStream, event("b")))
        };
        let mine = store.append("s", ExpectedVersion::NoStream, event("a"));
        let theirs = other.join().unwrap();
        assert!(mine.is_ok() != theirs.is_ok(), "exactly one writer wins");
        let loser = if mine.is_ok() { theirs } else { mine };
        match loser {
            Err(weft_eventsourcing::Error::Conflict {
                expected, actual, ..
            }) => assert_eq!((expected, actual), (0, 1)),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(store.stream_version("s").unwrap(), 1);
        assert_eq!(store.head_position(), 1);
    });
}

/// Two appenders race into the group commit (one leads a flush while the other queues,
/// or both queue and one leads for both): both are acknowledged, with distinct
/// consecutive versions and positions, and both events are readable afterwards in the
/// acknowledged order.
#[test]
fn file_log_group_commit_acknowledges_every_append_once() {
    loom::model(|| {
        let dir = Dir::new();
        let log = Arc::new(
            FileLog::open(&dir.0, FileLogConfig::default().fsync(FsyncPolicy::Never)).unwrap(),
        );
        let other = {
            let log = Arc::clone(&log);
            thread::spawn(move || log.append("s", ExpectedVersion::Any, event("b")).unwrap())
        };
        let a = log.append("s", ExpectedVersion::Any, event("a")).unwrap();
        let b = other.join().unwrap();
        let mut versions = [a.version, b.version];
        versions.sort_unstable();
        assert_eq!(versions, [1, 2]);
        assert_eq!(a.version - 1, a.first_position);
        assert_eq!(b.version - 1, b.first_position);
        let all = log.read_all(0, 10).unwrap();
        assert_eq!(all.len(), 2);
        let (first, second) = if a.first_position == 0 {
            ("a", "b")
        } else {
            ("b", "a")
        };
        assert_eq!(&*all[0].payload, first.as_bytes());
        assert_eq!(&*all[1].payload, second.as_bytes());
        assert!(log.metrics().flushes <= 2);
    });
}

/// A reader racing an append of two events sees none or both of them, never one.
#[test]
fn file_log_readers_never_see_half_an_append() {
    loom::model(|| {
        let dir = Dir::new();
        let log = Arc::new(
            FileLog::open(&dir.0, FileLogConfig::default().fsync(FsyncPolicy::Never)).unwrap(),
        );
        let writer = {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                let mut events = event("1");
                events.extend(event("2"));
                log.append("s", ExpectedVersion::NoStream, events).unwrap()
            })
        };
        let seen = log.read_stream("s", 1, 10).unwrap().len();
        let head = log.head_position();
        assert!(seen == 0 || seen == 2, "saw {seen} of 2 events");
        assert!(head == 0 || head == 2, "head at {head}");
        let r = writer.join().unwrap();
        assert_eq!(r.version, 2);
        assert_eq!(log.read_all(0, 10).unwrap().len(), 2);
    });
}
