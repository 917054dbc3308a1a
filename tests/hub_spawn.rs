//! Spawned greenlets: spawn, join, get, kill and friends.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{DropCount, guard, guard_for};
use greenlet::{Builder, GreenletBuilder, GreenletError, SpawnError};

fn rt() -> Builder {
    Builder::new().workers(2)
}

#[test]
fn spawn_and_get_a_value() {
    guard(|| {
        rt().run(|| {
            let g = greenlet::spawn(|| 40 + 2);
            assert_eq!(g.get(), Ok(&42));
            assert!(g.ready());
            assert!(g.successful());
            assert_eq!(g.value(), Some(&42));
            assert_eq!(g.error(), None);
        });
    });
}

#[test]
fn run_returns_the_main_value() {
    guard(|| {
        assert_eq!(rt().run(|| "main"), "main");
    });
}

#[test]
fn a_panic_is_returned_by_get_and_disturbs_nothing_else() {
    guard(|| {
        rt().run(|| {
            let other = greenlet::spawn(|| {
                greenlet::sleep(Duration::from_millis(20));
                "fine"
            });
            let bad = GreenletBuilder::new()
                .name("faulty")
                .spawn(|| -> u8 { panic!("exploded") });
            assert_eq!(bad.get(), Err(GreenletError::Panicked("exploded".into())));
            assert!(!bad.successful());
            assert_eq!(other.get(), Ok(&"fine"));
        });
    });
}

#[test]
fn kill_a_parked_greenlet_unwinds_it_and_waits() {
    guard(|| {
        rt().run(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let d = drops.clone();
            let started = Arc::new(AtomicBool::new(false));
            let s = started.clone();
            let g = greenlet::spawn(move || {
                let _c = DropCount(d);
                s.store(true, Ordering::SeqCst);
                greenlet::sleep(Duration::from_secs(3600));
            });
            while !started.load(Ordering::SeqCst) {
                greenlet::yield_now();
            }
            g.kill();
            assert!(g.ready(), "kill waits until the greenlet is gone");
            assert_eq!(drops.load(Ordering::SeqCst), 1, "destructors ran");
            assert_eq!(g.get(), Err(GreenletError::Killed));
        });
    });
}

#[test]
fn kill_before_it_runs_means_it_never_runs() {
    guard(|| {
        rt().run(|| {
            let ran = Arc::new(AtomicBool::new(false));
            let drops = Arc::new(AtomicUsize::new(0));
            let (r, d) = (ran.clone(), DropCount(drops.clone()));
            let g = greenlet::spawn_later(Duration::from_millis(50), move || {
                let _d = d;
                r.store(true, Ordering::SeqCst);
            });
            g.kill();
            assert_eq!(g.get(), Err(GreenletError::Killed));
            assert_eq!(drops.load(Ordering::SeqCst), 1, "the closure was dropped");
            greenlet::sleep(Duration::from_millis(100));
            assert!(!ran.load(Ordering::SeqCst));
        });
    });
}

#[test]
fn kill_of_a_finished_greenlet_changes_nothing() {
    guard(|| {
        rt().run(|| {
            let g = greenlet::spawn(|| 5);
            g.join();
            g.kill();
            assert_eq!(g.get(), Ok(&5));
        });
    });
}

#[test]
fn kill_from_another_worker_and_from_a_plain_thread() {
    guard(|| {
        rt().run(|| {
            let victim = greenlet::spawn(|| greenlet::sleep(Duration::from_secs(3600)));
            let v = victim.clone();
            // Kill from a plain OS thread: it blocks until the victim is gone.
            std::thread::spawn(move || v.kill()).join().unwrap();
            assert_eq!(victim.error(), Some(GreenletError::Killed));

            let victim = greenlet::spawn(|| greenlet::sleep(Duration::from_secs(3600)));
            let v = victim.clone();
            greenlet::spawn(move || v.kill()).join();
            assert_eq!(victim.error(), Some(GreenletError::Killed));
        });
    });
}

#[test]
fn a_greenlet_can_kill_itself() {
    guard(|| {
        rt().run(|| {
            let slot = Arc::new(std::sync::OnceLock::new());
            let s = slot.clone();
            let g = greenlet::spawn(move || {
                let me: &greenlet::Greenlet<()> = loop {
                    if let Some(me) = s.get() {
                        break me;
                    }
                    greenlet::yield_now();
                };
                me.kill();
                unreachable!()
            });
            slot.set(g.clone()).unwrap();
            assert_eq!(g.get(), Err(GreenletError::Killed));
        });
    });
}

#[test]
fn join_timeout_returns_false_then_true() {
    guard(|| {
        rt().run(|| {
            let g = greenlet::spawn(|| greenlet::sleep(Duration::from_millis(200)));
            assert!(!g.join_timeout(Duration::from_millis(10)));
            assert!(g.join_timeout(Duration::from_secs(30)));
        });
    });
}

#[test]
fn names_and_ids() {
    guard(|| {
        rt().run(|| {
            let a = GreenletBuilder::new().name("alpha").spawn(|| ());
            let b = greenlet::spawn(|| ());
            assert_eq!(a.name(), "alpha");
            assert_eq!(b.name(), format!("Greenlet-{}", b.id()));
            assert_ne!(a.id(), b.id());
        });
    });
}

#[test]
fn spawn_local_accepts_non_send_closures() {
    guard(|| {
        rt().run(|| {
            let rc = std::rc::Rc::new(std::cell::Cell::new(1));
            let r = rc.clone();
            let g = greenlet::spawn_local(move || {
                greenlet::sleep(Duration::from_millis(1));
                r.set(r.get() + 1);
                r
            });
            let back = g.get().unwrap().clone();
            assert_eq!(back.get(), 2);
            assert_eq!(rc.get(), 2);
        });
    });
}

#[test]
fn spawn_local_outside_a_hub_is_an_error() {
    guard(|| {
        let err = GreenletBuilder::new().try_spawn_local(|| ()).unwrap_err();
        assert_eq!(err, SpawnError::NotOnHub);
    });
}

#[test]
fn spawn_later_starts_after_the_delay() {
    guard(|| {
        rt().run(|| {
            let t0 = Instant::now();
            let g = greenlet::spawn_later(Duration::from_millis(30), Instant::now);
            let started = *g.get().unwrap();
            assert!(started.duration_since(t0) >= Duration::from_millis(30));
        });
    });
}

#[test]
fn stack_size_below_minimum_is_refused_at_spawn() {
    guard(|| {
        rt().run(|| {
            let err = GreenletBuilder::new()
                .stack_size(4096)
                .try_spawn(|| ())
                .unwrap_err();
            assert!(matches!(err, SpawnError::Stack(_)));
            assert!(err.to_string().contains("below the minimum"), "{err}");
        });
    });
}

#[test]
fn spawn_outside_any_runtime_uses_the_default_runtime() {
    guard(|| {
        // Called from a plain test thread: no runtime is running here.
        let gs: Vec<_> = (0..20u32).map(|i| greenlet::spawn(move || i * i)).collect();
        greenlet::joinall(&gs);
        let sum: u32 = gs.iter().map(|g| *g.get().unwrap()).sum();
        assert_eq!(sum, (0..20).map(|i| i * i).sum());
    });
}

#[test]
fn run_kills_what_main_left_behind() {
    guard(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        rt().run(move || {
            for _ in 0..10 {
                let c = DropCount(d.clone());
                greenlet::spawn(move || {
                    let _c = c;
                    greenlet::sleep(Duration::from_secs(3600));
                });
            }
            // Some that never started, too.
            for _ in 0..10 {
                let c = DropCount(d.clone());
                greenlet::spawn_later(Duration::from_secs(3600), move || drop(c));
            }
            greenlet::sleep(Duration::from_millis(10));
        });
        assert_eq!(
            drops.load(Ordering::SeqCst),
            20,
            "every greenlet was unwound or dropped"
        );
    });
}

/// Spawns a greenlet that switches into a raw greenlet which then parks in
/// the hub on an event nobody sets, and waits until it has: the spawned one
/// stays suspended in a switch nothing will answer. Each of the two counts
/// its unwinding in `drops`.
fn spawn_stuck_in_raw_switch(drops: &Arc<AtomicUsize>) -> greenlet::Greenlet<()> {
    let parked = Arc::new(greenlet::sync::Event::new());
    let (p, d) = (parked.clone(), drops.clone());
    let g = greenlet::spawn(move || {
        let _outer = DropCount(d.clone());
        let raw = greenlet::RawGreenlet::<()>::new(move |()| {
            let _inner = DropCount(d);
            p.set();
            greenlet::sync::Event::new().wait();
        });
        raw.switch(());
    });
    parked.wait();
    g
}

#[test]
fn run_kills_a_raw_greenlet_parked_in_the_hub_and_the_one_switched_into_it() {
    guard_for(Duration::from_secs(20), || {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        rt().run(move || {
            // Only the shutdown kill ends them.
            spawn_stuck_in_raw_switch(&d);
        });
        assert_eq!(
            drops.load(Ordering::SeqCst),
            2,
            "both the raw greenlet and the spawned one were unwound"
        );
    });
}

#[test]
fn kill_reaches_a_greenlet_suspended_in_a_raw_switch() {
    guard_for(Duration::from_secs(20), || {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        rt().run(move || {
            let g = spawn_stuck_in_raw_switch(&d);
            // The kill is delivered by the target's hub; `kill` waits for it.
            g.kill();
            assert!(matches!(g.get(), Err(GreenletError::Killed)));
        });
        assert_eq!(drops.load(Ordering::SeqCst), 2, "both greenlets unwound");
    });
}

#[test]
fn main_panic_is_resumed_by_run() {
    guard(|| {
        let r = std::panic::catch_unwind(|| rt().run(|| -> u8 { panic!("main failed") }));
        let text = common::panic_text(&*r.unwrap_err());
        assert!(text.contains("main failed"), "{text}");
    });
}

#[test]
fn many_greenlets_across_workers() {
    guard(|| {
        let total = rt().run(|| {
            let gs: Vec<_> = (0..10_000u64)
                .map(|i| {
                    greenlet::spawn(move || {
                        greenlet::yield_now();
                        i
                    })
                })
                .collect();
            greenlet::joinall(&gs);
            gs.iter().map(|g| *g.get().unwrap()).sum::<u64>()
        });
        assert_eq!(total, (0..10_000).sum());
    });
}

#[test]
fn a_started_greenlet_never_changes_threads() {
    guard(|| {
        rt().run(|| {
            let gs: Vec<_> = (0..200)
                .map(|_| {
                    greenlet::spawn(|| {
                        let t = std::thread::current().id();
                        for _ in 0..20 {
                            greenlet::sleep(Duration::from_micros(100));
                            greenlet::yield_now();
                            assert_eq!(std::thread::current().id(), t);
                        }
                    })
                })
                .collect();
            for g in &gs {
                assert_eq!(g.get(), Ok(&()));
            }
        });
    });
}

#[test]
fn join_from_a_plain_thread_blocks_it() {
    guard(|| {
        rt().run(|| {
            let g = greenlet::spawn(|| {
                greenlet::sleep(Duration::from_millis(20));
                7
            });
            let g2 = g.clone();
            let v = std::thread::spawn(move || *g2.get().unwrap())
                .join()
                .unwrap();
            assert_eq!(v, 7);
        });
    });
}

#[test]
fn link_is_called_once_when_the_greenlet_ends() {
    guard(|| {
        rt().run(|| {
            let calls = Arc::new(AtomicUsize::new(0));
            let g = greenlet::spawn(|| {
                greenlet::sleep(Duration::from_millis(5));
                3
            });
            let c = calls.clone();
            g.link(move |g| {
                assert_eq!(g.value(), Some(&3));
                c.fetch_add(1, Ordering::SeqCst);
            });
            g.join();
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            // Linking a finished greenlet calls at once.
            let c = calls.clone();
            g.link(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            });
            assert_eq!(calls.load(Ordering::SeqCst), 2);
        });
    });
}

#[test]
fn a_panicking_link_callback_disturbs_nothing() {
    guard(|| {
        rt().run(|| {
            // It ends only once linked, so the callback runs as it ends (a
            // link to a finished greenlet runs in the caller).
            let linked = Arc::new(greenlet::sync::Event::new());
            let l = linked.clone();
            let g = greenlet::spawn(move || {
                l.wait();
                1
            });
            g.link(|_| panic!("callback failed"));
            linked.set();
            assert_eq!(g.get(), Ok(&1));
            // The hub still runs greenlets afterwards.
            assert_eq!(greenlet::spawn(|| 2).get(), Ok(&2));
        });
    });
}

#[test]
fn spread_starts_greenlets_on_every_worker() {
    guard(|| {
        rt().run(|| {
            let gs: Vec<_> = (0..8)
                .map(|_| {
                    GreenletBuilder::new()
                        .spread(true)
                        .spawn(|| std::thread::current().id())
                })
                .collect();
            let mut threads: Vec<_> = gs.iter().map(|g| *g.get().unwrap()).collect();
            threads.sort_by_key(|t| format!("{t:?}"));
            threads.dedup();
            assert_eq!(threads.len(), 2, "both workers got greenlets");
        });
    });
}

#[test]
fn a_joiner_resumes_behind_the_greenlets_already_runnable() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            // As in gevent: when the first ends, the joiner is queued behind
            // the other two, so it finds them finished too.
            let gs: Vec<_> = (0..3).map(|i| greenlet::spawn(move || i)).collect();
            gs[0].join();
            assert!(gs[1].ready() && gs[2].ready());
        });
    });
}

/// Greenlets woken by another thread while their worker is busy run in the
/// order they were woken, once it gets to them.
#[test]
fn wakeups_from_another_thread_run_in_the_order_sent() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            use greenlet::sync::Event;
            let events: Vec<Arc<Event>> = (0..4).map(|_| Arc::new(Event::new())).collect();
            let order = Arc::new(std::sync::Mutex::new(Vec::new()));
            let gs: Vec<_> = (0..4)
                .map(|i| {
                    let (e, order) = (events[i].clone(), order.clone());
                    greenlet::spawn(move || {
                        e.wait();
                        order.lock().unwrap().push(i);
                    })
                })
                .collect();
            // Every other runnable greenlet runs first: all four now wait.
            greenlet::yield_now();
            assert!(events.iter().all(|e| e.waiters() == 1));
            let setter = {
                let events = events.clone();
                std::thread::spawn(move || {
                    for i in [2, 0, 3, 1] {
                        events[i].set();
                    }
                })
            };
            // Blocking the only worker's thread until all four wake-ups are
            // queued makes it take them in one batch.
            setter.join().unwrap();
            greenlet::joinall(&gs);
            assert_eq!(*order.lock().unwrap(), vec![2, 0, 3, 1]);
        });
    });
}

#[test]
fn kills_racing_the_ends_from_a_plain_thread_and_after_the_runtime_is_gone() {
    guard(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let go = Arc::new(greenlet::sync::Event::new());
        let rt = rt().build().unwrap();
        let gs: Vec<_> = (0..2_000)
            .map(|i| {
                let (d, go) = (DropCount(drops.clone()), go.clone());
                rt.spawn(move || {
                    let _d = d;
                    go.wait();
                    for _ in 0..i % 64 {
                        greenlet::yield_now();
                    }
                    i
                })
            })
            .collect();
        // The kills reach greenlets not yet started, parked, between yields,
        // or ending: a kill (and the wake-up by `go`) from another thread
        // must find the greenlet's worker, or see that it has ended.
        let killer = {
            let (gs, go) = (gs.clone(), go.clone());
            std::thread::spawn(move || {
                go.set();
                gs.iter().rev().for_each(|g| g.kill());
            })
        };
        killer.join().unwrap();
        drop(rt);
        assert_eq!(drops.load(Ordering::SeqCst), gs.len());
        for (i, g) in gs.iter().enumerate() {
            match g.get() {
                Ok(v) => assert_eq!(*v, i),
                Err(e) => assert_eq!(e, GreenletError::Killed),
            }
            // Its workers have exited: a kill now changes nothing.
            g.kill();
        }
    });
}
