//! `Pool::map` over 100,000 trivial items (a pool of 1,000 slots, two
//! workers), beside tokio: 100,000 spawned tasks limited by a 1,000-permit
//! `Semaphore`, results collected in order. One iteration is the whole map.
//!
//! `cargo bench --bench sync_pool`

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};

const ITEMS: u64 = 100_000;
const SLOTS: usize = 1_000;

fn pool_map(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool_map_100k");
    group.sample_size(10);
    group.bench_function("greenlet_pool_map", |b| {
        let rt = greenlet::Builder::new().workers(2).build().unwrap();
        b.iter(|| {
            let out = rt
                .spawn(|| {
                    let pool = greenlet::pool::Pool::new(SLOTS);
                    pool.map(|x: u64| x + 1, 0..ITEMS).unwrap()
                })
                .get()
                .unwrap()
                .len();
            assert_eq!(out as u64, ITEMS);
        });
    });
    group.bench_function("tokio_spawn_semaphore", |b| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        b.iter(|| {
            let out = rt.block_on(async {
                tokio::spawn(async {
                    let sem = Arc::new(tokio::sync::Semaphore::new(SLOTS));
                    let mut handles = Vec::with_capacity(ITEMS as usize);
                    for x in 0..ITEMS {
                        let permit = sem.clone().acquire_owned().await.unwrap();
                        handles.push(tokio::spawn(async move {
                            let _p = permit;
                            x + 1
                        }));
                    }
                    let mut out = Vec::with_capacity(ITEMS as usize);
                    for h in handles {
                        out.push(h.await.unwrap());
                    }
                    out
                })
                .await
                .unwrap()
            });
            assert_eq!(out.len() as u64, ITEMS);
        });
    });
    group.finish();
}

criterion_group!(benches, pool_map);
criterion_main!(benches);
