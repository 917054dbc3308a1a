//! Stress: a million cross-worker wake-ups through a channel, and a kill
//! storm on greenlets waiting on locks, semaphores and queues.
//!
//! Full size under `cargo test --release`; scaled down in debug builds.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::guard_for;
use greenlet::queue::{Channel, Queue};
use greenlet::sync::{Event, Lock, Semaphore};
use greenlet::{Builder, Greenlet};

const FULL: bool = !cfg!(debug_assertions);

/// A bit per item: receiving one twice is caught.
struct Seen(Vec<AtomicU64>);

impl Seen {
    fn new(n: usize) -> Self {
        Seen((0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }
    fn mark(&self, i: usize) {
        let bit = 1u64 << (i % 64);
        let old = self.0[i / 64].fetch_or(bit, Ordering::Relaxed);
        assert!(old & bit == 0, "item {i} received twice");
    }
    fn count(&self) -> usize {
        self.0
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }
}

#[test]
fn sync_stress_a_million_wakeups_through_a_channel() {
    let total: usize = if FULL { 1_000_000 } else { 20_000 };
    guard_for(Duration::from_secs(300), move || {
        Builder::new().workers(2).run(move || {
            let ch = Arc::new(Channel::new());
            let seen = Arc::new(Seen::new(total));
            let producers = 4;
            let per = total / producers;
            // Three producers are greenlets (on either worker), one is a
            // plain thread; four consumers are greenlets.
            let mut gs: Vec<Greenlet<()>> = Vec::new();
            for p in 0..producers - 1 {
                let ch = ch.clone();
                gs.push(greenlet::spawn(move || {
                    for i in p * per..(p + 1) * per {
                        ch.put(i).unwrap();
                    }
                }));
            }
            let c = ch.clone();
            let thread_done = Arc::new(Event::new());
            let td = thread_done.clone();
            let thread = std::thread::spawn(move || {
                for i in (producers - 1) * per..total {
                    c.put(i).unwrap();
                }
                td.set();
            });
            let consumers: Vec<_> = (0..4)
                .map(|_| {
                    let (ch, seen) = (ch.clone(), seen.clone());
                    greenlet::spawn(move || {
                        let mut n = 0usize;
                        for i in ch.iter() {
                            seen.mark(i);
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            greenlet::joinall(&gs);
            // Wait for the thread by an event: a greenlet must not block its
            // worker in `JoinHandle::join` while the thread still needs it.
            thread_done.wait();
            thread.join().unwrap();
            ch.close();
            let got: usize = consumers.iter().map(|g| *g.get().unwrap()).sum();
            assert_eq!(got, total, "nothing lost or duplicated");
            assert_eq!(seen.count(), total);
        });
    });
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sync_stress_kill_storm_accounts_for_every_permit_and_item() {
    let victims: usize = if FULL { 2_000 } else { 200 };
    guard_for(Duration::from_secs(300), move || {
        Builder::new().workers(2).run(move || {
            let sem = Arc::new(Semaphore::new(3));
            let lock = Arc::new(Lock::new(0u64));
            let q = Arc::new(Queue::bounded(8));
            let next_id = Arc::new(AtomicUsize::new(0));
            let put_ok = Arc::new(AtomicUsize::new(0));
            let got = Arc::new(Mutex::new(Vec::new()));
            let locked_work = Arc::new(AtomicUsize::new(0));
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            let mut gs = Vec::new();
            for v in 0..victims {
                let (sem, lock, q) = (sem.clone(), lock.clone(), q.clone());
                let (next_id, put_ok, got, lw) = (
                    next_id.clone(),
                    put_ok.clone(),
                    got.clone(),
                    locked_work.clone(),
                );
                let role = v % 3;
                gs.push(greenlet::spawn(move || {
                    loop {
                        match role {
                            0 => {
                                let _p = sem.access();
                                let mut n = lock.lock();
                                greenlet::yield_now();
                                *n += 1;
                                lw.fetch_add(1, Ordering::SeqCst);
                            }
                            1 => {
                                let id = next_id.fetch_add(1, Ordering::SeqCst);
                                if q.put(id).is_ok() {
                                    put_ok.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            _ => {
                                if let Ok(id) = q.get() {
                                    got.lock().unwrap().push(id);
                                }
                            }
                        }
                        greenlet::yield_now();
                    }
                }));
            }
            // Let them get going, then kill them in a random order while the
            // rest keep working.
            while locked_work.load(Ordering::SeqCst) < victims / 10 {
                greenlet::yield_now();
            }
            while !gs.is_empty() {
                let i = (rng.next() % gs.len() as u64) as usize;
                let g: Greenlet<()> = gs.swap_remove(i);
                if rng.next().is_multiple_of(2) {
                    g.kill();
                } else {
                    g.kill_nowait();
                    greenlet::yield_now();
                    g.join();
                }
            }
            assert_eq!(sem.available(), 3, "every permit is back");
            assert_eq!(sem.waiters(), 0);
            assert!(!lock.is_locked());
            assert_eq!(lock.waiters(), 0);
            assert_eq!(*lock.lock() as usize, locked_work.load(Ordering::SeqCst));
            assert_eq!((q.getters(), q.putters()), (0, 0));
            let mut got = got.lock().unwrap().clone();
            let mut left = Vec::new();
            while let Ok(id) = q.get_nowait() {
                left.push(id);
            }
            assert_eq!(
                got.len() + left.len(),
                put_ok.load(Ordering::SeqCst),
                "no item lost"
            );
            got.extend(left);
            got.sort_unstable();
            got.dedup();
            assert_eq!(
                got.len(),
                put_ok.load(Ordering::SeqCst),
                "no item duplicated"
            );
        });
    });
}
