//! Idle memory: resident bytes per live, parked task, for 1,000,000 sleeping
//! greenlets beside 1,000,000 tokio tasks and as many may coroutines as may
//! can hold, on default kernel settings.
//!
//! Each runtime runs in its own child process (this binary with `--child`),
//! so no runtime's freed memory flatters the next one's figure, and a peer
//! that fails (may stops near 32,700 coroutines: each of its stacks costs
//! two mappings against `vm.max_map_count` = 65530) or hangs is reported
//! instead of taking the bench down.
//!
//! In each child: read VmRSS, spawn the tasks (each bumps a shared counter,
//! then sleeps 60 s), wait until the counter says every task has run up to
//! its sleep, read VmRSS again; bytes per task = RSS growth / tasks. Then
//! tear down and time it: greenlet's `Builder::run` kills every remaining
//! greenlet when main returns; tokio's runtime is dropped; may's coroutines
//! are left to process exit.
//!
//! Goal (issue 2, section 4): 4.7 KB (one stack page plus the greenlet) or
//! less per greenlet; tokio's figure beside it.
//!
//! `cargo bench --bench hub_idle_memory` (env: `IDLE_TASKS`, default
//! 1000000; `IDLE_TIMEOUT_SECS`, the limit per child, default 600).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SLEEP: Duration = Duration::from_secs(60);
const MAY_WAVE: usize = 1_000;

/// Resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One `RESULT` line: what the parent parses and reports.
fn result(
    kind: &str,
    n: usize,
    base: u64,
    spawned: u64,
    parked: u64,
    spawn: Duration,
    all: Duration,
) {
    let per_task = (parked.saturating_sub(base) * 1024) as f64 / n as f64;
    println!(
        "RESULT {kind} tasks={n} rss_base_kib={base} rss_spawned_kib={spawned} \
         rss_parked_kib={parked} bytes_per_task={per_task:.0} spawn_ms={:.0} parked_ms={:.0}",
        spawn.as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3
    );
}

fn child_greenlet(n: usize) {
    let end_of_main = greenlet::Builder::new().workers(2).run(move || {
        let base = rss_kib();
        let counter = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        for _ in 0..n {
            let c = counter.clone();
            drop(greenlet::spawn(move || {
                c.fetch_add(1, Ordering::Relaxed);
                greenlet::sleep(SLEEP);
            }));
        }
        let spawn = start.elapsed();
        let spawned = rss_kib();
        while counter.load(Ordering::Relaxed) < n {
            greenlet::sleep(Duration::from_millis(1));
        }
        let all = start.elapsed();
        result("greenlet", n, base, spawned, rss_kib(), spawn, all);
        println!("TEARDOWN greenlet started (main returns; the runtime kills {n} greenlets)");
        Instant::now()
    });
    println!(
        "TEARDOWN greenlet ms={:.0}",
        end_of_main.elapsed().as_secs_f64() * 1e3
    );
}

fn child_tokio(n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let base = rss_kib();
    let counter = Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    let (spawn, spawned, all) = rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..n {
                let c = c.clone();
                drop(tokio::spawn(async move {
                    c.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(SLEEP).await;
                }));
            }
            let spawn = start.elapsed();
            let spawned = rss_kib();
            while c.load(Ordering::Relaxed) < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (spawn, spawned, start.elapsed())
        })
        .await
        .unwrap()
    });
    result("tokio", n, base, spawned, rss_kib(), spawn, all);
    let start = Instant::now();
    drop(rt);
    println!(
        "TEARDOWN tokio ms={:.0}",
        start.elapsed().as_secs_f64() * 1e3
    );
}

/// Spawns in waves of `MAY_WAVE`, reporting after each, so the point where
/// may fails is on record.
fn child_may(n: usize) {
    may::config().set_workers(2);
    may::config().set_worker_pin(false);
    let base = rss_kib();
    println!("PROGRESS may tasks=0 rss_kib={base}");
    let counter = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut spawn = Duration::ZERO;
    let mut spawned = 0;
    while spawned < n {
        let wave = MAY_WAVE.min(n - spawned);
        let t = Instant::now();
        for _ in 0..wave {
            let c = counter.clone();
            // SAFETY: may's spawn is unsafe because a coroutine must not use
            // thread-locals and must not overflow its stack; this one bumps
            // an atomic and sleeps.
            drop(unsafe {
                may::coroutine::spawn(move || {
                    c.fetch_add(1, Ordering::Relaxed);
                    may::coroutine::sleep(SLEEP);
                })
            });
        }
        spawn += t.elapsed();
        spawned += wave;
        // A plain thread waiting on may's workers: a short poll is fine here.
        let wait = Instant::now();
        while counter.load(Ordering::Relaxed) < spawned {
            if wait.elapsed() > Duration::from_secs(30) {
                println!(
                    "FAILED may: only {} of {spawned} coroutines ran within 30 s",
                    counter.load(Ordering::Relaxed)
                );
                std::process::exit(2);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        println!("PROGRESS may tasks={spawned} rss_kib={}", rss_kib());
    }
    let parked = rss_kib();
    result("may", n, base, parked, parked, spawn, start.elapsed());
    // may cannot be shut down; the coroutines die with the process.
    std::process::exit(0);
}

/// Shows a child's line (progress only every 10,000 tasks).
fn echo(kind: &str, line: &str) {
    let quiet = field(line, "tasks")
        .and_then(|t| t.parse::<u64>().ok())
        .is_some_and(|t| line.starts_with("PROGRESS") && t % 10_000 != 0);
    if !quiet && !line.trim_start_matches("stderr:").trim().is_empty() {
        println!("  [{kind}] {line}");
    }
}

/// What the parent learnt from one child.
struct Outcome {
    lines: Vec<String>,
    status: String,
}

fn run_child(kind: &str, n: usize, timeout: Duration) -> Outcome {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--child", kind, &n.to_string()])
        // A failing peer panics near the mapping limit, where even a
        // backtrace cannot be allocated.
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a child process");
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tx2 = tx.clone();
    let readers = [
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        }),
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {l}"));
            }
        }),
    ];
    let mut deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    let status = loop {
        while let Ok(l) = rx.try_recv() {
            if l.contains("panicked at") {
                // Give it a moment to exit by itself, then kill it.
                deadline = deadline.min(Instant::now() + Duration::from_secs(5));
            }
            echo(kind, &l);
            lines.push(l);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break if s.success() {
                "ok".to_string()
            } else {
                format!("failed ({s})")
            };
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break "killed at its time limit".to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for r in readers {
        r.join().unwrap();
    }
    for l in rx.try_iter() {
        echo(kind, &l);
        lines.push(l);
    }
    Outcome { lines, status }
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n = args[i + 2].parse().expect("task count");
        match args[i + 1].as_str() {
            "greenlet" => child_greenlet(n),
            "tokio" => child_tokio(n),
            "may" => child_may(n),
            other => panic!("unknown child {other}"),
        }
        return;
    }
    let n = env_or("IDLE_TASKS", 1_000_000) as usize;
    let timeout = Duration::from_secs(env_or("IDLE_TIMEOUT_SECS", 600));
    println!("{n} idle tasks sleeping 60 s, 2 workers; resident bytes per task");
    let mut summary = Vec::new();
    for kind in ["greenlet", "tokio", "may"] {
        let o = run_child(kind, n, timeout);
        let res = o.lines.iter().find(|l| l.starts_with("RESULT"));
        let teardown = o
            .lines
            .iter()
            .find_map(|l| field(l.strip_prefix("TEARDOWN")?, "ms"))
            .map_or("n/a".to_string(), |ms| format!("{ms} ms"));
        let line = match res {
            Some(r) => format!(
                "{kind:<9} {:>8} bytes/task  ({} tasks, parked after {} ms; teardown {teardown}; {})",
                field(r, "bytes_per_task").unwrap(),
                field(r, "tasks").unwrap(),
                field(r, "parked_ms").unwrap(),
                o.status
            ),
            None => {
                // No full result: report the last point reached, if any.
                let progress: Vec<(u64, u64)> = o
                    .lines
                    .iter()
                    .filter(|l| l.starts_with("PROGRESS"))
                    .map(|l| {
                        let get = |k| field(l, k).unwrap().parse::<u64>().unwrap();
                        (get("tasks"), get("rss_kib"))
                    })
                    .collect();
                let reached = match (progress.first(), progress.last()) {
                    (Some(&(0, base)), Some(&(t, kib))) if t > 0 => format!(
                        "{t} tasks, {:.0} bytes/task there",
                        (kib.saturating_sub(base) * 1024) as f64 / t as f64
                    ),
                    _ => "none".to_string(),
                };
                // The panic message is the line after "panicked at".
                let why = o
                    .lines
                    .iter()
                    .skip_while(|l| !l.contains("panicked at"))
                    .nth(1)
                    .or_else(|| o.lines.iter().find(|l| l.starts_with("FAILED")))
                    .cloned()
                    .unwrap_or_default();
                format!(
                    "{kind:<9} no result: {}; last point reached: {reached}; {why}",
                    o.status
                )
            }
        };
        summary.push(line);
    }
    println!("summary:");
    for l in summary {
        println!("  {l}");
    }
}
