//! Maintenance: the reaper and `min_idle` keeper, run on demand or in the background.

use crate::error::{ConfigError, Error};
use crate::pool::Maintenance;
use crate::pool::internals::{self, Reservation};
use crate::timer::Timers;
use crate::{Manager, Pool};

/// One maintenance pass (see [`Pool::maintain`]).
pub(crate) async fn run<M: Manager>(pool: &Pool<M>, timers: Timers<'_>) -> Maintenance {
    let shared = &*pool.shared;
    let now = shared.config.clock.now();
    let (closed, reserved, mut report) = internals::sweep(shared, now);
    drop(closed);
    let mut reservation = Reservation {
        shared,
        left: reserved,
    };
    for _ in 0..reserved {
        // One attempt each, no retries: the next pass tries again.
        match pool.create_object(timers, false).await {
            Ok(idle) => {
                reservation.settle(Some(idle));
                report.created += 1;
            }
            Err(_) => {
                reservation.settle(None);
                report.create_failures += 1;
            }
        }
    }
    report
}

/// Creates objects until `min_idle` are idle (see [`Pool::warm_up`]).
pub(crate) async fn warm_up<M: Manager>(
    pool: &Pool<M>,
    timers: Timers<'_>,
) -> Result<(), Error<M::Error>> {
    loop {
        match internals::reserve_one(&pool.shared) {
            Err(failure) => return Err(failure.into()),
            Ok(false) => return Ok(()),
            Ok(true) => {}
        }
        let mut reservation = Reservation {
            shared: &pool.shared,
            left: 1,
        };
        match pool.create_object(timers, true).await {
            Ok(idle) => reservation.settle(Some(idle)),
            Err(e) => {
                reservation.settle(None);
                return Err(e);
            }
        }
    }
}

/// Spawns background maintenance of `pool` on the current tokio runtime: a pass now
/// (pre-warming `min_idle`), then one every `interval` or as soon as an object is closed
/// below `min_idle`. The task ends once the pool is dropped or closed.
#[cfg(all(feature = "tokio", not(loom)))]
pub(crate) fn spawn<M: Manager>(
    pool: &Pool<M>,
    interval: std::time::Duration,
) -> Result<(), ConfigError> {
    use std::future::Future;
    use std::task::Poll;

    spawn_loop(
        &pool.shared,
        |shared| async move {
            let pool = Pool { shared };
            if pool.is_closed() {
                return false;
            }
            pool.maintain().await;
            true
        },
        move |weak| async move {
            let mut sleep = std::pin::pin!(tokio::time::sleep(interval));
            std::future::poll_fn(|cx| {
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                match weak.upgrade() {
                    Some(shared) if !internals::poll_kick(&shared, cx.waker()) => Poll::Pending,
                    _ => Poll::Ready(()),
                }
            })
            .await
        },
    )
}

/// Runs `pass` on `shared`, then `park`, in a loop on the current tokio runtime, until
/// `shared` is dropped or `pass` returns `false`. The task holds `shared` only weakly
/// between passes, so it never keeps a pool alive.
#[cfg(all(feature = "tokio", not(loom)))]
pub(crate) fn spawn_loop<T, P, PF, S, SF>(
    shared: &weft_sync::Arc<T>,
    pass: P,
    park: S,
) -> Result<(), ConfigError>
where
    T: Send + Sync + 'static,
    P: Fn(weft_sync::Arc<T>) -> PF + Send + 'static,
    PF: std::future::Future<Output = bool> + Send,
    S: Fn(std::sync::Weak<T>) -> SF + Send + 'static,
    SF: std::future::Future<Output = ()> + Send,
{
    let handle = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
    let weak = weft_sync::Arc::downgrade(shared);
    handle.spawn(async move {
        while let Some(strong) = weak.upgrade() {
            if !pass(strong).await {
                return;
            }
            park(weak.clone()).await;
        }
    });
    Ok(())
}

/// Without tokio there is no runtime to run background maintenance on.
#[cfg(not(all(feature = "tokio", not(loom))))]
pub(crate) fn spawn<M: Manager>(
    _pool: &Pool<M>,
    _interval: std::time::Duration,
) -> Result<(), ConfigError> {
    Err(ConfigError::NoRuntime)
}
