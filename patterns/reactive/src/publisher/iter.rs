//! [`IterPublisher`]: a cold publisher over an iterator, delivering inside `request`.

use std::convert::Infallible;
use std::fmt;
use std::iter::Peekable;

use weft_sync::Arc;

use super::{Drain, Publisher, Signals, Subscriber, Subscription};
use crate::error::Failure;

/// A cold [`Publisher`] over a cloneable iterator of `Result<T, E>`: every subscriber
/// gets its own clone of the iterator and receives all of it, as fast as it requests.
///
/// Items are delivered synchronously inside [`Subscription::request`], on the requesting
/// thread, through the serialized drain loop: a subscriber that requests from `on_next`
/// does not recurse (rule 3.3), and requests from several threads never overlap signals
/// (rule 1.3). An `Err` item is delivered as [`Failure::Source`] and ends the
/// subscription. Completion and errors are signalled as soon as they are next in line,
/// without waiting for demand (rules 1.4 and 1.5 allow it), so an empty publisher
/// completes at once.
///
/// ```
/// use weft_reactive::{IterPublisher, Overflow, Publisher};
///
/// let publisher = IterPublisher::new(vec![Ok(1), Ok(2), Err("disk on fire")].into_iter());
/// let mut items = futures_executor::block_on_stream(publisher.subscribe_stream(4, Overflow::Block)?);
/// assert_eq!(items.next().unwrap().unwrap(), 1);
/// assert_eq!(items.next().unwrap().unwrap(), 2);
/// assert_eq!(items.next().unwrap().unwrap_err().into_source(), Some("disk on fire"));
/// assert!(items.next().is_none());
/// # Ok::<(), weft_reactive::Error>(())
/// ```
#[derive(Clone)]
pub struct IterPublisher<I> {
    iter: I,
}

impl<I, T, E> IterPublisher<I>
where
    I: Iterator<Item = Result<T, E>> + Clone + Send + 'static,
{
    /// A publisher of `iter`'s items (each subscriber iterates a clone).
    pub fn new(iter: I) -> Self {
        IterPublisher { iter }
    }
}

/// The iterator of [`IterPublisher::from_values`].
pub type OkIter<I> =
    std::iter::Map<I, fn(<I as Iterator>::Item) -> Result<<I as Iterator>::Item, Infallible>>;

impl<I> IterPublisher<OkIter<I>>
where
    I: Iterator + Clone + Send + 'static,
{
    /// A publisher of plain values, which cannot fail.
    ///
    /// ```
    /// use weft_reactive::{IterPublisher, Overflow, Publisher};
    /// let p = IterPublisher::from_values(["a", "b"]);
    /// let got: Vec<_> = futures_executor::block_on_stream(p.subscribe_stream(1, Overflow::Block)?)
    ///     .map(Result::unwrap)
    ///     .collect();
    /// assert_eq!(got, ["a", "b"]);
    /// # Ok::<(), weft_reactive::Error>(())
    /// ```
    pub fn from_values<V: IntoIterator<IntoIter = I>>(values: V) -> Self {
        IterPublisher {
            iter: values.into_iter().map(Ok as fn(_) -> _),
        }
    }
}

impl<I> fmt::Debug for IterPublisher<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterPublisher").finish_non_exhaustive()
    }
}

impl<I, T, E> Publisher for IterPublisher<I>
where
    I: Iterator<Item = Result<T, E>> + Clone + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    type Item = T;
    type Error = E;

    fn subscribe<S>(&self, mut subscriber: S)
    where
        S: Subscriber<T, E> + 'static,
    {
        let signals = Arc::new(Signals::new());
        subscriber.on_subscribe(Subscription::new(Arc::clone(&signals)));
        signals.install(Box::new(IterDrain {
            iter: self.iter.clone().peekable(),
            subscriber,
        }));
    }
}

/// One subscription's delivery state.
struct IterDrain<I: Iterator, S> {
    iter: Peekable<I>,
    subscriber: S,
}

impl<I, T, E, S> Drain for IterDrain<I, S>
where
    I: Iterator<Item = Result<T, E>> + Send,
    T: Send,
    E: Send,
    S: Subscriber<T, E>,
{
    fn drain(&mut self, signals: &Signals) -> bool {
        loop {
            if signals.is_cancelled() {
                return true;
            }
            if signals.take_zero_request() {
                self.subscriber.on_error(Failure::ZeroRequest);
                return true;
            }
            match self.iter.peek() {
                None => {
                    self.subscriber.on_complete();
                    return true;
                }
                Some(Err(_)) => {
                    if let Some(Err(e)) = self.iter.next() {
                        self.subscriber.on_error(Failure::Source(e));
                    }
                    return true;
                }
                Some(Ok(_)) => {
                    if !signals.demand.take() {
                        return false;
                    }
                    if let Some(Ok(item)) = self.iter.next() {
                        self.subscriber.on_next(item);
                    }
                }
            }
        }
    }
}
