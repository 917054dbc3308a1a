//! The greenlet header: what every greenlet is, whatever runs on it.
//!
//! # Layout and ownership
//!
//! A greenlet is one heap allocation: a `#[repr(C)]` cell whose first field is
//! a [`Header`], followed by data typed by whoever made it (the closure and
//! its result slot for a spawned greenlet; nothing more for a raw one, whose
//! closure waits on its stack and whose start value comes with the first
//! switch). The header is reference counted by hand ([`HeaderRef`]);
//! its `vtable` knows the real type, to start the closure and free the cell.
//! This keeps a spawn to one allocation (served by a per-thread cache, see
//! `spawn::cache`) and lets run queues hold thin pointers.
//!
//! Everything other greenlets or the hub point to (wait-list entries, timers,
//! the run queue) points at the header, never into a stack (DESIGN.md §7).
//!
//! # Two kinds of field
//!
//! - Shared fields are atomics (`park`, `life`, `interrupt`) or immutable
//!   after creation (`id`, `name`, `stack_size`). Any thread may touch them.
//! - Local fields (`run`, `parent`, `recv`, ...) belong to the greenlet's
//!   thread. Before a greenlet starts that is whoever holds it (a spawned
//!   greenlet can be stolen by another worker until then); once started it is
//!   the thread recorded in `thread`, for good. They are `Cell`s and
//!   `UnsafeCell`s reached through `unsafe` accessors whose contract is "on
//!   the owning thread".
//!
//! # States
//!
//! `state` (local) is the switching state: `Unstarted`, `Started` (it runs
//! if it is the current greenlet of its thread, else it is inside a switch,
//! waiting to be resumed) or `Dead`. `park` (shared) is the hub's view, see
//! `hub::park`. `life` (shared) is the spawned greenlet's lifecycle, see
//! `spawn`.

use std::any::TypeId;
use std::cell::{Cell, UnsafeCell};
use std::convert::Infallible;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use super::context::Arrival;
use crate::stack::Stack;

/// A panic payload, as `catch_unwind` gives it.
pub(crate) type Payload = Box<dyn std::any::Any + Send + 'static>;

/// A [`Msg`] as it crosses a stack switch: one machine word, passed in a
/// register: the message's tag in the low bits, and above them the address
/// of the greenlet whose last switch this is, if it is one (headers are
/// 8-aligned). A panic payload waits in the thread's `MAILBOX` meanwhile.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct Wire(pub(super) usize);

const TAG_VALUE: usize = 0;
const TAG_WAKE: usize = 1;
const TAG_EXITED: usize = 2;
const TAG_UNWIND: usize = 3;
const TAG_MASK: usize = 3;

thread_local! {
    static MAILBOX: Cell<Option<Payload>> = const { Cell::new(None) };
}

impl Wire {
    /// `msg`, sent by the greenlet `ended` as its last switch.
    #[inline(always)]
    pub(crate) fn last(msg: Msg, ended: *const Header) -> Wire {
        debug_assert_eq!(ended as usize & TAG_MASK, 0);
        Wire(ended as usize | msg.tag())
    }

    /// Whether it is `Msg::Value`, from a greenlet that goes on.
    #[inline(always)]
    pub(crate) fn is_value(self) -> bool {
        self.0 == TAG_VALUE
    }

    /// Whether it is `Msg::Wake`, from a greenlet that goes on.
    #[inline(always)]
    pub(crate) fn is_wake(self) -> bool {
        self.0 == TAG_WAKE
    }

    /// Whether it is `Msg::Value` (from any greenlet).
    #[inline(always)]
    pub(crate) fn carries_value(self) -> bool {
        self.0 & TAG_MASK == TAG_VALUE
    }

    /// The greenlet whose last switch this is, or null.
    #[inline(always)]
    pub(crate) fn ended(self) -> *const Header {
        (self.0 & !TAG_MASK) as *const Header
    }

    /// The message, taking its payload out of the mailbox.
    #[inline(always)]
    pub(crate) fn msg(self) -> Msg {
        Msg::from_tag(self.0 & TAG_MASK)
    }
}

impl Msg {
    #[inline(always)]
    fn tag(self) -> usize {
        match self {
            Msg::Value => TAG_VALUE,
            Msg::Wake => TAG_WAKE,
            Msg::Exited => TAG_EXITED,
            Msg::Unwind(p) => {
                MAILBOX.with(|m| m.set(Some(p)));
                TAG_UNWIND
            }
        }
    }

    #[inline(always)]
    fn from_tag(tag: usize) -> Msg {
        match tag {
            TAG_VALUE => Msg::Value,
            TAG_WAKE => Msg::Wake,
            TAG_EXITED => Msg::Exited,
            _ => Msg::Unwind(
                MAILBOX
                    .with(|m| m.take())
                    .expect("an unwinding message has its payload"),
            ),
        }
    }

    /// Packs the message alone (what a resumed greenlet receives).
    #[inline(always)]
    pub(crate) fn into_wire(self) -> Wire {
        Wire(self.tag())
    }
}

/// What a greenlet finds when it is resumed.
pub(crate) enum Msg {
    /// A value was sent, at the address that crossed the switch with the
    /// message (or none was: the first resume of a spawned greenlet).
    Value,
    /// The hub resumed a parked greenlet.
    Wake,
    /// Raise this payload where the receiver is suspended.
    Unwind(Payload),
    /// A greenlet ended by `GreenletExit`; the receiver was its parent.
    Exited,
}

/// The switching state of a greenlet, seen from its own thread. A started
/// greenlet runs if it is its thread's current one, else it is suspended
/// (inside a switch, waiting to be resumed).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    Unstarted,
    Started,
    Dead,
}

/// What a suspended greenlet is waiting to receive. Every way of suspending
/// sets it; while the greenlet runs it is stale and nobody reads it.
#[derive(Clone, Copy)]
pub(crate) enum Recv {
    /// Nothing can be delivered to it (it is dead, or the root of a worker
    /// thread).
    Nothing,
    /// A value of this type, sent by address with the switch.
    Value(ValueType),
    /// A wake-up from the hub: only the hub may resume it.
    Parked,
}

/// The type a greenlet waits to receive, in one word: a pointer to a
/// constant describing it. `Recv::Nothing` and `Recv::Parked` are the
/// addresses of two statics of their own, with type ids no value has, so
/// that checking for a type reads the word and the type id behind it and
/// nothing else.
#[derive(Clone, Copy)]
pub(crate) struct ValueType(&'static TypeInfo);

pub(crate) struct TypeInfo {
    id: TypeId,
    name: fn() -> &'static str,
}

struct InfoOf<V>(std::marker::PhantomData<V>);

/// The type behind `Recv::Nothing` (private: no value of it is ever sent).
struct NothingMarker;
/// The type behind `Recv::Parked`.
struct ParkedMarker;

static RECV_NOTHING: TypeInfo = TypeInfo {
    id: TypeId::of::<NothingMarker>(),
    name: std::any::type_name::<NothingMarker>,
};
static RECV_PARKED: TypeInfo = TypeInfo {
    id: TypeId::of::<ParkedMarker>(),
    name: std::any::type_name::<ParkedMarker>,
};

impl<V: 'static> InfoOf<V> {
    const INFO: TypeInfo = TypeInfo {
        id: TypeId::of::<V>(),
        name: std::any::type_name::<V>,
    };
}

impl ValueType {
    #[inline(always)]
    pub(crate) fn of<V: 'static>() -> ValueType {
        ValueType(&InfoOf::<V>::INFO)
    }

    /// The type's name, for errors.
    pub(crate) fn name(self) -> &'static str {
        (self.0.name)()
    }
}

/// What made a greenlet, which decides how its handles behave.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// A thread's native stack (its main greenlet, or a worker's hub).
    Root,
    /// A `RawGreenlet`: dropping its last handle kills it.
    Raw,
    /// A greenlet scheduled by the hub (`spawn` and friends).
    Spawned,
}

/// Type-specific operations on a greenlet cell. Only spawned greenlets use
/// the first three; raw and root cells have no-op or unreachable entries.
pub(crate) struct VTable {
    /// Creates the coroutine on a stack from this thread's pool, handing it
    /// the reference; false if no stack could be had (the greenlet is then
    /// completed with that error). For a claimed, unstarted greenlet, on the
    /// thread that will run it.
    pub(crate) start: unsafe fn(HeaderRef) -> bool,
    /// Completes a claimed, unstarted greenlet as killed, without running
    /// it; drops its closure unless the closure must stay on another thread.
    pub(crate) cancel: unsafe fn(&Header),
    /// Drops the closure, if still there. On the greenlet's own thread.
    pub(crate) drop_func: unsafe fn(&Header),
    /// Runs a claimed, unstarted greenlet's closure right here, on the
    /// caller's own stack, and completes it (thread-pool jobs).
    pub(crate) run_here: unsafe fn(HeaderRef),
    /// Frees the cell. Called once, when the last reference goes.
    pub(crate) dealloc: unsafe fn(NonNull<Header>),
}

pub(crate) struct Header {
    refs: AtomicU32,
    /// In bytes; [`crate::stack::checked_size`] keeps it within a `u32`.
    stack_size: u32,
    pub(crate) vtable: &'static VTable,
    pub(crate) kind: Kind,
    /// A spawned greenlet's closure must stay on the spawning thread
    /// (`spawn_local`). Set once, before the cell is shared.
    pub(crate) local: bool,
    pub(crate) id: u64,
    /// Boxed twice to take one word: most greenlets have no name.
    name: Option<Box<Box<str>>>,
    /// The key of the thread the greenlet is bound to (0: not yet bound).
    thread: AtomicU64,
    /// The hub's parking state (`hub::park`).
    pub(crate) park: AtomicU8,
    /// Lifecycle of a spawned greenlet (`spawn`), and the pin of its worker
    /// (`hub::pin`).
    pub(crate) life: crate::loom::atomic::AtomicU8,
    /// Requests to interrupt: `INTERRUPT_KILL`, `INTERRUPT_TIMEOUT`.
    pub(crate) interrupt: AtomicU8,
    /// Set by the deadlock detector: the main greenlet's wait must fail.
    pub(crate) loop_exit: std::sync::atomic::AtomicBool,
    /// The worker it runs on once started (`hub::pin`).
    pub(crate) worker: crate::hub::pin::WorkerPin<crate::hub::Shared>,
    /// The next greenlet in its worker's list of wake-ups sent from other
    /// threads (`hub::Shared::push_woken`), while it is in that list.
    pub(crate) woken_next: std::sync::atomic::AtomicPtr<Header>,
    // --- local fields: owner thread only ---
    /// Its record while it has a coroutine, else null.
    run: Cell<*mut Running>,
    parent: UnsafeCell<Option<HeaderRef>>,
    state: Cell<State>,
    /// `Recv` in one word: the address of [`RECV_NOTHING`],
    /// [`RECV_PARKED`], or the `TypeInfo` of a `Recv::Value`.
    recv: Cell<*const TypeInfo>,
    /// The saved stack pointer while it does not run (and has a stack: the
    /// root's is the thread's).
    pub(crate) sp: Cell<usize>,
    /// Count of `RawGreenlet` handles (the last one kills a suspended greenlet).
    raw_handles: Cell<u32>,
    /// The main greenlet of a `run` (deadlock detection watches it).
    pub(crate) is_main: Cell<bool>,
}

/// What a greenlet needs only while it has a coroutine (from its start, or
/// from its creation for a raw greenlet, until the coroutine is gone). It
/// lives in the top bytes of the greenlet's own stack
/// ([`Stack::record_slot`]), not in the cell: a pooled stack's top is in
/// cache when a greenlet starts on it, and the cell, which stays around
/// until its last handle goes, is smaller (fewer cache lines to write at a
/// spawn and to read at a join).
///
/// The hub reaches into it while the greenlet is suspended (to flag a fired
/// timeout), but only through the header's `run` pointer: nothing else
/// points into a stack, as DESIGN.md §7 asks, and a copying-stack mode
/// could move the record off the stack (and repoint `run`) before copying
/// the stack out. (The saved stack pointer is in the header, where a switch
/// finds it in one load; such a mode would rebase it too.)
///
/// Owner thread only, like the header's local fields.
pub(crate) struct Running {
    /// The stack this record is at the top of (given back to the pool when
    /// the record is dropped).
    stack: Stack,
    /// The body, on the stack below the record, until the first switch
    /// into the greenlet moves it out.
    body: Cell<Option<Body>>,
    /// The id of a `Timeout` that fired and has yet to be raised (0: none).
    pub(crate) timeout_fired: Cell<u64>,
    /// A throw raised by `check_interrupts` is unwinding this stack.
    pub(crate) unwinding: Cell<bool>,
    /// Its slot in its worker's set of live greenlets (`hub::live`).
    pub(crate) live_index: Cell<usize>,
    /// Greenlet-local values (`sync::local`).
    pub(crate) locals: crate::sync::local::Locals,
}

/// A greenlet's body waiting on its stack for the greenlet to start.
#[derive(Clone, Copy)]
struct Body {
    at: *mut u8,
    /// Drops it in place, if it never runs.
    drop: unsafe fn(*mut u8),
}

const _: () = assert!(
    std::mem::size_of::<Running>() <= Stack::RECORD_BYTES
        && std::mem::align_of::<Running>() <= 16
        && Stack::RECORD_BYTES.is_multiple_of(16)
);

impl Running {
    /// Whether the greenlet has been entered (its body moved out).
    pub(crate) fn started(&self) -> bool {
        self.body.get().is_none()
    }

    /// Moves the body out of the stack, as the greenlet starts.
    ///
    /// # Safety
    /// Called once, by the greenlet itself on its first entry, with the
    /// type `B` that [`Header::set_coro`] was given.
    pub(crate) unsafe fn take_body<B>(&self) -> B {
        let body = self.body.take().expect("a greenlet is entered once");
        // SAFETY: per the caller: `set_coro` wrote a `B` there, and taking
        // `body` out of the cell means it is read only here.
        unsafe { body.at.cast::<B>().read() }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(body) = self.body.take() {
            // SAFETY: an unstarted greenlet's body is still on the stack,
            // which `self.stack` keeps until this record is gone.
            unsafe { (body.drop)(body.at) }
        }
    }
}

/// Drops a body left on the stack of a greenlet that never started.
///
/// # Safety
/// `at` holds a `B`, not used again.
unsafe fn drop_body<B>(at: *mut u8) {
    // SAFETY: per the caller.
    unsafe { at.cast::<B>().drop_in_place() }
}

/// `interrupt` bit: a kill is pending.
pub(crate) const INTERRUPT_KILL: u8 = 1;
/// `interrupt` bit: a `Timeout` fired (its id is in `Running::timeout_fired`).
/// Set and cleared by the greenlet's own thread only; kept beside the kill
/// bit so that a switch point looks at one byte for both.
pub(crate) const INTERRUPT_TIMEOUT: u8 = 2;

/// Greenlet ids are handed to each thread in blocks of this many, so that
/// spawning on several workers does not contend on one counter.
const ID_BLOCK: u64 = 1024;

static NEXT_ID_BLOCK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The next id of this thread's block, and the end of the block.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A process-unique greenlet id (unique, not in creation order across
/// threads).
#[inline]
fn next_id() -> u64 {
    IDS.with(|ids| {
        let (next, end) = ids.get();
        if next < end {
            ids.set((next + 1, end));
            return next;
        }
        let start = NEXT_ID_BLOCK.fetch_add(ID_BLOCK, Ordering::Relaxed);
        ids.set((start + 1, start + ID_BLOCK));
        start
    })
}

impl Header {
    pub(crate) fn new(
        vtable: &'static VTable,
        kind: Kind,
        name: Option<Box<str>>,
        stack_size: usize,
    ) -> Self {
        Header {
            refs: AtomicU32::new(1),
            stack_size: u32::try_from(stack_size).expect("stack sizes are checked to fit a u32"),
            vtable,
            kind,
            local: false,
            id: next_id(),
            name: name.map(Box::new),
            thread: AtomicU64::new(0),
            park: AtomicU8::new(0),
            life: crate::loom::atomic::AtomicU8::new(0),
            interrupt: AtomicU8::new(0),
            loop_exit: std::sync::atomic::AtomicBool::new(false),
            worker: crate::hub::pin::WorkerPin::new(),
            woken_next: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
            run: Cell::new(std::ptr::null_mut()),
            parent: UnsafeCell::new(None),
            state: Cell::new(State::Unstarted),
            recv: Cell::new(&RECV_NOTHING),
            sp: Cell::new(0),
            raw_handles: Cell::new(0),
            is_main: Cell::new(false),
        }
    }

    /// Its stack size in bytes (0 for a root).
    #[inline(always)]
    pub(crate) fn stack_size(&self) -> usize {
        self.stack_size as usize
    }

    /// The name to show: the user's, or `Greenlet-<id>`.
    pub(crate) fn display_name(&self) -> String {
        match &self.name {
            Some(n) => n.to_string(),
            None => format!("Greenlet-{}", self.id),
        }
    }

    /// The key of the thread this greenlet is bound to, 0 if none yet.
    #[inline(always)]
    pub(crate) fn thread_key(&self) -> u64 {
        self.thread.load(Ordering::Acquire)
    }

    /// Binds the greenlet to the calling thread.
    pub(crate) fn bind_to_current_thread(&self) {
        self.thread.store(thread_key(), Ordering::Release);
    }

    #[inline(always)]
    pub(crate) fn on_this_thread(&self) -> bool {
        self.thread_key() == thread_key()
    }

    // The accessors below touch local fields.
    //
    // Safety contract shared by all of them: the caller runs on the thread
    // that owns the greenlet (see the module docs), so no other thread
    // touches these fields concurrently; and it does not hold a reference
    // obtained from one of them across a switch.

    /// # Safety
    /// See the contract above.
    pub(crate) unsafe fn state(&self) -> State {
        self.state.get()
    }

    /// # Safety
    /// See the contract above.
    pub(crate) unsafe fn set_state(&self, s: State) {
        self.state.set(s)
    }

    /// What it waits to receive.
    ///
    /// # Safety
    /// See the contract above.
    #[inline(always)]
    pub(crate) unsafe fn recv(&self) -> Recv {
        let info = self.recv.get();
        if std::ptr::eq(info, &RECV_NOTHING) {
            Recv::Nothing
        } else if std::ptr::eq(info, &RECV_PARKED) {
            Recv::Parked
        } else {
            // SAFETY: any other address is that of a `TypeInfo` constant
            // stored by `set_recv`.
            Recv::Value(ValueType(unsafe { &*info }))
        }
    }

    /// Whether it waits for a `V` (if not, [`recv`](Self::recv) tells what
    /// it waits for).
    ///
    /// # Safety
    /// See the contract above.
    #[inline(always)]
    pub(crate) unsafe fn waits_for<V: 'static>(&self) -> bool {
        // SAFETY: `recv` is always the address of a `TypeInfo`: a static
        // or a constant stored by `set_recv`.
        unsafe { (*self.recv.get()).id == TypeId::of::<V>() }
    }

    /// Sets what it waits to receive.
    ///
    /// # Safety
    /// See the contract above.
    #[inline(always)]
    pub(crate) unsafe fn set_recv(&self, recv: Recv) {
        self.recv.set(match recv {
            Recv::Nothing => &RECV_NOTHING,
            Recv::Parked => &RECV_PARKED,
            Recv::Value(ty) => ty.0,
        })
    }

    /// Its record; the greenlet has a coroutine (it is started and not
    /// dead, or a raw greenlet not yet started).
    ///
    /// # Safety
    /// See the contract above; in addition the record exists, and the
    /// reference is not kept past the coroutine's end.
    #[inline(always)]
    pub(crate) unsafe fn running(&self) -> &Running {
        let r = self.run.get();
        debug_assert!(!r.is_null(), "greenlet {} has no coroutine", self.id);
        // SAFETY: per the caller, the record is alive.
        unsafe { &*r }
    }

    /// Records that the `Timeout` `id` fired, keeping the outermost (oldest)
    /// if several are pending.
    ///
    /// # Safety
    /// See the contract above; the greenlet has its record.
    pub(crate) unsafe fn fire_timeout(&self, id: u64) {
        // SAFETY: per the caller.
        let run = unsafe { self.running() };
        let pending = run.timeout_fired.get();
        if pending == 0 || id < pending {
            run.timeout_fired.set(id);
        }
        self.interrupt
            .fetch_or(INTERRUPT_TIMEOUT, Ordering::Relaxed);
    }

    /// Forgets a fired `Timeout`.
    ///
    /// # Safety
    /// As for [`fire_timeout`](Self::fire_timeout).
    pub(crate) unsafe fn clear_timeout(&self) {
        // SAFETY: per the caller.
        unsafe { self.running() }.timeout_fired.set(0);
        self.interrupt
            .fetch_and(!INTERRUPT_TIMEOUT, Ordering::Relaxed);
    }

    /// Prepares `stack` to run `body` when the greenlet is first switched
    /// to, and writes its record at the top of that stack (for
    /// `VTable::start` and a raw greenlet's constructor). The body gets the
    /// first arrival and never returns: it ends with `switch::finish`.
    ///
    /// # Panics
    /// If `body` (its captures) takes more than half the stack: callers
    /// check with `stack::check_fits` first.
    ///
    /// # Safety
    /// See the contract above; the greenlet has no coroutine yet.
    #[inline(always)]
    pub(crate) unsafe fn set_coro<B: FnOnce(Arrival) -> Infallible + 'static>(
        &self,
        stack: Stack,
        body: B,
    ) {
        debug_assert!(self.run.get().is_null());
        let size = std::mem::size_of::<B>();
        let align = std::mem::align_of::<B>().max(16);
        // Spawns and raw greenlets checked their closure (`check_fits`).
        assert!(
            size + align <= stack.size() / 2,
            "greenlet: a closure of {size} bytes does not fit on a {} KiB stack",
            stack.size() / 1024
        );
        let r = stack.record_slot().cast::<Running>();
        let at = (r as usize - size) & !(align - 1);
        // SAFETY: the record slot is reserved at the top of `stack`, aligned
        // and large enough (checked above); below it, `size` bytes for the
        // body and then the first frame fit in the half of the stack
        // checked above. Nothing else uses this memory: the stack is ours.
        unsafe {
            (at as *mut B).write(body);
            self.sp
                .set(super::context::prepare(at, super::switch::enter::<B>));
            r.write(Running {
                stack,
                body: Cell::new(Some(Body {
                    at: at as *mut u8,
                    drop: drop_body::<B>,
                })),
                timeout_fired: Cell::new(0),
                unwinding: Cell::new(false),
                live_index: Cell::new(usize::MAX),
                locals: crate::sync::local::Locals::new(),
            })
        };
        self.run.set(r);
    }

    /// Takes the record out of the stack, leaving the greenlet without one.
    /// Dropping what is returned gives the stack back to the pool (and
    /// drops the body of a greenlet that never started).
    ///
    /// # Safety
    /// See the contract above; the greenlet is not running.
    pub(crate) unsafe fn take_running(&self) -> Option<Running> {
        let r = self.run.replace(std::ptr::null_mut());
        // SAFETY: a non-null record is alive and ours; it is moved out once,
        // here, and the pointer to it is gone.
        (!r.is_null()).then(|| unsafe { r.read() })
    }

    /// # Safety
    /// See the contract above.
    pub(crate) unsafe fn parent(&self) -> Option<&HeaderRef> {
        // SAFETY: owner thread; the parent is only replaced by `set_parent`,
        // which callers do not interleave with a live borrow.
        unsafe { (*self.parent.get()).as_ref() }
    }

    /// # Safety
    /// See the contract above.
    pub(crate) unsafe fn set_parent(&self, parent: Option<HeaderRef>) -> Option<HeaderRef> {
        // SAFETY: as for `parent`.
        unsafe { std::mem::replace(&mut *self.parent.get(), parent) }
    }

    /// # Safety
    /// See the contract above.
    pub(crate) unsafe fn raw_handles(&self) -> &Cell<u32> {
        &self.raw_handles
    }

    /// What the overflow handler needs to know about this greenlet's stack.
    ///
    /// # Safety
    /// Called from the overflow handler on the greenlet's own thread, while
    /// it runs (so no field is being written).
    pub(crate) unsafe fn running_stack(&self) -> crate::stack::RunningStack {
        let (name, name_len) = match &self.name {
            Some(n) => (n.as_ptr(), n.len()),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: a running greenlet has its record (written before it
        // first ran; the handler only reads it).
        let guard = unsafe { self.running().stack.guard() };
        crate::stack::RunningStack {
            id: self.id,
            guard,
            size: self.stack_size(),
            name,
            name_len,
        }
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        // SAFETY: the cell is being dropped; this is the one call.
        unsafe { self.worker.release(self.life.load(Ordering::Acquire)) };
        let r = *self.run.get_mut();
        if r.is_null() {
            return;
        }
        // SAFETY: the record is alive while `run` points at it, and with the
        // last reference gone nobody else can reach it. A record is taken
        // as its greenlet ends, so a started one here never finished.
        if unsafe { (*r).started() } {
            // A greenlet that never finished and can no longer be resumed on
            // its thread (it refused to die, or its thread is gone). Unwinding
            // it here could run its destructors on the wrong thread; leak its
            // stack (and the record in it) instead.
            return;
        }
        // SAFETY: as above; moved out once, after which `run` is not used.
        drop(unsafe { r.read() });
    }
}

/// A counted reference to a greenlet header.
pub(crate) struct HeaderRef(NonNull<Header>);

// SAFETY: the shared fields of a header are atomics or immutable; the local
// ones are only reached through the `unsafe` accessors whose contract is to
// be on the owning thread. The cell is freed through the vtable, on whatever
// thread drops the last reference, which the cells allow (see `spawn` and
// `greenlet::raw`: a started coroutine is always gone before that).
unsafe impl Send for HeaderRef {}
// SAFETY: as above.
unsafe impl Sync for HeaderRef {}

/// A cell that is its header alone: a thread's root, or a raw greenlet
/// (whose function waits on its stack, and whose first value comes with
/// the first switch).
#[repr(C)]
struct BareCell {
    header: Header,
}

static BARE_VTABLE: VTable = VTable {
    start: |_| unreachable!("only spawned greenlets are started by a hub"),
    cancel: |_| {},
    drop_func: |_| {},
    run_here: |_| unreachable!("only spawned cells run here"),
    dealloc: |p| {
        // SAFETY: bare cells are made by `HeaderRef::new_bare` with
        // `Box::leak`, and this is the last reference.
        drop(unsafe { Box::from_raw(p.as_ptr().cast::<BareCell>()) })
    },
};

impl HeaderRef {
    /// A new cell of `kind` (a root or a raw greenlet) that is its header
    /// alone; the reference returned is its only one.
    pub(crate) fn new_bare(kind: Kind, name: Option<Box<str>>, stack_size: usize) -> HeaderRef {
        debug_assert!(kind != Kind::Spawned);
        let cell = Box::new(BareCell {
            header: Header::new(&BARE_VTABLE, kind, name, stack_size),
        });
        // SAFETY: a fresh cell with one reference, header at offset 0.
        unsafe { HeaderRef::from_raw(NonNull::from(Box::leak(cell)).cast::<Header>()) }
    }

    /// Takes ownership of a freshly made cell's first reference.
    ///
    /// # Safety
    /// `ptr` points at the `Header` at offset 0 of a live cell whose `refs`
    /// count includes the one handed over here.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> Self {
        HeaderRef(ptr)
    }

    /// Makes a new counted reference from a pointer to a live header.
    ///
    /// # Safety
    /// The header must be alive (someone holds a reference) for the duration
    /// of this call.
    pub(crate) unsafe fn clone_from_ptr(ptr: *const Header) -> Self {
        // SAFETY: the header is alive per the caller.
        unsafe { (*ptr).add_ref() };
        HeaderRef(NonNull::new(ptr as *mut Header).expect("null header"))
    }

    /// A second reference to a cell nobody else can reach yet, counted
    /// without an atomic read-modify-write (a locked instruction, which a
    /// spawn would otherwise pay to queue the greenlet it just made).
    ///
    /// # Safety
    /// `self` is the only reference to the cell, and the cell has not been
    /// shared with any other thread.
    pub(crate) unsafe fn clone_unshared(&self) -> HeaderRef {
        let n = self.refs.load(Ordering::Relaxed);
        debug_assert_eq!(n, 1, "a fresh cell has one reference");
        self.refs.store(n + 1, Ordering::Relaxed);
        HeaderRef(self.0)
    }

    pub(crate) fn as_ptr(&self) -> *const Header {
        self.0.as_ptr()
    }

    /// Gives up the handle without counting it down: the reference now
    /// belongs to whoever keeps the pointer, to be taken back with
    /// [`HeaderRef::from_raw`].
    pub(crate) fn into_raw(self) -> NonNull<Header> {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    pub(crate) fn non_null(&self) -> NonNull<Header> {
        self.0
    }

    /// Whether this is the only reference.
    pub(crate) fn is_unique(&self) -> bool {
        self.refs.load(Ordering::Acquire) == 1
    }
}

impl std::ops::Deref for HeaderRef {
    type Target = Header;
    fn deref(&self) -> &Header {
        // SAFETY: a HeaderRef keeps its header alive.
        unsafe { self.0.as_ref() }
    }
}

impl Clone for HeaderRef {
    fn clone(&self) -> Self {
        self.add_ref();
        HeaderRef(self.0)
    }
}

impl Header {
    /// Counts one more reference. The count is 32 bits wide: like `Arc`,
    /// the process aborts before it could wrap (that takes billions of
    /// leaked references).
    #[inline(always)]
    fn add_ref(&self) {
        if self.refs.fetch_add(1, Ordering::Relaxed) > u32::MAX / 2 {
            std::process::abort();
        }
    }
}

impl Drop for HeaderRef {
    fn drop(&mut self) {
        if self.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: this was the last reference; the vtable frees the cell it
        // was made for.
        unsafe { (self.vtable.dealloc)(self.0) };
    }
}

impl PartialEq for HeaderRef {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for HeaderRef {}

/// A process-unique key for the calling thread (never reused, unlike
/// addresses of thread-locals).
#[inline(always)]
pub(crate) fn thread_key() -> u64 {
    let key = THREAD_KEY.with(|k| k.get());
    if key != 0 { key } else { new_thread_key() }
}

thread_local! {
    static THREAD_KEY: Cell<u64> = const { Cell::new(0) };
}

#[cold]
#[inline(never)]
fn new_thread_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let key = NEXT.fetch_add(1, Ordering::Relaxed);
    THREAD_KEY.with(|k| k.set(key));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_threads_and_blocks() {
        let per_thread = (ID_BLOCK * 3 + 5) as usize;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || (0..per_thread).map(|_| next_id()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for t in threads {
            for id in t.join().unwrap() {
                assert_ne!(id, 0, "0 is not an id");
                assert!(seen.insert(id), "id {id} handed out twice");
            }
        }
        assert_eq!(seen.len(), 4 * per_thread);
    }
}
