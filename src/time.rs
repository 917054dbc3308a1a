//! Sleeping and timeouts.
//!
//! `sleep` parks the greenlet on a timer of its hub. A [`Timeout`] arms a
//! timer that, when it fires, raises a private payload in the greenlet at its
//! next switch point; `with_timeout` catches its own payload (identified by
//! the timeout's id) and turns it into [`Elapsed`], and lets any other
//! (an outer timeout's, a kill, a panic) continue. So nested timeouts each
//! fire their own.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::hub::Driver;
use crate::hub::park::{CancelTimer, TimeoutFired, current_hub_greenlet, park_until, yield_now};
use crate::hub::timer::Action;

/// Sleeps for `d`: a greenlet on a hub parks (others run meanwhile); a plain
/// thread sleeps. `sleep(Duration::ZERO)` is [`yield_now`].
///
/// ```
/// use std::time::Duration;
/// greenlet::run(|| greenlet::sleep(Duration::from_millis(1)));
/// ```
pub fn sleep(d: Duration) {
    if current_hub_greenlet().is_none() {
        std::thread::sleep(d);
        return;
    }
    if d.is_zero() {
        yield_now();
        return;
    }
    let Some(deadline) = Instant::now().checked_add(d) else {
        // Longer than the clock can say: sleep until woken by a kill.
        loop {
            park_until(None);
        }
    };
    while Instant::now() < deadline {
        park_until(Some(deadline));
    }
}

/// The error of a [`Timeout`] that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for Elapsed {}

/// A time limit for a block of greenlet code (gevent's `Timeout`).
///
/// When it fires, the block is interrupted at its next switch point (a
/// sleep, a join, a wait, I/O): its stack unwinds to [`Timeout::run`], which
/// returns `Err(Elapsed)`. A block that never switches cannot be interrupted.
///
/// ```
/// use std::time::Duration;
/// use greenlet::{Elapsed, Timeout};
///
/// greenlet::run(|| {
///     let r = Timeout::new(Duration::from_millis(10)).run(|| {
///         greenlet::sleep(Duration::from_secs(10));
///     });
///     assert_eq!(r, Err(Elapsed));
/// });
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Timeout {
    duration: Duration,
}

impl Timeout {
    /// A timeout of `duration`, armed by [`run`](Self::run).
    pub fn new(duration: Duration) -> Self {
        Timeout { duration }
    }

    /// Runs `f` with this time limit.
    ///
    /// # Panics
    /// Outside a greenlet running on a hub (a plain thread cannot be
    /// interrupted).
    pub fn run<T>(self, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let g = current_hub_greenlet()
            .expect("greenlet: a Timeout needs a greenlet running on a hub (inside greenlet::run or a spawned greenlet)");
        // SAFETY: the running greenlet is alive while it runs.
        let h = unsafe { &*g };
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now()
            .checked_add(self.duration)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365 * 100));
        let key = Driver::with(|d| {
            d.timers
                .borrow_mut()
                .add(deadline, Action::Timeout(NonNull::from(h), id))
        });
        let cancel = CancelTimer(key);
        let result = catch_unwind(AssertUnwindSafe(f));
        drop(cancel);
        // SAFETY: we run on a hub, so we have our record.
        let run = unsafe { h.running() };
        if run.timeout_fired.get() == id {
            // It fired after the last switch point: too late to matter.
            // SAFETY: as above.
            unsafe { h.clear_timeout() };
        }
        match result {
            Ok(v) => Ok(v),
            Err(p) => match p.downcast::<TimeoutFired>() {
                Ok(t) if t.0 == id => {
                    run.unwinding.set(false);
                    Err(Elapsed)
                }
                Ok(t) => resume_unwind(t),
                Err(p) => resume_unwind(p),
            },
        }
    }
}

/// Runs `f` with a time limit of `d`; see [`Timeout`].
pub fn with_timeout<T>(d: Duration, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    Timeout::new(d).run(f)
}
