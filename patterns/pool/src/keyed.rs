//! Keyed pools: one sub-pool per key (a host, a database), a cap per key and a global
//! cap over all keys, and idle keys dropped.
//!
//! Each key gets an ordinary [`Pool`] with the shared settings (`max_size` is the
//! per-key cap). The global cap is a fair counting semaphore (`Budget`) every sub-pool
//! takes a unit from before it creates an object and gives back when the object is
//! closed. When it is exhausted, a creation waits in the budget's FIFO queue, and three
//! things make sure it is not stranded while another key sits on idle objects:
//!
//! 1. a checkout blocked on the budget closes the least recently used idle object of any
//!    key each time it is polled (which wakes the first budget waiter);
//! 2. an object returned to a key with no waiters of its own, while checkouts of other
//!    keys wait for budget, is closed instead of kept idle;
//! 3. the check in (1) happens after the blocked checkout registered in the budget's
//!    queue, and the check in (2) is made under the sub-pool's lock, so an object going
//!    idle concurrently is seen by one of the two.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::panic::Location;
use std::task::Poll;
use std::time::{Duration, Instant};

use weft_sync::{Arc, Mutex};

use crate::budget::Budget;
use crate::config::{Config, config_setters};
use crate::error::{ConfigError, Error};
use crate::pool::internals;
use crate::timer::{Timers, run_blocking};
use crate::{Manager, Object, Pool, Status};

/// Makes the manager of a new key's sub-pool.
type Factory<K, M> = Box<dyn Fn(&K) -> M + Send + Sync>;

struct Entry<M: Manager> {
    pool: Pool<M>,
    last_used: Instant,
}

/// The keys and whether the keyed pool was closed, under one lock, so that no key is
/// created after `close`.
struct Keys<K, M: Manager> {
    map: HashMap<K, Entry<M>>,
    closed: bool,
}

struct Inner<K, M: Manager> {
    pools: Mutex<Keys<K, M>>,
    factory: Factory<K, M>,
    config: Config<M::Object>,
    budget: Arc<Budget>,
    key_idle_timeout: Option<Duration>,
}

/// A pool per key with a cap per key and a global cap: connections to many hosts or
/// databases, at most `max_size` to each and `max_total` in all.
///
/// Keys are created on first use by the factory given to [`builder`](KeyedPool::builder)
/// and dropped by [`maintain`](KeyedPool::maintain) once unused for
/// [`key_idle_timeout`](KeyedBuilder::key_idle_timeout). When all `max_total` objects
/// exist and a key needs a new one, the least recently used idle object of another key is
/// closed to make room; if none is idle, the checkout waits (fairly, in FIFO order) for
/// an object of any key to close.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use weft_pool::{KeyedPool, Manager};
///
/// struct Conn { host: String }
/// impl Manager for Conn {
///     type Object = String;
///     type Error = std::io::Error;
///     async fn create(&self) -> Result<String, std::io::Error> {
///         Ok(format!("connection to {}", self.host))
///     }
/// }
///
/// let pool = KeyedPool::builder(|host: &String| Conn { host: host.clone() })
///     .max_size(2) // per host
///     .max_total(3) // over all hosts
///     .build()?;
/// let a = pool.get(&"a.example".to_string()).await?;
/// let _b = pool.get(&"b.example".to_string()).await?;
/// assert_eq!(*a, "connection to a.example");
/// assert_eq!(pool.total_size(), 2);
/// # Ok(())
/// # }
/// ```
pub struct KeyedPool<K, M: Manager> {
    inner: Arc<Inner<K, M>>,
}

impl<K, M: Manager> Clone for KeyedPool<K, M> {
    fn clone(&self) -> Self {
        KeyedPool {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, M: Manager> fmt::Debug for KeyedPool<K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (used, max, waiting) = self.inner.budget.usage();
        f.debug_struct("KeyedPool")
            .field("keys", &self.inner.pools.lock().map.len())
            .field("total_size", &used)
            .field("max_total", &max)
            .field("waiting_for_capacity", &waiting)
            .finish_non_exhaustive()
    }
}

/// Builds a [`KeyedPool`]: the per-key settings of [`Builder`](crate::Builder) plus
/// [`max_total`](KeyedBuilder::max_total) and
/// [`key_idle_timeout`](KeyedBuilder::key_idle_timeout).
#[must_use = "a KeyedBuilder does nothing until `.build()` is called"]
pub struct KeyedBuilder<K, M: Manager> {
    factory: Factory<K, M>,
    config: Config<M::Object>,
    max_total: Option<usize>,
    key_idle_timeout: Option<Duration>,
}

impl<K, M: Manager> fmt::Debug for KeyedBuilder<K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBuilder")
            .field("max_size", &self.config.max_size)
            .field("max_total", &self.max_total)
            .finish_non_exhaustive()
    }
}

impl<K, M> KeyedBuilder<K, M>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    M: Manager,
{
    config_setters!();

    /// The most objects over all keys (default: unlimited but for the per-key caps).
    pub fn max_total(mut self, max_total: usize) -> Self {
        self.max_total = Some(max_total);
        self
    }

    /// [`KeyedPool::maintain`] drops a key (closing its idle objects) once it has had no
    /// checkout for this long and no object of it is in use.
    pub fn key_idle_timeout(mut self, timeout: Duration) -> Self {
        self.key_idle_timeout = Some(timeout);
        self
    }

    /// Validates the settings and builds the keyed pool.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the invalid setting.
    pub fn build(mut self) -> Result<KeyedPool<K, M>, ConfigError> {
        self.config.validate()?;
        if self.max_total == Some(0) {
            return Err(ConfigError::ZeroMaxTotal);
        }
        if self.key_idle_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroDuration {
                setting: "key_idle_timeout",
            });
        }
        let interval = self.config.maintenance_interval.take();
        crate::pool::resolve_timer(&mut self.config);
        let pool = KeyedPool {
            inner: Arc::new(Inner {
                pools: Mutex::new(Keys {
                    map: HashMap::new(),
                    closed: false,
                }),
                factory: self.factory,
                config: self.config,
                budget: Arc::new(Budget::new(self.max_total.unwrap_or(usize::MAX))),
                key_idle_timeout: self.key_idle_timeout,
            }),
        };
        if let Some(interval) = interval {
            spawn_maintenance(&pool, interval)?;
        }
        Ok(pool)
    }
}

/// What [`KeyedPool::status`] reports over all keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedStatus {
    /// Keys with a sub-pool.
    pub keys: usize,
    /// Objects (and creations in progress) over all keys.
    pub total_size: usize,
    /// The global cap.
    pub max_total: usize,
    /// Creations waiting for global capacity.
    pub waiting_for_capacity: usize,
}

impl<K, M> KeyedPool<K, M>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    M: Manager,
{
    /// A builder; `factory` makes the manager of each new key's sub-pool.
    pub fn builder(factory: impl Fn(&K) -> M + Send + Sync + 'static) -> KeyedBuilder<K, M> {
        KeyedBuilder {
            factory: Box::new(factory),
            config: Config::new(),
            max_total: None,
            key_idle_timeout: None,
        }
    }

    /// The sub-pool of `key`, created if needed, marking the key used; `None` once the
    /// keyed pool is closed.
    fn pool_for(&self, key: &K) -> Option<Pool<M>> {
        let now = self.inner.config.clock.now();
        let mut keys = self.inner.pools.lock();
        if keys.closed {
            return None;
        }
        if let Some(entry) = keys.map.get_mut(key) {
            entry.last_used = now;
            return Some(entry.pool.clone());
        }
        let mut config = self.inner.config.clone();
        config.maintenance_interval = None;
        let pool = Pool::from_validated(
            (self.inner.factory)(key),
            config,
            Some(Arc::clone(&self.inner.budget)),
        );
        keys.map.insert(
            key.clone(),
            Entry {
                pool: pool.clone(),
                last_used: now,
            },
        );
        Some(pool)
    }

    /// Whether [`close`](KeyedPool::close) was called (for the background task).
    #[cfg(all(feature = "tokio", not(loom)))]
    fn closed(&self) -> bool {
        self.inner.pools.lock().closed
    }

    /// Checks out an object for `key` (see [`Pool::get`]); returned to `key`'s
    /// sub-pool on drop.
    ///
    /// # Errors
    ///
    /// As [`Pool::get`]; [`Error::Closed`] after [`close`](KeyedPool::close).
    #[track_caller]
    pub fn get(
        &self,
        key: &K,
    ) -> impl Future<Output = Result<Object<M>, Error<M::Error>>> + Send + '_ {
        let location = Location::caller();
        let pool = self.pool_for(key);
        async move {
            let Some(pool) = pool else {
                return Err(Error::Closed);
            };
            let timers = Timers::Async(pool.shared.config.timer.as_deref());
            self.checkout(&pool, timers, location).await
        }
    }

    /// [`get`](KeyedPool::get) for synchronous code (see [`Pool::get_blocking`]).
    ///
    /// # Errors
    ///
    /// As [`get`](KeyedPool::get).
    #[track_caller]
    pub fn get_blocking(&self, key: &K) -> Result<Object<M>, Error<M::Error>> {
        let location = Location::caller();
        let Some(pool) = self.pool_for(key) else {
            return Err(Error::Closed);
        };
        run_blocking!(&*self.inner.config.clock, |timers| self
            .checkout(&pool, timers, location))
    }

    /// A sub-pool checkout that, while it waits for global capacity, closes idle objects
    /// of other keys to make room.
    async fn checkout(
        &self,
        pool: &Pool<M>,
        timers: Timers<'_>,
        location: &'static Location<'static>,
    ) -> Result<Object<M>, Error<M::Error>> {
        let mut checkout = std::pin::pin!(pool.checkout(timers, location, true));
        std::future::poll_fn(|cx| match checkout.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => {
                if self.inner.budget.has_waiters() {
                    self.evict_lru_idle();
                }
                Poll::Pending
            }
        })
        .await
    }

    /// Closes the least recently used idle object over all keys, if any.
    fn evict_lru_idle(&self) -> bool {
        let pools: Vec<Pool<M>> = self
            .inner
            .pools
            .lock()
            .map
            .values()
            .map(|e| e.pool.clone())
            .collect();
        let victim = pools
            .iter()
            .filter_map(|p| internals::idle_recency(&p.shared).map(|at| (at, p)))
            .min_by_key(|(at, _)| *at);
        victim.is_some_and(|(_, p)| internals::evict_one(&p.shared))
    }

    /// The status of `key`'s sub-pool, if the key exists.
    pub fn status(&self, key: &K) -> Option<Status> {
        let keys = self.inner.pools.lock();
        keys.map.get(key).map(|e| e.pool.status())
    }

    /// Keys, objects over all keys, the cap, and creations waiting for capacity.
    ///
    /// ```
    /// # use weft_pool::{KeyedPool, Manager};
    /// # struct M;
    /// # impl Manager for M {
    /// #     type Object = ();
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// # }
    /// let pool = KeyedPool::builder(|_: &u8| M).max_total(10).build()?;
    /// let s = pool.keyed_status();
    /// assert_eq!((s.keys, s.total_size, s.max_total), (0, 0, 10));
    /// # Ok::<(), weft_pool::ConfigError>(())
    /// ```
    pub fn keyed_status(&self) -> KeyedStatus {
        let (total_size, max_total, waiting_for_capacity) = self.inner.budget.usage();
        KeyedStatus {
            keys: self.inner.pools.lock().map.len(),
            total_size,
            max_total,
            waiting_for_capacity,
        }
    }

    /// Objects (and creations in progress) over all keys.
    pub fn total_size(&self) -> usize {
        self.inner.budget.usage().0
    }

    /// Runs [`Pool::maintain`] on every key, then drops the keys unused for
    /// `key_idle_timeout` that have no object in use and no checkout in progress (their
    /// idle objects are closed, freeing global capacity). Returns how many keys it
    /// dropped.
    pub async fn maintain(&self) -> usize {
        for pool in self.snapshot() {
            pool.maintain().await;
        }
        self.drop_idle_keys()
    }

    /// [`maintain`](KeyedPool::maintain) for synchronous code.
    pub fn maintain_blocking(&self) -> usize {
        for pool in self.snapshot() {
            pool.maintain_blocking();
        }
        self.drop_idle_keys()
    }

    fn snapshot(&self) -> Vec<Pool<M>> {
        let keys = self.inner.pools.lock();
        keys.map.values().map(|e| e.pool.clone()).collect()
    }

    fn drop_idle_keys(&self) -> usize {
        let Some(timeout) = self.inner.key_idle_timeout else {
            return 0;
        };
        let now = self.inner.config.clock.now();
        let mut dropped = Vec::new();
        {
            let mut keys = self.inner.pools.lock();
            // A sub-pool handle is cloned only under this lock, and every checkout and
            // object holds one: a count of 1 (the map's) means nobody is using the key.
            keys.map.retain(|_, e| {
                let unused = Arc::strong_count(&e.pool.shared) == 1
                    && now.saturating_duration_since(e.last_used) >= timeout;
                if unused {
                    dropped.push(e.pool.clone());
                }
                !unused
            });
        }
        for pool in &dropped {
            pool.close();
        }
        dropped.len()
    }

    /// Closes every key's sub-pool; later checkouts fail with [`Error::Closed`].
    pub fn close(&self) {
        let pools: Vec<Pool<M>> = {
            let mut keys = self.inner.pools.lock();
            keys.closed = true;
            keys.map.drain().map(|(_, e)| e.pool).collect()
        };
        for pool in pools {
            pool.close();
        }
    }
}

#[cfg(all(feature = "tokio", not(loom)))]
fn spawn_maintenance<K, M>(pool: &KeyedPool<K, M>, interval: Duration) -> Result<(), ConfigError>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    M: Manager,
{
    crate::maintain::spawn_loop(
        &pool.inner,
        |inner| async move {
            let pool = KeyedPool { inner };
            if pool.closed() {
                return false;
            }
            pool.maintain().await;
            true
        },
        move |_| tokio::time::sleep(interval),
    )
}

#[cfg(not(all(feature = "tokio", not(loom))))]
fn spawn_maintenance<K, M: Manager>(
    _pool: &KeyedPool<K, M>,
    _interval: Duration,
) -> Result<(), ConfigError> {
    Err(ConfigError::NoRuntime)
}
