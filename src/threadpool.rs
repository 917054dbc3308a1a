//! Real OS threads for work that cannot wait on readiness: blocking calls
//! (`getaddrinfo`, regular files, foreign blocking libraries) and CPU-heavy
//! jobs (gevent's threadpool, asyncio's `to_thread`).
//!
//! A job is a spawned-greenlet cell that a pool thread runs on its own stack
//! instead of a hub running it on a coroutine, so its handle is a
//! [`Greenlet<T>`]: `get` parks only the calling greenlet (or blocks a plain
//! thread) until the job is done, and a panic in the job comes back as
//! `GreenletError::Panicked`.
//!
//! The pool is bounded (`Builder::blocking_threads`, default 64 per
//! runtime): jobs queue when every thread is busy. Threads start on demand
//! (one more whenever more jobs wait than threads are idle) and exit after
//! ten seconds without work (`Builder::blocking_keep_alive`). A job that was queued but not
//! started can be killed (it never runs); a running one cannot be
//! interrupted, so killing it waits until it returns. Pending jobs count as a
//! possible wake-up for deadlock detection.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::greenlet::header::HeaderRef;
use crate::hub::Driver;
use crate::hub::deadlock;
use crate::spawn::{Greenlet, GreenletBuilder, cancel, claim_start, release_unclaimed};

/// How long an idle pool thread waits for work before it exits, by default.
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The default bound on a runtime's pool threads.
pub(crate) const DEFAULT_THREADS: usize = 64;

struct Queue {
    jobs: VecDeque<HeaderRef>,
    threads: usize,
    idle: usize,
    shutdown: bool,
    handles: Vec<std::thread::JoinHandle<()>>,
}

/// A runtime's thread pool.
pub(crate) struct Pool {
    queue: Mutex<Queue>,
    ready: Condvar,
    max: usize,
    keep_alive: Duration,
    name: String,
}

impl Pool {
    pub(crate) fn new(max: usize, keep_alive: Duration, name: String) -> Arc<Pool> {
        Arc::new(Pool {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                threads: 0,
                idle: 0,
                shutdown: false,
                handles: Vec::new(),
            }),
            ready: Condvar::new(),
            max: max.max(1),
            keep_alive,
            name,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn submit(self: &Arc<Self>, job: HeaderRef) {
        let mut q = self.lock();
        if q.shutdown {
            drop(q);
            cancel(job);
            return;
        }
        deadlock::busy(1);
        q.jobs.push_back(job);
        q.handles.retain(|h| !h.is_finished());
        if q.idle > 0 {
            self.ready.notify_one();
        }
        // An idle thread counts as idle until it wakes: compare with the
        // queue, so two jobs submitted at once never share one thread while
        // the bound allows another.
        if q.jobs.len() > q.idle && q.threads < self.max {
            q.threads += 1;
            let pool = self.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-blocking", self.name))
                .spawn(move || pool.work());
            match spawned {
                Ok(h) => q.handles.push(h),
                // Queued anyway: a running thread takes it when free.
                Err(_) => q.threads -= 1,
            }
        }
    }

    fn work(&self) {
        let mut q = self.lock();
        loop {
            if let Some(job) = q.jobs.pop_front() {
                drop(q);
                if claim_start(&job) {
                    // SAFETY: claimed by us just now.
                    unsafe { (job.vtable.run_here)(job) };
                } else {
                    release_unclaimed(job);
                }
                deadlock::busy(-1);
                q = self.lock();
                continue;
            }
            if q.shutdown {
                break;
            }
            q.idle += 1;
            deadlock::pool_idle(1);
            let (guard, timeout) = self
                .ready
                .wait_timeout(q, self.keep_alive)
                .unwrap_or_else(|e| e.into_inner());
            q = guard;
            deadlock::pool_idle(-1);
            q.idle -= 1;
            if timeout.timed_out() && q.jobs.is_empty() && !q.shutdown {
                break;
            }
        }
        q.threads -= 1;
    }

    /// Cancels queued jobs and waits for running ones (runtime shutdown).
    pub(crate) fn shutdown(&self) {
        let (jobs, handles) = {
            let mut q = self.lock();
            q.shutdown = true;
            let jobs: Vec<_> = q.jobs.drain(..).collect();
            (jobs, std::mem::take(&mut q.handles))
        };
        self.ready.notify_all();
        for job in jobs {
            cancel(job);
            deadlock::busy(-1);
        }
        for h in handles {
            let _ = h.join();
        }
    }
}

/// Runs `f` on a thread of the pool and returns its handle at once; `get`
/// on the handle parks only the calling greenlet until `f` is done.
///
/// ```
/// greenlet::run(|| {
///     let job = greenlet::threadpool::spawn_blocking(|| {
///         std::thread::sleep(std::time::Duration::from_millis(5)); // blocks a pool thread only
///         6 * 7
///     });
///     assert_eq!(job.get(), Ok(&42));
/// });
/// ```
pub fn spawn_blocking<T, F>(f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Driver::with_runtime(|rt| {
        let job = GreenletBuilder::new().name("blocking-job").job(rt, f);
        // SAFETY: the cell was just made, here; nothing else refers to it.
        rt.blocking.submit(unsafe { job.header().clone_unshared() });
        job
    })
}
