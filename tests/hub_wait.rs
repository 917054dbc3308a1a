//! joinall, killall, iwait.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{DropCount, guard};
use greenlet::{Builder, GreenletError, JoinAll, JoinAllError};

fn sleeper(ms: u64) -> greenlet::Greenlet<u64> {
    greenlet::spawn(move || {
        greenlet::sleep(Duration::from_millis(ms));
        ms
    })
}

#[test]
fn joinall_waits_for_every_greenlet() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let gs: Vec<_> = [5, 1, 3].into_iter().map(sleeper).collect();
            greenlet::joinall(&gs);
            assert!(gs.iter().all(|g| g.ready()));
        });
    });
}

#[test]
fn joinall_with_timeout() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let gs = vec![sleeper(1), sleeper(3_600_000)];
            let r = JoinAll::new(&gs).timeout(Duration::from_millis(20)).wait();
            assert_eq!(r, Err(JoinAllError::TimedOut));
            assert!(gs[0].ready() && !gs[1].ready());
            greenlet::killall(&gs);
        });
    });
}

#[test]
fn joinall_raise_error_stops_at_the_first_failure() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let gs = vec![
                sleeper(3_600_000),
                greenlet::spawn(|| -> u64 {
                    greenlet::sleep(Duration::from_millis(5));
                    panic!("second failed")
                }),
            ];
            let r = JoinAll::new(&gs).raise_error().wait();
            assert_eq!(
                r,
                Err(JoinAllError::Failed(
                    1,
                    GreenletError::Panicked("second failed".into())
                ))
            );
            assert!(!gs[0].ready());
            greenlet::killall(&gs);
        });
    });
}

#[test]
fn joinall_without_raise_error_waits_past_failures() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let gs = vec![greenlet::spawn(|| -> u64 { panic!("x") }), sleeper(10)];
            assert_eq!(JoinAll::new(&gs).wait(), Ok(()));
            assert!(gs[1].successful());
        });
    });
}

#[test]
fn killall_kills_and_waits() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let gs: Vec<_> = (0..50)
                .map(|_| {
                    let c = DropCount(drops.clone());
                    greenlet::spawn(move || {
                        let _c = c;
                        greenlet::sleep(Duration::from_secs(3600));
                    })
                })
                .collect();
            greenlet::killall(&gs);
            assert!(gs.iter().all(|g| g.error() == Some(GreenletError::Killed)));
            assert_eq!(drops.load(Ordering::SeqCst), 50);
        });
    });
}

#[test]
fn iwait_yields_in_completion_order() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let gs: Vec<_> = [40, 10, 30, 20].into_iter().map(sleeper).collect();
            let order: Vec<u64> = greenlet::iwait(&gs).map(|g| *g.get().unwrap()).collect();
            assert_eq!(order, [10, 20, 30, 40]);
        });
    });
}

#[test]
fn iwait_includes_greenlets_already_done() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let first = greenlet::spawn(|| 0u64);
            first.join();
            let gs = vec![sleeper(5), first];
            let order: Vec<u64> = greenlet::iwait(&gs).map(|g| *g.get().unwrap()).collect();
            assert_eq!(order, [0, 5]);
        });
    });
}

#[test]
fn iwait_timeout_stops_early() {
    guard(|| {
        Builder::new().workers(2).run(|| {
            let gs = vec![sleeper(1), sleeper(3_600_000)];
            let got: Vec<u64> = greenlet::iwait_timeout(&gs, Duration::from_millis(30))
                .map(|g| *g.get().unwrap())
                .collect();
            assert_eq!(got, [1]);
            greenlet::killall(&gs);
        });
    });
}

#[test]
fn dropping_an_iwait_early_leaves_no_links() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let gs: Vec<_> = [1, 50].into_iter().map(sleeper).collect();
            let mut it = greenlet::iwait(&gs);
            assert_eq!(it.next().map(|g| *g.get().unwrap()), Some(1));
            drop(it);
            // The second greenlet ends with nobody linked; nothing breaks.
            assert_eq!(gs[1].get(), Ok(&50));
        });
    });
}

#[test]
fn joinall_from_a_plain_thread() {
    guard(|| {
        let gs: Vec<_> = (0..10u64).map(|i| greenlet::spawn(move || i)).collect();
        greenlet::joinall(&gs);
        assert_eq!(gs.iter().map(|g| *g.get().unwrap()).sum::<u64>(), 45);
    });
}
