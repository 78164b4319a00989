//! The shared conformance suite, run against every backend (and every fsync policy of
//! the file log).

mod common;

use std::time::Duration;

use weft_eventsourcing::{FileLog, FileLogConfig, FsyncPolicy, InMemoryStore};
use weft_time::ManualClock;

#[test]
fn in_memory_store() {
    common::conformance(InMemoryStore::new);
    common::conformance(|| InMemoryStore::with_clock(ManualClock::new()));
}

fn file_log(policy: FsyncPolicy) {
    let dirs = std::cell::RefCell::new(Vec::new());
    common::conformance(|| {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::open(dir.path(), FileLogConfig::default().fsync(policy)).unwrap();
        dirs.borrow_mut().push(dir);
        log
    });
}

#[test]
fn file_log_batch() {
    file_log(FsyncPolicy::Batch);
}

#[test]
fn file_log_every_append() {
    file_log(FsyncPolicy::EveryAppend);
}

#[test]
fn file_log_interval() {
    file_log(FsyncPolicy::Interval(Duration::from_millis(5)));
}

#[test]
fn file_log_never() {
    file_log(FsyncPolicy::Never);
}

/// Tiny segments: every few appends roll over, and the suite still passes.
#[test]
fn file_log_with_many_segments() {
    let dirs = std::cell::RefCell::new(Vec::new());
    common::conformance(|| {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::open(
            dir.path(),
            FileLogConfig::default()
                .segment_size(4096)
                .max_batch_bytes(300),
        )
        .unwrap();
        dirs.borrow_mut().push(dir);
        log
    });
}

/// The suite again on a log that was closed and reopened after every write: the rebuilt
/// index must read the same as the live one.
#[test]
fn file_log_reopened_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = FileLog::open(dir.path(), FileLogConfig::default().segment_size(4096)).unwrap();
        for i in 0..200u64 {
            weft_eventsourcing::EventStore::append(
                &log,
                &format!("s{}", i % 7),
                weft_eventsourcing::ExpectedVersion::Exact(i / 7),
                vec![common::ev("X", &i.to_string())],
            )
            .unwrap();
        }
    }
    let log = FileLog::open(dir.path(), FileLogConfig::default().segment_size(4096)).unwrap();
    assert!(log.metrics().segments > 1);
    assert_eq!(log.recovery().events, 200);
    use weft_eventsourcing::EventStore;
    let all = log.read_all(0, usize::MAX).unwrap();
    assert_eq!(all.len(), 200);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64);
        assert_eq!(&*e.payload, i.to_string().as_bytes());
        assert_eq!(&*e.stream_id, format!("s{}", i % 7));
        assert_eq!(e.version, i as u64 / 7 + 1);
    }
    assert_eq!(log.read_stream("s3", 10, 100).unwrap().len(), 29 - 9);
    log.append(
        "s3",
        weft_eventsourcing::ExpectedVersion::Exact(29),
        vec![common::ev("X", "new")],
    )
    .unwrap();
    assert_eq!(log.stream_version("s3").unwrap(), 30);
}
