//! Spawned greenlets: `spawn` and friends, `GreenletBuilder`, and the
//! `Greenlet<T>` handle (`handle`), over the cell and lifecycle in `cell`.

pub(crate) mod cache;
mod cell;
mod handle;

pub(crate) use cell::{
    Link, abort_claimed, add_link, cancel, claim_start, panic_message, release_unclaimed,
    remove_link, wait_done,
};
pub use handle::Greenlet;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::greenlet::header::HeaderRef;
use crate::hub::{Driver, Remote};
use crate::runtime::{RuntimeInner, stack_size_for};
use crate::stack::{Stack, StackError};
use cell::new_cell;

/// How a spawned greenlet failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GreenletError {
    /// It was killed (by `kill`, or at shutdown), maybe before it ran.
    Killed,
    /// It panicked; the panic's message.
    Panicked(String),
    /// It could not start: no stack could be had.
    Stack(StackError),
}

impl fmt::Display for GreenletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GreenletError::Killed => f.write_str("the greenlet was killed"),
            GreenletError::Panicked(m) => write!(f, "the greenlet panicked: {m}"),
            GreenletError::Stack(e) => write!(f, "the greenlet could not start: {e}"),
        }
    }
}

impl std::error::Error for GreenletError {}

/// Why a greenlet could not be spawned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnError {
    /// The stack size is invalid, or no stack can be had.
    Stack(StackError),
    /// `spawn_local` needs to run on a hub (inside a greenlet of a runtime).
    NotOnHub,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Stack(e) => write!(f, "{e}"),
            SpawnError::NotOnHub => {
                f.write_str("spawn_local must be called from a greenlet running on a hub")
            }
        }
    }
}

impl std::error::Error for SpawnError {}

impl From<StackError> for SpawnError {
    fn from(e: StackError) -> Self {
        SpawnError::Stack(e)
    }
}

/// Options for a spawned greenlet: name and stack size.
///
/// ```
/// greenlet::run(|| {
///     let g = greenlet::GreenletBuilder::new()
///         .name("worker")
///         .stack_size(64 * 1024)
///         .spawn(|| 1 + 1);
///     assert_eq!(g.name(), "worker");
///     assert_eq!(g.get(), Ok(&2));
/// });
/// ```
#[derive(Clone, Debug, Default)]
pub struct GreenletBuilder {
    name: Option<String>,
    stack_size: Option<usize>,
    spread: bool,
    /// The main greenlet of a `run` (watched for deadlocks).
    main: bool,
}

impl GreenletBuilder {
    /// No name, the runtime's stack size.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the greenlet (shown in panics and stack overflow reports).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets its stack size in bytes (at least [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE)).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Starts the greenlet on the runtime's workers in turn (no other worker
    /// steals it), instead of queueing it on the spawning worker (where an
    /// idle worker may or may not steal it in time). For long-lived
    /// greenlets spawned in a burst from one place, like a server's
    /// connection handlers: since a started greenlet never changes workers,
    /// where it starts is where it stays. It costs a
    /// cross-thread hand-over per spawn, so short greenlets are better
    /// spawned locally (the default).
    pub fn spread(mut self, spread: bool) -> Self {
        self.spread = spread;
        self
    }

    /// Spawns `f` on some worker of the current runtime (or of the default
    /// runtime, outside any). Panics where [`try_spawn`](Self::try_spawn)
    /// returns an error.
    pub fn spawn<T, F>(self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.try_spawn(f)
            .unwrap_or_else(|e| panic!("greenlet: {e}"))
    }

    /// Spawns `f`, or says why it cannot: a stack size below the minimum, or
    /// no stack to be had (out of memory, or the kernel's mapping limit).
    pub fn try_spawn<T, F>(self, f: F) -> Result<Greenlet<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Driver::with_runtime(|rt| self.spawn_on(rt, f))
    }

    pub(crate) fn spawn_on<T, F>(
        self,
        rt: &Arc<RuntimeInner>,
        f: F,
    ) -> Result<Greenlet<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (spread, main) = (self.spread, self.main);
        let g = self.new_cell(rt, false, f)?;
        // SAFETY: the cell was just made, here; nothing else refers to it.
        let task = unsafe { g.header().clone_unshared() };
        if main {
            // Before it is queued: from then on a worker may run it.
            g.header().is_main.set(true);
            crate::hub::deadlock::register_main(g.header());
        }
        if spread {
            spread_over(rt, task);
        } else {
            place(rt, task, None);
        }
        Ok(g)
    }

    /// Marks the greenlet as a `run`'s main greenlet.
    pub(crate) fn main(mut self) -> Self {
        self.main = true;
        self
    }

    /// Spawns `f` on the current worker, where it stays: `f` and its result
    /// need not be `Send`.
    ///
    /// # Panics
    /// Outside a greenlet of a runtime, or where `try_spawn` would fail.
    pub fn spawn_local<T, F>(self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.try_spawn_local(f)
            .unwrap_or_else(|e| panic!("greenlet: {e}"))
    }

    /// [`spawn_local`](Self::spawn_local), returning errors.
    pub fn try_spawn_local<T, F>(self, f: F) -> Result<Greenlet<T>, SpawnError>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        Driver::with(|d| {
            let g = self.new_cell(&d.rt, true, f)?;
            g.header().bind_to_current_thread();
            // SAFETY: the cell was just made, here; nothing else refers to
            // it.
            d.spawn_local(unsafe { g.header().clone_unshared() });
            Ok(g)
        })
        .unwrap_or(Err(SpawnError::NotOnHub))
    }

    /// Spawns `f` to start after `delay`. Killed before then, it never runs.
    pub fn spawn_later<T, F>(self, delay: Duration, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Driver::with_runtime(|rt| {
            let g = self
                .new_cell(rt, false, f)
                .unwrap_or_else(|e| panic!("greenlet: {e}"));
            // SAFETY: the cell was just made, here; nothing else refers to
            // it.
            place(
                rt,
                unsafe { g.header().clone_unshared() },
                Some(Instant::now() + delay),
            );
            g
        })
    }

    /// A greenlet cell for a thread-pool job: never placed on a hub.
    pub(crate) fn job<T, F>(self, rt: &Arc<RuntimeInner>, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.cell(rt.stack_size, false, f)
    }

    fn new_cell<T, F>(
        self,
        rt: &Arc<RuntimeInner>,
        local: bool,
        f: F,
    ) -> Result<Greenlet<T>, SpawnError>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let size = stack_size_for(self.stack_size, rt)?;
        crate::stack::check_fits::<F>(size)?;
        Stack::ensure_available(size)?;
        Ok(self.cell(size, local, f))
    }

    fn cell<T, F>(self, size: usize, local: bool, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        Greenlet::from_cell(new_cell(self.name, size, local, f))
    }
}

/// Queues an unstarted greenlet on `rt`: on this worker if it is one of
/// `rt`'s, else through the injector (or a worker's timers for `at`).
fn place(rt: &Arc<RuntimeInner>, task: HeaderRef, at: Option<Instant>) {
    let mut task = Some(task);
    Driver::with(|d| {
        if Arc::ptr_eq(&d.rt, rt) {
            let t = task.take().expect("placed once");
            match at {
                Some(at) => d.spawn_at(t, at),
                None => d.spawn(t),
            }
        }
    });
    if let Some(t) = task {
        match at {
            Some(at) => rt.some_worker().push_remote(Remote::SpawnLater(t, at)),
            None => rt.inject(t),
        }
    }
}

/// Queues an unstarted greenlet on the next worker of `rt` in turn, to start
/// there: not in its stealable deque, or an idle worker could take it back
/// and undo the spreading.
fn spread_over(rt: &Arc<RuntimeInner>, task: HeaderRef) {
    let worker = rt.some_worker();
    let mut task = Some(task);
    Driver::with(|d| {
        if Arc::ptr_eq(&d.shared, worker) {
            d.spawn_local(task.take().expect("placed once"));
        }
    });
    if let Some(t) = task {
        worker.push_remote(Remote::Spawn(t));
    }
}

/// Spawns `f` as a greenlet on the current runtime (or the default runtime
/// outside any) and returns its handle.
///
/// ```
/// let g = greenlet::spawn(|| 2 + 2);
/// assert_eq!(g.get(), Ok(&4));
/// ```
///
/// # Panics
/// If no stack can be had; see [`try_spawn`].
pub fn spawn<T, F>(f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    GreenletBuilder::new().spawn(f)
}

/// [`spawn`], returning allocation failures as errors.
pub fn try_spawn<T, F>(f: F) -> Result<Greenlet<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    GreenletBuilder::new().try_spawn(f)
}

/// Spawns `f` on the current worker; it never moves, so it need not be
/// `Send`. Must be called from a greenlet of a runtime.
///
/// ```
/// use std::rc::Rc;
///
/// greenlet::run(|| {
///     let shared = Rc::new(5);
///     let s = shared.clone();
///     let g = greenlet::spawn_local(move || *s + 1);
///     assert_eq!(g.get(), Ok(&6));
/// });
/// ```
pub fn spawn_local<T, F>(f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    GreenletBuilder::new().spawn_local(f)
}

/// Spawns `f` to start after `delay` (gevent's `spawn_later`).
pub fn spawn_later<T, F>(delay: Duration, f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    GreenletBuilder::new().spawn_later(delay, f)
}
