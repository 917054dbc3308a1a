//! The hub: one per worker thread, running greenlets, timers and I/O.
//!
//! # Design
//!
//! Each worker thread owns a [`Driver`] (the part that loops and blocks) and
//! shares a [`Shared`] handle (what other threads use to wake it), as tokio
//! splits its drivers and handles.
//!
//! The driver's native stack is the thread's root greenlet: it picks a
//! runnable greenlet and switches to it (`run_from_root`), which returns when
//! that greenlet (or one it switched to) switches back to the root, by
//! parking, yielding or ending.
//!
//! Most of the time the loop is skipped: a greenlet that parks, yields or
//! ends takes the next entry itself, with the loop's policy, and switches
//! straight to it ([`Driver::next_after_suspend`]); the loop gets control
//! back when it is due to look at events (every [`EVENT_INTERVAL`]th
//! entry), when nothing is runnable, or to start a new greenlet for a
//! greenlet that parks or yields.
//!
//! ## Queues
//!
//! - `ready`: woken greenlets (started ones: they never leave this thread),
//!   in the order they were woken.
//! - `lifo`: one slot for the greenlet woken last, run next (a message
//!   ping-pong then costs no queue round trip). It gives way to `ready`
//!   after a few turns so nothing starves.
//! - `fresh`: new work in spawn order: `Start` entries are `spawn_local`
//!   greenlets, `Stealable(n)` entries stand for `n` greenlets spawned in a
//!   row into the work-stealing deque (one entry, counted up, rather than
//!   one per spawn: a burst of spawns whose greenlets other workers steal
//!   would otherwise leave as many entries to write now and find empty
//!   later), and `Run` entries are greenlets that called
//!   `yield_now`, which so go behind everything runnable now. Woken
//!   greenlets come first, so a wake-up is not stuck behind a burst of
//!   spawns (the cause of a long timer-lateness tail), but `fresh` gets every
//!   [`FRESH_INTERVAL`]th turn, so a stream of wake-ups cannot starve it.
//! - `deque`: unstarted `spawn` greenlets, which idle workers may steal
//!   (crossbeam-deque: `Worker` here, `Stealer`s in the runtime, plus the
//!   runtime's global `Injector` for spawns from plain threads).
//! - `Shared::woken` and `Shared::remote`: wake-ups (a list linked through
//!   the greenlets' headers) and other work sent from other threads, with a
//!   mio `Waker` to interrupt `epoll_wait`. The waker is only poked when the
//!   worker announced that it is going to sleep, so a busy worker is never
//!   sent a syscall.
//!
//! ## Idling
//!
//! A worker with nothing to do registers as idle, re-checks every source, and
//! blocks in `epoll_wait` until the next timer (rung by a `timerfd`, see
//! [`alarm`], since `epoll_wait` counts in whole milliseconds), I/O, or a
//! wake. A spawn wakes
//! one idle worker if none is already looking for work. There is no polling
//! tick.
//!
//! ## Shutdown
//!
//! On `Remote::Shutdown` a worker cancels its unstarted greenlets, kills its
//! started ones and the raw greenlets parked on it (each unwinds at its
//! switch point; one suspended in a raw switch is resumed to do so, see
//! `Remote::Poke`) and keeps running until none of its started ones is
//! left; it exits once every worker of the runtime got there, so a greenlet
//! unwinding on one worker can still wake another.

mod alarm;
pub(crate) mod deadlock;
mod live;
pub(crate) mod park;
pub(crate) mod pin;
mod ring;
pub(crate) mod timer;

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use crate::greenlet::header::{Header, HeaderRef, INTERRUPT_KILL, Msg};
use crate::greenlet::switch::run_from_root;
use crate::runtime::RuntimeInner;

use alarm::{ALARM, Alarm};
use ring::Ring;

pub(crate) use park::{interrupt, unpark};
use timer::{Action, Timers};

/// How many greenlets run between two looks at timers, wake-ups and I/O.
const EVENT_INTERVAL: u32 = 61;
/// How long an idle worker watches for work before it sleeps in `epoll_wait`.
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(20);
/// Work another thread sends within this of a worker going to sleep counts
/// as a quick answer (what turns the spin before sleeping on).
const QUICK_ANSWER: Duration = Duration::from_micros(100);
/// `fresh` is served first once every this many turns.
const FRESH_INTERVAL: u8 = 16;
/// How many times in a row the LIFO slot may jump the queue.
const LIFO_STREAK: u8 = 3;
const WAKER: mio::Token = mio::Token(usize::MAX);

/// Work sent to a worker from other threads (wake-ups go through
/// [`Shared::push_woken`]).
pub(crate) enum Remote {
    /// The `epoll` registration of a closed fd: drop it after the current
    /// event batch.
    Release(Arc<crate::io::Shared>),
    /// Start this `spawn_later` greenlet at the deadline.
    SpawnLater(HeaderRef, Instant),
    /// Start this unstarted greenlet here, where no other worker steals it
    /// (`GreenletBuilder::spread`).
    Spawn(HeaderRef),
    /// The runtime is shutting down.
    Shutdown,
    /// This greenlet of the worker was interrupted while not parked: resume
    /// it if it is suspended in a raw switch.
    Poke(HeaderRef),
}

/// What other threads hold of a worker.
pub(crate) struct Shared {
    pub(crate) index: usize,
    remote: Injector<Remote>,
    /// Greenlets of this worker unparked by other threads: a stack linked
    /// through their headers (`woken_next`), each holding a counted
    /// reference, taken whole by the worker. A greenlet is in it at most
    /// once: only the unpark that moves it out of `PARKED` sends it, and it
    /// cannot park again before its worker took it. A `Shared` is never
    /// dropped with wake-ups in it: its thread holds it until every
    /// greenlet it started has ended, and the waker of each asked for the
    /// worker (`pin::WorkerPin::get`), so the greenlet's cell pins it from
    /// its end on. One never taken would keep both alive, as a message left
    /// in the `Injector` would. Pushing is one compare-and-swap on this
    /// word; crossbeam's `Injector` (which carries the rarer messages)
    /// touches its tail index and a slot in a block it allocates every 63
    /// messages.
    woken: AtomicPtr<Header>,
    waker: mio::Waker,
    /// The worker is (about to be) blocked in `epoll_wait`.
    sleeping: AtomicBool,
    /// When another thread last woke the worker from a sleep ([`ticks`]).
    notified_at: AtomicU64,
    pub(crate) stealer: Stealer<HeaderRef>,
    /// This worker's `epoll` registry (usable from any thread).
    pub(crate) registry: mio::Registry,
    /// Fds registered here, and waiters parked on them (wherever they run).
    pub(crate) io_registered: std::sync::atomic::AtomicUsize,
    pub(crate) io_waiters: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// Sends work to the worker, waking it if it sleeps.
    pub(crate) fn push_remote(&self, r: Remote) {
        self.remote.push(r);
        self.notify();
    }

    /// Queues `g`, a greenlet of this worker that another thread just
    /// moved out of `PARKED`, and wakes the worker if it sleeps.
    pub(crate) fn push_woken(&self, g: HeaderRef) {
        let p = g.into_raw().as_ptr();
        let mut head = self.woken.load(Ordering::Relaxed);
        loop {
            // SAFETY: we hold the reference the list will own; the greenlet
            // is in no other wake list (see `woken`).
            unsafe { (*p).woken_next.store(head, Ordering::Relaxed) };
            match self
                .woken
                .compare_exchange_weak(head, p, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        self.notify();
    }

    /// Takes the woken greenlets and hands them to `f`, oldest first;
    /// returns how many there were.
    fn take_woken(&self, mut f: impl FnMut(HeaderRef)) -> usize {
        let mut p = self.woken.swap(std::ptr::null_mut(), Ordering::Acquire);
        // The swap handed us the list, each node with the counted reference
        // its pusher gave up; nobody else touches the links now. Reverse it
        // in place (it was pushed newest first).
        let mut oldest = std::ptr::null_mut::<Header>();
        while !p.is_null() {
            // SAFETY: a node of our list, alive (we hold its reference).
            let next = unsafe { (*p).woken_next.swap(oldest, Ordering::Relaxed) };
            oldest = p;
            p = next;
        }
        let mut n = 0;
        while let Some(g) = NonNull::new(oldest) {
            // SAFETY: as above; the link is read before the reference goes
            // to `f`.
            unsafe {
                oldest = g.as_ref().woken_next.load(Ordering::Relaxed);
                f(HeaderRef::from_raw(g));
            }
            n += 1;
        }
        n
    }

    /// Whether anything was sent to the worker.
    #[inline(always)]
    fn has_mail(&self) -> bool {
        !self.woken.load(Ordering::Relaxed).is_null() || !self.remote.is_empty()
    }

    /// Still asleep with nothing sent to it (for the deadlock detector).
    pub(crate) fn is_quiet(&self) -> bool {
        self.sleeping.load(Ordering::SeqCst)
            && self.woken.load(Ordering::SeqCst).is_null()
            && self.remote.is_empty()
            && self.io_waiters.load(Ordering::SeqCst) == 0
    }

    /// Wakes the worker if it sleeps (it then looks at every source).
    pub(crate) fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) && self.sleeping.swap(false, Ordering::SeqCst) {
            self.notified_at
                .store(ticks(Instant::now()), Ordering::Relaxed);
            let _ = self.waker.wake();
        }
    }
}

/// Whether a sleep that began at `slept` (in [`ticks`]) was ended by work
/// from another thread (`sent` items) that it notified us of (at
/// `notified`, 0 if nobody did) within [`QUICK_ANSWER`].
fn answered_quickly(sent: usize, notified: u64, slept: u64) -> bool {
    sent > 0 && notified != 0 && notified.saturating_sub(slept) < QUICK_ANSWER.as_nanos() as u64
}

/// Nanoseconds from the first call in the process to `t`: an instant other
/// threads can store in an atomic.
fn ticks(t: Instant) -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    t.saturating_duration_since(base).as_nanos() as u64
}

/// An entry of the local run queue.
pub(crate) enum Entry {
    /// Resume a started greenlet of this worker.
    Run(NonNull<Header>),
    /// Start a greenlet that must stay on this worker.
    Start(HeaderRef),
    /// Start the next greenlet of the stealable deque, if any is left, and
    /// this many less one after it (before anything else of `fresh`).
    Stealable(usize),
}

/// The parts of a worker that are made on the builder thread and moved in.
pub(crate) struct Parts {
    pub(crate) poll: mio::Poll,
    pub(crate) deque: Worker<HeaderRef>,
    alarm: Alarm,
}

/// Makes the shared and owned halves of a worker.
pub(crate) fn new_worker(index: usize) -> std::io::Result<(Shared, Parts)> {
    let poll = mio::Poll::new()?;
    let waker = mio::Waker::new(poll.registry(), WAKER)?;
    let alarm = Alarm::new(poll.registry())?;
    let deque = Worker::new_fifo();
    let shared = Shared {
        index,
        remote: Injector::new(),
        woken: AtomicPtr::new(std::ptr::null_mut()),
        waker,
        sleeping: AtomicBool::new(false),
        notified_at: AtomicU64::new(0),
        stealer: deque.stealer(),
        registry: poll.registry().try_clone()?,
        io_registered: Default::default(),
        io_waiters: Default::default(),
    };
    Ok((shared, Parts { poll, deque, alarm }))
}

/// Binds a raw greenlet made on a worker thread to that worker's hub, so it
/// can park there (sleep, join) like a spawned one.
pub(crate) fn adopt_raw(h: &Header) {
    Driver::with(|d| {
        // SAFETY: `d.shared` is a live `Arc`; the greenlet is new, not yet
        // shared with another thread.
        unsafe { h.worker.adopt(&h.life, Arc::as_ptr(&d.shared)) };
    });
}

/// A greenlet to switch to from one that suspends (see
/// [`Driver::next_after_suspend`]).
pub(crate) enum Next {
    /// A parked greenlet, woken: resume it with `Msg::Wake`.
    Resume(NonNull<Header>),
    /// A greenlet made ready to start: start it with `Msg::Value`.
    Start(NonNull<Header>),
}

impl Next {
    /// The greenlet to switch to, and the message it expects.
    pub(crate) fn target(self) -> (*const Header, Msg) {
        match self {
            Next::Resume(g) => (g.as_ptr().cast_const(), Msg::Wake),
            Next::Start(g) => (g.as_ptr().cast_const(), Msg::Value),
        }
    }
}

/// The worker-local hub. Lives on the worker thread's native stack while the
/// worker runs; reached through the `DRIVER` thread-local.
pub(crate) struct Driver {
    pub(crate) shared: Arc<Shared>,
    pub(crate) rt: Arc<RuntimeInner>,
    ready: Ring<NonNull<Header>>,
    fresh: Ring<Entry>,
    fresh_turn: Cell<u8>,
    lifo: Cell<Option<NonNull<Header>>>,
    lifo_streak: Cell<u8>,
    /// An entry a suspending greenlet took from the queues for the loop
    /// to run (see [`Driver::next_after_suspend`]).
    picked: Cell<Option<Entry>>,
    /// Entries left to run before the loop looks at events again.
    until_events: Cell<u32>,
    deque: Worker<HeaderRef>,
    pub(crate) timers: RefCell<Timers>,
    poll: RefCell<mio::Poll>,
    events: RefCell<mio::Events>,
    /// Ends a sleep at the next timer, to the microsecond.
    alarm: Alarm,
    /// Started greenlets of this worker that have not ended.
    live: RefCell<live::LiveSet>,
    /// Raw greenlets parked here (killed at shutdown like `live` ones).
    parked_raw: RefCell<Vec<NonNull<Header>>>,
    shutting_down: Cell<bool>,
    /// Counted as drained by the runtime (during shutdown).
    drained: Cell<bool>,
    /// Recent sleeps ended fast by work from other threads (0: none).
    quick_answers: Cell<u8>,
}

thread_local! {
    static DRIVER: Cell<*const Driver> = const { Cell::new(std::ptr::null()) };
}

impl Driver {
    /// This thread's driver, or null if this is not a worker thread. It
    /// lives while `Driver::run` runs, which outlives every greenlet of the
    /// worker.
    #[inline(always)]
    pub(crate) fn current() -> *const Driver {
        DRIVER.with(|d| d.get())
    }

    /// Runs `f` with this thread's driver, if this is a worker thread.
    #[inline(always)]
    pub(crate) fn with<R>(f: impl FnOnce(&Driver) -> R) -> Option<R> {
        let p = DRIVER.with(|d| d.get());
        if p.is_null() {
            None
        } else {
            // SAFETY: DRIVER is set only while `Driver::run` runs on this
            // thread, with `p` pointing at its live driver.
            Some(f(unsafe { &*p }))
        }
    }

    /// Runs `f` with the runtime of this worker thread, or with the
    /// default runtime on any other thread. Lends the worker's `Arc`
    /// rather than cloning it: a spawn would otherwise pay two atomic
    /// read-modify-writes on its count.
    #[inline]
    pub(crate) fn with_runtime<R>(f: impl FnOnce(&Arc<RuntimeInner>) -> R) -> R {
        let p = DRIVER.with(|d| d.get());
        if p.is_null() {
            f(crate::runtime::default_runtime())
        } else {
            // SAFETY: as in `with`: the driver lives while `Driver::run`
            // runs on this thread, which outlasts anything a greenlet of it
            // does.
            f(unsafe { &(*p).rt })
        }
    }

    #[inline(always)]
    pub(crate) fn is_worker_thread() -> bool {
        !DRIVER.with(|d| d.get()).is_null()
    }

    pub(crate) fn new(shared: Arc<Shared>, rt: Arc<RuntimeInner>, parts: Parts) -> Self {
        Driver {
            shared,
            rt,
            ready: Ring::new(),
            fresh: Ring::new(),
            fresh_turn: Cell::new(0),
            lifo: Cell::new(None),
            lifo_streak: Cell::new(0),
            picked: Cell::new(None),
            until_events: Cell::new(EVENT_INTERVAL),
            deque: parts.deque,
            timers: RefCell::new(Timers::new()),
            poll: RefCell::new(parts.poll),
            events: RefCell::new(mio::Events::with_capacity(256)),
            alarm: parts.alarm,
            live: RefCell::new(live::LiveSet::default()),
            parked_raw: RefCell::new(Vec::new()),
            shutting_down: Cell::new(false),
            drained: Cell::new(false),
            quick_answers: Cell::new(0),
        }
    }

    /// Queues a greenlet of this worker that was just woken.
    pub(crate) fn wake_local(&self, g: &Header) {
        if let Some(prev) = self.lifo.replace(Some(NonNull::from(g))) {
            self.ready.push_back(prev);
        }
    }

    /// Queues a greenlet that yields, behind everything runnable now.
    pub(crate) fn push_yielded(&self, g: NonNull<Header>) {
        self.fresh.push_back(Entry::Run(g));
    }

    /// Queues the running greenlet `g` behind everything runnable now
    /// (`yield_now`) and picks what runs next, as
    /// [`next_after_suspend`](Self::next_after_suspend).
    ///
    /// # Safety
    /// `g` is the running greenlet, about to suspend.
    #[inline(always)]
    pub(crate) unsafe fn yield_turn(&self, g: NonNull<Header>) -> Option<Next> {
        let n = self.until_events.get();
        if n > 1 && self.lifo.get().is_none() && self.ready.is_empty() {
            // Nothing woken waits and events are not due: what runs next is
            // the first of `fresh` (`g` itself if `fresh` is empty), and
            // `g` goes last, as `next_entry` would have it.
            let first = match self.fresh.rotate(Entry::Run(g)) {
                Ok(Entry::Run(h)) => h,
                Err(e) => {
                    // `Entry::Run(g)` back: nothing to drop.
                    std::mem::forget(e);
                    g
                }
                Ok(other) => {
                    // An unstarted greenlet: the loop starts it.
                    self.fresh.push_front(other);
                    return self.next_after_yield();
                }
            };
            self.until_events.set(n - 1);
            self.lifo_streak.set(0);
            // `fresh` had its turn.
            self.fresh_turn.set(0);
            return Some(Next::Resume(first));
        }
        self.push_yielded(g);
        self.next_after_yield()
    }

    /// [`yield_turn`](Self::yield_turn) the long way, out of line so that
    /// the short way stays small enough to inline.
    #[inline(never)]
    fn next_after_yield(&self) -> Option<Next> {
        self.next_after_suspend(false)
    }

    /// Queues an unstarted greenlet that any worker may run.
    pub(crate) fn spawn(&self, task: HeaderRef) {
        if self.shutting_down.get() {
            crate::spawn::cancel(task);
            return;
        }
        self.deque.push(task);
        let counted = self.fresh.update_back(|last| match last {
            Entry::Stealable(n) if *n < usize::MAX => {
                *n += 1;
                true
            }
            _ => false,
        });
        if !counted {
            self.fresh.push_back(Entry::Stealable(1));
        }
        self.rt.notify_idle();
    }

    /// Queues an unstarted greenlet that must run on this worker.
    pub(crate) fn spawn_local(&self, task: HeaderRef) {
        if self.shutting_down.get() {
            crate::spawn::cancel(task);
            return;
        }
        self.fresh.push_back(Entry::Start(task));
    }

    /// Starts `task` at `deadline` (on this worker's timers).
    pub(crate) fn spawn_at(&self, task: HeaderRef, deadline: Instant) {
        if self.shutting_down.get() {
            crate::spawn::cancel(task);
            return;
        }
        // Never cancelled: a kill claims the greenlet and the timer then
        // finds it claimed.
        self.timers.borrow_mut().add(deadline, Action::Spawn(task));
    }

    /// The main loop. Returns when the runtime has shut down.
    pub(crate) fn run(&self) {
        DRIVER.with(|d| d.set(self));
        crate::greenlet::switch::root_ptr();
        deadlock::worker_started();
        loop {
            while let Some(e) = self.picked.take().or_else(|| self.next_entry()) {
                self.run_entry(e);
                let n = self.until_events.get() - 1;
                if n == 0 {
                    self.until_events.set(EVENT_INTERVAL);
                    self.maintain();
                } else {
                    self.until_events.set(n);
                }
            }
            if self.shutting_down.get() && self.shutdown_done() {
                break;
            }
            if let Some(task) = self.steal() {
                self.start(task);
                continue;
            }
            self.idle();
        }
        deadlock::worker_stopped();
        DRIVER.with(|d| d.set(std::ptr::null()));
    }

    /// What runs after the running greenlet suspends (parks, yields or,
    /// with `ending`, ends): the next entry in the loop's order, for the
    /// suspending one to switch to directly, sparing a switch through the
    /// loop. `None` when the loop is due to look at events or has nothing
    /// to run: then the greenlet switches to the loop.
    ///
    /// Only an ending greenlet starts a new one: that takes a stack and may
    /// map a slab, which a greenlet that parks, perhaps deep in its own
    /// stack, should not have to make room for. Otherwise an unstarted
    /// entry is kept in `picked` for the loop.
    #[inline(always)]
    pub(crate) fn next_after_suspend(&self, ending: bool) -> Option<Next> {
        let n = self.until_events.get();
        if n <= 1 {
            return None;
        }
        let e = self.next_entry()?;
        self.until_events.set(n - 1);
        match e {
            Entry::Run(g) => Some(Next::Resume(g)),
            Entry::Start(task) if ending => self.begin(task).map(Next::Start),
            Entry::Stealable(n) if ending => self
                .pop_stealable(n)
                .and_then(|t| self.begin(t))
                .map(Next::Start),
            e => {
                self.picked.set(Some(e));
                None
            }
        }
    }

    #[inline(always)]
    fn next_entry(&self) -> Option<Entry> {
        if let Some(g) = self.lifo.get() {
            self.lifo.set(None);
            let streak = self.lifo_streak.get();
            if streak < LIFO_STREAK {
                self.lifo_streak.set(streak + 1);
                return Some(Entry::Run(g));
            }
            self.ready.push_back(g);
        }
        self.lifo_streak.set(0);
        let turn = self.fresh_turn.get() + 1;
        if turn >= FRESH_INTERVAL {
            self.fresh_turn.set(0);
            if let Some(e) = self.fresh.pop_front() {
                return Some(e);
            }
        } else {
            self.fresh_turn.set(turn);
        }
        if let Some(g) = self.ready.pop_front() {
            return Some(Entry::Run(g));
        }
        match self.fresh.pop_front() {
            Some(e) => Some(e),
            None => self.deque.pop().map(Entry::Start),
        }
    }

    #[inline(always)]
    fn run_entry(&self, e: Entry) {
        match e {
            Entry::Run(g) => {
                // SAFETY: a queued greenlet is started, of this worker, and
                // alive (it holds itself until it ends).
                let msg = unsafe { run_from_root(g.as_ptr(), Msg::Wake) };
                self.stray(msg);
            }
            Entry::Start(task) => self.start(task),
            Entry::Stealable(n) => {
                if let Some(task) = self.pop_stealable(n) {
                    self.start(task);
                }
            }
        }
    }

    /// Takes the next unstarted greenlet of the deque for an entry standing
    /// for `n` of them, putting the rest of the entry back in front. With
    /// the deque empty, the rest were all stolen: the entry goes.
    #[inline(always)]
    fn pop_stealable(&self, n: usize) -> Option<HeaderRef> {
        let task = self.deque.pop()?;
        if n > 1 {
            self.fresh.push_front(Entry::Stealable(n - 1));
        }
        Some(task)
    }

    /// Starts an unstarted greenlet on this worker and runs it.
    fn start(&self, task: HeaderRef) {
        if let Some(g) = self.begin(task) {
            // SAFETY: `g` was just started here; it holds itself until it
            // ends.
            let msg = unsafe { run_from_root(g.as_ptr(), Msg::Value) };
            self.stray(msg);
        }
    }

    /// Makes an unstarted greenlet ready to run on this worker (its stack,
    /// its slot in the live set); `None` if it may not run (killed, or
    /// no stack). The first switch to it, with `Msg::Value`, starts it.
    fn begin(&self, task: HeaderRef) -> Option<NonNull<Header>> {
        if !crate::spawn::claim_start(&task) {
            crate::spawn::release_unclaimed(task);
            return None;
        }
        if self.shutting_down.get() {
            // It may not start any more; `claim_start` made it ours.
            crate::spawn::abort_claimed(task);
            return None;
        }
        task.bind_to_current_thread();
        // SAFETY: on this worker's thread, which holds `self.shared` until
        // every greenlet it started has ended: it runs until its live set is
        // empty, and one that unwinds never gives it back (the runtime's
        // `KeepIfUnwinding`).
        unsafe { task.worker.set(Arc::as_ptr(&self.shared)) };
        let g = task.non_null();
        // SAFETY: claimed, unstarted, on the thread that will run it.
        if !unsafe { (task.vtable.start)(task) } {
            return None;
        }
        let at = self.live.borrow_mut().insert(g);
        // SAFETY: `g` is alive (it holds itself), ours, and started, so it
        // has its record.
        unsafe { g.as_ref().running() }.live_index.set(at);
        Some(g)
    }

    /// Called by a spawned greenlet's body when it ends.
    ///
    /// # Safety
    /// `g` is the running greenlet, a spawned one of this worker.
    pub(crate) unsafe fn forget_live(&self, g: &Header) {
        // SAFETY: `g` runs (it is ending), so it has its record.
        let at = unsafe { g.running() }.live_index.replace(usize::MAX);
        self.live.borrow_mut().remove(NonNull::from(g), at);
    }

    /// A raw greenlet of this worker is about to park. Once shutdown has
    /// begun it is killed at once (unless it is already unwinding): the
    /// hub's kill went out before it parked.
    ///
    /// # Safety
    /// `g` is the running greenlet.
    pub(crate) unsafe fn enter_parked_raw(&self, g: &Header) {
        self.parked_raw.borrow_mut().push(NonNull::from(g));
        // SAFETY: `g` runs, so it has its record.
        if self.shutting_down.get() && !unsafe { g.running() }.unwinding.get() {
            interrupt(g, INTERRUPT_KILL);
        }
    }

    /// The raw greenlet `g` has stopped parking.
    pub(crate) fn leave_parked_raw(&self, g: &Header) {
        let mut list = self.parked_raw.borrow_mut();
        if let Some(at) = list.iter().position(|p| std::ptr::eq(p.as_ptr(), g)) {
            list.swap_remove(at);
        }
    }

    /// Handles what reached the root without being asked for: a raw
    /// greenlet's result or panic whose parents were all gone.
    #[inline(always)]
    pub(crate) fn stray(&self, msg: Msg) {
        if let Msg::Unwind(_) = msg {
            self.stray_unwind(msg);
        }
    }

    #[cold]
    fn stray_unwind(&self, msg: Msg) {
        if let Msg::Unwind(p) = msg {
            let text = crate::spawn::panic_message(&p);
            eprintln!("greenlet: a result reached the hub with nowhere to go: {text}");
        }
    }

    /// Between two turns: looks at wake-ups, timers and I/O, without waiting
    /// (the clock is read only if a timer is pending).
    fn maintain(&self) {
        self.drain_remote();
        self.fire_timers();
        if self.shared.io_registered.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.poll_io(Some(Duration::ZERO));
        self.drain_remote();
        self.fire_timers();
    }

    fn poll_io(&self, mut timeout: Option<Duration>) {
        if let Some(t) = timeout.filter(|t| !t.is_zero()) {
            // epoll's own timeout is whole milliseconds, rounded up: the
            // alarm ends the sleep on time, epoll's timeout is the backstop.
            self.alarm.arm(t);
            timeout = Some(t.saturating_add(Duration::from_millis(1)));
        }
        let mut events = self.events.borrow_mut();
        if let Err(e) = self.poll.borrow_mut().poll(&mut events, timeout)
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            panic!("greenlet hub: epoll_wait failed: {e}");
        }
        for ev in events.iter() {
            if ev.token() == WAKER {
                continue;
            }
            if ev.token() == ALARM {
                self.alarm.clear();
                continue;
            }
            let io = ev.token().0 as *const crate::io::Shared;
            // SAFETY: I/O tokens are `Arc::into_raw` of a source's state,
            // whose registration reference is released only on this thread
            // and never during this loop.
            unsafe { (*io).on_event(ev) };
        }
        events.clear();
    }

    /// Handles everything other threads sent; how many items there were.
    fn drain_remote(&self) -> usize {
        let mut n = 0;
        if !self.shared.woken.load(Ordering::Relaxed).is_null() {
            // The waker already moved each to RUNNING: it is ours to queue
            // (and alive while queued: it holds itself).
            n += self
                .shared
                .take_woken(|g| self.ready.push_back(g.non_null()));
        }
        loop {
            match self.shared.remote.steal() {
                Steal::Success(r) => {
                    n += 1;
                    self.on_remote(r);
                }
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
        n
    }

    fn on_remote(&self, r: Remote) {
        match r {
            Remote::Release(io) => drop(io),
            Remote::SpawnLater(task, at) => self.spawn_at(task, at),
            Remote::Spawn(task) => self.spawn_local(task),
            Remote::Shutdown => self.begin_shutdown(),
            Remote::Poke(g) => park::deliver_poke(&g),
        }
    }

    fn fire_timers(&self) {
        if self.timers.borrow().len() == 0 {
            return;
        }
        let now = Instant::now();
        loop {
            let action = self.timers.borrow_mut().pop_due(now);
            match action {
                None => break,
                // SAFETY: timer actions on greenlets are cancelled before
                // those greenlets move on, so `g` is alive and parked here.
                Some(Action::Wake(g)) => unpark(unsafe { g.as_ref() }),
                Some(Action::Timeout(g, id)) => {
                    // SAFETY: as above.
                    let h = unsafe { g.as_ref() };
                    // SAFETY: a greenlet inside `with_timeout` is started
                    // and of this thread, so it has its record.
                    unsafe { h.fire_timeout(id) };
                    unpark(h);
                }
                Some(Action::Spawn(task)) => self.spawn(task),
            }
        }
    }

    /// Steals unstarted greenlets from the injector or another worker.
    fn steal(&self) -> Option<HeaderRef> {
        if self.shutting_down.get() {
            return None;
        }
        let rt = &self.rt;
        loop {
            let mut retry = false;
            match rt.injector.steal_batch_and_pop(&self.deque) {
                Steal::Success(t) => return Some(t),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            let n = rt.workers.len();
            for i in 1..n {
                let other = &rt.workers[(self.shared.index + i) % n];
                match other.stealer.steal_batch_and_pop(&self.deque) {
                    Steal::Success(t) => return Some(t),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    fn has_local_work(&self) -> bool {
        self.lifo.get().is_some()
            || !self.ready.is_empty()
            || !self.fresh.is_empty()
            || !self.deque.is_empty()
    }

    /// Nothing to run: sleep until a timer, I/O or a wake.
    fn idle(&self) {
        if self.spin_for_work() {
            return;
        }
        // Memory kept for spawns to come, unused for a whole period, goes
        // back (see `stack` and `spawn::cache`).
        if crate::stack::trim_idle() {
            crate::spawn::cache::trim_now();
        }
        let rt = &self.rt;
        rt.enter_idle(self.shared.index);
        let slept = Instant::now();
        self.shared.notified_at.store(0, Ordering::Relaxed);
        self.shared.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // Everything that can end this sleep must be looked at after
        // `sleeping` is set, or a wake sent just before could be missed.
        let work_waiting = self.shared.has_mail()
            || self.has_local_work()
            || if self.shutting_down.get() {
                rt.all_drained()
            } else {
                rt.has_stealable()
            };
        if !work_waiting {
            let now = slept;
            self.fire_timers();
            if !self.has_local_work() {
                let timeout = self.timers.borrow_mut().next_timeout(now);
                let quiet = timeout.is_none() && self.shared.io_waiters.load(Ordering::SeqCst) == 0;
                if quiet {
                    deadlock::enter_quiescent(&self.shared);
                }
                // The deadlock check may just have woken a greenlet of ours.
                if !self.has_local_work() {
                    self.poll_io(timeout);
                }
                if quiet {
                    deadlock::leave_quiescent(&self.shared);
                }
            }
        }
        self.shared.sleeping.store(false, Ordering::SeqCst);
        rt.leave_idle(self.shared.index);
        let sent = self.drain_remote();
        // Learn whether other workers answer fast (see `spin_for_work`):
        // by when they sent the work that ended the sleep, not by when the
        // sleep ended, which adds the time the OS took to wake us (tens to
        // hundreds of microseconds in a VM): measured by the wake-up, an
        // answer would never count as fast once the worker slept.
        let notified = self.shared.notified_at.load(Ordering::Relaxed);
        let quick = answered_quickly(sent, notified, ticks(slept));
        self.quick_answers.set(if quick {
            (self.quick_answers.get() + 1).min(8)
        } else {
            0
        });
        self.fire_timers();
    }

    /// Before sleeping, watches the remote queue and the other workers'
    /// deques for a few microseconds: a greenlet on another worker often
    /// answers that fast (a message ping-pong), and catching the answer here
    /// spares both sides the `eventfd` write and the `epoll_wait` return.
    /// Only when the last sleep was ended that fast by work sent from
    /// another thread: such a conversation is likely to go on, while a
    /// worker that waits on I/O or timers gains nothing by spinning and
    /// takes CPU from the threads that will produce its work. At most 20 µs
    /// of CPU per sleep: the price of answering a cross-worker message in
    /// about a microsecond instead of five. True if work came.
    fn spin_for_work(&self) -> bool {
        if self.shutting_down.get() || self.rt.workers.len() == 1 || self.quick_answers.get() == 0 {
            return false;
        }
        let until = Instant::now() + SPIN_BEFORE_SLEEP;
        loop {
            for _ in 0..64 {
                if self.shared.has_mail() || self.rt.has_stealable() {
                    self.drain_remote();
                    return true;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= until {
                return false;
            }
        }
    }

    fn begin_shutdown(&self) {
        if self.shutting_down.replace(true) {
            return;
        }
        // Unstarted greenlets never run.
        while let Some(task) = self.deque.pop() {
            crate::spawn::cancel(task);
        }
        let entries: Vec<Entry> = std::iter::from_fn(|| self.fresh.pop_front()).collect();
        for e in entries {
            match e {
                Entry::Start(task) => crate::spawn::cancel(task),
                Entry::Run(g) => self.ready.push_back(g),
                Entry::Stealable(_) => {}
            }
        }
        let pending = self.timers.borrow_mut().drain();
        for action in pending {
            match action {
                Action::Spawn(task) => crate::spawn::cancel(task),
                // SAFETY: as in `fire_timers`: the greenlet is alive; waking
                // it early is harmless (it re-checks) and it is about to be
                // killed anyway.
                Action::Wake(g) | Action::Timeout(g, _) => unpark(unsafe { g.as_ref() }),
            }
        }
        // Started greenlets are killed, each at its next switch point; so
        // are raw greenlets parked here (they would hold up a spawned one
        // suspended in a switch to them).
        let mut live: Vec<NonNull<Header>> = self.live.borrow().to_vec();
        live.extend(self.parked_raw.borrow().iter().copied());
        for g in live {
            // SAFETY: live greenlets are alive (they hold themselves).
            interrupt(unsafe { g.as_ref() }, INTERRUPT_KILL);
        }
    }

    /// During shutdown: true once this worker and every other one have no
    /// greenlet left.
    fn shutdown_done(&self) -> bool {
        if !self.drained.get() && self.live.borrow().is_empty() {
            self.drained.set(true);
            self.rt.worker_drained();
        }
        self.rt.all_drained()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_answer_counts_however_late_the_wake_up_came() {
        let slept = ticks(Instant::now());
        let us = |n: u64| n * 1_000;
        // Sent 30 µs into the sleep: quick, though the worker may have
        // woken much later (that is the OS's time, not the answer's).
        assert!(answered_quickly(1, slept + us(30), slept));
        // Sent before the sleep began (a racing notify): quick.
        assert!(answered_quickly(
            1,
            slept.saturating_sub(us(1)).max(1),
            slept
        ));
        // Sent 500 µs in: a slow conversation, not worth spinning for.
        assert!(!answered_quickly(1, slept + us(500), slept));
        // Ended by I/O or a timer (nobody notified), or with nothing sent.
        assert!(!answered_quickly(1, 0, slept));
        assert!(!answered_quickly(0, slept + us(30), slept));
    }
}
