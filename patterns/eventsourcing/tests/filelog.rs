//! File log recovery: torn tails are truncated, corruption in the middle is refused with
//! the file and offset, the index is rebuilt, segments roll over.

mod common;

use std::path::{Path, PathBuf};

use common::ev;
use weft_eventsourcing::{Error, EventStore, ExpectedVersion, FileLog, FileLogConfig, FsyncPolicy};

/// Writes `n` single-event appends (payload = index) over 3 streams; returns the dir.
fn write_log(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path(), FileLogConfig::default()).unwrap();
    for i in 0..n {
        log.append(
            &format!("s{}", i % 3),
            ExpectedVersion::Exact(i / 3),
            vec![ev("X", &format!("payload-{i}"))],
        )
        .unwrap();
    }
    dir
}

fn only_segment(dir: &Path) -> PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    assert_eq!(files.len(), 1);
    files.pop().unwrap()
}

/// Byte offsets of every record in a segment (from the documented format: a 16-byte
/// segment header, then records of a 12-byte header whose first 4 bytes are the length).
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 16;
    while at < bytes.len() {
        offsets.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 12 + len;
    }
    assert_eq!(at, bytes.len());
    offsets
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
}

#[test]
fn torn_tails_are_truncated_and_the_log_goes_on() {
    let dir = write_log(10);
    let seg = only_segment(dir.path());
    let bytes = std::fs::read(&seg).unwrap();
    let offsets = record_offsets(&bytes);
    let last = *offsets.last().unwrap();
    // Cut the last record at every possible length (including inside its header).
    for cut in last + 1..bytes.len() {
        let copy = copy_dir(dir.path());
        let f = only_segment(copy.path());
        std::fs::write(&f, &bytes[..cut]).unwrap();
        let log = FileLog::open(copy.path(), FileLogConfig::default()).unwrap();
        assert_eq!(
            log.recovery().truncated_bytes,
            (cut - last) as u64,
            "cut at {cut}"
        );
        assert_eq!(log.recovery().events, 9);
        assert_eq!(log.head_position(), 9);
        // The lost append was the 10th (stream s0, version 4): the stream is at 3 and a
        // writer expecting 3 succeeds.
        assert_eq!(log.stream_version("s0").unwrap(), 3);
        log.append("s0", ExpectedVersion::Exact(3), vec![ev("X", "again")])
            .unwrap();
        drop(log);
        let log = FileLog::open(copy.path(), FileLogConfig::default()).unwrap();
        assert_eq!(log.recovery().truncated_bytes, 0);
        assert_eq!(&*log.read_all(9, 1).unwrap()[0].payload, b"again");
    }
}

#[test]
fn a_zero_filled_tail_is_a_torn_write() {
    let dir = write_log(5);
    let seg = only_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let clean = bytes.len();
    bytes.extend(std::iter::repeat_n(0u8, 4096));
    std::fs::write(&seg, &bytes).unwrap();
    let log = FileLog::open(dir.path(), FileLogConfig::default()).unwrap();
    assert_eq!(log.recovery().truncated_bytes, 4096);
    assert_eq!(log.recovery().events, 5);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), clean as u64);
}

/// Flip one byte anywhere in any record but the last: opening fails with
/// `Error::Corrupt` naming the segment file and the offset of that record.
#[test]
fn flipped_bytes_in_the_middle_are_refused_with_file_and_offset() {
    let dir = write_log(12);
    let seg = only_segment(dir.path());
    let bytes = std::fs::read(&seg).unwrap();
    let offsets = record_offsets(&bytes);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut checked = 0;
    for (i, &start) in offsets[..offsets.len() - 1].iter().enumerate() {
        let end = offsets[i + 1];
        // Every byte of the first two records, a few random ones of the others.
        let positions: Vec<usize> = if i < 2 {
            (start..end).collect()
        } else {
            (0..8).map(|_| rng.usize(start..end)).collect()
        };
        for at in positions {
            let copy = copy_dir(dir.path());
            let f = only_segment(copy.path());
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << rng.u8(0..8);
            std::fs::write(&f, &damaged).unwrap();
            match FileLog::open(copy.path(), FileLogConfig::default()) {
                Err(Error::Corrupt { file, offset, .. }) => {
                    assert_eq!(file, f);
                    assert_eq!(offset, start as u64, "flip at {at}");
                    let msg = Error::Corrupt {
                        file,
                        offset,
                        reason: String::new(),
                    }
                    .to_string();
                    assert!(msg.contains(&format!("offset {start}")), "{msg}");
                }
                other => panic!("flip at byte {at}: expected Corrupt, got {other:?}"),
            }
            checked += 1;
        }
    }
    assert!(checked > 100);
    // The segment header itself.
    let copy = copy_dir(dir.path());
    let f = only_segment(copy.path());
    let mut damaged = bytes.clone();
    damaged[3] ^= 0xff;
    std::fs::write(&f, &damaged).unwrap();
    assert!(matches!(
        FileLog::open(copy.path(), FileLogConfig::default()),
        Err(Error::Corrupt { offset: 0, .. })
    ));
}

#[test]
fn segments_roll_over_and_reads_do_not_depend_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        FileLogConfig::default()
            .segment_size(4096)
            .fsync(FsyncPolicy::Never)
    };
    {
        let log = FileLog::open(dir.path(), config()).unwrap();
        for i in 0..300u64 {
            log.append(
                "big",
                ExpectedVersion::Exact(i),
                vec![ev("X", &"x".repeat(100))],
            )
            .unwrap();
        }
        assert!(log.metrics().segments >= 9, "{:?}", log.metrics());
        log.sync().unwrap();
    }
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| n.len() == 24 && n.ends_with(".log")),
        "{names:?}"
    );
    for n in &names {
        assert!(std::fs::metadata(dir.path().join(n)).unwrap().len() <= 4096 + 200);
    }
    let log = FileLog::open(dir.path(), config()).unwrap();
    assert_eq!(
        log.read_stream("big", 150, 3)
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect::<Vec<_>>(),
        [150, 151, 152]
    );
    assert_eq!(log.read_all(299, 5).unwrap().len(), 1);
}

#[test]
fn a_torn_tail_in_a_middle_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = FileLog::open(dir.path(), FileLogConfig::default().segment_size(4096)).unwrap();
        for i in 0..100u64 {
            log.append(
                "s",
                ExpectedVersion::Exact(i),
                vec![ev("X", &"y".repeat(100))],
            )
            .unwrap();
        }
    }
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let first = &files[0];
    let len = std::fs::metadata(first).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(first).unwrap();
    f.set_len(len - 5).unwrap();
    match FileLog::open(dir.path(), FileLogConfig::default()) {
        Err(Error::Corrupt { file, .. }) => assert_eq!(&file, first),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_config_and_stray_files() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        FileLog::open(dir.path(), FileLogConfig::default().segment_size(10)),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        FileLog::open(dir.path(), FileLogConfig::default().max_batch_bytes(0)),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        FileLog::open(
            dir.path(),
            FileLogConfig::default().fsync(FsyncPolicy::Interval(std::time::Duration::ZERO))
        ),
        Err(Error::InvalidInput(_))
    ));
    // Unrelated files in the directory are ignored.
    std::fs::write(dir.path().join("README"), "hello").unwrap();
    let log = FileLog::open(dir.path(), FileLogConfig::default()).unwrap();
    assert_eq!(log.head_position(), 0);
}

/// Concurrent single-event appends through group commit: every append acknowledged is
/// readable, streams are complete, and no flush syncs more than once. (How many appends
/// share a flush depends on the scheduler; the bench measures it.)
#[test]
fn group_commit_shares_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path(), FileLogConfig::default()).unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let log = &log;
            s.spawn(move || {
                for i in 0..50 {
                    log.append(
                        &format!("t{t}"),
                        ExpectedVersion::Any,
                        vec![ev("X", &i.to_string())],
                    )
                    .unwrap();
                }
            });
        }
    });
    let m = log.metrics();
    assert_eq!(m.appends, 400);
    assert!(m.fsyncs <= m.flushes && m.flushes <= 400, "{m:?}");
    assert_eq!(log.read_all(0, usize::MAX).unwrap().len(), 400);
    for t in 0..8 {
        assert_eq!(log.stream_version(&format!("t{t}")).unwrap(), 50);
    }
}

/// The fsync policies, observed through the fsync counter with a manual clock: no test
/// waits for time to pass.
#[test]
fn fsync_policies_sync_when_they_promise() {
    use std::time::Duration;
    use weft_time::ManualClock;

    let one = || vec![ev("X", "")];
    let open = |policy, clock: &ManualClock| {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::open(
            dir.path(),
            FileLogConfig::default().fsync(policy).clock(clock.clone()),
        )
        .unwrap();
        (dir, log)
    };
    let clock = ManualClock::new();

    let (_d, log) = open(FsyncPolicy::EveryAppend, &clock);
    for _ in 0..3 {
        log.append("s", ExpectedVersion::Any, one()).unwrap();
    }
    assert_eq!(log.metrics().fsyncs, 3);

    let (_d, log) = open(FsyncPolicy::Batch, &clock);
    log.append("s", ExpectedVersion::Any, one()).unwrap();
    assert_eq!(
        log.metrics().fsyncs,
        1,
        "a lone appender pays exactly one fsync"
    );

    let (_d, log) = open(FsyncPolicy::Interval(Duration::from_millis(10)), &clock);
    log.append("s", ExpectedVersion::Any, one()).unwrap();
    clock.advance(Duration::from_millis(9));
    log.append("s", ExpectedVersion::Any, one()).unwrap();
    assert_eq!(
        log.metrics().fsyncs,
        0,
        "acknowledged before the interval is up"
    );
    clock.advance(Duration::from_millis(1));
    log.append("s", ExpectedVersion::Any, one()).unwrap();
    assert_eq!(
        log.metrics().fsyncs,
        1,
        "the first append after the interval syncs"
    );
    log.append("s", ExpectedVersion::Any, one()).unwrap();
    assert_eq!(log.metrics().fsyncs, 1);

    let (_d, log) = open(FsyncPolicy::Never, &clock);
    for _ in 0..3 {
        log.append("s", ExpectedVersion::Any, one()).unwrap();
    }
    assert_eq!(log.metrics().fsyncs, 0);
    log.sync().unwrap();
    assert_eq!(log.metrics().fsyncs, 1);
}

/// Timestamps come from the configured clock, and survive a reopen.
#[test]
fn timestamps_come_from_the_clock() {
    use std::time::{Duration, UNIX_EPOCH};
    use weft_time::ManualClock;

    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let clock = ManualClock::starting_at(start);
    let dir = tempfile::tempdir().unwrap();
    {
        let log = FileLog::open(dir.path(), FileLogConfig::default().clock(clock.clone())).unwrap();
        log.append("s", ExpectedVersion::Any, vec![ev("X", "")])
            .unwrap();
        clock.advance(Duration::from_secs(5));
        log.append("s", ExpectedVersion::Any, vec![ev("X", "")])
            .unwrap();
    }
    let log = FileLog::open(dir.path(), FileLogConfig::default()).unwrap();
    let all = log.read_all(0, 2).unwrap();
    assert_eq!(all[0].timestamp, start);
    assert_eq!(all[1].timestamp, start + Duration::from_secs(5));

    let mem = weft_eventsourcing::InMemoryStore::with_clock(ManualClock::starting_at(start));
    mem.append("s", ExpectedVersion::Any, vec![ev("X", "")])
        .unwrap();
    assert_eq!(mem.read_all(0, 1).unwrap()[0].timestamp, start);
}

#[test]
fn truncate_before_deletes_whole_segments_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = || FileLogConfig::default().segment_size(4096);
    let log = FileLog::open(dir.path(), config()).unwrap();
    let payload = |i: u64| format!("payload-{i:04}-{}", "x".repeat(200));
    for i in 0..120u64 {
        log.append(
            &format!("s{}", i % 3),
            ExpectedVersion::Exact(i / 3),
            vec![ev("X", &payload(i))],
        )
        .unwrap();
    }
    let segments = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log")
            })
            .count()
    };
    let before = segments(dir.path());
    assert!(before >= 5, "{before} segments");
    // Nothing below the first segment's end: nothing removed.
    assert_eq!(log.truncate_before(1).unwrap(), 0);
    let removed = log.truncate_before(70).unwrap();
    assert!(removed >= 2, "{removed}");
    assert_eq!(segments(dir.path()), before - removed);
    // Reads start at a segment boundary at or below 70, and see every event from there.
    let all = log.read_all(0, usize::MAX).unwrap();
    let first = all[0].position;
    assert!(first > 0 && first <= 70, "first kept position {first}");
    assert_eq!(all.len() as u64, 120 - first);
    for (k, e) in all.iter().enumerate() {
        assert_eq!(e.position, first + k as u64);
        assert_eq!(&*e.payload, payload(e.position).as_bytes());
    }
    // Streams keep their versions; removed versions read as absent.
    assert_eq!(log.stream_version("s0").unwrap(), 40);
    let s0 = log.read_stream("s0", 1, usize::MAX).unwrap();
    assert_eq!(s0[0].version, first.div_ceil(3) + 1);
    assert_eq!(s0.last().unwrap().version, 40);
    assert_eq!(log.read_stream("s0", 40, 1).unwrap()[0].position, 117);
    // Appends carry on.
    let r = log
        .append(
            "s1",
            ExpectedVersion::Exact(40),
            vec![ev("X", &payload(120))],
        )
        .unwrap();
    assert_eq!((r.version, r.first_position), (41, 120));
    drop(log);

    let log = FileLog::open(dir.path(), config()).unwrap();
    assert_eq!(log.recovery().first_position, first);
    assert_eq!(log.head_position(), 121);
    assert_eq!(log.stream_version("s1").unwrap(), 41);
    assert_eq!(log.stream_version("s0").unwrap(), 40);
    let all = log.read_all(0, usize::MAX).unwrap();
    assert_eq!(all[0].position, first);
    assert_eq!(all.len() as u64, 121 - first);
    assert_eq!(
        log.read_stream("s2", 1, usize::MAX)
            .unwrap()
            .last()
            .unwrap()
            .version,
        40
    );
    // And truncates again after reopening (bases start afresh).
    let removed = log.truncate_before(110).unwrap();
    assert!(removed >= 1);
    let all = log.read_all(0, usize::MAX).unwrap();
    assert!(all[0].position > first && all[0].position <= 110);
    assert_eq!(all.last().unwrap().position, 120);
    log.append("s2", ExpectedVersion::Exact(40), vec![ev("X", "y")])
        .unwrap();
    assert_eq!(log.read_stream("s2", 41, 1).unwrap()[0].position, 121);
}

#[test]
fn sync_covers_segments_finished_since_the_last_sync() {
    // With `Never`, a rollover does not sync the finished segment; `sync` must, or a
    // record acknowledged before the rollover would not be on disk after it returns.
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(
        dir.path(),
        FileLogConfig::default()
            .segment_size(4096)
            .fsync(FsyncPolicy::Never),
    )
    .unwrap();
    for _ in 0..100 {
        log.append("s", ExpectedVersion::Any, vec![ev("X", &"x".repeat(100))])
            .unwrap();
    }
    let m = log.metrics();
    assert!(m.segments >= 3, "{m:?}");
    assert_eq!(m.fsyncs, 0, "no sync on append or rollover");
    log.sync().unwrap();
    assert_eq!(
        log.metrics().fsyncs,
        m.segments,
        "every finished segment and the current one"
    );
    log.sync().unwrap();
    assert_eq!(log.metrics().fsyncs, m.segments + 1, "nothing left over");
}
