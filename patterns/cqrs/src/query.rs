//! The query side's router: [`Query`] and [`QueryBus`].

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Position, Projection, ProjectionHandle, Subscription};

/// A typed query: a question answered from a read model.
///
/// ```
/// use weft_cqrs::Query;
/// struct Balance { account: String }
/// impl Query for Balance { type Output = Option<i64>; }
/// let q = Balance { account: "alice".into() };
/// assert_eq!(q.account, "alice");
/// ```
pub trait Query: Send + Sync + 'static {
    /// The answer's type.
    type Output: Send + 'static;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

trait Route<Q: Query>: Send + Sync {
    fn run(&self, query: &Q) -> Q::Output;
    fn wait_for(
        &self,
        position: Position,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Position, Error>>;
    fn subscribe(&self, query: Q, capacity: usize) -> Result<Subscription<Q::Output>, Error>;
}

struct Bound<P, F> {
    handle: ProjectionHandle<P>,
    answer: Arc<F>,
}

impl<Q, P, F> Route<Q> for Bound<P, F>
where
    Q: Query,
    P: Projection,
    F: Fn(&P, &Q) -> Q::Output + Send + Sync + 'static,
{
    fn run(&self, query: &Q) -> Q::Output {
        self.handle.query(|p| (self.answer)(p, query))
    }

    fn wait_for(
        &self,
        position: Position,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Position, Error>> {
        Box::pin(self.handle.wait_for(position, timeout))
    }

    fn subscribe(&self, query: Q, capacity: usize) -> Result<Subscription<Q::Output>, Error> {
        let answer = Arc::clone(&self.answer);
        self.handle.subscribe(capacity, move |p| answer(p, &query))
    }
}

/// Configures a [`QueryBus`].
#[derive(Default)]
pub struct QueryBusBuilder {
    routes: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for QueryBusBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryBusBuilder")
            .field("handlers", &self.routes.len())
            .finish()
    }
}

impl QueryBusBuilder {
    /// Answers queries of type `Q` with `answer` over `projection`'s read model.
    /// Registering a second handler for `Q` replaces the first.
    pub fn handler<Q, P, F>(mut self, projection: ProjectionHandle<P>, answer: F) -> Self
    where
        Q: Query,
        P: Projection,
        F: Fn(&P, &Q) -> Q::Output + Send + Sync + 'static,
    {
        let route: Arc<dyn Route<Q>> = Arc::new(Bound {
            handle: projection,
            answer: Arc::new(answer),
        });
        self.routes.insert(TypeId::of::<Q>(), Box::new(route));
        self
    }

    /// The bus.
    pub fn build(self) -> QueryBus {
        QueryBus {
            routes: Arc::new(self.routes),
        }
    }
}

/// Routes typed queries to handlers over read models; can wait for a log position first
/// (read-your-writes) or keep pushing the answer (subscription queries).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::collections::HashMap;
/// use std::sync::Arc;
/// use std::time::Duration;
/// use weft_cqrs::{projection, Command, CommandBus, MemoryLog, Projection, Query, QueryBus, Recorded};
///
/// struct Deposit { account: String, amount: i64 }
/// impl Command for Deposit { fn key(&self) -> &str { &self.account } }
///
/// #[derive(Default)]
/// struct Balances(HashMap<String, i64>);
/// impl Projection for Balances {
///     type Event = i64;
///     fn apply(&mut self, e: &Recorded<i64>) { *self.0.entry(e.key.clone()).or_default() += e.event; }
/// }
///
/// struct Balance(String);
/// impl Query for Balance { type Output = i64; }
///
/// let log = Arc::new(MemoryLog::new());
/// let commands = CommandBus::builder(Arc::clone(&log))
///     .handler(|d: Deposit| async move { Ok(vec![d.amount]) })
///     .build()?;
/// let balances = projection("balances", Arc::clone(&log), Balances::default()).start()?;
/// let queries = QueryBus::builder()
///     .handler(balances, |b: &Balances, q: &Balance| b.0.get(&q.0).copied().unwrap_or(0))
///     .build();
///
/// let at = commands.execute(Deposit { account: "alice".into(), amount: 30 }).await?;
/// let balance = queries.query_at(&Balance("alice".into()), at, Duration::from_secs(1)).await?;
/// assert_eq!(balance, 30); // read your own write
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct QueryBus {
    routes: Arc<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
}

impl fmt::Debug for QueryBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryBus")
            .field("handlers", &self.routes.len())
            .finish()
    }
}

impl QueryBus {
    /// Starts configuring a bus.
    pub fn builder() -> QueryBusBuilder {
        QueryBusBuilder::default()
    }

    fn route<Q: Query>(&self) -> Result<&Arc<dyn Route<Q>>, Error> {
        self.routes
            .get(&TypeId::of::<Q>())
            .and_then(|r| r.downcast_ref::<Arc<dyn Route<Q>>>())
            .ok_or(Error::NoHandler {
                kind: "query",
                name: type_name::<Q>(),
            })
    }

    /// Answers `query` from the read model as it is now (eventually consistent).
    pub fn query<Q: Query>(&self, query: &Q) -> Result<Q::Output, Error> {
        Ok(self.route::<Q>()?.run(query))
    }

    /// Waits (at most `timeout`) until the read model has applied the log up to
    /// `position`, then answers `query`: read-your-writes for a position returned by
    /// [`CommandBus::execute`](crate::CommandBus::execute).
    pub async fn query_at<Q: Query>(
        &self,
        query: &Q,
        position: Position,
        timeout: Duration,
    ) -> Result<Q::Output, Error> {
        let route = self.route::<Q>()?;
        route.wait_for(position, timeout).await?;
        Ok(route.run(query))
    }

    /// Subscribes to `query`: its answer now, then after every batch of events its read
    /// model applies (see [`Subscription`] for the slow-subscriber policy).
    pub fn subscribe<Q: Query>(
        &self,
        query: Q,
        capacity: usize,
    ) -> Result<Subscription<Q::Output>, Error> {
        self.route::<Q>()?.subscribe(query, capacity)
    }
}
