//! `Condition`, `Barrier` and `WaitGroup`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::guard;
use greenlet::sync::{Barrier, Condition, Lock, WaitGroup};
use greenlet::{Builder, GreenletError};

fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        greenlet::yield_now();
    }
}

type Shared = Arc<(Lock<u32>, Condition)>;

fn waiter(p: &Shared, order: &Arc<Mutex<Vec<usize>>>, i: usize) -> greenlet::Greenlet<()> {
    let (p, order) = (p.clone(), order.clone());
    greenlet::spawn(move || {
        let (lock, cond) = &*p;
        let g = lock.lock();
        let _g = cond.wait(g);
        order.lock().unwrap().push(i);
    })
}

#[test]
fn sync_condition_notify_one_wakes_in_fifo_order() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let p: Shared = Arc::new((Lock::new(0), Condition::new()));
            let order = Arc::new(Mutex::new(Vec::new()));
            let gs: Vec<_> = (0..5)
                .map(|i| {
                    let g = waiter(&p, &order, i);
                    until(|| p.1.waiters() == i + 1);
                    g
                })
                .collect();
            for i in 0..5 {
                p.1.notify_one();
                until(|| order.lock().unwrap().len() == i + 1);
            }
            greenlet::joinall(&gs);
            assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
        });
    });
}

#[test]
fn sync_condition_notify_all_and_notify_n() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let p: Shared = Arc::new((Lock::new(0), Condition::new()));
            let order = Arc::new(Mutex::new(Vec::new()));
            let gs: Vec<_> = (0..6).map(|i| waiter(&p, &order, i)).collect();
            until(|| p.1.waiters() == 6);
            p.1.notify(2);
            until(|| order.lock().unwrap().len() == 2);
            assert_eq!(p.1.waiters(), 4);
            p.1.notify_all();
            greenlet::joinall(&gs);
            assert_eq!(order.lock().unwrap().len(), 6);
        });
    });
}

#[test]
fn sync_condition_notified_waiter_killed_passes_the_wakeup_on() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let p: Shared = Arc::new((Lock::new(0), Condition::new()));
            let order = Arc::new(Mutex::new(Vec::new()));
            let a = waiter(&p, &order, 0);
            until(|| p.1.waiters() == 1);
            let b = waiter(&p, &order, 1);
            until(|| p.1.waiters() == 2);
            p.1.notify_one(); // meant for a
            a.kill();
            assert_eq!(a.get(), Err(GreenletError::Killed));
            b.join();
            assert_eq!(*order.lock().unwrap(), [1]);
            assert_eq!(p.1.waiters(), 0);
        });
    });
}

#[test]
fn sync_condition_wait_timeout_relocks() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let lock = Lock::new(5);
            let cond = Condition::new();
            let g = lock.lock();
            let (g, notified) = cond.wait_timeout(g, Duration::from_millis(2));
            assert!(!notified);
            assert_eq!(*g, 5, "the lock is held again");
            assert!(lock.is_locked());
            assert_eq!(cond.waiters(), 0);
        });
    });
}

#[test]
fn sync_condition_wait_while_with_a_plain_thread() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let p: Shared = Arc::new((Lock::new(0), Condition::new()));
            let q = p.clone();
            let t = std::thread::spawn(move || {
                for _ in 0..10 {
                    *q.0.lock() += 1;
                    q.1.notify_all();
                }
            });
            let g = p.1.wait_while(p.0.lock(), |n| *n < 10);
            assert_eq!(*g, 10);
            drop(g);
            t.join().unwrap();
        });
    });
}

#[test]
fn sync_barrier_releases_all_with_one_leader_and_is_reusable() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let b = Arc::new(Barrier::new(4));
            let leaders = Arc::new(AtomicUsize::new(0));
            let gs: Vec<_> = (0..4)
                .map(|_| {
                    let (b, leaders) = (b.clone(), leaders.clone());
                    greenlet::spawn(move || {
                        for _ in 0..3 {
                            if b.wait().is_leader() {
                                leaders.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    })
                })
                .collect();
            greenlet::joinall(&gs);
            assert_eq!(leaders.load(Ordering::SeqCst), 3, "one leader per round");
        });
    });
}

#[test]
fn sync_barrier_timeout_and_kill_withdraw_the_arrival() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let b = Arc::new(Barrier::new(2));
            assert!(b.wait_timeout(Duration::from_millis(2)).is_none());
            let b2 = b.clone();
            let victim = greenlet::spawn(move || b2.wait());
            until(|| b.waiters() == 1);
            victim.kill();
            assert_eq!(b.waiters(), 0);
            // Two fresh parties are needed: nobody counts as arrived.
            let b3 = b.clone();
            let other = greenlet::spawn(move || b3.wait().is_leader());
            until(|| b.waiters() == 1);
            let me = b.wait().is_leader();
            assert!(me);
            assert_eq!(other.get(), Ok(&false));
        });
    });
}

#[test]
fn sync_wait_group_waits_for_zero_across_workers_and_threads() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let wg = Arc::new(WaitGroup::new());
            assert!(wg.wait_timeout(Duration::ZERO), "zero already");
            wg.add(10);
            for _ in 0..5 {
                let wg = wg.clone();
                greenlet::spawn(move || wg.done());
            }
            for _ in 0..5 {
                let wg = wg.clone();
                std::thread::spawn(move || wg.done());
            }
            wg.wait();
            assert_eq!(wg.count(), 0);
        });
    });
}

#[test]
fn sync_wait_group_timeout() {
    guard(|| {
        let wg = WaitGroup::new();
        wg.add(1);
        assert!(!wg.wait_timeout(Duration::from_millis(2)));
        wg.done();
        assert!(wg.wait_timeout(Duration::from_millis(2)));
    });
}
