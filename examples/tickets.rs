//! The ticket race (seed program 6): 100 clients each read the remaining
//! count, wait a little (read latency), and if a ticket is left write back
//! the count minus one (after a write latency). Without a lock, clients
//! that read the same count all "buy" the same ticket and more tickets are
//! sold than exist; with a `Lock` around the buy step, exactly the available
//! number are sold.
//!
//! The "file" is an in-memory record, so the example needs nothing outside.
//!
//! ```text
//! cargo run --example tickets
//! ```

use std::sync::Arc;
use std::time::Duration;

use greenlet::sync::Lock;

/// The ticket "file": `{"count": N}`, read and written whole.
pub struct TicketFile(std::sync::Mutex<String>);

impl TicketFile {
    pub fn new(count: u32) -> Self {
        TicketFile(std::sync::Mutex::new(format!("{{\"count\": {count}}}")))
    }

    pub fn read(&self) -> u32 {
        let text = self.0.lock().unwrap();
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    }

    pub fn write(&self, count: u32) {
        *self.0.lock().unwrap() = format!("{{\"count\": {count}}}");
    }
}

/// How a race went.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub sold: u32,
    pub left: u32,
}

/// Runs `clients` buyers against `tickets` tickets, with or without the
/// lock; `latency` is the simulated read latency (the write takes twice as
/// long, as in the seed). Must run inside a runtime.
pub fn race(
    clients: u32,
    tickets: u32,
    with_lock: bool,
    latency: Duration,
    verbose: bool,
) -> Outcome {
    let file = Arc::new(TicketFile::new(tickets));
    let lock = Arc::new(Lock::new(()));
    let buyers: Vec<_> = (0..clients)
        .map(|client| {
            let (file, lock) = (file.clone(), lock.clone());
            greenlet::spawn(move || {
                let _held = with_lock.then(|| lock.lock());
                let count = file.read();
                if verbose {
                    println!("client {client:3}: {count} tickets left");
                }
                greenlet::sleep(latency); // reading the file
                if count == 0 {
                    return false;
                }
                greenlet::sleep(latency * 2); // writing it back
                file.write(count - 1);
                if verbose {
                    println!("client {client:3}: purchase succeeded");
                }
                true
            })
        })
        .collect();
    greenlet::joinall(&buyers);
    let sold = buyers.iter().filter(|g| *g.get().unwrap()).count() as u32;
    Outcome {
        sold,
        left: file.read(),
    }
}

#[allow(dead_code)]
fn main() {
    let latency = Duration::from_millis(100);
    greenlet::run(move || {
        let without = race(100, 10, false, latency, false);
        println!(
            "without the lock: {} purchases succeeded for 10 tickets ({} left on file): oversold",
            without.sold, without.left
        );
        let with = race(100, 10, true, latency / 10, true);
        println!(
            "with the lock: {} purchases succeeded for 10 tickets ({} left)",
            with.sold, with.left
        );
    });
}
