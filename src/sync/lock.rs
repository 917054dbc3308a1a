//! `Lock<T>` (a mutex with a guard) and `RLock<T>` (re-entrant).
//!
//! Both keep `locked` (or the owner and depth) and a FIFO wait list under one
//! short internal lock. Unlocking with waiters hands the lock to the first
//! one without ever marking it free, so it stays locked across the hand-over
//! and nobody can barge in; a waiter that unwinds (killed) or times out after
//! being handed the lock passes it on to the next one.
//!
//! There is no poisoning: killing a greenlet unwinds it like a panic, and a
//! lock that wedged on every kill would be useless. A guard dropped during
//! an unwind simply unlocks.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::waitlist::{WaitList, Wakeups, acquire, deadline_in};
use crate::loom::{Mutex, lock};

struct State {
    locked: bool,
    waiters: WaitList,
}

impl State {
    fn try_lock(&mut self) -> bool {
        if self.locked {
            return false;
        }
        self.locked = true;
        true
    }

    fn unlock(&mut self) -> Wakeups {
        match self.waiters.notify_one() {
            // Stays locked: ownership moves to the waiter.
            Some(u) => Wakeups::one(Some(u)),
            None => {
                self.locked = false;
                Wakeups::new()
            }
        }
    }
}

/// A mutual-exclusion lock protecting a `T` (gevent's `Lock`, shaped like
/// `std::sync::Mutex`): a greenlet that waits for it parks, a plain thread
/// blocks. Waiters get the lock in FIFO order.
///
/// The guard may be held across switches (sleeps, I/O, waits): that is the
/// point of a green lock.
///
/// ```
/// use std::sync::Arc;
/// use greenlet::sync::Lock;
///
/// greenlet::run(|| {
///     let count = Arc::new(Lock::new(0));
///     let gs: Vec<_> = (0..10)
///         .map(|_| {
///             let count = count.clone();
///             greenlet::spawn(move || {
///                 let mut n = count.lock();
///                 let seen = *n;
///                 greenlet::sleep(std::time::Duration::from_millis(1)); // others run
///                 *n = seen + 1;
///             })
///         })
///         .collect();
///     greenlet::joinall(&gs);
///     assert_eq!(*count.lock(), 10);
/// });
/// ```
pub struct Lock<T: ?Sized> {
    state: Mutex<State>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one guard at a time, which may be on
// any thread: like std's Mutex, it needs `T: Send`, not `T: Sync`.
unsafe impl<T: ?Sized + Send> Send for Lock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Lock<T> {}

impl<T> Lock<T> {
    /// An unlocked lock around `value`.
    pub fn new(value: T) -> Self {
        Lock {
            state: Mutex::new(State {
                locked: false,
                waiters: WaitList::new(),
            }),
            data: UnsafeCell::new(value),
        }
    }

    /// The value, taking the lock apart.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Lock<T> {
    fn lock_until(&self, deadline: Option<Instant>) -> Option<LockGuard<'_, T>> {
        acquire(
            &self.state,
            deadline,
            |s| &mut s.waiters,
            State::try_lock,
            (),
            // Handed the lock, but leaving: pass it on.
            State::unlock,
        )
        .then(|| self.guard())
    }

    fn guard(&self) -> LockGuard<'_, T> {
        LockGuard {
            lock: self,
            _data: PhantomData,
        }
    }

    /// Takes the lock, waiting as long as it takes.
    ///
    /// Not re-entrant: a greenlet that locks a `Lock` it holds waits forever
    /// (use [`RLock`] for that).
    pub fn lock(&self) -> LockGuard<'_, T> {
        self.lock_until(None).expect("no deadline")
    }

    /// Takes the lock, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<LockGuard<'_, T>> {
        self.lock_until(deadline_in(timeout))
    }

    /// Takes the lock if it is free now.
    pub fn try_lock(&self) -> Option<LockGuard<'_, T>> {
        lock(&self.state).try_lock().then(|| self.guard())
    }

    /// True while someone holds the lock.
    pub fn is_locked(&self) -> bool {
        lock(&self.state).locked
    }

    /// How many are waiting for the lock.
    pub fn waiters(&self) -> usize {
        lock(&self.state).waiters.len()
    }

    /// The value, through `&mut self` (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn unlock(&self) {
        let wake = lock(&self.state).unlock();
        wake.wake();
    }
}

impl<T: Default> Default for Lock<T> {
    fn default() -> Self {
        Lock::new(T::default())
    }
}

impl<T: ?Sized> fmt::Debug for Lock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.is_locked())
            .field("waiters", &self.waiters())
            .finish_non_exhaustive()
    }
}

/// Access to a [`Lock`]'s value; unlocks when dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard<'a, T: ?Sized> {
    lock: &'a Lock<T>,
    /// Sync only if `T` is (the guard hands out `&T`).
    _data: PhantomData<&'a mut T>,
}

impl<'a, T: ?Sized> LockGuard<'a, T> {
    /// The lock this guard holds (for `Condition`).
    pub(crate) fn lock_ref(&self) -> &'a Lock<T> {
        self.lock
    }
}

impl<T: ?Sized> Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its holder owns the lock, so no
        // other reference to the data is live.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes this access unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for LockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for LockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Who is running: the current greenlet, or this plain thread.
fn owner_id() -> u64 {
    crate::loom::owner_id()
}

struct RState {
    /// `owner_id()` of the holder, 0 if free.
    owner: u64,
    depth: usize,
    /// Each waiter's owner id, to install when it is handed the lock.
    waiters: WaitList<u64>,
}

impl RState {
    /// Takes the lock if it is free, or again if `me` holds it.
    fn try_lock(&mut self, me: u64) -> bool {
        if self.owner != 0 && self.owner != me {
            return false;
        }
        self.owner = me;
        self.depth += 1;
        true
    }

    fn unlock_fully(&mut self) -> Wakeups {
        match self.waiters.notify_one_with(|id| *id) {
            Some((id, u)) => {
                self.owner = id;
                self.depth = 1;
                Wakeups::one(Some(u))
            }
            None => {
                self.owner = 0;
                self.depth = 0;
                Wakeups::new()
            }
        }
    }
}

/// A re-entrant lock (gevent's `RLock`): the greenlet (or plain thread) that
/// holds it may lock it again; it is released when every guard is dropped.
/// Its value is shared (`&T`), since the holder may have several guards.
///
/// ```
/// use greenlet::sync::RLock;
///
/// greenlet::run(|| {
///     let lock = RLock::new(vec![1]);
///     let outer = lock.lock();
///     let inner = lock.lock(); // same greenlet: no deadlock
///     assert_eq!(inner.len(), 1);
///     drop(inner);
///     assert!(lock.is_locked());
///     drop(outer);
///     assert!(!lock.is_locked());
/// });
/// ```
pub struct RLock<T: ?Sized> {
    state: Mutex<RState>,
    data: T,
}

impl<T> RLock<T> {
    /// An unlocked re-entrant lock around `value`.
    pub fn new(value: T) -> Self {
        RLock {
            state: Mutex::new(RState {
                owner: 0,
                depth: 0,
                waiters: WaitList::new(),
            }),
            data: value,
        }
    }

    /// The value, taking the lock apart.
    pub fn into_inner(self) -> T {
        self.data
    }
}

impl<T: ?Sized> RLock<T> {
    fn lock_until(&self, deadline: Option<Instant>) -> Option<RLockGuard<'_, T>> {
        let me = owner_id();
        acquire(
            &self.state,
            deadline,
            |s| &mut s.waiters,
            |s| s.try_lock(me),
            me,
            RState::unlock_fully,
        )
        .then(|| self.guard())
    }

    fn guard(&self) -> RLockGuard<'_, T> {
        RLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the lock (again, if the caller holds it), waiting as long as it
    /// takes.
    pub fn lock(&self) -> RLockGuard<'_, T> {
        self.lock_until(None).expect("no deadline")
    }

    /// Takes the lock, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<RLockGuard<'_, T>> {
        self.lock_until(deadline_in(timeout))
    }

    /// Takes the lock if it is free or the caller holds it.
    pub fn try_lock(&self) -> Option<RLockGuard<'_, T>> {
        let me = owner_id();
        lock(&self.state).try_lock(me).then(|| self.guard())
    }

    /// True while someone holds the lock.
    pub fn is_locked(&self) -> bool {
        lock(&self.state).owner != 0
    }

    /// True if the caller (this greenlet, or this plain thread) holds it.
    pub fn is_owned(&self) -> bool {
        lock(&self.state).owner == owner_id()
    }

    /// How many are waiting for the lock.
    pub fn waiters(&self) -> usize {
        lock(&self.state).waiters.len()
    }

    fn unlock(&self) {
        let wake = {
            let mut s = lock(&self.state);
            s.depth -= 1;
            if s.depth > 0 {
                return;
            }
            s.unlock_fully()
        };
        wake.wake();
    }
}

impl<T: ?Sized> fmt::Debug for RLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("locked", &self.is_locked())
            .field("waiters", &self.waiters())
            .finish_non_exhaustive()
    }
}

/// A hold on an [`RLock`]; the lock is released when the last one drops.
///
/// Not `Send`: the hold belongs to the greenlet that took it.
///
/// ```compile_fail
/// fn needs_send<T: Send>(_: T) {}
/// let lock = greenlet::sync::RLock::new(());
/// needs_send(lock.lock());
/// ```
#[must_use = "the lock is released when the guard is dropped"]
pub struct RLockGuard<'a, T: ?Sized> {
    lock: &'a RLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives `&T`, which `T: Sync` allows on any
// thread; dropping (unlocking) needs the guard itself, which stays put.
unsafe impl<T: ?Sized + Sync> Sync for RLockGuard<'_, T> {}

impl<T: ?Sized> Deref for RLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.lock.data
    }
}

impl<T: ?Sized> Drop for RLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RLockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
