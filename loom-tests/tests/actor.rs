//! Loom models of `weft-actor`'s mailbox: close racing send loses nothing (every message
//! is delivered, dead-lettered or handed back), a stop signal overtakes queued messages
//! without reordering them, drop policies account for every message, and a sender
//! waiting for capacity is never left asleep (loom reports a deadlock otherwise).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use weft_actor::loom_api::{Mailbox, Overflow, Push, Recv};

/// A producer sends two messages while the consumer closes the mailbox, drains it and
/// terminates it: delivered + dead-lettered + handed back == sent, in any interleaving,
/// and nothing can be queued after termination.
#[test]
fn close_racing_send_loses_nothing() {
    loom::model(|| {
        let mb = Arc::new(Mailbox::new(2, Overflow::Fail));
        let producer = {
            let mb = Arc::clone(&mb);
            thread::spawn(move || {
                let mut returned = Vec::new();
                for m in [1, 2] {
                    match mb.try_push(m) {
                        Push::Queued => {}
                        Push::Closed(m) | Push::Full(m) => returned.push(m),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                returned
            })
        };
        let mut delivered = Vec::new();
        if let Some(Recv::Message(m)) = mb.try_recv() {
            delivered.push(m);
        }
        mb.close();
        while let Some(Recv::Message(m)) = mb.try_recv() {
            delivered.push(m);
        }
        let dead = mb.terminate();
        let returned = producer.join().unwrap();
        let mut all: Vec<u32> = delivered
            .iter()
            .chain(&dead)
            .chain(&returned)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            [1, 2],
            "delivered {delivered:?} dead {dead:?} returned {returned:?}"
        );
        assert!(matches!(mb.try_push(9), Push::Closed(9)));
        assert!(!mb.push_signal(9));
    });
}

/// Messages pushed before a stop signal: whenever the consumer takes the signal, the
/// messages it has not taken yet are still queued, in order, behind nothing else; the
/// messages it took came in FIFO order.
#[test]
fn stop_signal_overtakes_without_reordering() {
    loom::model(|| {
        let mb = Arc::new(Mailbox::new(4, Overflow::Wait));
        let producer = {
            let mb = Arc::clone(&mb);
            thread::spawn(move || {
                assert_eq!(mb.try_push(1), Push::Queued);
                assert_eq!(mb.try_push(2), Push::Queued);
                assert!(mb.push_signal(0));
            })
        };
        let mut taken = Vec::new();
        loop {
            match mb.try_recv() {
                Some(Recv::Signal(0)) => break,
                Some(Recv::Message(m)) => taken.push(m),
                Some(other) => panic!("unexpected {other:?}"),
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        let mut rest = Vec::new();
        while let Some(item) = mb.try_recv() {
            match item {
                Recv::Message(m) => rest.push(m),
                Recv::Signal(s) => panic!("second signal {s}"),
            }
        }
        taken.extend(rest);
        assert_eq!(taken, [1, 2]);
    });
}

/// Two producers race on a one-slot drop-oldest mailbox while the consumer takes one
/// message: handled + evicted + still queued == sent.
#[test]
fn drop_oldest_accounts_for_every_message() {
    loom::model(|| {
        let mb = Arc::new(Mailbox::new(1, Overflow::DropOldest));
        let producers: Vec<_> = [10, 20]
            .into_iter()
            .map(|m| {
                let mb = Arc::clone(&mb);
                thread::spawn(move || match mb.try_push(m) {
                    Push::Queued => None,
                    Push::Evicted(old) => Some(old),
                    other => panic!("unexpected {other:?}"),
                })
            })
            .collect();
        let mut seen: Vec<u32> = Vec::new();
        if let Some(Recv::Message(m)) = mb.try_recv() {
            seen.push(m);
        }
        for p in producers {
            seen.extend(p.join().unwrap());
        }
        seen.extend(mb.terminate());
        seen.sort_unstable();
        assert_eq!(seen, [10, 20]);
    });
}

/// A sender waiting for capacity on a one-slot mailbox is always woken by the
/// consumer's receive (no lost wake-up: loom fails the model on a deadlock), and the
/// two messages arrive in order.
#[test]
fn waiting_sender_is_woken() {
    loom::model(|| {
        let mb = Arc::new(Mailbox::new(1, Overflow::Wait));
        let producer = {
            let mb = Arc::clone(&mb);
            thread::spawn(move || {
                loom::future::block_on(async {
                    assert_eq!(mb.push_wait(1).await, Push::Queued);
                    assert_eq!(mb.push_wait(2).await, Push::Queued);
                });
            })
        };
        let got = loom::future::block_on(async {
            let a = mb.recv().await;
            let b = mb.recv().await;
            (a, b)
        });
        producer.join().unwrap();
        assert_eq!(got, (Some(Recv::Message(1)), Some(Recv::Message(2))));
    });
}

/// Close wakes a sender waiting for capacity: it gets its message back as `Closed`
/// (or had it queued before the close), never sleeps forever.
#[test]
fn close_wakes_a_waiting_sender() {
    loom::model(|| {
        let mb = Arc::new(Mailbox::new(1, Overflow::Wait));
        assert_eq!(mb.try_push(1), Push::Queued);
        let producer = {
            let mb = Arc::clone(&mb);
            thread::spawn(move || loom::future::block_on(mb.push_wait(2)))
        };
        mb.close();
        let pushed = producer.join().unwrap();
        let dead = mb.terminate();
        match pushed {
            Push::Closed(2) => assert_eq!(dead, [1]),
            other => panic!("unexpected {other:?} (the lane was full until closed)"),
        }
    });
}
