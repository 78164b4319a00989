//! Tower middleware (feature `tower`): one limiter shared by every clone of the service.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash, RandomState};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use weft_sync::Arc;
use weft_time::{Clock, FastClock};

use crate::{KeyedLimiter, NotUntil, RateLimiter};

/// The error type of the rate-limiting services: the inner service's error, or a
/// [`NotUntil`] when the request was limited (downcast to answer `429` with
/// `Retry-After`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A [`Layer`] that limits every request against one shared [`RateLimiter`].
///
/// Unlike a limiter created per service instance, the state lives behind an `Arc` that
/// every clone of the service shares, so cloning the service per connection (as hyper and
/// axum do) does not multiply the quota.
///
/// ```
/// use tower_layer::Layer;
/// use tower_service::Service;
/// use weft_ratelimit::{NotUntil, Quota, RateLimitLayer, RateLimiter};
///
/// # struct Echo;
/// # impl Service<u32> for Echo {
/// #     type Response = u32;
/// #     type Error = std::convert::Infallible;
/// #     type Future = std::future::Ready<Result<u32, Self::Error>>;
/// #     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
/// #         std::task::Poll::Ready(Ok(()))
/// #     }
/// #     fn call(&mut self, r: u32) -> Self::Future { std::future::ready(Ok(r)) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_ratelimit::Error> {
/// let layer = RateLimitLayer::new(RateLimiter::direct(Quota::per_minute(1)?));
/// let mut a = layer.layer(Echo);
/// let mut b = layer.layer(Echo); // a clone per connection shares the quota
/// assert_eq!(a.call(1).await.unwrap(), 1);
/// let err = b.call(2).await.unwrap_err();
/// assert!(err.downcast_ref::<NotUntil>().is_some());
/// # Ok(())
/// # }
/// ```
pub struct RateLimitLayer<C: Clock = FastClock> {
    limiter: Arc<RateLimiter<C>>,
}

impl<C: Clock> RateLimitLayer<C> {
    /// A layer sharing `limiter` between all the services it wraps.
    pub fn new(limiter: RateLimiter<C>) -> Self {
        Self::shared(Arc::new(limiter))
    }

    /// A layer over an already shared limiter (to also inspect its `status()`).
    pub fn shared(limiter: Arc<RateLimiter<C>>) -> Self {
        RateLimitLayer { limiter }
    }
}

impl<C: Clock> Clone for RateLimitLayer<C> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: Arc::clone(&self.limiter),
        }
    }
}

impl<C: Clock> fmt::Debug for RateLimitLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S, C: Clock> Layer<S> for RateLimitLayer<C> {
    type Service = RateLimit<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: Arc::clone(&self.limiter),
        }
    }
}

/// The service made by [`RateLimitLayer`].
pub struct RateLimit<S, C: Clock = FastClock> {
    inner: S,
    limiter: Arc<RateLimiter<C>>,
}

impl<S: Clone, C: Clock> Clone for RateLimit<S, C> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            limiter: Arc::clone(&self.limiter),
        }
    }
}

impl<S, C: Clock> fmt::Debug for RateLimit<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<S, C, Req> Service<Req> for RateLimit<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Clock,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.limiter.check() {
            Ok(_) => ResponseFuture::inner(self.inner.call(req)),
            Err(not_until) => ResponseFuture::limited(not_until),
        }
    }
}

/// A [`Layer`] that limits each request against its key's quota in one shared
/// [`KeyedLimiter`]; `extract` picks the key (client IP, API token, tenant) from the
/// request.
///
/// ```
/// use tower_layer::Layer;
/// use tower_service::Service;
/// use weft_ratelimit::{KeyedLimiter, KeyedRateLimitLayer, NotUntil, Quota};
///
/// # #[derive(Clone)] struct Echo;
/// # impl Service<(u8, &'static str)> for Echo {
/// #     type Response = &'static str;
/// #     type Error = std::convert::Infallible;
/// #     type Future = std::future::Ready<Result<&'static str, Self::Error>>;
/// #     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
/// #         std::task::Poll::Ready(Ok(()))
/// #     }
/// #     fn call(&mut self, r: (u8, &'static str)) -> Self::Future { std::future::ready(Ok(r.1)) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_ratelimit::Error> {
/// let limiter = KeyedLimiter::new(Quota::per_minute(1)?)?;
/// let layer = KeyedRateLimitLayer::new(limiter, |req: &(u8, &'static str)| req.0);
/// let mut svc = layer.layer(Echo);
/// assert_eq!(svc.call((1, "a")).await.unwrap(), "a");
/// assert!(svc.call((1, "b")).await.unwrap_err().is::<NotUntil>());
/// assert_eq!(svc.call((2, "c")).await.unwrap(), "c"); // another key
/// # Ok(())
/// # }
/// ```
pub struct KeyedRateLimitLayer<K, F, C: Clock = FastClock, H = RandomState> {
    limiter: Arc<KeyedLimiter<K, C, H>>,
    extract: F,
}

impl<K, F, C: Clock, H> KeyedRateLimitLayer<K, F, C, H> {
    /// A layer sharing `limiter`, keying each request with `extract`.
    pub fn new(limiter: KeyedLimiter<K, C, H>, extract: F) -> Self {
        Self::shared(Arc::new(limiter), extract)
    }

    /// A layer over an already shared limiter.
    pub fn shared(limiter: Arc<KeyedLimiter<K, C, H>>, extract: F) -> Self {
        KeyedRateLimitLayer { limiter, extract }
    }
}

impl<K, F: Clone, C: Clock, H> Clone for KeyedRateLimitLayer<K, F, C, H> {
    fn clone(&self) -> Self {
        KeyedRateLimitLayer {
            limiter: Arc::clone(&self.limiter),
            extract: self.extract.clone(),
        }
    }
}

impl<K, F, C: Clock, H> fmt::Debug for KeyedRateLimitLayer<K, F, C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitLayer")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<S, K, F: Clone, C: Clock, H> Layer<S> for KeyedRateLimitLayer<K, F, C, H> {
    type Service = KeyedRateLimit<S, K, F, C, H>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedRateLimit {
            inner,
            limiter: Arc::clone(&self.limiter),
            extract: self.extract.clone(),
        }
    }
}

/// The service made by [`KeyedRateLimitLayer`].
pub struct KeyedRateLimit<S, K, F, C: Clock = FastClock, H = RandomState> {
    inner: S,
    limiter: Arc<KeyedLimiter<K, C, H>>,
    extract: F,
}

impl<S: Clone, K, F: Clone, C: Clock, H> Clone for KeyedRateLimit<S, K, F, C, H> {
    fn clone(&self) -> Self {
        KeyedRateLimit {
            inner: self.inner.clone(),
            limiter: Arc::clone(&self.limiter),
            extract: self.extract.clone(),
        }
    }
}

impl<S, K, F, C: Clock, H> fmt::Debug for KeyedRateLimit<S, K, F, C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimit")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, C, H, Req> Service<Req> for KeyedRateLimit<S, K, F, C, H>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq + Clone,
    F: Fn(&Req) -> K,
    C: Clock,
    H: BuildHasher,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let key = (self.extract)(&req);
        match self.limiter.check(&key) {
            Ok(_) => ResponseFuture::inner(self.inner.call(req)),
            Err(not_until) => ResponseFuture::limited(not_until),
        }
    }
}

pin_project! {
    /// The response future of the rate-limiting services: the inner service's future, or
    /// an immediate [`NotUntil`] error.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] fut: F },
        Limited { not_until: Option<NotUntil> },
    }
}

impl<F> ResponseFuture<F> {
    fn inner(fut: F) -> Self {
        ResponseFuture {
            state: State::Inner { fut },
        }
    }

    fn limited(not_until: NotUntil) -> Self {
        ResponseFuture {
            state: State::Limited {
                not_until: Some(not_until),
            },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { fut } => fut.poll(cx).map_err(Into::into),
            StateProj::Limited { not_until } => match not_until.take() {
                Some(n) => Poll::Ready(Err(Box::new(n))),
                // Polled again after completion: a contract violation by the caller, but
                // not a reason to panic in library code.
                None => Poll::Pending,
            },
        }
    }
}
