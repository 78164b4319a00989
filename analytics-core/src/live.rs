//! The live feed: a query's partial results at an interval and its final results as
//! the watermark closes windows, multicast through a weft-reactive `Subject` so each
//! subscriber (a WebSocket, a dashboard) has its own bounded buffer and slow-subscriber
//! policy.
//!
//! Every `interval` the feed task
//!
//! 1. asks every shard for a barrier; each answers with its watermark once it has
//!    handled everything queued before. The minimum `W` over the shards is a watermark
//!    every shard has reached, so every window with `end + lateness <= W` is closed on
//!    every shard;
//! 2. waits for the store to apply the closed-window log up to its head, then publishes
//!    [`LiveKind::Final`] with the windows that became final since the last round
//!    (`end + lateness` in `(W_prev, W]`) — each exactly once, merged across shards;
//! 3. asks every shard for the partial aggregates of its open windows matching the query
//!    and publishes them merged as [`LiveKind::Partial`].

use std::sync::Arc;
use std::time::Duration;

use weft_reactive::{Overflow, Receiver, StageMetrics, Subject};

use crate::engine::{Engine, Inner};
use crate::error::{Error, shard_unanswered};
use crate::query::{Query, QueryResult};
use crate::shard::{Barrier, Partials};
use crate::store::{Row, fold};

/// Whether an update holds open windows (may still change) or final ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveKind {
    /// Open windows so far.
    Partial,
    /// Windows the watermark closed since the previous final update; they never change.
    Final,
}

/// One update of a live query.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveUpdate {
    /// Partial or final.
    pub kind: LiveKind,
    /// The watermark every shard had reached (ms).
    pub watermark: i64,
    /// The result (only windows with data; may be empty for a final round that closed
    /// nothing matching).
    pub result: QueryResult,
}

/// A live query. Subscribe as many receivers as needed; dropping the feed stops it and
/// ends every subscriber's stream.
#[derive(Debug)]
pub struct LiveFeed {
    subject: Arc<Subject<Arc<LiveUpdate>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LiveFeed {
    /// A new subscriber with a buffer of `capacity` updates and the overflow `policy`
    /// for when it falls behind: `Block` holds the feed back (and every other
    /// subscriber), the drop and keep-latest policies drop for this subscriber only and
    /// count it ([`Receiver::lagged`]).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a zero capacity.
    pub fn subscribe(
        &self,
        capacity: usize,
        policy: Overflow,
    ) -> Result<Receiver<Arc<LiveUpdate>>, Error> {
        self.subject
            .subscribe(capacity, policy)
            .map_err(|e| Error::Config(e.to_string()))
    }

    /// Each live subscriber's counters (`dropped` is its lag).
    pub fn subscribers(&self) -> Vec<StageMetrics> {
        self.subject.subscribers()
    }
}

impl Drop for LiveFeed {
    fn drop(&mut self) {
        self.task.abort();
        self.subject.complete();
    }
}

impl Engine {
    /// Starts a live feed of `query`: partial results every `interval`, final results
    /// as windows close. The query's time range limits the windows reported.
    ///
    /// # Errors
    ///
    /// [`Error::Query`] for a malformed query, [`Error::Config`] for a zero interval.
    pub fn live(&self, query: Query, interval: Duration) -> Result<LiveFeed, Error> {
        query.validate(&self.inner.cfg.agg)?;
        if interval.is_zero() || interval > MAX_INTERVAL {
            return Err(Error::Config(
                "the live feed interval must be positive and at most a day".into(),
            ));
        }
        let subject = Arc::new(Subject::new());
        let weak = Arc::downgrade(&self.inner);
        let out = Arc::clone(&subject);
        let query = Arc::new(query);
        let task = tokio::spawn(async move {
            let mut iv = tokio::time::interval(interval);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut final_through = i64::MIN;
            loop {
                iv.tick().await;
                // First: a feed nobody listens to still ends with its engine.
                let Some(inner) = weak.upgrade() else { break };
                if out.subscriber_count() == 0 {
                    // Nobody to tell yet (the first tick fires before the caller has
                    // subscribed): a round now would spend its finals on no one.
                    continue;
                }
                match round(&inner, &query, interval, &mut final_through).await {
                    Ok(updates) => {
                        drop(inner);
                        for u in updates {
                            if out.send(Arc::new(u)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(Error::Timeout(_)) => continue, // overloaded: try next round
                    Err(_) => break,
                }
            }
            out.complete();
        });
        Ok(LiveFeed { subject, task })
    }
}

/// The longest live-feed interval.
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// One round: finals since `final_through`, then partials.
async fn round(
    inner: &Inner,
    q: &Arc<Query>,
    timeout: Duration,
    final_through: &mut i64,
) -> Result<Vec<LiveUpdate>, Error> {
    let mut wm = i64::MAX;
    for s in &inner.shards {
        let (w, _) = s
            .ask(Barrier, timeout.max(Duration::from_secs(1)))
            .await
            .map_err(shard_unanswered(timeout))?;
        wm = wm.min(w);
    }
    let mut updates = Vec::with_capacity(2);
    let mut through = *final_through;
    let lateness = inner.cfg.lateness;
    // Windows with end + lateness <= wm are closed everywhere.
    let closed_end = wm.saturating_sub(lateness);
    if wm != i64::MIN && closed_end > *final_through {
        let head = inner.log_head();
        inner
            .store
            .wait_for(head, timeout.max(Duration::from_secs(1)))
            .await
            .map_err(|_| Error::Timeout(timeout))?;
        let mut fq = (**q).clone();
        fq.end_range = Some((*final_through, closed_end));
        let result = inner.store.query(|s| s.run(&fq))?;
        through = closed_end;
        updates.push(LiveUpdate {
            kind: LiveKind::Final,
            watermark: wm,
            result,
        });
    }
    updates.push(LiveUpdate {
        kind: LiveKind::Partial,
        watermark: wm,
        result: open_windows(inner, q, timeout.max(Duration::from_secs(1))).await?,
    });
    // Only a round that is delivered whole moves the finals on: a partial that timed
    // out sends nothing, and its finals come again next round.
    *final_through = through;
    Ok(updates)
}

/// The partial aggregates of the open windows matching `q`, merged across shards.
pub(crate) async fn open_windows(
    inner: &Inner,
    q: &Arc<Query>,
    timeout: Duration,
) -> Result<QueryResult, Error> {
    let mut parts = Vec::new();
    for s in &inner.shards {
        let part = s
            .ask(Partials(Arc::clone(q)), timeout)
            .await
            .map_err(shard_unanswered(timeout))?;
        parts.extend(part);
    }
    // Each shard folded its series; what is left is one partial per shard and bucket.
    let rows: Vec<Row<'_>> = parts
        .iter()
        .map(|p| {
            (
                p.group.iter().map(|g| g.as_str()).collect(),
                p.start,
                p.end,
                &p.agg,
            )
        })
        .collect();
    let acc_cfg = q.accumulator_config(&inner.cfg.agg);
    Ok(fold(q, &acc_cfg, 0, rows))
}

impl Engine {
    /// Answers `query` over the *open* windows (partial aggregates that may still
    /// change), asking every shard: unlike [`query`](Engine::query) this queues behind
    /// the batches already in the shard mailboxes, for at most `timeout` per shard.
    /// Use it for "the current minute so far"; use `query` for final windows.
    ///
    /// # Errors
    ///
    /// [`Error::Query`] for a malformed query, [`Error::Timeout`], [`Error::Closed`].
    pub async fn query_open(&self, query: &Query, timeout: Duration) -> Result<QueryResult, Error> {
        query.validate(&self.inner.cfg.agg)?;
        open_windows(&self.inner, &Arc::new(query.clone()), timeout).await
    }
}
