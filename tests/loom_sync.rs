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
use greenlet::sync::{
    __loom_kill_at_next_park as kill_at_next_park, Condition, Event, Lock, Semaphore,
};
use loom::sync::Arc;
use loom::thread;

const T: Duration = Duration::from_secs(1);

/// Runs `f` as a greenlet that gets killed at its next wait; true if it
/// finished (it did not have to wait, or got what it waited for first).
fn killed_at_next_wait(f: impl FnOnce()) -> bool {
    kill_at_next_park();
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
    // A kill that found no wait to interrupt is dropped.
    let _ = std::panic::catch_unwind(|| ());
    done
}

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

#[test]
fn loom_semaphore_permit_granted_to_a_killed_waiter_goes_to_the_next() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let (s1, s2) = (sem.clone(), sem.clone());
        let victim = thread::spawn(move || killed_at_next_wait(|| s1.acquire()));
        let stayer = thread::spawn(move || s2.acquire());
        sem.release();
        sem.release();
        let v = victim.join().unwrap();
        stayer.join().unwrap();
        assert_eq!(v as usize + 1 + sem.available(), 2, "no permit lost");
    });
}

#[test]
fn loom_lock_handed_to_a_killed_waiter_goes_to_the_next() {
    model(|| {
        let lock = Arc::new(Lock::new(0));
        let held = lock.lock();
        let (l1, l2) = (lock.clone(), lock.clone());
        let victim = thread::spawn(move || killed_at_next_wait(|| *l1.lock() += 1));
        let stayer = thread::spawn(move || *l2.lock() += 10);
        drop(held);
        let v = victim.join().unwrap();
        stayer.join().unwrap();
        assert_eq!(*lock.lock(), if v { 11 } else { 10 });
    });
}

#[test]
fn loom_queue_item_handed_to_a_killed_getter_is_kept() {
    model(|| {
        let q = Arc::new(Queue::new());
        let q2 = q.clone();
        let victim = thread::spawn(move || {
            let mut got = None;
            killed_at_next_wait(|| got = Some(q2.get().unwrap()));
            got
        });
        q.put(7).unwrap();
        match victim.join().unwrap() {
            Some(v) => assert_eq!(v, 7),
            None => assert_eq!(q.get_nowait(), Ok(7), "the item went back"),
        }
    });
}

#[test]
fn loom_channel_item_handed_to_a_killed_getter_is_kept() {
    model(|| {
        let ch = Arc::new(Channel::new());
        let c = ch.clone();
        let victim = thread::spawn(move || {
            let mut got = None;
            killed_at_next_wait(|| got = Some(c.get().unwrap()));
            got
        });
        let put = ch.put_timeout(3, T);
        match (put, victim.join().unwrap()) {
            (Ok(()), Some(v)) => assert_eq!(v, 3),
            (Ok(()), None) => assert_eq!(ch.get_nowait(), Ok(3), "kept for the next get"),
            (Err(PutError::Timeout(3)), None) => {}
            (p, g) => panic!("put {p:?}, got {g:?}"),
        }
    });
}

#[test]
fn loom_condition_wakeup_of_a_killed_waiter_goes_to_the_next() {
    model(|| {
        let pair = Arc::new((Lock::new(0u32), Condition::new()));
        let (p1, p2) = (pair.clone(), pair.clone());
        let victim = thread::spawn(move || {
            killed_at_next_wait(|| {
                let (lock, cond) = &*p1;
                let g = lock.lock();
                drop(cond.wait(g));
            })
        });
        let stayer = thread::spawn(move || {
            let (lock, cond) = &*p2;
            let mut g = lock.lock();
            while *g == 0 {
                g = cond.wait(g);
            }
        });
        *pair.0.lock() = 1;
        // Two notifications for (at most) two waiters; with the victim gone,
        // one of them must still reach the stayer.
        pair.1.notify_one();
        pair.1.notify_one();
        victim.join().unwrap();
        stayer.join().unwrap();
    });
}
