//! [`FileLog`]: a minimal durable event log.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use weft_sync::Mutex;

use crate::error::log_error;
use crate::source::page;
use crate::{Error, EventLog, EventSource, Position, Recorded};

/// A minimal durable event log: one JSON line per [`Recorded`] event in one file,
/// `fsync`ed on every append, read back whole on open, with every event also kept in
/// memory.
///
/// It is a **reference implementation** for tests, examples and small single-process
/// tools (the crate's kill test runs on it), not a production event store: one writer
/// process, appends serialised by one lock and a blocking `fsync`, the whole log in
/// memory. A torn last line (a crash in the middle of a write) is cut off on open;
/// a bad line anywhere else is an error.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_cqrs::Error> {
/// use weft_cqrs::{EventLog, EventSource, FileLog};
/// let path = std::env::temp_dir().join(format!("weft-cqrs-filelog-doc-{}.jsonl", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let log = FileLog::<String>::open(&path)?;
/// log.append("k", vec!["a".to_owned(), "b".to_owned()]).await?;
/// drop(log);
/// let again = FileLog::<String>::open(&path)?;
/// assert_eq!(again.read(0, 10).await?[1].event, "b");
/// # std::fs::remove_file(&path).unwrap();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FileLog<E> {
    inner: Mutex<Inner<E>>,
    head: watch::Sender<Position>,
    _events: PhantomData<fn() -> E>,
}

#[derive(Debug)]
struct Inner<E> {
    file: File,
    events: Vec<Recorded<E>>,
}

impl<E: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> FileLog<E> {
    /// Opens (or creates) the log at `path`, reading every event, and cutting off a
    /// torn last line.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(log_error)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(log_error)?;
        let mut events = Vec::new();
        let mut good = 0; // bytes of complete, valid lines
        let mut rest = &bytes[..];
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let line = &rest[..end];
            let parsed = serde_json::from_slice::<Recorded<E>>(line);
            let last = end + 1 == rest.len();
            match parsed {
                Ok(r) if r.position == events.len() as Position + 1 => events.push(r),
                Ok(r) => {
                    return Err(log_error(format!(
                        "{}: event at byte {good} has position {}, expected {}",
                        path.display(),
                        r.position,
                        events.len() + 1
                    )));
                }
                Err(_) if last => break, // torn, though newline-terminated
                Err(e) => {
                    return Err(log_error(format!(
                        "{}: bad line at byte {good}: {e}",
                        path.display()
                    )));
                }
            }
            good += end + 1;
            rest = &rest[end + 1..];
        }
        if good < bytes.len() {
            tracing::warn!(path = %path.display(), torn = bytes.len() - good, "cutting off a torn last line");
            file.set_len(good as u64).map_err(log_error)?;
            file.sync_all().map_err(log_error)?;
        }
        let head = events.len() as Position;
        Ok(FileLog {
            inner: Mutex::new(Inner { file, events }),
            head: watch::Sender::new(head),
            _events: PhantomData,
        })
    }
}

impl<E: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> EventSource for FileLog<E> {
    type Event = E;

    async fn read(&self, after: Position, limit: usize) -> Result<Vec<Recorded<E>>, Error> {
        Ok(page(&self.inner.lock().events, after, limit))
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }
}

impl<E: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> EventLog for FileLog<E> {
    async fn append(&self, key: &str, events: Vec<E>) -> Result<Position, Error> {
        let mut inner = self.inner.lock();
        let first = inner.events.len() as Position + 1;
        let recorded: Vec<Recorded<E>> = events
            .into_iter()
            .zip(first..)
            .map(|(event, position)| Recorded {
                position,
                key: key.to_owned(),
                event,
            })
            .collect();
        let mut bytes = Vec::new();
        for r in &recorded {
            serde_json::to_writer(&mut bytes, r).map_err(log_error)?;
            bytes.push(b'\n');
        }
        // One write, then fsync: on error nothing is recorded in memory, and whatever
        // reached the file is cut off as a torn line (or kept whole) at the next open.
        let written: io::Result<()> = inner
            .file
            .write_all(&bytes)
            .and_then(|()| inner.file.sync_data());
        written.map_err(log_error)?;
        inner.events.extend(recorded);
        let head = inner.events.len() as Position;
        self.head.send_replace(head);
        Ok(head)
    }
}
