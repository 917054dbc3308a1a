//! `greenlet::threadpool`: `spawn_blocking` on real OS threads.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::guard;
use greenlet::threadpool::spawn_blocking;
use greenlet::{Builder, GreenletError};

/// A gate that blocking jobs wait at until it opens.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (m, cv) = &*self.0;
        let mut open = m.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
    }

    fn open(&self) {
        let (m, cv) = &*self.0;
        *m.lock().unwrap() = true;
        cv.notify_all();
    }
}

struct OpenOnDrop(Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Threads of this process (`comm` holds the first 15 bytes of the name) whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end().starts_with(prefix))
        })
        .count()
}

#[test]
fn the_result_comes_back_through_get() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let here = std::thread::current().id();
            let job = spawn_blocking(move || {
                assert_ne!(std::thread::current().id(), here);
                std::thread::sleep(Duration::from_millis(5)); // blocks the pool thread
                6 * 7
            });
            // The hub keeps running greenlets meanwhile.
            let other = greenlet::spawn(|| "ran");
            assert_eq!(other.get(), Ok(&"ran"));
            assert_eq!(job.get(), Ok(&42));
            assert!(job.ready() && job.successful());
        });
    });
}

#[test]
fn a_panic_in_a_job_is_returned_as_an_error() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let job = spawn_blocking(|| -> u32 { panic!("job failed") });
            match job.get() {
                Err(GreenletError::Panicked(m)) => assert!(m.contains("job failed"), "{m}"),
                other => panic!("unexpected {other:?}"),
            }
            // The pool still works.
            assert_eq!(spawn_blocking(|| 1).get(), Ok(&1));
        });
    });
}

#[test]
fn the_bound_is_respected() {
    guard(|| {
        Builder::new()
            .workers(1)
            .blocking_threads(2)
            .name("tpb")
            .run(|| {
                let gate = Gate::default();
                // Open on the way out, even if an assertion fails (or the
                // runtime would wait for the blocked jobs).
                let _open = OpenOnDrop(gate.clone());
                let now = Arc::new(AtomicUsize::new(0));
                let max = Arc::new(AtomicUsize::new(0));
                let jobs: Vec<_> = (0..8)
                    .map(|_| {
                        let (gate, now, max) = (gate.clone(), now.clone(), max.clone());
                        spawn_blocking(move || {
                            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                            max.fetch_max(n, Ordering::SeqCst);
                            gate.wait();
                            now.fetch_sub(1, Ordering::SeqCst);
                        })
                    })
                    .collect();
                // Threads start as jobs are submitted: no more than two. (A
                // new thread is named after its creator, the worker "tpb-0",
                // until it renames itself: count both.)
                assert_eq!(threads_named("tpb"), 1 + 2);
                while now.load(Ordering::SeqCst) < 2 {
                    std::thread::yield_now();
                }
                gate.open();
                greenlet::joinall(&jobs);
                for j in &jobs {
                    j.get().unwrap();
                }
                assert_eq!(max.load(Ordering::SeqCst), 2);
            });
    });
}

#[test]
fn two_jobs_at_once_get_two_threads() {
    guard(|| {
        Builder::new().workers(1).blocking_threads(4).run(|| {
            // Each job waits for the other: they deadlock unless both run.
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let warm = spawn_blocking(|| ());
            warm.get().unwrap(); // one idle thread now
            let jobs: Vec<_> = (0..2)
                .map(|_| {
                    let b = barrier.clone();
                    spawn_blocking(move || {
                        b.wait();
                    })
                })
                .collect();
            greenlet::joinall(&jobs);
        });
    });
}

#[test]
fn a_queued_job_killed_before_it_starts_never_runs() {
    guard(|| {
        Builder::new().workers(1).blocking_threads(1).run(|| {
            let gate = Gate::default();
            let _open = OpenOnDrop(gate.clone());
            let g2 = gate.clone();
            let busy = spawn_blocking(move || g2.wait());
            let ran = Arc::new(AtomicBool::new(false));
            let r2 = ran.clone();
            let queued = spawn_blocking(move || r2.store(true, Ordering::SeqCst));
            queued.kill();
            assert_eq!(queued.get(), Err(GreenletError::Killed));
            gate.open();
            busy.get().unwrap();
            // The pool thread has passed over the killed job by now: a later
            // job runs after it in FIFO order on the single thread.
            spawn_blocking(|| ()).get().unwrap();
            assert!(!ran.load(Ordering::SeqCst));
        });
    });
}

#[test]
fn spawn_blocking_from_a_plain_thread() {
    guard(|| {
        let job = spawn_blocking(|| String::from("from a plain thread"));
        assert_eq!(job.get().unwrap(), "from a plain thread");
        let t = std::thread::spawn(|| *spawn_blocking(|| 5).get().unwrap());
        assert_eq!(t.join().unwrap(), 5);
    });
}

#[test]
fn idle_threads_exit_after_the_keep_alive() {
    guard(|| {
        Builder::new()
            .workers(1)
            .blocking_threads(1)
            .blocking_keep_alive(Duration::from_millis(20))
            .name("tpi")
            .run(|| {
                let first = spawn_blocking(|| std::thread::current().id());
                let first = *first.get().unwrap();
                assert_eq!(threads_named("tpi-blocking"), 1);
                // Wait for the thread to go (it does once idle for 20 ms).
                while threads_named("tpi-blocking") > 0 {
                    greenlet::sleep(Duration::from_millis(5));
                }
                // The next job gets a new thread (the bound is one).
                let second = spawn_blocking(|| std::thread::current().id());
                assert_ne!(*second.get().unwrap(), first);
            });
    });
}

#[test]
fn many_greenlets_wait_on_jobs_at_once() {
    guard(|| {
        Builder::new().workers(2).blocking_threads(4).run(|| {
            let gs: Vec<_> = (0..100u64)
                .map(|i| greenlet::spawn(move || *spawn_blocking(move || i * i).get().unwrap()))
                .collect();
            let total: u64 = gs.iter().map(|g| *g.get().unwrap()).sum();
            assert_eq!(total, (0..100u64).map(|i| i * i).sum());
        });
    });
}
