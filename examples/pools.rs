//! The pools seed program: `multiprocessing.Pool` and
//! `concurrent.futures`, ported.
//!
//! ```python
//! with multiprocessing.Pool(4) as pool:
//!     print(pool.apply(square, (7,)))
//!     r = pool.apply_async(square, (8,), callback=lambda v: print('callback got', v))
//!     print(r.get())
//!     print(pool.map(square, range(10)))
//!
//! with ProcessPoolExecutor() as ex:
//!     fut = ex.submit(fib, 25)
//!     fut.add_done_callback(lambda f: print('done:', f.result()))
//!     print(list(ex.map(fib, range(20, 25))))
//! ```
//!
//! A greenlet `Pool` limits how many greenlets run at once, which suits
//! work that waits (I/O); `apply_async` is `spawn`, and a callback is a
//! `link`. Work that computes goes to the thread pool
//! (`threadpool::spawn_blocking`), which parks only the greenlet waiting
//! for it: Rust has no GIL, so threads on every core stand in for the
//! processes.

use std::sync::Arc;

use greenlet::pool::Pool;
use greenlet::sync::AsyncResult;
use greenlet::threadpool::spawn_blocking;

fn square(x: u64) -> u64 {
    greenlet::sleep(std::time::Duration::from_millis(1)); // as if it waited on I/O
    x * x
}

fn fib(n: u64) -> u64 {
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}

/// What each call gave back.
#[derive(Debug, PartialEq, Eq)]
pub struct Results {
    pub apply: u64,
    pub apply_async: u64,
    pub callback: u64,
    pub map: Vec<u64>,
    pub submit: u64,
    pub done_callback: u64,
    pub executor_map: Vec<u64>,
}

/// Runs every call of the Python program; `say` gets what it prints.
pub fn pools(say: impl Fn(String) + Send + Sync + Clone + 'static) -> Results {
    greenlet::run(move || {
        let pool = Pool::new(4);
        let apply = pool.apply(|| square(7)).expect("square does not panic");
        say(format!("{apply}"));

        // What the callbacks saw, for the caller (a callback may run on
        // another thread, and after `get` has returned).
        let callback = Arc::new(AsyncResult::<u64, ()>::new());
        let (seen, s) = (callback.clone(), say.clone());
        let r = pool.spawn(|| square(8));
        r.link(move |g| {
            let v = *g.value().expect("square returned");
            s(format!("callback got {v}"));
            let _ = seen.set(v);
        });
        let apply_async = *r.get().expect("square does not panic");
        say(format!("{apply_async}"));

        let map = pool.map(square, 0..10).expect("square does not panic");
        say(format!("{map:?}"));

        let done = Arc::new(AsyncResult::<u64, ()>::new());
        let (seen, s) = (done.clone(), say.clone());
        let fut = spawn_blocking(|| fib(25));
        fut.link(move |f| {
            let v = *f.value().expect("fib returned");
            s(format!("done: {v}"));
            let _ = seen.set(v);
        });
        let submit = *fut.get().expect("fib does not panic");
        let jobs: Vec<_> = (20..25).map(|n| spawn_blocking(move || fib(n))).collect();
        let executor_map: Vec<u64> = jobs.iter().map(|j| *j.get().expect("fib")).collect();
        say(format!("{executor_map:?}"));

        Results {
            apply,
            apply_async,
            callback: *callback.get().expect("the callback ran"),
            map,
            submit,
            done_callback: *done.get().expect("the callback ran"),
            executor_map,
        }
    })
}

#[allow(dead_code)]
fn main() {
    pools(|line| println!("{line}"));
}
