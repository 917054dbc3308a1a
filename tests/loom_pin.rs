//! loom model of the pin protocol (`hub::pin`): a thread that holds a
//! greenlet's cell and reaches its worker through it never finds the worker
//! freed, however that races the greenlet's end and its worker's exit, and
//! every reference counted for a cell is given back.
//!
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_pin`
#![cfg(loom)]

use std::sync::atomic::Ordering::SeqCst;

use greenlet::__loom_pin::{Counted, WorkerPin};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize};
use loom::thread;

/// Marks kept outside the worker: whether it was freed, and how many
/// threads are using it.
#[derive(Default)]
struct Marks {
    freed: AtomicBool,
    inside: AtomicUsize,
}

/// A worker's shared part.
struct Worker {
    marks: Arc<Marks>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.marks.freed.store(true, SeqCst);
        assert_eq!(self.marks.inside.load(SeqCst), 0, "a worker freed in use");
    }
}

// SAFETY: the model's workers are held in loom `Arc`s and only there.
unsafe impl Counted for Worker {
    unsafe fn acquire(p: *const Self) {
        // SAFETY: per the trait's contract.
        unsafe { Arc::increment_strong_count(p) }
    }

    unsafe fn release(p: *const Self) {
        // SAFETY: per the trait's contract.
        unsafe { Arc::decrement_strong_count(p) }
    }
}

/// A greenlet's cell: its lifecycle bits and its worker, as in the header.
struct Cell {
    life: AtomicU8,
    worker: WorkerPin<Worker>,
}

impl Drop for Cell {
    fn drop(&mut self) {
        // SAFETY: the one call, as the cell goes.
        unsafe { self.worker.release(self.life.load(SeqCst)) };
    }
}

/// What a waker or a killer on another thread does: reach the worker
/// through the cell, and use it.
fn reach(cell: &Cell) -> bool {
    match cell.worker.get(&cell.life) {
        Some(w) => {
            w.marks.inside.fetch_add(1, SeqCst);
            assert!(!w.marks.freed.load(SeqCst), "reached a freed worker");
            w.marks.inside.fetch_sub(1, SeqCst);
            true
        }
        None => false,
    }
}

/// The greenlet, started on its worker (`set` before or after another
/// thread got the cell), ends; then the worker's thread exits, dropping its
/// reference. Another thread holding the cell reaches the worker twice
/// meanwhile, then drops the cell. `loom` fails the model if any counted
/// reference (a worker's, a cell's) is never given back.
fn end_and_exit_racing_a_reach(set_before: bool) {
    loom::model(move || {
        let marks = Arc::new(Marks::default());
        let worker = Arc::new(Worker {
            marks: marks.clone(),
        });
        let cell = Arc::new(Cell {
            life: AtomicU8::new(1), // claimed by the worker: STARTED
            worker: WorkerPin::new(),
        });
        let start = |cell: &Cell, worker: &Arc<Worker>| {
            // SAFETY: the worker thread below holds `worker` until the
            // greenlet has ended.
            unsafe { cell.worker.set(Arc::as_ptr(worker)) }
        };
        if set_before {
            start(&cell, &worker);
        }
        let other = {
            let cell = cell.clone();
            thread::spawn(move || {
                let first = reach(&cell);
                let second = reach(&cell);
                // Once reached, the worker stays reachable through the cell.
                assert!(!first || second);
            })
        };
        let on_worker = thread::spawn(move || {
            if !set_before {
                start(&cell, &worker);
            }
            cell.worker.complete(&cell.life);
            drop(cell);
            drop(worker);
        });
        other.join().unwrap();
        on_worker.join().unwrap();
        assert!(marks.freed.load(SeqCst), "the worker was never freed");
    });
}

#[test]
fn loom_a_worker_reached_before_the_greenlet_ended_outlives_the_reach() {
    end_and_exit_racing_a_reach(true);
}

#[test]
fn loom_a_reach_racing_the_start_finds_no_worker_or_a_live_one() {
    end_and_exit_racing_a_reach(false);
}

/// Two threads reach the worker through the cell at once, racing the end:
/// the worker is counted for the cell at most once, and given back.
#[test]
fn loom_two_reaches_pin_the_worker_once() {
    loom::model(|| {
        let marks = Arc::new(Marks::default());
        let worker = Arc::new(Worker {
            marks: marks.clone(),
        });
        let cell = Arc::new(Cell {
            life: AtomicU8::new(1),
            worker: WorkerPin::new(),
        });
        // SAFETY: the worker thread below holds `worker` until the greenlet
        // has ended.
        unsafe { cell.worker.set(Arc::as_ptr(&worker)) };
        let reachers: Vec<_> = (0..2)
            .map(|_| {
                let cell = cell.clone();
                thread::spawn(move || {
                    reach(&cell);
                })
            })
            .collect();
        cell.worker.complete(&cell.life);
        drop(worker);
        for r in reachers {
            r.join().unwrap();
        }
        drop(cell);
        assert!(marks.freed.load(SeqCst), "the worker was never freed");
    });
}
