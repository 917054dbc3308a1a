//! `greenlet_local!`: one lazily made value per greenlet, dropped at its end.

mod common;

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::guard;
use greenlet::{Builder, RawGreenlet};

static MADE: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Tracked(u32);

impl Tracked {
    fn new() -> Self {
        MADE.fetch_add(1, Ordering::SeqCst);
        Tracked(0)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

greenlet::greenlet_local! {
    static COUNTER: Cell<u32> = Cell::new(0);
    static TRACKED: RefCell<Tracked> = RefCell::new(Tracked::new());
    static NAME: RefCell<String> = RefCell::new(String::from("unset"))
}

#[test]
fn sync_local_each_greenlet_sees_its_own_value() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            COUNTER.with(|c| c.set(100));
            let gs: Vec<_> = (0..20u32)
                .map(|i| {
                    greenlet::spawn(move || {
                        for _ in 0..i {
                            COUNTER.with(|c| c.set(c.get() + 1));
                            greenlet::yield_now();
                        }
                        COUNTER.with(|c| c.get())
                    })
                })
                .collect();
            for (i, g) in gs.iter().enumerate() {
                assert_eq!(g.get(), Ok(&(i as u32)));
            }
            assert_eq!(COUNTER.with(|c| c.get()), 100);
        });
    });
}

#[test]
fn sync_local_is_lazy_and_dropped_when_the_greenlet_ends() {
    guard(|| {
        // The only test that uses TRACKED, so the counts are its own.
        Builder::new().workers(2).run(|| {
            let untouched = greenlet::spawn(|| 1);
            untouched.join();
            assert_eq!(MADE.load(Ordering::SeqCst), 0, "made only on first use");
            let gs: Vec<_> = (0..10)
                .map(|i| {
                    greenlet::spawn(move || {
                        TRACKED.with(|t| t.borrow_mut().0 = i);
                        greenlet::yield_now();
                        TRACKED.with(|t| t.borrow().0)
                    })
                })
                .collect();
            for (i, g) in gs.iter().enumerate() {
                assert_eq!(g.get(), Ok(&(i as u32)));
            }
            assert_eq!(MADE.load(Ordering::SeqCst), 10);
            assert_eq!(
                DROPPED.load(Ordering::SeqCst),
                10,
                "dropped before join returned"
            );
            // A killed greenlet's locals are dropped too.
            let ready = Arc::new(greenlet::sync::Event::new());
            let r = ready.clone();
            let victim = greenlet::spawn(move || {
                TRACKED.with(|_| ());
                r.set();
                greenlet::sleep(std::time::Duration::from_secs(3600));
            });
            ready.wait();
            victim.kill();
            assert_eq!(DROPPED.load(Ordering::SeqCst), 11);
        });
    });
}

#[test]
fn sync_local_on_plain_threads_is_per_thread() {
    guard(|| {
        NAME.with(|n| *n.borrow_mut() = "main".into());
        let other = std::thread::spawn(|| NAME.with(|n| n.borrow().clone()))
            .join()
            .unwrap();
        assert_eq!(other, "unset");
        assert_eq!(NAME.with(|n| n.borrow().clone()), "main");
    });
}

#[test]
fn sync_local_in_raw_greenlets() {
    guard(|| {
        NAME.with(|n| *n.borrow_mut() = "root".into());
        let g = RawGreenlet::new(|_: String| {
            let before = NAME.with(|n| n.borrow().clone());
            NAME.with(|n| *n.borrow_mut() = "raw".into());
            before
        });
        assert_eq!(g.switch(String::new()), "unset");
        assert_eq!(NAME.with(|n| n.borrow().clone()), "root");
    });
}
