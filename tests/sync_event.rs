//! `Event` and `AsyncResult`: broadcast wake-ups, timeouts, kills, threads.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::guard;
use greenlet::sync::{AsyncResult, Event};
use greenlet::{Builder, GreenletError};

fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        greenlet::yield_now();
    }
}

#[test]
fn sync_event_set_wakes_every_waiter_on_every_worker() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let ev = Arc::new(Event::new());
            let woke = Arc::new(AtomicUsize::new(0));
            let gs: Vec<_> = (0..20)
                .map(|_| {
                    let (ev, woke) = (ev.clone(), woke.clone());
                    greenlet::spawn(move || {
                        ev.wait();
                        woke.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            until(|| ev.waiters() == 20);
            assert_eq!(woke.load(Ordering::SeqCst), 0);
            ev.set();
            greenlet::joinall(&gs);
            assert_eq!(woke.load(Ordering::SeqCst), 20);
            assert_eq!(ev.waiters(), 0);
        });
    });
}

#[test]
fn sync_event_set_by_a_plain_thread_wakes_a_greenlet() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let ev = Arc::new(Event::new());
            let e = ev.clone();
            let t = std::thread::spawn(move || e.set());
            ev.wait();
            assert!(ev.is_set());
            t.join().unwrap();
        });
    });
}

#[test]
fn sync_event_set_by_a_greenlet_wakes_a_plain_thread() {
    guard(|| {
        let ev = Arc::new(Event::new());
        let e = ev.clone();
        let t = std::thread::spawn(move || e.wait_timeout(Duration::from_secs(30)));
        while ev.waiters() == 0 {
            std::thread::yield_now();
        }
        let e = ev.clone();
        Builder::new()
            .workers(1)
            .run(move || greenlet::spawn(move || e.set()).join());
        assert!(t.join().unwrap());
    });
}

#[test]
fn sync_event_clear_and_timeout() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let ev = Event::new();
            assert!(!ev.wait_timeout(Duration::from_millis(2)));
            assert_eq!(ev.waiters(), 0);
            ev.set();
            assert!(ev.wait_timeout(Duration::from_millis(2)));
            ev.wait();
            ev.clear();
            assert!(!ev.is_set());
            assert!(!ev.wait_timeout(Duration::ZERO));
        });
    });
}

#[test]
fn sync_event_waiter_woken_by_set_returns_even_if_cleared_at_once() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let ev = Arc::new(Event::new());
            let e = ev.clone();
            let g = greenlet::spawn(move || e.wait_timeout(Duration::from_secs(30)));
            until(|| ev.waiters() == 1);
            ev.set();
            ev.clear();
            assert_eq!(g.get(), Ok(&true));
        });
    });
}

#[test]
fn sync_event_killed_waiter_leaves_the_list() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let ev = Arc::new(Event::new());
            let e = ev.clone();
            let g = greenlet::spawn(move || e.wait());
            until(|| ev.waiters() == 1);
            g.kill();
            assert_eq!(g.get(), Err(GreenletError::Killed));
            assert_eq!(ev.waiters(), 0);
        });
    });
}

#[test]
fn sync_async_result_every_waiter_gets_the_value() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let r: Arc<AsyncResult<String, String>> = Arc::new(AsyncResult::new());
            let gs: Vec<_> = (0..5)
                .map(|_| {
                    let r = r.clone();
                    greenlet::spawn(move || r.get().cloned().map_err(|e| e.clone()))
                })
                .collect();
            until(|| r.waiters() == 5);
            assert!(!r.ready());
            r.set("hello".into()).unwrap();
            for g in &gs {
                assert_eq!(g.get(), Ok(&Ok("hello".to_string())));
            }
            assert!(r.ready() && r.successful());
            assert_eq!(r.set("again".into()), Err("again".to_string()));
            assert_eq!(r.set_error("late".into()), Err("late".to_string()));
        });
    });
}

#[test]
fn sync_async_result_error_and_timeout() {
    guard(|| {
        let r: Arc<AsyncResult<u8, String>> = Arc::new(AsyncResult::new());
        assert_eq!(r.get_timeout(Duration::from_millis(2)), None);
        assert!(!r.wait_timeout(Duration::ZERO));
        assert_eq!(r.try_get(), None);
        let r2 = r.clone();
        let t = std::thread::spawn(move || r2.set_error("bad".into()).unwrap());
        assert_eq!(r.get(), Err(&"bad".to_string()));
        t.join().unwrap();
        assert!(r.ready() && !r.successful());
        assert_eq!(r.waiters(), 0);
    });
}
