//! Fork/join: `ThreadPool::join` runs two closures, potentially in parallel, and
//! returns both results.
//!
//! # Design
//!
//! Called on one of the pool's workers, `join(a, b)` allocates nothing: `b` is wrapped
//! in a [`StackJob`] on the caller's stack and a pointer to it is pushed on the worker's
//! own LIFO deque of fork/join work, where idle workers can steal it; the worker then
//! runs `a` itself. Afterwards it pops its deque: if `b` is still there (nobody stole
//! it: the common case once every worker is busy), it runs `b` inline, and the fork cost
//! a push and a pop. If `b` was stolen, the worker does not block: it runs other work
//! (its own deque first, then the queues, then other workers' deques) until the thief
//! sets `b`'s [`Latch`], and parks only when there is none to run. This is rayon's
//! design; the stack job may be referenced from another thread only while its owner
//! waits for the latch, which is what makes the borrowed closures sound.
//!
//! Called from any other thread, `join` sends `b` to the pool as a scoped job and runs
//! `a` on the calling thread (see [`ThreadPool::scope`]).
//!
//! Fork/join jobs bypass the queue bound and are not counted as queued jobs: their
//! owner always finishes them itself if nobody steals them, so they cannot be lost,
//! and an immediate shutdown never cancels them (their owner is waiting for them). A
//! fork wakes a parked worker after a relaxed look at the idle count, without the
//! fence of the submission protocol: like rayon, a fork can miss a worker that is
//! falling asleep at that instant, which costs that fork's parallelism, never the fork.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::thread::Result as PanicResult;

use weft_sync::UnsafeCell;
use weft_sync::atomic::{AtomicU8, Ordering};

use crate::ThreadPool;
use crate::pool::{BriefWait, Inner, JobRef, Priority, Task, WorkerCtx};

/// The job has not finished; its owner is not parked.
const UNSET: u8 = 0;
/// The job has not finished; its owner is parked (the setter must wake it).
const SLEEPING: u8 = 1;
/// The job finished; its result may be read.
const SET: u8 = 2;

/// Completion of one stolen fork/join job.
///
/// The setter touches the latch once (a swap) and then only the pool, so the owner may
/// free the latch (return from `join`) the moment it observes `SET`.
pub(crate) struct Latch {
    state: AtomicU8,
}

impl Latch {
    pub(crate) fn new() -> Self {
        Latch {
            state: AtomicU8::new(UNSET),
        }
    }

    /// `true` once set; the acquire pairs with `set`'s release, so the job's result is
    /// visible.
    pub(crate) fn probe(&self) -> bool {
        self.state.load(Ordering::Acquire) == SET
    }

    /// Marks the job done and wakes its owner if it parked.
    ///
    /// # Safety
    ///
    /// `self` may be freed as soon as the swap is visible; `inner` must outlive the call
    /// (the setter holds the pool).
    pub(crate) unsafe fn set(this: *const Latch, inner: &Inner) {
        // SAFETY: the owner keeps the latch alive until it observes SET, which this swap
        // publishes; nothing touches `*this` after it.
        let was = unsafe { (*this).state.swap(SET, Ordering::AcqRel) };
        if was == SLEEPING {
            inner.wake_joiners();
        }
    }

    /// Parks the owner until the latch is set (called when there is no other work).
    pub(crate) fn park(&self, inner: &Inner) {
        inner.park_joiner(|| {
            // Under the joiners' lock: announce the park, unless already set. A setter
            // that swaps after this takes the same lock to notify, so it cannot notify
            // before the owner waits.
            match self
                .state
                .compare_exchange(UNSET, SLEEPING, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => false,
                Err(s) => s == SET,
            }
        });
    }
}

/// The second half of a `join` (or an `install`ed closure), on its owner's stack.
struct StackJob<F, R> {
    f: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<PanicResult<R>>>,
    latch: Latch,
    /// The pool whose workers may run the job (to wake a parked owner).
    inner: *const Inner,
}

impl<F, R> StackJob<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn new(f: F, inner: &Inner) -> Self {
        StackJob {
            f: UnsafeCell::new(Some(f)),
            result: UnsafeCell::new(None),
            latch: Latch::new(),
            inner,
        }
    }

    /// A type-erased reference to this job, for a deque.
    ///
    /// # Safety
    ///
    /// The job must stay where it is, and alive, until its latch is set or the reference
    /// is popped back and discarded by the owner.
    unsafe fn as_ref(&self) -> JobRef {
        JobRef {
            job: std::ptr::from_ref(self).cast(),
            exec: Self::execute,
        }
    }

    /// Runs the job from another thread (or from the owner's wait loop) and sets the
    /// latch.
    ///
    /// # Safety
    ///
    /// `this` comes from [`as_ref`](Self::as_ref), and this is the only execution.
    unsafe fn execute(this: *const ()) {
        let this: *const Self = this.cast();
        // SAFETY: the owner keeps the job alive until the latch is set (below), and only
        // one thread holds a given `JobRef` (deques hand each item out once).
        let job = unsafe { &*this };
        // SAFETY: only this execution touches `f` and `result` until the latch is set;
        // the owner reads `result` only after observing it set.
        let f = job.f.with_mut(|p| unsafe { (*p).take() });
        if let Some(f) = f {
            let r = catch_unwind(AssertUnwindSafe(f));
            // SAFETY: as above.
            job.result.with_mut(|p| unsafe { *p = Some(r) });
        }
        // SAFETY: the pool outlives its workers' jobs; `job` is not used after the set.
        let inner = unsafe { &*job.inner };
        // SAFETY: `latch` is inside `*this`, which is not touched after the swap.
        unsafe { Latch::set(&raw const job.latch, inner) };
    }

    /// Runs the job on the owner's thread, after popping it back unstolen.
    fn run_inline(&self) -> Option<R> {
        // SAFETY: popped back by the owner, so no other thread holds a reference.
        let f = self.f.with_mut(|p| unsafe { (*p).take() });
        f.map(|f| f())
    }

    /// The result once the latch is set.
    fn into_result(self) -> Option<PanicResult<R>> {
        self.result.into_inner()
    }
}

impl ThreadPool {
    /// Runs `a` and `b`, potentially in parallel, and returns both results: the
    /// fork/join primitive (as `rayon::join`).
    ///
    /// On one of this pool's workers (inside a job, or inside another `join`), `b` is
    /// offered to idle workers and `a` runs at once on the current worker; if nobody took
    /// `b` by then, it runs here too. The fork allocates nothing and costs a deque push
    /// and pop, so it pays to split work recursively down to small pieces. While waiting
    /// for a stolen `b`, the worker runs other jobs instead of blocking. From any other
    /// thread, `b` is sent to the pool and `a` runs on the calling thread.
    ///
    /// Fork/join work is not subject to the queue bound and is never cancelled by a
    /// shutdown: the caller is waiting for it.
    ///
    /// As with `rayon::join`, `a` and `b` must not wait for each other: the pool may
    /// run both on the current thread (always, on a pool of one worker). While waiting
    /// for a stolen `b`, the worker runs other jobs, so do not hold a lock across
    /// `join` that those jobs might take.
    ///
    /// # Panics
    ///
    /// If `a` or `b` panics, the panic resumes here, after both have finished (a panic
    /// of `a` wins).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_workerpool::ThreadPool;
    ///
    /// fn sum(pool: &ThreadPool, v: &[u64]) -> u64 {
    ///     if v.len() <= 1024 {
    ///         return v.iter().sum();
    ///     }
    ///     let (left, right) = v.split_at(v.len() / 2);
    ///     let (l, r) = pool.join(|| sum(pool, left), || sum(pool, right));
    ///     l + r
    /// }
    ///
    /// let pool = ThreadPool::builder().max_threads(2).build()?;
    /// let v: Vec<u64> = (0..100_000).collect();
    /// assert_eq!(pool.install(|| sum(&pool, &v)), 4_999_950_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        match WorkerCtx::current_of(&self.inner) {
            Some(ctx) => join_on_worker(ctx, a, b),
            None => self.join_cold(a, b),
        }
    }

    /// `join` from a thread that is not one of this pool's workers.
    fn join_cold<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        let mut rb = None;
        let ra = self.scope(|s| {
            s.spawn(|| rb = Some(b()));
            a()
        });
        match rb {
            Some(rb) => (ra, rb),
            // `scope` returns only after every job it spawned ran (it runs leftovers
            // itself), and resumes a job's panic instead of returning.
            None => unreachable!("scope returned before its job ran"),
        }
    }
}

/// `join` on a worker of the pool: push `b`, run `a`, then take `b` back or wait for it.
fn join_on_worker<A, B, RA, RB>(ctx: &WorkerCtx, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let job_b = StackJob::new(b, ctx.inner());
    // SAFETY: `job_b` stays on this frame, which does not return (or unwind) before the
    // reference is popped back below or the latch is set (`wait_for`).
    let job_ref = unsafe { job_b.as_ref() };
    let id = job_ref.job;
    ctx.push_join(job_ref);

    let ra = catch_unwind(AssertUnwindSafe(a));

    // Fast path: `b` is still on top of our deque (anything pushed after it was a nested
    // join's, and each of those popped its own back or waited for it).
    if let Some(job) = ctx.pop_join() {
        if std::ptr::eq(job.job, id) {
            // Ours, unstolen: run `b` here. No latch, no catch_unwind: a panic of `b`
            // unwinds from here (after `a` finished, whose own panic takes precedence).
            let ra = match ra {
                Ok(ra) => ra,
                Err(p) => resume_unwind(p),
            };
            return match job_b.run_inline() {
                Some(rb) => (ra, rb),
                None => unreachable!("join's second half ran twice"),
            };
        }
        // Ours was stolen and this is an enclosing join's fork: run it while we wait.
        // SAFETY: popped, so this is its only execution.
        unsafe { job.execute() };
    }

    // Stolen: run other work until the thief is done.
    ctx.wait_for(&job_b.latch);
    let rb = job_b.into_result();
    match (ra, rb) {
        (Err(p), _) | (Ok(_), Some(Err(p))) => resume_unwind(p),
        (Ok(ra), Some(Ok(rb))) => (ra, rb),
        (Ok(_), None) => unreachable!("join's second half set its latch without a result"),
    }
}

impl ThreadPool {
    /// Runs `f` on one of the pool's workers and returns its result, blocking the
    /// calling thread meanwhile (as `rayon::ThreadPool::install`): the way into
    /// fork/join code, whose [`join`](Self::join)s then split across the workers.
    ///
    /// `f` may borrow from the caller. Called on one of this pool's workers, or after a
    /// shutdown began, `f` runs on the calling thread. It bypasses the queue bound and is
    /// never cancelled (the caller waits for it).
    ///
    /// # Panics
    ///
    /// A panic of `f` resumes here.
    ///
    /// ```
    /// let pool = weft_workerpool::ThreadPool::builder().max_threads(2).build()?;
    /// let name = pool.install(|| std::thread::current().name().map(str::to_owned));
    /// assert_eq!(name.as_deref(), Some("weft-worker-0"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn install<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        if WorkerCtx::current_of(&self.inner).is_some() || self.inner.is_closed() {
            return f();
        }
        let job = StackJob::new(f, &self.inner);
        // SAFETY: `job` stays on this frame until its latch is set: the task is counted,
        // so workers do not exit before taking it, and tasks on a stack job are never
        // cancelled (an immediate shutdown puts them back; a worker runs them).
        let job_ref = unsafe { job.as_ref() };
        Inner::push_unbounded(&self.inner, Priority::High, Task::stack(job_ref));
        // Wait briefly before blocking: a short `f` (one fork/join round) then returns
        // without a wake-up, which would otherwise queue this thread for a CPU behind
        // the workers (`BriefWait`).
        let mut wait = BriefWait::new();
        while !job.latch.probe() {
            if !wait.pause() {
                job.latch.park(&self.inner);
            }
        }
        match job.into_result() {
            Some(Ok(r)) => r,
            Some(Err(p)) => resume_unwind(p),
            None => unreachable!("install's job set its latch without a result"),
        }
    }
}
