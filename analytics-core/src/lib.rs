//! A streaming analytics engine (placeholder docs, replaced below).

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod agg;
mod engine;
mod error;
mod event;
mod live;
mod log;
mod metrics;
mod query;
mod shard;
mod store;
mod topk;
mod watermark;
mod window;

pub use agg::{AggregateConfig, Estimate, WindowAggregate};
pub use engine::{Engine, EngineBuilder, IngestReport, LatePolicy, Rejected};
pub use error::{Error, IngestError, RejectReason};
pub use event::{Batch, Event, Limits, SeriesKey};
pub use topk::TopItem;
pub use window::WindowSpec;
pub use live::{LiveFeed, LiveKind, LiveUpdate};
pub use metrics::EngineMetrics;
pub use query::{Aggregate, GroupResult, Point, Query, QueryResult, Value};
pub use shard::LateEvent;
pub use store::{StoreStatus, Tier};
pub use watermark::{SourceStatus, TimeMode};
