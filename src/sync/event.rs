//! `Event` (a flag to wait for) and `AsyncResult<T, E>` (a value to wait for).
//!
//! Both are broadcasts: setting notifies every waiter at once, and a waiter
//! that was notified returns `true` even if the event was cleared before it
//! ran (as in gevent). A waiter that leaves (killed, timed out) takes nothing
//! from the others, so it has nothing to give back.

use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::waitlist::{WaitList, deadline_in, wait_ready};
use crate::loom::{Mutex, lock};

struct State {
    set: bool,
    waiters: WaitList,
}

/// A flag greenlets and threads can wait for (gevent's `Event`).
///
/// ```
/// use std::sync::Arc;
/// use greenlet::sync::Event;
///
/// greenlet::run(|| {
///     let ready = Arc::new(Event::new());
///     let r = ready.clone();
///     // A plain OS thread sets it; the greenlet parks meanwhile.
///     std::thread::spawn(move || r.set());
///     ready.wait();
///     assert!(ready.is_set());
/// });
/// ```
pub struct Event {
    state: Mutex<State>,
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

impl Event {
    /// A new, clear event.
    pub fn new() -> Self {
        Event {
            state: Mutex::new(State {
                set: false,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let wake = {
            let mut s = lock(&self.state);
            s.set = true;
            s.waiters.notify_all()
        };
        wake.wake();
    }

    /// Clears the flag; later waits wait again.
    pub fn clear(&self) {
        lock(&self.state).set = false;
    }

    /// True if the flag is set.
    pub fn is_set(&self) -> bool {
        lock(&self.state).set
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        wait_ready(&self.state, deadline, |s| &mut s.waiters, |s| s.set)
    }

    /// Waits until the flag is set (returns at once if it is).
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Waits at most `timeout`; true if the flag was set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(deadline_in(timeout))
    }

    /// How many are waiting.
    pub fn waiters(&self) -> usize {
        lock(&self.state).waiters.len()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .field("waiters", &self.waiters())
            .finish()
    }
}

/// A result that is set once, a value or an error, and that every waiter
/// gets (gevent's `AsyncResult`).
///
/// The error type defaults to a boxed error.
///
/// ```
/// use std::sync::Arc;
/// use greenlet::sync::AsyncResult;
///
/// greenlet::run(|| {
///     let r: Arc<AsyncResult<u32, String>> = Arc::new(AsyncResult::new());
///     let waiters: Vec<_> = (0..3)
///         .map(|_| {
///             let r = r.clone();
///             greenlet::spawn(move || *r.get().unwrap())
///         })
///         .collect();
///     r.set(7).unwrap();
///     assert!(waiters.iter().all(|g| *g.get().unwrap() == 7));
///     assert!(r.set(8).is_err(), "set once");
/// });
/// ```
pub struct AsyncResult<T, E = Box<dyn std::error::Error + Send + Sync>> {
    value: OnceLock<Result<T, E>>,
    waiters: Mutex<WaitList>,
}

impl<T, E> Default for AsyncResult<T, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, E> AsyncResult<T, E> {
    /// An empty result.
    pub fn new() -> Self {
        AsyncResult {
            value: OnceLock::new(),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    /// Sets the value and wakes every waiter; if a result was set already,
    /// gives `value` back.
    pub fn set(&self, value: T) -> Result<(), T> {
        self.put(Ok(value)).map_err(|r| match r {
            Ok(v) => v,
            Err(_) => unreachable!("we gave a value"),
        })
    }

    /// Sets an error and wakes every waiter; if a result was set already,
    /// gives `error` back.
    pub fn set_error(&self, error: E) -> Result<(), E> {
        self.put(Err(error)).map_err(|r| match r {
            Err(e) => e,
            Ok(_) => unreachable!("we gave an error"),
        })
    }

    fn put(&self, r: Result<T, E>) -> Result<(), Result<T, E>> {
        let wake = {
            let mut w = lock(&self.waiters);
            self.value.set(r)?;
            w.notify_all()
        };
        wake.wake();
        Ok(())
    }

    /// True once a value or an error is set.
    pub fn ready(&self) -> bool {
        self.value.get().is_some()
    }

    /// True once a value (not an error) is set.
    pub fn successful(&self) -> bool {
        matches!(self.value.get(), Some(Ok(_)))
    }

    /// The result, if set (does not wait; gevent's `get(block=False)`).
    pub fn try_get(&self) -> Option<Result<&T, &E>> {
        self.value.get().map(Result::as_ref)
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        wait_ready(
            &self.waiters,
            deadline,
            |w| w,
            |_| self.value.get().is_some(),
        )
    }

    /// Waits for the result and returns it.
    pub fn get(&self) -> Result<&T, &E> {
        self.wait_until(None);
        self.try_get().expect("notified after the result was set")
    }

    /// Waits at most `timeout` for the result.
    pub fn get_timeout(&self, timeout: Duration) -> Option<Result<&T, &E>> {
        self.wait_until(deadline_in(timeout));
        self.try_get()
    }

    /// Waits until the result is set.
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Waits at most `timeout`; true if the result is set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(deadline_in(timeout))
    }

    /// How many are waiting.
    pub fn waiters(&self) -> usize {
        lock(&self.waiters).len()
    }
}

impl<T: fmt::Debug, E: fmt::Debug> fmt::Debug for AsyncResult<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("value", &self.value.get())
            .finish_non_exhaustive()
    }
}
