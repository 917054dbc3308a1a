//! Timer lateness: 100,000 concurrent sleeps of 10-100 ms, greenlet beside
//! tokio, both on two workers, in the same run.
//!
//! A task on a worker spawns 100,000 tasks; each draws its delay (uniform in
//! 10-100 ms, from a fixed xorshift sequence shared by both runtimes), notes
//! its deadline (now + delay), sleeps, and returns how late it woke (wake
//! time - deadline). All are joined, then p50 / p99 / p99.9 / max lateness is
//! printed. Several rounds alternate greenlet and tokio.
//!
//! Goal (issue 2, section 4): greenlet p99 lateness 2 ms or less.
//!
//! Last, the machine's own stalls: one thread per core does nothing but read
//! the clock for a few seconds and counts the gaps between two readings
//! (time the thread did not run: another task, or, in a VM, the host not
//! running the virtual CPU). A timer that comes due in such a gap is late by
//! up to its length whatever runtime set it, so a round with a gap of
//! several milliseconds has a p99 of about that much.
//!
//! `cargo bench --bench hub_sleep_lateness` (`-- ROUNDS` to change the number
//! of rounds, default 3).

use std::time::{Duration, Instant};

const N: usize = 100_000;
const MIN_NS: u64 = 10_000_000;
const MAX_NS: u64 = 100_000_000;

/// Marsaglia's xorshift64: enough randomness for spreading deadlines.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn delays() -> Vec<Duration> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    (0..N)
        .map(|_| Duration::from_nanos(MIN_NS + rng.next() % (MAX_NS - MIN_NS + 1)))
        .collect()
}

/// What one run measured.
struct Run {
    lateness: Vec<Duration>,
    spawn: Duration,
    wall: Duration,
}

fn greenlet_run(delays: Vec<Duration>) -> Run {
    greenlet::Builder::new().workers(2).run(move || {
        let start = Instant::now();
        let gs: Vec<_> = delays
            .into_iter()
            .map(|d| {
                greenlet::spawn(move || {
                    let deadline = Instant::now() + d;
                    greenlet::sleep(d);
                    Instant::now().saturating_duration_since(deadline)
                })
            })
            .collect();
        let spawn = start.elapsed();
        greenlet::joinall(&gs);
        let wall = start.elapsed();
        let lateness = gs.iter().map(|g| *g.get().unwrap()).collect();
        Run {
            lateness,
            spawn,
            wall,
        }
    })
}

fn tokio_run(delays: Vec<Duration>) -> Run {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            let hs: Vec<_> = delays
                .into_iter()
                .map(|d| {
                    tokio::spawn(async move {
                        let deadline = Instant::now() + d;
                        tokio::time::sleep(d).await;
                        Instant::now().saturating_duration_since(deadline)
                    })
                })
                .collect();
            let spawn = start.elapsed();
            let mut lateness = Vec::with_capacity(N);
            for h in hs {
                lateness.push(h.await.unwrap());
            }
            let wall = start.elapsed();
            Run {
                lateness,
                spawn,
                wall,
            }
        })
        .await
        .unwrap()
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(name: &str, round: usize, mut run: Run) {
    run.lateness.sort_unstable();
    let at = |q: f64| run.lateness[((run.lateness.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<20} round {round}: p50 {:7.3} ms  p99 {:7.3} ms  p99.9 {:7.3} ms  max {:7.3} ms  \
         (spawn {:.1} ms, wall {:.1} ms)",
        ms(at(0.50)),
        ms(at(0.99)),
        ms(at(0.999)),
        ms(*run.lateness.last().unwrap()),
        ms(run.spawn),
        ms(run.wall),
    );
}

/// The gaps over 1 ms that `threads` threads, each reading the clock in a
/// loop for `secs` seconds, saw; sorted, longest last.
fn stalls(threads: usize, secs: u64) -> Vec<Duration> {
    let probes: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(secs);
                let mut last = Instant::now();
                let mut gaps = Vec::new();
                while last < end {
                    let now = Instant::now();
                    if now - last > Duration::from_millis(1) {
                        gaps.push(now - last);
                    }
                    last = now;
                }
                gaps
            })
        })
        .collect();
    let mut gaps: Vec<_> = probes.into_iter().flat_map(|p| p.join().unwrap()).collect();
    gaps.sort_unstable();
    gaps
}

fn main() {
    // `cargo bench` passes `--bench`; a bare number sets the rounds.
    let rounds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(3);
    println!("{N} concurrent sleeps of 10-100 ms, lateness = wake - deadline");
    for round in 1..=rounds {
        report("greenlet_2_workers", round, greenlet_run(delays()));
        report("tokio_2_workers", round, tokio_run(delays()));
    }
    let (threads, secs) = (
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        3,
    );
    let gaps = stalls(threads, secs);
    let over = |ms: u64| {
        gaps.iter()
            .filter(|g| **g > Duration::from_millis(ms))
            .count()
    };
    println!(
        "machine stalls: {threads} threads reading the clock for {secs} s saw {} gaps over \
         1 ms, {} over 2 ms, {} over 5 ms; longest {:.3} ms",
        gaps.len(),
        over(2),
        over(5),
        gaps.last().map_or(0.0, |g| ms(*g)),
    );
}
