//! The dead-letter sink: every message an actor will not handle ends up here, counted.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use weft_sync::Mutex;
use weft_sync::atomic::{AtomicU64, Ordering};

use crate::actor::ActorId;

/// Why a message became a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// Evicted from a full mailbox by a newer message ([`Overflow::DropOldest`](crate::Overflow::DropOldest)).
    DropOldest,
    /// Refused by a full mailbox ([`Overflow::DropNewest`](crate::Overflow::DropNewest)).
    DropNewest,
    /// Still queued when the actor stopped.
    Stopped,
    /// Its asker gave up (deadline or dropped future) before the actor took it.
    Cancelled,
}

impl DeadLetterReason {
    const ALL: [DeadLetterReason; 4] = [
        DeadLetterReason::DropOldest,
        DeadLetterReason::DropNewest,
        DeadLetterReason::Stopped,
        DeadLetterReason::Cancelled,
    ];

    fn index(self) -> usize {
        match self {
            DeadLetterReason::DropOldest => 0,
            DeadLetterReason::DropNewest => 1,
            DeadLetterReason::Stopped => 2,
            DeadLetterReason::Cancelled => 3,
        }
    }
}

/// A message that was not handled, with who it was for and why.
pub struct DeadLetter {
    /// The actor it was sent to.
    pub actor: ActorId,
    /// That actor's name, if any.
    pub actor_name: Option<Arc<str>>,
    /// The message's type name.
    pub message_type: &'static str,
    /// Why it was not handled.
    pub reason: DeadLetterReason,
    /// The message itself; see [`DeadLetter::downcast`].
    pub message: Box<dyn Any + Send>,
}

impl DeadLetter {
    /// The message as an `M`, or the dead letter back if it holds another type.
    ///
    /// # Errors
    ///
    /// Returns `self` unchanged when the message is not an `M`.
    pub fn downcast<M: 'static>(self) -> Result<M, DeadLetter> {
        let DeadLetter {
            actor,
            actor_name,
            message_type,
            reason,
            message,
        } = self;
        message
            .downcast::<M>()
            .map(|m| *m)
            .map_err(|message| DeadLetter {
                actor,
                actor_name,
                message_type,
                reason,
                message,
            })
    }
}

impl fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("actor", &self.actor)
            .field("actor_name", &self.actor_name)
            .field("message_type", &self.message_type)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

/// A callback that sees every dead letter as it arrives.
pub(crate) type DeadLetterHook = Arc<dyn Fn(&DeadLetter) + Send + Sync>;

/// The system's dead-letter sink: counts every dead letter by reason, keeps the most
/// recent ones (up to the retention set on the [`SystemBuilder`](crate::SystemBuilder))
/// for inspection, and calls the `on_dead_letter` hook if one is set.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use weft_actor::{Actor, Context, DeadLetterReason, Handler, Overflow, SpawnOptions, System};
/// struct Sink;
/// impl Actor for Sink {}
/// impl Handler<u32> for Sink {
///     type Reply = ();
///     async fn handle(&mut self, _: u32, _: &mut Context<Self>) {}
/// }
/// let system = System::new();
/// let opts = SpawnOptions::new().capacity(1).overflow(Overflow::DropNewest);
/// let sink = system.spawn_with(Sink, opts).unwrap();
/// sink.try_tell(1).unwrap();
/// sink.try_tell(2).unwrap(); // full: 2 is dropped, and lands here
/// let dead = system.dead_letters();
/// assert_eq!(dead.count(DeadLetterReason::DropNewest), 1);
/// let letter = dead.take().pop().unwrap();
/// assert_eq!(letter.downcast::<u32>().unwrap(), 2);
/// # }
/// ```
pub struct DeadLetters {
    counts: [AtomicU64; 4],
    recent: Mutex<VecDeque<DeadLetter>>,
    retention: usize,
    discarded: AtomicU64,
    hook: Option<DeadLetterHook>,
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("total", &self.total())
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    pub(crate) fn new(retention: usize, hook: Option<DeadLetterHook>) -> Self {
        DeadLetters {
            counts: [
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
            ],
            recent: Mutex::new(VecDeque::new()),
            retention,
            discarded: AtomicU64::new(0),
            hook,
        }
    }

    pub(crate) fn deliver(
        &self,
        actor: ActorId,
        actor_name: Option<Arc<str>>,
        message_type: &'static str,
        reason: DeadLetterReason,
        message: Box<dyn Any + Send>,
    ) {
        // SeqCst: tests and callers compare these counts with other counters.
        self.counts[reason.index()].fetch_add(1, Ordering::SeqCst);
        tracing::debug!(%actor, message_type, ?reason, "dead letter");
        let letter = DeadLetter {
            actor,
            actor_name,
            message_type,
            reason,
            message,
        };
        if let Some(hook) = &self.hook {
            hook(&letter);
        }
        if self.retention == 0 {
            self.discarded.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let mut recent = self.recent.lock();
        if recent.len() >= self.retention {
            recent.pop_front();
            self.discarded.fetch_add(1, Ordering::SeqCst);
        }
        recent.push_back(letter);
    }

    /// Dead letters so far with this reason.
    pub fn count(&self, reason: DeadLetterReason) -> u64 {
        self.counts[reason.index()].load(Ordering::SeqCst)
    }

    /// Dead letters so far, all reasons.
    pub fn total(&self) -> u64 {
        DeadLetterReason::ALL.iter().map(|r| self.count(*r)).sum()
    }

    /// Takes the retained dead letters, oldest first.
    pub fn take(&self) -> Vec<DeadLetter> {
        self.recent.lock().drain(..).collect()
    }

    /// Dead letters counted but no longer retained (the retention limit was reached);
    /// the hook saw them all.
    pub fn discarded(&self) -> u64 {
        self.discarded.load(Ordering::SeqCst)
    }
}
