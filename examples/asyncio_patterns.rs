//! The asyncio patterns of the seed articles, each in its greenlet form:
//! what a port of an asyncio program writes instead.
//!
//! | asyncio | greenlet |
//! |---|---|
//! | `gather(*aws)` | `spawn` each, `joinall`, values in order |
//! | `gather(..., return_exceptions=True)` | `get()` on each: `Err` for a panic |
//! | `wait(..., FIRST_COMPLETED)` | `iwait(&gs).next()` |
//! | `as_completed` | `iwait` |
//! | `wait_for(aw, t)`, `timeout(t)` | `with_timeout(t, ...)`, `Timeout::new(t).run(...)` |
//! | `shield(aw)` under a timeout | `join_timeout`: the waiter gives up, the greenlet runs on |
//! | `TaskGroup` | `pool::Group` |
//! | `Runner` (one loop, several runs) | one `Runtime`, several `spawn(...).get()` |
//! | `to_thread`, `run_in_executor` | `threadpool::spawn_blocking` |
//! | `add_done_callback` | `link` |
//! | `task.cancel()` and cleanup on `CancelledError` | `kill()`, and a drop guard |
//! | `start_server`, `serve_forever`, `stop` | `server::StreamServer` (see `echo_server`) |
//!
//! The async Redis and MySQL clients of the articles become the blocking
//! client crates, which need the shim that makes blocking calls cooperative.
//!
//! The failing task of the `gather` pattern prints its panic on stderr, as
//! every greenlet that panics does; its error is a value for the caller.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use greenlet::pool::Group;
use greenlet::sync::{AsyncResult, Event};
use greenlet::{Greenlet, GreenletError};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A task that sleeps `n` ms and returns `n`.
fn nap(n: u64) -> Greenlet<u64> {
    greenlet::spawn(move || {
        greenlet::sleep(ms(n));
        n
    })
}

/// What each pattern gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub gather: Vec<u64>,
    pub gather_errors: Vec<Result<u64, GreenletError>>,
    pub first_completed: u64,
    pub as_completed: Vec<u64>,
    pub wait_for_timed_out: bool,
    pub shielded_kept_running: bool,
    pub task_group: Vec<u64>,
    pub to_thread: u64,
    pub done_callback: u64,
    pub cancel_cleaned_up: bool,
}

/// Runs every pattern (in a greenlet of a runtime).
pub fn patterns() -> Seen {
    let gs = [nap(30), nap(10), nap(20)];
    greenlet::joinall(&gs);
    let gather = gs.iter().map(|g| *g.value().unwrap()).collect();

    let gs = [
        greenlet::spawn(|| 1),
        greenlet::spawn(|| -> u64 { panic!("task 2 failed") }),
    ];
    let gather_errors = gs.iter().map(|g| g.get().cloned()).collect();

    let gs = [nap(120), nap(5), nap(60)];
    let first_completed = *greenlet::iwait(&gs).next().unwrap().value().unwrap();
    let as_completed = greenlet::iwait(&gs).map(|g| *g.value().unwrap()).collect();

    let wait_for_timed_out = greenlet::with_timeout(ms(10), || greenlet::sleep(ms(1000))).is_err();

    // The shielded task waits for `go`, so it cannot be done when the
    // waiter's time runs out; it finishes once `go` is set.
    let go = Arc::new(Event::new());
    let g = go.clone();
    let slow = greenlet::spawn(move || {
        g.wait();
        40
    });
    let gave_up = !slow.join_timeout(ms(5));
    go.set();
    let shielded_kept_running = gave_up && *slow.get().unwrap() == 40;

    let group = Group::new();
    let finished = Arc::new(std::sync::Mutex::new(Vec::new()));
    for n in [15, 5, 10] {
        let f = finished.clone();
        group.spawn(move || {
            greenlet::sleep(ms(n));
            f.lock().unwrap().push(n);
        });
    }
    group.join();
    let mut task_group = finished.lock().unwrap().clone();
    task_group.sort();

    let to_thread = *greenlet::threadpool::spawn_blocking(|| {
        std::thread::sleep(ms(5)); // blocks a pool thread, not the hub
        7
    })
    .get()
    .unwrap();

    let done = Arc::new(AsyncResult::<u64, ()>::new());
    let d = done.clone();
    nap(5).link(move |g| {
        let _ = d.set(*g.value().unwrap());
    });
    let done_callback = *done.get().unwrap();

    let cleaned = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Event::new());
    let (c, s) = (cleaned.clone(), started.clone());
    let task = greenlet::spawn(move || {
        struct Cleanup(Arc<AtomicBool>);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _cleanup = Cleanup(c);
        s.set();
        greenlet::sleep(ms(60_000));
    });
    started.wait();
    // Unwinds the task from its sleep (its destructors run) and returns
    // once it is gone.
    task.kill();
    let cancel_cleaned_up = cleaned.load(Ordering::SeqCst);

    Seen {
        gather,
        gather_errors,
        first_completed,
        as_completed,
        wait_for_timed_out,
        shielded_kept_running,
        task_group,
        to_thread,
        done_callback,
        cancel_cleaned_up,
    }
}

#[allow(dead_code)]
fn main() {
    // asyncio's Runner: one runtime, several runs.
    let rt = greenlet::Builder::new().build().expect("a runtime");
    let seen = rt.spawn(patterns).get().cloned();
    let again = rt.spawn(|| nap(1).get().cloned()).get().cloned();
    println!("{seen:#?}");
    println!("a second run on the same runtime: {again:?}");
}
