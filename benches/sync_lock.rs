//! A contended lock: N tasks each increment a shared counter M times under
//! the lock, greenlet's `sync::Lock` beside `tokio::sync::Mutex`, on one
//! worker and on two. Each holder yields while it holds the lock every
//! 16th time, so waiters really queue up (on one worker nobody could
//! contend otherwise). One iteration is one increment (lock + unlock).
//!
//! `cargo bench --bench sync_lock`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

const TASKS: u64 = 16;

fn greenlet_counter(total: u64) -> Duration {
    let per = total.div_ceil(TASKS).max(1);
    let lock = Arc::new(greenlet::sync::Lock::new(0u64));
    let start = Instant::now();
    let gs: Vec<_> = (0..TASKS)
        .map(|_| {
            let lock = lock.clone();
            greenlet::spawn(move || {
                for i in 0..per {
                    let mut n = lock.lock();
                    if i % 16 == 0 {
                        greenlet::yield_now();
                    }
                    *n += 1;
                }
            })
        })
        .collect();
    greenlet::joinall(&gs);
    let elapsed = start.elapsed();
    assert_eq!(*lock.lock(), per * TASKS);
    elapsed
}

async fn tokio_counter(total: u64) -> Duration {
    let per = total.div_ceil(TASKS).max(1);
    let lock = Arc::new(tokio::sync::Mutex::new(0u64));
    let start = Instant::now();
    let ts: Vec<_> = (0..TASKS)
        .map(|_| {
            let lock = lock.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    let mut n = lock.lock().await;
                    if i % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                    *n += 1;
                }
            })
        })
        .collect();
    for t in ts {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    assert_eq!(*lock.lock().await, per * TASKS);
    elapsed
}

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("contended_lock");
    for workers in [1, 2] {
        group.bench_function(format!("greenlet_lock_{workers}_worker"), |b| {
            let rt = greenlet::Builder::new().workers(workers).build().unwrap();
            b.iter_custom(|n| *rt.spawn(move || greenlet_counter(n)).get().unwrap());
        });
        group.bench_function(format!("tokio_mutex_{workers}_worker"), |b| {
            let rt = if workers == 1 {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .build()
                    .unwrap()
            };
            b.iter_custom(|n| {
                rt.block_on(async move { tokio::spawn(tokio_counter(n)).await.unwrap() })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, contended);
criterion_main!(benches);
