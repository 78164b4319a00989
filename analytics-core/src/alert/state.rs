//! The alert state of one rule as a weft-eventsourcing aggregate: inactive → pending →
//! firing → resolved, decided from one closed window at a time.
//!
//! Every evaluated window is recorded (`Evaluated`), so the resolve streak and the last
//! window seen survive a restart; transitions are separate events, so the history reads
//! as "pending at …, firing at …, resolved at …". A window at or before the last one
//! seen is ignored, which makes re-evaluating after a restart idempotent.

use serde::{Deserialize, Serialize};
use weft_eventsourcing::{Aggregate, DomainEvent};

use super::rule::AlertRule;

/// Where an alert is.
///
/// ```
/// use weft_analytics::AlertStatus;
/// assert_eq!(AlertStatus::default(), AlertStatus::Inactive);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AlertStatus {
    /// The condition does not hold (or never did).
    #[default]
    Inactive,
    /// The condition holds, not yet for the for-duration.
    Pending,
    /// The condition held for the for-duration; notified.
    Firing,
    /// Was firing; the resolve condition held long enough; notified.
    Resolved,
}

/// One event of an alert's history (window bounds and times are event time, ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AlertEvent {
    /// A closed window was evaluated.
    Evaluated {
        /// Window start.
        start: i64,
        /// Window end.
        end: i64,
        /// The aggregate's value (`None`: no data for it).
        value: Option<f64>,
        /// Whether the firing condition held.
        breached: bool,
        /// While firing: whether the window counts toward resolving.
        resolving: bool,
    },
    /// The condition started to hold at `since` (a window start).
    Pending {
        /// The start of the first breaching window.
        since: i64,
    },
    /// A pending alert's condition stopped holding before the for-duration.
    Cleared {
        /// The end of the window where it stopped.
        at: i64,
    },
    /// The alert fired.
    Firing {
        /// The end of the window that made it fire.
        at: i64,
        /// That window's value.
        value: Option<f64>,
    },
    /// The alert resolved.
    Resolved {
        /// The end of the window that resolved it.
        at: i64,
        /// That window's value.
        value: Option<f64>,
    },
}

impl DomainEvent for AlertEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AlertEvent::Evaluated { .. } => "Evaluated",
            AlertEvent::Pending { .. } => "Pending",
            AlertEvent::Cleared { .. } => "Cleared",
            AlertEvent::Firing { .. } => "Firing",
            AlertEvent::Resolved { .. } => "Resolved",
        }
    }
}

impl AlertEvent {
    /// Whether this is a state transition (not a plain evaluation).
    pub fn is_transition(&self) -> bool {
        !matches!(self, AlertEvent::Evaluated { .. })
    }
}

/// The state of one rule's alert, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    /// The status.
    pub status: AlertStatus,
    /// While pending or firing: the start of the first breaching window.
    pub since: Option<i64>,
    /// The end of the last window evaluated.
    pub last_end: Option<i64>,
    /// While firing: consecutive windows counting toward resolving.
    pub resolve_streak: u32,
    /// Times fired.
    pub fired: u64,
}

/// One closed window and the rule's aggregate over it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObservedWindow {
    /// Window start (ms).
    pub start: i64,
    /// Window end (ms).
    pub end: i64,
    /// The rule's aggregate over the window (`None`: no data for it).
    pub value: Option<f64>,
}

/// Command to an [`AlertState`]: evaluate closed windows, in order, under `rule` (what
/// the manager sends, one command per rule and round, so one append; exposed for
/// given/when/then tests of the state machine).
#[derive(Debug, Clone)]
pub struct Observe {
    /// The rule (its condition, for-duration and resolve condition).
    pub rule: AlertRule,
    /// The windows, oldest first.
    pub windows: Vec<ObservedWindow>,
}

impl AlertState {
    /// The events one window produces.
    fn decide(&self, rule: &AlertRule, c: &ObservedWindow) -> Vec<AlertEvent> {
        if self.last_end.is_some_and(|l| c.end <= l) {
            return Vec::new(); // seen already (a replay)
        }
        let breached = rule.condition.holds(c.value);
        let resolving =
            self.status == AlertStatus::Firing && rule.resolve.counts(c.value, breached);
        let mut out = vec![AlertEvent::Evaluated {
            start: c.start,
            end: c.end,
            value: c.value,
            breached,
            resolving,
        }];
        let for_ms = i64::try_from(rule.for_duration.as_millis()).unwrap_or(i64::MAX);
        match self.status {
            AlertStatus::Inactive | AlertStatus::Resolved => {
                if breached {
                    out.push(AlertEvent::Pending { since: c.start });
                    if c.end.saturating_sub(c.start) >= for_ms {
                        out.push(AlertEvent::Firing {
                            at: c.end,
                            value: c.value,
                        });
                    }
                }
            }
            AlertStatus::Pending => {
                let since = self.since.unwrap_or(c.start);
                if !breached {
                    out.push(AlertEvent::Cleared { at: c.end });
                } else if c.end.saturating_sub(since) >= for_ms {
                    out.push(AlertEvent::Firing {
                        at: c.end,
                        value: c.value,
                    });
                }
            }
            AlertStatus::Firing => {
                let streak = if resolving {
                    self.resolve_streak + 1
                } else {
                    0
                };
                if streak >= rule.resolve.windows() {
                    out.push(AlertEvent::Resolved {
                        at: c.end,
                        value: c.value,
                    });
                }
            }
        }
        out
    }
}

impl Aggregate for AlertState {
    const TYPE: &'static str = "alert";
    type Command = Observe;
    type Event = AlertEvent;
    type Error = std::convert::Infallible;

    fn handle(&self, c: &Observe) -> Result<Vec<AlertEvent>, Self::Error> {
        // Decide window by window on a scratch copy, so each sees the one before.
        let mut state = self.clone();
        let mut out = Vec::new();
        for w in &c.windows {
            let events = state.decide(&c.rule, w);
            for e in &events {
                state.apply(e);
            }
            out.extend(events);
        }
        Ok(out)
    }

    fn apply(&mut self, e: &AlertEvent) {
        match e {
            AlertEvent::Evaluated { end, resolving, .. } => {
                self.last_end = Some(*end);
                if self.status == AlertStatus::Firing {
                    self.resolve_streak = if *resolving {
                        self.resolve_streak + 1
                    } else {
                        0
                    };
                }
            }
            AlertEvent::Pending { since } => {
                self.status = AlertStatus::Pending;
                self.since = Some(*since);
            }
            AlertEvent::Cleared { .. } => {
                self.status = AlertStatus::Inactive;
                self.since = None;
            }
            AlertEvent::Firing { .. } => {
                self.status = AlertStatus::Firing;
                self.resolve_streak = 0;
                self.fired += 1;
            }
            AlertEvent::Resolved { .. } => {
                self.status = AlertStatus::Resolved;
                self.since = None;
                self.resolve_streak = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;
    use weft_eventsourcing::AggregateTest;

    use super::*;
    use crate::alert::rule::{Comparison, Condition, Resolve, RuleAggregate};

    fn rule(for_s: u64, resolve: u32) -> AlertRule {
        AlertRule::new(
            "t",
            "r",
            "m",
            RuleAggregate::Max,
            Condition::new(Comparison::AtLeast, 10.0),
        )
        .for_duration(Duration::from_secs(for_s))
        .resolve(Resolve::after_false(resolve))
    }

    fn win(k: i64, value: Option<f64>) -> ObservedWindow {
        ObservedWindow {
            start: k * 1000,
            end: (k + 1) * 1000,
            value,
        }
    }

    fn obs(rule: &AlertRule, k: i64, value: Option<f64>) -> Observe {
        Observe {
            rule: rule.clone(),
            windows: vec![win(k, value)],
        }
    }

    #[test]
    fn given_pending_when_the_for_duration_is_reached_then_firing() {
        let r = rule(2, 1);
        AggregateTest::<AlertState>::given(&[
            AlertEvent::Evaluated {
                start: 0,
                end: 1000,
                value: Some(10.0),
                breached: true,
                resolving: false,
            },
            AlertEvent::Pending { since: 0 },
        ])
        .when(&obs(&r, 1, Some(12.0)))
        .then_expect_events(&[
            AlertEvent::Evaluated {
                start: 1000,
                end: 2000,
                value: Some(12.0),
                breached: true,
                resolving: false,
            },
            AlertEvent::Firing {
                at: 2000,
                value: Some(12.0),
            },
        ]);
    }

    #[test]
    fn a_window_already_seen_records_nothing() {
        let r = rule(0, 1);
        AggregateTest::<AlertState>::given(&[AlertEvent::Evaluated {
            start: 0,
            end: 1000,
            value: None,
            breached: false,
            resolving: false,
        }])
        .when(&obs(&r, 0, Some(50.0)))
        .then_expect_events(&[]);
    }

    #[test]
    fn no_data_never_fires() {
        let r = rule(0, 1);
        AggregateTest::<AlertState>::given_no_previous_events()
            .when(&obs(&r, 0, None))
            .then_expect_events(&[AlertEvent::Evaluated {
                start: 0,
                end: 1000,
                value: None,
                breached: false,
                resolving: false,
            }]);
    }

    /// Runs `values` (one per 1 s window) through the aggregate; returns the events.
    fn run(r: &AlertRule, values: &[Option<f64>]) -> (AlertState, Vec<AlertEvent>) {
        let mut s = AlertState::default();
        let mut all = Vec::new();
        for (k, v) in values.iter().enumerate() {
            let events = s.handle(&obs(r, k as i64, *v)).unwrap();
            for e in &events {
                s.apply(e);
            }
            all.extend(events);
        }
        (s, all)
    }

    proptest! {
        /// Against a direct model: the alert fires exactly when the condition has held
        /// for `for_s` windows in a row (while not firing), and resolves exactly after
        /// `resolve` consecutive windows without it (while firing).
        #[test]
        fn matches_a_direct_model(
            values in proptest::collection::vec(proptest::option::of(0.0f64..20.0), 0..60),
            for_s in 0u64..4,
            resolve in 1u32..4,
        ) {
            let r = rule(for_s, resolve);
            let (state, events) = run(&r, &values);
            let mut firing = false;
            let mut run_len = 0u64; // consecutive breaching windows
            let mut quiet = 0u32; // consecutive non-breaching windows while firing
            let mut expect = Vec::new();
            for (k, v) in values.iter().enumerate() {
                let end = (k as i64 + 1) * 1000;
                let breach = v.is_some_and(|v| v >= 10.0);
                if firing {
                    quiet = if breach { 0 } else { quiet + 1 };
                    if quiet >= resolve {
                        firing = false;
                        run_len = 0;
                        expect.push(("resolved", end));
                    }
                } else if breach {
                    run_len += 1;
                    // Pending since the first window of the run; fires once the run
                    // spans the for-duration (a window is 1 s).
                    if run_len >= for_s.max(1) {
                        firing = true;
                        quiet = 0;
                        expect.push(("firing", end));
                    }
                } else {
                    run_len = 0;
                }
            }
            let got: Vec<(&str, i64)> = events
                .iter()
                .filter_map(|e| match e {
                    AlertEvent::Firing { at, .. } => Some(("firing", *at)),
                    AlertEvent::Resolved { at, .. } => Some(("resolved", *at)),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(got, expect);
            prop_assert_eq!(state.status == AlertStatus::Firing, firing);
            let evaluated = events
                .iter()
                .filter(|e| matches!(e, AlertEvent::Evaluated { .. }))
                .count();
            prop_assert_eq!(evaluated, values.len());
            // One command with every window decides exactly as one per window.
            let all = Observe {
                rule: r.clone(),
                windows: values.iter().enumerate().map(|(k, v)| win(k as i64, *v)).collect(),
            };
            prop_assert_eq!(AlertState::default().handle(&all).unwrap(), events);
        }
    }
}
