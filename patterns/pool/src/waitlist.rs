//! The fair waiter queue: a FIFO of waiting checkouts, each with a way to wake it and a
//! mailbox for what it is granted.
//!
//! The queue lives inside the pool's mutex and is only touched with the lock held, so it
//! needs no atomics of its own (and loom sees every access through the mutex). Nodes sit
//! in a slab and are linked both ways by index, so pushing at either end, popping the
//! front and removing a cancelled waiter from the middle are all O(1). A node's key is
//! its slab index plus a generation, so a stale key (a waiter already served and its slot
//! reused) can never touch another waiter's node.

use std::task::Waker;
use std::time::Instant;

use slab::Slab;

/// A waiter's place in the queue. Only the queue creates keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    index: usize,
    generation: u64,
}

#[derive(Debug)]
struct Node<G> {
    generation: u64,
    prev: Option<usize>,
    next: Option<usize>,
    /// `true` while the node is in the FIFO (not yet granted).
    linked: bool,
    /// The waiter's task (the blocking API's driver has one too).
    waker: Option<Waker>,
    /// When the waiter gives up, for expiry by the pool's clock.
    deadline: Option<Instant>,
    /// What the waiter was granted, once it was.
    grant: Option<G>,
}

/// A FIFO of waiters, each granted a `G` when its turn comes.
#[derive(Debug)]
pub(crate) struct WaitList<G> {
    nodes: Slab<Node<G>>,
    head: Option<usize>,
    tail: Option<usize>,
    /// Linked (waiting, not yet granted) nodes.
    len: usize,
    next_generation: u64,
}

impl<G> WaitList<G> {
    pub(crate) fn new() -> Self {
        WaitList {
            nodes: Slab::new(),
            head: None,
            tail: None,
            len: 0,
            next_generation: 0,
        }
    }

    /// Waiters not yet granted.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn node(&self, key: Key) -> Option<&Node<G>> {
        self.nodes
            .get(key.index)
            .filter(|n| n.generation == key.generation)
    }

    fn node_mut(&mut self, key: Key) -> Option<&mut Node<G>> {
        self.nodes
            .get_mut(key.index)
            .filter(|n| n.generation == key.generation)
    }

    /// Queues a new waiter at the back (or, for a checkout that lost its turn through no
    /// fault of its own, at the front), giving up at `deadline`.
    pub(crate) fn push(&mut self, deadline: Option<Instant>, front: bool) -> Key {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let index = self.nodes.insert(Node {
            generation,
            prev: None,
            next: None,
            linked: false,
            waker: None,
            deadline,
            grant: None,
        });
        self.link(index, front);
        Key { index, generation }
    }

    fn link(&mut self, index: usize, front: bool) {
        let (prev, next) = if front {
            (None, self.head)
        } else {
            (self.tail, None)
        };
        {
            let node = &mut self.nodes[index];
            node.prev = prev;
            node.next = next;
            node.linked = true;
        }
        match prev {
            Some(p) => self.nodes[p].next = Some(index),
            None => self.head = Some(index),
        }
        match next {
            Some(n) => self.nodes[n].prev = Some(index),
            None => self.tail = Some(index),
        }
        self.len += 1;
    }

    fn unlink(&mut self, index: usize) {
        let (prev, next) = {
            let node = &mut self.nodes[index];
            debug_assert!(node.linked);
            node.linked = false;
            (node.prev.take(), node.next.take())
        };
        match prev {
            Some(p) => self.nodes[p].next = next,
            None => self.head = next,
        }
        match next {
            Some(n) => self.nodes[n].prev = prev,
            None => self.tail = prev,
        }
        self.len -= 1;
    }

    /// Grants `grant` to the first waiter and wakes it; `false` (grant dropped) if no one
    /// waits. Callers check [`is_empty`](Self::is_empty) first.
    pub(crate) fn grant_front(&mut self, grant: G) -> bool {
        let Some(index) = self.head else {
            return false;
        };
        self.grant_at(index, grant);
        true
    }

    /// Grants `grant` to the last waiter and wakes it.
    pub(crate) fn grant_back(&mut self, grant: G) -> bool {
        let Some(index) = self.tail else {
            return false;
        };
        self.grant_at(index, grant);
        true
    }

    fn grant_at(&mut self, index: usize, grant: G) {
        self.unlink(index);
        let node = &mut self.nodes[index];
        node.grant = Some(grant);
        if let Some(waker) = node.waker.take() {
            waker.wake();
        }
    }

    /// Grants every waiting node a value made by `make` (closing the pool), front first.
    pub(crate) fn grant_all(&mut self, mut make: impl FnMut() -> G) {
        while let Some(index) = self.head {
            self.grant_at(index, make());
        }
    }

    /// Grants `make()` to every waiter whose deadline is at or before `now`; returns how
    /// many.
    pub(crate) fn expire(&mut self, now: Instant, mut make: impl FnMut() -> G) -> usize {
        let mut expired = 0;
        let mut cursor = self.head;
        while let Some(index) = cursor {
            cursor = self.nodes[index].next;
            if self.nodes[index].deadline.is_some_and(|d| d <= now) {
                self.grant_at(index, make());
                expired += 1;
            }
        }
        expired
    }

    /// Takes the waiter's grant if it has one; the node is freed then. Otherwise makes
    /// sure `waker` (when given) is the one woken, and returns `None`.
    pub(crate) fn poll_grant(&mut self, key: Key, waker: Option<&Waker>) -> Option<G> {
        let node = self.node_mut(key)?;
        if node.grant.is_some() {
            let grant = node.grant.take();
            self.nodes.remove(key.index);
            return grant;
        }
        if let Some(waker) = waker {
            match &mut node.waker {
                Some(w) if w.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            }
        }
        None
    }

    /// Removes a waiter that gives up, returning what it was granted meanwhile, if
    /// anything (the caller must hand that back to the pool).
    pub(crate) fn remove(&mut self, key: Key) -> Option<G> {
        let linked = self.node(key)?.linked;
        if linked {
            self.unlink(key.index);
        }
        self.nodes.remove(key.index).grant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(list: &mut WaitList<u32>) -> Key {
        list.push(None, false)
    }

    #[test]
    fn grants_go_in_fifo_order_and_front_pushes_jump_the_queue() {
        let mut list = WaitList::new();
        let a = waiter(&mut list);
        let b = waiter(&mut list);
        let c = list.push(None, true);
        assert_eq!(list.len(), 3);
        for g in 0..3 {
            assert!(list.grant_front(g));
        }
        assert!(!list.grant_front(9));
        assert_eq!(list.poll_grant(c, None), Some(0));
        assert_eq!(list.poll_grant(a, None), Some(1));
        assert_eq!(list.poll_grant(b, None), Some(2));
        assert!(list.is_empty());
    }

    #[test]
    fn removing_from_the_middle_keeps_the_order() {
        let mut list = WaitList::new();
        let keys: Vec<_> = (0..4).map(|_| waiter(&mut list)).collect();
        assert_eq!(list.remove(keys[1]), None);
        assert_eq!(list.remove(keys[1]), None, "a stale key touches nothing");
        list.grant_front(10);
        list.grant_back(13);
        list.grant_front(12);
        assert_eq!(list.poll_grant(keys[0], None), Some(10));
        assert_eq!(list.poll_grant(keys[2], None), Some(12));
        assert_eq!(list.poll_grant(keys[3], None), Some(13));
    }

    #[test]
    fn a_removed_granted_waiter_hands_its_grant_back() {
        let mut list = WaitList::new();
        let a = waiter(&mut list);
        list.grant_front(7);
        assert_eq!(list.remove(a), Some(7));
        assert_eq!(list.poll_grant(a, None), None);
    }

    #[test]
    fn stale_keys_never_reach_a_reused_slot() {
        let mut list = WaitList::new();
        let a = waiter(&mut list);
        list.remove(a);
        let b = waiter(&mut list);
        assert_eq!(a.index, b.index, "the slab reuses the slot");
        list.grant_front(5);
        assert_eq!(list.poll_grant(a, None), None);
        assert_eq!(list.poll_grant(b, None), Some(5));
    }

    #[test]
    fn expiry_grants_only_overdue_waiters() {
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(1);
        let mut list = WaitList::new();
        let soon = list.push(Some(now), false);
        let never = list.push(None, false);
        let late = list.push(Some(later), false);
        assert_eq!(list.expire(now, || 1), 1);
        assert_eq!(list.poll_grant(soon, None), Some(1));
        assert_eq!(list.len(), 2);
        assert_eq!(list.expire(later, || 2), 1);
        assert_eq!(list.poll_grant(late, None), Some(2));
        assert_eq!(list.poll_grant(never, None), None);
    }
}
