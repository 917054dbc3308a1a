//! loom models of the wait-list state machine under the primitives: no lost
//! wake-up (loom reports a deadlock if a waiter is never unparked), no double
//! grant, and nothing swallowed by a waiter that gives up.
//!
//! In these models a wait with a deadline parks for one step and then counts
//! as expired (see `src/loom.rs`), which races the timeout/unwind path
//! against every wake-up ordering loom can find. Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --test loom_sync
//! ```
#![cfg(loom)]

use std::time::Duration;

use greenlet::queue::{Channel, GetError, PutError, Queue};
use greenlet::sync::{Condition, Event, Lock, Semaphore};
use loom::sync::Arc;
use loom::thread;

const T: Duration = Duration::from_secs(1);

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

#[test]
fn loom_semaphore_release_wakes_the_waiter() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let s = sem.clone();
        let t = thread::spawn(move || s.acquire());
        sem.release();
        t.join().unwrap();
        assert_eq!(sem.available(), 0);
        assert_eq!(sem.waiters(), 0);
    });
}

#[test]
fn loom_semaphore_timeout_racing_a_release_keeps_the_permit() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let s = sem.clone();
        let t = thread::spawn(move || s.acquire_timeout(T));
        sem.release();
        let got = t.join().unwrap();
        assert_eq!(
            got as usize + sem.available(),
            1,
            "one permit, used or free"
        );
        assert_eq!(sem.waiters(), 0);
    });
}

#[test]
fn loom_semaphore_permit_passes_from_a_leaving_waiter_to_the_next() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let (s1, s2) = (sem.clone(), sem.clone());
        let quitter = thread::spawn(move || s1.acquire_timeout(T));
        let stayer = thread::spawn(move || s2.acquire());
        sem.release();
        sem.release();
        let q = quitter.join().unwrap();
        stayer.join().unwrap();
        assert_eq!(q as usize + 1 + sem.available(), 2);
    });
}

#[test]
fn loom_lock_hands_over_without_losing_an_update() {
    model(|| {
        let lock = Arc::new(Lock::new(0));
        let l = lock.clone();
        let t = thread::spawn(move || *l.lock() += 1);
        *lock.lock() += 1;
        t.join().unwrap();
        assert_eq!(*lock.lock(), 2);
        assert!(!lock.is_locked() || lock.waiters() == 0);
    });
}

#[test]
fn loom_lock_timeout_racing_an_unlock_leaves_it_consistent() {
    model(|| {
        let lock = Arc::new(Lock::new(()));
        let held = lock.lock();
        let l = lock.clone();
        let t = thread::spawn(move || l.lock_timeout(T).is_some());
        drop(held);
        let got = t.join().unwrap();
        let _ = got;
        assert!(
            !lock.is_locked(),
            "the timed-out waiter passed the lock back"
        );
        assert_eq!(lock.waiters(), 0);
    });
}

#[test]
fn loom_event_set_wakes_every_waiter() {
    model(|| {
        let ev = Arc::new(Event::new());
        let (e1, e2) = (ev.clone(), ev.clone());
        let a = thread::spawn(move || e1.wait());
        let b = thread::spawn(move || e2.wait());
        ev.set();
        a.join().unwrap();
        b.join().unwrap();
    });
}

#[test]
fn loom_condition_notify_one_reaches_a_waiter() {
    model(|| {
        let pair = Arc::new((Lock::new(false), Condition::new()));
        let p = pair.clone();
        let t = thread::spawn(move || {
            let (lock, cond) = &*p;
            let mut g = lock.lock();
            while !*g {
                g = cond.wait(g);
            }
        });
        *pair.0.lock() = true;
        pair.1.notify_one();
        t.join().unwrap();
    });
}

#[test]
fn loom_bounded_queue_keeps_order_and_wakes_both_sides() {
    model(|| {
        let q = Arc::new(Queue::bounded(1));
        let q2 = q.clone();
        let producer = thread::spawn(move || {
            q2.put(1).unwrap();
            q2.put(2).unwrap();
        });
        assert_eq!(q.get(), Ok(1));
        assert_eq!(q.get(), Ok(2));
        producer.join().unwrap();
    });
}

#[test]
fn loom_queue_getter_timeout_racing_a_put_loses_nothing() {
    model(|| {
        let q = Arc::new(Queue::new());
        let q2 = q.clone();
        let t = thread::spawn(move || q2.get_timeout(T));
        q.put(7).unwrap();
        match t.join().unwrap() {
            Ok(v) => {
                assert_eq!(v, 7);
                assert_eq!(q.get_nowait(), Err(GetError::Empty));
            }
            Err(e) => {
                assert_eq!(e, GetError::Timeout);
                assert_eq!(q.get_nowait(), Ok(7), "the item stayed");
            }
        }
    });
}

#[test]
fn loom_channel_rendezvous_with_timeouts_loses_nothing() {
    model(|| {
        let ch = Arc::new(Channel::new());
        let c = ch.clone();
        let getter = thread::spawn(move || c.get_timeout(T));
        let put = ch.put_timeout(5, T);
        let got = getter.join().unwrap();
        match put {
            Ok(()) => match got {
                Ok(v) => assert_eq!(v, 5),
                // Handed to a getter that then left: kept for the next get.
                Err(_) => assert_eq!(ch.get_nowait(), Ok(5)),
            },
            Err(PutError::Timeout(v)) => {
                assert_eq!(v, 5);
                assert!(got.is_err());
            }
            Err(e) => panic!("unexpected {e}"),
        }
    });
}
