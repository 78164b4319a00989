//! Loom models of `weft-cqrs`'s per-key lock table: commands on one key never overlap,
//! the key is handed off without being lost, a waiter giving up while being granted
//! passes the key on, and an idle key leaves no entry behind.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use weft_cqrs::loom_api::KeyLocks;

/// Takes `key`, waiting (yielding to loom's scheduler) for a hand-off if it is held.
fn lock(locks: &KeyLocks, key: &str) {
    if let Some(ticket) = locks.acquire(key) {
        while !ticket.granted() {
            thread::yield_now();
        }
    }
}

/// Two threads and the main thread each run a "command" on the same key: at most one is
/// ever inside, each gets its turn (loom reports a deadlock if a hand-off were lost),
/// and the table is empty afterwards.
#[test]
fn one_key_mutual_exclusion_and_cleanup() {
    loom::model(|| {
        let locks = Arc::new(KeyLocks::new(1));
        let inside = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let run = |locks: &KeyLocks, inside: &AtomicUsize, done: &AtomicUsize| {
            lock(locks, "k");
            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
            inside.fetch_sub(1, Ordering::SeqCst);
            done.fetch_add(1, Ordering::SeqCst);
            locks.release("k");
        };
        let other = {
            let (locks, inside, done) =
                (Arc::clone(&locks), Arc::clone(&inside), Arc::clone(&done));
            thread::spawn(move || run(&locks, &inside, &done))
        };
        run(&locks, &inside, &done);
        other.join().unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 2);
        assert_eq!(locks.held(), 0, "an idle key left an entry");
    });
}

/// A queued waiter gives up exactly while the holder releases: either the release skips
/// the cancelled ticket, or the ticket was granted first and the cancel passes the key
/// on. Either way the key ends free, not held by nobody forever.
#[test]
fn cancel_racing_release_never_loses_the_key() {
    loom::model(|| {
        let locks = Arc::new(KeyLocks::new(1));
        assert!(locks.acquire("k").is_none()); // main holds the key
        let ticket = locks.acquire("k").expect("queued behind main");
        let releaser = {
            let locks = Arc::clone(&locks);
            thread::spawn(move || locks.release("k"))
        };
        locks.cancel("k", &ticket);
        releaser.join().unwrap();
        assert_eq!(locks.held(), 0);
        assert!(locks.acquire("k").is_none(), "the key is free again");
    });
}

/// Two keys in different shards never wait for each other.
#[test]
fn different_keys_are_independent() {
    loom::model(|| {
        let locks = Arc::new(KeyLocks::new(2));
        assert!(locks.acquire("a").is_none());
        let t = {
            let locks = Arc::clone(&locks);
            thread::spawn(move || {
                assert!(locks.acquire("b").is_none(), "b waited for a");
                locks.release("b");
            })
        };
        t.join().unwrap();
        locks.release("a");
        assert_eq!(locks.held(), 0);
    });
}
