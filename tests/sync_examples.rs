//! The ported seed programs (examples/) checked on their results.

mod common;

use std::time::Duration;

use common::guard;
use greenlet::Builder;

#[path = "../examples/tickets.rs"]
mod tickets;

#[path = "../examples/dialogue.rs"]
mod dialogue;

#[path = "../examples/producer_consumer.rs"]
mod producer_consumer;

#[path = "../examples/pools.rs"]
mod pools;

#[path = "../examples/asyncio_patterns.rs"]
mod asyncio_patterns;

#[test]
fn sync_example_tickets_the_lock_sells_exactly_what_exists() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let with = tickets::race(100, 10, true, Duration::from_micros(200), false);
            assert_eq!(with, tickets::Outcome { sold: 10, left: 0 });
        });
    });
}

#[test]
fn sync_example_tickets_without_the_lock_oversells() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            // Every client reads before any writes (they all sleep after
            // reading), so all 100 "buy".
            let without = tickets::race(100, 10, false, Duration::from_millis(20), false);
            assert!(without.sold > 10, "{without:?}");
        });
    });
}

#[test]
fn sync_example_dialogue_alternates_strictly() {
    guard(|| {
        let said = Builder::new().workers(2).run(|| dialogue::dialogue(false));
        assert_eq!(said.len(), 12);
        for (i, line) in said.iter().enumerate() {
            let speaker = if i % 2 == 0 { "天猫精灵" } else { "小爱" };
            assert_eq!(*line, format!("{speaker}: {}", dialogue::LINES[i]));
        }
    });
}

#[test]
fn sync_example_producer_consumer_join_sees_every_item_done() {
    guard(|| {
        let r = Builder::new()
            .workers(2)
            .run(|| producer_consumer::produce_and_consume(4, 100, 3, 8, false));
        let n = 400;
        assert_eq!(
            r,
            producer_consumer::Report {
                produced: n,
                processed: n,
                sum: n * (n - 1) / 2
            }
        );
    });
}

#[test]
fn sync_example_pools_give_the_python_programs_results() {
    guard(|| {
        let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = said.clone();
        let got = pools::pools(move |line| s.lock().unwrap().push(line));
        let fib = |n: u64| -> u64 { (0..n).fold((0, 1), |(a, b), _| (b, a + b)).0 };
        assert_eq!(
            got,
            pools::Results {
                apply: 49,
                apply_async: 64,
                callback: 64,
                map: (0..10).map(|x| x * x).collect(),
                submit: fib(25),
                done_callback: fib(25),
                executor_map: (20..25).map(fib).collect(),
            }
        );
        let said = said.lock().unwrap();
        assert!(said.contains(&"callback got 64".to_string()), "{said:?}");
        assert!(said.contains(&format!("done: {}", fib(25))), "{said:?}");
    });
}

#[test]
fn sync_example_asyncio_patterns_each_give_what_asyncio_would() {
    guard(|| {
        let seen = Builder::new().workers(2).run(asyncio_patterns::patterns);
        assert_eq!(
            seen,
            asyncio_patterns::Seen {
                gather: vec![30, 10, 20],
                gather_errors: vec![
                    Ok(1),
                    Err(greenlet::GreenletError::Panicked("task 2 failed".into()))
                ],
                // Sleeps of 5, 60 and 120 ms, spawned in the order 120, 5, 60.
                first_completed: 5,
                as_completed: vec![5, 60, 120],
                wait_for_timed_out: true,
                shielded_kept_running: true,
                task_group: vec![5, 10, 15],
                to_thread: 7,
                done_callback: 5,
                cancel_cleaned_up: true,
            }
        );
    });
}
