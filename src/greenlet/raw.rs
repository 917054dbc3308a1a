//! Raw greenlets: python greenlet's contract, switch by switch.
//!
//! A [`RawGreenlet`] is made with a function and a parent (the greenlet that
//! was running when it was made). The first `switch(v)` starts the function
//! with `v`; later switches resume the suspended `switch` call, which returns
//! the value sent. When the function returns, its value goes to the parent;
//! a panic goes to the parent too, and unwinds there.
//!
//! Values are typed per handle: `RawGreenlet<V>` sends and receives `V`.
//! Greenlets that exchange values must agree on the type; a mismatch is
//! caught at the switch, before anything moves (`SwitchError::TypeMismatch`).
//!
//! Lifetime: the greenlet lives while it has handles (and children whose
//! parent it is). When the last handle goes, an unstarted greenlet is dropped
//! unrun and a suspended one is killed: `GreenletExit` is thrown into it,
//! its destructors run, and control comes back to the dropper.

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use super::context::Arrival;
use super::header::{Header, HeaderRef, Kind, Msg, Payload, Recv, State, ValueType};
use super::switch::{current_or_root, finish, open, root_ptr, switch_from};
use crate::stack::{DEFAULT_STACK_SIZE, Stack, StackError, checked_size};

/// The polite kill: thrown into a greenlet by [`RawGreenlet::throw`], by
/// dropping its last handle, or by [`Greenlet::kill`](crate::Greenlet::kill).
///
/// It unwinds the greenlet's stack like a panic (destructors run) but counts
/// as a normal end. Code that catches unwinds can recognise it with
/// `payload.is::<GreenletExit>()` and should let it continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreenletExit;

impl fmt::Display for GreenletExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("greenlet killed by GreenletExit")
    }
}

impl std::error::Error for GreenletExit {}

/// Why a switch could not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchError {
    /// The target belongs to another thread; greenlets never change threads.
    WrongThread,
    /// The target waits for a value of another type.
    TypeMismatch {
        /// The type the target waits for.
        expected: &'static str,
        /// The type that was sent.
        sent: &'static str,
    },
    /// The target is parked in the hub (sleeping, joining, waiting on I/O);
    /// only the hub may resume it. Use `Greenlet::kill` to interrupt it.
    Parked,
    /// The target cannot receive anything (it is the hub of a worker).
    NotReceiving,
    /// Instead of a value, this greenlet got back the news that the greenlet
    /// it was waiting on ended by `GreenletExit`.
    Exited,
    /// Setting this parent would make the parent chain a cycle.
    ParentCycle,
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwitchError::WrongThread => {
                f.write_str("cannot switch to a greenlet of another thread")
            }
            SwitchError::TypeMismatch { expected, sent } => write!(
                f,
                "cannot switch: the greenlet waits for a `{expected}` but was sent a `{sent}`"
            ),
            SwitchError::Parked => f.write_str(
                "cannot switch to a greenlet parked in the hub; use Greenlet::kill to interrupt it",
            ),
            SwitchError::NotReceiving => f.write_str("cannot switch to the hub"),
            SwitchError::Exited => f.write_str("the greenlet ended by GreenletExit"),
            SwitchError::ParentCycle => f.write_str("cyclic parent chain"),
        }
    }
}

impl std::error::Error for SwitchError {}

/// A greenlet you switch to explicitly, as in python's `greenlet`.
///
/// ```
/// use greenlet::RawGreenlet;
///
/// let doubler = RawGreenlet::new(|mut n: i32| loop {
///     // Send the double back to whoever switched to us; wait for the next.
///     n = RawGreenlet::<i32>::current().parent().unwrap().switch(n * 2);
/// });
/// assert_eq!(doubler.switch(3), 6);
/// assert_eq!(doubler.switch(21), 42);
/// ```
///
/// A raw greenlet stays on the thread that made it, so the handle is not
/// `Send`:
///
/// ```compile_fail
/// let g = greenlet::RawGreenlet::new(|v: ()| v);
/// std::thread::spawn(move || g.switch(()));
/// ```
pub struct RawGreenlet<V: 'static = ()> {
    hdr: HeaderRef,
    _not_send: PhantomData<*const V>,
}

/// Options for a new [`RawGreenlet`]: name, stack size, parent.
pub struct RawBuilder {
    name: Option<Box<str>>,
    stack_size: usize,
    parent: Option<HeaderRef>,
}

impl Default for RawBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RawBuilder {
    /// Default options: no name, the default stack size, the current
    /// greenlet as parent.
    pub fn new() -> Self {
        RawBuilder {
            name: None,
            stack_size: DEFAULT_STACK_SIZE,
            parent: None,
        }
    }

    /// Names the greenlet (shown in panics and stack overflow reports).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into().into_boxed_str());
        self
    }

    /// Sets the stack size in bytes (at least [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE)).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// Sets the parent (the default is the current greenlet). It must belong
    /// to this thread; `build` checks.
    pub fn parent<W>(mut self, parent: &RawGreenlet<W>) -> Self {
        self.parent = Some(parent.hdr.clone());
        self
    }

    /// Makes the greenlet; it starts at its first switch.
    pub fn build<V, F>(self, f: F) -> Result<RawGreenlet<V>, StackError>
    where
        V: 'static,
        F: FnOnce(V) -> V + 'static,
    {
        let size = checked_size(self.stack_size)?;
        crate::stack::check_fits::<F>(size)?;
        let stack = Stack::take(size)?;
        let parent = match self.parent {
            Some(p) if !p.on_this_thread() => {
                return Err(StackError::Os {
                    message: "a raw greenlet's parent must belong to the same thread".into(),
                });
            }
            Some(p) => p,
            // SAFETY: the current greenlet is alive while it runs.
            None => unsafe { HeaderRef::clone_from_ptr(current_or_root()) },
        };
        // Its one reference is the handle's.
        let hdr = HeaderRef::new_bare(Kind::Raw, self.name, size);
        hdr.bind_to_current_thread();
        crate::hub::adopt_raw(&hdr);
        let this = hdr.clone();
        // SAFETY: a new greenlet, on its own thread, referenced by nobody
        // else yet.
        unsafe {
            hdr.set_coro(stack, move |first: Arrival| {
                raw_body::<V, F>(first, this, f)
            });
            hdr.set_recv(Recv::Value(ValueType::of::<V>()));
            adopt(&parent);
            hdr.set_parent(Some(parent));
            hdr.raw_handles().set(1);
        }
        Ok(RawGreenlet {
            hdr,
            _not_send: PhantomData,
        })
    }
}

/// The body every raw greenlet's coroutine runs. It ends with the
/// greenlet's last switch, to its first live parent.
fn raw_body<V: 'static, F: FnOnce(V) -> V>(first: Arrival, this: HeaderRef, f: F) -> Infallible {
    // The first switch sent the start value. A panic or an exit that
    // reaches a greenlet before it started (its child ended so) ends it at
    // once, passed on to its own parent.
    // SAFETY: our first arrival; we were made waiting for a `V`.
    let (arg, msg) = unsafe { open::<V>(first) };
    // SAFETY: we are the greenlet, running on its thread.
    unsafe { this.set_recv(Recv::Nothing) };
    let result: Result<V, Payload> = match (arg, msg) {
        (Some(arg), _) => catch_unwind(AssertUnwindSafe(move || f(arg))),
        (None, Msg::Unwind(p)) => Err(p),
        (None, _) => Err(Box::new(GreenletExit)),
    };
    // SAFETY: we are `this`, on our stack, and `f` has returned.
    unsafe { crate::sync::local::drop_locals(&this) };
    // SAFETY: still running on our own thread.
    let to = unsafe { live_parent(&this) };
    let g = this.as_ptr();
    // Whoever we switch to last releases this reference, with our stack.
    std::mem::forget(this);
    let msg = match result {
        // SAFETY: `to` is alive and suspended (or unstarted) on this thread.
        Ok(v) if unsafe { (*to).waits_for::<V>() } => {
            let v = ManuallyDrop::new(v);
            // SAFETY: `to` waits for a `V`, which stays on this stack until
            // whoever `to` is releases it, after reading it; nothing else of
            // ours is left to drop.
            unsafe { finish(g, to, Msg::Value, (&raw const v).cast_mut().cast()) }
        }
        Ok(v) => {
            // SAFETY: as above.
            let e = unsafe { mismatch::<V>(to) };
            drop(v);
            Msg::Unwind(Box::new(format!(
                "a greenlet's return value could not go to its parent: {e}"
            )))
        }
        Err(p) if p.is::<GreenletExit>() => Msg::Exited,
        Err(p) => Msg::Unwind(p),
    };
    // SAFETY: as above, with no value.
    unsafe { finish(g, to, msg, std::ptr::null_mut()) }
}

/// Counts `parent` as referenced by one more child.
///
/// # Safety
/// On `parent`'s thread.
unsafe fn adopt(parent: &Header) {
    // SAFETY: per the caller.
    let n = unsafe { parent.raw_handles() };
    n.set(n.get() + 1);
}

/// The first greenlet up the parent chain of `g` (itself included) that is
/// not dead; the root at worst.
///
/// # Safety
/// On `g`'s thread, `g` alive.
#[inline(always)]
unsafe fn live_target(g: *const Header) -> *const Header {
    let mut t = g;
    // SAFETY: parents are kept alive by their children's references and all
    // share this thread.
    unsafe {
        while (*t).state() == State::Dead {
            t = match (*t).parent() {
                Some(p) => p.as_ptr(),
                None => return root_ptr(),
            };
        }
    }
    t
}

/// Where a finishing greenlet's result goes: its first live parent.
///
/// # Safety
/// As for [`live_target`].
unsafe fn live_parent(g: &Header) -> *const Header {
    // SAFETY: per the caller.
    unsafe {
        match g.parent() {
            Some(p) => live_target(p.as_ptr()),
            None => root_ptr(),
        }
    }
}

/// Why `to`, which does not wait for a `V`, cannot be sent one.
///
/// # Safety
/// `to` is alive and on this thread, and not the running greenlet.
#[cold]
unsafe fn mismatch<V: 'static>(to: *const Header) -> SwitchError {
    // SAFETY: per the caller.
    match unsafe { (*to).recv() } {
        Recv::Value(ty) => SwitchError::TypeMismatch {
            expected: ty.name(),
            sent: std::any::type_name::<V>(),
        },
        Recv::Parked => SwitchError::Parked,
        Recv::Nothing => SwitchError::NotReceiving,
    }
}

/// Switches to `to` with `msg` and no value, waiting for a `V`; what comes
/// back.
///
/// # Safety
/// As for `switch_from`; `to` is not the running greenlet.
unsafe fn switch_and_receive<V: 'static>(to: *const Header, msg: Msg) -> Result<V, SwitchError> {
    // SAFETY: per the caller.
    unsafe { switch_from_and_receive(current_or_root(), to, msg, std::ptr::null_mut()) }
}

/// Switches from `cur`, the running greenlet (the root included), to `to`
/// with `msg` and `val`, waiting for a `V`; what comes back.
///
/// # Safety
/// As for `switch_from`.
#[inline(always)]
unsafe fn switch_from_and_receive<V: 'static>(
    cur: *const Header,
    to: *const Header,
    msg: Msg,
    val: *mut (),
) -> Result<V, SwitchError> {
    // SAFETY: `cur` is us; per the caller for the rest.
    let back = unsafe {
        // Resumed, our `Recv` is left as it is: it is only read while we
        // are suspended, and every way of suspending sets it first.
        (*cur).set_recv(Recv::Value(ValueType::of::<V>()));
        switch_from(cur, to, msg, val)
    };
    if back.wire.is_value() {
        // SAFETY: whoever sent a `Value` checked that we wait for a `V` and
        // sent its address; the sender is suspended until after this read.
        let v = unsafe { back.val.cast::<V>().read() };
        // Only a hub greenlet is ever interrupted (killed, timed out); the
        // flags of any other stay clear.
        // SAFETY: `cur` is the running greenlet, on this thread.
        unsafe { crate::hub::park::check_interrupts(&*cur) };
        return Ok(v);
    }
    // SAFETY: as above.
    unsafe { receive_other(cur, back) }
}

/// Sends `v` from `cur`, the running greenlet, to `to`, waiting for a `V`
/// back.
///
/// # Safety
/// As for `switch_from`; `to` waits for a `V`.
#[inline(always)]
unsafe fn send<V: 'static>(cur: *const Header, to: *const Header, v: V) -> Result<V, SwitchError> {
    let v = ManuallyDrop::new(v);
    // SAFETY: per the caller; `v` stays readable at the address sent while
    // we are suspended, and the receiver moves it out (hence `ManuallyDrop`).
    unsafe { switch_from_and_receive(cur, to, Msg::Value, (&raw const v).cast_mut().cast()) }
}

/// [`switch_from_and_receive`]'s arrival with anything but a plain value.
///
/// # Safety
/// `back` is what `cur`, the running greenlet, was resumed with, waiting
/// for a `V`.
#[cold]
#[inline(never)]
unsafe fn receive_other<V: 'static>(cur: *const Header, back: Arrival) -> Result<V, SwitchError> {
    // SAFETY: per the caller; `cur` is the running greenlet.
    let (v, msg) = unsafe {
        let opened = open::<V>(back);
        crate::hub::park::check_interrupts(&*cur);
        opened
    };
    match msg {
        Msg::Value => Ok(v.expect("a `Value` message comes with its value")),
        Msg::Unwind(p) => resume_unwind(p),
        Msg::Exited => Err(SwitchError::Exited),
        Msg::Wake => unreachable!("a switching greenlet is never woken by the hub"),
    }
}

impl<V: 'static> RawGreenlet<V> {
    /// Makes a greenlet that will run `f` on its first switch, with the
    /// current greenlet as parent and the default stack size.
    ///
    /// # Panics
    /// If no stack can be had (see [`RawBuilder::build`] for the error).
    pub fn new<F: FnOnce(V) -> V + 'static>(f: F) -> Self {
        RawBuilder::new()
            .build(f)
            .unwrap_or_else(|e| panic!("greenlet: {e}"))
    }

    /// The greenlet running now (the thread's main greenlet outside any).
    pub fn current() -> Self {
        let p = current_or_root();
        // SAFETY: the running greenlet is alive; its raw handle count is a
        // local field and we are on its thread.
        unsafe {
            let hdr = HeaderRef::clone_from_ptr(p);
            adopt(&hdr);
            RawGreenlet {
                hdr,
                _not_send: PhantomData,
            }
        }
    }

    /// Switches to this greenlet, sending `v`; returns what is sent back when
    /// some greenlet switches here again.
    ///
    /// # Panics
    /// On a [`SwitchError`] (see [`try_switch`](Self::try_switch)). A panic in
    /// a child greenlet that ends it is resumed here, in its parent.
    #[inline(always)]
    pub fn switch(&self, v: V) -> V {
        self.try_switch(v)
            .unwrap_or_else(|e| panic!("greenlet switch failed: {e}"))
    }

    /// [`switch`](Self::switch), returning errors instead of panicking.
    ///
    /// A dead greenlet's switch goes to its first live parent. Switching to
    /// the running greenlet returns `v` at once.
    #[inline(always)]
    pub fn try_switch(&self, v: V) -> Result<V, SwitchError> {
        // A `RawGreenlet` is made only on its greenlet's thread (`build`,
        // `current`, `parent`, `cast`, and `RemoteGreenlet::to_local`,
        // which checks) and cannot leave it (it is neither Send nor Sync).
        debug_assert!(self.hdr.on_this_thread());
        let to = self.hdr.as_ptr();
        let cur = current_or_root();
        // The usual case first: a greenlet that waits for a `V` is alive,
        // and suspended unless it is us (the running greenlet's `Recv` is
        // stale).
        // SAFETY: on the target's thread (above); it is kept alive by our
        // handle.
        if to != cur && unsafe { (*to).waits_for::<V>() } {
            // SAFETY: `to` waits for a `V` and is not us.
            return unsafe { send(cur, to, v) };
        }
        self.try_switch_other(v)
    }

    /// [`try_switch`](Self::try_switch) to a greenlet that is dead, running,
    /// or not waiting for a `V`.
    #[cold]
    #[inline(never)]
    fn try_switch_other(&self, v: V) -> Result<V, SwitchError> {
        // SAFETY: as in `try_switch`; parents are kept alive by their
        // children.
        unsafe {
            let to = live_target(self.hdr.as_ptr());
            let cur = current_or_root();
            if to == cur {
                return Ok(v);
            }
            if !(*to).waits_for::<V>() {
                return Err(mismatch::<V>(to));
            }
            send(cur, to, v)
        }
    }

    /// Throws [`GreenletExit`] into this greenlet.
    ///
    /// A suspended greenlet unwinds from its pending switch (destructors run)
    /// and ends; an unstarted one never runs; a dead one is left alone. The
    /// end counts as normal and its parent is resumed: if that is the caller,
    /// `throw` returns `None`. If the greenlet catches the exit and switches
    /// back a value instead, `throw` returns it.
    ///
    /// # Panics
    /// If the greenlet belongs to another thread or is parked in the hub.
    pub fn throw(&self) -> Option<V> {
        assert!(
            self.hdr.on_this_thread(),
            "greenlet throw failed: {}",
            SwitchError::WrongThread
        );
        let g = self.hdr.as_ptr();
        // SAFETY: on the greenlet's thread; our handle keeps it alive.
        unsafe {
            let cur = current_or_root();
            match (*g).state() {
                State::Dead => None,
                State::Started if g == cur => resume_unwind(Box::new(GreenletExit)),
                State::Unstarted => {
                    discard(&self.hdr);
                    let to = live_parent(&*g);
                    if to == cur {
                        return None;
                    }
                    finish_throw(switch_and_receive(to, Msg::Exited))
                }
                State::Started => {
                    match (*g).recv() {
                        Recv::Value(..) => {}
                        Recv::Parked => panic!("greenlet throw failed: {}", SwitchError::Parked),
                        Recv::Nothing => {
                            panic!("greenlet throw failed: {}", SwitchError::NotReceiving)
                        }
                    }
                    finish_throw(switch_and_receive(g, Msg::Unwind(Box::new(GreenletExit))))
                }
            }
        }
    }

    /// The parent: where this greenlet's result goes when it ends. `None`
    /// for a thread's main greenlet.
    pub fn parent(&self) -> Option<RawGreenlet<V>> {
        // SAFETY: raw handles live on the greenlet's thread (they are !Send).
        unsafe {
            self.hdr.parent().map(|p| {
                adopt(p);
                RawGreenlet {
                    hdr: p.clone(),
                    _not_send: PhantomData,
                }
            })
        }
    }

    /// Reparents this greenlet. Fails if `parent` belongs to another thread
    /// or if the parent chain would loop back to this greenlet.
    pub fn set_parent<W>(&self, parent: &RawGreenlet<W>) -> Result<(), SwitchError> {
        if !parent.hdr.on_this_thread() || !self.hdr.on_this_thread() {
            return Err(SwitchError::WrongThread);
        }
        // SAFETY: both on this thread; parents are alive through children.
        unsafe {
            let mut p = Some(parent.hdr.as_ptr());
            while let Some(cur) = p {
                if cur == self.hdr.as_ptr() {
                    return Err(SwitchError::ParentCycle);
                }
                p = (*cur).parent().map(|h| h.as_ptr());
            }
            adopt(&parent.hdr);
            if let Some(old) = self.hdr.set_parent(Some(parent.hdr.clone())) {
                release(old);
            }
        }
        Ok(())
    }

    /// The same greenlet, as a handle that sends and receives `W`.
    pub fn cast<W: 'static>(&self) -> RawGreenlet<W> {
        // SAFETY: on the greenlet's thread (raw handles are !Send).
        unsafe { adopt(&self.hdr) };
        RawGreenlet {
            hdr: self.hdr.clone(),
            _not_send: PhantomData,
        }
    }

    /// True once the function has returned, panicked or been killed.
    pub fn is_dead(&self) -> bool {
        // SAFETY: on the greenlet's thread (raw handles are !Send).
        unsafe { self.hdr.state() == State::Dead }
    }

    /// True once the greenlet has been switched to at least once.
    pub fn is_started(&self) -> bool {
        // SAFETY: as above.
        unsafe { self.hdr.state() != State::Unstarted }
    }

    /// Started and not dead (python's `bool(greenlet)`).
    pub fn is_active(&self) -> bool {
        self.is_started() && !self.is_dead()
    }

    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.hdr.id
    }

    /// The name given at creation, or `Greenlet-<id>`.
    pub fn name(&self) -> String {
        self.hdr.display_name()
    }

    /// A `Send + Sync` reference to this greenlet, for other threads to hold.
    /// They cannot switch to it (they get [`SwitchError::WrongThread`]).
    pub fn remote(&self) -> RemoteGreenlet {
        RemoteGreenlet {
            hdr: self.hdr.clone(),
        }
    }
}

fn finish_throw<V>(r: Result<V, SwitchError>) -> Option<V> {
    match r {
        Ok(v) => Some(v),
        Err(SwitchError::Exited) => None,
        Err(e) => panic!("greenlet throw failed: {e}"),
    }
}

/// Drops an unstarted greenlet's function; it never runs.
///
/// # Safety
/// On the greenlet's thread; it is unstarted.
unsafe fn discard(g: &HeaderRef) {
    // SAFETY: per the caller. Taking the coroutine out first means its
    // function (which holds a reference to the cell) is dropped after the
    // header is consistent again.
    unsafe {
        g.set_state(State::Dead);
        g.set_recv(Recv::Nothing);
        drop(g.take_running());
    }
}

/// Drops one raw reference (a handle or a child's parent link) to `g`, and
/// ends `g` if it was the last. A dead greenlet with no handles left lets go
/// of its parent in turn.
///
/// # Safety
/// On `g`'s thread.
unsafe fn release(g: HeaderRef) {
    // SAFETY: per the caller.
    let n = unsafe { g.raw_handles() };
    n.set(n.get() - 1);
    if n.get() > 0 || g.kind != Kind::Raw {
        return;
    }
    // SAFETY: on g's thread; `g` keeps it alive throughout.
    unsafe {
        let running = g.as_ptr() == current_or_root();
        match (g.state(), g.recv()) {
            (State::Unstarted, _) => discard(&g),
            (State::Started, Recv::Parked) if !running => {
                // Asleep in the hub: the hub delivers the kill when it wakes.
                crate::hub::interrupt(&g, crate::greenlet::header::INTERRUPT_KILL);
            }
            (State::Started, Recv::Value(..)) if !running => kill_suspended(&g),
            _ => {}
        }
        if g.state() == State::Dead
            && let Some(parent) = g.set_parent(None)
        {
            release(parent);
        }
    }
}

/// Kills a suspended greenlet whose last handle went: like python's garbage
/// collection, it becomes a child of the current greenlet and gets
/// `GreenletExit`, so control comes back here when it is gone.
///
/// # Safety
/// On `g`'s thread; `g` is suspended and receiving values.
unsafe fn kill_suspended(g: &HeaderRef) {
    // SAFETY: per the caller; the current greenlet is alive.
    unsafe {
        let cur = current_or_root();
        let me = HeaderRef::clone_from_ptr(cur);
        adopt(&me);
        if let Some(old) = g.set_parent(Some(me)) {
            release(old);
        }
    }
    // This runs in a destructor: whatever comes back (normally the news of
    // the exit; a panic from its destructors has been printed already) must
    // not unwind out of here.
    let to = g.as_ptr();
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as above; `g` is suspended and receiving.
        let _ = unsafe { switch_and_receive::<()>(to, Msg::Unwind(Box::new(GreenletExit))) };
    }));
}

impl<V: 'static> Clone for RawGreenlet<V> {
    fn clone(&self) -> Self {
        // SAFETY: raw handles stay on the greenlet's thread.
        unsafe { adopt(&self.hdr) };
        RawGreenlet {
            hdr: self.hdr.clone(),
            _not_send: PhantomData,
        }
    }
}

impl<V: 'static> Drop for RawGreenlet<V> {
    fn drop(&mut self) {
        // SAFETY: raw handles stay on the greenlet's thread.
        unsafe { release(self.hdr.clone()) };
    }
}

impl<V: 'static> PartialEq for RawGreenlet<V> {
    fn eq(&self, other: &Self) -> bool {
        self.hdr == other.hdr
    }
}

impl<V: 'static> fmt::Debug for RawGreenlet<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawGreenlet")
            .field("id", &self.hdr.id)
            .field("name", &self.hdr.display_name())
            .finish()
    }
}

/// A `Send + Sync` reference to a raw greenlet, made by
/// [`RawGreenlet::remote`]. It keeps the greenlet's memory alive but does not
/// keep the greenlet from being killed when its last `RawGreenlet` goes.
#[derive(Clone)]
pub struct RemoteGreenlet {
    hdr: HeaderRef,
}

impl RemoteGreenlet {
    /// The greenlet's id.
    pub fn id(&self) -> u64 {
        self.hdr.id
    }

    /// Switches to the greenlet: only possible on its own thread, elsewhere
    /// [`SwitchError::WrongThread`].
    pub fn try_switch<V: 'static>(&self, v: V) -> Result<V, SwitchError> {
        self.to_local::<V>()?.try_switch(v)
    }

    /// A `RawGreenlet` handle again, on the greenlet's own thread.
    pub fn to_local<V: 'static>(&self) -> Result<RawGreenlet<V>, SwitchError> {
        if !self.hdr.on_this_thread() {
            return Err(SwitchError::WrongThread);
        }
        // SAFETY: on the greenlet's thread.
        unsafe { adopt(&self.hdr) };
        Ok(RawGreenlet {
            hdr: self.hdr.clone(),
            _not_send: PhantomData,
        })
    }
}

impl fmt::Debug for RemoteGreenlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteGreenlet")
            .field("id", &self.hdr.id)
            .finish()
    }
}
