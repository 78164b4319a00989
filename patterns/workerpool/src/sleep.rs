//! The sleep protocol: idle workers block without spinning, and no submission is missed.
//!
//! # Design
//!
//! An idle worker announces itself (`idle += 1`), then checks once more for work
//! (`pending > 0`) before blocking; a submitter publishes its job (`pending += 1`) and
//! then checks for idle workers (`idle > 0`) to wake one. Both sides write one variable,
//! issue a full fence, and read the other (Dekker's pattern), so at least one of them
//! sees the other's write (without the fences, store buffering could let both read the
//! old values; loom finds that interleaving): either the worker sees the job and does
//! not sleep, or the submitter sees the sleeper and wakes it. A wake-up hands a *token*
//! to exactly one sleeper under the lock, so one submission wakes at most one thread
//! (no thundering herd); a woken worker that finds more work than it can take wakes the
//! next (wake-one-then-chain). The loom model `no_lost_wakeup` checks the protocol.

use std::time::Duration;

use weft_sync::atomic::{AtomicUsize, Ordering};
use weft_sync::{Condvar, Mutex};

/// Parked idle workers and the wake-up tokens handed to them.
#[derive(Debug, Default)]
pub(crate) struct Sleepers {
    /// Workers announced idle (from `announce` until they take work or leave).
    idle: AtomicUsize,
    /// Tokens not yet consumed by a woken sleeper.
    tokens: Mutex<usize>,
    /// Where sleepers block.
    bell: Condvar,
}

/// Why a sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// A submitter (or a chaining worker) handed over a token.
    Notified,
    /// The timeout passed with no token.
    TimedOut,
}

impl Sleepers {
    pub(crate) fn new() -> Self {
        Sleepers {
            idle: AtomicUsize::new(0),
            tokens: Mutex::new(0),
            bell: Condvar::new(),
        }
    }

    /// Step 1 of sleeping: announce. The caller must then re-check for work and either
    /// [`retract`](Self::retract) or [`sleep`](Self::sleep).
    pub(crate) fn announce(&self) {
        // SeqCst, then a full fence before the caller's re-check of `pending`: the
        // Dekker pairing with the submitter (module docs). The fence, not just the
        // orderings, is what forbids both sides reading stale values (store buffering);
        // loom models fences, and checks this (`no_lost_wakeup`).
        self.idle.fetch_add(1, Ordering::SeqCst);
        weft_sync::atomic::full_fence();
    }

    /// Withdraws an announcement (work was found on the re-check).
    pub(crate) fn retract(&self) {
        self.idle.fetch_sub(1, Ordering::SeqCst);
    }

    /// Blocks until a token arrives or `timeout` passes (forever with `None`). On
    /// return the caller is no longer counted idle.
    pub(crate) fn sleep(&self, timeout: Option<Duration>) -> Wake {
        let mut tokens = self.tokens.lock();
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let woke = loop {
            if *tokens > 0 {
                *tokens -= 1;
                break Wake::Notified;
            }
            match deadline {
                None => tokens = self.bell.wait(tokens),
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        break Wake::TimedOut;
                    }
                    tokens = self.bell.wait_timeout(tokens, d - now).0;
                }
            }
        };
        // Still under the lock: `wake_one` cannot count this sleeper again.
        self.idle.fetch_sub(1, Ordering::SeqCst);
        woke
    }

    /// Wakes one idle worker if any is announced (called after publishing work).
    pub(crate) fn wake_one(&self) {
        // The other half of the pairing: the caller published `pending` (SeqCst); the
        // fence orders that write before this load (module docs).
        weft_sync::atomic::full_fence();
        if self.idle.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut tokens = self.tokens.lock();
        // Only hand out tokens to sleepers not already holding one.
        if *tokens < self.idle.load(Ordering::SeqCst) {
            *tokens += 1;
            self.bell.notify_one();
        }
    }

    /// Wakes every idle worker (shutdown).
    pub(crate) fn wake_all(&self) {
        let mut tokens = self.tokens.lock();
        *tokens += self.idle.load(Ordering::SeqCst);
        self.bell.notify_all();
    }

    /// Workers announced idle right now.
    pub(crate) fn idle(&self) -> usize {
        self.idle.load(Ordering::Relaxed)
    }
}
