//! Switching: the running greenlet, the thread's root, and `switch_from`.
//!
//! # Design
//!
//! Greenlets switch symmetrically: any greenlet to any other, in one stack
//! switch ([`context::switch`]). The thread's native stack is its *root*
//! greenlet: on a plain thread the root is the main greenlet; on a worker
//! thread it is the hub, whose loop switches to each runnable greenlet
//! ([`run_from_root`]) and gets control back when a greenlet parks by
//! switching to the root. The root is a greenlet like the others as far as
//! a switch is concerned (`CURRENT` names it while it runs, its header keeps
//! its stack pointer while it does not), so a switch needs no case for it.
//!
//! A greenlet that ends switches away for the last time with its own
//! address in the message; the context that receives that switch gives the
//! stack back to the pool and releases the ended greenlet's own reference
//! ([`settle`]), since nobody can free the stack they run on. Every place a
//! switch returns to first compares the message with the one it expects
//! most, which carries no ended greenlet; anything else goes through
//! `settle`.
//!
//! `CURRENT` holds the running greenlet, the root included, or null until
//! the thread's root is made. It is a const-initialised thread-local
//! without destructor, so reading it costs a TLS load and it is safe to
//! read from the overflow handler.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::ptr::NonNull;

use super::context::{self, Arrival};
use super::header::{Header, HeaderRef, Kind, Msg, Recv, State, Wire};

thread_local! {
    static CURRENT: Cell<*const Header> = const { Cell::new(std::ptr::null()) };
    static ROOT: RefCell<Option<Root>> = const { RefCell::new(None) };
    static ROOT_PTR: Cell<*const Header> = const { Cell::new(std::ptr::null()) };
}

/// The thread's root greenlet, owned by the thread.
struct Root(std::mem::ManuallyDrop<HeaderRef>);

impl Drop for Root {
    fn drop(&mut self) {
        if self.0.is_unique() {
            // Nothing else holds the root: it goes, and nothing names it as
            // running any more.
            CURRENT.with(|c| c.set(std::ptr::null()));
            ROOT_PTR.with(|r| r.set(std::ptr::null()));
            // SAFETY: not used again.
            drop(unsafe { std::mem::ManuallyDrop::take(&mut self.0) });
        }
        // Otherwise greenlets of this thread still have it as their parent:
        // a handle dropped later in the thread's teardown (by another
        // thread-local's destructor) kills its greenlet by switching from
        // the root. The root stays, named by `CURRENT` and `ROOT_PTR`, and
        // this reference is never given back (one small cell, only for a
        // thread that ends with greenlets alive).
    }
}

/// The running greenlet, or null when the thread's root (native stack) runs.
#[inline(always)]
pub(crate) fn current_ptr() -> *const Header {
    let p = CURRENT.with(|c| c.get());
    // SAFETY: a non-null `CURRENT` is the running greenlet, alive.
    if p.is_null() || unsafe { (*p).kind } == Kind::Root {
        std::ptr::null()
    } else {
        p
    }
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
    ROOT.with(|r| *r.borrow_mut() = Some(Root(std::mem::ManuallyDrop::new(root))));
    ROOT_PTR.with(|r| r.set(p));
    // Nothing else has run a greenlet on this thread yet: the root runs.
    CURRENT.with(|c| {
        debug_assert!(c.get().is_null());
        c.set(p)
    });
    p
}

/// The running greenlet, the root included.
#[inline(always)]
pub(crate) fn current_or_root() -> *const Header {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() { make_root() } else { p }
}

fn new_root() -> HeaderRef {
    let root = HeaderRef::new_bare(Kind::Root, Some("main".into()), 0);
    root.bind_to_current_thread();
    // SAFETY: we are on the root's own thread.
    unsafe { root.set_state(State::Started) };
    root
}

/// Switches from the running greenlet `cur` (the root included) to `to`
/// (the root included), handing it `msg` and `val`; returns what `cur` is
/// resumed with.
///
/// # Safety
/// `cur` is the running greenlet. `to` is a live greenlet of this thread
/// other than `cur` that may be resumed with `msg`: started or startable,
/// not dead, and expecting what `msg` carries (the caller checked its
/// `Recv`; `val` points to the value sent, if any, and stays readable until
/// `cur` is resumed). The caller has set its own `Recv` for what it expects
/// back.
///
/// Inlined, like everything on the way from a user's call to the stack
/// switch: each frame returned through right after a switch costs a
/// mispredicted return (the CPU's return stack belongs to the other stack).
#[inline(always)]
pub(crate) unsafe fn switch_from(
    cur: *const Header,
    to: *const Header,
    msg: Msg,
    val: *mut (),
) -> Arrival {
    // SAFETY: per the caller.
    unsafe { jump(to, msg.into_wire(), val, (*cur).sp.as_ptr()) }
}

/// Suspends the running greenlet `cur` (not the root), parked, switching to
/// the greenlet `to`, or to the thread's root if `to` is null, with `msg`:
/// the hub's hand-over from one greenlet to the next. Returns when the hub
/// wakes `cur` (the only message a parked greenlet gets).
///
/// # Safety
/// As for [`switch_from`], with no value; `to` is null or a greenlet other
/// than the root.
#[inline(always)]
pub(crate) unsafe fn hand_over(cur: *const Header, to: *const Header, msg: Msg) {
    // SAFETY: per the caller; the root exists on a hub's thread.
    unsafe {
        let to = if to.is_null() {
            ROOT_PTR.with(|r| r.get())
        } else {
            to
        };
        let back = switch_from(cur, to, msg, std::ptr::null_mut());
        if !back.wire.is_wake() {
            woken_by_last_switch(back.wire);
        }
    }
}

/// [`hand_over`]'s arrival from a greenlet that ended.
///
/// # Safety
/// As for [`settle`].
#[cold]
#[inline(never)]
unsafe fn woken_by_last_switch(wire: Wire) {
    // SAFETY: per the caller.
    let msg = unsafe { settle(wire) };
    debug_assert!(matches!(msg, Msg::Wake), "a parked greenlet is only woken");
}

/// Switches from the root to `to`, handing it `msg`; returns what the
/// greenlet that next switches to the root sends (the hub's way in),
/// settled.
///
/// # Safety
/// Called on the root of this thread (no greenlet running), with `to` as
/// for [`switch_from`], expecting no value.
#[inline(always)]
pub(crate) unsafe fn run_from_root(to: *const Header, msg: Msg) -> Msg {
    let root = CURRENT.with(|c| c.get());
    // SAFETY: we are the root; `to` per the caller.
    unsafe {
        debug_assert!((*root).kind == Kind::Root);
        let back = switch_from(root, to, msg, std::ptr::null_mut());
        if back.wire.is_value() {
            return Msg::Value;
        }
        settle(back.wire)
    }
}

/// Makes `to` the running greenlet and switches to its stack, saving ours
/// in `save`.
///
/// # Safety
/// As for [`switch_from`]; `save` is the running greenlet's stack-pointer
/// slot.
#[inline(always)]
unsafe fn jump(to: *const Header, wire: Wire, val: *mut (), save: *mut usize) -> Arrival {
    CURRENT.with(|c| c.set(to));
    // SAFETY: per the caller, `to` is a live greenlet of this thread and
    // not running, so its header holds the stack pointer it saved or was
    // prepared with.
    unsafe { context::switch(wire, val, save, (*to).sp.get()) }
}

/// What a context must do with a message other than the one it expected
/// most: release the greenlet that ended, if the switch was its last, and
/// unpack the message. A value sent with it must have been read first: it
/// may be on the ended greenlet's stack.
///
/// # Safety
/// `wire` is what a switch on this thread returned, settled only here.
#[inline(always)]
pub(crate) unsafe fn settle(wire: Wire) -> Msg {
    let ended = wire.ended();
    if !ended.is_null() {
        // SAFETY: per the caller.
        unsafe { release_ended(ended) };
    }
    wire.msg()
}

/// Opens an arrival that may carry a `V`: reads the value, if a `Value` was
/// sent, before settling the message (the value may be on the stack of the
/// greenlet whose last switch this was, which settling releases).
///
/// # Safety
/// `arrival` is what a switch on this thread returned to a greenlet that
/// waits for a `V` (so a `Value` comes with the address of one), opened
/// only here.
#[inline(always)]
pub(crate) unsafe fn open<V>(arrival: Arrival) -> (Option<V>, Msg) {
    // SAFETY: per the caller.
    unsafe {
        let v = arrival
            .wire
            .carries_value()
            .then(|| arrival.val.cast::<V>().read());
        let msg = if arrival.wire.is_value() {
            Msg::Value
        } else {
            settle(arrival.wire)
        };
        (v, msg)
    }
}

/// Gives an ended greenlet's stack back and drops the reference it held on
/// itself while it ran.
///
/// # Safety
/// `g` is a greenlet of this thread that has just made its last switch.
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
/// returns here (see [`context::prepare`]). Runs the body, which never
/// returns: it ends with [`finish`].
///
/// # Safety
/// Entered only by [`context::switch`] on a stack prepared by
/// `Header::set_coro` with this `B`, as the running greenlet.
pub(crate) unsafe extern "C" fn enter<B: FnOnce(Arrival) -> Infallible>(
    wire: Wire,
    val: *mut (),
) -> ! {
    let g = CURRENT.with(|c| c.get());
    // SAFETY: we are `g`, entered for the first time; the body was written
    // for us with type `B`.
    let body = unsafe {
        (*g).set_state(State::Started);
        (*g).running().take_body::<B>()
    };
    match body(Arrival { wire, val }) {}
}

/// The running greenlet `g`'s last switch: to `to` (null: the thread's
/// root), with `msg` and `val`.
///
/// # Safety
/// `g` is the running greenlet, not the root, and its body is done with:
/// everything of it on this stack that needed dropping was dropped, and it
/// forgot its own reference, for whoever receives this switch to release
/// (with the stack, after reading `val`). `to`, `msg` and `val` as for
/// [`switch_from`].
#[inline(always)]
pub(crate) unsafe fn finish(g: *const Header, to: *const Header, msg: Msg, val: *mut ()) -> ! {
    // SAFETY: per the caller.
    unsafe {
        (*g).set_state(State::Dead);
        (*g).set_recv(Recv::Nothing);
        let to = if to.is_null() { root_ptr() } else { to };
        jump(to, Wire::last(msg, g), val, (*g).sp.as_ptr());
    }
    unreachable!("a greenlet that ended was resumed");
}
