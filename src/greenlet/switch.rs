//! Switching: the thread context and the trampoline.
//!
//! # Design
//!
//! corosensei coroutines are asymmetric: a coroutine can only `suspend` back
//! to whoever resumed it. Greenlets switch symmetrically (any greenlet to any
//! other). The bridge is a trampoline on the thread's own (native) stack: a
//! greenlet that switches suspends with a [`Req`] naming the target, and the
//! trampoline resumes that target. Only the trampoline ever calls `resume`, so
//! coroutines never nest and a switch is one suspend plus one resume.
//!
//! The native stack is the thread's *root* greenlet. On a plain thread the
//! root is the main greenlet: its `switch` runs the trampoline until some
//! greenlet switches back to it. On a worker thread the root is the hub: its
//! loop calls [`trampoline`] for each runnable greenlet, and a greenlet parks
//! by switching to the root.
//!
//! `CURRENT` holds the running greenlet, or null while the root runs. It is a
//! const-initialised thread-local without destructor, so reading it costs a
//! TLS load and it is safe to read from the overflow handler.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;

use super::header::{Header, HeaderRef, Kind, Msg, Recv, Req, State, VTable, Wire};

thread_local! {
    static CURRENT: Cell<*const Header> = const { Cell::new(std::ptr::null()) };
    static ROOT: RefCell<Option<HeaderRef>> = const { RefCell::new(None) };
    static ROOT_PTR: Cell<*const Header> = const { Cell::new(std::ptr::null()) };
}

/// The running greenlet, or null when the thread's root (native stack) runs.
#[inline(always)]
pub(crate) fn current_ptr() -> *const Header {
    CURRENT.with(|c| c.get())
}

/// The root greenlet of this thread, created on first use.
#[inline(always)]
pub(crate) fn root_ptr() -> *const Header {
    let p = ROOT_PTR.with(|r| r.get());
    if !p.is_null() {
        return p;
    }
    make_root()
}

#[cold]
#[inline(never)]
fn make_root() -> *const Header {
    let root = new_root();
    let p = root.as_ptr();
    ROOT.with(|r| *r.borrow_mut() = Some(root));
    ROOT_PTR.with(|r| r.set(p));
    p
}

/// The running greenlet, the root included.
#[inline(always)]
pub(crate) fn current_or_root() -> *const Header {
    let p = current_ptr();
    if p.is_null() { root_ptr() } else { p }
}

/// Whether `p` is this thread's root (null stands for the root too).
#[inline(always)]
pub(crate) fn is_root(p: *const Header) -> bool {
    p.is_null() || p == ROOT_PTR.with(|r| r.get())
}

#[repr(C)]
struct RootCell {
    header: Header,
}

static ROOT_VTABLE: VTable = VTable {
    start: |_| unreachable!("the root greenlet is never started"),
    cancel: |_| {},
    drop_func: |_| {},
    run_here: |_| unreachable!("only spawned cells run here"),
    dealloc: |p| {
        // SAFETY: root cells are made by `new_root` with Box::into_raw and
        // this is the last reference.
        drop(unsafe { Box::from_raw(p.as_ptr().cast::<RootCell>()) })
    },
};

fn new_root() -> HeaderRef {
    let cell = Box::new(RootCell {
        header: Header::new(&ROOT_VTABLE, Kind::Root, Some("main".into()), 0),
    });
    let ptr = NonNull::from(Box::leak(cell)).cast::<Header>();
    // SAFETY: a fresh cell with one reference, header at offset 0.
    let root = unsafe { HeaderRef::from_raw(ptr) };
    root.bind_to_current_thread();
    // SAFETY: we are on the root's own thread.
    unsafe {
        root.set_state(State::Running);
        root.set_recv(Recv::Nothing, std::ptr::null_mut());
    }
    root
}

/// Switches from the running greenlet to `to` (null: the root), handing it
/// `msg`, and returns the message this greenlet is resumed with.
///
/// # Safety
/// `to` is null or a live greenlet of this thread that may be resumed with
/// `msg`: started or startable, not running, not dead, and expecting what
/// `msg` carries (the caller checked its `Recv` and wrote any value into its
/// slot). The caller has set its own `Recv` for what it expects back.
///
/// Inlined, like everything on the way from a user's call to the stack
/// switch: each frame returned through right after a switch costs a
/// mispredicted return (the CPU's return stack belongs to the other stack).
#[inline(always)]
pub(crate) unsafe fn switch_to(to: *const Header, msg: Msg) -> Msg {
    let cur = current_ptr();
    if cur.is_null() {
        // SAFETY: we are the root, on the native stack: run the trampoline.
        Msg::from_wire(unsafe { trampoline(to, msg.into_wire()) })
    } else {
        // SAFETY: `cur` is running, so it is a started coroutine whose
        // yielder is set and lives on its stack.
        let back = unsafe { (*(*cur).yielder()).suspend(Req { to, msg }.into_wire()) };
        Msg::from_wire(back)
    }
}

/// Splits a request into its target and the message, still packed.
#[inline(always)]
fn split(w: Wire) -> (*const Header, Wire) {
    let req = Req::from_wire(w);
    (req.to, req.msg.into_wire())
}

/// Runs greenlets from the root's native stack, following their switches,
/// until one switches to the root; returns what it sent.
///
/// # Safety
/// Called on the root of this thread (no greenlet running), with `to` as
/// for [`switch_to`]. Every started greenlet's coroutine is driven only from
/// here, which is what keeps `resume` calls from nesting.
#[inline(always)]
pub(crate) unsafe fn trampoline(mut to: *const Header, mut msg: Wire) -> Wire {
    let root = root_ptr();
    // SAFETY: the root is this thread's.
    unsafe { (*root).set_state(State::Suspended) };
    loop {
        if is_root(to) {
            CURRENT.with(|c| c.set(std::ptr::null()));
            // SAFETY: as above.
            unsafe { (*root).set_state(State::Running) };
            return msg;
        }
        // SAFETY: `to` is live and of this thread (caller's contract, and
        // each `Req` below comes from a greenlet holding the same contract).
        let g = unsafe { &*to };
        let coro = unsafe {
            g.set_state(State::Running);
            g.running().coro()
        };
        CURRENT.with(|c| c.set(to));
        // SAFETY: the coroutine exists (started greenlets keep theirs until
        // they end) and is not running; no other reference into it is held
        // across this call.
        let result = coro.resume(msg);
        match result {
            corosensei::CoroutineResult::Yield(w) => {
                // SAFETY: the greenlet just suspended on this thread.
                unsafe { g.set_state(State::Suspended) };
                (to, msg) = split(w);
            }
            corosensei::CoroutineResult::Return(w) => {
                (to, msg) = split(w);
                // SAFETY: it finished; dropping the coroutine returns the
                // stack to this thread's pool. The greenlet forgot its own
                // reference on the way out: it is released here, last.
                unsafe {
                    g.set_state(State::Dead);
                    g.set_recv(Recv::Nothing, std::ptr::null_mut());
                    drop(g.take_running());
                    drop(HeaderRef::from_raw(std::ptr::NonNull::from(g)));
                }
            }
        }
    }
}
