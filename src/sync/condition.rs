//! `Condition`: wait for a notification while giving up a [`Lock`](super::Lock).
//!
//! A waiter joins the condition's FIFO list *before* it unlocks the lock, so
//! a notify that follows the unlock cannot be missed. `notify_one` unlinks
//! the first waiter and marks it notified; the waiter then re-takes the lock.
//! A notified waiter that is killed or times out before it runs hands its
//! notification to the next waiter, so one `notify_one` always wakes exactly
//! one waiter that goes on (the issue's "no wake-up lost to a kill").

use std::fmt;
use std::time::{Duration, Instant};

use super::lock::LockGuard;
use super::waitlist::{Key, Status, WaitList, Wakeups, deadline_in, wait};
use crate::loom::{Mutex, Waiter, lock};

/// A condition variable for [`Lock`](super::Lock) (gevent's `Condition`,
/// shaped like `std::sync::Condvar`).
///
/// ```
/// use std::sync::Arc;
/// use greenlet::sync::{Condition, Lock};
///
/// greenlet::run(|| {
///     let pair = Arc::new((Lock::new(false), Condition::new()));
///     let p = pair.clone();
///     let g = greenlet::spawn(move || {
///         let (lock, cond) = &*p;
///         let mut ready = lock.lock();
///         while !*ready {
///             ready = cond.wait(ready);
///         }
///     });
///     let (lock, cond) = &*pair;
///     *lock.lock() = true;
///     cond.notify_one();
///     g.join();
/// });
/// ```
pub struct Condition {
    waiters: Mutex<WaitList>,
}

/// What a waiter that leaves with its node in `status` owes the others: a
/// notification meant for one waiter is passed on.
fn pass_on(w: &mut WaitList, status: Status) -> Wakeups {
    match status {
        Status::Waiting => Wakeups::new(),
        Status::Notified => Wakeups::one(w.notify_one()),
    }
}

/// Takes a waiter's node off the list if dropped (see `wait_until`).
struct Listed<'a>(&'a Mutex<WaitList>, Key);

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        let wake = {
            let mut w = lock(self.0);
            let status = w.remove(self.1).0;
            pass_on(&mut w, status)
        };
        wake.wake();
    }
}

impl Default for Condition {
    fn default() -> Self {
        Self::new()
    }
}

impl Condition {
    /// A condition nobody waits on.
    pub fn new() -> Self {
        Condition {
            waiters: Mutex::new(WaitList::new()),
        }
    }

    /// Unlocks `guard`'s lock, waits for a notification, re-locks and
    /// returns the new guard. Wake-ups are not spurious, but the state may
    /// have changed again before the waiter runs: check it in a loop.
    pub fn wait<'a, T: ?Sized>(&self, guard: LockGuard<'a, T>) -> LockGuard<'a, T> {
        self.wait_until(guard, None).0
    }

    /// [`wait`](Self::wait) at most `timeout`; the flag is true if it was
    /// notified (false: timed out). The lock is re-taken either way.
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: LockGuard<'a, T>,
        timeout: Duration,
    ) -> (LockGuard<'a, T>, bool) {
        self.wait_until(guard, deadline_in(timeout))
    }

    /// Waits while `condition` holds (checked under the lock).
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: LockGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> LockGuard<'a, T> {
        while condition(&mut guard) {
            guard = self.wait(guard);
        }
        guard
    }

    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: LockGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> (LockGuard<'a, T>, bool) {
        let lock_ref = guard.lock_ref();
        let key = lock(&self.waiters).push(Waiter::current(), ());
        // Our node must leave the list however we leave (it names us
        // without counting a reference): if releasing the lock unwound,
        // take it off before going on.
        let listed = Listed(&self.waiters, key);
        drop(guard);
        std::mem::forget(listed);
        let notified = wait(
            &self.waiters,
            key,
            deadline,
            |w| w,
            |_, ()| (),
            |w, status, ()| pass_on(w, status),
        )
        .is_some();
        (lock_ref.lock(), notified)
    }

    /// Wakes the first waiter, if any.
    pub fn notify_one(&self) {
        let u = lock(&self.waiters).notify_one();
        if let Some(u) = u {
            u.unpark();
        }
    }

    /// Wakes the first `n` waiters.
    pub fn notify(&self, n: usize) {
        let wake = {
            let mut w = lock(&self.waiters);
            let mut wake = Wakeups::new();
            for _ in 0..n {
                match w.notify_one() {
                    Some(u) => wake.push(u),
                    None => break,
                }
            }
            wake
        };
        wake.wake();
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        let wake = lock(&self.waiters).notify_all();
        wake.wake();
    }

    /// How many are waiting.
    pub fn waiters(&self) -> usize {
        lock(&self.waiters).len()
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("waiters", &self.waiters())
            .finish()
    }
}
