//! Ping-pong through two bounded queues between two tasks on TWO workers:
//! greenlet (the two greenlets placed on different workers) beside tokio
//! (multi-thread runtime, two workers, placement left to tokio) and may
//! (two workers). One iteration is one round trip.
//!
//! tokio queues a task woken from one of its worker threads on that worker,
//! so its two tasks soon take turns on one thread: its figure is not a
//! cross-thread one. `tokio_mpsc_two_threads` is: each task on its own
//! current-thread runtime, on its own thread.
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
    group.bench_function("tokio_mpsc_two_threads", |b| {
        b.iter_custom(pingpong::tokio_two_threads);
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
