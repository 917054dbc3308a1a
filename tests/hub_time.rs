//! sleep, yield_now and Timeout.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{DropCount, guard};
use greenlet::{Builder, Elapsed, Timeout, with_timeout};

#[test]
fn sleeps_overlap() {
    guard(|| {
        // Correctness, not speed: the sleeps end in the order of their length.
        let order = Builder::new().workers(2).run(|| {
            let done = Arc::new(Mutex::new(Vec::new()));
            let gs: Vec<_> = [60u64, 20, 40]
                .into_iter()
                .map(|ms| {
                    let d = done.clone();
                    greenlet::spawn(move || {
                        greenlet::sleep(Duration::from_millis(ms));
                        d.lock().unwrap().push(ms);
                    })
                })
                .collect();
            greenlet::joinall(&gs);
            done.lock().unwrap().clone()
        });
        assert_eq!(order, [20, 40, 60]);
    });
}

#[test]
fn sleep_lasts_at_least_its_duration() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let t0 = Instant::now();
            greenlet::sleep(Duration::from_millis(15));
            assert!(t0.elapsed() >= Duration::from_millis(15));
        });
    });
}

#[test]
fn yield_now_lets_every_other_runnable_greenlet_run_first() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let ran = Arc::new(AtomicUsize::new(0));
            let gs: Vec<_> = (0..5)
                .map(|_| {
                    let r = ran.clone();
                    greenlet::spawn(move || {
                        r.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            assert_eq!(ran.load(Ordering::SeqCst), 0, "spawned, not yet run");
            greenlet::yield_now();
            assert_eq!(ran.load(Ordering::SeqCst), 5);
            greenlet::joinall(&gs);
        });
    });
}

#[test]
fn spawned_greenlets_start_in_spawn_order_around_local_ones_and_yields() {
    guard(|| {
        let log = Builder::new().workers(1).run(|| {
            let log = Arc::new(Mutex::new(Vec::new()));
            let note = |name: String| {
                let l = log.clone();
                move || l.lock().unwrap().push(name)
            };
            let mut gs = Vec::new();
            for i in 0..3 {
                gs.push(greenlet::spawn(note(format!("s{i}"))));
            }
            gs.push(greenlet::spawn_local(note("local".into())));
            for i in 3..6 {
                gs.push(greenlet::spawn(note(format!("s{i}"))));
            }
            greenlet::yield_now();
            log.lock().unwrap().push("main".into());
            gs.push(greenlet::spawn(note("s6".into())));
            greenlet::joinall(&gs);
            log.lock().unwrap().clone()
        });
        assert_eq!(
            log,
            ["s0", "s1", "s2", "local", "s3", "s4", "s5", "main", "s6"]
        );
    });
}

#[test]
fn yield_now_alternates_two_greenlets() {
    guard(|| {
        let log = Builder::new().workers(1).run(|| {
            let log = Arc::new(Mutex::new(Vec::new()));
            let gs: Vec<_> = ["a", "b"]
                .into_iter()
                .map(|name| {
                    let l = log.clone();
                    greenlet::spawn(move || {
                        for i in 0..3 {
                            l.lock().unwrap().push(format!("{name}{i}"));
                            greenlet::yield_now();
                        }
                    })
                })
                .collect();
            greenlet::joinall(&gs);
            log.lock().unwrap().clone()
        });
        assert_eq!(log, ["a0", "b0", "a1", "b1", "a2", "b2"]);
    });
}

#[test]
fn greenlets_that_only_yield_still_let_timers_and_wakeups_in() {
    // Yielding greenlets switch to each other directly (or, alone, go on
    // at once); the hub must still get its turn to fire timers and take
    // wake-ups from other threads.
    for spinners in [1, 2] {
        guard(move || {
            Builder::new().workers(1).run(move || {
                let stop = Arc::new(AtomicBool::new(false));
                let spinners: Vec<_> = (0..spinners)
                    .map(|_| {
                        let s = stop.clone();
                        greenlet::spawn(move || {
                            let mut turns = 0u64;
                            while !s.load(Ordering::SeqCst) {
                                greenlet::yield_now();
                                turns += 1;
                            }
                            turns
                        })
                    })
                    .collect();
                greenlet::sleep(Duration::from_millis(5));
                let event = Arc::new(greenlet::sync::Event::new());
                let e = event.clone();
                let setter = std::thread::spawn(move || e.set());
                event.wait();
                setter.join().unwrap();
                stop.store(true, Ordering::SeqCst);
                for g in spinners {
                    assert!(*g.get().unwrap() > 0);
                }
            });
        });
    }
}

#[test]
fn timeout_that_does_not_fire() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let r = with_timeout(Duration::from_secs(30), || {
                greenlet::sleep(Duration::from_millis(1));
                7
            });
            assert_eq!(r, Ok(7));
        });
    });
}

#[test]
fn timeout_interrupts_and_unwinds() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let d = drops.clone();
            let r = with_timeout(Duration::from_millis(10), move || {
                let _c = DropCount(d);
                greenlet::sleep(Duration::from_secs(3600));
            });
            assert_eq!(r, Err(Elapsed));
            assert_eq!(drops.load(Ordering::SeqCst), 1);
            // The greenlet goes on normally afterwards.
            greenlet::sleep(Duration::from_millis(1));
        });
    });
}

#[test]
fn nested_timeouts_each_fire_their_own() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            // The inner one is shorter: it fires; the outer one does not.
            let outer = with_timeout(Duration::from_secs(30), || {
                let inner = with_timeout(Duration::from_millis(5), || {
                    greenlet::sleep(Duration::from_secs(3600))
                });
                assert_eq!(inner, Err(Elapsed));
                "outer body finished"
            });
            assert_eq!(outer, Ok("outer body finished"));

            // The outer one is shorter: it fires through the inner one, whose
            // `with_timeout` must not take it for its own.
            let reached_after_inner = Arc::new(AtomicUsize::new(0));
            let r = reached_after_inner.clone();
            let outer = with_timeout(Duration::from_millis(5), move || {
                let inner = with_timeout(Duration::from_secs(30), || {
                    greenlet::sleep(Duration::from_secs(3600))
                });
                r.fetch_add(1, Ordering::SeqCst);
                inner
            });
            assert_eq!(outer, Err(Elapsed));
            assert_eq!(reached_after_inner.load(Ordering::SeqCst), 0);
        });
    });
}

#[test]
fn a_timeout_that_fires_after_the_last_switch_does_not_leak() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let r = Timeout::new(Duration::ZERO).run(|| 1);
            assert_eq!(r, Ok(1));
            // No stale timeout may hit this later sleep.
            greenlet::sleep(Duration::from_millis(2));
        });
    });
}

#[test]
fn timeout_in_many_greenlets_at_once() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let gs: Vec<_> = (0..200u64)
                .map(|i| {
                    greenlet::spawn(move || {
                        with_timeout(Duration::from_millis(5 + i % 10), || {
                            greenlet::sleep(Duration::from_secs(3600))
                        })
                    })
                })
                .collect();
            for g in &gs {
                assert_eq!(g.get(), Ok(&Err(Elapsed)));
            }
        });
    });
}

#[test]
fn sleep_from_a_plain_thread_blocks_it() {
    guard(|| {
        let t0 = Instant::now();
        greenlet::sleep(Duration::from_millis(5));
        assert!(t0.elapsed() >= Duration::from_millis(5));
    });
}
