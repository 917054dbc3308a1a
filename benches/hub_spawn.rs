//! Spawn + join of 100,000 empty tasks on two workers: greenlet beside tokio
//! and may.
//!
//! One criterion iteration is one batch: a task on a worker spawns 100,000
//! empty tasks, then joins them all; the batch is timed from the first spawn
//! to the last join, the handles dropped (as awaiting a tokio handle or
//! joining a may one drops it, freeing the task). Criterion prints the time
//! per batch and the throughput; divide the time by 100,000 for the cost per
//! task (benches/run-all.sh prints that).
//!
//! - `greenlet_2_workers`: `greenlet::spawn`, then `Greenlet::join` on each,
//!   dropping it.
//! - `greenlet_2_workers_joinall`: the same, joined with `greenlet::joinall`,
//!   then the handles dropped.
//! - `tokio_2_workers`: `tokio::spawn`, then `.await` on each handle.
//! - `may_2_workers`: `may::coroutine::spawn`, then `JoinHandle::join`, in
//!   10 waves of 10,000: may maps every coroutine stack separately (two
//!   mappings with its guard page), so 100,000 live coroutines would exceed
//!   Linux's default `vm.max_map_count` of 65530 (see hub_idle_memory).
//!
//! Goal (issue 2, section 4): 100 ns or less per greenlet.
//!
//! `cargo bench --bench hub_spawn`

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

const N: usize = 100_000;
const MAY_WAVE: usize = 10_000;

fn greenlet_batch(joinall: bool) -> Duration {
    let start = Instant::now();
    let gs: Vec<_> = (0..N).map(|_| greenlet::spawn(|| ())).collect();
    if joinall {
        greenlet::joinall(&gs);
        drop(gs);
    } else {
        for g in gs {
            g.join();
        }
    }
    start.elapsed()
}

async fn tokio_batch() -> Duration {
    let start = Instant::now();
    let hs: Vec<_> = (0..N).map(|_| tokio::spawn(async {})).collect();
    for h in hs {
        h.await.unwrap();
    }
    start.elapsed()
}

fn may_batch() -> Duration {
    let start = Instant::now();
    for _ in 0..N / MAY_WAVE {
        // SAFETY: may's spawn is unsafe because a coroutine must not use
        // thread-locals and must not overflow its stack; an empty closure
        // does neither.
        let hs: Vec<_> = (0..MAY_WAVE)
            .map(|_| unsafe { may::coroutine::spawn(|| ()) })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
    start.elapsed()
}

fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join_100k");
    group
        .throughput(Throughput::Elements(N as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10);

    for joinall in [false, true] {
        let name = if joinall {
            "greenlet_2_workers_joinall"
        } else {
            "greenlet_2_workers"
        };
        group.bench_function(name, |b| {
            let rt = greenlet::Builder::new().workers(2).build().unwrap();
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| *rt.spawn(move || greenlet_batch(joinall)).get().unwrap())
                    .sum()
            });
        });
    }

    group.bench_function("tokio_2_workers", |b| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(async { tokio::spawn(tokio_batch()).await.unwrap() }))
                .sum()
        });
    });

    group.bench_function("may_2_workers", |b| {
        // may's configuration is global and read when its scheduler starts.
        may::config().set_workers(2);
        may::config().set_worker_pin(false);
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    // SAFETY: as in `may_batch`; this closure only spawns
                    // and joins.
                    let outer = unsafe { may::coroutine::spawn(may_batch) };
                    outer.join().unwrap()
                })
                .sum()
        });
    });

    group.finish();
}

criterion_group!(benches, spawn_join);
criterion_main!(benches);
