//! `Lock` and `RLock`: exclusion, FIFO hand-over, timeouts, kills, and use
//! across workers and plain threads.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::guard;
use greenlet::sync::{Lock, RLock};
use greenlet::{Builder, GreenletError};

/// Yields until `cond` holds (waits on the state itself, no sleeping).
fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        greenlet::yield_now();
    }
}

#[test]
fn sync_lock_excludes_across_switches() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let lock = Arc::new(Lock::new(0u32));
            let gs: Vec<_> = (0..50)
                .map(|_| {
                    let lock = lock.clone();
                    greenlet::spawn(move || {
                        let mut n = lock.lock();
                        let seen = *n;
                        greenlet::yield_now();
                        greenlet::sleep(Duration::from_micros(10));
                        *n = seen + 1;
                    })
                })
                .collect();
            greenlet::joinall(&gs);
            assert_eq!(*lock.lock(), 50);
            assert!(!lock.is_locked());
            assert_eq!(lock.waiters(), 0);
        });
    });
}

#[test]
fn sync_lock_try_lock_and_timeout() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let lock = Lock::new(());
            let held = lock.lock();
            assert!(lock.try_lock().is_none());
            assert!(lock.lock_timeout(Duration::from_millis(5)).is_none());
            assert_eq!(lock.waiters(), 0, "the timed-out waiter left the list");
            drop(held);
            assert!(lock.try_lock().is_some());
            assert!(lock.lock_timeout(Duration::from_millis(5)).is_some());
        });
    });
}

#[test]
fn sync_lock_waiters_are_served_in_fifo_order() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let lock = Arc::new(Lock::new(Vec::new()));
            let held = lock.lock();
            let mut gs = Vec::new();
            for i in 0..10 {
                let l = lock.clone();
                gs.push(greenlet::spawn(move || l.lock().push(i)));
                until(|| lock.waiters() == i + 1);
            }
            drop(held);
            greenlet::joinall(&gs);
            assert_eq!(*lock.lock(), (0..10).collect::<Vec<_>>());
        });
    });
}

#[test]
fn sync_lock_kill_while_waiting_leaves_the_list_clean() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let lock = Arc::new(Lock::new(0));
            let held = lock.lock();
            let l = lock.clone();
            let victim = greenlet::spawn(move || *l.lock() += 100);
            until(|| lock.waiters() == 1);
            victim.kill();
            assert_eq!(victim.get(), Err(GreenletError::Killed));
            assert_eq!(lock.waiters(), 0);
            drop(held);
            assert!(!lock.is_locked());
            assert_eq!(*lock.lock(), 0);
        });
    });
}

#[test]
fn sync_lock_handed_to_a_killed_waiter_goes_to_the_next() {
    guard(|| {
        // One worker: the unlock hands the lock to A, and A is killed before
        // it gets to run, so it must pass the lock on to B.
        Builder::new().workers(1).run(|| {
            let lock = Arc::new(Lock::new(Vec::new()));
            let held = lock.lock();
            let (la, lb) = (lock.clone(), lock.clone());
            let a = greenlet::spawn(move || la.lock().push("a"));
            until(|| lock.waiters() == 1);
            let b = greenlet::spawn(move || lb.lock().push("b"));
            until(|| lock.waiters() == 2);
            drop(held); // granted to A
            assert!(lock.is_locked(), "handed over, never free");
            a.kill();
            assert_eq!(a.get(), Err(GreenletError::Killed));
            b.join();
            assert_eq!(*lock.lock(), ["b"]);
            assert_eq!(lock.waiters(), 0);
        });
    });
}

#[test]
fn sync_lock_timeout_inside_a_timeout_block() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let lock = Lock::new(());
            let _held = lock.lock();
            let r = greenlet::with_timeout(Duration::from_millis(5), || *lock.lock());
            assert!(r.is_err());
            assert_eq!(lock.waiters(), 0);
        });
    });
}

#[test]
fn sync_lock_shared_by_greenlets_and_plain_threads() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let lock = Arc::new(Lock::new(0u64));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let lock = lock.clone();
                    std::thread::spawn(move || {
                        for _ in 0..2000 {
                            *lock.lock() += 1;
                        }
                    })
                })
                .collect();
            let gs: Vec<_> = (0..4)
                .map(|_| {
                    let lock = lock.clone();
                    greenlet::spawn(move || {
                        for i in 0..2000 {
                            let mut n = lock.lock();
                            if i % 100 == 0 {
                                greenlet::yield_now(); // hold it across a switch
                            }
                            *n += 1;
                        }
                    })
                })
                .collect();
            greenlet::joinall(&gs);
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(*lock.lock(), 12_000);
        });
    });
}

#[test]
fn sync_lock_from_plain_threads_without_a_runtime() {
    guard(|| {
        let lock = Arc::new(Lock::new(()));
        let held = lock.lock();
        let l = lock.clone();
        let got = Arc::new(AtomicBool::new(false));
        let g2 = got.clone();
        let t = std::thread::spawn(move || {
            let _g = l.lock();
            g2.store(true, Ordering::SeqCst);
        });
        while lock.waiters() == 0 {
            std::thread::yield_now();
        }
        assert!(!got.load(Ordering::SeqCst));
        drop(held);
        t.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
    });
}

#[test]
fn sync_rlock_is_reentrant_for_its_holder_only() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let lock = Arc::new(RLock::new(()));
            let a = lock.lock();
            let b = lock.lock();
            assert!(lock.is_owned());
            let l = lock.clone();
            let other = greenlet::spawn(move || {
                assert!(!l.is_owned());
                assert!(l.try_lock().is_none());
                let _g = l.lock();
                l.is_owned()
            });
            until(|| lock.waiters() == 1);
            drop(a);
            assert!(lock.is_locked(), "still held once");
            assert_eq!(lock.waiters(), 1);
            drop(b);
            assert_eq!(other.get(), Ok(&true), "handed to the waiter as its owner");
            assert!(!lock.is_locked());
        });
    });
}

#[test]
fn sync_rlock_killed_waiter_passes_it_on() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let lock = Arc::new(RLock::new(()));
            let held = lock.lock();
            let order = Arc::new(Mutex::new(Vec::new()));
            let spawn = |name: &'static str| {
                let (l, o) = (lock.clone(), order.clone());
                greenlet::spawn(move || {
                    let _g = l.lock();
                    let _again = l.lock();
                    o.lock().unwrap().push(name);
                })
            };
            let a = spawn("a");
            until(|| lock.waiters() == 1);
            let b = spawn("b");
            until(|| lock.waiters() == 2);
            drop(held);
            a.kill();
            b.join();
            assert_eq!(*order.lock().unwrap(), ["b"]);
            assert!(!lock.is_locked());
        });
    });
}

#[test]
fn sync_rlock_timeout_and_threads() {
    guard(|| {
        let lock = Arc::new(RLock::new(AtomicUsize::new(0)));
        let held = lock.lock();
        let l = lock.clone();
        let timed_out = Arc::new(AtomicBool::new(false));
        let t_o = timed_out.clone();
        let t = std::thread::spawn(move || {
            assert!(l.lock_timeout(Duration::from_millis(5)).is_none());
            t_o.store(true, Ordering::SeqCst);
            let g = l.lock();
            g.fetch_add(1, Ordering::SeqCst);
        });
        while !timed_out.load(Ordering::SeqCst) || lock.waiters() == 0 {
            std::thread::yield_now();
        }
        // The timed-out attempt left; the blocking one is waiting.
        drop(held);
        t.join().unwrap();
        assert_eq!(lock.lock().load(Ordering::SeqCst), 1);
    });
}
