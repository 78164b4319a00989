//! What the pool asks of its user: the [`Manager`] that creates and recycles objects, the
//! per-object [`Metrics`] it keeps, and the hooks.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{HookError, RecycleError};

/// Creates, recycles and checks the objects of a pool (connections, sessions, buffers).
///
/// Only [`create`](Manager::create) is required. [`recycle`](Manager::recycle) runs
/// when an idle object is checked out (unless
/// [`test_on_checkout`](crate::Builder::test_on_checkout) is off) and may reject it:
/// a rejected object is closed and the checkout moves on to the next idle object or a
/// new one. [`has_broken`](Manager::has_broken) is a fast, synchronous check run when an
/// object is returned; a broken object is closed instead of going back to the idle list.
///
/// The futures must be `Send`; write the methods as `async fn`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use weft_pool::{Manager, Metrics, Pool, RecycleError};
///
/// /// A pool of byte buffers that are cleared before reuse.
/// struct Buffers;
///
/// impl Manager for Buffers {
///     type Object = Vec<u8>;
///     type Error = std::io::Error;
///
///     async fn create(&self) -> Result<Vec<u8>, std::io::Error> {
///         Ok(Vec::with_capacity(4096))
///     }
///
///     async fn recycle(
///         &self,
///         buf: &mut Vec<u8>,
///         _metrics: &Metrics,
///     ) -> Result<(), RecycleError<std::io::Error>> {
///         if buf.capacity() > 1 << 20 {
///             return Err(RecycleError::Message("grew too large".into()));
///         }
///         buf.clear();
///         Ok(())
///     }
/// }
///
/// let pool = Pool::builder(Buffers).max_size(4).build()?;
/// let mut buf = pool.get().await?;
/// buf.extend_from_slice(b"request");
/// drop(buf);
/// assert!(pool.get().await?.is_empty()); // recycled: cleared
/// # Ok(())
/// # }
/// ```
pub trait Manager: Send + Sync + 'static {
    /// The pooled object.
    type Object: Send + 'static;
    /// What creating (or recycling) an object can fail with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Creates a new object. Failures are retried with the pool's backoff
    /// ([`Builder::create_retries`](crate::Builder::create_retries)).
    fn create(&self) -> impl Future<Output = Result<Self::Object, Self::Error>> + Send;

    /// Validates and resets an idle object as it is checked out; an `Err` rejects it (it
    /// is closed). The default accepts every object.
    fn recycle(
        &self,
        obj: &mut Self::Object,
        metrics: &Metrics,
    ) -> impl Future<Output = Result<(), RecycleError<Self::Error>>> + Send {
        let _ = (obj, metrics);
        async { Ok(()) }
    }

    /// A fast check run when an object is returned: `true` closes it instead of keeping
    /// it (a connection whose socket saw an error, say). Must not block. The default
    /// returns `false`.
    fn has_broken(&self, obj: &mut Self::Object) -> bool {
        let _ = obj;
        false
    }
}

/// What the pool knows about one object, passed to [`Manager::recycle`] and the hooks and
/// readable through [`Object::metrics`](crate::Object::metrics). Instants are on the
/// pool's [`Clock`](weft_time::Clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// When the object was created.
    pub created: Instant,
    /// When it was last recycled at a checkout, if ever.
    pub recycled: Option<Instant>,
    /// How many times it was recycled.
    pub recycle_count: u64,
    /// When it was last returned to the pool (its creation, if never).
    pub last_used: Instant,
}

impl Metrics {
    pub(crate) fn new(now: Instant) -> Self {
        Metrics {
            created: now,
            recycled: None,
            recycle_count: 0,
            last_used: now,
        }
    }

    /// How old the object is at `now`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use weft_pool::{Manager, Object, Pool};
    /// # struct Numbers;
    /// # impl Manager for Numbers {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> { Ok(0) }
    /// # }
    /// use std::time::Duration;
    ///
    /// let pool = Pool::builder(Numbers).build()?;
    /// let obj = pool.get().await?;
    /// let m = Object::metrics(&obj);
    /// assert_eq!(m.age(m.created + Duration::from_secs(5)), Duration::from_secs(5));
    /// # Ok(())
    /// # }
    /// ```
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created)
    }

    /// How long the object has been idle at `now` (since it was last returned).
    pub fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_used)
    }
}

/// A hook: inspects or adjusts an object, and may reject it with a [`HookError`].
/// Implemented by every `Fn(&mut T, &Metrics) -> Result<(), HookError> + Send + Sync`
/// closure; see [`Builder::post_create`](crate::Builder::post_create) and the recycle
/// hooks.
///
/// Hooks run synchronously on the checkout's task, outside the pool's lock.
///
/// ```
/// use weft_pool::{HookError, HookFn, Metrics};
/// fn accepts(_: impl HookFn<String>) {}
/// accepts(|s: &mut String, _: &Metrics| if s.is_empty() { Err(HookError::new("empty")) } else { Ok(()) });
/// ```
pub trait HookFn<T>: Fn(&mut T, &Metrics) -> Result<(), HookError> + Send + Sync + 'static {}

impl<T, F> HookFn<T> for F where
    F: Fn(&mut T, &Metrics) -> Result<(), HookError> + Send + Sync + 'static
{
}

/// A stored hook. Immutable configuration shared by reference count only, hence a
/// `std::sync::Arc` (loom's cannot hold unsized values).
pub(crate) type Hook<T> = std::sync::Arc<dyn HookFn<T>>;
