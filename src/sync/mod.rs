//! Coordination primitives for greenlets and threads (gevent's `gevent.lock`
//! and `gevent.event`): [`Lock`], [`RLock`], [`Semaphore`],
//! [`BoundedSemaphore`], [`Event`], [`AsyncResult`], [`Condition`],
//! [`Barrier`] and [`WaitGroup`].
//!
//! ```
//! use std::sync::Arc;
//! use greenlet::sync::{Event, Lock};
//!
//! greenlet::run(|| {
//!     let total = Arc::new(Lock::new(0));
//!     let go = Arc::new(Event::new());
//!     let gs: Vec<_> = (1..=4)
//!         .map(|i| {
//!             let (total, go) = (total.clone(), go.clone());
//!             greenlet::spawn(move || {
//!                 go.wait();
//!                 *total.lock() += i;
//!             })
//!         })
//!         .collect();
//!     go.set();
//!     greenlet::joinall(&gs);
//!     assert_eq!(*total.lock(), 10);
//! });
//! ```
//!
//! # How waiting works
//!
//! Every primitive is one short internal lock around its state and a FIFO
//! wait list of parked waiters. Who waits is a greenlet (it parks
//! and its worker runs others) or a plain OS thread (it blocks), on any
//! worker: a thread-pool job can set an `Event` a greenlet waits on, and a
//! greenlet on one worker can release a `Semaphore` to a greenlet on another.
//!
//! Whoever makes progress possible hands it to the first waiter directly
//! (the lock's ownership, a permit, a reserved queue item), so waiters are
//! served in the order they came and nobody barges past them. A waiter that
//! is killed (`Greenlet::kill`) or whose timeout passes while it waits leaves
//! the list clean and hands back anything it had been granted, so it never
//! consumes a permit, an item or a wake-up meant for another.
//!
//! Every blocking method has a `_timeout` variant; a `Timeout` block or a kill
//! interrupts any of them like any other switch point.
//!
//! Greenlet-local storage lives in [`greenlet_local!`](crate::greenlet_local).

mod barrier;
mod condition;
mod event;
pub(crate) mod local;
mod lock;
mod semaphore;
pub(crate) mod spin;
pub(crate) mod waitlist;

pub use barrier::{Barrier, BarrierWaitResult, WaitGroup};
pub use condition::Condition;
pub use event::{AsyncResult, Event};
pub use local::LocalKey;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, ReleaseError, Semaphore, SemaphoreGuard};

/// loom models only: makes the calling loom thread's next wait unwind after
/// one step, as if its greenlet were killed there.
#[cfg(loom)]
#[doc(hidden)]
pub fn __loom_kill_at_next_park() {
    crate::loom::kill_at_next_park()
}
