//! A lock-free LIFO stack with epoch-based memory reclamation.
//!
//! # Design
//!
//! R. Kent Treiber's stack (IBM research report RJ 5118, 1986): a singly linked list whose
//! head is swung by compare-and-swap. `push` links a new node to the current head and
//! CASes the head to it; `pop` reads the head and CASes it to `head.next`.
//!
//! The classic hazard is reclamation. A thread in `pop` may read `head`, be preempted,
//! and later dereference it to find `next`; if another thread popped and freed that node
//! meanwhile, the read is a use-after-free, and if the allocator handed the same address
//! to a new node, the CAS succeeds on a stale `next` (the ABA problem). Epoch-based
//! reclamation (Fraser, "Practical lock-freedom", 2004; crossbeam-epoch) removes both:
//! every operation runs *pinned*, and a popped node is only retired with
//! `defer_destroy`; it is freed once every thread pinned at the time has unpinned. So a
//! node a pinned thread can still see is never freed, and its address cannot be reused
//! while that thread might compare against it. The loom model `stack_pop_races_push`
//! runs pop against push and pop with reclamation enabled.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr;

use crossbeam_epoch::{self as epoch, Atomic, Owned};
use weft_sync::atomic::Ordering;

/// A node: the value (moved out by the pop that unlinks it) and the next link.
struct Node<T> {
    /// The value; `ManuallyDrop` because the popping thread moves it out before the node
    /// itself is reclaimed.
    value: ManuallyDrop<T>,
    /// The node below this one.
    next: Atomic<Node<T>>,
}

/// A lock-free LIFO stack (Treiber) whose popped nodes are reclaimed by crossbeam-epoch.
///
/// # Examples
///
/// ```
/// let s = weft_lockfree::TreiberStack::new();
/// s.push(1);
/// s.push(2);
/// assert_eq!(s.pop(), Some(2));
/// assert_eq!(s.pop(), Some(1));
/// assert_eq!(s.pop(), None);
/// ```
pub struct TreiberStack<T> {
    /// The top of the stack, null when empty.
    head: Atomic<Node<T>>,
}

// SAFETY: values move in and out of the stack across threads (`T: Send`), and are never
// shared: the pop that wins the CAS on a node is the only thread to read its value.
unsafe impl<T: Send> Send for TreiberStack<T> {}
// SAFETY: see above.
unsafe impl<T: Send> Sync for TreiberStack<T> {}

impl<T> TreiberStack<T> {
    /// Creates an empty stack.
    ///
    /// ```
    /// let s = weft_lockfree::TreiberStack::<u8>::new();
    /// assert!(s.is_empty());
    /// ```
    pub fn new() -> Self {
        TreiberStack {
            head: Atomic::null(),
        }
    }

    /// Pushes `value` on top.
    ///
    /// ```
    /// let s = weft_lockfree::TreiberStack::new();
    /// s.push("x");
    /// assert!(!s.is_empty());
    /// ```
    pub fn push(&self, value: T) {
        let mut node = Owned::new(Node {
            value: ManuallyDrop::new(value),
            next: Atomic::null(),
        });
        let guard = epoch::pin();
        // Relaxed load: we only need some recent head to link to; the CAS checks it.
        let mut head = self.head.load(Ordering::Relaxed, &guard);
        loop {
            node.next.store(head, Ordering::Relaxed);
            // Release on success: the node's initialisation (value and next) happens
            // before any pop that acquires this head.
            match self.head.compare_exchange(
                head,
                node,
                Ordering::Release,
                Ordering::Relaxed,
                &guard,
            ) {
                Ok(_) => return,
                Err(e) => {
                    head = e.current;
                    node = e.new;
                }
            }
        }
    }

    /// Pops the top value, or `None` if the stack is empty.
    ///
    /// ```
    /// let s = weft_lockfree::TreiberStack::new();
    /// s.push(3);
    /// assert_eq!(s.pop(), Some(3));
    /// ```
    pub fn pop(&self) -> Option<T> {
        let guard = epoch::pin();
        loop {
            // Acquire: pairs with the Release CAS of the push that installed this head, so
            // the node's fields are initialised when we read them.
            let head = self.head.load(Ordering::Acquire, &guard);
            // SAFETY: `head` was loaded while pinned, so it is null or points to a node
            // that is not reclaimed before `guard` drops.
            let node = unsafe { head.as_ref() }?;
            let next = node.next.load(Ordering::Relaxed, &guard);
            // Relaxed on success: the Acquire load above already synchronised with the
            // node's push; the CAS only has to make us its single popper.
            if self
                .head
                .compare_exchange(head, next, Ordering::Relaxed, Ordering::Relaxed, &guard)
                .is_ok()
            {
                // SAFETY: the CAS unlinked the node, so no later operation can reach it,
                // and we are the only thread that unlinked it: we move the value out once
                // (the node holds it in `ManuallyDrop`) and retire the node, which epoch
                // frees after every thread that might still read it has unpinned.
                unsafe {
                    let value = ptr::read(&*node.value);
                    guard.defer_destroy(head);
                    return Some(value);
                }
            }
        }
    }

    /// `true` if the stack was empty at the moment of the call.
    ///
    /// ```
    /// assert!(weft_lockfree::TreiberStack::<()>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        let guard = epoch::pin();
        self.head.load(Ordering::Acquire, &guard).is_null()
    }
}

impl<T> Default for TreiberStack<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for TreiberStack<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other thread can reach the stack, so the nodes can be
        // freed at once without pinning, and each remaining value is dropped exactly once.
        unsafe {
            let guard = epoch::unprotected();
            let mut cur = self.head.load(Ordering::Relaxed, guard);
            while let Some(node) = cur.as_ref() {
                let next = node.next.load(Ordering::Relaxed, guard);
                let mut owned = cur.into_owned();
                ManuallyDrop::drop(&mut owned.value);
                drop(owned);
                cur = next;
            }
        }
    }
}

impl<T> fmt::Debug for TreiberStack<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreiberStack")
            .field("is_empty", &self.is_empty())
            .finish_non_exhaustive()
    }
}
