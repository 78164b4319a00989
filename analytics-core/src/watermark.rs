//! Event-time progress: per-source watermarks with bounded out-of-orderness and idle
//! detection, combined into the engine's watermark.
//!
//! Each source's watermark is the largest timestamp it has sent minus the allowed
//! out-of-orderness: the source promises nothing older will follow (events that do are
//! at most late, and allowed lateness absorbs some of them). The engine's watermark is
//! the *minimum* over active sources, so a slow source holds windows open for the
//! others' late data — unless it has been silent for the idle timeout (by the engine's
//! clock), in which case it is left out and cannot stall the engine. When every source
//! is idle the watermark is the maximum of theirs: nothing is arriving, so every window
//! the sources' own progress allows is closed. The result never moves backwards.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use compact_str::CompactString;

use crate::event::millis;

/// How time advances: event time with watermarks, or processing time.
///
/// ```
/// use std::time::Duration;
/// use weft_analytics::TimeMode;
/// let t = TimeMode::event_time(Duration::from_secs(5), Duration::from_secs(30));
/// assert!(matches!(t, TimeMode::EventTime { .. }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeMode {
    /// Windows follow the events' own timestamps; the watermark is per source.
    EventTime {
        /// How far out of order a source's events may arrive (the watermark lags the
        /// source's largest timestamp by this much).
        max_out_of_orderness: Duration,
        /// A source silent this long (engine clock) no longer holds the watermark back.
        idle_timeout: Duration,
    },
    /// Events are stamped with the engine clock on arrival (their timestamps are
    /// overwritten) and the watermark is the clock: windows close on time whatever the
    /// events say.
    ProcessingTime,
}

impl TimeMode {
    /// Event time with the given out-of-orderness bound and idle timeout.
    pub fn event_time(max_out_of_orderness: Duration, idle_timeout: Duration) -> Self {
        TimeMode::EventTime {
            max_out_of_orderness,
            idle_timeout,
        }
    }
}

impl Default for TimeMode {
    /// Event time, 5 s out-of-orderness, 60 s idle timeout.
    fn default() -> Self {
        TimeMode::event_time(Duration::from_secs(5), Duration::from_secs(60))
    }
}

/// The progress of one source.
#[derive(Debug, Clone)]
struct Source {
    max_ts: i64,
    last_seen: Instant,
    /// Whether the last recomputation found it idle (for transition events).
    idle: bool,
}

/// The watermark state of a whole engine.
#[derive(Debug)]
pub(crate) struct Watermarks {
    ooo: i64,
    idle: Duration,
    sources: HashMap<CompactString, Source>,
    current: i64,
}

/// A snapshot of one source's progress.
///
/// ```
/// # let _ = |s: weft_analytics::SourceStatus| s.idle;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    /// The source name.
    pub source: String,
    /// Its watermark (largest timestamp minus the out-of-orderness bound), ms.
    pub watermark: i64,
    /// Whether it is idle (silent for the idle timeout) and so ignored.
    pub idle: bool,
}

impl Watermarks {
    pub(crate) fn new(ooo: Duration, idle: Duration) -> Self {
        Watermarks {
            ooo: millis(ooo),
            idle,
            sources: HashMap::new(),
            current: i64::MIN,
        }
    }

    /// Records that `source` sent events up to `max_ts` at `now`; returns the engine
    /// watermark.
    pub(crate) fn observe(&mut self, source: &str, max_ts: Option<i64>, now: Instant) -> i64 {
        match self.sources.get_mut(source) {
            Some(s) => {
                s.last_seen = now;
                if let Some(t) = max_ts {
                    s.max_ts = s.max_ts.max(t);
                }
            }
            None => {
                tracing::debug!(source, "new event source");
                self.sources.insert(
                    source.into(),
                    Source {
                        max_ts: max_ts.unwrap_or(i64::MIN),
                        last_seen: now,
                        idle: false,
                    },
                );
            }
        }
        self.advance(now)
    }

    /// Recomputes the watermark at `now` (idle sources drop out).
    pub(crate) fn advance(&mut self, now: Instant) -> i64 {
        let mut active_min: Option<i64> = None;
        let mut all_max = i64::MIN;
        for (name, s) in self.sources.iter_mut() {
            let wm = s.max_ts.saturating_sub(self.ooo);
            all_max = all_max.max(wm);
            let idle = now.saturating_duration_since(s.last_seen) >= self.idle;
            if idle != s.idle {
                s.idle = idle;
                if idle {
                    tracing::info!(source = %name, watermark = wm, "event source idle; it no longer holds the watermark back");
                } else {
                    tracing::info!(source = %name, watermark = wm, "event source active again");
                }
            }
            if !idle {
                active_min = Some(active_min.map_or(wm, |m| m.min(wm)));
            }
        }
        let candidate = active_min.unwrap_or(all_max);
        self.current = self.current.max(candidate);
        self.current
    }

    /// Processing time: the watermark is the clock (`now_ms`), never moving back.
    pub(crate) fn observe_processing(&mut self, now_ms: i64) -> i64 {
        self.current = self.current.max(now_ms);
        self.current
    }

    /// End of input: every window is final.
    pub(crate) fn advance_to_end(&mut self) {
        self.current = i64::MAX;
    }

    pub(crate) fn current(&self) -> i64 {
        self.current
    }

    /// The state a snapshot keeps: the watermark and each source's largest timestamp.
    pub(crate) fn export(&self) -> (i64, Vec<(CompactString, i64)>) {
        let mut sources: Vec<_> = self
            .sources
            .iter()
            .map(|(n, s)| (n.clone(), s.max_ts))
            .collect();
        sources.sort();
        (self.current, sources)
    }

    /// Restores [`export`](Self::export)ed state; every source counts as seen at `now`.
    pub(crate) fn restore(
        &mut self,
        current: i64,
        sources: Vec<(CompactString, i64)>,
        now: Instant,
    ) {
        self.current = current;
        self.sources = sources
            .into_iter()
            .map(|(n, max_ts)| {
                (
                    n,
                    Source {
                        max_ts,
                        last_seen: now,
                        idle: false,
                    },
                )
            })
            .collect();
    }

    pub(crate) fn status(&self, now: Instant) -> Vec<SourceStatus> {
        let mut v: Vec<SourceStatus> = self
            .sources
            .iter()
            .map(|(name, s)| SourceStatus {
                source: name.to_string(),
                watermark: s.max_ts.saturating_sub(self.ooo),
                idle: now.saturating_duration_since(s.last_seen) >= self.idle,
            })
            .collect();
        v.sort_by(|a, b| a.source.cmp(&b.source));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_over_active_sources_and_idle_detection() {
        let t0 = Instant::now();
        let mut w = Watermarks::new(Duration::from_millis(100), Duration::from_secs(10));
        assert_eq!(w.observe("a", Some(1_000), t0), 900);
        // b is behind: holds the watermark back (it never goes backwards).
        assert_eq!(w.observe("b", Some(500), t0), 900);
        assert_eq!(
            w.observe("a", Some(5_000), t0 + Duration::from_secs(1)),
            900
        );
        assert_eq!(
            w.observe("b", Some(2_000), t0 + Duration::from_secs(2)),
            1_900
        );
        // b goes quiet; after the idle timeout a alone drives the watermark.
        assert_eq!(
            w.observe("a", Some(8_000), t0 + Duration::from_secs(11)),
            1_900
        );
        assert_eq!(w.advance(t0 + Duration::from_secs(12)), 7_900);
        let st = w.status(t0 + Duration::from_secs(12));
        assert_eq!(
            st[1],
            SourceStatus {
                source: "b".into(),
                watermark: 1_900,
                idle: true
            }
        );
        // Everyone idle: the largest source watermark.
        assert_eq!(w.advance(t0 + Duration::from_secs(60)), 7_900);
        // b comes back with old data: the watermark does not regress.
        assert_eq!(
            w.observe("b", Some(3_000), t0 + Duration::from_secs(61)),
            7_900
        );
    }
}
