//! [`CombineLatest`]: the latest pair of two streams, each time either emits.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

/// Polls one stage may make before yielding, while no pair can form.
const BUDGET: usize = 64;

pin_project! {
    /// The stream of [`ReactiveExt::combine_latest`](crate::ReactiveExt::combine_latest).
    ///
    /// Once both streams have emitted, every item of either emits the pair of both
    /// latest items (clones). Ends when both streams have ended, or as soon as one ends
    /// without ever having emitted (no pair can ever form). The two are polled in
    /// alternating order, so neither starves the other.
    #[must_use = "streams do nothing unless polled"]
    pub struct CombineLatest<A: Stream, B: Stream> {
        #[pin]
        a: A,
        #[pin]
        b: B,
        latest_a: Option<A::Item>,
        latest_b: Option<B::Item>,
        a_done: bool,
        b_done: bool,
        b_first: bool,
    }
}

impl<A: Stream, B: Stream> CombineLatest<A, B> {
    pub(crate) fn new(a: A, b: B) -> Self {
        CombineLatest {
            a,
            b,
            latest_a: None,
            latest_b: None,
            a_done: false,
            b_done: false,
            b_first: false,
        }
    }
}

/// Polls one side for a new latest item: `Some(true)` on an item, `Some(false)` when it
/// ended now, `None` if pending or already ended.
fn poll_side<S: Stream>(
    s: Pin<&mut S>,
    done: &mut bool,
    latest: &mut Option<S::Item>,
    cx: &mut Context<'_>,
) -> Option<bool> {
    if *done {
        return None;
    }
    match s.poll_next(cx) {
        Poll::Ready(Some(item)) => {
            *latest = Some(item);
            Some(true)
        }
        Poll::Ready(None) => {
            *done = true;
            Some(false)
        }
        Poll::Pending => None,
    }
}

impl<A, B> Stream for CombineLatest<A, B>
where
    A: Stream,
    B: Stream,
    A::Item: Clone,
    B::Item: Clone,
{
    type Item = (A::Item, B::Item);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let mut budget = BUDGET;
        loop {
            *this.b_first = !*this.b_first;
            let (mut updated, mut ended) = (false, false);
            for b_side in [*this.b_first, !*this.b_first] {
                let r = if b_side {
                    poll_side(this.b.as_mut(), this.b_done, this.latest_b, cx)
                } else {
                    poll_side(this.a.as_mut(), this.a_done, this.latest_a, cx)
                };
                match r {
                    Some(true) => {
                        updated = true;
                        break;
                    }
                    Some(false) => ended = true,
                    None => {}
                }
            }
            if updated {
                if let (Some(a), Some(b)) = (this.latest_a.as_ref(), this.latest_b.as_ref()) {
                    return Poll::Ready(Some((a.clone(), b.clone())));
                }
            }
            let hopeless = (*this.a_done && this.latest_a.is_none())
                || (*this.b_done && this.latest_b.is_none())
                || (*this.a_done && *this.b_done);
            if hopeless {
                *this.a_done = true;
                *this.b_done = true;
                return Poll::Ready(None);
            }
            if !(updated || ended) {
                return Poll::Pending;
            }
            budget -= 1;
            if budget == 0 {
                // One side keeps emitting while no pair can form yet: yield.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

impl<A, B> FusedStream for CombineLatest<A, B>
where
    A: Stream,
    B: Stream,
    A::Item: Clone,
    B::Item: Clone,
{
    fn is_terminated(&self) -> bool {
        self.a_done && self.b_done
    }
}

impl<A: Stream, B: Stream> fmt::Debug for CombineLatest<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CombineLatest")
            .field("a_done", &self.a_done)
            .field("b_done", &self.b_done)
            .finish_non_exhaustive()
    }
}
