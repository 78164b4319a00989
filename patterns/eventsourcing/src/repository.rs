//! [`Repository`]: load an aggregate (snapshot + tail), decide, append, retry conflicts.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use weft_sync::atomic::{AtomicU64, Ordering};

use crate::{
    Aggregate, Codec, DomainEvent, Error, EventStore, ExpectedVersion, JsonCodec, Metadata,
    NewEvent, RecordedEvent, Snapshot, SnapshotStore, Upcaster, Upcasters,
};

/// How many events a load reads from the store per call.
const READ_CHUNK: usize = 1024;

/// Loads aggregates from an [`EventStore`], runs commands against them and appends the
/// resulting events with optimistic concurrency.
///
/// - **Load**: the latest snapshot (if snapshots are on and it decodes), then the events
///   after it, each passed through the upcasters and decoded with the codec.
/// - **Execute**: load, [`handle`](Aggregate::handle) the command, append the events
///   expecting the loaded version. On [`Error::Conflict`] it reads only the events
///   appended since (the tail), applies them and decides again, up to
///   [`max_attempts`](Repository::max_attempts) times in total.
/// - **Snapshots**: with [`with_snapshots`](Repository::with_snapshots), the state is
///   saved whenever a command crosses a multiple of `every` events. A snapshot that is of
///   another [`SNAPSHOT_VERSION`](Aggregate::SNAPSHOT_VERSION) or does not decode is
///   ignored and the stream replayed from the start.
///
/// ```
/// use weft_eventsourcing::{Aggregate, DomainEvent, InMemoryStore, Repository};
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Counter { value: u64 }
/// #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
/// struct Added(u64);
/// impl DomainEvent for Added {
///     fn event_type(&self) -> &'static str { "Added" }
/// }
/// impl Aggregate for Counter {
///     const TYPE: &'static str = "counter";
///     type Command = u64;
///     type Event = Added;
///     type Error = &'static str;
///     fn handle(&self, n: &u64) -> Result<Vec<Added>, &'static str> {
///         if self.value + n > 100 { Err("over 100") } else { Ok(vec![Added(*n)]) }
///     }
///     fn apply(&mut self, e: &Added) { self.value += e.0; }
/// }
///
/// let repo = Repository::<Counter, _>::new(InMemoryStore::new());
/// repo.execute("c1", &40)?;
/// let done = repo.execute("c1", &2)?;
/// assert_eq!((done.state.value, done.version), (42, 2));
/// assert!(repo.execute("c1", &99).is_err()); // rejected by the aggregate
/// assert_eq!(repo.load("c1")?.state.value, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Repository<A: Aggregate, S: EventStore, C: Codec = JsonCodec> {
    store: S,
    codec: C,
    snapshots: Option<(Arc<dyn SnapshotStore>, u64)>,
    upcasters: Upcasters,
    max_attempts: u32,
    counters: Counters,
    _aggregate: PhantomData<fn() -> A>,
}

#[derive(Default)]
struct Counters {
    loads: AtomicU64,
    events_replayed: AtomicU64,
    snapshot_hits: AtomicU64,
    snapshot_fallbacks: AtomicU64,
    snapshots_saved: AtomicU64,
    snapshot_save_failures: AtomicU64,
    conflicts_retried: AtomicU64,
}

/// A snapshot of a repository's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepositoryMetrics {
    /// Aggregates loaded.
    pub loads: u64,
    /// Events read from the store and applied by loads and retries.
    pub events_replayed: u64,
    /// Loads that started from a snapshot.
    pub snapshot_hits: u64,
    /// Snapshots ignored (other schema version, or failed to decode) so the stream was
    /// replayed instead.
    pub snapshot_fallbacks: u64,
    /// Snapshots written.
    pub snapshots_saved: u64,
    /// Snapshot writes that failed (the command still succeeded).
    pub snapshot_save_failures: u64,
    /// Version conflicts resolved by re-reading the tail and deciding again.
    pub conflicts_retried: u64,
}

/// A loaded aggregate: its state and the stream version it reflects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<A> {
    /// The state after folding every event up to `version`.
    pub state: A,
    /// The stream version (0: no events).
    pub version: u64,
    /// The version of the snapshot the load started from, if it used one.
    pub snapshot_version: Option<u64>,
}

/// The result of a successful [`Repository::execute`].
#[derive(Debug, Clone)]
pub struct Executed<A: Aggregate> {
    /// The state after the new events.
    pub state: A,
    /// The stream version after the append (unchanged if the command produced no events).
    pub version: u64,
    /// The events the command produced and the store recorded.
    pub events: Vec<A::Event>,
    /// How many times the command was decided (1 unless conflicts were retried).
    pub attempts: u32,
}

/// Why [`Repository::execute`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExecuteError<E> {
    /// The aggregate rejected the command; nothing was appended.
    Rejected(E),
    /// The store, codec or upcasters failed (including [`Error::TooManyConflicts`]).
    Store(Error),
}

impl<E: fmt::Display> fmt::Display for ExecuteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecuteError::Rejected(e) => write!(f, "command rejected: {e}"),
            ExecuteError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ExecuteError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExecuteError::Rejected(_) => None,
            ExecuteError::Store(e) => Some(e),
        }
    }
}

impl<E> From<Error> for ExecuteError<E> {
    fn from(e: Error) -> Self {
        ExecuteError::Store(e)
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S, JsonCodec> {
    /// A repository over `store` with the JSON codec, no snapshots, no upcasters and up to
    /// 10 attempts per command.
    pub fn new(store: S) -> Self {
        Repository {
            store,
            codec: JsonCodec,
            snapshots: None,
            upcasters: Upcasters::new(),
            max_attempts: 10,
            counters: Counters::default(),
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate, S: EventStore, C: Codec> Repository<A, S, C> {
    /// Uses `codec` for events and snapshots instead of JSON.
    ///
    /// ```
    /// # use weft_eventsourcing::{Aggregate, DomainEvent, InMemoryStore, PostcardCodec, Repository};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct C;
    /// # #[derive(Clone, serde::Serialize, serde::Deserialize)] struct E;
    /// # impl DomainEvent for E { fn event_type(&self) -> &'static str { "E" } }
    /// # impl Aggregate for C { const TYPE: &'static str = "c"; type Command = (); type Event = E; type Error = String;
    /// #   fn handle(&self, _: &()) -> Result<Vec<E>, String> { Ok(vec![E]) } fn apply(&mut self, _: &E) {} }
    /// let repo = Repository::<C, _>::new(InMemoryStore::new()).with_codec(PostcardCodec);
    /// assert_eq!(repo.execute("x", &())?.version, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_codec<C2: Codec>(self, codec: C2) -> Repository<A, S, C2> {
        Repository {
            store: self.store,
            codec,
            snapshots: self.snapshots,
            upcasters: self.upcasters,
            max_attempts: self.max_attempts,
            counters: self.counters,
            _aggregate: PhantomData,
        }
    }

    /// Saves a snapshot every `every` events into `snapshots`; fails with
    /// [`Error::InvalidInput`] if `every` is 0.
    pub fn with_snapshots(
        mut self,
        snapshots: impl SnapshotStore + 'static,
        every: u64,
    ) -> Result<Self, Error> {
        if every == 0 {
            return Err(Error::InvalidInput(
                "snapshot interval must be at least 1 event".into(),
            ));
        }
        self.snapshots = Some((Arc::new(snapshots), every));
        Ok(self)
    }

    /// Adds an upcaster applied to every event this repository reads.
    pub fn with_upcaster(mut self, upcaster: impl Upcaster + 'static) -> Self {
        self.upcasters.register(upcaster);
        self
    }

    /// Sets how many times a command is decided before [`Error::TooManyConflicts`]
    /// (default 10); fails with [`Error::InvalidInput`] if 0.
    pub fn max_attempts(mut self, attempts: u32) -> Result<Self, Error> {
        if attempts == 0 {
            return Err(Error::InvalidInput(
                "max_attempts must be at least 1".into(),
            ));
        }
        self.max_attempts = attempts;
        Ok(self)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The stream holding aggregate `id`: `"{A::TYPE}-{id}"`.
    ///
    /// ```
    /// # use weft_eventsourcing::{Aggregate, DomainEvent, InMemoryStore, Repository};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct C;
    /// # #[derive(Clone, serde::Serialize, serde::Deserialize)] struct E;
    /// # impl DomainEvent for E { fn event_type(&self) -> &'static str { "E" } }
    /// # impl Aggregate for C { const TYPE: &'static str = "cart"; type Command = (); type Event = E; type Error = String;
    /// #   fn handle(&self, _: &()) -> Result<Vec<E>, String> { Ok(vec![E]) } fn apply(&mut self, _: &E) {} }
    /// let repo = Repository::<C, _>::new(InMemoryStore::new());
    /// assert_eq!(repo.stream_id("42"), "cart-42");
    /// ```
    pub fn stream_id(&self, id: &str) -> String {
        format!("{}-{}", A::TYPE, id)
    }

    /// The counters.
    pub fn metrics(&self) -> RepositoryMetrics {
        let c = &self.counters;
        // Relaxed: independent statistics, no ordering with other memory is implied.
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RepositoryMetrics {
            loads: get(&c.loads),
            events_replayed: get(&c.events_replayed),
            snapshot_hits: get(&c.snapshot_hits),
            snapshot_fallbacks: get(&c.snapshot_fallbacks),
            snapshots_saved: get(&c.snapshots_saved),
            snapshot_save_failures: get(&c.snapshot_save_failures),
            conflicts_retried: get(&c.conflicts_retried),
        }
    }

    /// Loads aggregate `id`: snapshot (if any and usable) plus the events after it.
    pub fn load(&self, id: &str) -> Result<Loaded<A>, Error> {
        let stream = self.stream_id(id);
        self.counters.loads.fetch_add(1, Ordering::Relaxed);
        let mut loaded = Loaded {
            state: A::default(),
            version: 0,
            snapshot_version: None,
        };
        if let Some((snapshots, _)) = &self.snapshots {
            if let Some(snapshot) = snapshots.load(&stream)? {
                match self.decode_snapshot(&snapshot) {
                    Ok(state) => {
                        self.counters.snapshot_hits.fetch_add(1, Ordering::Relaxed);
                        loaded.state = state;
                        loaded.version = snapshot.version;
                        loaded.snapshot_version = Some(snapshot.version);
                    }
                    Err(reason) => {
                        self.counters
                            .snapshot_fallbacks
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            stream = %stream,
                            snapshot_version = snapshot.version,
                            %reason,
                            "snapshot unusable; replaying the stream"
                        );
                    }
                }
            }
        }
        self.catch_up(&stream, &mut loaded.state, &mut loaded.version)?;
        Ok(loaded)
    }

    fn decode_snapshot(&self, snapshot: &Snapshot) -> Result<A, String> {
        if snapshot.schema_version != A::SNAPSHOT_VERSION {
            return Err(format!(
                "snapshot schema version {} is not the current {}",
                snapshot.schema_version,
                A::SNAPSHOT_VERSION
            ));
        }
        self.codec
            .decode(&snapshot.payload)
            .map_err(|e| e.to_string())
    }

    /// Reads the events of `stream` after `*version` and applies them.
    fn catch_up(&self, stream: &str, state: &mut A, version: &mut u64) -> Result<(), Error> {
        loop {
            let events = self.store.read_stream(stream, *version + 1, READ_CHUNK)?;
            let n = events.len();
            for recorded in events {
                let event = self.decode_event(recorded)?;
                state.apply(&event);
                *version += 1;
            }
            self.counters
                .events_replayed
                .fetch_add(n as u64, Ordering::Relaxed);
            if n < READ_CHUNK {
                return Ok(());
            }
        }
    }

    /// Upcasts and decodes one stored event.
    pub fn decode_event(&self, recorded: RecordedEvent) -> Result<A::Event, Error> {
        let recorded = self.upcasters.apply(recorded)?;
        self.codec.decode(&recorded.payload).map_err(|e| match e {
            Error::Codec { message, .. } => Error::Codec {
                what: format!(
                    "event `{}` v{} at position {} of `{}`",
                    recorded.event_type,
                    recorded.schema_version,
                    recorded.position,
                    recorded.stream_id
                ),
                message,
            },
            other => other,
        })
    }

    /// Runs `command` against aggregate `id` (see [`execute_with`](Self::execute_with)).
    pub fn execute(
        &self,
        id: &str,
        command: &A::Command,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        self.execute_with(id, command, Metadata::default())
    }

    /// Loads aggregate `id`, decides `command`, appends the events with `metadata`; on a
    /// version conflict re-reads the tail and decides again, up to the attempt limit.
    pub fn execute_with(
        &self,
        id: &str,
        command: &A::Command,
        metadata: Metadata,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let stream = self.stream_id(id);
        let Loaded {
            mut state,
            mut version,
            ..
        } = self.load(id)?;
        for attempt in 1..=self.max_attempts {
            let events = state.handle(command).map_err(ExecuteError::Rejected)?;
            if events.is_empty() {
                return Ok(Executed {
                    state,
                    version,
                    events,
                    attempts: attempt,
                });
            }
            let mut new_events = Vec::with_capacity(events.len());
            for e in &events {
                new_events.push(
                    NewEvent::new(e.event_type(), e.schema_version(), self.codec.encode(e)?)
                        .with_metadata(metadata),
                );
            }
            match self
                .store
                .append(&stream, ExpectedVersion::Exact(version), new_events)
            {
                Ok(appended) => {
                    for e in &events {
                        state.apply(e);
                    }
                    let before = version;
                    version = appended.version;
                    self.maybe_snapshot(&stream, &state, before, version);
                    return Ok(Executed {
                        state,
                        version,
                        events,
                        attempts: attempt,
                    });
                }
                Err(Error::Conflict { .. }) => {
                    self.counters
                        .conflicts_retried
                        .fetch_add(1, Ordering::Relaxed);
                    self.catch_up(&stream, &mut state, &mut version)?;
                }
                Err(e) => return Err(ExecuteError::Store(e)),
            }
        }
        Err(ExecuteError::Store(Error::TooManyConflicts {
            stream,
            attempts: self.max_attempts,
        }))
    }

    fn maybe_snapshot(&self, stream: &str, state: &A, before: u64, after: u64) {
        let Some((snapshots, every)) = &self.snapshots else {
            return;
        };
        if after / every == before / every {
            return;
        }
        let result = self.codec.encode(state).and_then(|payload| {
            snapshots.save(Snapshot {
                stream_id: stream.to_owned(),
                version: after,
                schema_version: A::SNAPSHOT_VERSION,
                payload,
            })
        });
        match result {
            Ok(()) => self
                .counters
                .snapshots_saved
                .fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(stream = %stream, error = %e, "saving a snapshot failed");
                self.counters
                    .snapshot_save_failures
                    .fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

impl<A: Aggregate, S: EventStore + fmt::Debug, C: Codec> fmt::Debug for Repository<A, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &A::TYPE)
            .field("store", &self.store)
            .field("codec", &self.codec)
            .field("snapshot_every", &self.snapshots.as_ref().map(|s| s.1))
            .field("upcasters", &self.upcasters)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}
