//! A worker's alarm clock: a `timerfd` in the hub's `epoll` set, so a worker
//! that sleeps until its next timer wakes when the timer is due, not at the
//! next whole millisecond.
//!
//! # Why
//!
//! `epoll_wait` takes its timeout in milliseconds and mio rounds it up, so a
//! worker whose next timer is 50 µs away sleeps a whole millisecond: every
//! sleep that ends while its worker is idle woke about 1 ms late (measured:
//! most idle sleeps overshot by 0.75–1.25 ms). A `timerfd` takes a timeout in
//! nanoseconds; the hub arms it before it sleeps and keeps the millisecond
//! timeout, one millisecond later, as a backstop.
//!
//! The alarm is armed relative to now, only when the worker is about to
//! block with a timer pending; an alarm left armed by a sleep that ended
//! early fires later as one spurious wake-up, which the hub ignores (it looks
//! at its timers anyway), and is re-armed or read then.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// The `epoll` token of a worker's alarm.
pub(crate) const ALARM: mio::Token = mio::Token(usize::MAX - 1);

pub(crate) struct Alarm {
    fd: OwnedFd,
}

impl Alarm {
    /// Makes an alarm and registers it, readable and edge-triggered, with
    /// `registry`.
    pub(crate) fn new(registry: &mio::Registry) -> io::Result<Alarm> {
        // SAFETY: a plain syscall; its result is checked before use.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        registry.register(
            &mut mio::unix::SourceFd(&fd.as_raw_fd()),
            ALARM,
            mio::Interest::READABLE,
        )?;
        Ok(Alarm { fd })
    }

    /// Rings in `after` (at once if it is zero).
    pub(crate) fn arm(&self, after: Duration) {
        // A zero `it_value` would disarm the timer: ring after 1 ns instead.
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `fd` is our timerfd; `spec` is a valid itimerspec and the
        // old value is not asked for. A failure only loses precision: the
        // caller's epoll timeout is the backstop.
        unsafe {
            libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut());
        }
    }

    /// Consumes a ring, so the next one is a new edge for `epoll`.
    pub(crate) fn clear(&self) {
        let mut ticks = 0u64;
        // SAFETY: reads at most 8 bytes into `ticks`; the fd is
        // non-blocking, so with nothing to read it returns EAGAIN, which is
        // fine.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&raw mut ticks).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn rings_at_sub_millisecond_precision_through_epoll() {
        let mut poll = mio::Poll::new().unwrap();
        let alarm = Alarm::new(poll.registry()).unwrap();
        let mut events = mio::Events::with_capacity(4);
        let start = Instant::now();
        alarm.arm(Duration::from_micros(200));
        // The backstop is far away: only the alarm can end this wait early.
        poll.poll(&mut events, Some(Duration::from_secs(10)))
            .unwrap();
        assert!(events.iter().any(|e| e.token() == ALARM));
        assert!(start.elapsed() >= Duration::from_micros(200));
        alarm.clear();
        // Cleared: a zero-timeout poll sees nothing more.
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty());
    }
}
