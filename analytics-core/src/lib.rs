//! A streaming analytics engine (placeholder docs, replaced below).

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod agg;
mod error;
mod event;
mod topk;
mod window;

pub use agg::{AggregateConfig, Estimate, WindowAggregate};
pub use error::{Error, IngestError, RejectReason};
pub use event::{Batch, Event, Limits, SeriesKey};
pub use topk::TopItem;
pub use window::WindowSpec;
