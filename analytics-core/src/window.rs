//! Window assignment and closing: tumbling and hopping windows over panes, session
//! windows per key. Pure logic over one series; the shard drives it.
//!
//! # Panes
//!
//! A hopping window of size `S` sliding by `D` (with `D` dividing `S`) is the union of
//! `S / D` consecutive *panes* of length `D`. Each event updates exactly one pane (the
//! one holding its timestamp), so the cost per event does not grow with `S / D`; a
//! window's result is the merge of its panes, computed once when it closes. Tumbling
//! windows are the case `D = S`: one pane per window, moved out rather than merged.
//!
//! # Closing and lateness
//!
//! With watermark `W` and allowed lateness `L`, window `[s, e)` is *final* once
//! `W >= e + L`: it is emitted then and never changes. An event is *late* if a window it
//! belongs to is already final — for a pane `[p, p + D)` that is the earliest window
//! holding it, ending at `p + D`. Late events update no window at all (so final results
//! never depend on which windows happened to close first); the late policy counts them
//! or hands them to the late stream.
//!
//! Session windows (gap `G`) are per key: an event at `t` opens `[t, t + G)` and merges
//! every open session it overlaps. A session `[s, e)` is final once `W >= e + L`. An event
//! is late if its own interval is already final (`t + G + L <= W`) or if it falls before
//! the end of a session already emitted for the key (it would have extended it).

use std::collections::VecDeque;
use std::time::Duration;

use crate::agg::{AggregateConfig, WindowAggregate};
use crate::error::Error;
use crate::event::{MAX_SPAN, millis};

/// The windows an engine aggregates over.
///
/// ```
/// use std::time::Duration;
/// use weft_analytics::WindowSpec;
/// let w = WindowSpec::hopping(Duration::from_secs(10), Duration::from_secs(2));
/// assert_eq!(w.windows_of(13_500), vec![(4_000, 14_000), (6_000, 16_000), (8_000, 18_000),
///                                      (10_000, 20_000), (12_000, 22_000)]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub(crate) kind: WindowKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowKind {
    /// Size and slide in ms (tumbling: equal).
    Panes { size: i64, slide: i64 },
    /// Gap in ms.
    Session { gap: i64 },
}

impl WindowSpec {
    /// Fixed, non-overlapping windows of `size`, aligned to the Unix epoch.
    pub fn tumbling(size: Duration) -> Self {
        let size = millis(size);
        WindowSpec {
            kind: WindowKind::Panes { size, slide: size },
        }
    }

    /// Overlapping windows of `size` starting every `slide` (which must divide `size`),
    /// aligned to the Unix epoch.
    pub fn hopping(size: Duration, slide: Duration) -> Self {
        WindowSpec {
            kind: WindowKind::Panes {
                size: millis(size),
                slide: millis(slide),
            },
        }
    }

    /// Session windows per series: a session ends after `gap` without events.
    pub fn session(gap: Duration) -> Self {
        WindowSpec {
            kind: WindowKind::Session { gap: millis(gap) },
        }
    }

    /// Whether windows are tumbling (the only kind downsampling tiers accept).
    pub fn is_tumbling(&self) -> bool {
        matches!(self.kind, WindowKind::Panes { size, slide } if size == slide)
    }

    /// The window size in ms (tumbling/hopping), or `None` for sessions.
    pub fn size_ms(&self) -> Option<i64> {
        match self.kind {
            WindowKind::Panes { size, .. } => Some(size),
            WindowKind::Session { .. } => None,
        }
    }

    /// The `[start, end)` windows holding timestamp `ts` (sessions: the event's own
    /// interval before merging).
    pub fn windows_of(&self, ts: i64) -> Vec<(i64, i64)> {
        match self.kind {
            WindowKind::Panes { size, slide } => {
                let p = pane_of(ts, slide);
                let mut s = p - size + slide;
                let mut v = Vec::new();
                while s <= p {
                    v.push((s, s + size));
                    s += slide;
                }
                v
            }
            WindowKind::Session { gap } => vec![(ts, ts.saturating_add(gap))],
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        match self.kind {
            WindowKind::Panes { size, slide } => {
                if size <= 0 || slide <= 0 {
                    return Err(Error::Config(
                        "window size and slide must be at least 1 ms".into(),
                    ));
                }
                if slide > size || size % slide != 0 {
                    return Err(Error::Config(format!(
                        "the slide ({slide} ms) must divide the window size ({size} ms)"
                    )));
                }
                if size > MAX_SPAN {
                    return Err(Error::Config(
                        "windows longer than 2^40 ms are not supported".into(),
                    ));
                }
                if size / slide > 1024 {
                    return Err(Error::Config("at most 1024 panes per window".into()));
                }
            }
            WindowKind::Session { gap } => {
                if gap <= 0 || gap > MAX_SPAN {
                    return Err(Error::Config(
                        "the session gap must be between 1 ms and 2^40 ms".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The start of the pane of length `slide` holding `ts`.
#[inline]
pub(crate) fn pane_of(ts: i64, slide: i64) -> i64 {
    ts - ts.rem_euclid(slide)
}

/// One final window of one series.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Closed {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) agg: WindowAggregate,
}

/// The open windows of one series.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum SeriesWindows {
    Panes(Panes),
    Sessions(Sessions),
}

impl SeriesWindows {
    pub(crate) fn new(spec: &WindowSpec) -> Self {
        match spec.kind {
            WindowKind::Panes { .. } => SeriesWindows::Panes(Panes {
                panes: VecDeque::new(),
                emitted_through: i64::MIN,
            }),
            WindowKind::Session { .. } => SeriesWindows::Sessions(Sessions {
                open: Vec::new(),
                closed_until: i64::MIN,
            }),
        }
    }
}

/// What one series needs to know to place an event: the spec, lateness, watermark.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) spec: WindowKind,
    pub(crate) lateness: i64,
    pub(crate) agg: &'a AggregateConfig,
}

/// The panes of one series (tumbling or hopping), ascending by start.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Panes {
    panes: VecDeque<(i64, WindowAggregate)>,
    /// Windows starting at or before this were emitted.
    emitted_through: i64,
}

/// The open sessions of one series, ascending by start, non-overlapping.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Sessions {
    open: Vec<Closed>,
    /// The largest end of a session already emitted.
    closed_until: i64,
}

impl SeriesWindows {
    /// Whether an event at `ts` is late at watermark `wm`.
    #[inline]
    pub(crate) fn is_late(&self, ctx: &Ctx<'_>, ts: i64, wm: i64) -> bool {
        match (self, ctx.spec) {
            (SeriesWindows::Panes(_), WindowKind::Panes { slide, .. }) => {
                wm >= (pane_of(ts, slide) + slide).saturating_add(ctx.lateness)
            }
            (SeriesWindows::Sessions(s), WindowKind::Session { gap }) => {
                wm >= ts.saturating_add(gap).saturating_add(ctx.lateness) || ts < s.closed_until
            }
            _ => unreachable_kind(),
        }
    }

    /// The aggregate an event at `ts` goes into (creating its pane or session, merging
    /// sessions). The caller checked [`is_late`](Self::is_late).
    #[inline]
    pub(crate) fn slot(&mut self, ctx: &Ctx<'_>, ts: i64) -> &mut WindowAggregate {
        match (self, ctx.spec) {
            (SeriesWindows::Panes(p), WindowKind::Panes { slide, .. }) => {
                let start = pane_of(ts, slide);
                // Mostly in order: search from the back.
                let mut i = p.panes.len();
                while i > 0 && p.panes[i - 1].0 > start {
                    i -= 1;
                }
                if i == 0 || p.panes[i - 1].0 != start {
                    p.panes.insert(i, (start, WindowAggregate::new(ctx.agg)));
                    i += 1;
                }
                &mut p.panes[i - 1].1
            }
            (SeriesWindows::Sessions(s), WindowKind::Session { gap }) => {
                let (mut lo, mut hi) = (ts, ts.saturating_add(gap));
                // Sessions overlapping [lo, hi).
                let first = s.open.partition_point(|c| c.end <= lo);
                let mut last = first;
                while last < s.open.len() && s.open[last].start < hi {
                    last += 1;
                }
                if first == last {
                    s.open.insert(
                        first,
                        Closed {
                            start: lo,
                            end: hi,
                            agg: WindowAggregate::new(ctx.agg),
                        },
                    );
                } else {
                    let mut merged = s.open.drain(first + 1..last).collect::<Vec<_>>();
                    let base = &mut s.open[first];
                    for m in merged.drain(..) {
                        base.agg.merge(&m.agg);
                        hi = hi.max(m.end);
                    }
                    lo = lo.min(base.start);
                    base.start = lo;
                    base.end = base.end.max(hi);
                }
                &mut s.open[first].agg
            }
            _ => unreachable_kind(),
        }
    }

    /// Emits every window final at watermark `wm` into `out` and frees what no open
    /// window needs any more.
    pub(crate) fn close(&mut self, ctx: &Ctx<'_>, wm: i64, out: &mut Vec<Closed>) {
        match (self, ctx.spec) {
            (SeriesWindows::Panes(p), WindowKind::Panes { size, slide }) if size == slide => {
                while let Some((start, _)) = p.panes.front() {
                    if wm < (start + size).saturating_add(ctx.lateness) {
                        break;
                    }
                    let Some((start, agg)) = p.panes.pop_front() else {
                        break;
                    };
                    p.emitted_through = start;
                    out.push(Closed {
                        start,
                        end: start + size,
                        agg,
                    });
                }
            }
            (SeriesWindows::Panes(p), WindowKind::Panes { size, slide }) => {
                // Windows [s, s + size) with s + size + lateness <= wm are final.
                if wm.saturating_sub(ctx.lateness) >= i64::MIN / 2 {
                    let limit = pane_of(wm.saturating_sub(ctx.lateness) - size, slide);
                    for i in 0..p.panes.len() {
                        let pane = p.panes[i].0;
                        let mut s =
                            (pane - size + slide).max(p.emitted_through.saturating_add(slide));
                        while s <= pane && s <= limit {
                            out.push(Closed {
                                start: s,
                                end: s + size,
                                agg: merge_panes(&p.panes, s, s + size),
                            });
                            p.emitted_through = s;
                            s += slide;
                        }
                    }
                }
                // Free panes whose last window (starting at the pane) is final.
                while let Some((start, _)) = p.panes.front() {
                    if wm < (start + size).saturating_add(ctx.lateness) {
                        break;
                    }
                    p.panes.pop_front();
                }
            }
            (SeriesWindows::Sessions(s), WindowKind::Session { .. }) => {
                let n = s
                    .open
                    .partition_point(|c| c.end.saturating_add(ctx.lateness) <= wm);
                // Sessions are sorted by start and disjoint, so also by end.
                for c in s.open.drain(..n) {
                    s.closed_until = s.closed_until.max(c.end);
                    out.push(c);
                }
            }
            _ => unreachable_kind(),
        }
    }

    /// The watermark at which this series next has something to close (`i64::MAX` if
    /// nothing is open).
    pub(crate) fn deadline(&self, ctx: &Ctx<'_>) -> i64 {
        match (self, ctx.spec) {
            (SeriesWindows::Panes(p), WindowKind::Panes { size, slide }) => match p.panes.front() {
                None => i64::MAX,
                Some((first, _)) => {
                    let s = (first - size + slide).max(p.emitted_through.saturating_add(slide));
                    (s + size).saturating_add(ctx.lateness)
                }
            },
            (SeriesWindows::Sessions(s), WindowKind::Session { .. }) => s
                .open
                .iter()
                .map(|c| c.end.saturating_add(ctx.lateness))
                .min()
                .unwrap_or(i64::MAX),
            _ => unreachable_kind(),
        }
    }

    /// Whether nothing is open.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            SeriesWindows::Panes(p) => p.panes.is_empty(),
            SeriesWindows::Sessions(s) => s.open.is_empty(),
        }
    }

    /// Visits every open window's partial aggregate (panes merged into windows for
    /// hopping) with its bounds.
    pub(crate) fn partials(&self, ctx: &Ctx<'_>, f: &mut dyn FnMut(i64, i64, &WindowAggregate)) {
        match (self, ctx.spec) {
            (SeriesWindows::Panes(p), WindowKind::Panes { size, slide }) => {
                let mut last = p.emitted_through;
                for (pane, agg) in &p.panes {
                    let mut s = (pane - size + slide).max(last.saturating_add(slide));
                    while s <= *pane {
                        if size == slide {
                            // Tumbling: the window is this one pane; lend it, no copy.
                            f(s, s + size, agg);
                        } else {
                            f(s, s + size, &merge_panes(&p.panes, s, s + size));
                        }
                        last = s;
                        s += slide;
                    }
                }
            }
            (SeriesWindows::Sessions(s), WindowKind::Session { .. }) => {
                for c in &s.open {
                    f(c.start, c.end, &c.agg);
                }
            }
            _ => unreachable_kind(),
        }
    }
}

/// The merge of the panes in `[start, end)` (at least one exists when called).
fn merge_panes(panes: &VecDeque<(i64, WindowAggregate)>, start: i64, end: i64) -> WindowAggregate {
    let mut it = panes.iter().filter(|(p, _)| *p >= start && *p < end);
    let mut acc = match it.next() {
        Some((_, a)) => a.clone(),
        None => unreachable_kind(),
    };
    for (_, a) in it {
        acc.merge(a);
    }
    acc
}

/// A series' state always matches the engine's spec (both are set at build time).
#[cold]
fn unreachable_kind() -> ! {
    unreachable!("series window state does not match the engine's window spec")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        spec: WindowSpec,
        lateness: i64,
        events: &[(i64, f64)],
        wms: &[i64],
    ) -> (Vec<(i64, i64, u64, f64)>, usize) {
        let agg = AggregateConfig::basic();
        let ctx = Ctx {
            spec: spec.kind,
            lateness,
            agg: &agg,
        };
        let mut w = SeriesWindows::new(&spec);
        let mut out = Vec::new();
        let mut late = 0;
        for (i, &(ts, v)) in events.iter().enumerate() {
            let wm = wms[i];
            w.close(&ctx, wm, &mut out);
            if w.is_late(&ctx, ts, wm) {
                late += 1;
            } else {
                w.slot(&ctx, ts).add(v, None, None);
            }
        }
        w.close(&ctx, i64::MAX, &mut out);
        assert!(w.is_empty());
        (
            out.into_iter()
                .map(|c| (c.start, c.end, c.agg.count(), c.agg.sum()))
                .collect(),
            late,
        )
    }

    #[test]
    fn tumbling_windows_and_lateness() {
        let spec = WindowSpec::tumbling(Duration::from_millis(10));
        let ev = [(1, 1.0), (12, 2.0), (5, 3.0), (25, 4.0), (3, 5.0)];
        // Watermark lags: the third event (ts 5) arrives at wm 9: window [0,10) still open.
        let wms = [0, 9, 9, 20, 20];
        let (out, late) = run(spec, 0, &ev, &wms);
        assert_eq!(out, [(0, 10, 2, 4.0), (10, 20, 1, 2.0), (20, 30, 1, 4.0)]);
        assert_eq!(late, 1); // ts 3 at wm 20
        // With 15 ms allowed lateness the same event is accepted, window [0,10) final
        // later.
        let (out, late) = run(spec, 15, &ev, &wms);
        assert_eq!(late, 0);
        assert_eq!(out[0], (0, 10, 3, 9.0));
    }

    #[test]
    fn hopping_windows_merge_panes() {
        let spec = WindowSpec::hopping(Duration::from_millis(10), Duration::from_millis(5));
        let ev = [(1, 1.0), (7, 2.0), (12, 4.0)];
        let (out, late) = run(spec, 0, &ev, &[0, 0, 0]);
        assert_eq!(late, 0);
        assert_eq!(
            out,
            [
                (-5, 5, 1, 1.0),
                (0, 10, 2, 3.0),
                (5, 15, 2, 6.0),
                (10, 20, 1, 4.0),
            ]
        );
    }

    #[test]
    fn hopping_late_if_earliest_window_final() {
        let spec = WindowSpec::hopping(Duration::from_millis(10), Duration::from_millis(5));
        // At wm 10, window [0,10) is final: an event at 3 (pane [0,5), earliest window
        // [-5,5)) is late, an event at 6 (earliest window [0,10)) is late too, 10 is not.
        let (_, late) = run(spec, 0, &[(3, 1.0), (6, 1.0), (10, 1.0)], &[10, 10, 10]);
        assert_eq!(late, 2);
    }

    #[test]
    fn sessions_split_and_merge() {
        let spec = WindowSpec::session(Duration::from_millis(10));
        // 0 and 30 are separate; 15 bridges nothing yet; then 22 joins 15 and 30 ([15,25)
        // and [22,32) overlap, [30,40) overlaps [22,32)).
        let ev = [(0, 1.0), (30, 1.0), (15, 1.0), (22, 1.0), (100, 1.0)];
        let (out, late) = run(spec, 0, &ev, &[0; 5]);
        assert_eq!(late, 0);
        assert_eq!(out, [(0, 10, 1, 1.0), (15, 40, 3, 3.0), (100, 110, 1, 1.0)]);
    }

    #[test]
    fn session_late_rules() {
        let spec = WindowSpec::session(Duration::from_millis(10));
        // Session [0,10) final at wm 10; an event at 5 would have extended it: late.
        // An event at 12 at wm 10 opens [12,22): fine.
        let (out, late) = run(spec, 0, &[(0, 1.0), (5, 1.0), (12, 1.0)], &[0, 10, 10]);
        assert_eq!(late, 1);
        assert_eq!(out, [(0, 10, 1, 1.0), (12, 22, 1, 1.0)]);
    }

    #[test]
    fn deadlines_track_the_first_window() {
        let spec = WindowSpec::hopping(Duration::from_millis(10), Duration::from_millis(5));
        let agg = AggregateConfig::basic();
        let ctx = Ctx {
            spec: spec.kind,
            lateness: 3,
            agg: &agg,
        };
        let mut w = SeriesWindows::new(&spec);
        assert_eq!(w.deadline(&ctx), i64::MAX);
        w.slot(&ctx, 7).add(1.0, None, None);
        assert_eq!(w.deadline(&ctx), 13); // window [0,10) + 3
        let mut out = Vec::new();
        w.close(&ctx, 13, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(w.deadline(&ctx), 18);
    }

    #[test]
    fn spec_validation() {
        assert!(WindowSpec::tumbling(Duration::ZERO).validate().is_err());
        assert!(
            WindowSpec::hopping(Duration::from_secs(10), Duration::from_secs(3))
                .validate()
                .is_err()
        );
        assert!(
            WindowSpec::hopping(Duration::from_secs(10), Duration::from_secs(20))
                .validate()
                .is_err()
        );
        assert!(
            WindowSpec::hopping(Duration::from_secs(10), Duration::from_secs(2))
                .validate()
                .is_ok()
        );
        assert!(WindowSpec::session(Duration::ZERO).validate().is_err());
        assert!(WindowSpec::tumbling(Duration::MAX).validate().is_err());
        assert!(WindowSpec::session(Duration::MAX).validate().is_err());
        assert!(WindowSpec::tumbling(Duration::from_secs(60)).is_tumbling());
    }
}
