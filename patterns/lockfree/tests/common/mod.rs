//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Scales a stress-test count down under valgrind (`WEFT_VALGRIND=1`, set by
/// `cargo xtask valgrind`), where every instruction is ~50x slower.
pub fn scaled(n: usize) -> usize {
    if std::env::var_os("WEFT_VALGRIND").is_some() {
        (n / 100).max(10)
    } else {
        n
    }
}

/// A value that counts its drops, to check that every item is dropped exactly once.
#[derive(Debug)]
pub struct DropCounter {
    pub id: usize,
    drops: Arc<AtomicUsize>,
}

impl DropCounter {
    pub fn new(id: usize, drops: &Arc<AtomicUsize>) -> Self {
        DropCounter {
            id,
            drops: Arc::clone(drops),
        }
    }
}

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}
