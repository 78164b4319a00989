//! One breaker per key (host, endpoint, tenant), with a bounded number of keys.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};

use weft_sync::atomic::{AtomicU64, Ordering};
use weft_sync::{Arc, CachePadded, Mutex};
use weft_time::{Clock, FastClock};

use crate::{CallError, CircuitBreaker, State};

/// Shards of the key map.
const SHARDS: usize = 16;

/// One shard: key to breaker.
type Shard<K, C> = CachePadded<Mutex<HashMap<K, Entry<C>>>>;

/// Makes the breaker of a new key.
type Factory<K, C> = Box<dyn Fn(&K) -> CircuitBreaker<C> + Send + Sync>;

struct Entry<C: Clock> {
    breaker: Arc<CircuitBreaker<C>>,
    /// Tick of the last lookup (for least-recently-used eviction).
    last_used: AtomicU64,
}

/// A breaker per key, created on first use by a factory, holding at most `max_keys`.
///
/// A failing host should not open the breaker for healthy ones: key breakers by host or
/// endpoint. The number of keys is bounded: at the cap, inserting a new key evicts the
/// least recently used breaker of its shard that is closed (an open or half-open breaker
/// holds protective state and is evicted only if its whole shard is open). Evictions are
/// counted.
///
/// ```
/// use weft_circuitbreaker::{CircuitBreaker, KeyedBreakers, SlidingWindow, State};
///
/// let breakers = KeyedBreakers::new(1000, |_host: &&str| {
///     CircuitBreaker::builder()
///         .sliding_window(SlidingWindow::count(2))
///         .minimum_calls(2)
///         .build()
///         .expect("valid config")
/// });
/// for _ in 0..2 {
///     let _ = breakers.call(&"db-1", || Err::<(), _>("down"));
/// }
/// assert_eq!(breakers.get(&"db-1").state(), State::Open);
/// assert_eq!(breakers.get(&"db-2").state(), State::Closed); // another host
/// ```
pub struct KeyedBreakers<K, C: Clock = FastClock, S = RandomState> {
    shards: Box<[Shard<K, C>]>,
    factory: Factory<K, C>,
    hasher: S,
    shard_cap: usize,
    max_keys: usize,
    /// Insertions so far: the clock breakers' recency is measured in.
    tick: AtomicU64,
    evicted: AtomicU64,
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedBreakers<K, C, RandomState> {
    /// A keyed set holding at most `max_keys` breakers (at least one per shard), each
    /// made by `factory` on first use of its key.
    pub fn new(
        max_keys: usize,
        factory: impl Fn(&K) -> CircuitBreaker<C> + Send + Sync + 'static,
    ) -> Self {
        let max_keys = max_keys.max(SHARDS);
        KeyedBreakers {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(Mutex::new(HashMap::new())))
                .collect(),
            factory: Box::new(factory),
            hasher: RandomState::new(),
            shard_cap: max_keys / SHARDS,
            max_keys: (max_keys / SHARDS) * SHARDS,
            tick: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }
}

impl<K: Hash + Eq + Clone, C: Clock, S: BuildHasher> KeyedBreakers<K, C, S> {
    /// The breaker for `key`, created if absent.
    pub fn get(&self, key: &K) -> Arc<CircuitBreaker<C>> {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut map = shard.lock();
        if let Some(entry) = map.get(key) {
            // Recency is counted in insertions: a hit only reads the clock of inserts, so
            // the common path writes no line shared by every caller. Relaxed: a hint only.
            entry
                .last_used
                .store(self.tick.load(Ordering::Relaxed), Ordering::Relaxed);
            return Arc::clone(&entry.breaker);
        }
        let tick = self.tick.fetch_add(1, Ordering::Relaxed) + 1;
        if map.len() >= self.shard_cap {
            self.evict_one(&mut map);
        }
        let breaker = Arc::new((self.factory)(key));
        map.insert(
            key.clone(),
            Entry {
                breaker: Arc::clone(&breaker),
                last_used: AtomicU64::new(tick),
            },
        );
        breaker
    }

    /// Evicts the least recently used closed breaker (or, if none is closed, the least
    /// recently used one).
    fn evict_one(&self, map: &mut HashMap<K, Entry<C>>) {
        let victim = map
            .iter()
            .min_by_key(|(_, e)| {
                (
                    e.breaker.state() != State::Closed,
                    e.last_used.load(Ordering::Relaxed),
                )
            })
            .map(|(k, _)| k.clone());
        if let Some(k) = victim {
            map.remove(&k);
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs `op` through `key`'s breaker.
    ///
    /// # Errors
    ///
    /// As [`CircuitBreaker::call`].
    pub fn call<T, E>(
        &self,
        key: &K,
        op: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, CallError<E>> {
        self.get(key).call(op)
    }

    /// Breakers held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// `true` if no breaker is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cap on breakers held (rounded down to a multiple of the shard count).
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Breakers evicted to stay under the cap, since creation.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

impl<K, C: Clock, S> fmt::Debug for KeyedBreakers<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBreakers")
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}
