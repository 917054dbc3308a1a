//! The gevent seed program: ten greenlets sleep one second each, at once.
//!
//! ```python
//! def task(i): time.sleep(1); print('----', i); return i * 2
//! res = [spawn(task, i) for i in range(10)]; joinall(res)
//! for g in res: print(g.value)
//! ```
//!
//! Prints `---- i` for each task as it wakes, then the values 0, 2, … 18, and
//! takes about one second, not ten: the sleeps overlap.

use std::time::{Duration, Instant};

/// Runs the ten tasks with sleeps of `nap`; returns their values.
pub fn spawn_joinall(nap: Duration) -> Vec<u32> {
    greenlet::run(move || {
        let res: Vec<_> = (0..10)
            .map(|i| {
                greenlet::spawn(move || {
                    greenlet::sleep(nap);
                    println!("---- {i}");
                    i * 2
                })
            })
            .collect();
        greenlet::joinall(&res);
        res.iter()
            .map(|g| *g.value().expect("every task returned"))
            .collect()
    })
}

#[allow(dead_code)]
fn main() {
    let t0 = Instant::now();
    for value in spawn_joinall(Duration::from_secs(1)) {
        println!("{value}");
    }
    println!("took {:.2?}", t0.elapsed());
}
