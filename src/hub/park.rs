//! Parking and waking: how anything that waits (a greenlet or a plain thread)
//! blocks, and how anything else wakes it.
//!
//! # The park state machine
//!
//! Each greenlet has a `park` byte, shared by every thread:
//!
//! ```text
//!   RUNNING --park()--> PARKED --unpark()--> RUNNING (and scheduled on its hub)
//!   RUNNING --unpark()--> NOTIFIED --park()--> RUNNING (returns at once)
//! ```
//!
//! `unpark` schedules the greenlet only when it wins `PARKED -> RUNNING`, so a
//! greenlet is queued once however many wakers race (no double wake-up), and
//! an unpark that lands before the park is kept as `NOTIFIED` (no lost
//! wake-up). A greenlet is only ever resumed by its own hub, after it has
//! really switched away, so a waker on another thread that wins the race
//! while the greenlet is still on its way to the hub just queues it early.
//!
//! Wake-ups may be spurious: every waiter re-checks its condition in a loop.
//!
//! # Interrupts
//!
//! A kill or a fired `Timeout` sets a flag on the greenlet and unparks it; the
//! greenlet raises it at its next switch point ([`check_interrupts`]), never
//! while it is already unwinding from one.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::greenlet::GreenletExit;
use crate::greenlet::header::{Header, HeaderRef, INTERRUPT_KILL, Kind, Msg, Recv, Running, State};
use crate::greenlet::switch::{current_ptr, hand_over};

use super::deadlock::{LOOP_EXIT, ThreadParker};
use super::timer::Action;
use super::{Driver, Next};

pub(crate) const RUNNING: u8 = 0;
pub(crate) const PARKED: u8 = 1;
pub(crate) const NOTIFIED: u8 = 2;

/// The panic payload a fired `Timeout` unwinds with.
pub(crate) struct TimeoutFired(pub(crate) u64);

/// Wakes one waiter: a greenlet (through its hub) or a plain thread.
#[derive(Clone)]
pub(crate) enum Unparker {
    Greenlet(HeaderRef),
    Thread(std::sync::Arc<ThreadParker>),
}

impl Unparker {
    /// An unparker for whoever is running: the current greenlet if it runs
    /// on a hub, else this thread.
    #[inline]
    pub(crate) fn current() -> Unparker {
        match current_hub_greenlet() {
            // SAFETY: the running greenlet is alive.
            Some(g) => Unparker::Greenlet(unsafe { HeaderRef::clone_from_ptr(g) }),
            None => Unparker::Thread(ThreadParker::current()),
        }
    }

    /// Wakes the waiter. A greenlet's counted reference goes along with
    /// the wake-up to its hub, when that is another thread, instead of a
    /// new one being counted there and this one dropped here: two fewer
    /// updates of a count that the other core uses.
    #[inline]
    pub(crate) fn unpark(self) {
        match self {
            Unparker::Greenlet(g) => wake_owned(g, Place::Next),
            Unparker::Thread(t) => t.unpark(),
        }
    }

    /// Like `unpark`, but a greenlet of this hub is queued behind what is
    /// runnable now instead of next: how a greenlet that ends wakes its
    /// joiners, so that, as in gevent, a greenlet joining many others in turn
    /// finds most of them finished instead of parking once per join.
    pub(crate) fn unpark_behind(self) {
        match self {
            Unparker::Greenlet(g) => wake_owned(g, Place::Behind),
            Unparker::Thread(t) => t.unpark(),
        }
    }
}

/// Who waits in a wait list's node (`sync::waitlist`): a hub greenlet or a
/// plain thread. Unlike an [`Unparker`], it does not count a reference to
/// the greenlet: a greenlet is alive while its node is listed, because it
/// takes the node off, under the list's lock, before it leaves its wait
/// (a drop guard does it when the wait unwinds), and it holds itself alive
/// while it runs. So the waiter may only be used under that lock, while
/// listed: [`Waiter::notify`] is the one way out.
///
/// Under `cfg(loom)` the wait lists use the facade's own `Waiter` and
/// `Wake` (`crate::loom`), so these go unused there.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) enum Waiter {
    Greenlet(NonNull<Header>),
    Thread(std::sync::Arc<ThreadParker>),
}

// SAFETY: the greenlet pointer is only followed under the wait list's lock
// while the node is listed (see `Waiter`), and then only to reach the
// greenlet's shared fields (its park state, worker, thread key), which are
// atomics or immutable; the thread variant is an `Arc` of a `Sync` parker.
unsafe impl Send for Waiter {}

#[cfg_attr(loom, allow(dead_code))]
impl Waiter {
    /// The running greenlet if it runs on a hub, else this thread.
    #[inline]
    pub(crate) fn current() -> Waiter {
        match current_hub_greenlet() {
            // SAFETY: the running greenlet is not null.
            Some(g) => Waiter::Greenlet(unsafe { NonNull::new_unchecked(g.cast_mut()) }),
            None => Waiter::Thread(ThreadParker::current()),
        }
    }

    /// Notifies the waiter, taking it out of its node: a greenlet of this
    /// thread is woken now (it cannot run before this thread switches away,
    /// and waking it takes no lock and makes no system call); anyone else is
    /// returned, counted, to be woken once the list's lock is released.
    ///
    /// # Safety
    /// Called under the wait list's lock, with the waiter's node still
    /// listed (so a greenlet waiter is alive).
    #[inline(always)]
    pub(crate) unsafe fn notify(self) -> Wake {
        match self {
            Waiter::Greenlet(g) => {
                // SAFETY: alive, per the caller.
                let h = unsafe { g.as_ref() };
                if h.on_this_thread() {
                    unpark(h);
                    Wake(None)
                } else {
                    // SAFETY: alive, per the caller.
                    unsafe { Self::remote(h) }
                }
            }
            Waiter::Thread(t) => Wake(Some(Unparker::Thread(t))),
        }
    }

    /// A greenlet of another thread, counted until the wake after the lock.
    ///
    /// # Safety
    /// `g` is alive.
    #[inline(never)]
    unsafe fn remote(g: &Header) -> Wake {
        // SAFETY: per the caller.
        Wake(Some(Unparker::Greenlet(unsafe {
            HeaderRef::clone_from_ptr(g)
        })))
    }
}

/// A notified waiter still to wake, once the wait list's lock is released
/// (nobody, if it was woken under the lock).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) struct Wake(Option<Unparker>);

#[cfg_attr(loom, allow(dead_code))]
impl Wake {
    #[inline(always)]
    pub(crate) fn unpark(self) {
        if let Some(u) = self.0 {
            u.unpark();
        }
    }
}

/// Where a woken greenlet of the waker's own hub is queued.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Next (the LIFO slot): message passing stays hot.
    Next,
    /// Behind everything runnable now.
    Behind,
}

/// The running greenlet, if it runs on a hub (a worker thread).
#[inline(always)]
pub(crate) fn current_hub_greenlet() -> Option<*const Header> {
    let cur = current_ptr();
    if cur.is_null() || !Driver::is_worker_thread() {
        None
    } else {
        Some(cur)
    }
}

/// Wakes `g` if it is parked (or makes its next park return at once).
#[inline]
pub(crate) fn unpark(g: &Header) {
    wake(g, Place::Next);
}

#[inline]
fn wake(g: &Header, place: Place) -> bool {
    let woke = claim_wake(g);
    if woke {
        schedule(g, None, place);
    }
    woke
}

/// [`wake`], handing over a counted reference to `g` (for the wake-up
/// message, if `g` is on another thread's hub).
#[inline]
fn wake_owned(g: HeaderRef, place: Place) {
    if claim_wake(&g) {
        let h = g.non_null();
        // SAFETY: `g` keeps the header alive through the call.
        schedule(unsafe { h.as_ref() }, Some(g), place);
    }
}

/// Moves `g`'s park state on for an unpark; true if it was parked, and so
/// must now be queued by the caller (exactly one waker wins that).
#[inline(always)]
fn claim_wake(g: &Header) -> bool {
    let mut s = g.park.load(Ordering::Acquire);
    loop {
        let next = match s {
            NOTIFIED => return false,
            RUNNING => NOTIFIED,
            _ => RUNNING,
        };
        match g
            .park
            .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return s == PARKED,
            Err(actual) => s = actual,
        }
    }
}

/// Queues a greenlet that was just unparked on its own hub; `owned`, if
/// given, is a counted reference to it that the wake-up message may take.
#[inline]
fn schedule(g: &Header, owned: Option<HeaderRef>, place: Place) {
    let local = Driver::with(|d| {
        if g.worker.runs_on(std::sync::Arc::as_ptr(&d.shared)) {
            match place {
                Place::Next => d.wake_local(g),
                Place::Behind => d.push_yielded(std::ptr::NonNull::from(g)),
            }
            true
        } else {
            false
        }
    });
    if local != Some(true) {
        let worker = g
            .worker
            .get(&g.life)
            .expect("a parked greenlet runs on a hub");
        // SAFETY: `g` is parked, hence alive (it holds itself).
        let g = owned.unwrap_or_else(|| unsafe { HeaderRef::clone_from_ptr(g) });
        worker.push_woken(g);
    }
}

/// Sets interrupt bits on `g` and wakes it to raise them.
///
/// A greenlet that was not parked is running (it raises them at its next
/// switch point) or is suspended in a raw switch, where nothing may ever
/// resume it: its hub is asked to look ([`Remote::Poke`](super::Remote::Poke)) and, if so,
/// resumes it to raise them, as gevent's kill throws into a greenlet.
pub(crate) fn interrupt(g: &Header, bits: u8) {
    g.interrupt.fetch_or(bits, Ordering::Release);
    if !wake(g, Place::Next)
        && let Some(worker) = g.worker.get(&g.life)
    {
        // SAFETY: the caller holds `g` alive; the message holds its own
        // reference.
        let g = unsafe { HeaderRef::clone_from_ptr(g) };
        worker.push_remote(super::Remote::Poke(g));
    }
}

/// On `g`'s hub: resumes `g` to raise its pending interrupts if it is
/// suspended in a raw switch (where nothing else would resume it).
pub(crate) fn deliver_poke(g: &Header) {
    // SAFETY: a poke is handled on the greenlet's own worker thread (started
    // greenlets never move), by the hub, so `g` is not running.
    let stuck = unsafe { g.state() == State::Started && matches!(g.recv(), Recv::Value(..)) };
    if !stuck {
        return;
    }
    // SAFETY: a suspended greenlet has its record; we are on its thread.
    let run = unsafe { g.running() };
    let pending = g.interrupt.load(Ordering::Acquire) != 0;
    if !pending || run.unwinding.get() {
        return;
    }
    // SAFETY: `g` is suspended in a switch, on this thread, and accepts an
    // unwinding message; it raises its interrupt as it resumes (and, were it
    // gone, unwinds with `GreenletExit`). We are the hub, on the root.
    let msg =
        unsafe { crate::greenlet::switch::run_from_root(g, Msg::Unwind(Box::new(GreenletExit))) };
    Driver::with(|d| d.stray(msg));
}

/// Raises a pending kill or timeout in the running greenlet `g`.
///
/// # Safety
/// `g` is the running greenlet, on its thread. A thread's root is never
/// interrupted (its `interrupt` stays clear).
#[inline(always)]
pub(crate) unsafe fn check_interrupts(g: &Header) {
    if g.interrupt.load(Ordering::Relaxed) != 0 {
        // SAFETY: per the caller; with bits set it is a greenlet of a hub,
        // which has its record while it runs.
        raise_interrupts(g, unsafe { g.running() });
    }
}

#[cold]
#[inline(never)]
fn raise_interrupts(g: &Header, run: &Running) {
    if run.unwinding.get() {
        return;
    }
    if g.interrupt.load(Ordering::Acquire) & INTERRUPT_KILL != 0 {
        g.interrupt.fetch_and(!INTERRUPT_KILL, Ordering::AcqRel);
        run.unwinding.set(true);
        std::panic::resume_unwind(Box::new(GreenletExit));
    }
    let fired = run.timeout_fired.get();
    if fired != 0 {
        // SAFETY: `g` runs, on this thread, with its record.
        unsafe { g.clear_timeout() };
        run.unwinding.set(true);
        std::panic::resume_unwind(Box::new(TimeoutFired(fired)));
    }
}

/// Suspends the running hub greenlet `g` until an unpark (or the run queue,
/// for `yield_now`) resumes it; then raises interrupts. It switches to the
/// next runnable greenlet of its hub, or to the hub's loop when the loop
/// has other work first (see `Driver::next_after_suspend`).
///
/// # Safety
/// `g` is the running greenlet and runs on a hub.
#[inline(always)]
pub(crate) unsafe fn suspend_to_hub(g: *const Header) {
    let next = Driver::with(|d| d.next_after_suspend(false)).flatten();
    // SAFETY: per the caller; `next` is what the hub would run next.
    unsafe { suspend_to(g, next) }
}

/// [`suspend_to_hub`], switching to `next` (null: the hub's loop).
///
/// # Safety
/// As for [`suspend_to_hub`]; `next` came from `Driver::next_after_suspend`.
#[inline(always)]
unsafe fn suspend_to(g: *const Header, next: Option<Next>) {
    // SAFETY: `g` is us, on our thread; a queued greenlet of this hub is
    // suspended here, in this function, and so expects `Wake` (as the
    // hub's loop sends it); one just made ready to start expects `Value`;
    // the hub resumes us with `Wake`.
    unsafe {
        (*g).set_recv(Recv::Parked);
        match next.map(Next::target) {
            // Woken already (or the only one to yield to): go on.
            Some((n, _)) if std::ptr::eq(n, g) => {}
            // A queued greenlet, never the root.
            Some((n, msg)) => hand_over(g, n, msg),
            None => hand_over(g, std::ptr::null(), Msg::Value),
        }
        // `Recv` stays `Parked` while we run: it is only read while a
        // greenlet is suspended, and every way of suspending sets it first.
        check_interrupts(&*g);
    }
}

/// Parks the caller until unparked (maybe spuriously) or until `deadline`.
/// A greenlet on a hub switches away; anything else blocks its thread.
pub(crate) fn park_until(deadline: Option<Instant>) {
    let Some(g) = current_hub_greenlet() else {
        ThreadParker::current().park(deadline);
        return;
    };
    // SAFETY: `g` is the running greenlet.
    let h = unsafe { &*g };
    // SAFETY: a hub greenlet that runs, not a root.
    unsafe { check_interrupts(h) };
    // Look before the read-modify-write: most parks find no early unpark.
    if h.park.load(Ordering::Relaxed) == NOTIFIED
        && h.park
            .compare_exchange(NOTIFIED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        return;
    }
    let timer = deadline.map(|d| {
        Driver::with(|drv| {
            drv.timers
                .borrow_mut()
                .add(d, Action::Wake(std::ptr::NonNull::from(h)))
        })
        .expect("a hub greenlet runs on a worker")
    });
    // A raw greenlet is in no list the hub kills at shutdown: it is listed
    // while it parks (spawned greenlets are listed for their whole life).
    // SAFETY: `h` is the running greenlet.
    let _listed = (h.kind == Kind::Raw).then(|| unsafe { ParkedRaw::enter(h) });
    if h.park
        .compare_exchange(RUNNING, PARKED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        // On unwind (a kill) as on return, the timer must not outlive the
        // park: it points at us.
        let _cancel = CancelTimer(timer);
        // SAFETY: we are the running greenlet on a hub.
        unsafe { suspend_to_hub(g) };
        if h.is_main.get() && h.loop_exit.swap(false, Ordering::AcqRel) {
            panic!("{LOOP_EXIT}");
        }
    } else {
        // An unpark came in between: consume it.
        h.park.store(RUNNING, Ordering::Release);
        drop(CancelTimer(timer));
        // SAFETY: as above.
        unsafe { check_interrupts(h) };
    }
}

/// Lists a parked raw greenlet with its hub while it parks.
struct ParkedRaw<'a>(&'a Header);

impl<'a> ParkedRaw<'a> {
    /// # Safety
    /// `g` is the running greenlet.
    unsafe fn enter(g: &'a Header) -> Self {
        // SAFETY: per the caller.
        Driver::with(|d| unsafe { d.enter_parked_raw(g) });
        ParkedRaw(g)
    }
}

impl Drop for ParkedRaw<'_> {
    fn drop(&mut self) {
        Driver::with(|d| d.leave_parked_raw(self.0));
    }
}

/// Cancels a hub timer when dropped.
pub(crate) struct CancelTimer(pub(crate) Option<super::timer::TimerKey>);

impl Drop for CancelTimer {
    /// Most parks set no timer: that case is a test, inlined.
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(key) = self.0 {
            cancel_timer(key);
        }
    }
}

#[inline(never)]
fn cancel_timer(key: super::timer::TimerKey) {
    let action = Driver::with(|d| d.timers.borrow_mut().cancel(key)).flatten();
    drop(action);
}

/// Lets every other runnable greenlet of this hub run, then continues.
/// Outside a hub it yields the thread.
#[inline(always)]
pub fn yield_now() {
    let g = current_ptr();
    let d = Driver::current();
    if g.is_null() || d.is_null() {
        std::thread::yield_now();
        return;
    }
    // SAFETY: `d` is this worker's live driver (it outlives every greenlet
    // it runs); `g` is the running greenlet, alive (it holds itself), and
    // the run queue entry made here resumes it.
    unsafe {
        let next = (*d).yield_turn(std::ptr::NonNull::new_unchecked(g.cast_mut()));
        suspend_to(g, next);
    }
}
