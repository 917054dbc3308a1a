//! Waiting on many greenlets: `joinall`, `killall`, `iwait`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::hub::park::{Unparker, park_until};
use crate::spawn::{Greenlet, GreenletError, Link, add_link, remove_link, wait_done};

/// Waits until every greenlet has ended.
///
/// ```
/// greenlet::run(|| {
///     let gs: Vec<_> = (0..3).map(|i| greenlet::spawn(move || i * 10)).collect();
///     greenlet::joinall(&gs);
///     assert!(gs.iter().all(|g| g.ready()));
/// });
/// ```
pub fn joinall<T>(greenlets: &[Greenlet<T>]) {
    for g in greenlets {
        g.join();
    }
}

/// Why [`JoinAll::wait`] stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinAllError {
    /// The timeout passed first.
    TimedOut,
    /// With `raise_error`: this greenlet (its index) failed first.
    Failed(usize, GreenletError),
}

impl fmt::Display for JoinAllError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinAllError::TimedOut => f.write_str("joinall timed out"),
            JoinAllError::Failed(i, e) => write!(f, "greenlet {i} failed: {e}"),
        }
    }
}

impl std::error::Error for JoinAllError {}

/// `joinall` with gevent's options: a timeout, and `raise_error` (stop at the
/// first greenlet that fails, in the order they end).
///
/// ```
/// use std::time::Duration;
/// use greenlet::{GreenletError, JoinAll, JoinAllError};
///
/// greenlet::run(|| {
///     let gs = vec![
///         greenlet::spawn(|| { greenlet::sleep(Duration::from_secs(60)); 1 }),
///         greenlet::spawn(|| -> i32 { panic!("boom") }),
///     ];
///     let r = JoinAll::new(&gs).raise_error().wait();
///     assert_eq!(r, Err(JoinAllError::Failed(1, GreenletError::Panicked("boom".into()))));
///     greenlet::killall(&gs);
/// });
/// ```
pub struct JoinAll<'a, T> {
    greenlets: &'a [Greenlet<T>],
    timeout: Option<Duration>,
    raise_error: bool,
}

impl<'a, T> JoinAll<'a, T> {
    /// Waits for all of `greenlets`, with no timeout, not raising.
    pub fn new(greenlets: &'a [Greenlet<T>]) -> Self {
        JoinAll {
            greenlets,
            timeout: None,
            raise_error: false,
        }
    }

    /// Gives up after `d`.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Stops at the first greenlet that fails.
    pub fn raise_error(mut self) -> Self {
        self.raise_error = true;
        self
    }

    /// Waits; `Ok` once all have ended (failed ones included, unless
    /// `raise_error`).
    pub fn wait(self) -> Result<(), JoinAllError> {
        let deadline = self.timeout.map(|d| Instant::now() + d);
        if !self.raise_error {
            for g in self.greenlets {
                if !wait_done(g.header(), deadline) {
                    return Err(JoinAllError::TimedOut);
                }
            }
            return Ok(());
        }
        let mut it = Iwait::new(self.greenlets, deadline);
        for g in &mut it {
            if let Some(e) = g.error() {
                let i = self
                    .greenlets
                    .iter()
                    .position(|x| x.id() == g.id())
                    .expect("iwait yields its own greenlets");
                return Err(JoinAllError::Failed(i, e));
            }
        }
        if it.yielded < self.greenlets.len() {
            return Err(JoinAllError::TimedOut);
        }
        Ok(())
    }
}

/// Kills every greenlet and waits until all have finished unwinding.
pub fn killall<T>(greenlets: &[Greenlet<T>]) {
    for g in greenlets {
        g.kill_nowait();
    }
    joinall(greenlets);
}

/// Kills every greenlet and waits at most `timeout`; true if all ended.
pub fn killall_timeout<T>(greenlets: &[Greenlet<T>], timeout: Duration) -> bool {
    for g in greenlets {
        g.kill_nowait();
    }
    JoinAll::new(greenlets).timeout(timeout).wait().is_ok()
}

/// Yields the greenlets in the order they end (asyncio's `as_completed`).
///
/// ```
/// use std::time::Duration;
///
/// greenlet::run(|| {
///     let gs: Vec<_> = [30u64, 10, 20]
///         .into_iter()
///         .map(|ms| greenlet::spawn(move || { greenlet::sleep(Duration::from_millis(ms)); ms }))
///         .collect();
///     let order: Vec<u64> = greenlet::iwait(&gs).map(|g| *g.get().unwrap()).collect();
///     assert_eq!(order, [10, 20, 30]);
/// });
/// ```
pub fn iwait<T>(greenlets: &[Greenlet<T>]) -> Iwait<'_, T> {
    Iwait::new(greenlets, None)
}

/// [`iwait`] that stops yielding once `timeout` has passed.
pub fn iwait_timeout<T>(greenlets: &[Greenlet<T>], timeout: Duration) -> Iwait<'_, T> {
    Iwait::new(greenlets, Some(Instant::now() + timeout))
}

struct IwaitShared {
    done: VecDeque<usize>,
    waiter: Option<Unparker>,
}

/// The iterator of [`iwait`].
pub struct Iwait<'a, T> {
    greenlets: &'a [Greenlet<T>],
    shared: Arc<Mutex<IwaitShared>>,
    /// The link id on each greenlet not yet ended when we looked.
    links: Vec<Option<u64>>,
    deadline: Option<Instant>,
    yielded: usize,
}

impl<'a, T> Iwait<'a, T> {
    fn new(greenlets: &'a [Greenlet<T>], deadline: Option<Instant>) -> Self {
        let shared = Arc::new(Mutex::new(IwaitShared {
            done: VecDeque::new(),
            waiter: None,
        }));
        let mut links = Vec::with_capacity(greenlets.len());
        for (i, g) in greenlets.iter().enumerate() {
            let s = shared.clone();
            let link = Link::call(move || {
                let waiter = {
                    let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
                    s.done.push_back(i);
                    s.waiter.clone()
                };
                if let Some(w) = waiter {
                    w.unpark();
                }
            });
            match add_link(g.header(), link) {
                Ok(id) => links.push(Some(id)),
                Err(_) => {
                    links.push(None);
                    shared
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .done
                        .push_back(i);
                }
            }
        }
        Iwait {
            greenlets,
            shared,
            links,
            deadline,
            yielded: 0,
        }
    }
}

impl<'a, T> Iterator for Iwait<'a, T> {
    type Item = &'a Greenlet<T>;

    fn next(&mut self) -> Option<&'a Greenlet<T>> {
        if self.yielded == self.greenlets.len() {
            return None;
        }
        loop {
            {
                let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(i) = s.done.pop_front() {
                    self.links[i] = None;
                    self.yielded += 1;
                    return Some(&self.greenlets[i]);
                }
                // Whoever iterates now is who must be woken.
                s.waiter = Some(Unparker::current());
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            park_until(self.deadline);
        }
    }
}

impl<T> Drop for Iwait<'_, T> {
    fn drop(&mut self) {
        for (g, link) in self.greenlets.iter().zip(&self.links) {
            if let Some(id) = link {
                remove_link(g.header(), *id);
            }
        }
    }
}
