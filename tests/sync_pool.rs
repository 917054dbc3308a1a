//! `Pool` and `Group`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::guard;
use greenlet::pool::{Group, Pool};
use greenlet::sync::Event;
use greenlet::{Builder, GreenletError};

#[test]
fn sync_pool_limits_how_many_run_at_once() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let pool = Pool::new(3);
            let inside = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            for _ in 0..20 {
                let (inside, most) = (inside.clone(), most.clone());
                pool.spawn(move || {
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    greenlet::sleep(Duration::from_micros(100));
                    inside.fetch_sub(1, Ordering::SeqCst);
                });
                assert!(pool.free_count() <= 3);
            }
            pool.join();
            assert!(most.load(Ordering::SeqCst) <= 3);
            assert_eq!(pool.free_count(), 3);
            assert!(pool.is_empty());
        });
    });
}

#[test]
fn sync_pool_map_keeps_input_order() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let pool = Pool::new(4);
            let out = pool
                .map(
                    |i: u64| {
                        greenlet::sleep(Duration::from_micros((20 - i) * 10));
                        i * 2
                    },
                    0..20,
                )
                .unwrap();
            assert_eq!(out, (0..20).map(|i| i * 2).collect::<Vec<_>>());
        });
    });
}

#[test]
fn sync_pool_map_returns_a_panic_and_keeps_its_slots() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let pool = Pool::new(2);
            let r = pool.map(
                |i: u32| {
                    if i == 3 {
                        panic!("task {i} failed");
                    }
                    i
                },
                0..8,
            );
            assert_eq!(r, Err(GreenletError::Panicked("task 3 failed".into())));
            pool.join();
            assert_eq!(pool.free_count(), 2, "no slot leaked");
            assert_eq!(pool.map(|i: u32| i + 1, 0..3), Ok(vec![1, 2, 3]));
        });
    });
}

#[test]
fn sync_pool_imap_is_lazy_and_ordered() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let pool = Pool::new(2);
            let pulled = Arc::new(AtomicUsize::new(0));
            let p = pulled.clone();
            let input = (0..100u32).inspect(move |_| {
                p.fetch_add(1, Ordering::SeqCst);
            });
            let mut it = pool.imap(|i| i * i, input);
            assert_eq!(it.next(), Some(Ok(0)));
            assert!(
                pulled.load(Ordering::SeqCst) <= 2,
                "pulls no further than the pool size"
            );
            let rest: Vec<u32> = it.map(Result::unwrap).collect();
            assert_eq!(rest, (1..100).map(|i| i * i).collect::<Vec<_>>());
        });
    });
}

#[test]
fn sync_pool_imap_unordered_yields_as_they_finish() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let group = Group::new();
            let gates: Vec<_> = (0..3).map(|_| Arc::new(Event::new())).collect();
            let g2 = gates.clone();
            let mut it = group.imap_unordered(
                move |i: usize| {
                    g2[i].wait();
                    i
                },
                0..3,
            );
            // Finish them in the order 2, 0, 1.
            gates[2].set();
            assert_eq!(it.next(), Some(Ok(2)));
            gates[0].set();
            assert_eq!(it.next(), Some(Ok(0)));
            gates[1].set();
            assert_eq!(it.next(), Some(Ok(1)));
            assert_eq!(it.next(), None);
        });
    });
}

#[test]
fn sync_pool_apply_and_wait_available() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let pool = Pool::new(1);
            assert_eq!(pool.apply(|| 6 * 7), Ok(42));
            let gate = Arc::new(Event::new());
            let g = gate.clone();
            pool.spawn(move || g.wait());
            assert_eq!(pool.free_count(), 0);
            assert!(!pool.wait_available_timeout(Duration::from_millis(2)));
            gate.set();
            pool.wait_available();
            assert_eq!(pool.free_count(), 1);
        });
    });
}

#[test]
fn sync_pool_kill_ends_every_member_and_frees_the_slots() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let pool = Pool::new(5);
            let gs: Vec<_> = (0..5)
                .map(|_| pool.spawn(|| greenlet::sleep(Duration::from_secs(3600))))
                .collect();
            assert_eq!(pool.len(), 5);
            pool.kill();
            assert!(gs.iter().all(|g| g.get() == Err(GreenletError::Killed)));
            assert_eq!(pool.free_count(), 5);
            assert!(pool.is_empty());
        });
    });
}

#[test]
fn sync_pool_spawn_waits_for_a_slot() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let pool = Pool::new(1);
            let gate = Arc::new(Event::new());
            let g = gate.clone();
            let first = pool.spawn(move || g.wait());
            let p = pool.clone();
            let second = greenlet::spawn(move || p.spawn(|| 2).get().copied());
            greenlet::yield_now();
            assert!(!second.ready(), "waiting for the slot");
            gate.set();
            assert_eq!(second.get(), Ok(&Ok(2)));
            first.join();
        });
    });
}

#[test]
fn sync_group_join_and_timeout() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let group = Group::new();
            let gate = Arc::new(Event::new());
            for _ in 0..10 {
                let g = gate.clone();
                group.spawn(move || g.wait());
            }
            assert!(!group.join_timeout(Duration::from_millis(2)));
            gate.set();
            group.join();
            assert!(group.is_empty());
            assert_eq!(group.map(|s: &str| s.len(), ["a", "bb"]), Ok(vec![1, 2]));
        });
    });
}
