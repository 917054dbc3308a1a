//! The runtime: worker threads with a hub each, `run`, `Builder`, and the
//! default runtime that `spawn` starts outside any.
//!
//! # Lifecycle
//!
//! `Builder::build` makes every worker's halves (`hub::Shared` for the
//! runtime, `hub::Parts` for the thread) and starts one thread per worker.
//! `Runtime::run` spawns the closure as the main greenlet, blocks the calling
//! thread until it ends, then shuts down: every worker cancels its unstarted
//! greenlets, kills its started ones, and exits once all workers are empty.
//! The threads are joined before `run` returns, so nothing outlives it.
//!
//! The default runtime (for `spawn` from a plain thread) is built on first use
//! with one worker per core and lives until the process exits.

use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use crossbeam_deque::Injector;

use crate::greenlet::header::HeaderRef;
use crate::hub::{self, Driver, Remote, Shared};
use crate::spawn::{Greenlet, GreenletBuilder};
use crate::stack::{DEFAULT_STACK_SIZE, StackError, checked_size};

/// The main greenlet's stack: generous, since it is the program's "main"
/// (address space only; pages are used as touched).
const MAIN_STACK_SIZE: usize = 1024 * 1024;

/// What every worker of a runtime shares.
pub(crate) struct RuntimeInner {
    pub(crate) workers: Vec<Arc<Shared>>,
    /// Unstarted greenlets spawned from outside the workers.
    pub(crate) injector: Injector<HeaderRef>,
    idle: Mutex<Vec<usize>>,
    num_idle: AtomicUsize,
    pub(crate) stack_size: usize,
    /// Workers that still have greenlets, once shutdown began.
    remaining: AtomicUsize,
    /// The thread pool for blocking jobs.
    pub(crate) blocking: Arc<crate::threadpool::Pool>,
    next_worker: AtomicUsize,
}

impl RuntimeInner {
    /// Wakes one idle worker to steal work that was just queued.
    pub(crate) fn notify_idle(&self) {
        fence(Ordering::SeqCst);
        if self.num_idle.load(Ordering::SeqCst) == 0 {
            return;
        }
        let woken = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let w = idle.pop();
            if w.is_some() {
                self.num_idle.fetch_sub(1, Ordering::SeqCst);
            }
            w
        };
        if let Some(i) = woken {
            self.workers[i].notify();
        }
    }

    pub(crate) fn enter_idle(&self, index: usize) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push(index);
        self.num_idle.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn leave_idle(&self, index: usize) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = idle.iter().position(|&i| i == index) {
            idle.swap_remove(at);
            self.num_idle.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// True if some unstarted greenlet waits to be stolen.
    pub(crate) fn has_stealable(&self) -> bool {
        !self.injector.is_empty() || self.workers.iter().any(|w| !w.stealer.is_empty())
    }

    /// Queues an unstarted greenlet from outside the workers.
    pub(crate) fn inject(&self, task: HeaderRef) {
        self.injector.push(task);
        self.notify_idle();
        // If every worker is busy, one of them steals it when it is free.
    }

    /// Picks a worker for work sent from outside (round robin).
    pub(crate) fn some_worker(&self) -> &Arc<Shared> {
        let i = self.next_worker.fetch_add(1, Ordering::Relaxed);
        &self.workers[i % self.workers.len()]
    }

    pub(crate) fn worker_drained(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            for w in &self.workers {
                w.notify();
            }
        }
    }

    pub(crate) fn all_drained(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }
}

/// A worker's reference to its `Shared` that is never given back if the hub
/// unwinds: started greenlets reach their worker without counting a
/// reference on it (see `hub::pin`), trusting it to live until they have
/// all ended, which a hub that panicked can no longer see to.
struct KeepIfUnwinding(Arc<Shared>);

impl Drop for KeepIfUnwinding {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::mem::forget(self.0.clone());
        }
    }
}

/// A set of worker threads, each running a hub.
///
/// Most programs use [`run`] (or [`Builder::run`]), which makes one, runs
/// the main greenlet on it and shuts it down.
pub struct Runtime {
    inner: Arc<RuntimeInner>,
    threads: Vec<JoinHandle<()>>,
}

/// Configures and starts a [`Runtime`].
///
/// ```
/// let answer = greenlet::Builder::new()
///     .workers(2)
///     .stack_size(64 * 1024)
///     .run(|| greenlet::spawn(|| 6 * 7).get().copied().unwrap());
/// assert_eq!(answer, 42);
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    workers: usize,
    stack_size: usize,
    blocking_threads: usize,
    blocking_keep_alive: std::time::Duration,
    name: String,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// One worker per available core, [`DEFAULT_STACK_SIZE`] stacks, worker
    /// threads named `greenlet-N`.
    pub fn new() -> Self {
        Builder {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            stack_size: DEFAULT_STACK_SIZE,
            blocking_threads: crate::threadpool::DEFAULT_THREADS,
            blocking_keep_alive: crate::threadpool::DEFAULT_KEEP_ALIVE,
            name: "greenlet".into(),
        }
    }

    /// Sets the number of worker threads (at least one).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Sets the default stack size of greenlets spawned on this runtime.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// Sets how many threads the pool for blocking jobs may run at once
    /// (see [`spawn_blocking`](crate::threadpool::spawn_blocking)); default 64.
    pub fn blocking_threads(mut self, n: usize) -> Self {
        self.blocking_threads = n.max(1);
        self
    }

    /// Sets how long a thread of the blocking pool waits for a new job
    /// before it exits; default 10 s.
    pub fn blocking_keep_alive(mut self, d: std::time::Duration) -> Self {
        self.blocking_keep_alive = d;
        self
    }

    /// Sets the prefix of the worker threads' names.
    pub fn name(mut self, prefix: impl Into<String>) -> Self {
        self.name = prefix.into();
        self
    }

    /// Starts the worker threads.
    pub fn build(self) -> std::io::Result<Runtime> {
        let stack_size = checked_size(self.stack_size).map_err(std::io::Error::other)?;
        crate::panic::install_hook();
        let mut shared = Vec::with_capacity(self.workers);
        let mut parts = Vec::with_capacity(self.workers);
        for i in 0..self.workers {
            let (s, p) = hub::new_worker(i)?;
            shared.push(Arc::new(s));
            parts.push(p);
        }
        let inner = Arc::new(RuntimeInner {
            workers: shared,
            injector: Injector::new(),
            idle: Mutex::new(Vec::new()),
            num_idle: AtomicUsize::new(0),
            stack_size,
            remaining: AtomicUsize::new(self.workers),
            next_worker: AtomicUsize::new(0),
            blocking: crate::threadpool::Pool::new(
                self.blocking_threads,
                self.blocking_keep_alive,
                self.name.clone(),
            ),
        });
        let mut threads = Vec::with_capacity(self.workers);
        for (i, p) in parts.into_iter().enumerate() {
            let shared = inner.workers[i].clone();
            let rt = inner.clone();
            let t = std::thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || {
                    let keep = KeepIfUnwinding(shared.clone());
                    Driver::new(shared, rt, p).run();
                    drop(keep);
                })?;
            threads.push(t);
        }
        Ok(Runtime { inner, threads })
    }

    /// Builds a runtime, runs `f` on it as the main greenlet, and shuts it
    /// down; see [`run`].
    ///
    /// # Panics
    /// If the worker threads cannot be started, or if `f` panics (the panic
    /// is resumed here).
    pub fn run<T, F>(self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.build()
            .unwrap_or_else(|e| panic!("greenlet: cannot start the runtime: {e}"))
            .run(f)
    }
}

impl Runtime {
    /// Runs `f` as the main greenlet and blocks until it returns. Then every
    /// greenlet still alive is killed (unwound, destructors run) and the
    /// worker threads stop, before this returns `f`'s value.
    ///
    /// # Panics
    /// If `f` panics, the panic is resumed here (after the shutdown).
    pub fn run<T, F>(self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let main = GreenletBuilder::new()
            .name("main")
            .stack_size(MAIN_STACK_SIZE.max(self.inner.stack_size))
            .main()
            .spawn_on(&self.inner, f)
            .unwrap_or_else(|e| panic!("greenlet: cannot start the main greenlet: {e}"));
        crate::hub::deadlock::passive(|| main.join());
        drop(self);
        main.into_result()
            .unwrap_or_else(|e| std::panic::resume_unwind(Box::new(e.to_string())))
    }

    /// Spawns a greenlet on this runtime (from any thread).
    pub fn spawn<T, F>(&self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        GreenletBuilder::new()
            .spawn_on(&self.inner, f)
            .unwrap_or_else(|e| panic!("greenlet: {e}"))
    }

    fn shutdown(&mut self) {
        for w in &self.inner.workers {
            w.push_remote(Remote::Shutdown);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.inner.blocking.shutdown();
    }

    pub(crate) fn inner(&self) -> &Arc<RuntimeInner> {
        &self.inner
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Runs `f` as the main greenlet of a new runtime with one worker per core,
/// and returns its value once it and every greenlet it left behind are done.
///
/// ```
/// use std::time::Duration;
///
/// // Ten sleeps of 50 ms overlap: this takes about 50 ms, not 500.
/// let total: u64 = greenlet::run(|| {
///     let gs: Vec<_> = (0..10u64)
///         .map(|i| greenlet::spawn(move || { greenlet::sleep(Duration::from_millis(50)); i }))
///         .collect();
///     greenlet::joinall(&gs);
///     gs.iter().map(|g| *g.get().unwrap()).sum()
/// });
/// assert_eq!(total, 45);
/// ```
pub fn run<T, F>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().run(f)
}

/// The runtime that `spawn` uses outside any runtime, started on first use.
pub(crate) fn default_runtime() -> &'static Arc<RuntimeInner> {
    static DEFAULT: OnceLock<Runtime> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            Builder::new()
                .name("greenlet-default")
                .build()
                .unwrap_or_else(|e| panic!("greenlet: cannot start the default runtime: {e}"))
        })
        .inner()
}

/// Checks a per-greenlet stack size.
pub(crate) fn stack_size_for(
    requested: Option<usize>,
    rt: &RuntimeInner,
) -> Result<usize, StackError> {
    match requested {
        Some(s) => checked_size(s),
        None => Ok(rt.stack_size),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Weak};

    use super::*;
    use crate::hub::pin::bits;
    use crate::sync::Event;

    fn watch_workers(rt: &Runtime) -> Vec<Weak<Shared>> {
        rt.inner().workers.iter().map(Arc::downgrade).collect()
    }

    fn alive(ws: &[Weak<Shared>]) -> usize {
        ws.iter().filter(|w| w.upgrade().is_some()).count()
    }

    #[test]
    fn a_greenlet_whose_worker_another_thread_reached_keeps_it_until_its_cell_goes() {
        let rt = Builder::new().workers(1).build().unwrap();
        let ws = watch_workers(&rt);
        let (started, ev) = (Arc::new(Event::new()), Arc::new(Event::new()));
        let (s, e) = (started.clone(), ev.clone());
        let g = rt.spawn(move || {
            s.set();
            e.wait();
        });
        started.wait();
        // What a wake-up or a kill from this thread does before queueing
        // anything on the greenlet's worker: the greenlet has started and
        // waits for `ev`, so it has not ended.
        assert!(g.header().worker.get(&g.header().life).is_some());
        ev.set();
        g.join();
        assert_ne!(g.header().life.load(Ordering::Acquire) & bits::PINNED, 0);
        drop(rt);
        assert_eq!(alive(&ws), 1, "the pinned cell keeps its worker");
        // Reaching it again after the end is still sound, and kills are
        // no-ops on a finished greenlet.
        assert!(g.header().worker.get(&g.header().life).is_some());
        g.kill();
        drop(g);
        assert_eq!(alive(&ws), 0, "the cell gave its count back");
    }

    #[test]
    fn a_greenlet_nobody_reached_across_threads_holds_no_count_on_its_worker() {
        let rt = Builder::new().workers(2).build().unwrap();
        let ws = watch_workers(&rt);
        let gs: Vec<_> = (0..100).map(|i| rt.spawn(move || i)).collect();
        for g in &gs {
            g.join();
        }
        drop(rt);
        assert_eq!(alive(&ws), 0, "nothing but the runtime held the workers");
        for (i, g) in gs.iter().enumerate() {
            let bits = g.header().life.load(Ordering::Acquire);
            assert_eq!(bits & (bits::PIN_WANTED | bits::PINNED), 0);
            // An ended greenlet's worker is out of reach, and stays so.
            assert!(g.header().worker.get(&g.header().life).is_none());
            assert_eq!(g.header().life.load(Ordering::Acquire), bits);
            g.kill();
            assert_eq!(g.get(), Ok(&i));
        }
    }
}
