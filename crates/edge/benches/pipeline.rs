//! Pipeline microbenchmarks: one datagram through `Worker::handle` on a warm
//! worker — parse, validate, route (dispatch or in-dialog), splice, write —
//! for the three messages of every call that cross a stateless edge most:
//! the INVITE with its SDP offer, the in-dialog BYE, and the 200 OK coming
//! back from the destination.
//!
//! Each bench cycles through `RING` distinct messages (different Call-IDs,
//! tags and branches) so branch predictors and the dispatcher see varied
//! input, and checks once, before measuring, that every one of them is
//! forwarded (`Outcome::Send`): a bench never silently measures a drop path.
//!
//! `cargo bench -p edge --bench pipeline` (add `-- --quick` for a short run).

mod common;

use common::{setup, Setup, CALLER, RING};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::net::SocketAddr;

fn pipeline(c: &mut Criterion) {
    let caller: SocketAddr = CALLER.parse().unwrap();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));

    for alg in ["weighted-round-robin", "hash-call-id"] {
        let Setup {
            edge,
            mut worker,
            invites,
            ..
        } = setup(alg);
        let mut i = 0;
        g.bench_function(format!("invite_sdp/{alg}"), |b| {
            b.iter(|| {
                i = (i + 1) % RING;
                black_box(worker.handle(
                    &edge,
                    black_box(&invites[i]),
                    edge::flow::Flow::udp(0, caller),
                    edge.epoch() + std::time::Duration::from_secs(2),
                ))
            })
        });
    }

    let Setup {
        edge,
        mut worker,
        byes,
        oks,
        ..
    } = setup("weighted-round-robin");
    let mut i = 0;
    g.bench_function("bye_in_dialog", |b| {
        b.iter(|| {
            i = (i + 1) % RING;
            black_box(worker.handle(
                &edge,
                black_box(&byes[i]),
                edge::flow::Flow::udp(0, caller),
                edge.epoch() + std::time::Duration::from_secs(2),
            ))
        })
    });
    g.bench_function("ok_200", |b| {
        b.iter(|| {
            i = (i + 1) % RING;
            let (ok, from) = &oks[i];
            black_box(worker.handle(
                &edge,
                black_box(ok),
                edge::flow::Flow::udp(0, *from),
                edge.epoch() + std::time::Duration::from_secs(2),
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
