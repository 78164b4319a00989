//! A shard: a weft-actor actor owning the open windows of the series hashed to it.
//!
//! The actor handles one message at a time, so the series table, the panes and the
//! sketches need no lock: the hot path is a hash lookup and in-place sketch updates.
//! Batches arrive already partitioned (one message per shard per ingest call) with the
//! watermark the engine computed after seeing them; the shard places the events, then
//! advances its watermark and closes what became final, appending the closed windows to
//! the log in one entry.

use std::sync::Arc;

use std::collections::HashMap;

use compact_str::CompactString;
use hashbrown::HashTable;
use smallvec::SmallVec;
use weft_actor::{Actor, Context, Handler};
use weft_reactive::{Pushed, Sender, TrySendError};

use crate::agg::{AggregateConfig, WindowAggregate};
use crate::error::RejectReason;
use crate::event::{Event, SeriesKey, hash_one, key_matches, key_of};
use crate::log::{CellLog, ClosedCell};
use crate::metrics::Counters;
use crate::query::Query;
use crate::store::{bucket_of, group_of};
use crate::window::{Closed, Ctx, SeriesWindows, WindowSpec};

/// An event the late policy sent to the late stream.
///
/// ```
/// # let _ = |l: weft_analytics::LateEvent| (l.tenant, l.event, l.watermark);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LateEvent {
    /// The tenant of the batch it came in.
    pub tenant: String,
    /// The event, unchanged.
    pub event: Event,
    /// The shard's watermark when it arrived (ms).
    pub watermark: i64,
}

/// One series' open state.
#[derive(Debug)]
struct Series {
    hash: u64,
    key: Arc<SeriesKey>,
    windows: SeriesWindows,
    /// Consecutive closing scans that found the series empty.
    idle_scans: u8,
}

/// Static configuration shared by every shard.
#[derive(Debug)]
pub(crate) struct ShardConfig {
    pub(crate) spec: WindowSpec,
    pub(crate) lateness: i64,
    pub(crate) agg: AggregateConfig,
    pub(crate) top_k_dim: Option<CompactString>,
}

/// The actor.
#[derive(Debug)]
pub(crate) struct Shard {
    id: usize,
    cfg: Arc<ShardConfig>,
    table: HashTable<u32>,
    series: Vec<Series>,
    watermark: i64,
    /// The smallest watermark at which some series has a window to close.
    next_deadline: i64,
    log: Arc<CellLog>,
    counters: Arc<Counters>,
    late: Option<Sender<LateEvent>>,
    out: Vec<Closed>,
}

impl Shard {
    pub(crate) fn new(
        id: usize,
        cfg: Arc<ShardConfig>,
        log: Arc<CellLog>,
        counters: Arc<Counters>,
        late: Option<Sender<LateEvent>>,
    ) -> Self {
        Shard {
            id,
            cfg,
            table: HashTable::new(),
            series: Vec::new(),
            watermark: i64::MIN,
            next_deadline: i64::MAX,
            log,
            counters,
            late,
            out: Vec::new(),
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            spec: self.cfg.spec.kind,
            lateness: self.cfg.lateness,
            agg: &self.cfg.agg,
        }
    }

    /// Places the events of one batch.
    fn place(&mut self, tenant: &str, events: &[Event], picks: &[(u32, u64)]) {
        let skip = self.cfg.top_k_dim.as_deref();
        let cfg = Arc::clone(&self.cfg);
        let ctx = Ctx {
            spec: cfg.spec.kind,
            lateness: cfg.lateness,
            agg: &cfg.agg,
        };
        let mut late = 0u64;
        for &(at, hash) in picks {
            let Some(e) = events.get(at as usize) else {
                continue;
            };
            let series = &mut self.series;
            let idx = match self.table.find(hash, |&i| {
                key_matches(&series[i as usize].key, tenant, e, skip)
            }) {
                Some(&i) => i as usize,
                None => {
                    let i = series.len();
                    series.push(Series {
                        hash,
                        key: key_of(tenant, e, skip),
                        windows: SeriesWindows::new(&cfg.spec),
                        idle_scans: 0,
                    });
                    let i32_ = u32::try_from(i).unwrap_or(u32::MAX);
                    self.table
                        .insert_unique(hash, i32_, |&j| series[j as usize].hash);
                    i
                }
            };
            if self.series[idx].windows.is_late(&ctx, e.ts, self.watermark) {
                late += 1;
                self.send_late(tenant, e);
                continue;
            }
            let s = &mut self.series[idx];
            let top = skip.and_then(|d| e.dim_value(d)).map(|v| (v, hash_one(v)));
            s.windows.slot(&ctx, e.ts).add(e.value, e.entity, top);
            // O(1) for panes (the front pane), a few sessions at most for sessions.
            self.next_deadline = self.next_deadline.min(s.windows.deadline(&ctx));
        }
        if late > 0 {
            self.counters.rejected[RejectReason::Late.index()].add(late);
        }
        self.counters.set_series(self.id, self.series.len());
    }

    fn send_late(&self, tenant: &str, event: &Event) {
        let Some(tx) = &self.late else { return };
        let late = LateEvent {
            tenant: tenant.to_owned(),
            event: event.clone(),
            watermark: self.watermark,
        };
        match tx.try_send(late) {
            Ok(Pushed::Queued) => self.counters.late_streamed.incr(),
            Ok(Pushed::Dropped(_)) => {
                // Drop-oldest: this one is queued, an older one was dropped.
                self.counters.late_streamed.incr();
                self.counters.late_stream_dropped.incr();
            }
            Err(TrySendError::Full(_) | TrySendError::Overflow(_) | TrySendError::Closed(_)) => {
                self.counters.late_stream_dropped.incr();
            }
        }
    }

    /// Advances the watermark and closes what became final.
    fn advance(&mut self, wm: i64) {
        if wm <= self.watermark {
            return;
        }
        self.watermark = wm;
        if wm < self.next_deadline {
            return;
        }
        let cfg = Arc::clone(&self.cfg);
        let ctx = Ctx {
            spec: cfg.spec.kind,
            lateness: cfg.lateness,
            agg: &cfg.agg,
        };
        let mut cells = Vec::with_capacity(LOG_CHUNK);
        let mut closed = 0;
        let mut next = i64::MAX;
        let mut idle = 0;
        for s in &mut self.series {
            if s.windows.is_empty() {
                // Empty at two scans in a row: nothing arrived for it in between.
                s.idle_scans = s.idle_scans.saturating_add(1);
                if s.idle_scans >= 2 {
                    idle += 1;
                }
                continue;
            }
            s.idle_scans = 0;
            s.windows.close(&ctx, wm, &mut self.out);
            for c in self.out.drain(..) {
                cells.push(ClosedCell {
                    key: Arc::clone(&s.key),
                    start: c.start,
                    end: c.end,
                    agg: c.agg,
                });
                if cells.len() == LOG_CHUNK {
                    closed += cells.len();
                    let chunk = std::mem::replace(&mut cells, Vec::with_capacity(LOG_CHUNK));
                    self.log.push(Arc::new(chunk));
                }
            }
            next = next.min(s.windows.deadline(&ctx));
        }
        self.next_deadline = next;
        if idle > 0 && idle * 4 >= self.series.len() {
            self.evict_idle();
        }
        self.counters.set_series(self.id, self.series.len());
        closed += cells.len();
        if !cells.is_empty() {
            self.log.push(Arc::new(cells));
        }
        if closed > 0 {
            self.counters.windows_closed.add(closed as u64);
            tracing::trace!(watermark = wm, windows = closed, "shard closed windows");
        }
    }

    /// Forgets series idle for two scans (their key is re-interned if they come back),
    /// so churning series do not grow the shard. Rebuilds the table: O(series), run only
    /// when at least a quarter of the series are idle.
    fn evict_idle(&mut self) {
        let before = self.series.len();
        self.series
            .retain(|s| s.idle_scans < 2 || !s.windows.is_empty());
        self.table.clear();
        let series = &self.series;
        for (i, s) in series.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            self.table
                .insert_unique(s.hash, i, |&j| series[j as usize].hash);
        }
        tracing::debug!(
            shard = self.id,
            evicted = before - self.series.len(),
            "idle series evicted"
        );
    }

    /// The open windows matching `q`, folded here by (group, bucket) into aggregates
    /// that keep only what the query reads (a tumbling window's pane is merged in
    /// place, never copied whole): the caller merges one partial per shard.
    fn partials(&self, q: &Query) -> Vec<Partial> {
        let ctx = self.ctx();
        let acc_cfg = q.accumulator_config(&self.cfg.agg);
        let mut out: Vec<Partial> = Vec::new();
        let mut at: HashMap<(SmallVec<[&str; 2]>, i64), usize> = HashMap::new();
        for s in &self.series {
            if s.windows.is_empty() || !q.matches(&s.key) {
                continue;
            }
            let group = group_of(q, &s.key);
            s.windows
                .partials(&ctx, &mut |start, end, agg: &WindowAggregate| {
                    if start < q.from || start >= q.to {
                        return;
                    }
                    let (bs, be) = bucket_of(q, start, end);
                    let i = *at.entry((group.clone(), bs)).or_insert_with(|| {
                        out.push(Partial {
                            group: group.iter().map(|g| CompactString::from(*g)).collect(),
                            start: bs,
                            end: be,
                            agg: WindowAggregate::new(&acc_cfg),
                        });
                        out.len() - 1
                    });
                    out[i].agg.merge(agg);
                });
        }
        out
    }
}

/// One shard's partial aggregate of the open windows of one (group, bucket).
#[derive(Debug)]
pub(crate) struct Partial {
    pub(crate) group: SmallVec<[CompactString; 2]>,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) agg: WindowAggregate,
}

/// Closed windows per log entry: the store applies a few entries per hold of its
/// lock, so a watermark step that closes thousands of windows never makes a query wait
/// for all of them.
const LOG_CHUNK: usize = 64;

impl Actor for Shard {}

/// One shard's part of a batch: the batch is shared by every shard (no event is
/// copied); `picks` are the indexes of this shard's events with their series hashes.
pub(crate) struct Ingest {
    pub(crate) tenant: CompactString,
    pub(crate) events: Arc<Vec<Event>>,
    pub(crate) picks: Vec<(u32, u64)>,
    pub(crate) watermark: i64,
}

impl Handler<Ingest> for Shard {
    type Reply = ();
    async fn handle(&mut self, msg: Ingest, _ctx: &mut Context<Self>) {
        self.place(&msg.tenant, &msg.events, &msg.picks);
        self.advance(msg.watermark);
    }
}

/// A watermark without events (ticks, idle sources, end of input).
pub(crate) struct Advance(pub(crate) i64);

impl Handler<Advance> for Shard {
    type Reply = ();
    async fn handle(&mut self, msg: Advance, _ctx: &mut Context<Self>) {
        self.advance(msg.0);
    }
}

/// A barrier: answered once every earlier message was handled. Returns the shard's
/// watermark and how many series it holds.
pub(crate) struct Barrier;

impl Handler<Barrier> for Shard {
    type Reply = (i64, usize);
    async fn handle(&mut self, _: Barrier, _ctx: &mut Context<Self>) -> (i64, usize) {
        (self.watermark, self.series.len())
    }
}

/// The partial aggregates of open windows matching a query.
pub(crate) struct Partials(pub(crate) Arc<Query>);

impl Handler<Partials> for Shard {
    type Reply = Vec<Partial>;
    async fn handle(&mut self, msg: Partials, _ctx: &mut Context<Self>) -> Vec<Partial> {
        self.partials(&msg.0)
    }
}

/// A shard's open state for a snapshot, as the shard writes it (borrowed).
#[derive(serde::Serialize)]
struct ShardStateRef<'a> {
    watermark: i64,
    series: Vec<(u64, &'a SeriesKey, &'a SeriesWindows)>,
}

/// A shard's open state read back from a snapshot.
#[derive(serde::Deserialize)]
struct ShardState {
    watermark: i64,
    series: Vec<(u64, SeriesKey, SeriesWindows)>,
}

/// Asks for the shard's open state (series, open windows, watermark), encoded.
pub(crate) struct Export;

impl Handler<Export> for Shard {
    type Reply = Result<Vec<u8>, String>;
    async fn handle(&mut self, _: Export, _ctx: &mut Context<Self>) -> Result<Vec<u8>, String> {
        let state = ShardStateRef {
            watermark: self.watermark,
            series: self
                .series
                .iter()
                .filter(|s| !s.windows.is_empty())
                .map(|s| (s.hash, &*s.key, &s.windows))
                .collect(),
        };
        postcard::to_stdvec(&state).map_err(|e| e.to_string())
    }
}

/// Replaces the shard's state with one from [`Export`] (at start-up, before the log
/// tail is replayed); answers the restored watermark.
pub(crate) struct Restore(pub(crate) Vec<u8>);

impl Handler<Restore> for Shard {
    type Reply = Result<i64, String>;
    async fn handle(&mut self, msg: Restore, _ctx: &mut Context<Self>) -> Result<i64, String> {
        let state: ShardState = postcard::from_bytes(&msg.0).map_err(|e| e.to_string())?;
        self.series.clear();
        self.table.clear();
        for (hash, key, windows) in state.series {
            let i = u32::try_from(self.series.len()).unwrap_or(u32::MAX);
            self.series.push(Series {
                hash,
                key: Arc::new(key),
                windows,
                idle_scans: 0,
            });
            let series = &self.series;
            self.table
                .insert_unique(hash, i, |&j| series[j as usize].hash);
        }
        self.watermark = state.watermark;
        let ctx = self.ctx();
        self.next_deadline = self
            .series
            .iter()
            .map(|s| s.windows.deadline(&ctx))
            .min()
            .unwrap_or(i64::MAX);
        self.counters.set_series(self.id, self.series.len());
        Ok(self.watermark)
    }
}

/// Makes the shard panic: the supervision test's stand-in for a bug.
#[cfg(test)]
pub(crate) struct Crash;

#[cfg(test)]
impl Handler<Crash> for Shard {
    type Reply = ();
    async fn handle(&mut self, _: Crash, _ctx: &mut Context<Self>) {
        panic!("injected shard failure");
    }
}
