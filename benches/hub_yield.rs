//! `yield_now` between two tasks, per yield, greenlet beside tokio and may.
//!
//! Each measurement spawns two tasks that each call `yield_now` n times and
//! times from before the spawns until both are joined; one criterion
//! iteration is one yield, so the reported time is wall time / (2 n).
//!
//! - `greenlet_1_worker`: `greenlet::yield_now` on `Builder::new().workers(1)`.
//! - `tokio_current_thread`, `tokio_1_worker`: `tokio::task::yield_now` on a
//!   current-thread runtime and on a multi-thread runtime with one worker.
//! - `tokio_2_workers`: the same on two workers. The two tasks may run in
//!   parallel there, so this figure is throughput (wall time per yield), not
//!   the cost of one yield.
//! - `may_1_worker`: `may::coroutine::yield_now` with
//!   `may::config().set_workers(1)` (worker pinning off, as for the others).
//!
//! Goal (issue 2, section 4): 10 ns or less per greenlet yield.
//!
//! `cargo bench --bench hub_yield`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

/// Yields per task for `iters` criterion iterations (two tasks share them).
fn per_task(iters: u64) -> u64 {
    iters.div_ceil(2).max(1)
}

fn greenlet_pair(n: u64) -> Duration {
    let start = Instant::now();
    let a = greenlet::spawn(move || {
        for _ in 0..n {
            greenlet::yield_now();
        }
    });
    let b = greenlet::spawn(move || {
        for _ in 0..n {
            greenlet::yield_now();
        }
    });
    a.join();
    b.join();
    start.elapsed()
}

async fn tokio_pair(n: u64) -> Duration {
    let start = Instant::now();
    let a = tokio::spawn(async move {
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    });
    let b = tokio::spawn(async move {
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    });
    a.await.unwrap();
    b.await.unwrap();
    start.elapsed()
}

/// Runs `tokio_pair` inside a spawned task, so that on a multi-thread
/// runtime the spawner is a worker (as greenlet's spawner is).
fn tokio_measure(rt: &tokio::runtime::Runtime, n: u64) -> Duration {
    rt.block_on(async move { tokio::spawn(tokio_pair(n)).await.unwrap() })
}

fn may_pair(n: u64) -> Duration {
    let start = Instant::now();
    // SAFETY: may's spawn is unsafe because a coroutine must not use
    // thread-locals and must not overflow its stack. These closures touch
    // no thread-local of ours and use a few hundred bytes of stack.
    let (a, b) = unsafe {
        (
            may::coroutine::spawn(move || {
                for _ in 0..n {
                    may::coroutine::yield_now();
                }
            }),
            may::coroutine::spawn(move || {
                for _ in 0..n {
                    may::coroutine::yield_now();
                }
            }),
        )
    };
    a.join().unwrap();
    b.join().unwrap();
    start.elapsed()
}

fn yield_now(c: &mut Criterion) {
    let mut group = c.benchmark_group("yield_now");

    group.bench_function("greenlet_1_worker", |b| {
        let rt = greenlet::Builder::new().workers(1).build().unwrap();
        b.iter_custom(|iters| {
            let n = per_task(iters);
            *rt.spawn(move || greenlet_pair(n)).get().unwrap()
        });
    });

    group.bench_function("tokio_current_thread", |b| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        b.iter_custom(|iters| rt.block_on(tokio_pair(per_task(iters))));
    });

    for workers in [1, 2] {
        let name = if workers == 1 {
            "tokio_1_worker"
        } else {
            "tokio_2_workers"
        };
        group.bench_function(name, |b| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .unwrap();
            b.iter_custom(|iters| tokio_measure(&rt, per_task(iters)));
        });
    }

    group.bench_function("may_1_worker", |b| {
        // may's configuration is global and read when its scheduler starts
        // (on first use), so this benchmark is the only may user here.
        may::config().set_workers(1);
        may::config().set_worker_pin(false);
        b.iter_custom(|iters| {
            let n = per_task(iters);
            // SAFETY: as in `may_pair`; this closure only spawns and joins.
            let outer = unsafe { may::coroutine::spawn(move || may_pair(n)) };
            outer.join().unwrap()
        });
    });

    group.finish();
}

criterion_group!(benches, yield_now);
criterion_main!(benches);
