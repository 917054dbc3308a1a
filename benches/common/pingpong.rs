//! Ping-pong through two bounded queues between two tasks: task A puts a
//! number into `there` and takes the answer from `back`; task B takes from
//! `there` and puts into `back`. One criterion iteration is one round trip
//! (two hand-overs, two wake-ups).

use std::time::{Duration, Instant};

use greenlet::queue::Queue;
use std::sync::Arc;

/// Greenlet side: `n` round trips between two greenlets; if `apart`, the two
/// run on different workers (retrying until the second one is stolen by
/// the other worker).
pub fn greenlet_pingpong(n: u64, apart: bool) -> Duration {
    loop {
        let there = Arc::new(Queue::bounded(1));
        let back = Arc::new(Queue::bounded(1));
        let (t, b) = (there.clone(), back.clone());
        let home = std::thread::current().id();
        let b_thread = Arc::new(greenlet::sync::AsyncResult::<std::thread::ThreadId, ()>::new());
        let bt = b_thread.clone();
        let echo = greenlet::spawn(move || {
            bt.set(std::thread::current().id()).unwrap();
            for v in t.iter() {
                if b.put(v).is_err() {
                    break;
                }
            }
        });
        if apart {
            // Keep this worker busy so the idle one steals `echo`.
            let spin = Instant::now();
            while !b_thread.ready() && spin.elapsed() < Duration::from_millis(5) {
                std::hint::spin_loop();
            }
        }
        let same = *b_thread.get().unwrap() == home;
        if same == apart {
            there.close();
            echo.join();
            continue;
        }
        let start = Instant::now();
        for i in 0..n {
            there.put(i).unwrap();
            back.get().unwrap();
        }
        let elapsed = start.elapsed();
        there.close();
        echo.join();
        return elapsed;
    }
}

/// tokio side: the same with `tokio::sync::mpsc::channel(1)`.
pub async fn tokio_pingpong(n: u64) -> Duration {
    let (tx1, mut rx1) = tokio::sync::mpsc::channel::<u64>(1);
    let (tx2, mut rx2) = tokio::sync::mpsc::channel::<u64>(1);
    let echo = tokio::spawn(async move {
        while let Some(v) = rx1.recv().await {
            if tx2.send(v).await.is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    for i in 0..n {
        tx1.send(i).await.unwrap();
        rx2.recv().await.unwrap();
    }
    let elapsed = start.elapsed();
    drop(tx1);
    echo.await.unwrap();
    elapsed
}

/// tokio across threads: the echo task on a current-thread runtime of its
/// own thread, the timed side on another; the same channels.
#[allow(dead_code)]
pub fn tokio_two_threads(n: u64) -> Duration {
    let (tx1, mut rx1) = tokio::sync::mpsc::channel::<u64>(1);
    let (tx2, mut rx2) = tokio::sync::mpsc::channel::<u64>(1);
    let current = || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    };
    let echo_rt = current();
    let echo = std::thread::spawn(move || {
        echo_rt.block_on(async move {
            while let Some(v) = rx1.recv().await {
                if tx2.send(v).await.is_err() {
                    break;
                }
            }
        })
    });
    let elapsed = current().block_on(async move {
        let start = Instant::now();
        for i in 0..n {
            tx1.send(i).await.unwrap();
            rx2.recv().await.unwrap();
        }
        start.elapsed()
    });
    echo.join().unwrap();
    elapsed
}

/// may side: the same with `may::sync::mpsc` (unbounded; each direction
/// holds at most one item anyway).
pub fn may_pingpong(n: u64) -> Duration {
    let (tx1, rx1) = may::sync::mpsc::channel::<u64>();
    let (tx2, rx2) = may::sync::mpsc::channel::<u64>();
    // SAFETY: may's spawn is unsafe because a coroutine must not use
    // thread-locals and must not overflow its stack; these closures use
    // neither thread-locals nor more than a few hundred bytes of stack.
    let echo = unsafe {
        may::coroutine::spawn(move || {
            while let Ok(v) = rx1.recv() {
                if tx2.send(v).is_err() {
                    break;
                }
            }
        })
    };
    let start = Instant::now();
    for i in 0..n {
        tx1.send(i).unwrap();
        rx2.recv().unwrap();
    }
    let elapsed = start.elapsed();
    drop(tx1);
    echo.join().unwrap();
    elapsed
}

/// Runs `may_pingpong` inside a may coroutine.
pub fn may_measure(n: u64) -> Duration {
    // SAFETY: as in `may_pingpong`; this closure only spawns and joins.
    let outer = unsafe { may::coroutine::spawn(move || may_pingpong(n)) };
    outer.join().unwrap()
}
