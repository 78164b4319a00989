//! Sorted runs: writing `(key, value)` pairs to a temporary file, and streaming them back.
//! The file format is in the parent module's docs.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufRead, BufReader, BufWriter, ErrorKind, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
// A process-wide counter that only makes file names unique, guarding no shared state: it
// names std's atomic rather than weft-sync's because loom's atomics cannot live in a
// `static`, and there is nothing here for loom to model (a clash is retried anyway).
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::codec::{get_u64, put_u64};
use super::{Spill, SpillError, corrupt};

/// The first bytes of every run file; the last byte is the format version.
const MAGIC: [u8; 8] = *b"WEFTRUN\x01";

/// Capacity of the write and read buffers of a run file.
const BUF_SIZE: usize = 64 * 1024;

/// Record scratch buffers that grew past this (for one huge record) are shrunk back, so
/// that one outlier does not pin its memory for the rest of the run.
const SCRATCH_KEEP: usize = 4 * BUF_SIZE;

/// How many names to try before giving up on finding an unused one.
const NAME_ATTEMPTS: u32 = 64;

/// Numbers the run files this process creates.
static NEXT_RUN: AtomicU64 = AtomicU64::new(0);

/// The directory spill files go to when none is configured: the system temp directory.
pub(crate) fn spill_dir_default() -> PathBuf {
    std::env::temp_dir()
}

/// A sorted run of (key, value) pairs in a temporary file; the file is deleted when the
/// `Run` drops.
///
/// Keep the `Run` alive while any [`RunReader`] of it is in use: on Unix a reader keeps
/// reading a deleted file, but on Windows the deletion fails while a reader has it open
/// (and the file is then left behind).
#[derive(Debug)]
pub(crate) struct Run {
    /// The file, deleted on drop.
    path: PathBuf,
    /// Total file length, magic included.
    bytes: u64,
    /// How many records follow the magic.
    records: u64,
}

impl Run {
    /// The file's length in bytes.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many `(key, value)` pairs the run holds.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Where the file is (tests check it is removed).
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Nothing useful to do on failure (already gone, or held open on Windows): a
        // leftover file in the temp directory is the worst outcome, and a drop must not
        // panic.
        let _ = fs::remove_file(&self.path);
    }
}

/// A name suffix that differs between processes and between calls: a per-process random
/// hasher key (std seeds `RandomState` from the OS) over the counter and the time.
fn random_suffix(n: u64) -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(n);
    if let Ok(since) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

/// Creates a new, uniquely named file in `dir` with `create_new`, retrying on a clash.
fn create_unique(dir: &Path) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    for _ in 0..NAME_ATTEMPTS {
        // Relaxed: the counter only has to hand out distinct numbers, which every
        // ordering guarantees for a read-modify-write; it orders nothing else.
        let n = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
        let name = format!("weft-mapreduce-{pid}-{n}-{:016x}.run", random_suffix(n));
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create a spill file in {}: {e}", dir.display()),
                ));
            }
        }
    }
    Err(io::Error::new(
        ErrorKind::AlreadyExists,
        format!("no unused spill file name found in {}", dir.display()),
    ))
}

/// Writes `pairs` (already sorted by key, ascending; equal keys allowed and kept in the
/// given order) to a new file in `dir`, buffered; returns the [`Run`].
///
/// On error the partly written file is deleted.
pub(crate) fn write_run<K: Spill, V: Spill>(
    dir: &Path,
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Result<Run, SpillError> {
    let (path, file) = create_unique(dir)?;
    // From here on `run` owns the file: an early return deletes it.
    let mut run = Run {
        path,
        bytes: 0,
        records: 0,
    };
    let mut out = BufWriter::with_capacity(BUF_SIZE, file);
    out.write_all(&MAGIC)?;
    let mut bytes = MAGIC.len() as u64;

    let mut body = Vec::new();
    let mut len_prefix = Vec::with_capacity(10);
    for (key, value) in pairs {
        body.clear();
        key.encode(&mut body);
        value.encode(&mut body);
        len_prefix.clear();
        put_u64(&mut len_prefix, body.len() as u64);
        out.write_all(&len_prefix)?;
        out.write_all(&body)?;
        bytes += (len_prefix.len() + body.len()) as u64;
        run.records += 1;
        if body.capacity() > SCRATCH_KEEP {
            body = Vec::new();
        }
    }
    // `into_inner` flushes and reports a failed flush, which dropping the writer would not.
    out.into_inner().map_err(io::IntoInnerError::into_error)?;
    run.bytes = bytes;
    Ok(run)
}

/// Reads a run back in order, one buffered record at a time.
///
/// Yields `Err` once (then `None`) when the file is corrupt: a record that does not
/// decode, or fewer or more records or bytes than the run was written with.
#[derive(Debug)]
pub(crate) struct RunReader<K, V> {
    /// The open file, positioned at the next record.
    file: BufReader<File>,
    /// Records not read yet.
    records_left: u64,
    /// File bytes after the current position, by the length the run was written with.
    bytes_left: u64,
    /// The current record's body, reused between records.
    body: Vec<u8>,
    /// Set after the last record or an error; the iterator then yields `None`.
    done: bool,
    _pairs: PhantomData<fn() -> (K, V)>,
}

impl<K: Spill, V: Spill> RunReader<K, V> {
    /// Opens `run` for reading and checks its length and magic.
    ///
    /// `K` and `V` must be the types the run was written with.
    pub(crate) fn open(run: &Run) -> Result<Self, SpillError> {
        let file = File::open(&run.path)?;
        if file.metadata()?.len() != run.bytes {
            return Err(corrupt("run file length differs from what was written"));
        }
        let mut file = BufReader::with_capacity(BUF_SIZE, file);
        let mut magic = [0; MAGIC.len()];
        read_exact(&mut file, &mut magic)?;
        if magic != MAGIC {
            return Err(corrupt("not a run file (bad magic or version)"));
        }
        Ok(RunReader {
            file,
            records_left: run.records,
            bytes_left: run.bytes - MAGIC.len() as u64,
            body: Vec::new(),
            done: false,
            _pairs: PhantomData,
        })
    }

    /// Reads the next record, or checks that the file ends after the last one.
    fn read_record(&mut self) -> Result<Option<(K, V)>, SpillError> {
        if self.records_left == 0 {
            if self.bytes_left != 0 || !self.file.fill_buf()?.is_empty() {
                return Err(corrupt("bytes after the last record"));
            }
            return Ok(None);
        }
        let (len, prefix_len) = read_varint(&mut self.file)?;
        self.bytes_left = self
            .bytes_left
            .checked_sub(prefix_len)
            .and_then(|left| left.checked_sub(len))
            .ok_or(corrupt("record runs past the end of the run file"))?;
        let len = usize::try_from(len).map_err(|_| corrupt("record length does not fit usize"))?;
        if self.body.capacity() > SCRATCH_KEEP && len <= SCRATCH_KEEP {
            self.body = Vec::new();
        }
        self.body.clear();
        self.body.resize(len, 0);
        read_exact(&mut self.file, &mut self.body)?;
        self.records_left -= 1;

        let mut input = &self.body[..];
        let key = K::decode(&mut input)?;
        let value = V::decode(&mut input)?;
        if !input.is_empty() {
            return Err(corrupt("record longer than its key and value"));
        }
        Ok(Some((key, value)))
    }
}

impl<K: Spill, V: Spill> Iterator for RunReader<K, V> {
    type Item = Result<(K, V), SpillError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.read_record().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        // Up to `records_left` pairs, or one error instead of some of them.
        let left = usize::try_from(self.records_left).unwrap_or(usize::MAX);
        (0, left.checked_add(1))
    }
}

/// `read_exact`, with an early end of file reported as corruption.
fn read_exact(file: &mut impl Read, buf: &mut [u8]) -> Result<(), SpillError> {
    file.read_exact(buf).map_err(|e| match e.kind() {
        ErrorKind::UnexpectedEof => corrupt("run file ends inside a record"),
        _ => SpillError::Io(e),
    })
}

/// Reads a varint record length; returns it and how many bytes it took.
fn read_varint(file: &mut impl BufRead) -> Result<(u64, u64), SpillError> {
    let mut encoded = [0u8; 10];
    for (i, slot) in encoded.iter_mut().enumerate() {
        let mut byte = [0u8];
        read_exact(file, &mut byte)?;
        *slot = byte[0];
        if byte[0] & 0x80 == 0 {
            let value = get_u64(&mut &encoded[..=i])?;
            return Ok((value, i as u64 + 1));
        }
    }
    Err(corrupt("varint overflows 64 bits"))
}

#[cfg(test)]
pub(super) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A fresh directory under the system temp dir, removed with its contents on drop.
    #[derive(Debug)]
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> TempDir {
            let n = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
            let path = spill_dir_default().join(format!(
                "weft-mapreduce-test-{}-{name}-{n}",
                std::process::id()
            ));
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }

        fn file_count(&self) -> usize {
            fs::read_dir(&self.0).unwrap().count()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn read_all<K: Spill, V: Spill>(run: &Run) -> Result<Vec<(K, V)>, SpillError> {
        RunReader::open(run)?.collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn round_trip(mut pairs: Vec<(String, Option<i64>)>) {
            let dir = TempDir::new("round-trip");
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let run = write_run(dir.path(), pairs.clone()).unwrap();
            prop_assert_eq!(run.records(), pairs.len() as u64);
            prop_assert_eq!(run.bytes(), fs::metadata(run.path()).unwrap().len());
            prop_assert_eq!(read_all::<String, Option<i64>>(&run).unwrap(), pairs);
        }
    }

    #[test]
    fn equal_keys_keep_their_order_and_empty_runs_work() {
        let dir = TempDir::new("order");
        let pairs = vec![(1u32, 'c'), (1, 'a'), (1, 'b'), (2, 'z'), (2, 'y')];
        let run = write_run(dir.path(), pairs.clone()).unwrap();
        assert_eq!(read_all::<u32, char>(&run).unwrap(), pairs);

        let empty = write_run::<u32, char>(dir.path(), []).unwrap();
        assert_eq!(empty.records(), 0);
        assert_eq!(empty.bytes(), MAGIC.len() as u64);
        assert_eq!(read_all::<u32, char>(&empty).unwrap(), []);
    }

    #[test]
    fn file_is_deleted_on_drop() {
        let dir = TempDir::new("drop");
        let a = write_run(dir.path(), [(1u8, ())]).unwrap();
        let b = write_run(dir.path(), [(1u8, ())]).unwrap();
        assert_ne!(a.path(), b.path());
        assert!(a.path().starts_with(dir.path()));
        assert!(a.path().exists() && b.path().exists());
        assert_eq!(dir.file_count(), 2);
        let a_path = a.path().to_owned();
        drop(a);
        assert!(!a_path.exists());
        assert!(b.path().exists());
        drop(b);
        assert_eq!(dir.file_count(), 0);
    }

    #[test]
    fn missing_dir_is_an_io_error() {
        let dir = TempDir::new("missing");
        let err = write_run(&dir.path().join("nope"), [(1u8, 2u8)]).unwrap_err();
        assert!(matches!(err, SpillError::Io(ref e) if e.kind() == ErrorKind::NotFound));
        assert!(err.to_string().contains("cannot create a spill file in"));
    }

    /// What reading a damaged run yielded.
    type Items = Vec<Result<(u16, String), SpillError>>;

    /// Writes 100 pairs, lets `damage` change the file (and the `Run`'s record of it), and
    /// returns what opening and reading it yields.
    fn read_damaged(damage: impl FnOnce(&mut Run, &mut Vec<u8>)) -> Result<Items, SpillError> {
        let dir = TempDir::new("damaged");
        let pairs = (0..100u16).map(|i| (i, format!("value {i}")));
        let mut run = write_run(dir.path(), pairs).unwrap();
        let mut bytes = fs::read(run.path()).unwrap();
        damage(&mut run, &mut bytes);
        fs::write(run.path(), &bytes).unwrap();
        let mut reader = RunReader::<u16, String>::open(&run)?;
        let items: Vec<_> = reader.by_ref().collect();
        assert!(reader.next().is_none(), "the reader stays done");
        Ok(items)
    }

    /// Asserts the reading yielded `ok` pairs, then one `Corrupt` error.
    fn assert_corrupt_after(items: &Items, ok: usize) {
        assert_eq!(items.len(), ok + 1, "{items:?}");
        assert!(items[..ok].iter().all(Result::is_ok), "{items:?}");
        assert!(
            matches!(items[ok], Err(SpillError::Corrupt { .. })),
            "{items:?}"
        );
    }

    #[test]
    fn corrupt_record_yields_one_err_then_none() {
        // Record 50's string length made larger than the record.
        let items = read_damaged(|_, bytes| {
            let mut at = MAGIC.len();
            for _ in 0..50 {
                let (len, n) = read_varint(&mut &bytes[at..]).unwrap();
                at += n as usize + len as usize;
            }
            // Record: length prefix (1 byte), key 50 (1 byte), the string's length.
            bytes[at + 2] = 0x7F;
        })
        .unwrap();
        assert_corrupt_after(&items, 50);
    }

    #[test]
    fn invalid_utf8_and_bad_record_lengths_are_errors() {
        // The last byte of the first value made a lone UTF-8 continuation byte.
        let items = read_damaged(|_, bytes| {
            let body_len = usize::from(bytes[MAGIC.len()]);
            bytes[MAGIC.len() + body_len] = 0x80;
        })
        .unwrap();
        assert_corrupt_after(&items, 0);

        // A record length one short: the value's string is cut.
        let items = read_damaged(|_, bytes| bytes[MAGIC.len()] -= 1).unwrap();
        assert_corrupt_after(&items, 0);

        // A record length pointing past the end of the file.
        let items = read_damaged(|_, bytes| {
            bytes[MAGIC.len()..MAGIC.len() + 3].copy_from_slice(&[0xFF, 0xFF, 0x7F]);
        })
        .unwrap();
        assert_corrupt_after(&items, 0);
    }

    #[test]
    fn record_count_and_trailing_bytes_are_checked() {
        // More bytes than records: an error after the last record.
        let items = read_damaged(|run, bytes| {
            bytes.push(0);
            run.bytes += 1;
        })
        .unwrap();
        assert_corrupt_after(&items, 100);

        let items = read_damaged(|run, _| run.records -= 1).unwrap();
        assert_corrupt_after(&items, 99);

        let items = read_damaged(|run, _| run.records += 1).unwrap();
        assert_corrupt_after(&items, 100);
    }

    #[test]
    fn length_and_magic_are_checked_on_open() {
        let err = read_damaged(|_, bytes| {
            bytes.pop();
        })
        .unwrap_err();
        assert!(matches!(err, SpillError::Corrupt { what } if what.contains("length")));

        let err = read_damaged(|_, bytes| bytes.push(0)).unwrap_err();
        assert!(matches!(err, SpillError::Corrupt { what } if what.contains("length")));

        let err = read_damaged(|_, bytes| bytes[7] = 2).unwrap_err();
        assert!(matches!(err, SpillError::Corrupt { what } if what.contains("magic")));
    }

    #[test]
    fn file_cut_short_after_open_is_an_error() {
        let dir = TempDir::new("shrunk");
        let value = "x".repeat(100);
        let run = write_run(dir.path(), (0..2000u32).map(|i| (i, value.clone()))).unwrap();
        assert!(run.bytes() > 3 * BUF_SIZE as u64);
        // The reader has buffered only the start of the file when it is cut.
        let reader = RunReader::<u32, String>::open(&run).unwrap();
        File::options()
            .write(true)
            .open(run.path())
            .unwrap()
            .set_len(2 * BUF_SIZE as u64)
            .unwrap();
        let items: Vec<_> = reader.collect();
        assert!(items.len() < 2000);
        assert_eq!(items.iter().filter(|i| i.is_err()).count(), 1);
        assert!(matches!(
            items.last(),
            Some(Err(SpillError::Corrupt { .. }))
        ));
    }

    #[test]
    fn two_readers_of_one_run() {
        let dir = TempDir::new("two-readers");
        let run = write_run(dir.path(), (0..1000u32).map(|i| (i, i * 2))).unwrap();
        let a = RunReader::<u32, u32>::open(&run).unwrap();
        let b = RunReader::<u32, u32>::open(&run).unwrap();
        let mut n = 0;
        for (x, y) in a.zip(b) {
            assert_eq!(x.unwrap(), y.unwrap());
            n += 1;
        }
        assert_eq!(n, 1000);
    }
}
