//! The Reactive Streams rules suite: the specification's required publisher rules that
//! apply to Rust (demand accounting, serial signals, at-most-once terminal signals,
//! cancellation, error propagation, rule 3.9 and 3.17 demand edge cases), ported from
//! the TCK's `PublisherVerification` and run against every publisher this crate ships:
//!
//! - `IterPublisher` (delivers inside `request`);
//! - `StreamPublisher` over an iterator stream, over a bounded `Receiver`, and over a
//!   `Subject` subscription (delivers from its `Drive` task).
//!
//! Async publishers are driven by a `LocalPool` run until stalled after each step, so
//! "nothing was delivered" is asserted after the publisher had every chance to deliver,
//! without sleeping.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_executor::LocalPool;
use futures_util::task::LocalSpawnExt;
use futures_util::{StreamExt, stream};
use weft_reactive::{
    Demand, Failure, IterPublisher, Overflow, Publisher, StreamPublisher, Subject, Subscriber,
    Subscription, channel,
};

type Err = &'static str;
const BOOM: Err = "boom";

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Subscribed,
    Next(u64),
    Error(Failure<Err>),
    Complete,
}

/// What a probe does on each item, given its subscription and the item.
type OnNext = Box<dyn FnMut(&Subscription, u64) + Send>;

/// Shared record of one subscriber's signals.
#[derive(Default)]
struct Log {
    events: Mutex<Vec<Event>>,
    subscription: Mutex<Option<Subscription>>,
    /// Set while a signal method runs: a second concurrent signal is a rule 1.3 breach.
    busy: AtomicBool,
    overlapped: AtomicBool,
}

impl Log {
    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
    fn items(&self) -> Vec<u64> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Next(i) => Some(i),
                _ => None,
            })
            .collect()
    }
    fn terminals(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Error(_) | Event::Complete))
            .count()
    }
    fn subscription(&self) -> Subscription {
        self.subscription
            .lock()
            .unwrap()
            .clone()
            .expect("on_subscribe was called")
    }
}

/// A subscriber that records every signal and checks they never overlap.
struct Probe {
    log: Arc<Log>,
    on_next: Option<OnNext>,
    /// Alive while the publisher holds the subscriber (rule 3.13).
    _alive: Arc<()>,
}

impl Probe {
    fn new() -> (Probe, Arc<Log>, Arc<()>) {
        let log = Arc::new(Log::default());
        let alive = Arc::new(());
        let probe = Probe {
            log: Arc::clone(&log),
            on_next: None,
            _alive: Arc::clone(&alive),
        };
        (probe, log, alive)
    }

    fn with_on_next(mut self, f: impl FnMut(&Subscription, u64) + Send + 'static) -> Self {
        self.on_next = Some(Box::new(f));
        self
    }

    fn record(&self, e: Event) {
        if self.log.busy.swap(true, Ordering::SeqCst) {
            self.log.overlapped.store(true, Ordering::SeqCst);
        }
        self.log.events.lock().unwrap().push(e);
        self.log.busy.store(false, Ordering::SeqCst);
    }
}

impl Subscriber<u64, Err> for Probe {
    fn on_subscribe(&mut self, s: Subscription) {
        *self.log.subscription.lock().unwrap() = Some(s);
        self.record(Event::Subscribed);
    }
    fn on_next(&mut self, item: u64) {
        self.record(Event::Next(item));
        if let Some(f) = self.on_next.as_mut() {
            let s = self.log.subscription.lock().unwrap().clone().unwrap();
            f(&s, item);
        }
    }
    fn on_error(&mut self, error: Failure<Err>) {
        self.record(Event::Error(error));
    }
    fn on_complete(&mut self) {
        self.record(Event::Complete);
    }
}

/// Runs an async publisher's driver until it can make no more progress.
type Pump = Box<dyn FnMut()>;

/// A publisher of `0..n`, then completion (or, with `fail`, the error `BOOM`), with the
/// pump that drives it, and whether it accepts more than one subscriber.
trait Factory {
    type P: Publisher<Item = u64, Error = Err>;
    const MULTI_SUBSCRIBE: bool;
    fn make(n: u64, fail: bool) -> (Self::P, Pump);
}

fn source(n: u64, fail: bool) -> Vec<Result<u64, Err>> {
    let mut v: Vec<Result<u64, Err>> = (0..n).map(Ok).collect();
    if fail {
        v.push(Err(BOOM));
    }
    v
}

struct Iter;
impl Factory for Iter {
    type P = IterPublisher<std::vec::IntoIter<Result<u64, Err>>>;
    const MULTI_SUBSCRIBE: bool = true;
    fn make(n: u64, fail: bool) -> (Self::P, Pump) {
        (
            IterPublisher::new(source(n, fail).into_iter()),
            Box::new(|| {}),
        )
    }
}

/// Spawns a `StreamPublisher` driver on a local pool; the pump runs the pool.
fn driven<S>(s: S) -> (StreamPublisher<u64, Err>, Pump)
where
    S: futures_core::Stream<Item = Result<u64, Err>> + 'static,
{
    let (publisher, drive) = StreamPublisher::new(s);
    let mut pool = LocalPool::new();
    pool.spawner().spawn_local(drive).unwrap();
    (publisher, Box::new(move || pool.run_until_stalled()))
}

struct FromStream;
impl Factory for FromStream {
    type P = StreamPublisher<u64, Err>;
    const MULTI_SUBSCRIBE: bool = false;
    fn make(n: u64, fail: bool) -> (Self::P, Pump) {
        driven(stream::iter(source(n, fail)))
    }
}

struct FromReceiver;
impl Factory for FromReceiver {
    type P = StreamPublisher<u64, Err>;
    const MULTI_SUBSCRIBE: bool = false;
    fn make(n: u64, fail: bool) -> (Self::P, Pump) {
        let (tx, rx) = channel(n as usize + 1, Overflow::Block).unwrap();
        for i in 0..n {
            tx.try_send(i).unwrap();
        }
        drop(tx);
        let tail = stream::iter(fail.then_some(Err(BOOM)));
        driven(rx.map(Ok).chain(tail))
    }
}

struct FromSubject;
impl Factory for FromSubject {
    type P = StreamPublisher<u64, Err>;
    const MULTI_SUBSCRIBE: bool = false;
    fn make(n: u64, fail: bool) -> (Self::P, Pump) {
        let subject = Subject::new();
        let rx = subject.subscribe(n as usize + 1, Overflow::Block).unwrap();
        for i in 0..n {
            subject.try_send(i).unwrap();
        }
        subject.complete();
        let tail = stream::iter(fail.then_some(Err(BOOM)));
        driven(rx.map(Ok).chain(tail))
    }
}

/// Subscribes a fresh probe, pumps, and returns the log.
fn subscribe<F: Factory>(n: u64, fail: bool) -> (F::P, Pump, Arc<Log>, Arc<()>) {
    let (publisher, mut pump) = F::make(n, fail);
    let (probe, log, alive) = Probe::new();
    publisher.subscribe(probe);
    pump();
    (publisher, pump, log, alive)
}

// Rule 1.9: `on_subscribe` comes first, before any request.
fn on_subscribe_first<F: Factory>() {
    let (_p, _pump, log, _) = subscribe::<F>(3, false);
    assert_eq!(log.events()[0], Event::Subscribed);
}

// Rule 1.1: no item without demand; exactly as many as requested.
fn no_delivery_without_demand<F: Factory>() {
    let (_p, mut pump, log, _) = subscribe::<F>(10, false);
    assert_eq!(log.items(), Vec::<u64>::new());
    log.subscription().request(3);
    pump();
    assert_eq!(log.items(), [0, 1, 2]);
    log.subscription().request(2);
    pump();
    assert_eq!(log.items(), [0, 1, 2, 3, 4]);
    assert_eq!(log.terminals(), 0);
}

// Rule 1.1 with demand added from inside `on_next`: never more than requested.
fn never_more_than_requested<F: Factory>() {
    let (publisher, mut pump) = F::make(100, false);
    let (probe, log, _alive) = Probe::new();
    let probe = probe.with_on_next(|s, i| {
        if i < 9 {
            s.request(1)
        }
    });
    publisher.subscribe(probe);
    log.subscription().request(1);
    pump();
    assert_eq!(log.items(), (0..10).collect::<Vec<_>>());
}

// Rules 1.5 / 1.7: completion after the last item, exactly once, nothing after it.
fn complete_once_then_silence<F: Factory>() {
    let (_p, mut pump, log, alive) = subscribe::<F>(5, false);
    log.subscription().request(10);
    pump();
    log.subscription().request(10);
    pump();
    let events = log.events();
    assert_eq!(log.items(), [0, 1, 2, 3, 4]);
    assert_eq!(events.last(), Some(&Event::Complete));
    assert_eq!(log.terminals(), 1);
    // Rule 3.13: the publisher dropped its reference to the subscriber.
    assert_eq!(Arc::strong_count(&alive), 1);
}

// Rule 1.5 (TCK optional_spec105): an empty publisher completes without any demand.
fn empty_completes_without_demand<F: Factory>() {
    let (_p, _pump, log, _) = subscribe::<F>(0, false);
    assert_eq!(log.events(), [Event::Subscribed, Event::Complete]);
}

// Rule 1.4: a failing source signals `on_error` after the items before it, once.
fn error_propagates<F: Factory>() {
    let (_p, mut pump, log, alive) = subscribe::<F>(3, true);
    log.subscription().request(10);
    pump();
    assert_eq!(
        log.events(),
        [
            Event::Subscribed,
            Event::Next(0),
            Event::Next(1),
            Event::Next(2),
            Event::Error(Failure::Source(BOOM)),
        ]
    );
    assert_eq!(Arc::strong_count(&alive), 1);
}

// Rule 1.4: errors need no demand (items before them still do).
fn error_without_demand<F: Factory>() {
    let (_p, _pump, log, _) = subscribe::<F>(0, true);
    assert_eq!(
        log.events(),
        [Event::Subscribed, Event::Error(Failure::Source(BOOM))]
    );
}

// Rules 3.12 / 3.13 / 3.6: cancel stops delivery, drops the subscriber, later requests
// are no-ops.
fn cancel_stops_delivery<F: Factory>() {
    let (_p, mut pump, log, alive) = subscribe::<F>(10, false);
    log.subscription().request(2);
    pump();
    log.subscription().cancel();
    log.subscription().request(5);
    pump();
    assert_eq!(log.items(), [0, 1]);
    assert_eq!(log.terminals(), 0);
    assert_eq!(Arc::strong_count(&alive), 1);
    assert!(log.subscription().is_cancelled());
}

// Rule 3.9: `request(0)` signals an error and ends the subscription.
fn zero_request_is_an_error<F: Factory>() {
    let (_p, mut pump, log, _) = subscribe::<F>(10, false);
    log.subscription().request(0);
    pump();
    log.subscription().request(5);
    pump();
    assert_eq!(
        log.events(),
        [Event::Subscribed, Event::Error(Failure::ZeroRequest)]
    );
}

// Rule 3.17: demand beyond the maximum saturates as unbounded; nothing overflows.
fn unbounded_demand_saturates<F: Factory>() {
    let (_p, mut pump, log, _) = subscribe::<F>(50, false);
    log.subscription().request(Demand::UNBOUNDED);
    log.subscription().request(Demand::UNBOUNDED);
    log.subscription().request(u64::MAX - 1);
    pump();
    assert_eq!(log.items(), (0..50).collect::<Vec<_>>());
    assert_eq!(log.terminals(), 1);
}

// Rule 3.3: requesting from `on_next` does not recurse (100 000 synchronous hops).
fn reentrant_request_does_not_recurse<F: Factory>() {
    const N: u64 = 100_000;
    let (publisher, mut pump) = F::make(N, false);
    let (probe, log, _alive) = Probe::new();
    publisher.subscribe(probe.with_on_next(|s, _| s.request(1)));
    log.subscription().request(1);
    pump();
    assert_eq!(log.items().len() as u64, N);
    assert_eq!(log.events().last(), Some(&Event::Complete));
}

// Rules 1.1 and 1.3 under concurrent requests from several threads: the total delivered
// equals the total requested, in order, and signals never overlap.
fn concurrent_requests<F: Factory>() {
    let (_p, mut pump, log, _) = subscribe::<F>(1_000, false);
    let subscription = log.subscription();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let sub = subscription.clone();
            s.spawn(move || {
                for _ in 0..200 {
                    sub.request(1);
                }
            });
        }
    });
    pump();
    assert_eq!(log.items(), (0..800).collect::<Vec<_>>());
    assert!(!log.overlapped.load(Ordering::SeqCst), "signals overlapped");
    assert_eq!(subscription.outstanding(), 0);
}

// Rules 1.9 / 1.10 / 2.5: a second subscriber either gets its own full sequence (cold,
// multi-subscribe) or is refused with `on_subscribe` then `AlreadySubscribed`.
fn second_subscriber<F: Factory>() {
    let (publisher, mut pump, first, _) = subscribe::<F>(3, false);
    let (probe, second, _) = Probe::new();
    publisher.subscribe(probe);
    pump();
    if F::MULTI_SUBSCRIBE {
        second.subscription().request(3);
        assert_eq!(second.items(), [0, 1, 2]);
    } else {
        assert_eq!(
            second.events(),
            [Event::Subscribed, Event::Error(Failure::AlreadySubscribed)]
        );
    }
    // The first subscription is unaffected.
    first.subscription().request(3);
    pump();
    assert_eq!(first.items(), [0, 1, 2]);
}

// The bridge to `Stream`: everything arrives in order through a small buffer, then the
// failure; the buffer never holds more than its capacity.
fn bridged_to_stream<F: Factory>() {
    let (publisher, mut pump) = F::make(20, true);
    let mut s = publisher.subscribe_stream(3, Overflow::Block).unwrap();
    let mut got = Vec::new();
    let waker = futures_util::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let end = loop {
        pump();
        assert!(s.metrics().buffered <= 3);
        match s.poll_next_unpin(&mut cx) {
            std::task::Poll::Ready(Some(Ok(i))) => got.push(i),
            std::task::Poll::Ready(Some(Err(e))) => break Some(e),
            std::task::Poll::Ready(None) => break None,
            std::task::Poll::Pending => {}
        }
    };
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(end, Some(Failure::Source(BOOM)));
}

macro_rules! rules_suite {
    ($($module:ident => $factory:ty),* $(,)?) => {$(
        mod $module {
            use super::*;
            #[test] fn rule_1_09_on_subscribe_first() { on_subscribe_first::<$factory>() }
            #[test] fn rule_1_01_no_delivery_without_demand() { no_delivery_without_demand::<$factory>() }
            #[test] fn rule_1_01_never_more_than_requested() { never_more_than_requested::<$factory>() }
            #[test] fn rule_1_05_1_07_complete_once_then_silence() { complete_once_then_silence::<$factory>() }
            #[test] fn rule_1_05_empty_completes_without_demand() { empty_completes_without_demand::<$factory>() }
            #[test] fn rule_1_04_error_propagates() { error_propagates::<$factory>() }
            #[test] fn rule_1_04_error_without_demand() { error_without_demand::<$factory>() }
            #[test] fn rule_3_12_cancel_stops_delivery() { cancel_stops_delivery::<$factory>() }
            #[test] fn rule_3_09_zero_request_is_an_error() { zero_request_is_an_error::<$factory>() }
            #[test] fn rule_3_17_unbounded_demand_saturates() { unbounded_demand_saturates::<$factory>() }
            #[test] fn rule_3_03_reentrant_request_does_not_recurse() { reentrant_request_does_not_recurse::<$factory>() }
            #[test] fn rule_1_03_concurrent_requests() { concurrent_requests::<$factory>() }
            #[test] fn rule_1_10_second_subscriber() { second_subscriber::<$factory>() }
            #[test] fn bridged_to_stream_in_order_with_failure() { bridged_to_stream::<$factory>() }
        }
    )*};
}

rules_suite! {
    iter_publisher => Iter,
    stream_publisher => FromStream,
    stream_publisher_over_receiver => FromReceiver,
    stream_publisher_over_subject => FromSubject,
}
