//! The cost of work sent to the thread pool, greenlet beside tokio:
//!
//! - `spawn_blocking_roundtrip`: `threadpool::spawn_blocking(|| ())` then
//!   `get()` from a greenlet, beside `tokio::task::spawn_blocking(|| ())`
//!   awaited from a task: submit, run on a pool thread, wake the caller.
//! - `lookup_host`: `net::lookup_host("localhost:80")` beside
//!   `tokio::net::lookup_host("localhost:80")`: the same round trip plus a
//!   `getaddrinfo` that reads `/etc/hosts` (no network).
//!
//! Each runs on a runtime with one worker and the default pool bound, one
//! call at a time, so the figure is the latency of one call.
//!
//! `cargo bench --bench net_blocking`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

fn greenlet_rt() -> greenlet::Runtime {
    greenlet::Builder::new().workers(1).build().unwrap()
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn on_greenlet(rt: &greenlet::Runtime, iters: u64, f: fn()) -> Duration {
    let g = rt.spawn(move || {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        start.elapsed()
    });
    *g.get().unwrap()
}

fn spawn_blocking_roundtrip(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_blocking_roundtrip");
    let rt = greenlet_rt();
    group.bench_function("greenlet", |b| {
        b.iter_custom(|iters| {
            on_greenlet(&rt, iters, || {
                greenlet::threadpool::spawn_blocking(|| ()).get().unwrap();
            })
        })
    });
    let trt = tokio_rt();
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            trt.block_on(async {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        tokio::task::spawn_blocking(|| ()).await.unwrap();
                    }
                    start.elapsed()
                })
                .await
                .unwrap()
            })
        })
    });
    group.finish();
}

fn lookup_host(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup_host");
    let rt = greenlet_rt();
    group.bench_function("greenlet", |b| {
        b.iter_custom(|iters| {
            on_greenlet(&rt, iters, || {
                let a = greenlet::net::lookup_host("localhost:80").unwrap();
                assert!(!a.is_empty());
            })
        })
    });
    let trt = tokio_rt();
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            trt.block_on(async {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let a: Vec<_> = tokio::net::lookup_host("localhost:80")
                            .await
                            .unwrap()
                            .collect();
                        assert!(!a.is_empty());
                    }
                    start.elapsed()
                })
                .await
                .unwrap()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, spawn_blocking_roundtrip, lookup_host);
criterion_main!(benches);
