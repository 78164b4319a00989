//! [`Retry`]: re-create a failing stream after a backoff delay.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use weft_time::{BackoffIter, BackoffPolicy};

use super::alarm::Alarm;
use crate::metrics::Meter;
use crate::timer::Timer;

/// Re-creates a failing stream with backoff: the stream of [`retry`](crate::retry).
///
/// It polls the stream `factory()` makes. On `Err(e)` it drops that stream, waits the
/// policy's next delay, and makes a new one (RxJava's `retryWhen` with a backoff); the
/// swallowed error is counted (meter `dropped`). When the policy has no more retries, the
/// last error is yielded and the stream ends. Every `Ok` item resets the backoff, so a
/// stream that recovers starts again from the initial delay. Items already yielded are
/// not replayed: a re-created stream yields whatever `factory` makes it yield. Meter:
/// `items_in` / `items_out` `Ok` items, `dropped` swallowed errors.
#[must_use = "streams do nothing unless polled"]
pub struct Retry<F, S, Tm: Timer> {
    factory: F,
    current: Option<Pin<Box<S>>>,
    backoff: BackoffIter,
    /// When the next attempt may start.
    wait: Option<std::time::Instant>,
    alarm: Alarm<Tm>,
    done: bool,
    meter: Meter,
}

/// Re-creates the stream `factory` makes whenever it yields an error, waiting between
/// attempts as `policy` says, on `timer`; see [`Retry`].
///
/// ```
/// use std::time::Duration;
/// use futures_util::{stream, StreamExt};
/// use weft_reactive::{retry, ManualTimer};
/// use weft_time::Backoff;
///
/// let timer = ManualTimer::new();
/// let mut attempt = 0;
/// let policy = Backoff::constant(Duration::from_secs(1)).max_retries(3).build()?;
/// let mut s = retry(
///     move || {
///         attempt += 1;
///         let fail = attempt < 3;
///         stream::iter([Ok(attempt), if fail { Err("reset") } else { Ok(10) }])
///     },
///     policy,
///     timer.clone(),
/// );
/// let waker = futures_util::task::noop_waker();
/// let mut cx = std::task::Context::from_waker(&waker);
/// let mut got = Vec::new();
/// while got.len() < 4 {
///     match s.poll_next_unpin(&mut cx) {
///         std::task::Poll::Ready(Some(item)) => got.push(item),
///         std::task::Poll::Ready(None) => break,
///         std::task::Poll::Pending => timer.advance(Duration::from_secs(1)),
///     }
/// }
/// assert_eq!(got, [Ok(1), Ok(2), Ok(3), Ok(10)]);
/// assert_eq!(s.meter().snapshot().dropped, 2); // two errors retried away
/// # Ok::<(), weft_time::Error>(())
/// ```
pub fn retry<F, S, T, E, Tm>(factory: F, policy: BackoffPolicy, timer: Tm) -> Retry<F, S, Tm>
where
    F: FnMut() -> S,
    S: Stream<Item = Result<T, E>>,
    Tm: Timer,
{
    Retry {
        factory,
        current: None,
        backoff: policy.iter(),
        wait: None,
        alarm: Alarm::new(timer),
        done: false,
        meter: Meter::new(),
    }
}

impl<F, S, Tm: Timer> Retry<F, S, Tm> {
    /// A handle on this stage's counters.
    pub fn meter(&self) -> Meter {
        self.meter.clone()
    }

    /// Retries made since the last `Ok` item.
    pub fn retries(&self) -> u32 {
        self.backoff.retries()
    }
}

impl<F, S, Tm: Timer> Unpin for Retry<F, S, Tm> {}

impl<F, S, T, E, Tm> Stream for Retry<F, S, Tm>
where
    F: FnMut() -> S,
    S: Stream<Item = Result<T, E>>,
    Tm: Timer,
{
    type Item = Result<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(at) = this.wait {
                if this.alarm.poll_at(cx, at).is_pending() {
                    return Poll::Pending;
                }
                this.wait = None;
            }
            let current = this
                .current
                .get_or_insert_with(|| Box::pin((this.factory)()));
            match current.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(item))) => {
                    this.backoff.reset();
                    this.meter.add_in(1);
                    this.meter.add_out(1);
                    return Poll::Ready(Some(Ok(item)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.current = None;
                    match this.backoff.next() {
                        Some(delay) => {
                            this.meter.add_dropped(1);
                            tracing::debug!(
                                ?delay,
                                retry = this.backoff.retries(),
                                "stream failed; retrying after backoff"
                            );
                            this.wait = Some(this.alarm.in_(delay));
                        }
                        None => {
                            this.done = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                Poll::Ready(None) => {
                    this.done = true;
                    this.current = None;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<F, S, T, E, Tm> FusedStream for Retry<F, S, Tm>
where
    F: FnMut() -> S,
    S: Stream<Item = Result<T, E>>,
    Tm: Timer,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<F, S, Tm: Timer> fmt::Debug for Retry<F, S, Tm> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("retries", &self.backoff.retries())
            .field("meter", &self.meter)
            .finish_non_exhaustive()
    }
}
