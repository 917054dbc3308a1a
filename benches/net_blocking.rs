//! The cost of work sent to the thread pool, greenlet beside tokio:
//!
//! - `spawn_blocking`: `threadpool::spawn_blocking(|| ())` then `get()`
//!   from a greenlet, beside `tokio::task::spawn_blocking(|| ())` awaited
//!   from a task: submit, run on a pool thread, wake the caller.
//! - `lookup_host`: `net::lookup_host("localhost:80")` beside
//!   `tokio::net::lookup_host("localhost:80")`: the same round trip plus a
//!   `getaddrinfo` that reads `/etc/hosts` (no network).
//!
//! Each runs on a runtime with one worker and the default pool bound, one
//! call at a time, so the figure is the latency of one call. Nearly all of
//! it is two cross-thread wake-ups (caller to pool thread and back), whose
//! cost depends on how idle the machine's cores are (a sleeping virtual CPU
//! takes far longer to wake than a busy one). So the two peers run in
//! alternating batches and the medians of the batches are reported, rather
//! than one long run each.
//!
//! ```text
//! cargo bench --bench net_blocking
//! NET_BLOCKING_BATCH=2000 NET_BLOCKING_RUNS=9 cargo bench --bench net_blocking
//! ```

use std::time::{Duration, Instant};

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Times `n` calls of `f` in a greenlet of `rt`.
fn on_greenlet(rt: &greenlet::Runtime, n: u32, f: fn()) -> Duration {
    let g = rt.spawn(move || {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed() / n
    });
    *g.get().unwrap()
}

fn green_spawn_blocking() {
    greenlet::threadpool::spawn_blocking(|| ()).get().unwrap();
}

fn green_lookup() {
    let a = greenlet::net::lookup_host("localhost:80").unwrap();
    assert!(!a.is_empty());
}

async fn tokio_spawn_blocking(n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        tokio::task::spawn_blocking(|| ()).await.unwrap();
    }
    start.elapsed() / n
}

async fn tokio_lookup(n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let a: Vec<_> = tokio::net::lookup_host("localhost:80")
            .await
            .unwrap()
            .collect();
        assert!(!a.is_empty());
    }
    start.elapsed() / n
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --benches`, a smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let batch = env("NET_BLOCKING_BATCH", if smoke { 20 } else { 2000 });
    let runs = env("NET_BLOCKING_RUNS", if smoke { 1 } else { 9 });
    let grt = greenlet::Builder::new().workers(1).build().unwrap();
    let trt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let tokio_batch = |which: u8| {
        trt.block_on(async move {
            tokio::spawn(async move {
                if which == 0 {
                    tokio_spawn_blocking(batch).await
                } else {
                    tokio_lookup(batch).await
                }
            })
            .await
            .unwrap()
        })
    };
    // Warm both pools up.
    on_greenlet(&grt, batch.min(100), green_spawn_blocking);
    tokio_batch(0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "net_blocking: one call at a time from a 1-worker runtime; {runs} alternating batches \
         of {batch} calls; {cores} cores"
    );
    for (which, name, green) in [
        (0u8, "spawn_blocking + get", green_spawn_blocking as fn()),
        (1u8, "lookup_host(\"localhost:80\")", green_lookup as fn()),
    ] {
        let (mut g, mut t) = (Vec::new(), Vec::new());
        for run in 0..runs {
            if run % 2 == 0 {
                g.push(on_greenlet(&grt, batch, green));
                t.push(tokio_batch(which));
            } else {
                t.push(tokio_batch(which));
                g.push(on_greenlet(&grt, batch, green));
            }
        }
        let (gm, tm) = (median(g.clone()), median(t.clone()));
        println!(
            "{name:<30} greenlet {gm:>10.2?}  tokio {tm:>10.2?}  ratio greenlet/tokio {:.2}x \
             (lower is better)",
            gm.as_secs_f64() / tm.as_secs_f64()
        );
        println!("  batches greenlet {g:.1?}");
        println!("  batches tokio    {t:.1?}");
    }
}
