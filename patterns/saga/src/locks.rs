//! Per-instance serialisation: one async lock per saga instance, created on demand and
//! removed when nobody holds or waits for it.
//!
//! # Design
//!
//! The table maps an instance id to an `Arc<tokio::sync::Mutex<()>>`. Every acquirer
//! clones the entry's `Arc` *under the table lock*, then waits on the async mutex
//! outside it (tokio's mutex is fair: waiters are served in arrival order). The clone is
//! owned by an [`Entry`] whose drop, again under the table lock, removes the table's
//! entry if the table's own `Arc` is the last one left. Because clones are only taken
//! under the table lock, a strong count of 1 seen under it means no holder and no waiter
//! exists or can appear before the removal: an idle instance costs nothing, and two
//! acquirers of one id can never end up with two different mutexes.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use weft_sync::Mutex;

type Slot = Arc<AsyncMutex<()>>;

#[derive(Debug, Default)]
pub(crate) struct Locks {
    table: Mutex<HashMap<String, Slot>>,
}

/// A claim on an instance's slot (held while waiting and while holding).
#[derive(Debug)]
struct Entry<'a> {
    locks: &'a Locks,
    id: String,
    slot: Option<Slot>,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        let mut table = self.locks.table.lock();
        drop(self.slot.take());
        if table
            .get(&self.id)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            table.remove(&self.id);
        }
    }
}

/// Holds an instance exclusively until dropped.
#[derive(Debug)]
pub(crate) struct InstanceGuard<'a> {
    // Field order matters: the mutex is released before the entry's clean-up runs.
    _guard: OwnedMutexGuard<()>,
    _entry: Entry<'a>,
}

impl Locks {
    /// Waits until no one else holds instance `id`, then holds it.
    pub(crate) async fn lock(&self, id: &str) -> InstanceGuard<'_> {
        let slot = Arc::clone(
            self.table
                .lock()
                .entry(id.to_owned())
                .or_insert_with(|| Arc::new(AsyncMutex::new(()))),
        );
        let entry = Entry {
            locks: self,
            id: id.to_owned(),
            slot: Some(Arc::clone(&slot)),
        };
        let guard = slot.lock_owned().await;
        InstanceGuard {
            _guard: guard,
            _entry: entry,
        }
    }

    /// How many instances are held or waited for.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_holder_per_id_and_idle_ids_are_removed() {
        let locks = Arc::new(Locks::default());
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (locks, inside) = (Arc::clone(&locks), Arc::clone(&inside));
                tokio::spawn(async move {
                    for _ in 0..50 {
                        let _g = locks.lock("a").await;
                        let n = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(n, 0, "two holders of one instance");
                        tokio::task::yield_now().await;
                        inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(locks.len(), 0);
        let a = locks.lock("a").await;
        let b = locks.lock("b").await; // other ids are independent
        assert_eq!(locks.len(), 2);
        drop((a, b));
        assert_eq!(locks.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_leaves_nothing_behind() {
        let locks = Locks::default();
        let g = locks.lock("a").await;
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(10), locks.lock("a")).await;
        assert!(waited.is_err());
        drop(g);
        assert_eq!(locks.len(), 0);
    }
}
