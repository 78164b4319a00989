//! [`ReactiveExt`]: the operators `futures::StreamExt` lacks or ties to tokio, for any
//! `Stream`.

mod alarm;
mod batch;
mod buffered;
mod combine;
mod debounce;
mod metered;
mod retry;
mod sample;
mod throttle;
mod timeout;
mod window;

use std::future::Future;
use std::time::Duration;

use futures_core::Stream;
use futures_util::stream::{FuturesOrdered, FuturesUnordered, Select};

use crate::channel::Receiver;
use crate::error::{Error, nonzero, positive};
use crate::timer::Timer;

pub use batch::Batch;
pub use buffered::{BufferDriver, InFlight};
pub use combine::CombineLatest;
pub use debounce::Debounce;
pub use metered::Metered;
pub use retry::{Retry, retry};
pub use sample::Sample;
pub use throttle::Throttle;
pub use timeout::Timeout;
pub use window::{CountWindows, TimeWindows};

/// The output stream and driver of [`ReactiveExt::drive_buffered`].
pub type DrivenBuffered<S> = (
    Receiver<<<S as Stream>::Item as Future>::Output>,
    BufferDriver<S, FuturesOrdered<<S as Stream>::Item>>,
);

/// The output stream and driver of [`ReactiveExt::drive_buffer_unordered`].
pub type DrivenUnordered<S> = (
    Receiver<<<S as Stream>::Item as Future>::Output>,
    BufferDriver<S, FuturesUnordered<<S as Stream>::Item>>,
);

/// Operators for any [`Stream`]: batching, time operators, windows, combining, timeouts,
/// a driven `buffered`, and metering.
///
/// `map`, `filter`, `scan`, `zip`, `chunks`, `ready_chunks`, `take_until` and the rest
/// come from `futures::StreamExt` and are not repeated here; the two traits combine
/// freely, and no method name here shadows one of `StreamExt`'s. Time operators take a
/// [`Timer`]: a [`ManualTimer`](crate::ManualTimer) in tests, `TokioTimer` (feature
/// `tokio`) or your runtime's in production. Stages with state expose a
/// [`Meter`](crate::Meter) through `meter()`.
///
/// Operators with a size or a duration validate it and return [`Error`] for zero
/// instead of panicking.
///
/// ```
/// use futures_util::{stream, StreamExt};
/// use weft_reactive::ReactiveExt;
///
/// let windows: Vec<Vec<u32>> = futures_executor::block_on(
///     stream::iter(1..=6)
///         .map(|x| x * 10)            // StreamExt
///         .count_windows(3, 2)?       // sliding: 3 items, every 2
///         .collect(),
/// );
/// assert_eq!(windows, [vec![10, 20, 30], vec![30, 40, 50], vec![50, 60]]);
/// # Ok::<(), weft_reactive::Error>(())
/// ```
pub trait ReactiveExt: Stream {
    /// Groups items into `Vec`s of at most `max`, emitting a partial group once `period`
    /// has passed since its first item: batching by size *or* time, on any runtime
    /// (tokio-stream's `chunks_timeout`). See [`Batch`].
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`] for `max == 0`, [`Error::ZeroDuration`] for a zero `period`.
    fn batch<Tm: Timer>(
        self,
        max: usize,
        period: Duration,
        timer: Tm,
    ) -> Result<Batch<Self, Tm>, Error>
    where
        Self: Sized,
    {
        Ok(Batch::new(
            self,
            nonzero("batch size", max)?,
            positive("batch period", period)?,
            timer,
        ))
    }

    /// Emits an item only after `quiet` has passed with no newer item; superseded items
    /// are dropped and counted. See [`Debounce`].
    ///
    /// # Errors
    ///
    /// [`Error::ZeroDuration`] for a zero `quiet`.
    fn debounce<Tm: Timer>(self, quiet: Duration, timer: Tm) -> Result<Debounce<Self, Tm>, Error>
    where
        Self: Sized,
    {
        Ok(Debounce::new(
            self,
            positive("debounce period", quiet)?,
            timer,
        ))
    }

    /// Lets at most one item through per `period`, delaying (never dropping) the rest.
    /// See [`Throttle`].
    ///
    /// # Errors
    ///
    /// [`Error::ZeroDuration`] for a zero `period`.
    fn throttle<Tm: Timer>(self, period: Duration, timer: Tm) -> Result<Throttle<Self, Tm>, Error>
    where
        Self: Sized,
    {
        Ok(Throttle::new(
            self,
            positive("throttle period", period)?,
            timer,
        ))
    }

    /// Emits the latest item at each tick of `period`; items superseded between ticks
    /// are dropped and counted. See [`Sample`].
    ///
    /// # Errors
    ///
    /// [`Error::ZeroDuration`] for a zero `period`.
    fn sample<Tm: Timer>(self, period: Duration, timer: Tm) -> Result<Sample<Self, Tm>, Error>
    where
        Self: Sized,
    {
        Ok(Sample::new(self, positive("sample period", period)?, timer))
    }

    /// Windows of `size` items, a new one every `step` items: tumbling when
    /// `step == size`, sliding when smaller. See [`CountWindows`].
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`] for a zero `size` or `step`.
    fn count_windows(self, size: usize, step: usize) -> Result<CountWindows<Self>, Error>
    where
        Self: Sized,
        Self::Item: Clone,
    {
        Ok(CountWindows::new(
            self,
            nonzero("window size", size)?,
            nonzero("window step", step)?,
        ))
    }

    /// Windows lasting `length`, a new one every `every`: tumbling when
    /// `every == length`, sliding when shorter. See [`TimeWindows`].
    ///
    /// # Errors
    ///
    /// [`Error::ZeroDuration`] for a zero `length` or `every`.
    fn time_windows<Tm: Timer>(
        self,
        length: Duration,
        every: Duration,
        timer: Tm,
    ) -> Result<TimeWindows<Self, Tm>, Error>
    where
        Self: Sized,
        Self::Item: Clone,
    {
        Ok(TimeWindows::new(
            self,
            positive("window length", length)?,
            positive("window interval", every)?,
            timer,
        ))
    }

    /// Interleaves two streams fairly (round robin), ending when both end: this is
    /// `futures::stream::select`, named as ReactiveX users look for it.
    fn merge<St>(self, other: St) -> Select<Self, St>
    where
        Self: Sized,
        St: Stream<Item = Self::Item>,
    {
        futures_util::stream::select(self, other)
    }

    /// Emits the pair of both latest items whenever either stream emits, once both have.
    /// See [`CombineLatest`]. (For pairing item by item, use `StreamExt::zip`.)
    fn combine_latest<St>(self, other: St) -> CombineLatest<Self, St>
    where
        Self: Sized,
        St: Stream,
        Self::Item: Clone,
        St::Item: Clone,
    {
        CombineLatest::new(self, other)
    }

    /// Yields `Err(Elapsed)` whenever `period` passes without an item, and goes on.
    /// See [`Timeout`].
    ///
    /// # Errors
    ///
    /// [`Error::ZeroDuration`] for a zero `period`.
    fn timeout<Tm: Timer>(self, period: Duration, timer: Tm) -> Result<Timeout<Self, Tm>, Error>
    where
        Self: Sized,
    {
        Ok(Timeout::new(self, positive("timeout", period)?, timer))
    }

    /// Runs up to `limit` of the stream's futures at once and yields their outputs in
    /// order, like `StreamExt::buffered`, but the futures are driven by the returned
    /// [`BufferDriver`] task, independently of the consumer: spawn it, then read the
    /// [`Receiver`]. In-flight futures keep making progress while the consumer is busy,
    /// which is what futures-rs #2387 is about (`buffered` stalls them, which turns
    /// timeouts into failures and can deadlock).
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`] for `limit == 0`.
    ///
    /// ```
    /// use futures_util::{stream, StreamExt};
    /// use weft_reactive::ReactiveExt;
    ///
    /// let pool = futures_executor::ThreadPool::new()?;
    /// let jobs = stream::iter(1..=5).map(|n| async move { n * n });
    /// let (outputs, driver) = jobs.drive_buffered(2)?;
    /// pool.spawn_ok(driver);
    /// let squares: Vec<u64> = futures_executor::block_on(outputs.collect());
    /// assert_eq!(squares, [1, 4, 9, 16, 25]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn drive_buffered(self, limit: usize) -> Result<DrivenBuffered<Self>, Error>
    where
        Self: Sized,
        Self::Item: Future,
    {
        let (driver, rx) = BufferDriver::new(self, nonzero("buffered limit", limit)?);
        Ok((rx, driver))
    }

    /// As [`drive_buffered`](ReactiveExt::drive_buffered), yielding outputs as they
    /// complete (like `StreamExt::buffer_unordered`).
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`] for `limit == 0`.
    fn drive_buffer_unordered(self, limit: usize) -> Result<DrivenUnordered<Self>, Error>
    where
        Self: Sized,
        Self::Item: Future,
    {
        let (driver, rx) = BufferDriver::new(self, nonzero("buffer_unordered limit", limit)?);
        Ok((rx, driver))
    }

    /// Counts the items passing through. See [`Metered`].
    fn metered(self) -> Metered<Self>
    where
        Self: Sized,
    {
        Metered::new(self)
    }
}

impl<S: Stream + ?Sized> ReactiveExt for S {}
