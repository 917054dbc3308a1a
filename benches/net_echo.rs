//! Echo throughput and latency: a `greenlet::net` echo server beside the
//! same server on tokio, driven by one client.
//!
//! N connections (default 100) each send a 100-byte message and wait for
//! the echo, again and again, for a fixed time (default 5 s, after 0.5 s of
//! warm-up). Reported per run: requests per second (round trips completed)
//! and the p50 / p99 round-trip latency; then the median over the runs and
//! the ratio greenlet / tokio.
//!
//! - greenlet: `StreamServer` on `Builder::new().workers(w)`, one greenlet
//!   per connection: `read`, then `write_all` (blocking-looking code).
//! - tokio: `TcpListener` on a multi-thread runtime with `w` workers, one
//!   task per connection: `read().await`, then `write_all().await`.
//!
//! Both set `TCP_NODELAY` and use a 4 KiB buffer. The client is the same
//! for both: one thread in this process running a plain mio (epoll) loop
//! over all N connections, so it costs about what one server worker costs
//! and never waits on a scheduler of its own. It shares the machine's cores
//! with the server: with `w` = 2 on a 2-core machine, client and server
//! together ask for three cores.
//!
//! ```text
//! cargo bench --bench net_echo
//! NET_ECHO_CONNS=100 NET_ECHO_SECS=5 NET_ECHO_RUNS=3 NET_ECHO_WORKERS=1,2 cargo bench --bench net_echo
//! NET_ECHO_SERVER=greenlet cargo bench --bench net_echo   # one server alone, for profiling
//! ```

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};

const MSG: usize = 100;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One run's outcome.
#[derive(Clone, Copy, Debug)]
struct Outcome {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

/// A running server: its address and how to stop it.
struct Server {
    addr: SocketAddr,
    stop: Box<dyn FnOnce()>,
}

fn greenlet_server(workers: usize) -> Server {
    use greenlet::net::TcpStream;
    let server = greenlet::server::StreamServer::new("127.0.0.1:0", |mut s: TcpStream, _| {
        let _ = s.set_nodelay(true);
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    })
    .unwrap();
    let addr = server.local_addr().unwrap();
    let serving = server.clone();
    let t = std::thread::spawn(move || {
        greenlet::Builder::new()
            .workers(workers)
            .run(move || serving.serve_forever().unwrap())
    });
    Server {
        addr,
        stop: Box::new(move || {
            server.stop(Duration::from_secs(1));
            t.join().unwrap();
        }),
    }
}

fn tokio_server(workers: usize) -> Server {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(async move {
        loop {
            tokio::select! {
                conn = listener.accept() => {
                    let Ok((mut s, _)) = conn else { continue };
                    tokio::spawn(async move {
                        let _ = s.set_nodelay(true);
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
                _ = &mut rx => break,
            }
        }
    });
    Server {
        addr,
        stop: Box::new(move || {
            drop(tx);
            rt.shutdown_timeout(Duration::from_secs(1));
        }),
    }
}

/// One client connection's progress through a round trip.
struct Conn {
    s: MioStream,
    sent: usize,
    got: usize,
    started: Instant,
}

/// Drives `conns` echo loops against `addr`; returns the outcome of the
/// `measure` period that follows `warmup`.
fn client(addr: SocketAddr, conns: usize, warmup: Duration, measure: Duration) -> Outcome {
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(1024);
    let mut cs: Vec<Conn> = (0..conns)
        .map(|i| {
            let std = std::net::TcpStream::connect(addr).unwrap();
            std.set_nodelay(true).unwrap();
            std.set_nonblocking(true).unwrap();
            let mut s = MioStream::from_std(std);
            poll.registry()
                .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                .unwrap();
            Conn {
                s,
                sent: 0,
                got: 0,
                started: Instant::now(),
            }
        })
        .collect();
    let out = [7u8; MSG];
    let mut back = [0u8; MSG];
    let t0 = Instant::now();
    let measure_from = t0 + warmup;
    let end = measure_from + measure;
    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut count = 0u64;
    // Every connection starts writing at once (the first events may come
    // before anything was sent).
    let mut ready: Vec<usize> = (0..conns).collect();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        for i in ready.drain(..) {
            let c = &mut cs[i];
            loop {
                if c.sent < MSG {
                    match c.s.write(&out[c.sent..]) {
                        Ok(n) => c.sent += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("client write: {e}"),
                    }
                    continue;
                }
                match c.s.read(&mut back[c.got..]) {
                    Ok(0) => panic!("server closed the connection"),
                    Ok(n) => c.got += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("client read: {e}"),
                }
                if c.got == MSG {
                    let done = Instant::now();
                    if done >= measure_from && done < end {
                        count += 1;
                        let us = (done - c.started).as_nanos() / 1000;
                        lat.push(us.min(u32::MAX as u128) as u32);
                    }
                    c.sent = 0;
                    c.got = 0;
                    c.started = done;
                }
            }
        }
        poll.poll(&mut events, Some(end.saturating_duration_since(now)))
            .unwrap();
        ready.extend(events.iter().map(|e| e.token().0));
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            f64::NAN
        } else {
            lat[((lat.len() - 1) as f64 * p) as usize] as f64
        }
    };
    Outcome {
        rps: count as f64 / measure.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too:
    // a short smoke run then.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let conns = env("NET_ECHO_CONNS", 100usize);
    let secs = env("NET_ECHO_SECS", if smoke { 0.2 } else { 5.0f64 });
    let runs = env("NET_ECHO_RUNS", if smoke { 1 } else { 3usize });
    let workers: Vec<usize> = std::env::var("NET_ECHO_WORKERS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    let warmup = Duration::from_secs_f64(if smoke { 0.05 } else { 0.5 });
    let measure = Duration::from_secs_f64(secs);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "net_echo: {conns} connections x {MSG}-byte messages, {secs} s per run, {runs} runs; \
         {cores} cores; client: 1 thread (mio) in this process, competing with the server's \
         workers for the cores"
    );
    println!(
        "{:<9} {:>7} {:>4} {:>12} {:>9} {:>9}",
        "server", "workers", "run", "req/s", "p50 us", "p99 us"
    );
    type Make = fn(usize) -> Server;
    let only = std::env::var("NET_ECHO_SERVER").ok();
    let peers: Vec<(&str, Make)> = [
        ("greenlet", greenlet_server as Make),
        ("tokio", tokio_server),
    ]
    .into_iter()
    .filter(|(name, _)| only.as_deref().is_none_or(|o| o == *name))
    .collect();
    let mut results: Vec<(&str, usize, Outcome)> = Vec::new();
    for run in 0..runs {
        for &w in &workers {
            // Alternate who goes first, so drift favours neither.
            let order: Vec<_> = if run % 2 == 0 {
                peers.iter().collect()
            } else {
                peers.iter().rev().collect()
            };
            for &(name, make) in order {
                let server = make(w);
                let o = client(server.addr, conns, warmup, measure);
                (server.stop)();
                println!(
                    "{name:<9} {w:>7} {run:>4} {:>12.0} {:>9.0} {:>9.0}",
                    o.rps, o.p50_us, o.p99_us
                );
                results.push((name, w, o));
            }
        }
    }
    println!("\nmedians over {runs} runs:");
    println!(
        "{:<9} {:>7} {:>12} {:>9} {:>9}",
        "server", "workers", "req/s", "p50 us", "p99 us"
    );
    for &w in &workers {
        let med = |name: &str, f: fn(&Outcome) -> f64| {
            median(
                results
                    .iter()
                    .filter(|r| r.0 == name && r.1 == w)
                    .map(|r| f(&r.2))
                    .collect(),
            )
        };
        for (name, _) in &peers {
            println!(
                "{name:<9} {w:>7} {:>12.0} {:>9.0} {:>9.0}",
                med(name, |o| o.rps),
                med(name, |o| o.p50_us),
                med(name, |o| o.p99_us)
            );
        }
        if peers.len() == 2 {
            println!(
                "ratio greenlet/tokio, {w} worker(s): req/s {:.2}x, p99 {:.2}x (lower p99 is better)",
                med("greenlet", |o| o.rps) / med("tokio", |o| o.rps),
                med("greenlet", |o| o.p99_us) / med("tokio", |o| o.p99_us)
            );
        }
    }
}
