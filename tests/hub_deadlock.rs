//! Deadlock detection (gevent's LoopExit).
//!
//! This file runs without the test harness: the detector only reports a
//! deadlock when no thread it does not know could still wake anyone, and
//! the harness's own threads would be such threads. The guard against a
//! hang is `alarm(2)`, which kills the process (a failure) without adding a
//! thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use greenlet::{Builder, Greenlet};

fn text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Two greenlets that join each other: neither can ever end.
fn deadlocked_pair() -> Greenlet<()> {
    let slot: Arc<OnceLock<Greenlet<()>>> = Arc::new(OnceLock::new());
    let s = slot.clone();
    let a = greenlet::spawn(move || {
        let b = loop {
            if let Some(b) = s.get() {
                break b.clone();
            }
            greenlet::yield_now();
        };
        b.join();
    });
    let a2 = a.clone();
    let b = greenlet::spawn(move || a2.join());
    slot.set(b).unwrap();
    a
}

fn main_blocked_forever_fails_instead_of_hanging() {
    let r = catch_unwind(AssertUnwindSafe(|| {
        Builder::new().workers(2).run(|| {
            let a = deadlocked_pair();
            a.join();
        })
    }));
    let msg = text(r.expect_err("run must fail"));
    assert!(msg.contains("would block forever"), "{msg}");
    println!("ok: main blocked forever fails with LoopExit");
}

fn a_pending_timer_is_not_a_deadlock() {
    let v = Builder::new().workers(2).run(|| {
        let g = greenlet::spawn(|| {
            greenlet::sleep(Duration::from_millis(100));
            5
        });
        *g.get().unwrap()
    });
    assert_eq!(v, 5);
    println!("ok: a pending timer is not a deadlock");
}

fn a_plain_thread_that_can_still_act_is_not_a_deadlock() {
    Builder::new().workers(2).run(|| {
        let a = deadlocked_pair();
        let victim = a.clone();
        // This thread is not one the runtime knows: it may still act, so the
        // main greenlet's join must wait for it.
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            victim.kill_nowait();
        });
        a.join();
        t.join().unwrap();
    });
    println!("ok: a wake-up from a plain thread counts as possible");
}

fn a_pending_thread_pool_job_is_not_a_deadlock() {
    let v = Builder::new().workers(2).run(|| {
        // Nothing but the job can end this wait: it blocks a pool thread.
        let job = greenlet::threadpool::spawn_blocking(|| {
            std::thread::sleep(Duration::from_millis(200));
            7
        });
        *job.get().unwrap()
    });
    assert_eq!(v, 7);
    println!("ok: a pending thread-pool job is not a deadlock");
}

fn a_plain_thread_joining_forever_fails() {
    // No runtime here: the default one runs the greenlets.
    let a = deadlocked_pair();
    let r = catch_unwind(AssertUnwindSafe(|| a.join()));
    let msg = text(r.expect_err("join must fail"));
    assert!(msg.contains("would block forever"), "{msg}");
    println!("ok: a plain thread joining forever fails with LoopExit");
}

fn main() {
    // SAFETY: alarm(2) has no preconditions; its default action ends the
    // process, failing the test if something hangs.
    unsafe { libc::alarm(120) };
    main_blocked_forever_fails_instead_of_hanging();
    a_pending_timer_is_not_a_deadlock();
    a_plain_thread_that_can_still_act_is_not_a_deadlock();
    a_pending_thread_pool_job_is_not_a_deadlock();
    a_plain_thread_joining_forever_fails();
    println!("5 passed, 0 failed");
}
