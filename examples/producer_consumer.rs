//! Producers and consumers around a bounded, joinable `Queue`: producers
//! wait while the queue is full, consumers mark each item done, and
//! `join` returns once every item put has been processed.
//!
//! ```text
//! cargo run --example producer_consumer
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use greenlet::queue::Queue;

/// What a run did.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub produced: u64,
    pub processed: u64,
    pub sum: u64,
}

/// `producers` greenlets each put `per_producer` numbers into a queue of
/// `capacity`; `consumers` greenlets process them. Runs inside a runtime.
pub fn produce_and_consume(
    producers: u64,
    per_producer: u64,
    consumers: usize,
    capacity: usize,
    verbose: bool,
) -> Report {
    let q = Arc::new(Queue::bounded(capacity));
    let processed = Arc::new(AtomicU64::new(0));
    let sum = Arc::new(AtomicU64::new(0));

    let workers: Vec<_> = (0..consumers)
        .map(|c| {
            let (q, processed, sum) = (q.clone(), processed.clone(), sum.clone());
            greenlet::spawn(move || {
                // Ends when the queue is closed and drained.
                for item in q.iter() {
                    greenlet::sleep(Duration::from_micros(50)); // "work"
                    sum.fetch_add(item, Ordering::SeqCst);
                    processed.fetch_add(1, Ordering::SeqCst);
                    if verbose && item % 100 == 0 {
                        println!("consumer {c} processed {item}");
                    }
                    q.task_done();
                }
            })
        })
        .collect();

    let makers: Vec<_> = (0..producers)
        .map(|p| {
            let q = q.clone();
            greenlet::spawn(move || {
                for i in 0..per_producer {
                    q.put(p * per_producer + i).unwrap(); // waits while full
                }
            })
        })
        .collect();

    greenlet::joinall(&makers);
    q.join(); // every item put is done
    let report = Report {
        produced: producers * per_producer,
        processed: processed.load(Ordering::SeqCst),
        sum: sum.load(Ordering::SeqCst),
    };
    q.close(); // lets the consumers finish
    greenlet::joinall(&workers);
    report
}

#[allow(dead_code)]
fn main() {
    let report = greenlet::run(|| produce_and_consume(4, 250, 3, 16, true));
    println!(
        "{} items produced, {} processed, sum {}",
        report.produced, report.processed, report.sum
    );
}
