//! A greenlet's lifecycle word and the worker it runs on, reached from other
//! threads without a counted reference.
//!
//! A spawned greenlet is bound to the worker that starts it, and other
//! threads that hold the greenlet must reach that worker to wake it there or
//! to poke it (`hub::park`). Counting a reference on the worker for every
//! greenlet would cost two atomic operations per spawn on one line that all
//! of a worker's greenlets share, and another thread usually frees the cell.
//! Instead:
//!
//! - A worker's thread holds its `Shared` until every greenlet it started
//!   has ended ([`WorkerPin::set`]'s contract).
//! - A thread that wants to follow the pointer sets `PIN_WANTED` in the
//!   greenlet's lifecycle bits, but only while it has not ended
//!   ([`WorkerPin::get`]).
//! - The end ([`WorkerPin::complete`], on the worker's thread) sees
//!   `PIN_WANTED` in the same atomic step that marks it `DONE`, and then
//!   counts a reference for the cell (`PINNED`), given back when the cell is
//!   dropped.
//!
//! So a thread that set `PIN_WANTED` before the end may follow the pointer
//! for as long as it holds the cell: until the end the worker's thread keeps
//! the worker, and from the end on the cell does. A greenlet that nobody
//! reached that way pays nothing. `tests/loom_pin.rs` checks the protocol
//! with loom.

use crate::loom::atomic::{AtomicPtr, AtomicU8, Ordering};

/// The bits of a greenlet's `Header::life`: a spawned greenlet's lifecycle
/// (the low two bits and `LINKED`, see `spawn::cell`) and the pin of its
/// worker.
pub(crate) mod bits {
    pub(crate) const UNSTARTED: u8 = 0;
    pub(crate) const STARTED: u8 = 1;
    pub(crate) const DONE: u8 = 2;
    pub(crate) const STATE: u8 = 3;
    /// Links wait for the end (`spawn::cell`).
    pub(crate) const LINKED: u8 = 4;
    /// Another thread followed the pointer to the worker: the end must pin.
    pub(crate) const PIN_WANTED: u8 = 8;
    /// The cell counts a reference on its worker.
    pub(crate) const PINNED: u8 = 16;
}

use bits::{DONE, PIN_WANTED, PINNED, STATE};

/// What a [`WorkerPin`] points to: counted like an `Arc`.
///
/// # Safety
/// `acquire` and `release` add and remove one counted reference on the value
/// behind a pointer taken from a live counted reference to it, as
/// `Arc::increment_strong_count` and `Arc::decrement_strong_count` do.
pub unsafe trait Counted {
    /// Counts one more reference.
    ///
    /// # Safety
    /// `p` points to a live, counted value.
    unsafe fn acquire(p: *const Self);
    /// Gives one reference back.
    ///
    /// # Safety
    /// `p` points to a value on which the caller holds a reference.
    unsafe fn release(p: *const Self);
}

/// The worker (`W`) a greenlet runs on, with the pin protocol (see the
/// module docs) over the greenlet's lifecycle bits (`life`, its header's
/// other field: one byte there keeps the header within its cache lines).
pub struct WorkerPin<W: Counted>(AtomicPtr<W>);

impl<W: Counted> Default for WorkerPin<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W: Counted> WorkerPin<W> {
    /// Bound to no worker.
    pub fn new() -> Self {
        WorkerPin(AtomicPtr::new(std::ptr::null_mut()))
    }

    /// Binds the greenlet to the worker starting it, before it first runs.
    ///
    /// # Safety
    /// Called on the worker's thread, which holds a counted reference to `w`
    /// until every greenlet it started has ended (called
    /// [`WorkerPin::complete`]).
    pub unsafe fn set(&self, w: *const W) {
        self.0.store(w.cast_mut(), Ordering::Release);
    }

    /// Binds a greenlet that has no end [`WorkerPin::complete`] would see (a
    /// raw one) to `w`, counting a reference for the cell at once.
    ///
    /// # Safety
    /// `w` points to a live, counted value; called before the greenlet is
    /// shared with another thread.
    pub unsafe fn adopt(&self, life: &AtomicU8, w: *const W) {
        // SAFETY: per the caller; given back by `release`, which `PINNED`
        // tells to.
        unsafe { W::acquire(w) };
        life.fetch_or(PINNED, Ordering::AcqRel);
        self.0.store(w.cast_mut(), Ordering::Release);
    }

    /// True if the greenlet runs on `w` (no reference is followed).
    #[inline(always)]
    pub fn runs_on(&self, w: *const W) -> bool {
        std::ptr::eq(self.0.load(Ordering::Relaxed), w)
    }

    /// The worker, for a thread that must reach it while holding the
    /// greenlet; `None` if it has none yet, or ended before anyone asked.
    /// The reference lives as long as the cell: see the module docs.
    pub fn get(&self, life: &AtomicU8) -> Option<&W> {
        if life.load(Ordering::Acquire) & (PIN_WANTED | PINNED) == 0 {
            life.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & STATE != DONE).then_some(s | PIN_WANTED)
            })
            .ok()?;
        }
        let w = self.0.load(Ordering::Acquire);
        // SAFETY: a non-null `w` came from `set` or `adopt`. Either the cell
        // is pinned (its count is given back only when the cell goes), or
        // `PIN_WANTED` was set before the end, which has not come yet (the
        // worker's thread still holds `w`) or pinned.
        unsafe { w.as_ref() }
    }

    /// Marks a started or claimed greenlet `DONE` and returns the bits it
    /// had: on the worker's thread if it was started on one, which pins the
    /// worker for the cell if another thread wanted it.
    pub fn complete(&self, life: &AtomicU8) -> u8 {
        let w = self.0.load(Ordering::Relaxed);
        let pin = |s: u8| s & PIN_WANTED != 0 && !w.is_null();
        let old = life
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some((s & !STATE) | DONE | if pin(s) { PINNED } else { 0 })
            })
            .unwrap_or_else(|s| s);
        if pin(old) {
            // SAFETY: `w` was set by `set` on this thread, whose reference
            // keeps it alive now; given back by `release`, which the
            // `PINNED` set above tells to.
            unsafe { W::acquire(w) };
        }
        old
    }

    /// Gives back the cell's reference, if it counted one.
    ///
    /// # Safety
    /// Called once, as the cell is dropped, with its `life` bits.
    pub unsafe fn release(&self, life: u8) {
        if life & PINNED != 0 {
            // SAFETY: `PINNED` is set only with a reference counted for this
            // cell (`adopt`, `complete`), given back once, here.
            unsafe { W::release(self.0.load(Ordering::Acquire)) };
        }
    }
}

// SAFETY: as `Arc::increment_strong_count` / `decrement_strong_count`
// require: every pointer a `WorkerPin` holds comes from `Arc::as_ptr` of one of
// the runtime's `Arc<Shared>`.
unsafe impl Counted for super::Shared {
    unsafe fn acquire(p: *const Self) {
        // SAFETY: per the trait's contract.
        unsafe { std::sync::Arc::increment_strong_count(p) }
    }

    unsafe fn release(p: *const Self) {
        // SAFETY: per the trait's contract.
        unsafe { std::sync::Arc::decrement_strong_count(p) }
    }
}
