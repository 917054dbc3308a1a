//! Ping-pong through two bounded queues between two tasks on TWO workers:
//! greenlet (the two greenlets placed on different workers) beside tokio
//! (multi-thread runtime, two workers, placement left to tokio) and may
//! (two workers). One iteration is one round trip.
//!
//! `cargo bench --bench sync_pingpong_cross`

#[path = "common/pingpong.rs"]
mod pingpong;

use criterion::{Criterion, criterion_group, criterion_main};

fn across_workers(c: &mut Criterion) {
    let mut group = c.benchmark_group("pingpong_two_workers");
    group.bench_function("greenlet_queue_across_workers", |b| {
        let rt = greenlet::Builder::new().workers(2).build().unwrap();
        b.iter_custom(|n| {
            *rt.spawn(move || pingpong::greenlet_pingpong(n, true))
                .get()
                .unwrap()
        });
    });
    group.bench_function("tokio_mpsc_2_workers", |b| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        b.iter_custom(|n| {
            rt.block_on(async move { tokio::spawn(pingpong::tokio_pingpong(n)).await.unwrap() })
        });
    });
    group.bench_function("may_mpsc_2_workers", |b| {
        may::config().set_workers(2);
        may::config().set_worker_pin(false);
        b.iter_custom(pingpong::may_measure);
    });
    group.finish();
}

criterion_group!(benches, across_workers);
criterion_main!(benches);
