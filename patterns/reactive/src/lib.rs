//! Backpressured streams: Reactive Streams demand bridged to `futures::Stream`, bounded
//! buffers with overflow policies, multicast with per-subscriber buffers, and the time
//! operators the ecosystem lacks or ties to tokio.
//!
//! Use this crate when a producer and a consumer run at different speeds and you must
//! decide, explicitly, what happens in between: the producer waits (backpressure), items
//! are dropped and *counted*, or the pipeline fails loudly. It interoperates with the
//! futures ecosystem in both directions: every stream here is a `futures::Stream`, every
//! push side a `futures::Sink`, and [`ReactiveExt`] adds its operators to *any* stream.
//!
//! # Example
//!
//! A fast producer, two consumers with different needs, and batching by size or time:
//!
//! ```
//! use std::time::Duration;
//! use futures_util::StreamExt;
//! use weft_reactive::{ManualTimer, Overflow, ReactiveExt, Subject};
//!
//! let timer = ManualTimer::new();
//! let ticks = Subject::new();
//! // The archive must see every tick: it holds the producer back when it falls behind.
//! let archive = ticks.subscribe(64, Overflow::Block)?;
//! // The dashboard only needs the latest value: older ones are conflated, and counted.
//! let mut dashboard = ticks.subscribe(1, Overflow::KeepLatest)?;
//!
//! for price in 0..10u32 {
//!     ticks.try_send(price)?;
//! }
//! ticks.complete();
//!
//! assert_eq!(dashboard.try_recv(), Ok(9));
//! assert_eq!(dashboard.lagged(), 9);
//!
//! let batches: Vec<Vec<u32>> = futures_executor::block_on(
//!     archive.batch(4, Duration::from_millis(50), timer)?.collect(),
//! );
//! assert_eq!(batches, [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Contents
//!
//! - Bounded buffers: [`channel`] makes a [`Sender`] (cloneable, a `Sink`; `send`,
//!   `try_send`, `send_blocking`) and a [`Receiver`] (a `Stream`; `try_recv`,
//!   `recv_blocking`), with an [`Overflow`] policy: block, drop-newest, drop-oldest,
//!   keep-latest or error. A push reports [`Pushed::Dropped`] with the item it dropped.
//! - Multicast: [`Subject`], each subscriber with its own buffer and policy; with block,
//!   the slowest subscriber bounds the producer, with the drop policies each subscriber's
//!   lag is counted ([`Receiver::lagged`], [`Subject::subscribers`]). [`Broadcast`]
//!   says what one send did.
//! - Explicit demand (Reactive Streams): [`Publisher`], [`Subscriber`], [`Subscription`]
//!   (`request(n)`, `cancel`), the lock-free [`Demand`] counter; publishers
//!   [`IterPublisher`] and [`StreamPublisher`] (any `Stream`, run by its [`Drive`]
//!   future); [`Publisher::subscribe_stream`] bridges any publisher to a `Stream`
//!   ([`PublisherStream`]).
//! - Operators on any stream ([`ReactiveExt`]): [`batch`](ReactiveExt::batch) (size or
//!   time), [`debounce`](ReactiveExt::debounce), [`throttle`](ReactiveExt::throttle),
//!   [`sample`](ReactiveExt::sample), [`count_windows`](ReactiveExt::count_windows) and
//!   [`time_windows`](ReactiveExt::time_windows) (tumbling or sliding),
//!   [`merge`](ReactiveExt::merge), [`combine_latest`](ReactiveExt::combine_latest),
//!   [`timeout`](ReactiveExt::timeout), [`drive_buffered`](ReactiveExt::drive_buffered)
//!   and [`drive_buffer_unordered`](ReactiveExt::drive_buffer_unordered) (in-flight
//!   futures driven independently of the consumer: the futures-rs #2387 fix), and
//!   [`metered`](ReactiveExt::metered); [`retry`] re-creates a failing stream with a
//!   `weft_time` backoff.
//! - Time: the [`Timer`] trait (a `weft_time::Clock` that can sleep), [`ManualTimer`]
//!   for tests, and `TokioTimer` (feature `tokio`).
//! - Metrics: [`StageMetrics`] snapshots (items in/out, buffered, demand, dropped) and
//!   the shared [`Meter`] handle of each operator stage.
//! - Errors: [`Error`] (configuration, overflow), [`SendError`], [`TrySendError`],
//!   [`TryRecvError`], [`Failure`] (what a subscriber's `on_error` receives), [`Elapsed`].
//!
//! # Features
//!
//! - `tokio`: `TokioTimer`, so the time operators run on tokio's timer and
//!   `tokio::time::pause` drives them in tests.

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod channel;
mod demand;
mod error;
mod metrics;
mod ops;
mod publisher;
mod subject;
mod timer;

pub use channel::{Overflow, Pushed, Receiver, SendFuture, Sender, channel};
pub use demand::Demand;
pub use error::{Elapsed, Error, Failure, SendError, TryRecvError, TrySendError};
pub use metrics::{Meter, StageMetrics};
pub use ops::{
    Batch, BufferDriver, CombineLatest, CountWindows, Debounce, DrivenBuffered, DrivenUnordered,
    InFlight, Metered, ReactiveExt, Retry, Sample, Throttle, TimeWindows, Timeout, retry,
};
pub use publisher::{
    Drive, IterPublisher, OkIter, OkStream, Publisher, PublisherStream, StreamPublisher,
    Subscriber, Subscription,
};
pub use subject::{Broadcast, Subject, SubjectSend};
#[cfg(feature = "tokio")]
pub use timer::TokioTimer;
pub use timer::{ManualSleep, ManualTimer, Timer};
