//! weft-actor against ractor and kameo, same workloads, same run.
//!
//! Every implementation runs a counter actor (`Inc` increments, `Get` replies with the
//! count) on the same tokio runtime: multi-thread, 2 workers. Workloads:
//!
//! - `actor/tell_1to1`: one task tells one actor `N` increments, then asks for the count
//!   (so every message is handled inside the iteration);
//! - `actor/tell_1to1_deep`: the same through mailboxes deep enough never to fill (weft
//!   at capacity `N`, kameo unbounded), the like-for-like comparison with ractor;
//! - `actor/tell_fanout100`: one task tells `N` increments spread over 100 actors, then
//!   asks each for its count;
//! - `actor/ask_roundtrip`: one ask and its reply;
//! - `actor/spawn`: spawn 100 actors, ask each once (so each has started), stop them all
//!   and wait until each has terminated.
//!
//! Mailboxes: weft and kameo are bounded at 64 (their default; senders wait when full),
//! ractor's are unbounded (its only kind).

// The settings and harness every bench shares.
#[allow(dead_code)] // not every bench uses every helper
mod common;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// Messages per tell iteration.
const N: u64 = 10_000;
/// Actors in the fan-out and spawn workloads.
const FANOUT: usize = 100;
const SEC: Duration = Duration::from_secs(10);

// --- weft ------------------------------------------------------------------------

mod ours {
    use weft::actor::{Actor, Context, Handler};

    #[derive(Default)]
    pub(crate) struct Counter(pub(crate) u64);
    impl Actor for Counter {}

    pub(crate) struct Inc;
    pub(crate) struct Get;

    impl Handler<Inc> for Counter {
        type Reply = ();
        async fn handle(&mut self, _: Inc, _: &mut Context<Self>) {
            self.0 += 1;
        }
    }

    impl Handler<Get> for Counter {
        type Reply = u64;
        async fn handle(&mut self, _: Get, _: &mut Context<Self>) -> u64 {
            self.0
        }
    }
}

// --- kameo -----------------------------------------------------------------------

mod kameo_impl {
    use kameo::error::Infallible;
    use kameo::message::{Context, Message};

    pub(crate) struct Counter(pub(crate) u64);

    impl kameo::Actor for Counter {
        type Args = Self;
        type Error = Infallible;
        async fn on_start(args: Self, _: kameo::actor::ActorRef<Self>) -> Result<Self, Infallible> {
            Ok(args)
        }
    }

    pub(crate) struct Inc;
    pub(crate) struct Get;

    impl Message<Inc> for Counter {
        type Reply = ();
        async fn handle(&mut self, _: Inc, _: &mut Context<Self, Self::Reply>) {
            self.0 += 1;
        }
    }

    impl Message<Get> for Counter {
        type Reply = u64;
        async fn handle(&mut self, _: Get, _: &mut Context<Self, Self::Reply>) -> u64 {
            self.0
        }
    }
}

// --- ractor ----------------------------------------------------------------------

mod ractor_impl {
    use ractor::{ActorProcessingErr, ActorRef, RpcReplyPort};

    pub(crate) struct Counter;

    pub(crate) enum Msg {
        Inc,
        Get(RpcReplyPort<u64>),
    }

    impl ractor::Actor for Counter {
        type Msg = Msg;
        type State = u64;
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<Msg>, _: ()) -> Result<u64, ActorProcessingErr> {
            Ok(0)
        }

        async fn handle(
            &self,
            _: ActorRef<Msg>,
            msg: Msg,
            state: &mut u64,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                Msg::Inc => *state += 1,
                Msg::Get(reply) => {
                    let _ = reply.send(*state);
                }
            }
            Ok(())
        }
    }

    pub(crate) async fn get(actor: &ActorRef<Msg>) -> u64 {
        match actor.call(Msg::Get, None).await.unwrap() {
            ractor::rpc::CallResult::Success(n) => n,
            _ => panic!("ractor call failed"),
        }
    }
}

/// `deep`: mailboxes that never fill during an iteration (weft with capacity `N`, kameo
/// unbounded, ractor as always), so the workload measures the message path alone, without
/// the backpressure hand-offs a 64-slot mailbox makes the sender wait for.
fn tell_1to1(c: &mut Criterion, rt: &Runtime, deep: bool) {
    let name = if deep {
        "actor/tell_1to1_deep"
    } else {
        "actor/tell_1to1"
    };
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(N));

    let system = weft::actor::System::new();
    let options = weft::actor::SpawnOptions::new().capacity(if deep { N as usize } else { 64 });
    let weft = rt.block_on(async {
        system
            .spawn_with(ours::Counter::default(), options)
            .unwrap()
    });
    g.bench_function("weft", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..N {
                    weft.tell(ours::Inc).await.unwrap();
                }
                weft.ask(ours::Get, SEC).await.unwrap()
            })
        })
    });

    let kameo = rt.block_on(async {
        use kameo::actor::Spawn;
        if deep {
            kameo_impl::Counter::spawn_with_mailbox(
                kameo_impl::Counter(0),
                kameo::mailbox::unbounded(),
            )
        } else {
            kameo_impl::Counter::spawn(kameo_impl::Counter(0))
        }
    });
    g.bench_function("kameo", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..N {
                    kameo.tell(kameo_impl::Inc).await.unwrap();
                }
                kameo.ask(kameo_impl::Get).await.unwrap()
            })
        })
    });

    let (ractor, _) = rt
        .block_on(ractor::Actor::spawn(None, ractor_impl::Counter, ()))
        .unwrap();
    g.bench_function("ractor", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..N {
                    ractor.cast(ractor_impl::Msg::Inc).unwrap();
                }
                ractor_impl::get(&ractor).await
            })
        })
    });
    g.finish();
    ractor.stop(None);
}

fn tell_fanout(c: &mut Criterion, rt: &Runtime) {
    let mut g = c.benchmark_group("actor/tell_fanout100");
    g.throughput(Throughput::Elements(N));

    let system = weft::actor::System::new();
    let weft: Vec<_> = rt.block_on(async {
        (0..FANOUT)
            .map(|_| system.spawn(ours::Counter::default()).unwrap())
            .collect()
    });
    g.bench_function("weft", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..N as usize {
                    weft[i % FANOUT].tell(ours::Inc).await.unwrap();
                }
                for a in &weft {
                    a.ask(ours::Get, SEC).await.unwrap();
                }
            })
        })
    });

    let kameo: Vec<_> = rt.block_on(async {
        use kameo::actor::Spawn;
        (0..FANOUT)
            .map(|_| kameo_impl::Counter::spawn(kameo_impl::Counter(0)))
            .collect()
    });
    g.bench_function("kameo", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..N as usize {
                    kameo[i % FANOUT].tell(kameo_impl::Inc).await.unwrap();
                }
                for a in &kameo {
                    a.ask(kameo_impl::Get).await.unwrap();
                }
            })
        })
    });

    let ractor: Vec<_> = rt.block_on(async {
        let mut out = Vec::new();
        for _ in 0..FANOUT {
            out.push(
                ractor::Actor::spawn(None, ractor_impl::Counter, ())
                    .await
                    .unwrap()
                    .0,
            );
        }
        out
    });
    g.bench_function("ractor", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..N as usize {
                    ractor[i % FANOUT].cast(ractor_impl::Msg::Inc).unwrap();
                }
                for a in &ractor {
                    ractor_impl::get(a).await;
                }
            })
        })
    });
    g.finish();
    for a in &ractor {
        a.stop(None);
    }
}

fn ask_roundtrip(c: &mut Criterion, rt: &Runtime) {
    let mut g = c.benchmark_group("actor/ask_roundtrip");
    g.throughput(Throughput::Elements(1));

    let system = weft::actor::System::new();
    let weft = rt.block_on(async { system.spawn(ours::Counter::default()).unwrap() });
    g.bench_function("weft", |b| {
        b.iter(|| rt.block_on(weft.ask(ours::Get, SEC)).unwrap())
    });

    let kameo = rt.block_on(async {
        use kameo::actor::Spawn;
        kameo_impl::Counter::spawn(kameo_impl::Counter(0))
    });
    g.bench_function("kameo", |b| {
        b.iter(|| rt.block_on(async { kameo.ask(kameo_impl::Get).await.unwrap() }))
    });

    let (ractor, _) = rt
        .block_on(ractor::Actor::spawn(None, ractor_impl::Counter, ()))
        .unwrap();
    g.bench_function("ractor", |b| {
        b.iter(|| rt.block_on(ractor_impl::get(&ractor)))
    });
    g.finish();
    ractor.stop(None);
}

fn spawn(c: &mut Criterion, rt: &Runtime) {
    let mut g = c.benchmark_group("actor/spawn");
    g.throughput(Throughput::Elements(FANOUT as u64));

    let system = weft::actor::System::new();
    g.bench_function("weft", |b| {
        b.iter(|| {
            rt.block_on(async {
                let actors: Vec<_> = (0..FANOUT)
                    .map(|_| system.spawn(ours::Counter::default()).unwrap())
                    .collect();
                for a in &actors {
                    a.ask(ours::Get, SEC).await.unwrap();
                    a.stop();
                }
                for a in &actors {
                    a.wait().await;
                }
            })
        })
    });

    g.bench_function("kameo", |b| {
        b.iter(|| {
            rt.block_on(async {
                use kameo::actor::Spawn;
                let actors: Vec<_> = (0..FANOUT)
                    .map(|_| kameo_impl::Counter::spawn(kameo_impl::Counter(0)))
                    .collect();
                for a in &actors {
                    a.ask(kameo_impl::Get).await.unwrap();
                    a.stop_gracefully().await.unwrap();
                }
                for a in &actors {
                    a.wait_for_shutdown().await;
                }
            })
        })
    });

    g.bench_function("ractor", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut actors = Vec::new();
                for _ in 0..FANOUT {
                    actors.push(
                        ractor::Actor::spawn(None, ractor_impl::Counter, ())
                            .await
                            .unwrap(),
                    );
                }
                for (a, _) in &actors {
                    ractor_impl::get(a).await;
                    a.stop(None);
                }
                for (_, h) in actors {
                    h.await.unwrap();
                }
            })
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let rt = common::two_worker_runtime();
    tell_1to1(c, &rt, false);
    tell_1to1(c, &rt, true);
    tell_fanout(c, &rt);
    ask_roundtrip(c, &rt);
    spawn(c, &rt);
}

criterion_group! {
    name = group;
    config = common::config();
    targets = benches
}
criterion_main!(group);
