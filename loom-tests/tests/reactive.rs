//! Loom models of `weft-reactive`: the demand counter never lets a publisher deliver
//! more than was requested; the serialized drain delivers exactly the demand of
//! concurrent `request`s without overlapping signals; the bounded buffer's wake-up
//! protocol loses no wake-up (a lost one would leave a `block_on` parked forever, which
//! loom reports as a deadlock); and the multicast buffer conserves every item per
//! subscriber while the blocking subscriber bounds the producer.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use weft_reactive::{
    Demand, Failure, IterPublisher, Overflow, Publisher, Subject, Subscriber, Subscription, channel,
};

/// Two requesters add one unit each while two takers race: exactly two takes succeed,
/// whatever the interleaving; never a third.
#[test]
fn demand_never_oversubscribes() {
    loom::model(|| {
        let demand = Arc::new(Demand::new());
        let adder = {
            let d = Arc::clone(&demand);
            thread::spawn(move || {
                d.add(1);
            })
        };
        let taker = {
            let d = Arc::clone(&demand);
            thread::spawn(move || usize::from(d.take()))
        };
        demand.add(1);
        let mine = usize::from(demand.take());
        adder.join().unwrap();
        let theirs = taker.join().unwrap();
        let rest = usize::from(demand.take()) + usize::from(demand.take());
        assert_eq!(mine + theirs + rest, 2);
        assert_eq!(demand.get(), 0);
    });
}

/// Unbounded demand saturates and is never decremented, under a racing add.
#[test]
fn unbounded_demand_stays_unbounded() {
    loom::model(|| {
        let demand = Arc::new(Demand::new());
        let t = {
            let d = Arc::clone(&demand);
            thread::spawn(move || {
                d.add(Demand::UNBOUNDED);
            })
        };
        demand.add(3);
        assert!(demand.take());
        t.join().unwrap();
        assert!(demand.take());
        assert_eq!(demand.get(), Demand::UNBOUNDED);
    });
}

/// Records deliveries and flags any overlap of two signals.
struct Probe {
    delivered: Arc<AtomicUsize>,
    busy: Arc<AtomicBool>,
    subscription: Arc<std::sync::Mutex<Option<Subscription>>>,
}

impl Subscriber<u32, ()> for Probe {
    fn on_subscribe(&mut self, s: Subscription) {
        *self.subscription.lock().unwrap() = Some(s);
    }
    fn on_next(&mut self, _: u32) {
        assert!(
            !self.busy.swap(true, Ordering::SeqCst),
            "signals overlapped"
        );
        self.delivered.fetch_add(1, Ordering::SeqCst);
        self.busy.store(false, Ordering::SeqCst);
    }
    fn on_error(&mut self, _: Failure<()>) {
        panic!("no error expected");
    }
    fn on_complete(&mut self) {}
}

/// Two threads request one item each from a publisher of three: exactly two are
/// delivered, by whichever thread wins the drain, never concurrently, and none is lost
/// when one thread's request lands while the other is draining.
#[test]
fn drain_delivers_exactly_the_concurrent_demand() {
    loom::model(|| {
        let delivered = Arc::new(AtomicUsize::new(0));
        let slot = Arc::new(std::sync::Mutex::new(None));
        let publisher = IterPublisher::new(vec![Ok(1), Ok(2), Ok(3)].into_iter());
        publisher.subscribe(Probe {
            delivered: Arc::clone(&delivered),
            busy: Arc::new(AtomicBool::new(false)),
            subscription: Arc::clone(&slot),
        });
        let subscription = slot.lock().unwrap().clone().unwrap();
        let t = {
            let s = subscription.clone();
            thread::spawn(move || s.request(1))
        };
        subscription.request(1);
        t.join().unwrap();
        assert_eq!(delivered.load(Ordering::SeqCst), 2);
        assert_eq!(subscription.outstanding(), 0);
        // Ends the unfinished subscription: the publisher drops the subscriber, and with
        // it the subscriber's own handle on the subscription.
        subscription.cancel();
        slot.lock().unwrap().take();
    });
}

/// A sender waits for room in a full buffer while the receiver takes an item: the
/// sender is woken (no lost wake-up) and its item arrives after the first.
#[test]
fn a_waiting_sender_is_always_woken() {
    loom::model(|| {
        let (tx, mut rx) = channel::<u32>(1, Overflow::Block).unwrap();
        tx.try_send(1).unwrap();
        let t = thread::spawn(move || {
            loom::future::block_on(tx.send(2)).unwrap();
        });
        assert_eq!(rx.try_recv(), Ok(1));
        t.join().unwrap();
        assert_eq!(rx.try_recv(), Ok(2));
    });
}

/// A receiver waits on an empty buffer while a sender pushes and then leaves: it gets
/// the item, then the end of the stream; no wake-up is lost.
#[test]
fn a_waiting_receiver_is_always_woken() {
    loom::model(|| {
        use futures_util::StreamExt;
        let (tx, mut rx) = channel::<u32>(1, Overflow::Block).unwrap();
        let t = thread::spawn(move || {
            let first = loom::future::block_on(rx.next());
            let end = loom::future::block_on(rx.next());
            (first, end)
        });
        tx.try_send(7).unwrap();
        drop(tx);
        assert_eq!(t.join().unwrap(), (Some(7), None));
    });
}

/// The multicast buffer: a producer broadcasts two items to a blocking subscriber of
/// capacity 1 and a drop-oldest subscriber of capacity 1, each read by its own thread.
/// The blocking subscriber receives both, in order (the producer waited for it); the
/// dropping one accounts for both as delivered or dropped, in order, whatever the race
/// between its reader's pop and the producer's eviction.
#[test]
fn multicast_conserves_items_per_subscriber() {
    loom::model(|| {
        let subject = Subject::new();
        let blocking = subject.subscribe(1, Overflow::Block).unwrap();
        let mut lossy = subject.subscribe(1, Overflow::DropOldest).unwrap();
        let reader = thread::spawn(move || {
            let a = blocking.recv_blocking();
            let b = blocking.recv_blocking();
            let end = blocking.recv_blocking();
            (a, b, end)
        });
        let lossy_reader = thread::spawn(move || {
            let first = lossy.try_recv().ok();
            (first, lossy)
        });
        subject.send_blocking(0).unwrap();
        subject.send_blocking(1).unwrap();
        subject.complete();
        assert_eq!(reader.join().unwrap(), (Some(0), Some(1), None));
        let (first, mut lossy) = lossy_reader.join().unwrap();
        let mut got: Vec<u32> = first.into_iter().collect();
        while let Ok(i) = lossy.try_recv() {
            got.push(i);
        }
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(got.last(), Some(&1), "the newest item is never evicted");
        assert_eq!(got.len() as u64 + lossy.lagged(), 2);
    });
}
