//! The global capacity of a keyed pool: a fair counting semaphore over live objects,
//! shared by every key's sub-pool.
//!
//! A sub-pool takes one unit before creating an object and gives it back when the object
//! is closed (or the creation fails). A creation that finds no unit waits in the budget's
//! FIFO queue. Lock order: a sub-pool may take the budget's lock while holding its own;
//! the budget never calls back into a pool, so no cycle exists.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use weft_sync::Mutex;

use crate::waitlist::{Key, WaitList};

#[derive(Debug)]
struct State {
    /// Units held: live objects plus creations in progress, over all keys.
    used: usize,
    max: usize,
    /// Creations waiting for a unit; a grant hands one over (`used` unchanged).
    waiters: WaitList<()>,
}

/// A keyed pool's cap on objects over all keys.
#[derive(Debug)]
pub(crate) struct Budget {
    state: Mutex<State>,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Self {
        Budget {
            state: Mutex::new(State {
                used: 0,
                max,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Takes a unit if one is free and nobody waits for one (no barging).
    pub(crate) fn try_take(&self) -> bool {
        let mut s = self.state.lock();
        if s.waiters.is_empty() && s.used < s.max {
            s.used += 1;
            true
        } else {
            false
        }
    }

    /// Waits for a unit, in FIFO order. Dropping the future gives back a unit granted
    /// meanwhile.
    pub(crate) fn take(&self) -> Take<'_> {
        Take {
            budget: self,
            key: None,
        }
    }

    /// Gives a unit back: to the first waiter, or to the free count.
    pub(crate) fn give(&self) {
        Self::give_locked(&mut self.state.lock());
    }

    fn give_locked(s: &mut State) {
        if s.waiters.is_empty() {
            s.used -= 1;
        } else {
            s.waiters.grant_front(());
        }
    }

    /// Whether creations are waiting for a unit.
    pub(crate) fn has_waiters(&self) -> bool {
        !self.state.lock().waiters.is_empty()
    }

    /// Units held and the cap.
    pub(crate) fn usage(&self) -> (usize, usize, usize) {
        let s = self.state.lock();
        (s.used, s.max, s.waiters.len())
    }
}

/// The future of [`Budget::take`].
#[derive(Debug)]
pub(crate) struct Take<'a> {
    budget: &'a Budget,
    key: Option<Key>,
}

impl Future for Take<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let budget = self.budget;
        let mut s = budget.state.lock();
        let key = match self.key {
            Some(key) => key,
            None => {
                if s.waiters.is_empty() && s.used < s.max {
                    s.used += 1;
                    return Poll::Ready(());
                }
                let key = s.waiters.push(None, false);
                self.key = Some(key);
                key
            }
        };
        if s.waiters.poll_grant(key, Some(cx.waker())).is_some() {
            self.key = None;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for Take<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut s = self.budget.state.lock();
            if s.waiters.remove(key).is_some() {
                Budget::give_locked(&mut s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn poll(f: std::pin::Pin<&mut Take<'_>>) -> Poll<()> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn units_are_handed_over_in_fifo_order_without_barging() {
        let budget = Budget::new(1);
        assert!(budget.try_take());
        let mut first = pin!(budget.take());
        let mut second = pin!(budget.take());
        assert!(poll(first.as_mut()).is_pending());
        assert!(poll(second.as_mut()).is_pending());
        budget.give(); // to `first`, not to a newcomer
        assert!(!budget.try_take());
        assert!(poll(second.as_mut()).is_pending());
        assert!(poll(first.as_mut()).is_ready());
        assert_eq!(budget.usage(), (1, 1, 1));
    }

    #[test]
    fn a_cancelled_waiter_passes_its_unit_on() {
        let budget = Budget::new(1);
        assert!(budget.try_take());
        let mut second = Box::pin(budget.take());
        {
            let mut first = Box::pin(budget.take());
            assert!(poll(first.as_mut()).is_pending());
            assert!(poll(second.as_mut()).is_pending());
            budget.give(); // granted to `first`, which is dropped unpolled
        }
        assert!(poll(second.as_mut()).is_ready());
        assert_eq!(budget.usage(), (1, 1, 0));
        budget.give();
        assert_eq!(budget.usage(), (0, 1, 0));
    }
}
