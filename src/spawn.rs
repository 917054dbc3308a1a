//! Spawned greenlets: `spawn` and friends, and the `Greenlet<T>` handle.
//!
//! # The cell
//!
//! A spawned greenlet is one allocation, a `TaskCell<T, F>`: the header, the
//! list of links (who to tell when it ends), the result slot, and the closure
//! until it starts. `Greenlet<T>` handles and the hub's queues hold counted
//! references to it.
//!
//! # Lifecycle (`Header::life`)
//!
//! ```text
//!   UNSTARTED --claim--> STARTED --complete--> DONE
//! ```
//!
//! Whoever wins the claim owns the start: a worker starts the greenlet, while
//! a killer (or a shutting-down worker) that wins it cancels the greenlet,
//! which then never runs. `LINKED` is set while links wait; completing swaps
//! in `DONE` and, if `LINKED` was set, fires the links under the list's lock,
//! so a link added concurrently is either fired by the completer or sees
//! `DONE` and fires itself. The result is written before `DONE` (release) and
//! read only after seeing `DONE` (acquire), and never changes after.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corosensei::Coroutine;

use crate::greenlet::GreenletExit;
use crate::greenlet::header::{
    GYielder, Header, HeaderRef, INTERRUPT_KILL, Kind, Msg, Payload, Req, VTable, Wire,
};
use crate::greenlet::switch::current_ptr;
use crate::hub::park::{Unparker, check_interrupts, park_until};
use crate::hub::{Driver, Remote};
use crate::runtime::{RuntimeInner, default_runtime, stack_size_for};
use crate::stack::{Stack, StackError};

const UNSTARTED: u8 = 0;
const STARTED: u8 = 1;
const DONE: u8 = 2;
const STATE: u8 = 3;
const LINKED: u8 = 4;

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

/// Something to do when a greenlet ends.
pub(crate) enum Link {
    Unpark(Unparker),
    Call(Box<dyn FnOnce() + Send>),
}

impl Link {
    /// Delivers the news. A panicking callback is contained here (it has
    /// been printed by the panic hook): it must not unwind through whatever
    /// ended the greenlet, which may be the hub.
    fn fire(self) {
        match self {
            Link::Unpark(u) => u.unpark_behind(),
            Link::Call(f) => {
                let _ = catch_unwind(AssertUnwindSafe(f));
            }
        }
    }
}

/// Who to tell when a greenlet ends: usually nobody or one joiner, kept
/// without an allocation.
#[derive(Default)]
enum Links {
    #[default]
    None,
    One(u64, Link),
    Many(Vec<(u64, Link)>),
}

impl Links {
    fn push(&mut self, id: u64, link: Link) {
        *self = match std::mem::take(self) {
            Links::None => Links::One(id, link),
            Links::One(i, l) => Links::Many(vec![(i, l), (id, link)]),
            Links::Many(mut v) => {
                v.push((id, link));
                Links::Many(v)
            }
        };
    }

    fn remove(&mut self, id: u64) -> Option<Link> {
        match std::mem::take(self) {
            Links::One(i, l) if i == id => Some(l),
            Links::Many(mut v) => {
                let found = v
                    .iter()
                    .position(|(i, _)| *i == id)
                    .map(|at| v.swap_remove(at).1);
                *self = Links::Many(v);
                found
            }
            other => {
                *self = other;
                None
            }
        }
    }

    fn fire(self) {
        match self {
            Links::None => {}
            Links::One(_, l) => l.fire(),
            Links::Many(v) => v.into_iter().for_each(|(_, l)| l.fire()),
        }
    }
}

/// The part of every task cell that does not depend on its types.
#[repr(C)]
struct Common {
    header: Header,
    links: Mutex<Links>,
}

#[repr(C)]
struct Prefix<T> {
    common: Common,
    result: UnsafeCell<Option<Result<T, GreenletError>>>,
}

#[repr(C)]
struct TaskCell<T, F> {
    prefix: Prefix<T>,
    /// The closure must stay on the spawning thread (`spawn_local`).
    local: bool,
    func: UnsafeCell<Option<F>>,
}

fn common(h: &Header) -> &Common {
    debug_assert_eq!(h.kind, Kind::Spawned);
    // SAFETY: spawned greenlets' headers sit at offset 0 of a TaskCell, whose
    // first field (through Prefix) is a Common; all are repr(C).
    unsafe { &*(h as *const Header).cast::<Common>() }
}

/// # Safety
/// `h` is the header of a `TaskCell<T, _>`.
unsafe fn prefix<T>(h: &Header) -> &Prefix<T> {
    // SAFETY: as for `common`, with the caller vouching for `T`.
    unsafe { &*(h as *const Header).cast::<Prefix<T>>() }
}

struct TaskVTable<T, F>(PhantomData<(T, F)>);

impl<T: 'static, F: FnOnce() -> T + 'static> TaskVTable<T, F> {
    const VTABLE: VTable = VTable {
        start: start::<T, F>,
        cancel: cancel_claimed::<T, F>,
        drop_func: drop_func::<T, F>,
        run_here: run_here::<T, F>,
        dealloc: dealloc::<T, F>,
    };
}

/// # Safety
/// `h` is the header of a `TaskCell<T, F>`.
unsafe fn cell<T, F>(h: &Header) -> &TaskCell<T, F> {
    // SAFETY: per the caller; the header is at offset 0.
    unsafe { &*(h as *const Header).cast::<TaskCell<T, F>>() }
}

// The five functions below are the `VTable` entries of a `TaskCell<T, F>`.
// Their shared contract (see `VTable`): the header belongs to a
// `TaskCell<T, F>` of exactly these types, and the caller holds the claim or
// the thread each entry asks for.

/// Creates the coroutine of a claimed, unstarted greenlet.
///
/// # Safety
/// See above; on the thread that will run it.
unsafe fn start<T: 'static, F: FnOnce() -> T + 'static>(task: HeaderRef) -> bool {
    // SAFETY: the vtable was made for this cell type.
    let c = unsafe { cell::<T, F>(&task) };
    let stack = match Stack::take(task.stack_size) {
        Ok(s) => s,
        Err(e) => {
            report_start_failure(&task, &e);
            // SAFETY: we claimed it and run on its thread.
            unsafe { drop_func::<T, F>(&task) };
            complete::<T>(&task, Err(GreenletError::Stack(e)));
            return false;
        }
    };
    // SAFETY: claimed by us; nobody else touches the closure.
    let f = unsafe { (*c.func.get()).take() }.expect("an unstarted greenlet has its closure");
    let guard = stack.guard();
    let hdr = NonNull::from(&*task);
    let coro = Coroutine::with_stack(stack, move |y: &GYielder, _: Wire| {
        task_body::<T, F>(y, task, f)
    });
    // SAFETY: unstarted, claimed, on the thread that will run it.
    unsafe { hdr.as_ref().set_coro(coro, guard) };
    true
}

/// Prints why a greenlet could not start: once per thread (a burst of
/// spawns against an exhausted limit would otherwise print the same line
/// thousands of times); `get` returns the error for each.
fn report_start_failure(task: &Header, e: &StackError) {
    thread_local! {
        static REPORTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !REPORTED.with(|r| r.replace(true)) {
        eprintln!(
            "greenlet {} could not start (later failures on this thread are not printed): {e}",
            task.display_name()
        );
    }
}

/// The body of every spawned greenlet's coroutine.
fn task_body<T: 'static, F: FnOnce() -> T>(y: &GYielder, this: HeaderRef, f: F) -> Wire {
    // SAFETY: we are this greenlet, running on its thread.
    unsafe { this.set_yielder(y) };
    let out = catch_unwind(AssertUnwindSafe(|| {
        check_interrupts(&this);
        f()
    }));
    this.unwinding.set(false);
    crate::sync::local::drop_locals(&this);
    let result = out.map_err(error_from_payload);
    if this.is_main.get() {
        crate::hub::deadlock::unregister_main(&this);
    }
    complete::<T>(&this, result);
    Driver::with(|d| d.forget_live(&this));
    // The trampoline releases this reference once the coroutine is gone.
    std::mem::forget(this);
    Req {
        to: std::ptr::null(),
        msg: Msg::Value,
    }
    .into_wire()
}

fn error_from_payload(p: Payload) -> GreenletError {
    if p.is::<GreenletExit>() {
        GreenletError::Killed
    } else if p.is::<crate::hub::park::TimeoutFired>() {
        GreenletError::Panicked("a Timeout escaped its with_timeout".into())
    } else {
        GreenletError::Panicked(panic_message(&p))
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(p: &Payload) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".into()
    }
}

/// Runs a claimed, unstarted greenlet's closure on the caller's stack.
///
/// # Safety
/// See above.
unsafe fn run_here<T: 'static, F: FnOnce() -> T + 'static>(task: HeaderRef) {
    // SAFETY: the vtable was made for this cell type, and the caller claimed
    // the greenlet, so the closure is ours.
    let f = unsafe { (*cell::<T, F>(&task).func.get()).take() }
        .expect("an unstarted greenlet has its closure");
    let result = catch_unwind(AssertUnwindSafe(f)).map_err(error_from_payload);
    complete::<T>(&task, result);
}

/// Completes a claimed, unstarted greenlet as killed.
///
/// # Safety
/// See above.
unsafe fn cancel_claimed<T: 'static, F: FnOnce() -> T + 'static>(h: &Header) {
    // SAFETY: the vtable was made for this cell type.
    let c = unsafe { cell::<T, F>(h) };
    if !c.local || h.on_this_thread() {
        // SAFETY: claimed by the caller; the closure may be dropped here.
        unsafe { drop_func::<T, F>(h) };
    }
    complete::<T>(h, Err(GreenletError::Killed));
}

/// Drops the closure if it is still there.
///
/// # Safety
/// See above; the caller owns the closure slot (it claimed the greenlet, or
/// runs on the thread of a `spawn_local` one).
unsafe fn drop_func<T: 'static, F: FnOnce() -> T + 'static>(h: &Header) {
    // SAFETY: the caller owns the closure slot (claimed it, or is the
    // greenlet's own thread for a local closure left by a remote cancel).
    unsafe { drop((*cell::<T, F>(h).func.get()).take()) };
}

/// Frees the cell.
///
/// # Safety
/// See above; `p` is the last reference.
unsafe fn dealloc<T: 'static, F: FnOnce() -> T + 'static>(p: NonNull<Header>) {
    // SAFETY: task cells are made by `new_cell` with Box::into_raw; this is
    // the last reference.
    drop(unsafe { Box::from_raw(p.as_ptr().cast::<TaskCell<T, F>>()) });
}

/// Stores the result and tells the links.
fn complete<T>(h: &Header, result: Result<T, GreenletError>) {
    // SAFETY: only the claimer completes, once, before DONE is published.
    unsafe { *prefix::<T>(h).result.get() = Some(result) };
    let old = h.life.swap(DONE, Ordering::AcqRel);
    if old & LINKED != 0 {
        let links = std::mem::take(&mut *lock(&common(h).links));
        links.fire();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Claims an unstarted greenlet, to start or cancel it.
pub(crate) fn claim_start(h: &Header) -> bool {
    h.life
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
            (s & STATE == UNSTARTED).then_some((s & !STATE) | STARTED)
        })
        .is_ok()
}

/// Cancels a greenlet that has not started; it never runs.
pub(crate) fn cancel(task: HeaderRef) {
    if claim_start(&task) {
        // SAFETY: we claimed it.
        unsafe { (task.vtable.cancel)(&task) };
    } else {
        release_unclaimed(task);
    }
}

/// A queue's reference to a greenlet someone else claimed (a killer): only a
/// `spawn_local` closure can be left behind, for its own thread to drop.
/// Other greenlets are bound to a thread only once they start, after their
/// closure is gone.
pub(crate) fn release_unclaimed(task: HeaderRef) {
    if task.on_this_thread() {
        // SAFETY: on the greenlet's own thread.
        unsafe { (task.vtable.drop_func)(&task) };
    }
}

/// Completes a greenlet a worker claimed but may not start (shutdown).
pub(crate) fn abort_claimed(task: HeaderRef) {
    // SAFETY: the caller claimed it.
    unsafe { (task.vtable.cancel)(&task) };
}

pub(crate) fn is_done(h: &Header) -> bool {
    h.life.load(Ordering::Acquire) & STATE == DONE
}

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

/// Adds a link; if the greenlet is done already, gives the link back.
pub(crate) fn add_link(h: &Header, link: Link) -> Result<u64, Link> {
    let id = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
    let mut links = lock(&common(h).links);
    let linked = h
        .life
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
            (s & STATE != DONE).then_some(s | LINKED)
        });
    if linked.is_err() {
        return Err(link);
    }
    links.push(id, link);
    Ok(id)
}

/// Removes a link that has not fired.
pub(crate) fn remove_link(h: &Header, id: u64) {
    let removed = lock(&common(h).links).remove(id);
    drop(removed);
}

/// Waits until `h` is done or `deadline` passes; true if done.
pub(crate) fn wait_done(h: &Header, deadline: Option<Instant>) -> bool {
    if is_done(h) {
        return true;
    }
    assert!(
        !std::ptr::eq(current_ptr(), h),
        "greenlet: a greenlet cannot join itself"
    );
    let id = match add_link(h, Link::Unpark(Unparker::current())) {
        Ok(id) => id,
        Err(_) => return true,
    };
    // Whether we return, time out or are killed, the link must go.
    struct Unlink<'a>(&'a Header, u64);
    impl Drop for Unlink<'_> {
        fn drop(&mut self) {
            if !is_done(self.0) {
                remove_link(self.0, self.1);
            }
        }
    }
    let _unlink = Unlink(h, id);
    loop {
        if is_done(h) {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        park_until(deadline);
    }
}

/// A handle to a spawned greenlet: join it, get its result, kill it.
///
/// Handles are cheap to clone; the greenlet runs whether or not any handle
/// is kept.
///
/// ```
/// greenlet::run(|| {
///     let g = greenlet::spawn(|| "done");
///     assert_eq!(g.get(), Ok(&"done"));
///     assert!(g.ready() && g.successful());
/// });
/// ```
pub struct Greenlet<T> {
    cell: HeaderRef,
    _t: PhantomData<Arc<T>>,
}

impl<T> Clone for Greenlet<T> {
    fn clone(&self) -> Self {
        Greenlet {
            cell: self.cell.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Greenlet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Greenlet")
            .field("id", &self.cell.id)
            .field("name", &self.cell.display_name())
            .field("ready", &self.ready())
            .finish()
    }
}

impl<T> Greenlet<T> {
    fn prefix(&self) -> &Prefix<T> {
        // SAFETY: a Greenlet<T> is only made for a TaskCell<T, _>.
        unsafe { prefix::<T>(&self.cell) }
    }

    fn result(&self) -> Option<&Result<T, GreenletError>> {
        if !is_done(&self.cell) {
            return None;
        }
        // SAFETY: DONE was observed (acquire): the result is written and
        // never changes again.
        unsafe { (*self.prefix().result.get()).as_ref() }
    }

    /// Waits until the greenlet has ended (returned, panicked or been killed).
    ///
    /// From a greenlet this parks only the caller; from a plain thread it
    /// blocks the thread.
    ///
    /// # Panics
    /// If a greenlet joins itself, or (in a `run`'s main greenlet or a plain
    /// thread) if nothing can ever wake the caller: the program would block
    /// forever.
    pub fn join(&self) {
        wait_done(&self.cell, None);
    }

    /// Waits at most `timeout`; true if the greenlet has ended.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        wait_done(&self.cell, Some(Instant::now() + timeout))
    }

    /// Waits for the greenlet, then returns its value, or how it failed.
    pub fn get(&self) -> Result<&T, GreenletError> {
        self.join();
        match self.result() {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e.clone()),
            None => unreachable!("joined greenlets have a result"),
        }
    }

    /// The value, if the greenlet has returned one (gevent's `value`).
    pub fn value(&self) -> Option<&T> {
        self.result().and_then(|r| r.as_ref().ok())
    }

    /// How it failed, if it has ended and failed (gevent's `exception`).
    pub fn error(&self) -> Option<GreenletError> {
        self.result().and_then(|r| r.as_ref().err().cloned())
    }

    /// True once the greenlet has ended, however.
    pub fn ready(&self) -> bool {
        is_done(&self.cell)
    }

    /// True once the greenlet has ended by returning a value.
    pub fn successful(&self) -> bool {
        matches!(self.result(), Some(Ok(_)))
    }

    /// Kills the greenlet and waits until it has finished unwinding.
    ///
    /// `GreenletExit` is raised at its next switch point (waking it if it is
    /// parked); if it has not started it never will. Killing the running
    /// greenlet raises `GreenletExit` at once. A dead greenlet is left alone.
    pub fn kill(&self) {
        self.kill_nowait();
        self.join();
    }

    /// Kills the greenlet and waits at most `timeout` for it to finish
    /// unwinding; true if it has.
    pub fn kill_timeout(&self, timeout: Duration) -> bool {
        self.kill_nowait();
        self.join_timeout(timeout)
    }

    /// Asks the greenlet to die and returns at once.
    pub fn kill_nowait(&self) {
        if self.ready() {
            return;
        }
        if claim_start(&self.cell) {
            // SAFETY: we claimed it.
            unsafe { (self.cell.vtable.cancel)(&self.cell) };
            return;
        }
        if current_ptr() == self.cell.as_ptr() {
            std::panic::resume_unwind(Box::new(GreenletExit));
        }
        crate::hub::interrupt(&self.cell, INTERRUPT_KILL);
    }

    /// Calls `f` with this greenlet once it has ended (gevent's `link`); at
    /// once if it has already. `f` runs in whatever ends the greenlet (the
    /// greenlet itself, its killer, or the caller here), so it should be
    /// short.
    ///
    /// ```
    /// use std::sync::mpsc;
    ///
    /// greenlet::run(|| {
    ///     let (tx, rx) = mpsc::channel();
    ///     let g = greenlet::spawn(|| 5);
    ///     g.link(move |g| tx.send(*g.value().unwrap()).unwrap());
    ///     g.join();
    ///     assert_eq!(rx.recv().unwrap(), 5);
    /// });
    /// ```
    pub fn link(&self, f: impl FnOnce(&Greenlet<T>) + Send + 'static)
    where
        T: Send + Sync + 'static,
    {
        let me = self.clone();
        let call = Link::Call(Box::new(move || f(&me)));
        if let Err(Link::Call(f)) = add_link(&self.cell, call) {
            f();
        }
    }

    /// The name given at spawn, or `Greenlet-<id>`.
    pub fn name(&self) -> String {
        self.cell.display_name()
    }

    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.cell.id
    }

    pub(crate) fn header(&self) -> &HeaderRef {
        &self.cell
    }

    /// Takes the result out. Only for a handle nobody else can see (the
    /// runtime's main greenlet).
    pub(crate) fn into_result(self) -> Result<T, GreenletError> {
        assert!(self.ready(), "into_result on a running greenlet");
        // SAFETY: done (result written), and the caller guarantees no other
        // handle reads the slot.
        unsafe { (*self.prefix().result.get()).take() }.expect("a finished greenlet's result")
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

    /// Queues the greenlet on the runtime's workers in turn, instead of on
    /// the spawning worker (where an idle worker may or may not steal it in
    /// time). For long-lived greenlets spawned in a burst from one place,
    /// like a server's connection handlers: since a started greenlet never
    /// changes workers, where it starts is where it stays. It costs a
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
        match Driver::with(|d| d.rt.clone()) {
            Some(rt) => self.spawn_on(&rt, f),
            None => self.spawn_on(default_runtime(), f),
        }
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
        let spread = self.spread;
        let g = self.new_cell(rt, false, f)?;
        if spread {
            spread_over(rt, g.cell.clone());
        } else {
            place(rt, g.cell.clone(), None);
        }
        Ok(g)
    }

    pub(crate) fn spawn_main<T, F>(
        self,
        rt: &Arc<RuntimeInner>,
        f: F,
    ) -> Result<Greenlet<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let g = self.new_cell(rt, false, f)?;
        g.cell.is_main.set(true);
        crate::hub::deadlock::register_main(&g.cell);
        place(rt, g.cell.clone(), None);
        Ok(g)
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
        let Some(rt) = Driver::with(|d| d.rt.clone()) else {
            return Err(SpawnError::NotOnHub);
        };
        let g = self.new_cell(&rt, true, f)?;
        g.cell.bind_to_current_thread();
        let task = g.cell.clone();
        Driver::with(move |d| d.spawn_local(task));
        Ok(g)
    }

    /// Spawns `f` to start after `delay`. Killed before then, it never runs.
    pub fn spawn_later<T, F>(self, delay: Duration, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let rt = Driver::with(|d| d.rt.clone()).unwrap_or_else(|| default_runtime().clone());
        let g = self
            .new_cell(&rt, false, f)
            .unwrap_or_else(|e| panic!("greenlet: {e}"));
        place(&rt, g.cell.clone(), Some(Instant::now() + delay));
        g
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
        Stack::ensure_available(size)?;
        Ok(self.cell(size, local, f))
    }

    fn cell<T, F>(self, size: usize, local: bool, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let cell = Box::new(TaskCell::<T, F> {
            prefix: Prefix {
                common: Common {
                    header: Header::new(
                        &TaskVTable::<T, F>::VTABLE,
                        Kind::Spawned,
                        self.name.map(String::into_boxed_str),
                        size,
                    ),
                    links: Mutex::new(Links::None),
                },
                result: UnsafeCell::new(None),
            },
            local,
            func: UnsafeCell::new(Some(f)),
        });
        let ptr = NonNull::from(Box::leak(cell)).cast::<Header>();
        // SAFETY: a fresh cell with one reference; header at offset 0.
        let cell = unsafe { HeaderRef::from_raw(ptr) };
        Greenlet {
            cell,
            _t: PhantomData,
        }
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

/// Queues an unstarted greenlet on the next worker of `rt` in turn.
fn spread_over(rt: &Arc<RuntimeInner>, task: HeaderRef) {
    let worker = rt.some_worker();
    let mut task = Some(task);
    Driver::with(|d| {
        if Arc::ptr_eq(&d.shared, worker) {
            d.spawn(task.take().expect("placed once"));
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
