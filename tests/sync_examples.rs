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
