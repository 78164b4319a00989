//! Tokio actors with bounded mailboxes, typed tell/ask, dead letters and OTP-style
//! supervision.
//!
//! An actor owns its state and handles one message at a time on its own tokio task, so
//! the state needs no lock; other code talks to it only through messages. Use actors
//! for long-lived stateful components (a session, a shard of a keyed aggregate, a
//! connection manager) that many tasks talk to, and when failures should be contained
//! and restarted by a supervisor rather than handled at every call site.
//!
//! What sets it apart from the crates it is measured against (ractor, kameo, actix):
//!
//! - **Bounded by default, with backpressure.** Every mailbox has a capacity (64 unless
//!   set) and an [`Overflow`] policy: wait, fail (the message comes back), drop the
//!   oldest or drop the newest.
//! - **Nothing lost silently.** Every message that is not handled (dropped by a policy,
//!   left queued when an actor stops, cancelled by its asker) is counted and delivered
//!   to the system's [`DeadLetters`] sink.
//! - **A priority lane**: stop, kill and supervision signals overtake queued messages.
//! - **No self-ask deadlock**: an actor that asks itself gets [`AskError::SelfAsk`] at
//!   once.
//! - **Clean ask cancellation**: a deadline or a dropped future means the message is
//!   not handled if it is still queued.
//! - **Let it crash**: a panic in a handler is caught and becomes a failure its
//!   supervisor acts on; supervised children keep their mailbox (and every `ActorRef`
//!   to them stays valid) across restarts.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use weft_actor::{Actor, Context, Handler, Overflow, SpawnOptions, System};
//!
//! #[derive(Default)]
//! struct Counter { total: u64 }
//! impl Actor for Counter {}
//!
//! struct Add(u64);
//! impl Handler<Add> for Counter {
//!     type Reply = ();
//!     async fn handle(&mut self, Add(n): Add, _ctx: &mut Context<Self>) {
//!         self.total += n;
//!     }
//! }
//!
//! struct Get;
//! impl Handler<Get> for Counter {
//!     type Reply = u64;
//!     async fn handle(&mut self, _: Get, _ctx: &mut Context<Self>) -> u64 {
//!         self.total
//!     }
//! }
//!
//! let system = System::new();
//! let counter = system.spawn_with(
//!     Counter::default(),
//!     SpawnOptions::new().capacity(16).overflow(Overflow::Wait),
//! )?;
//! for n in 1..=10 {
//!     counter.tell(Add(n)).await?; // waits while the mailbox is full
//! }
//! assert_eq!(counter.ask(Get, Duration::from_secs(1)).await?, 55);
//! # Ok(())
//! # }
//! ```
//!
//! # Contents
//!
//! - [`Actor`] (lifecycle hooks), [`Handler`] (one per message type), [`Context`].
//! - [`ActorRef`]: [`tell`](ActorRef::tell), [`try_tell`](ActorRef::try_tell),
//!   [`ask`](ActorRef::ask), [`stop`](ActorRef::stop), [`kill`](ActorRef::kill),
//!   [`wait`](ActorRef::wait), [`metrics`](ActorRef::metrics) ([`ActorMetrics`]);
//!   [`Recipient`] erases the actor type.
//! - [`System`] ([`SystemBuilder`], [`SpawnOptions`], [`Overflow`]): spawning, the name
//!   registry, process groups, [`shutdown`](System::shutdown) ([`ShutdownMode`]).
//! - [`Supervisor`] ([`SupervisorBuilder`], [`ChildSpec`], [`Strategy`], [`Restart`],
//!   [`Intensity`]) and [`SupervisorRef`]: supervision trees with restart intensity and
//!   escalation; [`Context::watch`] and [`Context::link`] for monitors and links.
//! - [`Router`] ([`RouterBuilder`], [`Routing`]): N supervised workers behind one handle,
//!   round-robin, least-loaded or key-hash routing.
//! - [`DeadLetters`], [`DeadLetter`], [`DeadLetterReason`].
//! - [`StopReason`], [`Terminated`], [`ActorId`]; errors [`SendError`], [`AskError`],
//!   [`Error`].

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod actor;
mod actor_ref;
mod cell;
mod dead_letter;
mod error;
mod mailbox;
mod router;
mod supervisor;
mod system;

pub use actor::{Actor, ActorId, BoxError, Context, Handler, StopReason, Terminated};
pub use actor_ref::{ActorMetrics, ActorRef, Recipient};
pub use dead_letter::{DeadLetter, DeadLetterReason, DeadLetters};
pub use error::{AskError, Error, SendError};
pub use mailbox::Overflow;
pub use router::{Router, RouterBuilder, Routing};
pub use supervisor::{
    ChildSpec, Intensity, Restart, Strategy, Supervisor, SupervisorBuilder, SupervisorRef,
};
pub use system::{DEFAULT_CAPACITY, ShutdownMode, SpawnOptions, System, SystemBuilder};

/// The mailbox, exposed for the loom models in `loom-tests/tests/actor.rs` only.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_api {
    pub use crate::mailbox::Overflow;

    /// The mailbox with `u32` messages and `u32` signals.
    #[derive(Debug)]
    pub struct Mailbox(crate::mailbox::Mailbox<u32, u32>);

    /// What one push did.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Push {
        /// Queued.
        Queued,
        /// Queued; this older message was evicted to the dead letters.
        Evicted(u32),
        /// Dropped to the dead letters (drop-newest).
        Rejected(u32),
        /// Full: handed back.
        Full(u32),
        /// Closed: handed back.
        Closed(u32),
    }

    /// What one receive got.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Recv {
        /// A signal.
        Signal(u32),
        /// A message.
        Message(u32),
    }

    fn push_of(res: Result<crate::mailbox::Pushed<u32>, crate::mailbox::PushError<u32>>) -> Push {
        use crate::mailbox::{PushError, Pushed};
        match res {
            Ok(Pushed::Queued) => Push::Queued,
            Ok(Pushed::Evicted(o)) => Push::Evicted(o),
            Ok(Pushed::Rejected(n)) => Push::Rejected(n),
            Err(PushError::Full(m)) => Push::Full(m),
            Err(PushError::Closed(m)) => Push::Closed(m),
        }
    }

    fn recv_of(item: crate::mailbox::Item<u32, u32>) -> Recv {
        match item {
            crate::mailbox::Item::Signal(s) => Recv::Signal(s),
            crate::mailbox::Item::Message(m) => Recv::Message(m),
        }
    }

    impl Mailbox {
        /// A mailbox of `capacity` with `overflow`.
        pub fn new(capacity: usize, overflow: Overflow) -> Self {
            Mailbox(crate::mailbox::Mailbox::new(capacity, overflow))
        }
        /// Non-waiting push.
        pub fn try_push(&self, m: u32) -> Push {
            push_of(self.0.try_push(m))
        }
        /// Waiting push (`Overflow::Wait` semantics).
        pub async fn push_wait(&self, m: u32) -> Push {
            push_of(self.0.push_wait(&mut Some(m)).await)
        }
        /// Waiting receive; `None` once closed and empty.
        pub async fn recv(&self) -> Option<Recv> {
            self.0.recv().await.map(recv_of)
        }
        /// Priority push; false once terminated.
        pub fn push_signal(&self, s: u32) -> bool {
            self.0.push_signal(s).is_ok()
        }
        /// Non-waiting receive.
        pub fn try_recv(&self) -> Option<Recv> {
            self.0.try_recv().map(recv_of)
        }
        /// Close the user lane.
        pub fn close(&self) {
            self.0.close();
        }
        /// Terminate; returns the queued messages (dead letters).
        pub fn terminate(&self) -> Vec<u32> {
            self.0.terminate().0
        }
    }
}
