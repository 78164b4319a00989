//! Scoped jobs that borrow from the caller's stack.
//!
//! # Design
//!
//! `ThreadPool::scope` must not return while a job spawned in it may still run, because
//! those jobs borrow data of the caller's frame. Jobs go into a queue private to the
//! scope, and the pool receives one *ticket* per job: a task that pops one job from that
//! queue and runs it. The scope's owner, once its closure returns, pops and runs jobs
//! from the same queue itself while any remain, then waits for the ones workers are
//! running. So a scope finishes even when every worker is busy (or is itself blocked in
//! a scope): the owner can always do the work alone, and there is no deadlock. Each job
//! is popped exactly once under the queue's lock, whoever pops it.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use weft_sync::{Arc, Condvar, Mutex};

use crate::ThreadPool;
use crate::pool::{Inner, Priority, Task};

type ScopedJob = Box<dyn FnOnce() + Send + 'static>;

/// A scope's private queue and completion count.
struct ScopeState {
    queue: Mutex<VecDeque<ScopedJob>>,
    /// Jobs spawned and not yet finished.
    unfinished: Mutex<usize>,
    done: Condvar,
    /// The first panic of a scoped job, re-raised by `scope`.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

impl ScopeState {
    /// Pops and runs one job if any is queued; `false` if the queue was empty.
    fn run_one(&self) -> bool {
        let job = self.queue.lock().pop_front();
        let Some(job) = job else { return false };
        if let Err(p) = catch_unwind(AssertUnwindSafe(job)) {
            let mut slot = self.panic.lock();
            if slot.is_none() {
                *slot = Some(p);
            }
        }
        let mut unfinished = self.unfinished.lock();
        *unfinished -= 1;
        if *unfinished == 0 {
            self.done.notify_all();
        }
        true
    }
}

/// A scope in which jobs may borrow anything that outlives it; created by
/// [`ThreadPool::scope`].
pub struct Scope<'scope, 'env: 'scope> {
    pool: &'scope ThreadPool,
    state: Arc<ScopeState>,
    /// Invariant in `'scope`, as `std::thread::Scope`.
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

impl<'scope> Scope<'scope, '_> {
    /// Runs `job` on the pool; it may borrow data that outlives the scope.
    pub fn spawn<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'scope,
    {
        let boxed: Box<dyn FnOnce() + Send + 'scope> = Box::new(job);
        // SAFETY: the box only lengthens the lifetime the type system sees. `scope` does
        // not return, and does not unwind past its wait, until `unfinished` is zero, i.e.
        // until this job has run and been dropped; so everything it borrows for 'scope
        // outlives every use of it. Layouts are identical (same trait object, different
        // lifetime bound).
        let boxed: ScopedJob =
            unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 'scope>, ScopedJob>(boxed) };
        *self.state.unfinished.lock() += 1;
        self.state.queue.lock().push_back(boxed);
        let state = Arc::clone(&self.state);
        // The ticket: whoever runs it pops one job (or none, if the owner got there
        // first). Scoped work bypasses the queue bound: refusing it could deadlock the
        // owner, who waits for it anyway.
        Inner::push_unbounded(
            &self.pool.inner,
            Priority::Normal,
            Task::new(move |pool| {
                if pool.is_some() {
                    state.run_one();
                }
            }),
        );
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("unfinished", &*self.state.unfinished.lock())
            .finish()
    }
}

impl ThreadPool {
    /// Runs `f` with a [`Scope`] whose jobs may borrow from the caller; returns when `f`
    /// and every job spawned in the scope have finished. The calling thread helps run
    /// the scope's jobs, so a scope completes even if every worker is busy.
    ///
    /// If `f` or a scoped job panics, the panic resumes here after all jobs finished.
    ///
    /// ```
    /// let pool = weft_workerpool::ThreadPool::builder().max_threads(2).build()?;
    /// let mut parts = vec![0u64; 4];
    /// let data: Vec<u64> = (1..=400).collect();
    /// pool.scope(|s| {
    ///     for (chunk, out) in data.chunks(100).zip(parts.iter_mut()) {
    ///         s.spawn(move || *out = chunk.iter().sum());
    ///     }
    /// });
    /// assert_eq!(parts.iter().sum::<u64>(), 80_200);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scope<'env, F, R>(&self, f: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        let scope = Scope {
            pool: self,
            state: Arc::new(ScopeState {
                queue: Mutex::new(VecDeque::new()),
                unfinished: Mutex::new(0),
                done: Condvar::new(),
                panic: Mutex::new(None),
            }),
            _scope: PhantomData,
            _env: PhantomData,
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
        // Help, then wait: nothing spawned in the scope may outlive this frame.
        while scope.state.run_one() {}
        {
            let mut unfinished = scope.state.unfinished.lock();
            while *unfinished > 0 {
                unfinished = scope.state.done.wait(unfinished);
            }
        }
        if let Some(p) = scope.state.panic.lock().take() {
            resume_unwind(p);
        }
        match result {
            Ok(r) => r,
            Err(p) => resume_unwind(p),
        }
    }
}
