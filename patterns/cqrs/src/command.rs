//! The command side: [`Command`], [`CommandBus`] and its middleware.

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use std::sync::Arc;
use tracing::Instrument;
use weft_sync::atomic::{AtomicU64, Ordering};

use crate::keylock::KeyLocks;
use crate::{BoxError, Error, EventLog, Position};

/// A command: a request to change the state of one aggregate, identified by its key.
///
/// Commands with the same [`key`](Command::key) are serialised by the bus (they run one
/// at a time, in arrival order, and their events land in the log in that order);
/// commands with different keys run in parallel.
///
/// ```
/// use weft_cqrs::Command;
/// struct Deposit { account: String, amount: u64 }
/// impl Command for Deposit {
///     fn key(&self) -> &str { &self.account }
///     fn validate(&self) -> Result<(), String> {
///         if self.amount == 0 { Err("amount must be positive".into()) } else { Ok(()) }
///     }
/// }
/// assert!(Deposit { account: "a".into(), amount: 0 }.validate().is_err());
/// ```
pub trait Command: Send + 'static {
    /// The aggregate key this command is serialised on.
    fn key(&self) -> &str;

    /// The validation middleware: checks the command on its own, before it is queued.
    /// The default accepts everything.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What middleware and the authorization hook see of a command.
#[derive(Debug, Clone, Copy)]
pub struct CommandInfo<'a> {
    /// The command's Rust type name.
    pub name: &'static str,
    /// The command's aggregate key.
    pub key: &'a str,
}

/// A command middleware: a check before the command is queued, and an observer of its
/// outcome.
///
/// The bus runs every command through these stages, in this order:
///
/// 1. a `tracing` span `command` with the command's name and key (around everything);
/// 2. the authorization hook ([`CommandBusBuilder::authorize`]) → [`Error::Unauthorized`];
/// 3. validation ([`Command::validate`]) → [`Error::Invalid`];
/// 4. each middleware's [`before`](Middleware::before), in registration order →
///    [`Error::Refused`];
/// 5. the timeout ([`CommandBusBuilder::timeout`]) starts: waiting for the key, then the
///    handler's decision → [`Error::Timeout`], [`Error::Rejected`];
/// 6. the events are appended (not subject to the timeout, so a timed-out command never
///    half-happened), the key is released;
/// 7. each middleware's [`after`](Middleware::after), in reverse registration order.
///
/// A stage that refuses stops the command: later stages do not run (the `after` hooks
/// of the middleware whose `before` ran still do).
///
/// ```
/// use std::any::Any;
/// use weft_cqrs::{CommandInfo, Middleware};
/// #[derive(Debug)]
/// struct NoWeekendDeploys;
/// impl Middleware for NoWeekendDeploys {
///     fn name(&self) -> &'static str { "no-weekend-deploys" }
///     fn before(&self, info: &CommandInfo<'_>, _command: &dyn Any) -> Result<(), String> {
///         if info.name.ends_with("Deploy") { Err("not today".into()) } else { Ok(()) }
///     }
/// }
/// let info = CommandInfo { name: "app::Deploy", key: "svc" };
/// assert!(NoWeekendDeploys.before(&info, &()).is_err());
/// ```
pub trait Middleware: Send + Sync + fmt::Debug + 'static {
    /// The middleware's name, for errors and traces.
    fn name(&self) -> &'static str;

    /// Runs before the command is queued; an `Err` refuses it. `command` can be
    /// downcast to the concrete command type.
    fn before(&self, info: &CommandInfo<'_>, command: &dyn Any) -> Result<(), String> {
        let _ = (info, command);
        Ok(())
    }

    /// Runs after the command finished (or was refused by a later stage).
    fn after(&self, info: &CommandInfo<'_>, outcome: &Result<Position, Error>) {
        let _ = (info, outcome);
    }
}

/// The authorization hook's type: sees the command's info and the command itself.
pub type AuthorizeFn = dyn Fn(&CommandInfo<'_>, &dyn Any) -> Result<(), String> + Send + Sync;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Handler<C, E> = Arc<dyn Fn(C) -> BoxFuture<Result<Vec<E>, BoxError>> + Send + Sync>;

/// Configures and builds a [`CommandBus`].
pub struct CommandBusBuilder<L: EventLog> {
    log: Arc<L>,
    handlers: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    middleware: Vec<Box<dyn Middleware>>,
    authorize: Option<Box<AuthorizeFn>>,
    timeout: Option<Duration>,
    shards: usize,
}

impl<L: EventLog> fmt::Debug for CommandBusBuilder<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandBusBuilder")
            .field("handlers", &self.handlers.len())
            .field("middleware", &self.middleware)
            .field("timeout", &self.timeout)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

impl<L: EventLog> CommandBusBuilder<L> {
    /// Routes commands of type `C` to `handler`, which decides the events to append (or
    /// rejects the command with an error). It runs while the command holds its key, so
    /// it sees the effects of every earlier command on the same key.
    ///
    /// Registering a second handler for `C` replaces the first.
    pub fn handler<C, F, Fut>(mut self, handler: F) -> Self
    where
        C: Command,
        F: Fn(C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<L::Event>, BoxError>> + Send + 'static,
    {
        let handler: Handler<C, L::Event> = Arc::new(move |c| Box::pin(handler(c)));
        self.handlers.insert(TypeId::of::<C>(), Box::new(handler));
        self
    }

    /// Adds a middleware; see [`Middleware`] for where it runs.
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Box::new(middleware));
        self
    }

    /// Sets the authorization hook, run first (after the tracing span opens).
    pub fn authorize(
        mut self,
        hook: impl Fn(&CommandInfo<'_>, &dyn Any) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.authorize = Some(Box::new(hook));
        self
    }

    /// Bounds how long a command may wait for its key plus its handler's decision.
    /// Default: no timeout. Must be non-zero.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How many shards the per-key lock table has (default 64, 1..=65536).
    pub fn key_shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// Builds the bus; fails on a zero timeout or a shard count out of range.
    pub fn build(self) -> Result<CommandBus<L>, Error> {
        if self.timeout == Some(Duration::ZERO) {
            return Err(Error::Config("the command timeout must be non-zero".into()));
        }
        if !(1..=65_536).contains(&self.shards) {
            return Err(Error::Config(format!(
                "key_shards must be in 1..=65536, got {}",
                self.shards
            )));
        }
        Ok(CommandBus {
            inner: Arc::new(BusInner {
                log: self.log,
                handlers: self.handlers,
                middleware: self.middleware,
                authorize: self.authorize,
                timeout: self.timeout,
                locks: weft_sync::Arc::new(KeyLocks::new(self.shards)),
                stats: Counters::default(),
            }),
        })
    }
}

/// Counters of a [`CommandBus`], read by [`CommandBus::stats`].
#[derive(Debug, Default)]
struct Counters {
    executed: AtomicU64,
    refused: AtomicU64,
    rejected: AtomicU64,
    timed_out: AtomicU64,
    failed: AtomicU64,
}

/// A snapshot of a [`CommandBus`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CommandStats {
    /// Commands whose events were appended.
    pub executed: u64,
    /// Commands stopped by authorization, validation or middleware (or with no handler).
    pub refused: u64,
    /// Commands their handler rejected.
    pub rejected: u64,
    /// Commands that timed out.
    pub timed_out: u64,
    /// Commands whose append failed.
    pub failed: u64,
    /// Keys currently held by a running command (idle keys take no memory).
    pub held_keys: usize,
}

struct BusInner<L: EventLog> {
    log: Arc<L>,
    handlers: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    middleware: Vec<Box<dyn Middleware>>,
    authorize: Option<Box<AuthorizeFn>>,
    timeout: Option<Duration>,
    locks: weft_sync::Arc<KeyLocks>,
    stats: Counters,
}

/// Routes typed commands to their handlers through the middleware, serialising commands
/// per aggregate key, and appends the events they decide to the log.
///
/// Cloning is cheap (one `Arc`); clones share handlers, key table and counters.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_cqrs::Error> {
/// use std::sync::Arc;
/// use weft_cqrs::{Command, CommandBus, Error, MemoryLog};
///
/// struct Deposit { account: String, amount: u64 }
/// impl Command for Deposit {
///     fn key(&self) -> &str { &self.account }
/// }
///
/// let log = Arc::new(MemoryLog::<u64>::new());
/// let bus = CommandBus::builder(Arc::clone(&log))
///     .handler(|c: Deposit| async move { Ok(vec![c.amount]) })
///     .build()?;
/// let position = bus.execute(Deposit { account: "a".into(), amount: 5 }).await?;
/// assert_eq!(position, 1); // the log position of its last event
/// struct Unrouted;
/// impl Command for Unrouted { fn key(&self) -> &str { "x" } }
/// assert!(matches!(bus.execute(Unrouted).await, Err(Error::NoHandler { .. })));
/// # Ok(()) }
/// ```
pub struct CommandBus<L: EventLog> {
    inner: Arc<BusInner<L>>,
}

impl<L: EventLog> Clone for CommandBus<L> {
    fn clone(&self) -> Self {
        CommandBus {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<L: EventLog> fmt::Debug for CommandBus<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandBus")
            .field("handlers", &self.inner.handlers.len())
            .field("middleware", &self.inner.middleware)
            .field("timeout", &self.inner.timeout)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<L: EventLog> CommandBus<L> {
    /// Starts configuring a bus that appends to `log`.
    pub fn builder(log: Arc<L>) -> CommandBusBuilder<L> {
        CommandBusBuilder {
            log,
            handlers: HashMap::new(),
            middleware: Vec::new(),
            authorize: None,
            timeout: None,
            shards: 64,
        }
    }

    /// The log the bus appends to.
    pub fn log(&self) -> &Arc<L> {
        &self.inner.log
    }

    /// A snapshot of the bus's counters.
    pub fn stats(&self) -> CommandStats {
        let s = &self.inner.stats;
        CommandStats {
            executed: s.executed.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            timed_out: s.timed_out.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            held_keys: self.inner.locks.held(),
        }
    }

    /// Runs `command` through the middleware and its handler, appends the events it
    /// decided, and returns the log position of the last one (the log head if it decided
    /// none): pass it to a query to read your own write.
    ///
    /// Cancellation-safe: dropping the future before the append gives up the command's
    /// place in its key's queue and appends nothing.
    pub async fn execute<C: Command>(&self, command: C) -> Result<Position, Error> {
        let name = type_name::<C>();
        let span = tracing::debug_span!("command", command = name, key = command.key());
        self.run(command, name).instrument(span).await
    }

    async fn run<C: Command>(&self, command: C, name: &'static str) -> Result<Position, Error> {
        let inner = &*self.inner;
        let key = command.key().to_owned();
        let info = CommandInfo { name, key: &key };
        let refuse = |e: Error| {
            inner.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "command refused");
            e
        };
        let handler = inner
            .handlers
            .get(&TypeId::of::<C>())
            .and_then(|h| h.downcast_ref::<Handler<C, L::Event>>())
            .ok_or(Error::NoHandler {
                kind: "command",
                name,
            })
            .map_err(refuse)?;
        if let Some(authorize) = &inner.authorize {
            authorize(&info, &command).map_err(|reason| {
                refuse(Error::Unauthorized {
                    command: name,
                    reason,
                })
            })?;
        }
        command.validate().map_err(|reason| {
            refuse(Error::Invalid {
                command: name,
                reason,
            })
        })?;
        let mut ran = 0;
        let mut outcome = Ok(());
        for m in &inner.middleware {
            if let Err(reason) = m.before(&info, &command) {
                outcome = Err(refuse(Error::Refused {
                    command: name,
                    middleware: m.name(),
                    reason,
                }));
                break;
            }
            ran += 1;
        }
        let outcome = match outcome {
            Ok(()) => self.decide_and_append(handler, command, &key, name).await,
            Err(e) => Err(e),
        };
        for m in inner.middleware[..ran].iter().rev() {
            m.after(&info, &outcome);
        }
        outcome
    }

    async fn decide_and_append<C: Command>(
        &self,
        handler: &Handler<C, L::Event>,
        command: C,
        key: &str,
        name: &'static str,
    ) -> Result<Position, Error> {
        let inner = &*self.inner;
        let decide = async {
            let guard = KeyLocks::lock(&inner.locks, key).await;
            (guard, handler(command).await)
        };
        let (guard, decided) = match inner.timeout {
            None => decide.await,
            Some(timeout) => match tokio::time::timeout(timeout, decide).await {
                Ok(done) => done,
                Err(_) => {
                    inner.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(?timeout, "command timed out");
                    return Err(Error::Timeout {
                        command: name,
                        timeout,
                    });
                }
            },
        };
        let events = decided.map_err(|source| {
            inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %source, "command rejected");
            Error::Rejected {
                command: name,
                source,
            }
        })?;
        let appended = inner.log.append(key, events).await;
        drop(guard);
        match &appended {
            Ok(position) => {
                inner.stats.executed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(position, "command executed");
            }
            Err(e) => {
                inner.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "command append failed");
            }
        }
        appended
    }
}
