//! `Semaphore` and `BoundedSemaphore`.
//!
//! The count and the wait list sit under one lock. A release with waiters
//! does not raise the count: it hands the permit straight to the first
//! waiter (FIFO), so `available() > 0` implies nobody waits, and a newcomer
//! cannot overtake a parked waiter. A waiter that gives up after being handed
//! a permit (killed, timed out) releases it again, to the next waiter.

use std::fmt;
use std::time::Duration;

use super::waitlist::{WaitList, Wakeups, acquire, deadline_in};
use crate::loom::{Mutex, lock};

struct State {
    permits: usize,
    /// `BoundedSemaphore`: the most `permits` may reach.
    bound: Option<usize>,
    waiters: WaitList,
}

impl State {
    fn try_acquire(&mut self) -> bool {
        if self.permits == 0 {
            return false;
        }
        self.permits -= 1;
        true
    }

    /// Returns a permit: to the first waiter if there is one.
    fn release(&mut self) -> Result<Wakeups, ReleaseError> {
        if let Some(u) = self.waiters.notify_one() {
            return Ok(Wakeups::one(Some(u)));
        }
        if self.bound.is_some_and(|b| self.permits >= b) {
            return Err(ReleaseError);
        }
        self.permits += 1;
        Ok(Wakeups::new())
    }
}

/// Shared by both semaphores.
struct Inner {
    state: Mutex<State>,
}

impl Inner {
    fn new(permits: usize, bound: Option<usize>) -> Self {
        Inner {
            state: Mutex::new(State {
                permits,
                bound,
                waiters: WaitList::new(),
            }),
        }
    }

    fn try_acquire(&self) -> bool {
        lock(&self.state).try_acquire()
    }

    fn acquire_until(&self, deadline: Option<std::time::Instant>) -> bool {
        acquire(
            &self.state,
            deadline,
            |s| &mut s.waiters,
            State::try_acquire,
            (),
            // Handed a permit we will not use: pass it on.
            |s| s.release().unwrap_or_else(|_| Wakeups::new()),
        )
    }

    fn release(&self) -> Result<(), ReleaseError> {
        let wake = lock(&self.state).release()?;
        wake.wake();
        Ok(())
    }

    fn available(&self) -> usize {
        lock(&self.state).permits
    }

    fn waiters(&self) -> usize {
        lock(&self.state).waiters.len()
    }
}

/// The methods and `Debug` of [`Semaphore`] and [`BoundedSemaphore`], which
/// differ only in `new` and `release` (and in the docs of `available` and
/// `locked`, given here).
macro_rules! semaphore_methods {
    ($name:ident, $available_doc:literal, $locked_doc:literal $(,)?) => {
        impl $name {
            /// Takes a permit, waiting as long as it takes.
            pub fn acquire(&self) {
                self.inner.acquire_until(None);
            }

            /// Takes a permit, waiting at most `timeout`; true if it got one.
            pub fn acquire_timeout(&self, timeout: Duration) -> bool {
                self.inner.acquire_until(deadline_in(timeout))
            }

            /// Takes a permit if one is free now.
            pub fn try_acquire(&self) -> bool {
                self.inner.try_acquire()
            }

            /// Takes a permit and returns a guard that releases it when dropped.
            pub fn access(&self) -> SemaphoreGuard<'_> {
                self.acquire();
                SemaphoreGuard { inner: &self.inner }
            }

            /// [`access`](Self::access), waiting at most `timeout`.
            pub fn access_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
                self.acquire_timeout(timeout)
                    .then(|| SemaphoreGuard { inner: &self.inner })
            }

            #[doc = $available_doc]
            pub fn available(&self) -> usize {
                self.inner.available()
            }

            #[doc = $locked_doc]
            pub fn locked(&self) -> bool {
                self.available() == 0
            }

            /// How many are waiting for a permit.
            pub fn waiters(&self) -> usize {
                self.inner.waiters()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("available", &self.available())
                    .field("waiters", &self.waiters())
                    .finish()
            }
        }
    };
}

/// A counting semaphore (gevent's `Semaphore`): `acquire` takes a permit,
/// waiting (parking a greenlet, blocking a plain thread) while there is
/// none; `release` gives one back. Waiters are served in FIFO order.
///
/// ```
/// use std::sync::Arc;
/// use greenlet::sync::Semaphore;
///
/// greenlet::run(|| {
///     let sem = Arc::new(Semaphore::new(2));
///     let gs: Vec<_> = (0..6)
///         .map(|i| {
///             let sem = sem.clone();
///             greenlet::spawn(move || {
///                 let _permit = sem.access(); // at most two at a time in here
///                 greenlet::sleep(std::time::Duration::from_millis(1));
///                 i
///             })
///         })
///         .collect();
///     greenlet::joinall(&gs);
///     assert_eq!(sem.available(), 2);
/// });
/// ```
pub struct Semaphore {
    inner: Inner,
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    pub fn new(permits: usize) -> Self {
        Semaphore {
            inner: Inner::new(permits, None),
        }
    }

    /// Gives a permit back (to the first waiter, if any). A plain semaphore
    /// has no upper bound: releasing more than was acquired adds permits.
    pub fn release(&self) {
        let _ = self.inner.release();
    }
}

semaphore_methods!(
    Semaphore,
    "Free permits now (gevent's `counter`).",
    "True if no permit is free (gevent's `locked`).",
);

/// Releasing a [`BoundedSemaphore`] past its initial count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseError;

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("semaphore released too many times")
    }
}

impl std::error::Error for ReleaseError {}

/// A semaphore that refuses to be released past its initial count
/// (gevent's `BoundedSemaphore`), which catches a release without acquire.
///
/// ```
/// use greenlet::sync::{BoundedSemaphore, ReleaseError};
///
/// let sem = BoundedSemaphore::new(1);
/// sem.acquire();
/// assert_eq!(sem.release(), Ok(()));
/// assert_eq!(sem.release(), Err(ReleaseError));
/// ```
pub struct BoundedSemaphore {
    inner: Inner,
}

impl BoundedSemaphore {
    /// A semaphore with `permits` permits, never more.
    pub fn new(permits: usize) -> Self {
        BoundedSemaphore {
            inner: Inner::new(permits, Some(permits)),
        }
    }

    /// Gives a permit back; an error if all permits are already free.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.inner.release()
    }
}

semaphore_methods!(
    BoundedSemaphore,
    "Free permits now.",
    "True if no permit is free.",
);

/// A permit of a [`Semaphore`] or [`BoundedSemaphore`], released on drop.
#[must_use = "the permit is released when the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    inner: &'a Inner,
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // The guard holds a permit it took, so a bounded release cannot fail.
        let _ = self.inner.release();
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SemaphoreGuard")
    }
}
