//! [`timeout`]: bound a future's run time on tokio's timer; [`Elapsed`] when it runs over.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

/// Runs `future` for at most `duration`: `Ok(output)` if it finishes in time, otherwise
/// `Err(`[`Elapsed`]`)`, and the future is dropped (cancelled) at that moment, before the
/// error is returned. Requires the `tokio` feature and a tokio runtime with the timer
/// enabled; under `tokio::time::pause()` it runs on the paused clock.
///
/// The returned [`Timeout`] future checks the inner future first, so a future that is
/// ready exactly at the deadline wins. A `duration` too large to represent waits forever.
///
/// ```
/// use std::time::Duration;
/// use weft_circuitbreaker::retry::timeout;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let fast = timeout(Duration::from_secs(1), async { 42 }).await;
/// assert_eq!(fast, Ok(42));
///
/// let slow = timeout(Duration::from_secs(1), std::future::pending::<()>()).await;
/// let elapsed = slow.unwrap_err();
/// assert_eq!(elapsed.duration(), Duration::from_secs(1));
/// # }
/// ```
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    Timeout {
        inner: Some(tokio::time::timeout(duration, future)),
        duration,
    }
}

pin_project! {
    /// The future returned by [`timeout`]: the inner future's output, or [`Elapsed`] once
    /// the duration has passed. The inner future is dropped as soon as `Timeout` completes
    /// either way.
    ///
    /// # Panics
    ///
    /// Polling it again after it returned `Ready` panics, as for most futures.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::{timeout, Timeout};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fut: Timeout<_> = timeout(Duration::from_millis(10), async { "done" });
    /// assert_eq!(fut.await, Ok("done"));
    /// # }
    /// ```
    #[must_use = "futures do nothing unless awaited or polled"]
    pub struct Timeout<F> {
        // `None` once completed: the inner future (and its timer) are dropped then.
        #[pin]
        inner: Option<tokio::time::Timeout<F>>,
        duration: Duration,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            panic!("`Timeout` polled after completion");
        };
        let output = match inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(value)) => Ok(value),
            Poll::Ready(Err(_)) => Err(Elapsed {
                duration: *this.duration,
            }),
        };
        // Drop the inner future (cancelling it) and its timer now, not when `Timeout` is.
        this.inner.set(None);
        Poll::Ready(output)
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("duration", &self.duration)
            .field("completed", &self.inner.is_none())
            .finish_non_exhaustive()
    }
}

/// The error of [`timeout`]: the future did not finish within the duration and was
/// cancelled.
///
/// ```
/// use std::time::Duration;
/// use weft_circuitbreaker::retry::timeout;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let err = timeout(Duration::from_millis(250), std::future::pending::<()>())
///     .await
///     .unwrap_err();
/// assert_eq!(err.duration(), Duration::from_millis(250));
/// assert!(err.to_string().starts_with("did not finish within 250ms"));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Elapsed {
    duration: Duration,
}

impl Elapsed {
    /// The time limit that was exceeded.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_circuitbreaker::retry::timeout;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let err = timeout(Duration::from_secs(3), std::future::pending::<()>()).await.unwrap_err();
    /// assert_eq!(err.duration(), Duration::from_secs(3));
    /// # }
    /// ```
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "did not finish within {:?} and was cancelled: raise the timeout if the \
             operation is slow but healthy, or retry it if it is idempotent",
            self.duration
        )
    }
}

impl std::error::Error for Elapsed {}
