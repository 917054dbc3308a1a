//! Deadlock detection: gevent's `LoopExit`.
//!
//! When the main greenlet of a `run` (or a plain thread waiting on a
//! greenlet) blocks and nothing can ever wake it, its blocking call panics
//! with [`LOOP_EXIT`] instead of hanging.
//!
//! "Nothing can ever wake it" is decided conservatively, process-wide, under
//! one lock (`WATCH`), and only when a watched waiter is parked:
//!
//! - every worker thread of every runtime is *quiescent*: blocked in
//!   `epoll_wait` with no timeout (no timer pending), no greenlet waiting on
//!   I/O, its `sleeping` flag still set (nobody notified it) and its remote
//!   queue empty;
//! - every plain thread blocked in one of our waits is still parked (not
//!   unparked on its way out); the main greenlets that are parked get the
//!   report (one suspended otherwise cannot be woken by it);
//! - no job is pending on the thread pool (`busy`);
//! - and the process has no thread other than those: no foreign thread that
//!   could still call in (`/proc/self/status` `Threads:`).
//!
//! A wake-up that can still come from a timer, I/O, a job or another thread
//! counts as possible; when in doubt, wait. A false report would be worse
//! than a hang, so each condition errs towards waiting.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::Instant;

use crate::greenlet::header::HeaderRef;

use super::Shared;
use super::park::{PARKED, unpark};

/// What a watched waiter's blocking call panics with.
pub(crate) const LOOP_EXIT: &str = "greenlet: this operation would block forever: every \
greenlet is waiting and nothing (no timer, no I/O, no other thread) can wake them (LoopExit)";

/// A plain thread's parker: the same state machine as a greenlet's `park`
/// byte, so the detector can tell a parked thread from a woken one.
pub(crate) struct ThreadParker {
    state: AtomicU8,
    thread: Thread,
    /// Set by the detector: the current wait must fail.
    loop_exit: AtomicBool,
}

const EMPTY: u8 = 0;
const NOTIFIED: u8 = 2;

thread_local! {
    static PARKER: Arc<ThreadParker> = Arc::new(ThreadParker {
        state: AtomicU8::new(EMPTY),
        thread: std::thread::current(),
        loop_exit: AtomicBool::new(false),
    });
    /// This thread waits for a `run`'s main greenlet: it is counted as
    /// blocked but is not told about deadlocks (the main greenlet is).
    static PASSIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl ThreadParker {
    pub(crate) fn current() -> Arc<ThreadParker> {
        PARKER.with(|p| p.clone())
    }

    pub(crate) fn unpark(&self) {
        if self.state.swap(NOTIFIED, Ordering::AcqRel) == PARKED {
            self.thread.unpark();
        }
    }

    fn is_parked(&self) -> bool {
        self.state.load(Ordering::Acquire) == PARKED
    }

    /// Blocks this thread until unparked or `deadline`.
    ///
    /// # Panics
    /// With [`LOOP_EXIT`] if the detector finds that nothing can wake it.
    pub(crate) fn park(self: &Arc<Self>, deadline: Option<Instant>) {
        if self
            .state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
        if self
            .state
            .compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.state.store(EMPTY, Ordering::Release);
            return;
        }
        let watched = deadline.is_none();
        if watched {
            watch_thread(self);
        }
        loop {
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    std::thread::park_timeout(d - now);
                }
            }
            if self.state.load(Ordering::Acquire) == NOTIFIED {
                break;
            }
        }
        self.state.store(EMPTY, Ordering::Release);
        if watched {
            unwatch_thread(self);
            if self.loop_exit.swap(false, Ordering::AcqRel) {
                panic!("{LOOP_EXIT}");
            }
        }
    }
}

/// Runs `f` with this thread marked as the passive waiter of a `run`.
pub(crate) fn passive<T>(f: impl FnOnce() -> T) -> T {
    PASSIVE.with(|p| p.set(true));
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            PASSIVE.with(|p| p.set(false));
        }
    }
    let _reset = Reset;
    f()
}

struct Watch {
    /// Worker threads alive, over all runtimes.
    workers: usize,
    /// Workers blocked with nothing pending.
    quiescent: Vec<Arc<Shared>>,
    /// Plain threads blocked in our waits, and whether each is watched.
    threads: Vec<(Arc<ThreadParker>, bool)>,
    /// Main greenlets of the runs under way.
    mains: Vec<HeaderRef>,
    /// Threads of the thread pool waiting for jobs.
    pool_idle: usize,
}

static WATCH: Mutex<Watch> = Mutex::new(Watch {
    workers: 0,
    quiescent: Vec::new(),
    threads: Vec::new(),
    mains: Vec::new(),
    pool_idle: 0,
});

/// Jobs that will wake someone when they finish (thread-pool jobs).
static BUSY: AtomicUsize = AtomicUsize::new(0);

fn watch() -> std::sync::MutexGuard<'static, Watch> {
    WATCH.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn worker_started() {
    watch().workers += 1;
}

pub(crate) fn worker_stopped() {
    watch().workers -= 1;
}

/// A worker is about to block with nothing pending.
pub(crate) fn enter_quiescent(w: &Arc<Shared>) {
    let mut g = watch();
    g.quiescent.push(w.clone());
    check(&mut g);
}

pub(crate) fn leave_quiescent(w: &Arc<Shared>) {
    let mut g = watch();
    if let Some(at) = g.quiescent.iter().position(|x| Arc::ptr_eq(x, w)) {
        g.quiescent.swap_remove(at);
    }
}

/// A thread-pool thread starts or stops waiting for jobs.
#[allow(dead_code)]
pub(crate) fn pool_idle(delta: isize) {
    let mut g = watch();
    g.pool_idle = g.pool_idle.wrapping_add_signed(delta);
}

/// A job that will wake someone is pending (+1) or done (-1).
#[allow(dead_code)]
pub(crate) fn busy(delta: isize) {
    if delta > 0 {
        BUSY.fetch_add(delta as usize, Ordering::SeqCst);
    } else {
        BUSY.fetch_sub(delta.unsigned_abs(), Ordering::SeqCst);
    }
}

fn watch_thread(p: &Arc<ThreadParker>) {
    let watched = !PASSIVE.with(|x| x.get());
    let mut g = watch();
    g.threads.push((p.clone(), watched));
    check(&mut g);
}

fn unwatch_thread(p: &Arc<ThreadParker>) {
    let mut g = watch();
    if let Some(at) = g.threads.iter().position(|(x, _)| Arc::ptr_eq(x, p)) {
        g.threads.swap_remove(at);
    }
}

/// A `run`'s main greenlet starts to be watched (it parks without telling
/// anyone: when it is parked and every worker is quiescent, it is stuck).
pub(crate) fn register_main(g: &HeaderRef) {
    watch().mains.push(g.clone());
}

/// The main greenlet `g` has ended.
pub(crate) fn unregister_main(g: &HeaderRef) {
    let removed = {
        let mut w = watch();
        w.mains
            .iter()
            .position(|x| x == g)
            .map(|at| w.mains.swap_remove(at))
    };
    drop(removed);
}

/// Reports a deadlock if every condition of the module docs holds.
fn check(w: &mut Watch) {
    let watched_threads = w.threads.iter().filter(|(_, watched)| *watched).count();
    let parked_mains = w
        .mains
        .iter()
        .filter(|g| g.park.load(Ordering::Acquire) == PARKED)
        .count();
    if parked_mains == 0 && watched_threads == 0 {
        return;
    }
    if w.quiescent.len() != w.workers || BUSY.load(Ordering::SeqCst) != 0 {
        return;
    }
    if !w.quiescent.iter().all(|s| s.is_quiet()) {
        return;
    }
    if !w.threads.iter().all(|(p, _)| p.is_parked()) {
        return;
    }
    let known = w.workers + w.threads.len() + w.pool_idle;
    if process_threads() != Some(known) {
        return;
    }
    for (p, watched) in &w.threads {
        if *watched {
            p.loop_exit.store(true, Ordering::Release);
            p.unpark();
        }
    }
    for g in &w.mains {
        if g.park.load(Ordering::Acquire) == PARKED {
            g.loop_exit.store(true, Ordering::Release);
            unpark(g);
        }
    }
}

/// The number of threads in this process, if it can be read.
fn process_threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}
