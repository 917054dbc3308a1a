//! `Semaphore` and `BoundedSemaphore`: limits, FIFO, bounds, and no permit
//! lost to a kill or a timeout.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::guard;
use greenlet::sync::{BoundedSemaphore, ReleaseError, Semaphore};
use greenlet::{Builder, GreenletError};

fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        greenlet::yield_now();
    }
}

#[test]
fn sync_semaphore_limits_concurrency() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let sem = Arc::new(Semaphore::new(3));
            let inside = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let gs: Vec<_> = (0..30)
                .map(|_| {
                    let (sem, inside, most) = (sem.clone(), inside.clone(), most.clone());
                    greenlet::spawn(move || {
                        let _p = sem.access();
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        greenlet::sleep(Duration::from_micros(50));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    })
                })
                .collect();
            greenlet::joinall(&gs);
            assert!(most.load(Ordering::SeqCst) <= 3);
            assert_eq!(sem.available(), 3);
            assert_eq!(sem.waiters(), 0);
        });
    });
}

#[test]
fn sync_semaphore_fifo_and_no_barging() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let sem = Arc::new(Semaphore::new(0));
            let order = Arc::new(Mutex::new(Vec::new()));
            let mut gs = Vec::new();
            for i in 0..5 {
                let (s, o) = (sem.clone(), order.clone());
                gs.push(greenlet::spawn(move || {
                    s.acquire();
                    o.lock().unwrap().push(i);
                }));
                until(|| sem.waiters() == i + 1);
            }
            sem.release();
            // The permit is the first waiter's: a newcomer cannot take it.
            assert!(!sem.try_acquire());
            until(|| order.lock().unwrap().len() == 1);
            for i in 1..5 {
                sem.release();
                until(|| order.lock().unwrap().len() == i + 1);
            }
            greenlet::joinall(&gs);
            assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
            assert_eq!(sem.available(), 0);
        });
    });
}

#[test]
fn sync_semaphore_timeout_takes_nothing() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let sem = Semaphore::new(1);
            assert!(sem.try_acquire());
            assert!(!sem.acquire_timeout(Duration::from_millis(5)));
            assert!(sem.access_timeout(Duration::from_millis(1)).is_none());
            assert_eq!(sem.waiters(), 0);
            sem.release();
            assert_eq!(sem.available(), 1);
        });
    });
}

#[test]
fn sync_semaphore_permit_granted_to_a_killed_waiter_is_not_lost() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let sem = Arc::new(Semaphore::new(0));
            let (s1, s2) = (sem.clone(), sem.clone());
            let a = greenlet::spawn(move || s1.acquire());
            until(|| sem.waiters() == 1);
            let b = greenlet::spawn(move || s2.acquire());
            until(|| sem.waiters() == 2);
            sem.release(); // granted to a
            a.kill();
            assert_eq!(a.get(), Err(GreenletError::Killed));
            assert_eq!(b.get(), Ok(&()), "b got the permit a gave back");
            assert_eq!(sem.available(), 0);
            sem.release();
            assert_eq!(sem.available(), 1);
        });
    });
}

#[test]
fn sync_semaphore_permit_granted_to_a_killed_waiter_returns_to_the_count() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let sem = Arc::new(Semaphore::new(0));
            let s = sem.clone();
            let a = greenlet::spawn(move || s.acquire());
            until(|| sem.waiters() == 1);
            sem.release();
            a.kill();
            assert_eq!(sem.available(), 1);
        });
    });
}

#[test]
fn sync_semaphore_released_by_a_plain_thread() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let sem = Arc::new(Semaphore::new(0));
            let s = sem.clone();
            let t = std::thread::spawn(move || {
                for _ in 0..100 {
                    s.release();
                }
            });
            for _ in 0..100 {
                sem.acquire();
            }
            t.join().unwrap();
            assert_eq!(sem.available(), 0);
        });
    });
}

#[test]
fn sync_semaphore_between_plain_threads() {
    guard(|| {
        let sem = Arc::new(Semaphore::new(0));
        let s = sem.clone();
        let t = std::thread::spawn(move || s.acquire_timeout(Duration::from_secs(30)));
        while sem.waiters() == 0 {
            std::thread::yield_now();
        }
        sem.release();
        assert!(t.join().unwrap());
    });
}

#[test]
fn sync_bounded_semaphore_refuses_extra_release() {
    let sem = BoundedSemaphore::new(2);
    assert_eq!(sem.release(), Err(ReleaseError));
    sem.acquire();
    {
        let _g = sem.access();
        assert_eq!(sem.available(), 0);
        assert!(sem.locked());
    }
    assert_eq!(sem.release(), Ok(()));
    assert_eq!(sem.available(), 2);
    assert_eq!(sem.release(), Err(ReleaseError));
}

#[test]
fn sync_bounded_semaphore_hands_over_across_workers() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let sem = Arc::new(BoundedSemaphore::new(1));
            let count = Arc::new(AtomicUsize::new(0));
            let gs: Vec<_> = (0..8)
                .map(|_| {
                    let (sem, count) = (sem.clone(), count.clone());
                    greenlet::spawn(move || {
                        for _ in 0..200 {
                            sem.acquire();
                            count.fetch_add(1, Ordering::SeqCst);
                            sem.release().unwrap();
                        }
                    })
                })
                .collect();
            greenlet::joinall(&gs);
            assert_eq!(count.load(Ordering::SeqCst), 1600);
            assert_eq!(sem.available(), 1);
        });
    });
}
