//! Tower middleware (feature `tower`): one breaker shared by every clone of the service.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use weft_sync::Arc;
use weft_time::{Clock, FastClock};

use crate::{CircuitBreaker, Outcome, OwnedPermit};

/// The error type of [`CircuitBreakerService`]: the inner service's error, or a
/// [`NotPermitted`](crate::NotPermitted) when the breaker refused the request (downcast to
/// answer `503 Service Unavailable` with `Retry-After`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A [`Layer`] that passes requests through one shared [`CircuitBreaker`]; `classify`
/// decides what counts as a failure (default: an `Err` from the inner service).
///
/// ```
/// use tower_layer::Layer;
/// use tower_service::Service;
/// use weft_circuitbreaker::{CircuitBreaker, CircuitBreakerLayer, NotPermitted, SlidingWindow, State};
///
/// # #[derive(Clone)] struct Flaky;
/// # impl Service<bool> for Flaky {
/// #     type Response = ();
/// #     type Error = std::io::Error;
/// #     type Future = std::future::Ready<Result<(), std::io::Error>>;
/// #     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
/// #         std::task::Poll::Ready(Ok(()))
/// #     }
/// #     fn call(&mut self, ok: bool) -> Self::Future {
/// #         std::future::ready(if ok { Ok(()) } else { Err(std::io::Error::other("down")) })
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_circuitbreaker::ConfigError> {
/// let breaker = CircuitBreaker::builder()
///     .sliding_window(SlidingWindow::count(2))
///     .minimum_calls(2)
///     .build()?;
/// let layer = CircuitBreakerLayer::new(breaker);
/// let mut a = layer.layer(Flaky);
/// let mut b = layer.layer(Flaky); // clones share the breaker
/// let _ = a.call(false).await;
/// let _ = b.call(false).await;
/// assert_eq!(layer.breaker().state(), State::Open);
/// let err = a.call(true).await.unwrap_err();
/// assert!(err.downcast_ref::<NotPermitted>().is_some());
/// # Ok(())
/// # }
/// ```
pub struct CircuitBreakerLayer<C: Clock = FastClock, F = ErrorsAreFailures> {
    breaker: Arc<CircuitBreaker<C>>,
    classify: F,
}

/// The default classifier: `Err` is a failure, `Ok` a success.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorsAreFailures;

/// Decides the outcome of a finished request.
pub trait Classify<T, E> {
    /// The outcome of `result`.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
}

impl<T, E> Classify<T, E> for ErrorsAreFailures {
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

impl<T, E, F: Fn(&Result<T, E>) -> Outcome> Classify<T, E> for F {
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}

impl<C: Clock> CircuitBreakerLayer<C, ErrorsAreFailures> {
    /// A layer sharing `breaker`, counting inner errors as failures.
    pub fn new(breaker: CircuitBreaker<C>) -> Self {
        Self::shared(Arc::new(breaker))
    }

    /// A layer over an already shared breaker.
    pub fn shared(breaker: Arc<CircuitBreaker<C>>) -> Self {
        CircuitBreakerLayer {
            breaker,
            classify: ErrorsAreFailures,
        }
    }
}

impl<C: Clock, F> CircuitBreakerLayer<C, F> {
    /// Uses `classify` to decide outcomes (e.g. an `Ok` response with status 503 is a
    /// failure, an `Err` for a bad request is ignored).
    pub fn classify<F2>(self, classify: F2) -> CircuitBreakerLayer<C, F2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify,
        }
    }

    /// The shared breaker (for `metrics()` or forced states).
    pub fn breaker(&self) -> &Arc<CircuitBreaker<C>> {
        &self.breaker
    }
}

impl<C: Clock, F: Clone> Clone for CircuitBreakerLayer<C, F> {
    fn clone(&self) -> Self {
        CircuitBreakerLayer {
            breaker: Arc::clone(&self.breaker),
            classify: self.classify.clone(),
        }
    }
}

impl<C: Clock, F> fmt::Debug for CircuitBreakerLayer<C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, C: Clock, F: Clone> Layer<S> for CircuitBreakerLayer<C, F> {
    type Service = CircuitBreakerService<S, C, F>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: Arc::clone(&self.breaker),
            classify: self.classify.clone(),
        }
    }
}

/// The service made by [`CircuitBreakerLayer`].
pub struct CircuitBreakerService<S, C: Clock = FastClock, F = ErrorsAreFailures> {
    inner: S,
    breaker: Arc<CircuitBreaker<C>>,
    classify: F,
}

impl<S: Clone, C: Clock, F: Clone> Clone for CircuitBreakerService<S, C, F> {
    fn clone(&self) -> Self {
        CircuitBreakerService {
            inner: self.inner.clone(),
            breaker: Arc::clone(&self.breaker),
            classify: self.classify.clone(),
        }
    }
}

impl<S, C: Clock, F> fmt::Debug for CircuitBreakerService<S, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, C, F, Req> Service<Req> for CircuitBreakerService<S, C, F>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Clock,
    F: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C, F, S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match CircuitBreaker::try_acquire_owned(&self.breaker) {
            Ok(permit) => ResponseFuture {
                state: State::Running {
                    fut: self.inner.call(req),
                    permit: Some(permit),
                    classify: self.classify.clone(),
                    types: PhantomData,
                },
            },
            Err(refused) => ResponseFuture {
                state: State::Refused {
                    error: Some(refused),
                },
            },
        }
    }
}

pin_project! {
    /// The response future of [`CircuitBreakerService`]; dropping it before completion
    /// cancels the call (a half-open trial permit goes back).
    pub struct ResponseFuture<Fut, C: Clock, F, T, E> {
        #[pin]
        state: State<Fut, C, F, T, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Fut, C: Clock, F, T, E> {
        Running {
            #[pin]
            fut: Fut,
            permit: Option<OwnedPermit<C>>,
            classify: F,
            types: PhantomData<fn() -> (T, E)>,
        },
        Refused {
            error: Option<crate::NotPermitted>,
        },
    }
}

impl<Fut, C: Clock, F, T, E> fmt::Debug for ResponseFuture<Fut, C, F, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<Fut, C, F, T, E> Future for ResponseFuture<Fut, C, F, T, E>
where
    Fut: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Clock,
    F: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Running {
                fut,
                permit,
                classify,
                ..
            } => {
                let result = std::task::ready!(fut.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(classify.classify(&result));
                }
                Poll::Ready(result.map_err(Into::into))
            }
            StateProj::Refused { error } => match error.take() {
                Some(e) => Poll::Ready(Err(Box::new(e))),
                None => Poll::Pending,
            },
        }
    }
}
