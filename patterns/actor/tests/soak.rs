//! Soak: a producer ten times faster than its consumer. Under every overflow policy the
//! mailbox never holds more than its capacity (memory stays bounded) and every message
//! is accounted for: handled + dead-lettered + handed back == sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use weft_actor::{Actor, Context, Handler, Overflow, SendError, SpawnOptions, System};

/// Takes 10 ms per message.
struct Slow {
    handled: Arc<AtomicU64>,
}
impl Actor for Slow {}

struct Item;
impl Handler<Item> for Slow {
    type Reply = ();
    async fn handle(&mut self, _: Item, _: &mut Context<Self>) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        self.handled.fetch_add(1, Ordering::SeqCst);
    }
}

const CAPACITY: usize = 16;
const SENT: u64 = if cfg!(debug_assertions) {
    2_000
} else {
    10_000
};

async fn soak(overflow: Overflow) -> (u64, u64, u64) {
    let system = System::builder().dead_letter_retention(0).build();
    let handled = Arc::new(AtomicU64::new(0));
    let slow = system
        .spawn_with(
            Slow {
                handled: handled.clone(),
            },
            SpawnOptions::new().capacity(CAPACITY).overflow(overflow),
        )
        .unwrap();
    let mut returned = 0;
    let mut max_depth = 0;
    for _ in 0..SENT {
        // One message per millisecond: ten times the consumer's rate.
        tokio::time::sleep(Duration::from_millis(1)).await;
        match slow.tell(Item).await {
            Ok(()) => {}
            Err(SendError::Full(_)) => returned += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
        max_depth = max_depth.max(slow.metrics().mailbox_len);
        assert!(max_depth <= CAPACITY, "mailbox grew past its capacity");
    }
    slow.drain_and_stop();
    slow.wait().await;
    let dead = system.dead_letters().total();
    let handled = handled.load(Ordering::SeqCst);
    assert_eq!(
        handled + dead + returned,
        SENT,
        "{overflow:?}: a message went missing"
    );
    assert_eq!(
        system.dead_letters().discarded(),
        dead,
        "retention 0 keeps none, counts all"
    );
    (handled, dead, returned)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn wait_applies_backpressure_and_loses_nothing() {
    let (handled, dead, returned) = soak(Overflow::Wait).await;
    assert_eq!((handled, dead, returned), (SENT, 0, 0));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fail_hands_the_excess_back() {
    let (handled, dead, returned) = soak(Overflow::Fail).await;
    assert_eq!(dead, 0);
    assert!(
        returned > SENT / 2,
        "most of a 10x overload is refused: {returned}"
    );
    assert!(handled >= SENT / 10, "{handled}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn drop_oldest_dead_letters_the_excess() {
    let (handled, dead, returned) = soak(Overflow::DropOldest).await;
    assert_eq!(returned, 0);
    assert!(dead > SENT / 2, "{dead}");
    assert!(handled >= SENT / 10, "{handled}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn drop_newest_dead_letters_the_excess() {
    let (handled, dead, returned) = soak(Overflow::DropNewest).await;
    assert_eq!(returned, 0);
    assert!(dead > SENT / 2, "{dead}");
    assert!(handled >= SENT / 10, "{handled}");
}
