//! A small facade over the synchronisation the coordination primitives
//! (`sync`, `queue`) are built on, so that their wait-list state machines can
//! be model-checked with loom.
//!
//! Normally this re-exports the primitives' spin lock (`sync::spin::Mutex`) and the hub's parking
//! (`Waiter`, `park_until`). Built with `--cfg loom`, it swaps in loom's
//! `Mutex` and loom threads' park/unpark, and models time: a wait with a
//! deadline parks for "one step" (a yield) and then counts as expired, which
//! puts the timeout path in a race with every wake-up loom can order against
//! it. A kill is modelled the same way: `sync::__loom_kill_at_next_park`
//! makes the thread's next park return after one step and unwind, which runs
//! the waiters' drop guards.
//!
//! The runtime itself (hub, stacks) is not modelled: loom cannot model a
//! stack switch; the stress tests cover that. One protocol of the hub is:
//! how other threads reach a greenlet's worker (`hub::pin`), whose atomics
//! come from here too.

#[cfg(not(loom))]
mod imp {
    use std::time::Instant;

    pub(crate) use crate::hub::park::{Waiter, Wake};
    pub(crate) use crate::sync::spin::{Mutex, MutexGuard};

    /// Parks the caller until unparked (maybe spuriously) or `deadline`.
    #[inline]
    pub(crate) fn park_until(deadline: Option<Instant>) {
        crate::hub::park::park_until(deadline)
    }

    /// True once `deadline` has passed.
    #[inline]
    pub(crate) fn expired(deadline: Option<Instant>) -> bool {
        deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Who is running, as a non-zero id: the current greenlet (ids count
    /// from 1), or else this plain thread (its key with the top bit set).
    pub(crate) fn owner_id() -> u64 {
        let g = crate::greenlet::switch::current_ptr();
        if g.is_null() {
            crate::greenlet::header::thread_key() | 1 << 63
        } else {
            // SAFETY: the running greenlet is alive while it runs.
            unsafe { (*g).id }
        }
    }
}

#[cfg(loom)]
mod imp {
    use std::time::Instant;

    pub(crate) use ::loom::sync::{Mutex, MutexGuard};

    /// A loom thread waiting in a wait list's node.
    pub(crate) struct Waiter(::loom::thread::Thread);

    impl Waiter {
        pub(crate) fn current() -> Waiter {
            Waiter(::loom::thread::current())
        }

        /// Under the list's lock: what to wake once it is released.
        ///
        /// # Safety
        /// None needed under loom; the signature matches the real one.
        pub(crate) unsafe fn notify(self) -> Wake {
            Wake(self.0)
        }
    }

    /// A notified loom thread, to unpark after the lock.
    pub(crate) struct Wake(::loom::thread::Thread);

    impl Wake {
        pub(crate) fn unpark(self) {
            self.0.unpark()
        }
    }

    ::loom::thread_local! {
        static KILL: std::cell::Cell<bool> = std::cell::Cell::new(false);
    }

    /// Models a `Greenlet::kill` landing on this thread's next wait: that
    /// park returns after one step and unwinds, as a kill does.
    pub(crate) fn kill_at_next_park() {
        KILL.with(|k| k.set(true));
    }

    /// A wait without deadline parks; one with a deadline (or a pending
    /// modelled kill) yields once.
    pub(crate) fn park_until(deadline: Option<Instant>) {
        if KILL.with(|k| k.replace(false)) {
            ::loom::thread::yield_now();
            std::panic::resume_unwind(Box::new("modelled kill"));
        }
        match deadline {
            None => ::loom::thread::park(),
            Some(_) => ::loom::thread::yield_now(),
        }
    }

    /// Any deadline has passed once the waiter has parked for its one step.
    pub(crate) fn expired(deadline: Option<Instant>) -> bool {
        deadline.is_some()
    }

    /// A non-zero id per loom thread.
    pub(crate) fn owner_id() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ::loom::thread_local! {
            static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        ID.with(|id| *id)
    }
}

pub(crate) use imp::*;

/// The atomics of the pin protocol (`hub::pin`), which a loom model checks.
pub(crate) mod atomic {
    #[cfg(loom)]
    pub(crate) use ::loom::sync::atomic::{AtomicPtr, AtomicU8};
    pub(crate) use std::sync::atomic::Ordering;
    #[cfg(not(loom))]
    pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU8};
}

/// Locks `m`. The primitives' own lock has no poisoning; under loom, poison
/// is ignored: no critical section of the primitives panics half-way through
/// an update, and a kill is not a reason to wedge a lock.
#[cfg(not(loom))]
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

/// See the other `lock`.
#[cfg(loom)]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
