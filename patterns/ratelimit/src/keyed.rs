//! Keyed limiting (per IP, per user, per tenant) with a hard cap on the number of keys.
//!
//! # Design
//!
//! Keys live in power-of-two shards, each a small open-addressing table under its own
//! lock, so threads limiting different keys rarely meet. A shard stores its entries in a
//! `Vec` (key, arrival time) indexed by a `hashbrown::HashTable` of positions: the
//! `Vec` gives O(1) removal (`swap_remove`) and O(1) uniform sampling, which eviction
//! needs.
//!
//! The state of a key whose arrival time has passed is "fully replenished", the same as
//! a key never seen: it carries no information and can be dropped without changing any
//! decision. Two mechanisms keep the table small and bounded:
//!
//! - every insertion also examines one random entry of its shard and drops it if it is
//!   replenished, so the table tracks the set of recently active keys without a sweeper
//!   thread (and [`KeyedLimiter::retain_recent`] sweeps a whole limiter on demand);
//! - each shard has a hard capacity. Inserting into a full shard first drops a
//!   replenished entry if sampling finds one; otherwise it evicts the *idlest* of a
//!   sample of entries (the one closest to replenished), the approximate-LRU scheme
//!   Redis uses. That forgets some of the evicted key's debt, which is the price of
//!   bounded memory under key rotation; the `evicted_active` counter reports it.
//!
//! So an attacker rotating through millions of keys can make the limiter forget idle
//! keys, but never grow it past `max_keys`.

use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
use std::marker::PhantomData;

use hashbrown::HashTable;
use weft_sync::atomic::{AtomicU64, Ordering};
use weft_sync::{CachePadded, Mutex};
use weft_time::{Clock, Epoch, FastClock};

use crate::gcra::Gcra;
use crate::{Admitted, Error, NotUntil, Quota};

/// Entries examined when a full shard must evict one.
const EVICTION_SAMPLES: usize = 8;

/// One key's state. The key's hash is not stored: it is recomputed on the rare paths
/// that need it (removal, table growth), which keeps an entry at key + 8 bytes.
struct Entry<K> {
    /// The key.
    key: K,
    /// GCRA arrival time, nanoseconds since the limiter's epoch.
    tat: u64,
}

/// One shard: entries plus a table of their positions.
struct Shard<K> {
    /// Positions into `entries`, hashed by key.
    table: HashTable<u32>,
    /// The entries, densely packed.
    entries: Vec<Entry<K>>,
    /// The most entries this shard may hold.
    cap: usize,
    /// Picks entries to sample.
    rng: fastrand::Rng,
}

impl<K: Hash + Eq> Shard<K> {
    fn find(&self, hash: u64, key: &K) -> Option<usize> {
        self.table
            .find(hash, |&i| self.entries[i as usize].key == *key)
            .map(|&i| i as usize)
    }

    /// Removes the entry at `i` (swap-remove, fixing the moved entry's position).
    fn remove_at(&mut self, i: usize, hasher: &impl BuildHasher) {
        let hash = hasher.hash_one(&self.entries[i].key);
        if let Ok(slot) = self.table.find_entry(hash, |&j| j as usize == i) {
            slot.remove();
        }
        let last = self.entries.len() - 1;
        self.entries.swap_remove(i);
        if i != last {
            let moved_hash = hasher.hash_one(&self.entries[i].key);
            if let Some(pos) = self.table.find_mut(moved_hash, |&j| j as usize == last) {
                *pos = i as u32;
            }
        }
    }

    /// Inserts an entry with hash `hash` (the caller made room).
    fn push(&mut self, entry: Entry<K>, hash: u64, hasher: &impl BuildHasher) {
        let i = self.entries.len() as u32;
        self.entries.push(entry);
        let entries = &self.entries;
        self.table
            .insert_unique(hash, i, |&j| hasher.hash_one(&entries[j as usize].key));
    }

    /// A uniformly random index, or `None` when empty.
    fn sample(&mut self) -> Option<usize> {
        (!self.entries.is_empty()).then(|| self.rng.usize(..self.entries.len()))
    }
}

/// Counters shared by all shards.
#[derive(Debug, Default)]
struct Counters {
    admitted: AtomicU64,
    rejected: AtomicU64,
    evicted_idle: AtomicU64,
    evicted_active: AtomicU64,
}

/// A snapshot of a keyed limiter.
///
/// ```
/// use weft_ratelimit::{KeyedLimiter, Quota};
/// let l = KeyedLimiter::<u32>::new(Quota::per_second(1)?)?;
/// let _ = l.check(&7);
/// let _ = l.check(&7);
/// let s = l.status();
/// assert_eq!((s.admitted, s.rejected, s.keys), (1, 1, 1));
/// # Ok::<(), weft_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedStatus {
    /// Cells admitted since creation.
    pub admitted: u64,
    /// Requests denied since creation.
    pub rejected: u64,
    /// Keys held now.
    pub keys: usize,
    /// The hard cap on keys.
    pub max_keys: usize,
    /// Replenished keys dropped (no information lost).
    pub evicted_idle: u64,
    /// Keys with remaining debt evicted because their shard was full (their debt was
    /// forgotten: size `max_keys` for the active key set to keep this at zero).
    pub evicted_active: u64,
    /// Bytes allocated for key state now (entries and table, by capacity).
    pub memory_bytes: usize,
}

/// Configuration of a [`KeyedLimiter`].
///
/// ```
/// use weft_ratelimit::{KeyedLimiter, Quota};
/// let l = KeyedLimiter::<String>::builder(Quota::per_minute(60)?)
///     .max_keys(10_000)
///     .shards(16)
///     .build()?;
/// assert_eq!(l.status().max_keys, 10_000);
/// # Ok::<(), weft_ratelimit::Error>(())
/// ```
pub struct KeyedBuilder<K, C = FastClock, S = RandomState> {
    key: PhantomData<fn() -> K>,
    quota: Quota,
    max_keys: usize,
    shards: Option<usize>,
    clock: C,
    hasher: S,
}

impl<K, C: fmt::Debug, S> fmt::Debug for KeyedBuilder<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBuilder")
            .field("quota", &self.quota)
            .field("max_keys", &self.max_keys)
            .field("shards", &self.shards)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, C: Clock, S: BuildHasher> KeyedBuilder<K, C, S> {
    /// The hard cap on keys held at once (default [`KeyedLimiter::DEFAULT_MAX_KEYS`]).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// The number of shards, rounded up to a power of two and limited to `max_keys`
    /// (default: 4 per available CPU).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The time source.
    pub fn clock<C2: Clock>(self, clock: C2) -> KeyedBuilder<K, C2, S> {
        KeyedBuilder {
            key: PhantomData,
            quota: self.quota,
            max_keys: self.max_keys,
            shards: self.shards,
            clock,
            hasher: self.hasher,
        }
    }

    /// The key hasher (default: std's `RandomState`, which resists hash flooding by
    /// clients who choose their keys).
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> KeyedBuilder<K, C, S2> {
        KeyedBuilder {
            key: PhantomData,
            quota: self.quota,
            max_keys: self.max_keys,
            shards: self.shards,
            clock: self.clock,
            hasher,
        }
    }

    /// Builds the limiter.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroKeys`] if `max_keys` is zero.
    pub fn build(self) -> Result<KeyedLimiter<K, C, S>, Error> {
        if self.max_keys == 0 {
            return Err(Error::ZeroKeys);
        }
        let wanted = self
            .shards
            .unwrap_or_else(|| 4 * std::thread::available_parallelism().map_or(4, |n| n.get()));
        // A power of two no larger than `max_keys`, so every shard can hold a key.
        let mut n = wanted.clamp(1, 1 << 16).next_power_of_two();
        while n > self.max_keys {
            n /= 2;
        }
        let base = self.max_keys / n;
        let extra = self.max_keys % n;
        let shards = (0..n)
            .map(|i| {
                CachePadded::new(Mutex::new(Shard {
                    table: HashTable::new(),
                    entries: Vec::new(),
                    cap: base + usize::from(i < extra),
                    rng: fastrand::Rng::with_seed(i as u64 ^ 0x9e37_79b9_7f4a_7c15),
                }))
            })
            .collect();
        let epoch = Epoch::now(&self.clock);
        Ok(KeyedLimiter {
            shards,
            shard_bits: n.trailing_zeros(),
            hasher: self.hasher,
            gcra: Gcra::new(&self.quota),
            quota: self.quota,
            max_keys: self.max_keys,
            counters: Counters::default(),
            clock: self.clock,
            epoch,
        })
    }
}

/// A GCRA limiter with one independent quota per key, holding at most `max_keys` keys.
///
/// # Examples
///
/// ```
/// use weft_ratelimit::{KeyedLimiter, Quota};
/// use weft_time::ManualClock;
///
/// let clock = ManualClock::new();
/// let limiter = KeyedLimiter::builder(Quota::per_second(1)?)
///     .max_keys(1000)
///     .clock(clock.clone())
///     .build()?;
/// assert!(limiter.check(&"alice").is_ok());
/// assert!(limiter.check(&"alice").is_err()); // alice used her quota
/// assert!(limiter.check(&"bob").is_ok()); // bob has his own
/// clock.advance(std::time::Duration::from_secs(1));
/// assert_eq!(limiter.retain_recent(), 2); // both replenished: nothing worth keeping
/// assert_eq!(limiter.len(), 0);
/// # Ok::<(), weft_ratelimit::Error>(())
/// ```
pub struct KeyedLimiter<K, C: Clock = FastClock, S = RandomState> {
    shards: Box<[CachePadded<Mutex<Shard<K>>>]>,
    /// log2 of the number of shards.
    shard_bits: u32,
    hasher: S,
    gcra: Gcra,
    quota: Quota,
    max_keys: usize,
    counters: Counters,
    clock: C,
    /// Where nanosecond times count from.
    epoch: Epoch,
}

impl<K: Hash + Eq> KeyedLimiter<K, FastClock, RandomState> {
    /// The default cap on keys: 2²⁰ (about a million).
    pub const DEFAULT_MAX_KEYS: usize = 1 << 20;

    /// A keyed limiter with the defaults (at most [`DEFAULT_MAX_KEYS`](Self::DEFAULT_MAX_KEYS)
    /// keys, default clock and hasher).
    ///
    /// # Errors
    ///
    /// None with the defaults; the `Result` matches [`KeyedBuilder::build`].
    pub fn new(quota: Quota) -> Result<Self, Error> {
        Self::builder(quota).build()
    }

    /// A builder to set the key cap, shard count, clock or hasher.
    pub fn builder(quota: Quota) -> KeyedBuilder<K, FastClock, RandomState> {
        KeyedBuilder {
            key: PhantomData,
            quota,
            max_keys: Self::DEFAULT_MAX_KEYS,
            shards: None,
            clock: FastClock::new(),
            hasher: RandomState::new(),
        }
    }
}

impl<K: Hash + Eq, C: Clock, S: BuildHasher> KeyedLimiter<K, C, S> {
    /// Admits one cell for `key`, or says when it would be admitted.
    #[inline]
    pub fn check(&self, key: &K) -> Result<Admitted, NotUntil>
    where
        K: Clone,
    {
        self.check_cells(key, 1)
    }

    /// Admits `n` cells for `key`, all or nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InsufficientCapacity`] if `n` exceeds the burst.
    ///
    /// ```
    /// let l = weft_ratelimit::KeyedLimiter::new(weft_ratelimit::Quota::per_second(5)?)?;
    /// assert_eq!(l.check_n(&1u8, 5)?.unwrap().remaining(), 0);
    /// assert!(l.check_n(&1u8, 1)?.is_err());
    /// # Ok::<(), weft_ratelimit::Error>(())
    /// ```
    pub fn check_n(&self, key: &K, n: u32) -> Result<Result<Admitted, NotUntil>, Error>
    where
        K: Clone,
    {
        if n > self.quota.burst() {
            return Err(Error::InsufficientCapacity {
                requested: n,
                burst: self.quota.burst(),
            });
        }
        Ok(self.check_cells(key, n))
    }

    fn check_cells(&self, key: &K, n: u32) -> Result<Admitted, NotUntil>
    where
        K: Clone,
    {
        let hash = self.hasher.hash_one(key);
        // The top bits pick the shard; hashbrown uses the low bits (bucket) and the top 7
        // (tag) inside the shard, so with many shards some tag entropy is shared, which
        // costs a little probing, never correctness.
        let shard_index = if self.shard_bits == 0 {
            0
        } else {
            (hash >> (64 - self.shard_bits)) as usize
        };
        let now = self.epoch.nanos(&self.clock);
        let mut shard = self.shards[shard_index].lock();
        let result = match shard.find(hash, key) {
            Some(i) => match self.gcra.test(shard.entries[i].tat, now, n) {
                Ok(new_tat) => {
                    shard.entries[i].tat = new_tat;
                    Ok(new_tat)
                }
                Err(earliest) => Err(earliest),
            },
            None => {
                // An absent key is fully replenished; `n <= burst` always fits.
                let new_tat = self.gcra.test(now, now, n).unwrap_or(now);
                self.make_room(&mut shard, now);
                shard.push(
                    Entry {
                        key: key.clone(),
                        tat: new_tat,
                    },
                    hash,
                    &self.hasher,
                );
                Ok(new_tat)
            }
        };
        drop(shard);
        // Relaxed: statistics only.
        match result {
            Ok(new_tat) => {
                self.counters
                    .admitted
                    .fetch_add(u64::from(n), Ordering::Relaxed);
                Ok(Admitted::lazy(self.gcra, new_tat, now))
            }
            Err(earliest) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                Err(NotUntil::new(&self.epoch, earliest, now, self.quota))
            }
        }
    }

    /// Before an insertion: drop one random replenished entry (amortised cleanup), and if
    /// the shard is still full, evict the idlest of a sample.
    fn make_room(&self, shard: &mut Shard<K>, now: u64) {
        if let Some(i) = shard.sample() {
            if shard.entries[i].tat <= now {
                shard.remove_at(i, &self.hasher);
                self.counters.evicted_idle.fetch_add(1, Ordering::Relaxed);
            }
        }
        if shard.entries.len() < shard.cap {
            return;
        }
        let mut victim: Option<usize> = None;
        for _ in 0..EVICTION_SAMPLES {
            let Some(i) = shard.sample() else { break };
            if victim.is_none_or(|v| shard.entries[i].tat < shard.entries[v].tat) {
                victim = Some(i);
            }
        }
        if let Some(v) = victim {
            let counter = if shard.entries[v].tat <= now {
                &self.counters.evicted_idle
            } else {
                &self.counters.evicted_active
            };
            shard.remove_at(v, &self.hasher);
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops every replenished key (one pass over all shards) and returns how many were
    /// dropped. Never needed for bounded memory (the cap and the per-insert cleanup see to
    /// that), but frees memory promptly after a burst of distinct keys.
    pub fn retain_recent(&self) -> usize {
        let now = self.epoch.nanos(&self.clock);
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let mut i = 0;
            while i < shard.entries.len() {
                if shard.entries[i].tat <= now {
                    shard.remove_at(i, &self.hasher);
                    dropped += 1;
                } else {
                    i += 1;
                }
            }
        }
        self.counters
            .evicted_idle
            .fetch_add(dropped as u64, Ordering::Relaxed);
        dropped
    }

    /// Releases spare capacity of every shard's storage.
    pub fn shrink_to_fit(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let Shard { table, entries, .. } = &mut *shard;
            entries.shrink_to_fit();
            table.shrink_to_fit(|&j| self.hasher.hash_one(&entries[j as usize].key));
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().entries.len()).sum()
    }

    /// `true` if no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of key state per held key, not counting spare capacity: one entry (key and
    /// arrival time) plus its table slot and control byte.
    ///
    /// ```
    /// let l = weft_ratelimit::KeyedLimiter::<u64>::new(weft_ratelimit::Quota::per_second(1)?)?;
    /// assert_eq!(l.memory_per_key(), 16 + 4 + 1); // key and arrival time, slot, control byte
    /// # Ok::<(), weft_ratelimit::Error>(())
    /// ```
    pub fn memory_per_key(&self) -> usize {
        std::mem::size_of::<Entry<K>>() + std::mem::size_of::<u32>() + 1
    }

    /// A snapshot of the counters and key state.
    pub fn status(&self) -> KeyedStatus {
        let (mut keys, mut memory_bytes) = (0, 0);
        for shard in self.shards.iter() {
            let shard = shard.lock();
            keys += shard.entries.len();
            memory_bytes += shard.entries.capacity() * std::mem::size_of::<Entry<K>>()
                + shard.table.capacity() * (std::mem::size_of::<u32>() + 1);
        }
        KeyedStatus {
            admitted: self.counters.admitted.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
            keys,
            max_keys: self.max_keys,
            evicted_idle: self.counters.evicted_idle.load(Ordering::Relaxed),
            evicted_active: self.counters.evicted_active.load(Ordering::Relaxed),
            memory_bytes,
        }
    }

    /// The quota each key gets.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }
}

impl<K, C: Clock, S> fmt::Debug for KeyedLimiter<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("quota", &self.quota)
            .field("max_keys", &self.max_keys)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}
