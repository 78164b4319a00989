//! Given/when/then tests of aggregates, without a store.

use std::fmt;

use crate::Aggregate;

/// A given/when/then test of an aggregate's decision: *given* past events, *when* a
/// command is handled, *then* expect these events (or an error).
///
/// ```
/// use weft_eventsourcing::{Aggregate, AggregateTest, DomainEvent};
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Light { on: bool }
/// #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// enum Event { SwitchedOn, SwitchedOff }
/// impl DomainEvent for Event {
///     fn event_type(&self) -> &'static str { "Switched" }
/// }
/// impl Aggregate for Light {
///     const TYPE: &'static str = "light";
///     type Command = bool;
///     type Event = Event;
///     type Error = String;
///     fn handle(&self, on: &bool) -> Result<Vec<Event>, String> {
///         match (self.on, *on) {
///             (false, true) => Ok(vec![Event::SwitchedOn]),
///             (true, false) => Ok(vec![Event::SwitchedOff]),
///             _ => Err(format!("already {}", if self.on { "on" } else { "off" })),
///         }
///     }
///     fn apply(&mut self, e: &Event) { self.on = matches!(e, Event::SwitchedOn); }
/// }
///
/// AggregateTest::<Light>::given_no_previous_events().when(&true).then_expect_events(&[Event::SwitchedOn]);
/// AggregateTest::<Light>::given(&[Event::SwitchedOn]).when(&true).then_expect_error("already on");
/// ```
pub struct AggregateTest<A: Aggregate> {
    state: A,
}

/// The outcome of [`AggregateTest::when`], to check with a `then_*` method.
pub struct AggregateResult<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> AggregateTest<A> {
    /// Starts from the default state.
    pub fn given_no_previous_events() -> Self {
        AggregateTest {
            state: A::default(),
        }
    }

    /// Starts from the state these events fold to.
    pub fn given(events: &[A::Event]) -> Self {
        let mut state = A::default();
        for e in events {
            state.apply(e);
        }
        AggregateTest { state }
    }

    /// Handles `command` in the given state.
    pub fn when(self, command: &A::Command) -> AggregateResult<A> {
        AggregateResult {
            result: self.state.handle(command),
        }
    }
}

impl<A: Aggregate> AggregateResult<A> {
    /// Asserts the command produced exactly `expected`.
    ///
    /// # Panics
    ///
    /// If it produced other events or was rejected (this is a test assertion).
    pub fn then_expect_events(self, expected: &[A::Event])
    where
        A::Event: PartialEq + fmt::Debug,
    {
        match self.result {
            Ok(events) => assert_eq!(events, expected, "the command produced other events"),
            Err(e) => panic!("expected events {expected:?}, but the command was rejected: {e}"),
        }
    }

    /// Asserts the command was rejected with an error displaying as `message`.
    ///
    /// # Panics
    ///
    /// If it succeeded or failed with another message (this is a test assertion).
    pub fn then_expect_error(self, message: &str)
    where
        A::Event: fmt::Debug,
    {
        match self.result {
            Ok(events) => panic!("expected error `{message}`, but the command produced {events:?}"),
            Err(e) => assert_eq!(e.to_string(), message, "the command failed differently"),
        }
    }

    /// The raw result, for checks the `then_*` methods do not cover.
    pub fn into_result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}

impl<A: Aggregate + fmt::Debug> fmt::Debug for AggregateTest<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateTest")
            .field("state", &self.state)
            .finish()
    }
}

impl<A: Aggregate> fmt::Debug for AggregateResult<A>
where
    A::Event: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateResult")
            .field("result", &self.result)
            .finish()
    }
}
