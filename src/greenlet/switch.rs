//! Switching: the running greenlet, the thread's root, and `switch_from`.
//!
//! # Design
//!
//! Greenlets switch symmetrically: any greenlet to any other, in one stack
//! switch ([`context::switch`]). The thread's native stack is its *root*
//! greenlet: on a plain thread the root is the main greenlet; on a worker
//! thread it is the hub, whose loop switches to each runnable greenlet
//! ([`run_from_root`]) and gets control back when a greenlet parks by
//! switching to the root.
//!
//! A greenlet that ends switches away for the last time naming itself; the
//! greenlet that receives that switch gives the stack back to the pool and
//! releases the ended greenlet's own reference ([`release_ended`]), since
//! nobody can free the stack they run on.
//!
//! `CURRENT` holds the running greenlet, or null while the root runs. It is a
//! const-initialised thread-local without destructor, so reading it costs a
//! TLS load and it is safe to read from the overflow handler. `ROOT_SP`
//! holds the root's stack pointer while a greenlet runs.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;

use super::context;
use super::header::{Header, HeaderRef, Kind, Msg, Recv, Req, State, VTable, Wire};

thread_local! {
    static CURRENT: Cell<*const Header> = const { Cell::new(std::ptr::null()) };
    static ROOT_SP: Cell<usize> = const { Cell::new(0) };
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

/// Switches from the running greenlet `cur` (the root's own header, if the
/// root runs) to `to` (null, or the root's own pointer: the root), handing
/// it `msg`; returns the message `cur` is resumed with, still packed.
///
/// # Safety
/// `cur` is the running greenlet. `to` is null or a live greenlet of this
/// thread that may be resumed with `msg`: started or startable, not
/// running, not dead, and expecting what `msg` carries (the caller checked
/// its `Recv` and wrote any value into its slot). The caller has set its
/// own `Recv` for what it expects back.
///
/// Inlined, like everything on the way from a user's call to the stack
/// switch: each frame returned through right after a switch costs a
/// mispredicted return (the CPU's return stack belongs to the other stack).
#[inline(always)]
pub(crate) unsafe fn switch_from(cur: *const Header, to: *const Header, msg: Msg) -> Wire {
    let wire = msg.into_wire();
    // SAFETY: `cur` is us, on this thread; `to` per the caller.
    unsafe {
        if (*cur).kind == Kind::Root {
            (*cur).set_state(State::Suspended);
            jump(to, wire, std::ptr::null(), ROOT_SP.with(|s| s.as_ptr()))
        } else {
            switch_from_greenlet(cur, to, wire)
        }
    }
}

/// Switches from the running greenlet `cur`, not the root.
///
/// # Safety
/// As for [`switch_from`]; `cur` is the running greenlet and has its record.
#[inline(always)]
unsafe fn switch_from_greenlet(cur: *const Header, to: *const Header, wire: Wire) -> Wire {
    // SAFETY: per the caller.
    unsafe {
        (*cur).set_state(State::Suspended);
        jump(to, wire, std::ptr::null(), (*cur).running().sp.as_ptr())
    }
}

/// Suspends the running greenlet `cur` (not the root), switching to the
/// greenlet `to`, or to the thread's root if `to` is null, with `msg`: the
/// hub's hand-over from one greenlet to the next, whose target is never the
/// root's own pointer, so it is told apart by a null check alone.
///
/// # Safety
/// As for [`switch_from`]; `cur` is the running greenlet and has its record;
/// `to` is null or a greenlet other than the root.
#[inline(always)]
pub(crate) unsafe fn hand_over(cur: *const Header, to: *const Header, msg: Msg) -> Msg {
    let wire = msg.into_wire();
    // SAFETY: per the caller.
    let back = unsafe {
        (*cur).set_state(State::Suspended);
        let save = (*cur).running().sp.as_ptr();
        if to.is_null() {
            jump_to_root(wire, std::ptr::null(), save)
        } else {
            jump_to_greenlet(to, wire, std::ptr::null(), save)
        }
    };
    Msg::from_wire(back)
}

/// Switches from the root to `to`, handing it `msg`; returns what the
/// greenlet that next switches to the root sends (the hub's way in).
///
/// # Safety
/// Called on the root of this thread (no greenlet running), with `to` as
/// for [`switch_from`].
#[inline(always)]
pub(crate) unsafe fn run_from_root(to: *const Header, msg: Wire) -> Wire {
    debug_assert!(current_ptr().is_null());
    // SAFETY: we are the root; `to` per the caller.
    unsafe {
        (*root_ptr()).set_state(State::Suspended);
        jump(to, msg, std::ptr::null(), ROOT_SP.with(|s| s.as_ptr()))
    }
}

/// Makes `to` the running greenlet and switches to its stack, saving ours
/// in `save`; `ended` is null or the running greenlet, ending.
///
/// # Safety
/// As for [`switch_from`]; the running greenlet has set its own state, and
/// `save` is its stack-pointer slot (kept until it is resumed).
#[inline(always)]
unsafe fn jump(to: *const Header, wire: Wire, ended: *const Header, save: *mut usize) -> Wire {
    // The root exists: whoever made the first greenlet of this thread made
    // it.
    let root = ROOT_PTR.with(|r| r.get());
    debug_assert!(!root.is_null());
    // SAFETY: per the caller.
    unsafe {
        if to.is_null() || to == root {
            jump_to_root(wire, ended, save)
        } else {
            jump_to_greenlet(to, wire, ended, save)
        }
    }
}

/// [`jump`] to the thread's root.
///
/// # Safety
/// As for [`jump`], with the root as the target.
#[inline(always)]
unsafe fn jump_to_root(wire: Wire, ended: *const Header, save: *mut usize) -> Wire {
    // SAFETY: per the caller; the root exists (see `jump`) and, not
    // running, has its stack pointer in `ROOT_SP`.
    let arrival = unsafe {
        CURRENT.with(|c| c.set(std::ptr::null()));
        (*ROOT_PTR.with(|r| r.get())).set_state(State::Running);
        context::switch(wire, ended, save, ROOT_SP.with(|s| s.get()))
    };
    // SAFETY: as in `arrive`.
    unsafe { arrive(arrival) }
}

/// [`jump`] to `to`, a greenlet (not the root).
///
/// # Safety
/// As for [`jump`], with a greenlet as the target.
#[inline(always)]
unsafe fn jump_to_greenlet(
    to: *const Header,
    wire: Wire,
    ended: *const Header,
    save: *mut usize,
) -> Wire {
    // SAFETY: per the caller, `to` is a live greenlet of this thread and
    // not running, so its record holds the stack pointer it saved or was
    // prepared with.
    let arrival = unsafe {
        CURRENT.with(|c| c.set(to));
        (*to).set_state(State::Running);
        context::switch(wire, ended, save, (*to).running().sp.get())
    };
    // SAFETY: as in `arrive`.
    unsafe { arrive(arrival) }
}

/// What a context does as it is switched back to: release the greenlet
/// that ended, if the switch was its last.
///
/// # Safety
/// `arrival` is what `context::switch` returned, on this thread.
#[inline(always)]
unsafe fn arrive(arrival: context::Arrival) -> Wire {
    if !arrival.ended.is_null() {
        // SAFETY: a greenlet of this thread made its last switch to us.
        unsafe { release_ended(arrival.ended) };
    }
    arrival.wire
}

/// Gives an ended greenlet's stack back and drops the reference it held on
/// itself while it ran.
///
/// # Safety
/// `g` is a greenlet of this thread that has just made its last switch.
#[cold]
#[inline(never)]
unsafe fn release_ended(g: *const Header) {
    // SAFETY: per the caller: its stack is not in use any more, and the
    // reference it forgot as it ended is ours to drop, last.
    unsafe {
        drop((*g).take_running());
        drop(HeaderRef::from_raw(NonNull::new_unchecked(g.cast_mut())));
    }
}

/// Where every greenlet starts: the first switch into a prepared stack
/// returns here (see [`context::prepare`]). Runs the body and makes the
/// greenlet's last switch, to where the body asks.
///
/// # Safety
/// Entered only by [`context::switch`] on a stack prepared by
/// `Header::set_coro` with this `B`, as the running greenlet.
pub(crate) unsafe extern "C" fn enter<B: FnOnce(Wire) -> Wire>(
    wire: Wire,
    ended: *const Header,
) -> ! {
    if !ended.is_null() {
        // SAFETY: as in `jump`.
        unsafe { release_ended(ended) };
    }
    let g = current_ptr();
    // SAFETY: we are `g`, entered for the first time; the body was written
    // for us with type `B`.
    let body = unsafe { (*g).running().take_body::<B>() };
    let req = Req::from_wire(body(wire));
    // SAFETY: the body has returned (it catches every panic), so nothing of
    // ours is left on this stack that must outlive it; the body forgot our
    // own reference for whoever we switch to to release.
    unsafe {
        (*g).set_state(State::Dead);
        (*g).set_recv(Recv::Nothing, std::ptr::null_mut());
        let save = (*g).running().sp.as_ptr();
        jump(req.to, req.msg.into_wire(), g, save);
    }
    unreachable!("a greenlet that ended was resumed");
}
