//! [`Metered`]: counts the items passing through any stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::metrics::Meter;

pin_project! {
    /// The stream of [`ReactiveExt::metered`](crate::ReactiveExt::metered): passes items
    /// through unchanged and counts them (`items_in` = `items_out`).
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Metered<S> {
        #[pin]
        stream: S,
        meter: Meter,
    }
}

impl<S> Metered<S> {
    pub(crate) fn new(stream: S) -> Self {
        Metered {
            stream,
            meter: Meter::new(),
        }
    }

    /// A handle on this stage's counters.
    pub fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<S: Stream> Stream for Metered<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let r = this.stream.poll_next(cx);
        if let Poll::Ready(Some(_)) = &r {
            this.meter.add_in(1);
            this.meter.add_out(1);
        }
        r
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S: FusedStream> FusedStream for Metered<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
