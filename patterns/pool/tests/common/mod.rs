//! A scriptable manager shared by the integration tests.

#![allow(dead_code)] // each test file uses a different part of it

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use weft_pool::{Manager, Metrics, RecycleError};

/// A pooled thing: its creation number, and flags the test can flip while holding it.
#[derive(Debug)]
pub(crate) struct Thing {
    pub(crate) id: usize,
    /// `has_broken` reports this on return.
    pub(crate) broken: bool,
    /// `recycle` rejects the object when set.
    pub(crate) stale: bool,
    /// Set by hooks.
    pub(crate) tag: u32,
}

/// Counters and switches the test controls.
#[derive(Debug, Default)]
pub(crate) struct Script {
    /// Creations started.
    pub(crate) creates: AtomicUsize,
    /// The next this many creations fail.
    pub(crate) fail_next: AtomicUsize,
    /// Every creation fails while set.
    pub(crate) fail_all: AtomicBool,
    /// Creation sleeps this many milliseconds on tokio's clock first.
    pub(crate) create_delay_ms: AtomicU32,
    /// Recycle sleeps this many milliseconds on tokio's clock first.
    pub(crate) recycle_delay_ms: AtomicU32,
    /// Recycle calls.
    pub(crate) recycles: AtomicUsize,
    /// Objects dropped (closed), counted by the object's drop.
    pub(crate) dropped: Arc<AtomicUsize>,
}

/// The manager: creates `Thing`s as the script says.
#[derive(Debug, Clone, Default)]
pub(crate) struct Things(pub(crate) Arc<Script>);

/// An error a test can recognise.
#[derive(Debug, thiserror::Error)]
#[error("backend down (attempt {0})")]
pub(crate) struct Down(pub(crate) usize);

/// Counts drops, so tests can see objects being closed.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub(crate) thing: Thing,
    dropped: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl std::ops::Deref for Tracked {
    type Target = Thing;
    fn deref(&self) -> &Thing {
        &self.thing
    }
}

impl std::ops::DerefMut for Tracked {
    fn deref_mut(&mut self) -> &mut Thing {
        &mut self.thing
    }
}

impl Manager for Things {
    type Object = Tracked;
    type Error = Down;

    async fn create(&self) -> Result<Tracked, Down> {
        let n = self.0.creates.fetch_add(1, Ordering::SeqCst);
        let delay = self.0.create_delay_ms.load(Ordering::SeqCst);
        #[cfg(feature = "tokio")]
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
        }
        let _ = delay;
        if self.0.fail_all.load(Ordering::SeqCst)
            || self
                .0
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(Down(n));
        }
        Ok(Tracked {
            thing: Thing {
                id: n,
                broken: false,
                stale: false,
                tag: 0,
            },
            dropped: Arc::clone(&self.0.dropped),
        })
    }

    async fn recycle(&self, obj: &mut Tracked, _: &Metrics) -> Result<(), RecycleError<Down>> {
        self.0.recycles.fetch_add(1, Ordering::SeqCst);
        let delay = self.0.recycle_delay_ms.load(Ordering::SeqCst);
        #[cfg(feature = "tokio")]
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
        }
        let _ = delay;
        if obj.stale {
            return Err(RecycleError::Message("stale".into()));
        }
        Ok(())
    }

    fn has_broken(&self, obj: &mut Tracked) -> bool {
        obj.broken
    }
}

impl Things {
    pub(crate) fn new() -> (Things, Arc<Script>) {
        let script = Arc::new(Script::default());
        (Things(Arc::clone(&script)), script)
    }
}

/// The invariants every status snapshot must satisfy.
pub(crate) fn check(s: &weft_pool::Status) {
    assert_eq!(s.idle + s.in_use, s.size, "idle + in_use == size: {s:?}");
    assert!(
        s.size + s.creating <= s.max_size,
        "size + creating <= max: {s:?}"
    );
    assert!(
        s.waiters == 0 || s.idle == 0,
        "a waiter is stranded while an object is idle: {s:?}"
    );
}
