//! The pool: workers, queues, submission with backpressure, scaling and shutdown.
//!
//! # Design
//!
//! Submissions go to one of two global injectors (high and normal priority,
//! `crossbeam_deque::Injector`). Each worker owns two deques: `local`, which it refills
//! from an injector a batch at a time (`steal_batch_and_pop`: one atomic claim on the
//! lock-free injector per batch instead of one per job), and `joins`, for its fork/join
//! forks (`join.rs`). When its own deques and the injectors are empty, it steals from
//! the other workers' deques, through a private copy of the registry refreshed when
//! workers come or go. Every eighth take prefers the normal injector over the high one,
//! so a stream of high-priority jobs cannot starve normal ones.
//!
//! `pending` (the [`Gate`]) counts jobs submitted and not yet taken from the injectors,
//! with the shutdown switch in the same word. It is the queue bound (a submission
//! reserves a place before its job is boxed, so a refused job comes back to the caller
//! untouched), the "is there work" signal of the sleep protocol (see `sleep.rs`), and
//! what orders a shutdown after every accepted job (see `gate.rs`). Idle workers above
//! `min_threads` leave after `keep_alive`; a submission that finds no idle worker starts
//! one, up to `max_threads`.
//!
//! A job is a [`Task`]: a closure told whether to run or to cancel itself, or a
//! reference to a `join`/`install` job on a waiting caller's stack. Dropping a boxed
//! task without running it cancels it, so a job removed by an immediate shutdown still
//! resolves its handle (to `Cancelled`) and nothing waits forever.

use std::fmt;
use std::mem::MaybeUninit;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use weft_sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use weft_sync::{Arc, Condvar, Mutex};

use weft_lockfree::StripedCounter;

use crate::gate::{Gate, Shut};
use crate::handle::{DONE, JobHandle, Slot};
use crate::sleep::{Sleepers, Wake};
use crate::{Builder, JoinError, SubmitError};

/// The pool accepts and runs jobs.
const RUNNING: u8 = 0;
/// Graceful shutdown: no new jobs; queued jobs still run.
const DRAINING: u8 = 1;
/// Immediate shutdown: no new jobs; queued jobs are cancelled.
const STOPPED: u8 = 2;

/// A job's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// Taken before normal jobs (but never starving them).
    High,
    /// The default.
    #[default]
    Normal,
}

/// What a submission does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait until there is room.
    Block,
    /// Wait at most this long, then fail with [`SubmitError::Timeout`].
    BlockFor(Duration),
    /// Fail at once with [`SubmitError::Full`] (the job is handed back).
    Fail,
    /// Run the job on the submitting thread (natural throttling).
    CallerRuns,
}

/// What becomes of a submission.
enum Admission {
    /// A queue place is reserved: push the job.
    Queued,
    /// The queue is full and the policy is `CallerRuns`.
    RunHere,
    /// Refused; the job goes back to the caller.
    Refused(Refusal),
}

/// Why a submission was refused.
#[derive(Clone, Copy)]
enum Refusal {
    Full,
    Timeout,
    ShuttingDown,
}

impl Refusal {
    /// The error that hands `job` back.
    fn hand_back<F>(self, job: F) -> SubmitError<F> {
        match self {
            Refusal::Full => SubmitError::Full(job),
            Refusal::Timeout => SubmitError::Timeout(job),
            Refusal::ShuttingDown => SubmitError::ShuttingDown(job),
        }
    }
}

/// A job: run with the pool it runs on (`Some`), or cancelled (`None`); dropping it
/// unrun cancels it. The pool is passed in rather than captured, so a job holds no
/// reference count on the pool (an `Arc` clone per job would be a contended atomic on
/// every submission).
///
/// A task is a closure, or a [`JobRef`] to a job on a waiting caller's stack
/// (`install`), which is never cancelled: its caller waits for it. A closure of up to
/// two words is stored in the task itself, so the common small job (an `Arc` and a
/// value) costs no allocation: a box allocated by the submitter and freed by a worker
/// was the largest single cost of a tiny job. Larger closures are boxed.
///
/// All fields are whole words: queues copy tasks by value on every push and pop, and a
/// task with a flag byte was copied piecewise and reloaded whole, stalling
/// store-to-load forwarding.
pub(crate) struct Task {
    /// The closure (inline), a pointer to it (boxed), or a [`JobRef`] (stack).
    data: TaskData,
    /// [`JOB`] or [`STACK`].
    kind: usize,
    /// Runs (`Some`) or cancels (`None`) what `data` holds, consuming it.
    exec: unsafe fn(*mut TaskData, Option<&Inner>),
}

/// A task's payload: two words, initialised as its `exec` expects.
type TaskData = [MaybeUninit<usize>; 2];

/// A submitted job: an immediate shutdown cancels it.
const JOB: usize = 0;
/// A stack job (`install`): never cancelled.
const STACK: usize = 1;

/// Runs or cancels a closure stored in the task.
///
/// # Safety
///
/// `data` holds an `F` written by [`Task::new`], and this is its only use.
unsafe fn exec_inline<F: FnOnce(Option<&Inner>)>(data: *mut TaskData, inner: Option<&Inner>) {
    // SAFETY: per the contract, `data` holds an initialised `F` (size and alignment
    // checked by `Task::new`), which we move out exactly once.
    let f = unsafe { std::ptr::read(data.cast::<F>()) };
    f(inner);
}

/// Runs or cancels a boxed closure.
///
/// # Safety
///
/// `data[0]` holds a pointer from `Box::<F>::into_raw` in [`Task::new`], and this is
/// its only use.
unsafe fn exec_boxed<F: FnOnce(Option<&Inner>)>(data: *mut TaskData, inner: Option<&Inner>) {
    // SAFETY: per the contract, we own the box.
    let f = unsafe { Box::from_raw((*data)[0].assume_init() as *mut F) };
    f(inner);
}

/// Runs a stack job (never cancelled: its owner waits for it).
///
/// # Safety
///
/// `data` holds a [`JobRef`] written by [`Task::stack`], and this is its only use.
unsafe fn exec_stack(data: *mut TaskData, _inner: Option<&Inner>) {
    // SAFETY: per the contract: `data` holds the reference, and this is its only use.
    unsafe { std::ptr::read(data.cast::<JobRef>()).execute() }
}

/// A type-erased pointer to a job on a waiting caller's stack, and how to run it: the
/// element of a worker's fork deque (two words, like rayon's `JobRef`).
#[derive(Clone, Copy)]
pub(crate) struct JobRef {
    pub(crate) job: *const (),
    pub(crate) exec: unsafe fn(*const ()),
}

// SAFETY: a `JobRef` is created only for jobs whose closure and result are `Send`
// (`join`'s and `install`'s bounds), and only one thread holds it at a time (deques
// hand each item out once).
unsafe impl Send for JobRef {}

impl JobRef {
    /// Runs the job.
    ///
    /// # Safety
    ///
    /// This is the reference's only execution (it was popped or stolen).
    pub(crate) unsafe fn execute(self) {
        // SAFETY: per the contract, and the job's owner keeps it alive until it ran.
        unsafe { (self.exec)(self.job) }
    }
}

impl Task {
    #[inline]
    pub(crate) fn new<F>(f: F) -> Self
    where
        F: FnOnce(Option<&Inner>) + Send + 'static,
    {
        // An immediate shutdown cancels a job a worker takes afterwards.
        let f = move |pool: Option<&Inner>| match pool {
            Some(inner) if inner.state.load(Ordering::Acquire) == STOPPED => {
                inner.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                f(None);
            }
            pool => f(pool),
        };
        Self::store(f)
    }

    /// Stores `f` inline if it fits, boxed otherwise.
    #[inline]
    fn store<F>(f: F) -> Self
    where
        F: FnOnce(Option<&Inner>) + Send + 'static,
    {
        let mut data: TaskData = [MaybeUninit::uninit(); 2];
        if size_of::<F>() <= size_of::<TaskData>() && align_of::<F>() <= align_of::<TaskData>() {
            // SAFETY: `data` is large and aligned enough for an `F` (checked above);
            // `exec_inline::<F>` moves it out exactly once.
            unsafe { std::ptr::write(data.as_mut_ptr().cast::<F>(), f) };
            Task {
                data,
                kind: JOB,
                exec: exec_inline::<F>,
            }
        } else {
            data[0] = MaybeUninit::new(Box::into_raw(Box::new(f)) as usize);
            Task {
                data,
                kind: JOB,
                exec: exec_boxed::<F>,
            }
        }
    }

    /// A task that runs a stack job (never cancelled).
    pub(crate) fn stack(job: JobRef) -> Self {
        let mut data: TaskData = [MaybeUninit::uninit(); 2];
        // SAFETY: a `JobRef` is two words, like `data`; `exec_stack` reads it once.
        unsafe { std::ptr::write(data.as_mut_ptr().cast::<JobRef>(), job) };
        Task {
            data,
            kind: STACK,
            exec: exec_stack,
        }
    }

    /// `true` if an immediate shutdown may cancel this task.
    fn cancellable(&self) -> bool {
        self.kind == JOB
    }

    fn run(self, inner: &Inner) {
        let mut this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `data` is initialised as `exec` expects, and `this` is not dropped,
        // so this is its only use.
        unsafe { (this.exec)(&raw mut this.data, Some(inner)) }
    }
}

// SAFETY: a task is created only from `Send` closures (`Task::new`) or for stack jobs
// whose closure and result are `Send` (`install`'s bounds), and only one thread holds
// it at a time (injectors and deques hand each item out once).
unsafe impl Send for Task {}

impl Drop for Task {
    fn drop(&mut self) {
        // A job: cancels it. A stack job: runs it, since its owner waits for it
        // (unreachable in practice: the pool runs or puts back every stack task).
        // SAFETY: as in `run`; `drop` is the task's last use.
        unsafe { (self.exec)(&raw mut self.data, None) }
    }
}

/// A worker's state, on its thread's stack; reachable from jobs running on the worker
/// through a thread-local (fork/join needs the worker's own deque).
pub(crate) struct WorkerCtx {
    inner: Arc<Inner>,
    /// Jobs taken from the injectors a batch at a time (FIFO: submission order).
    local: Worker<Task>,
    /// Where a batch lands first, to be counted (private: no stealer).
    staging: Worker<Task>,
    /// This worker's fork/join forks (LIFO: depth-first, the most recent fork on top).
    joins: Worker<JobRef>,
    /// Takes so far, for injector fairness.
    tick: std::cell::Cell<usize>,
    /// This worker's slot in the registry.
    slot: std::cell::Cell<usize>,
    /// The registry's generation and the other workers' deques as of it
    /// (`Inner::stealers`).
    stealers: std::cell::RefCell<(usize, Vec<Deques>)>,
}

std::thread_local! {
    /// The worker running on this thread, if any.
    static CURRENT: std::cell::Cell<*const WorkerCtx> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// Clears `CURRENT` when a worker leaves (even by unwinding).
struct CurrentGuard;

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(std::ptr::null()));
    }
}

impl WorkerCtx {
    /// The current thread's worker, if it is a worker of the pool `inner`.
    pub(crate) fn current_of(inner: &Inner) -> Option<&WorkerCtx> {
        let ptr = CURRENT.with(std::cell::Cell::get);
        // SAFETY: `CURRENT` points to the `WorkerCtx` on this thread's `worker_main`
        // frame, which outlives every job run on this thread, and is null otherwise.
        let ctx = unsafe { ptr.as_ref() }?;
        std::ptr::eq(&*ctx.inner, inner).then_some(ctx)
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Pushes a fork on this worker's deque and wakes an idle worker to steal it.
    pub(crate) fn push_join(&self, job: JobRef) {
        self.joins.push(job);
        // A relaxed look for sleepers, without the fence of the submission protocol
        // (rayon's trade-off, see `join.rs`): a fork that misses a worker falling asleep
        // at this instant is run by its owner, so only its parallelism is lost. Sleepers
        // also re-check the deques after announcing themselves.
        if self.inner.sleepers.idle() > 0 {
            self.inner.sleepers.wake_one();
        }
    }

    /// Pops this worker's most recent fork.
    pub(crate) fn pop_join(&self) -> Option<JobRef> {
        self.joins.pop()
    }

    /// Finds the next task: own forks, own batch, the injectors, then other workers.
    fn find_task(&self) -> Option<Task> {
        if let Some(t) = self
            .joins
            .pop()
            .map(Task::stack)
            .or_else(|| self.local.pop())
        {
            return Some(t);
        }
        let inner = &*self.inner;
        let tick = self.tick.get();
        self.tick.set(tick.wrapping_add(1));
        let (first, second) = if tick % 8 == 7 {
            (&inner.normal, &inner.high)
        } else {
            (&inner.high, &inner.normal)
        };
        if let Some(t) = [first, second]
            .into_iter()
            .find_map(|injector| retry_steal(|| injector.steal_batch_and_pop(&self.staging)))
        {
            // The batch left the queue: one update of the gate for all of it (a shared
            // line written once per job by the submitter and once per batch here). It is
            // counted in the private staging deque, where no thief can take from it
            // meanwhile, then moved to the stealable one.
            let batch = self.staging.len() + 1;
            while let Some(task) = self.staging.pop() {
                self.local.push(task);
            }
            let left = inner.took(batch);
            // More work: wake the next sleeper (chaining), or, with none idle, start a
            // thread (up to the maximum) so queued work never waits for a busy pool that
            // could still grow.
            if left > 0 || batch > 1 {
                if inner.sleepers.idle() > 0 {
                    inner.sleepers.wake_one();
                } else if left > 0 {
                    Inner::maybe_grow(&self.inner);
                }
            }
            return Some(t);
        }
        // Forks first: the oldest fork of a worker is its largest piece of work.
        // `steal` pins an epoch even on an empty deque; `is_empty` is two loads.
        let stolen = self.with_stealers(|stealers| {
            stealers.iter().find_map(|(joins, local)| {
                (!joins.is_empty())
                    .then(|| retry_steal(|| joins.steal()).map(Task::stack))
                    .flatten()
                    .or_else(|| {
                        (!local.is_empty())
                            .then(|| retry_steal(|| local.steal()))
                            .flatten()
                    })
            })
        });
        if stolen.is_some() {
            inner.counters.steals.fetch_add(1, Ordering::Relaxed);
        }
        stolen
    }

    /// Calls `f` with the other workers' deques (the private copy, refreshed if workers
    /// came or went since the last call).
    fn with_stealers<R>(&self, f: impl FnOnce(&[Deques]) -> R) -> R {
        let mut cache = self.stealers.borrow_mut();
        let generation = self.inner.generation.load(Ordering::Acquire);
        if cache.0 != generation {
            let registry = self.inner.stealers.lock();
            cache.1.clear();
            // Not our own deques: we pop those.
            cache.1.extend(
                registry
                    .iter()
                    .enumerate()
                    .filter(|&(slot, _)| slot != self.slot.get())
                    .filter_map(|(_, deques)| deques.clone()),
            );
            cache.0 = self.inner.generation.load(Ordering::Acquire);
        }
        f(&cache.1)
    }

    /// `true` if some worker's deque has work to steal.
    fn stealable(&self) -> bool {
        self.with_stealers(|stealers| {
            stealers
                .iter()
                .any(|(joins, local)| !joins.is_empty() || !local.is_empty())
        })
    }

    /// Runs a task taken by `find_task` (`top`: from the worker loop, not from a wait).
    pub(crate) fn run(&self, task: Task, top: bool) {
        let inner = &*self.inner;
        if top {
            inner.counters.started.add(1);
            task.run(inner);
            inner.counters.finished.add(1);
        } else {
            task.run(inner);
        }
    }

    /// Runs other work until `latch` is set (a stolen fork finished); when there is none,
    /// spins and yields for a while (the thief is usually about to finish: parking
    /// would add a futex round trip to every short stolen fork), then parks.
    pub(crate) fn wait_for(&self, latch: &crate::join::Latch) {
        let mut wait = BriefWait::new();
        while !latch.probe() {
            if let Some(task) = self.find_task() {
                self.run(task, false);
                wait = BriefWait::new();
            } else if !wait.pause() {
                latch.park(&self.inner);
            }
        }
    }

    /// Yields for a short while, watching for work; `true` if some appeared. Yielding
    /// rather than spinning keeps an idle worker off the lines submitters write (the
    /// gate, the injector) and gives the core to a thread with work.
    fn linger(&self) -> bool {
        let inner = &*self.inner;
        for _ in 0..YIELD_ROUNDS {
            weft_sync::thread::yield_now();
            // A hint; the sleep protocol that follows is what guarantees no job is
            // missed.
            if inner.pending.hint() || self.stealable() {
                return true;
            }
        }
        false
    }
}

/// Rounds of spinning (a `spin_loop` hint each) before a thread waiting for a latch
/// starts yielding: the job it waits for is often about to finish.
const SPIN_ROUNDS: u32 = 16;
/// Rounds of yielding before an idle worker, or a thread waiting for a latch, blocks:
/// tens of microseconds on an idle machine, so a burst of work (or the next fork/join
/// round) finds the worker awake, while an idle pool still parks at once in CPU terms.
const YIELD_ROUNDS: u32 = 64;

/// The bounded wait before blocking on a latch: [`SPIN_ROUNDS`] spins, then
/// [`YIELD_ROUNDS`] yields.
///
/// A latch set while its owner is blocked costs a futex wake-up, and on a machine with
/// no idle core the woken thread then queues for a CPU behind a worker (tens of
/// microseconds on a 2-vCPU VM, more than a short fork/join job). Waiting briefly first
/// lets a short job's owner see the latch without being woken; a long job's owner
/// blocks after a few microseconds of CPU.
pub(crate) struct BriefWait {
    rounds: u32,
}

impl BriefWait {
    pub(crate) fn new() -> Self {
        BriefWait { rounds: 0 }
    }

    /// Waits one round; `false` once the rounds are used up (block now).
    pub(crate) fn pause(&mut self) -> bool {
        if self.rounds < SPIN_ROUNDS {
            std::hint::spin_loop();
        } else if self.rounds < SPIN_ROUNDS + YIELD_ROUNDS {
            weft_sync::thread::yield_now();
        } else {
            return false;
        }
        self.rounds += 1;
        true
    }
}

/// A worker-lifecycle hook (worker number).
pub(crate) type ThreadHook = Box<dyn Fn(usize) + Send + Sync>;
/// A panic handler (panic message).
pub(crate) type PanicHook = Box<dyn Fn(&str) + Send + Sync>;

/// Hooks and handlers from the builder.
pub(crate) struct Hooks {
    pub(crate) on_start: Option<ThreadHook>,
    pub(crate) on_exit: Option<ThreadHook>,
    pub(crate) on_panic: Option<PanicHook>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) min_threads: usize,
    pub(crate) max_threads: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) capacity: usize,
    pub(crate) backpressure: Backpressure,
    pub(crate) name: String,
    pub(crate) stack_size: Option<usize>,
}

#[derive(Debug)]
struct Counters {
    /// Striped (`weft_lockfree::StripedCounter`): bumped once per job by whichever
    /// worker runs it, so a shared counter would be a contended line on every job.
    completed: StripedCounter,
    /// Jobs workers began and finished running (`busy` is the difference).
    started: StripedCounter,
    finished: StripedCounter,
    panicked: AtomicU64,
    rejected: AtomicU64,
    cancelled: AtomicU64,
    steals: AtomicU64,
    spawned: AtomicU64,
}

/// A worker's deques as others see them: its forks and its batch.
type Deques = (Stealer<JobRef>, Stealer<Task>);

/// Everything the workers share.
pub(crate) struct Inner {
    high: Injector<Task>,
    normal: Injector<Task>,
    /// The workers' deques (forks, batch), for stealing; `None` for exited workers.
    /// Workers steal through a private copy, refreshed when `generation` moves, so
    /// searching for work takes no lock.
    stealers: Mutex<Vec<Option<Deques>>>,
    /// Bumped whenever `stealers` changes.
    generation: AtomicUsize,
    /// Jobs submitted and not yet started (the queue bound and the sleep signal), and
    /// whether submissions are closed.
    pending: Gate,
    sleepers: Sleepers,
    /// Where callers waiting for a stolen fork (or an `install`) park.
    joiners: (Mutex<()>, Condvar),
    /// Submitters blocked on a full queue, and where they wait.
    blocked: AtomicUsize,
    space: (Mutex<()>, Condvar),
    /// Live workers, and a condvar signalled when one exits.
    threads: AtomicUsize,
    exited: (Mutex<()>, Condvar),
    state: AtomicU8,
    counters: Counters,
    settings: Settings,
    hooks: Hooks,
    next_worker: AtomicUsize,
}

/// A snapshot of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// Worker threads alive.
    pub threads: usize,
    /// Workers running a job.
    pub busy: usize,
    /// Workers parked waiting for work.
    pub idle: usize,
    /// Jobs submitted and not yet started.
    pub queued: usize,
    /// Jobs that ran to completion (including those that panicked).
    pub completed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Submissions refused (queue full, timeout, or shutting down).
    pub rejected: u64,
    /// Jobs cancelled before they started (counted when the pool discards them, which
    /// for a job cancelled through its handle is when a worker reaches it).
    pub cancelled: u64,
    /// Jobs a worker stole from another's deque.
    pub steals: u64,
    /// Worker threads started since creation.
    pub threads_started: u64,
}

/// What a shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Queued jobs cancelled (immediate shutdown only).
    pub cancelled: usize,
    /// `true` if every worker exited before the deadline.
    pub completed: bool,
}

/// A work-stealing thread pool with a bounded queue.
///
/// # Examples
///
/// ```
/// use weft_workerpool::{Backpressure, ThreadPool};
///
/// let pool = ThreadPool::builder()
///     .min_threads(1)
///     .max_threads(4)
///     .queue_capacity(1000)
///     .backpressure(Backpressure::Block)
///     .thread_name("compute")
///     .build()?;
/// let handles: Vec<_> = (0..10u64).map(|i| pool.submit(move || i * i)).collect::<Result<_, _>>()?;
/// let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
/// assert_eq!(sum, 285);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ThreadPool {
    pub(crate) inner: Arc<Inner>,
}

impl ThreadPool {
    /// A builder (see [`Builder`] for the defaults).
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn start(settings: Settings, hooks: Hooks) -> Self {
        let inner = Arc::new(Inner {
            high: Injector::new(),
            normal: Injector::new(),
            stealers: Mutex::new(Vec::new()),
            generation: AtomicUsize::new(0),
            pending: Gate::new(),
            sleepers: Sleepers::new(),
            joiners: (Mutex::new(()), Condvar::new()),
            blocked: AtomicUsize::new(0),
            space: (Mutex::new(()), Condvar::new()),
            threads: AtomicUsize::new(0),
            exited: (Mutex::new(()), Condvar::new()),
            state: AtomicU8::new(RUNNING),
            counters: Counters {
                completed: StripedCounter::new(),
                started: StripedCounter::new(),
                finished: StripedCounter::new(),
                panicked: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                cancelled: AtomicU64::new(0),
                steals: AtomicU64::new(0),
                spawned: AtomicU64::new(0),
            },
            settings,
            hooks,
            next_worker: AtomicUsize::new(0),
        });
        for _ in 0..inner.settings.min_threads {
            inner.threads.fetch_add(1, Ordering::SeqCst);
            spawn_worker(&inner);
        }
        ThreadPool { inner }
    }

    /// Runs `job` on the pool, fire-and-forget (a panic is counted and reported to the
    /// panic handler).
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit), with the job handed back.
    pub fn execute<F>(&self, job: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        match self.inner.admit() {
            // No handle, so no result slot: the job runs straight from its task.
            Admission::Queued => Inner::push(&self.inner, Priority::Normal, fire_and_forget(job)),
            Admission::RunHere => fire_and_forget(job).run(&self.inner),
            Admission::Refused(why) => return Err(why.hand_back(job)),
        }
        Ok(())
    }

    /// Runs `job` on the pool and returns a handle to its result.
    ///
    /// # Errors
    ///
    /// With a full queue, per the [`Backpressure`] policy: [`SubmitError::Full`] or
    /// [`SubmitError::Timeout`]; [`SubmitError::ShuttingDown`] after a shutdown began.
    /// The job is always handed back in the error.
    pub fn submit<F, T>(&self, job: F) -> Result<JobHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_with(Priority::Normal, job)
    }

    /// Like [`submit`](Self::submit), at `priority`.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    pub fn submit_with<F, T>(
        &self,
        priority: Priority,
        job: F,
    ) -> Result<JobHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = Slot::new();
        match self.inner.admit() {
            Admission::Queued => Inner::push(&self.inner, priority, job_task(&slot, job)),
            Admission::RunHere => job_task(&slot, job).run(&self.inner),
            Admission::Refused(why) => return Err(why.hand_back(job)),
        }
        Ok(JobHandle { slot })
    }

    /// A snapshot of the pool.
    pub fn status(&self) -> Status {
        let i = &*self.inner;
        Status {
            threads: i.threads.load(Ordering::Relaxed),
            // `finished` first: a job counted finished was counted started before it.
            busy: {
                let finished = i.counters.finished.sum();
                usize::try_from(i.counters.started.sum().saturating_sub(finished))
                    .unwrap_or(usize::MAX)
            },
            idle: i.sleepers.idle(),
            // Queued in the injectors, plus taken in a worker's batch and not started.
            queued: i.pending.count() + i.batched(),
            completed: i.counters.completed.sum(),
            panicked: i.counters.panicked.load(Ordering::Relaxed),
            rejected: i.counters.rejected.load(Ordering::Relaxed),
            cancelled: i.counters.cancelled.load(Ordering::Relaxed),
            steals: i.counters.steals.load(Ordering::Relaxed),
            threads_started: i.counters.spawned.load(Ordering::Relaxed),
        }
    }

    /// Graceful shutdown: refuses new jobs, runs every queued job, and waits for the
    /// workers to exit, at most until `deadline` (then returns with `completed: false`;
    /// the workers finish in the background).
    pub fn shutdown(&self, deadline: Option<Duration>) -> ShutdownReport {
        let _ = self.inner.state.compare_exchange(
            RUNNING,
            DRAINING,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.inner.pending.close();
        self.inner.sleepers.wake_all();
        self.inner.space.1.notify_all();
        ShutdownReport {
            cancelled: 0,
            completed: self.inner.wait_exit(deadline),
        }
    }

    /// Immediate shutdown: refuses new jobs, cancels every job not yet started (their
    /// handles resolve to [`JoinError::Cancelled`]), lets running jobs finish, and waits
    /// for the workers at most until `deadline`.
    pub fn shutdown_now(&self, deadline: Option<Duration>) -> ShutdownReport {
        self.inner.state.store(STOPPED, Ordering::Release);
        self.inner.pending.close();
        let mut cancelled = 0;
        for injector in [&self.inner.high, &self.inner.normal] {
            let mut keep = Vec::new();
            while let Some(task) = retry_steal(|| injector.steal()) {
                if !task.cancellable() {
                    keep.push(task); // a caller waits for it (`install`)
                    continue;
                }
                self.inner.pending.take(1);
                drop(task); // cancels it
                cancelled += 1;
                self.inner
                    .counters
                    .cancelled
                    .fetch_add(1, Ordering::Relaxed);
            }
            for task in keep {
                injector.push(task);
            }
        }
        self.inner.sleepers.wake_all();
        self.inner.space.1.notify_all();
        ShutdownReport {
            cancelled,
            completed: self.inner.wait_exit(deadline),
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Wraps a fire-and-forget job: runs it (catching and reporting a panic), or counts it
/// cancelled.
fn fire_and_forget<F>(job: F) -> Task
where
    F: FnOnce() + Send + 'static,
{
    Task::new(move |pool| {
        let Some(inner) = pool else {
            return; // cancelled: counted by whoever discarded it
        };
        let result = catch_unwind(AssertUnwindSafe(job));
        inner.counters.completed.add(1);
        if let Err(payload) = result {
            report_panic(inner, payload.as_ref());
        }
    })
}

/// Counts a job's panic, calls the panic handler and logs it; returns the message.
fn report_panic(inner: &Inner, payload: &(dyn std::any::Any + Send)) -> String {
    let message = weft_sync::thread::panic_message(payload);
    inner.counters.panicked.fetch_add(1, Ordering::Relaxed);
    if let Some(h) = &inner.hooks.on_panic {
        h(&message);
    }
    tracing::warn!(target: "weft_workerpool", %message, "job panicked");
    message
}

/// Wraps a user job: runs it (catching a panic) and completes its slot, or cancels it.
fn job_task<F, T>(slot: &Arc<Slot<T>>, job: F) -> Task
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let slot = Arc::clone(slot);
    Task::new(move |pool| {
        let Some(inner) = pool else {
            slot.cancel(); // discarded unrun: its handle resolves to Cancelled
            return;
        };
        if !slot.start() {
            inner.counters.cancelled.fetch_add(1, Ordering::Relaxed);
            return; // cancelled while queued: its handle is already resolved
        }
        let result = catch_unwind(AssertUnwindSafe(job));
        inner.counters.completed.add(1);
        match result {
            Ok(v) => slot.complete(Ok(v), DONE),
            Err(payload) => {
                let message = report_panic(inner, payload.as_ref());
                slot.complete(Err(JoinError::Panicked { message }), DONE);
            }
        }
    })
}

impl Inner {
    /// Decides what happens to a submission: queued (its place is reserved), run on the
    /// caller, or refused; counts refusals.
    fn admit(&self) -> Admission {
        let admission = self.reserve();
        if let Admission::Refused(_) = admission {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        }
        admission
    }

    /// Reserves a queue place, applying the backpressure policy when the queue is full.
    fn reserve(&self) -> Admission {
        let cap = self.settings.capacity;
        match self.pending.reserve(cap) {
            Ok(()) => return Admission::Queued,
            Err(Shut::Closed) => return Admission::Refused(Refusal::ShuttingDown),
            Err(Shut::Full) => {}
        }
        let deadline = match self.settings.backpressure {
            Backpressure::Fail => return Admission::Refused(Refusal::Full),
            Backpressure::CallerRuns => return Admission::RunHere,
            Backpressure::Block => None,
            Backpressure::BlockFor(d) => Some(Instant::now() + d),
        };
        self.blocked.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.space.0.lock();
        let admission = loop {
            match self.pending.reserve(cap) {
                Ok(()) => break Admission::Queued,
                Err(Shut::Closed) => break Admission::Refused(Refusal::ShuttingDown),
                Err(Shut::Full) => {}
            }
            match deadline {
                None => guard = self.space.1.wait(guard),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break Admission::Refused(Refusal::Timeout);
                    }
                    guard = self.space.1.wait_timeout(guard, d - now).0;
                }
            }
        };
        drop(guard);
        self.blocked.fetch_sub(1, Ordering::SeqCst);
        admission
    }

    /// `true` once a shutdown began.
    pub(crate) fn is_closed(&self) -> bool {
        self.pending.is_closed()
    }

    /// Counts and publishes a task outside the queue bound: work whose caller waits for
    /// it anyway (`install`, a scope's tickets), which refusing could deadlock.
    pub(crate) fn push_unbounded(this: &Arc<Inner>, priority: Priority, task: Task) {
        this.pending.force();
        Inner::push(this, priority, task);
    }

    /// Tasks in workers' batches (taken from the queue, not started).
    fn batched(&self) -> usize {
        self.stealers
            .lock()
            .iter()
            .flatten()
            .map(|(_, local)| local.len())
            .sum()
    }

    /// Registers a worker's deques; returns its slot.
    fn register(&self, deques: Deques) -> usize {
        let mut stealers = self.stealers.lock();
        stealers.push(Some(deques));
        self.generation.fetch_add(1, Ordering::Release);
        stealers.len() - 1
    }

    /// Unregisters a leaving worker's deques.
    fn unregister(&self, slot: usize) {
        self.stealers.lock()[slot] = None;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Wakes the callers parked waiting for a fork or an `install` (one of them is
    /// waiting for the job that just finished; the others re-check and park again).
    pub(crate) fn wake_joiners(&self) {
        // Take and release the lock before notifying: a waiter that checked its latch
        // before the caller's swap is then already waiting (it checks under the lock),
        // and the woken waiter does not wake into a lock still held by the notifier.
        drop(self.joiners.0.lock());
        self.joiners.1.notify_all();
    }

    /// Parks a caller until `done` (evaluated under the joiners' lock, so a
    /// `wake_joiners` after its check is not missed) returns `true`.
    pub(crate) fn park_joiner(&self, mut done: impl FnMut() -> bool) {
        let mut g = self.joiners.0.lock();
        while !done() {
            g = self.joiners.1.wait(g);
        }
    }

    /// Publishes a task (its place is reserved) and wakes or starts a worker.
    #[inline]
    fn push(this: &Arc<Inner>, priority: Priority, task: Task) {
        match priority {
            Priority::High => this.high.push(task),
            Priority::Normal => this.normal.push(task),
        }
        if this.sleepers.idle() == 0 {
            Inner::maybe_grow(this);
        }
        // Also after growing: a worker may have announced itself idle meanwhile.
        this.sleepers.wake_one();
    }

    /// Starts a worker if none is idle and the pool is below its maximum.
    fn maybe_grow(this: &Arc<Inner>) {
        let max = this.settings.max_threads;
        // A plain load first: at the maximum (the steady state under load) no RMW, so
        // submitters do not contend on the thread count.
        if this.threads.load(Ordering::Relaxed) >= max {
            return;
        }
        if this
            .threads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
        {
            spawn_worker(this);
        }
    }

    /// `n` jobs left the queue (for a worker's batch): free their places for blocked
    /// submitters; returns the jobs still queued.
    fn took(&self, n: usize) -> usize {
        let left = self.pending.take(n);
        if self.blocked.load(Ordering::SeqCst) > 0 {
            let _g = self.space.0.lock();
            if n == 1 {
                self.space.1.notify_one();
            } else {
                self.space.1.notify_all();
            }
        }
        left
    }

    /// Waits until every worker has exited, or the deadline passes.
    fn wait_exit(&self, deadline: Option<Duration>) -> bool {
        let until = deadline.map(|d| Instant::now() + d);
        let mut guard = self.exited.0.lock();
        loop {
            if self.threads.load(Ordering::SeqCst) == 0 {
                return true;
            }
            match until {
                None => guard = self.exited.1.wait(guard),
                Some(u) => {
                    let now = Instant::now();
                    if now >= u {
                        return false;
                    }
                    guard = self.exited.1.wait_timeout(guard, u - now).0;
                }
            }
        }
    }
}

/// Repeats a steal until it succeeds or finds nothing (`Retry` means "lost a race, try
/// again").
fn retry_steal<T>(mut steal: impl FnMut() -> Steal<T>) -> Option<T> {
    std::iter::repeat_with(&mut steal)
        .find(|s| !s.is_retry())
        .and_then(Steal::success)
}

/// Starts one worker thread (the caller already counted it in `threads`).
fn spawn_worker(inner: &Arc<Inner>) {
    let id = inner.next_worker.fetch_add(1, Ordering::Relaxed);
    let mut builder =
        weft_sync::thread::Builder::new().name(format!("{}-{id}", inner.settings.name));
    if let Some(size) = inner.settings.stack_size {
        builder = builder.stack_size(size);
    }
    let worker_inner = Arc::clone(inner);
    inner.counters.spawned.fetch_add(1, Ordering::Relaxed);
    if builder
        .spawn(move || worker_main(worker_inner, id))
        .is_err()
    {
        // The OS refused a thread: give the slot back; submissions still find workers
        // (or start one later).
        inner.threads.fetch_sub(1, Ordering::SeqCst);
        tracing::error!(target: "weft_workerpool", "could not start a worker thread");
    }
}

/// A worker's life: take and run tasks; sleep when there are none; leave when idle past
/// the keep-alive (above `min_threads`) or when the pool shuts down.
fn worker_main(inner: Arc<Inner>, id: usize) {
    let ctx = WorkerCtx {
        inner,
        local: Worker::new_fifo(),
        staging: Worker::new_fifo(),
        joins: Worker::new_lifo(),
        tick: std::cell::Cell::new(0),
        slot: std::cell::Cell::new(usize::MAX),
        stealers: std::cell::RefCell::new((usize::MAX, Vec::new())),
    };
    let inner = &ctx.inner;
    let slot = inner.register((ctx.joins.stealer(), ctx.local.stealer()));
    ctx.slot.set(slot);
    CURRENT.with(|c| c.set(&raw const ctx));
    let _current = CurrentGuard;
    if let Some(h) = &inner.hooks.on_start {
        h(id);
    }
    tracing::debug!(target: "weft_workerpool", worker = id, "worker started");
    loop {
        if let Some(task) = ctx.find_task() {
            ctx.run(task, true);
            continue;
        }
        if inner.pending.drained() {
            break;
        }
        // Linger briefly before sleeping: a job that arrives within a few microseconds
        // is taken without a futex sleep/wake round trip (which costs more than a tiny
        // job), and a fork is stolen while its owner is still splitting. Bounded, so an
        // idle pool still parks at once in CPU terms.
        if ctx.linger() {
            continue;
        }
        // The sleep protocol: announce, re-check, then block.
        inner.sleepers.announce();
        if inner.pending.count() > 0 || inner.pending.is_closed() || ctx.stealable() {
            inner.sleepers.retract();
            if inner.pending.count() > 0 {
                // Work exists but is not visible yet (a submitter between its reservation
                // and its push) or sits in a busy worker's deque: let others run.
                weft_sync::thread::yield_now();
            }
            continue;
        }
        let above_min = inner.threads.load(Ordering::SeqCst) > inner.settings.min_threads;
        let timeout = above_min.then_some(inner.settings.keep_alive);
        if inner.sleepers.sleep(timeout) == Wake::TimedOut {
            // Idle past the keep-alive: leave if still above the minimum.
            let min = inner.settings.min_threads;
            if inner
                .threads
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n > min).then_some(n - 1)
                })
                .is_ok()
            {
                // Work may have arrived as we left; hand it to someone else.
                if inner.pending.count() > 0 {
                    inner.sleepers.wake_one();
                    Inner::maybe_grow(inner);
                }
                retire(&ctx, slot, id);
                return;
            }
        }
    }
    inner.threads.fetch_sub(1, Ordering::SeqCst);
    retire(&ctx, slot, id);
}

/// Leaves the pool: hands the batch's tasks back, unregisters, runs the exit hook, and
/// signals `wait_exit`.
fn retire(ctx: &WorkerCtx, slot: usize, id: usize) {
    let inner = &ctx.inner;
    // Forks are always popped or stolen before their `join` returns, so only batch
    // tasks can be left here.
    debug_assert!(ctx.joins.is_empty());
    while let Some(task) = ctx.local.pop() {
        inner.pending.force(); // back in the queue: counted again
        inner.normal.push(task);
    }
    inner.unregister(slot);
    if let Some(h) = &inner.hooks.on_exit {
        h(id);
    }
    tracing::debug!(target: "weft_workerpool", worker = id, "worker exited");
    let _g = inner.exited.0.lock();
    inner.exited.1.notify_all();
}
