//! Ping-pong through two bounded queues between two tasks on ONE worker:
//! `greenlet::queue::Queue::bounded(1)` beside `tokio::sync::mpsc::channel(1)`
//! (current-thread runtime) and `may::sync::mpsc` (one worker). One
//! iteration is one round trip. See `sync_pingpong_cross` for two workers.
//!
//! `cargo bench --bench sync_pingpong`

#[path = "common/pingpong.rs"]
mod pingpong;

use criterion::{Criterion, criterion_group, criterion_main};

fn same_worker(c: &mut Criterion) {
    let mut group = c.benchmark_group("pingpong_same_worker");
    group.bench_function("greenlet_queue", |b| {
        let rt = greenlet::Builder::new().workers(1).build().unwrap();
        b.iter_custom(|n| {
            *rt.spawn(move || pingpong::greenlet_pingpong(n, false))
                .get()
                .unwrap()
        });
    });
    group.bench_function("tokio_mpsc_current_thread", |b| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        b.iter_custom(|n| rt.block_on(pingpong::tokio_pingpong(n)));
    });
    group.bench_function("may_mpsc_1_worker", |b| {
        may::config().set_workers(1);
        may::config().set_worker_pin(false);
        b.iter_custom(pingpong::may_measure);
    });
    group.finish();
}

criterion_group!(benches, same_worker);
criterion_main!(benches);
