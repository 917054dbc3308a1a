//! The cell of a spawned greenlet, its lifecycle, and its links.
//!
//! # The cell
//!
//! A spawned greenlet is one allocation, a `TaskCell<T, F>`: the header, the
//! list of links (who to tell when it ends), the result slot, and the closure
//! until it starts. Its memory comes from the spawning thread's cell cache
//! (`spawn::cache`). `Greenlet<T>` handles and the hub's queues hold counted
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

use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::{self, NonNull};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::GreenletError;
use crate::greenlet::GreenletExit;
use crate::greenlet::context::Arrival;
use crate::greenlet::header::{Header, HeaderRef, Kind, Msg, Payload, VTable};
use crate::greenlet::switch::{current_ptr, finish, settle};
use crate::hub::park::{Unparker, check_interrupts, park_until};
use crate::hub::{Driver, Next};
use crate::stack::{Stack, StackError};

use crate::hub::pin::bits::{DONE, LINKED, STARTED, STATE, UNSTARTED};

/// Something to do when a greenlet ends.
pub(crate) enum Link {
    Unpark(Unparker),
    /// Boxed twice, so that a link takes two words and the usual links of a
    /// cell (none, or one joiner) fit in three.
    Call(Box<Callback>),
}

/// A callback run when a greenlet ends.
pub(crate) type Callback = Box<dyn FnOnce() + Send>;

impl Link {
    /// A link that calls `f`.
    pub(crate) fn call(f: impl FnOnce() + Send + 'static) -> Link {
        Link::Call(Box::new(Box::new(f)))
    }

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
/// without an allocation. Several are boxed, which keeps this three words.
#[derive(Default)]
enum Links {
    #[default]
    None,
    One(u64, Link),
    #[allow(
        clippy::box_collection,
        reason = "one word instead of three in every cell"
    )]
    Many(Box<Vec<(u64, Link)>>),
}

impl Links {
    fn push(&mut self, id: u64, link: Link) {
        *self = match std::mem::take(self) {
            Links::None => Links::One(id, link),
            Links::One(i, l) => Links::Many(Box::new(vec![(i, l), (id, link)])),
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
pub(super) struct Prefix<T> {
    common: Common,
    pub(super) result: UnsafeCell<Option<Result<T, GreenletError>>>,
}

#[repr(C)]
struct TaskCell<T, F> {
    prefix: Prefix<T>,
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
pub(super) unsafe fn prefix<T>(h: &Header) -> &Prefix<T> {
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
    let stack = match Stack::take(task.stack_size()) {
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
    let hdr = NonNull::from(&*task);
    // SAFETY: unstarted, claimed, on the thread that will run it; `task`,
    // moved into the body, keeps the header alive through the call.
    unsafe {
        hdr.as_ref().set_coro(stack, move |first: Arrival| {
            task_body::<T, F>(first, task, f)
        })
    };
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

/// The body of every spawned greenlet's coroutine. It ends with the
/// greenlet's last switch.
fn task_body<T: 'static, F: FnOnce() -> T>(first: Arrival, this: HeaderRef, f: F) -> Infallible {
    if !first.wire.is_value() {
        // Started by a greenlet's last switch: release that one. The
        // message is a `Value` with nothing sent.
        // SAFETY: a switch's message, settled once.
        drop(unsafe { settle(first.wire) });
    }
    let out = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: we are `this`, running.
        unsafe { check_interrupts(&this) };
        f()
    }));
    // SAFETY: we run, so we have our record.
    unsafe { this.running() }.unwinding.set(false);
    // SAFETY: we are `this`, on our stack, and `f` has returned.
    unsafe { crate::sync::local::drop_locals(&this) };
    let result = out.map_err(error_from_payload);
    if this.is_main.get() {
        crate::hub::deadlock::unregister_main(&this);
    }
    complete::<T>(&this, result);
    // Our last switch goes to what the hub would run next (often the
    // greenlet that `complete` just woke), or to the hub.
    let next = Driver::with(|d| {
        // SAFETY: we are `this`, running on our worker.
        unsafe { d.forget_live(&this) };
        d.next_after_suspend(true)
    })
    .flatten();
    let (to, msg) = next.map_or((std::ptr::null(), Msg::Value), Next::target);
    debug_assert!(
        !std::ptr::eq(to, this.as_ptr()),
        "an ending greenlet is not queued"
    );
    let g = this.as_ptr();
    // Whoever we switch to last releases this reference, with our stack.
    std::mem::forget(this);
    // SAFETY: we are `g`, done: nothing of ours on this stack needs
    // dropping; `to` is what the hub runs next, expecting `msg`.
    unsafe { finish(g, to, msg, std::ptr::null_mut()) }
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
    if !h.local || h.on_this_thread() {
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
    let cell = p.as_ptr().cast::<TaskCell<T, F>>();
    // SAFETY: task cells are made by `new_cell` in memory from the cell
    // cache with this layout; this is the last reference, so the cell is
    // dropped once and its memory freed once.
    unsafe {
        ptr::drop_in_place(cell);
        super::cache::dealloc(p.cast(), Layout::new::<TaskCell<T, F>>());
    }
}

/// Stores the result and tells the links.
fn complete<T>(h: &Header, result: Result<T, GreenletError>) {
    // SAFETY: only the claimer completes, once, before DONE is published.
    unsafe { *prefix::<T>(h).result.get() = Some(result) };
    let old = h.worker.complete(&h.life);
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

/// Makes the cell of a new, unstarted greenlet; returns its first reference.
pub(super) fn new_cell<T, F>(name: Option<String>, size: usize, local: bool, f: F) -> HeaderRef
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    let mem = super::cache::alloc(Layout::new::<TaskCell<T, F>>()).cast::<TaskCell<T, F>>();
    let mut header = Header::new(
        &TaskVTable::<T, F>::VTABLE,
        Kind::Spawned,
        name.map(String::into_boxed_str),
        size,
    );
    header.local = local;
    let cell = TaskCell::<T, F> {
        prefix: Prefix {
            common: Common {
                header,
                links: Mutex::new(Links::None),
            },
            result: UnsafeCell::new(None),
        },
        func: UnsafeCell::new(Some(f)),
    };
    // SAFETY: fresh memory with the layout of a TaskCell<T, F>.
    unsafe { mem.as_ptr().write(cell) };
    let ptr = mem.cast::<Header>();
    // SAFETY: a fresh cell with one reference; header at offset 0.
    unsafe { HeaderRef::from_raw(ptr) }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The cell of a greenlet whose closure captures nothing takes three
    /// cache lines, the cache's prefix included. A spawn writes them and a
    /// join and a drop read them, so in a burst of spawns their number is
    /// the memory traffic per greenlet.
    #[test]
    fn an_empty_greenlet_cell_takes_three_cache_lines() {
        fn layout_for<F: FnOnce() + 'static>(_: &F) -> Layout {
            Layout::new::<TaskCell<(), F>>()
        }
        let layout = layout_for(&|| ());
        assert_eq!(
            super::super::cache::block_size(layout),
            Some(192),
            "cell of {} bytes",
            layout.size()
        );
    }
}
