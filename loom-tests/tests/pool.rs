//! Loom models of `weft-pool`: checkouts, returns and cancellations (mid-wait and
//! mid-creation) from two or three threads never exceed `max_size`, never deadlock (no
//! waiter sleeps through the return that should wake it), and never lose an object.
#![cfg(loom)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Waker};

use loom::sync::Arc;
use loom::thread;
use weft_pool::{Manager, Pool, Status};

/// Counts objects created and dropped. Plain `std` atomics on purpose: they are the
/// test's bookkeeping, not state under test, and must add no branches to the models.
#[derive(Debug, Default)]
struct Books {
    created: AtomicUsize,
    dropped: AtomicUsize,
}

#[derive(Debug)]
struct Obj(std::sync::Arc<Books>);

impl Drop for Obj {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// Creates objects, at once or (with `yields`) after one `Pending`, so that a checkout
/// can be cancelled in the middle of a creation.
struct Objs {
    books: std::sync::Arc<Books>,
    yields: bool,
}

impl Manager for Objs {
    type Object = Obj;
    type Error = std::io::Error;

    async fn create(&self) -> Result<Obj, std::io::Error> {
        if self.yields {
            let mut yielded = false;
            std::future::poll_fn(|cx| {
                if std::mem::replace(&mut yielded, true) {
                    return std::task::Poll::Ready(());
                }
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            })
            .await;
        }
        self.books.created.fetch_add(1, Ordering::SeqCst);
        Ok(Obj(std::sync::Arc::clone(&self.books)))
    }
}

fn pool(max_size: usize) -> (Pool<Objs>, std::sync::Arc<Books>) {
    build(max_size, false)
}

fn build(max_size: usize, yields: bool) -> (Pool<Objs>, std::sync::Arc<Books>) {
    let books = std::sync::Arc::new(Books::default());
    let objs = Objs {
        books: std::sync::Arc::clone(&books),
        yields,
    };
    let pool = Pool::builder(objs).max_size(max_size).build().unwrap();
    (pool, books)
}

/// Spawns a thread that polls an async checkout once (it may be served, queue, or start
/// a creation) and then drops it: a cancellation at whatever point it reached.
fn spawn_canceller(pool: &Pool<Objs>) -> thread::JoinHandle<()> {
    let pool = pool.clone();
    thread::spawn(move || {
        let mut cancelled = Box::pin(pool.get());
        let _ = cancelled
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
    })
}

/// The end state: nothing in use or waiting, sizes consistent, every object created is
/// in the pool or was dropped.
fn settled(s: &Status, books: &Books) {
    assert_eq!((s.in_use, s.waiters, s.creating), (0, 0, 0), "{s:?}");
    assert_eq!(s.idle, s.size, "{s:?}");
    assert!(s.size <= s.max_size, "{s:?}");
    let created = books.created.load(Ordering::SeqCst);
    let dropped = books.dropped.load(Ordering::SeqCst);
    assert_eq!(created, s.size + dropped, "an object was lost: {s:?}");
}

/// The main thread holds the only object while two threads race it: one polls an async
/// checkout once (so it queues, or finds the object already returned) and then cancels
/// it, the other checks out blocking and returns. Main then returns its object. Whatever
/// the interleaving: a cancelled checkout that was handed the object passes it on, the
/// blocking one is served (no deadlock), a last checkout still succeeds, and the books
/// balance.
#[test]
fn checkout_return_cancel() {
    loom::model(|| {
        let (pool, books) = pool(1);
        let held = pool.get_blocking().unwrap();
        let canceller = spawn_canceller(&pool);
        let other = {
            let pool = pool.clone();
            thread::spawn(move || drop(pool.get_blocking().unwrap()))
        };
        drop(held);
        canceller.join().unwrap();
        other.join().unwrap();
        drop(pool.get_blocking().unwrap());
        settled(&pool.status(), &books);
    });
}

/// A checkout polled once, so that it may hold the only slot in the middle of creating
/// an object, is cancelled while another thread checks out blocking. Whatever the
/// interleaving, the cancelled creation gives its slot back and the other checkout is
/// served (no deadlock), and nothing is lost.
#[test]
fn cancel_mid_creation_frees_the_slot() {
    loom::model(|| {
        let (pool, books) = build(1, true);
        let canceller = spawn_canceller(&pool);
        drop(pool.get_blocking().unwrap());
        canceller.join().unwrap();
        settled(&pool.status(), &books);
    });
}

/// Three threads check out and return on a pool of 2, counting how many objects are out
/// at once: never more than 2, and all three finish (the one that waits is woken by a
/// return).
#[test]
fn never_more_than_max_size_and_no_lost_wakeup() {
    loom::model(|| {
        let (pool, books) = pool(2);
        let out = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let worker = |pool: Pool<Objs>, out: Arc<loom::sync::atomic::AtomicUsize>| {
            move || {
                let obj = pool.get_blocking().unwrap();
                let now = out.fetch_add(1, loom::sync::atomic::Ordering::SeqCst) + 1;
                assert!(now <= 2, "{now} objects out of a pool of 2");
                out.fetch_sub(1, loom::sync::atomic::Ordering::SeqCst);
                drop(obj);
            }
        };
        let threads: Vec<_> = (0..2)
            .map(|_| thread::spawn(worker(pool.clone(), Arc::clone(&out))))
            .collect();
        worker(pool.clone(), Arc::clone(&out))();
        for t in threads {
            t.join().unwrap();
        }
        settled(&pool.status(), &books);
    });
}
