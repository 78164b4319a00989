//! A push-side ingest stream: a bounded weft-reactive channel in front of the engine,
//! for sources that push (a demo generator, a socket reader, a `Stream` forwarded into
//! it) rather than call [`Engine::ingest`] and handle each answer.
//!
//! The channel blocks its senders when full (`Overflow::Block`), and the task draining
//! it waits on [`Engine::ingest`], which waits while the shards are full: backpressure
//! runs from the shards back to the producer through every stage, and nothing is
//! dropped. A batch refused by the tenant's rate limit is retried after the limiter's
//! retry-after; per-event validation rejections are counted in [`Engine::metrics`]. A
//! batch larger than the tenant burst can never pass: it is split.

use std::time::Duration;

use futures_util::StreamExt;
use weft_reactive::{Overflow, Sender};

use crate::engine::Engine;
use crate::error::Error;
use crate::event::Batch;

impl Engine {
    /// A bounded push-side stream of batches into the engine, with `capacity` batches of
    /// buffer. The returned [`Sender`] is cloneable and is a `futures::Sink`;
    /// `send(batch).await` waits while the buffer is full. Dropping every sender (or
    /// `close_channel`) ends the draining task once the buffer is ingested.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a zero capacity.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use weft_analytics::{Batch, Engine, Event};
    /// let engine = Engine::builder().tick_interval(None).build()?;
    /// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    /// let sink = engine.batch_sink(4)?;
    /// sink.send(Batch::new(vec![Event::new("m", now, 1.0)])).await?;
    /// drop(sink);
    /// # tokio::task::yield_now().await;
    /// engine.flush(Duration::from_secs(5)).await?;
    /// # Ok(()) }
    /// ```
    pub fn batch_sink(&self, capacity: usize) -> Result<Sender<Batch>, Error> {
        let (tx, mut rx) = weft_reactive::channel(capacity, Overflow::Block)
            .map_err(|e| Error::Config(e.to_string()))?;
        let engine = self.clone();
        tokio::spawn(async move {
            while let Some(batch) = rx.next().await {
                if engine.ingest_retrying(batch).await.is_err() {
                    break; // the engine is shut down
                }
            }
        });
        Ok(tx)
    }

    /// Ingests `batch`, waiting out rate limits and splitting batches larger than the
    /// tenant burst; fails only when the engine is shut down.
    async fn ingest_retrying(&self, batch: Batch) -> Result<(), Error> {
        let mut pending = vec![batch];
        while let Some(batch) = pending.pop() {
            match self.ingest(batch).await {
                Ok(_) => {}
                Err(e) => match e.error {
                    Error::RateLimited { retry_after, .. }
                    | Error::SourceRateLimited { retry_after, .. } => {
                        tokio::time::sleep(retry_after.max(Duration::from_millis(1))).await;
                        pending.push(e.into_batch());
                    }
                    Error::BatchTooLarge { max, .. } => {
                        let b = e.into_batch();
                        let (tenant, source) = (b.tenant.clone(), b.source.clone());
                        let mut events = b.into_events();
                        while !events.is_empty() {
                            let rest = events.split_off(events.len().min(max.max(1)));
                            pending.push(Batch {
                                tenant: tenant.clone(),
                                source: source.clone(),
                                events,
                            });
                            events = rest;
                        }
                        // Keep the original order: the first chunk is ingested first.
                        pending.reverse();
                    }
                    Error::Busy { retry_after } => {
                        tokio::time::sleep(retry_after).await;
                        pending.push(e.into_batch());
                    }
                    _ => return Err(e.error),
                },
            }
        }
        Ok(())
    }
}
