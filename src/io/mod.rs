//! Readiness: one path that every socket type (and later the monkey shim)
//! uses to wait until a non-blocking file descriptor is ready.
//!
//! # Design
//!
//! [`Source`] owns an I/O object (a `std` socket), always in non-blocking
//! mode. An operation always tries the system call first and waits only on
//! `WouldBlock` ([`Source::io`]).
//!
//! Waiting in a greenlet on a hub: the fd is registered once, edge-triggered
//! for read and write, with the `epoll` of the hub of the first greenlet that
//! waits on it (it may later be used from greenlets of other workers: the
//! event is handled by the registering hub, which unparks the waiters
//! wherever they run). The hub records readiness per direction in `state`;
//! waiters park on per-direction lists; a reader and a writer may wait at the
//! same time.
//!
//! Waiting anywhere else (a plain thread, a thread-pool job): `poll(2)` on
//! the fd with the timeout, which blocks only that thread.
//!
//! Readiness is `[tick | bits]` in one atomic: each event bumps the tick. A
//! caller that saw readiness, tried the call and got `WouldBlock` clears the
//! bit only if the tick has not moved since it looked, so an event that
//! arrived in between is not lost.
//!
//! # Lifetime
//!
//! The hub's `epoll` token is a pointer to the [`Shared`] state, backed by a
//! reference that belongs to the registration. On drop the fd is removed
//! from the `epoll` set (from any thread: `epoll_ctl` is thread-safe) and
//! closed; the registration's reference is released on the registering
//! worker itself (directly, or through its remote queue), after any event
//! batch that may still name the token.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::hub::park::{Unparker, current_hub_greenlet, park_until};
use crate::hub::{Driver, Remote};

/// Which way an operation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

const READ: u64 = 1;
const WRITE: u64 = 2;
const BITS: u64 = 0xffff;
const TICK: u64 = 1 << 16;

impl Direction {
    fn bit(self) -> u64 {
        match self {
            Direction::Read => READ,
            Direction::Write => WRITE,
        }
    }
}

/// Readiness and waiters of one fd, shared with the hub that polls it.
pub(crate) struct Shared {
    state: AtomicU64,
    waiters: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    next_id: u64,
    read: Vec<(u64, Unparker)>,
    write: Vec<(u64, Unparker)>,
}

impl Shared {
    /// Called by the registering hub for each event.
    pub(crate) fn on_event(&self, ev: &mio::event::Event) {
        let mut bits = 0;
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            bits |= READ;
        }
        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
            bits |= WRITE;
        }
        if bits == 0 {
            return;
        }
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some((s & !BITS).wrapping_add(TICK) | (s & BITS) | bits)
            });
        let woken: Vec<Unparker> = {
            let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::new();
            if bits & READ != 0 {
                out.extend(w.read.drain(..).map(|(_, u)| u));
            }
            if bits & WRITE != 0 {
                out.extend(w.write.drain(..).map(|(_, u)| u));
            }
            out
        };
        for u in woken {
            u.unpark();
        }
    }
}

/// Where an fd is registered: the hub's worker and its registry.
struct Registration {
    worker: Arc<crate::hub::Shared>,
    /// The `epoll` token: `Arc::into_raw` of the source's `Shared`.
    token: *const Shared,
}

// SAFETY: `token` is only turned back into an `Arc` once, by `Drop for
// Source`, on the registering worker; elsewhere it is an opaque number.
unsafe impl Send for Registration {}
// SAFETY: as above.
unsafe impl Sync for Registration {}

/// A non-blocking I/O object that greenlets and threads can wait on.
pub(crate) struct Source<T: AsRawFd> {
    io: T,
    shared: Arc<Shared>,
    registration: OnceLock<Registration>,
}

impl<T: AsRawFd> Source<T> {
    /// Takes ownership of `io` and makes it non-blocking.
    pub(crate) fn new(io: T) -> io::Result<Source<T>> {
        set_nonblocking(io.as_raw_fd(), true)?;
        Ok(Source {
            io,
            shared: Arc::new(Shared {
                state: AtomicU64::new(READ | WRITE),
                waiters: Mutex::new(Waiters::default()),
            }),
            registration: OnceLock::new(),
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }

    /// The wrapped object, for calls that never block.
    pub(crate) fn get(&self) -> &T {
        &self.io
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for
    /// readiness in `dir` between tries; `ErrorKind::TimedOut` once
    /// `deadline` has passed.
    pub(crate) fn io<R>(
        &self,
        dir: Direction,
        deadline: Option<Instant>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            let seen = self.shared.state.load(Ordering::Acquire);
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.clear(dir, seen);
                    self.wait(dir, deadline)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// Forgets readiness in `dir`, unless an event came after `seen`.
    fn clear(&self, dir: Direction, seen: u64) {
        let _ = self.shared.state.compare_exchange(
            seen,
            seen & !dir.bit(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    fn ready(&self, dir: Direction) -> bool {
        self.shared.state.load(Ordering::Acquire) & dir.bit() != 0
    }

    /// Waits until the fd is ready in `dir` (maybe spuriously), or fails
    /// with `TimedOut` once `deadline` passes.
    pub(crate) fn wait(&self, dir: Direction, deadline: Option<Instant>) -> io::Result<()> {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(timed_out());
        }
        if current_hub_greenlet().is_none() {
            return poll_fd(self.fd(), dir, deadline);
        }
        self.register()?;
        // Enlist, then look again: an event either shows in `state` now or
        // finds us on the list.
        let id = self.enlist(dir);
        let _leave = Leave {
            source: self,
            dir,
            id,
        };
        while !self.ready(dir) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(timed_out());
            }
            park_until(deadline);
            if !self.on_list(dir, id) {
                // An event took us off the list: look at the fd again.
                break;
            }
        }
        Ok(())
    }

    fn enlist(&self, dir: Direction) -> u64 {
        let mut w = self
            .shared
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        w.next_id += 1;
        let id = w.next_id;
        let list = match dir {
            Direction::Read => &mut w.read,
            Direction::Write => &mut w.write,
        };
        list.push((id, Unparker::current()));
        if let Some(r) = self.registration.get() {
            r.worker.io_waiters.fetch_add(1, Ordering::SeqCst);
        }
        id
    }

    fn on_list(&self, dir: Direction, id: u64) -> bool {
        let w = self
            .shared
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let list = match dir {
            Direction::Read => &w.read,
            Direction::Write => &w.write,
        };
        list.iter().any(|(i, _)| *i == id)
    }

    /// Registers the fd with the current hub's `epoll`, once.
    fn register(&self) -> io::Result<()> {
        if self.registration.get().is_some() {
            return Ok(());
        }
        let worker = Driver::with(|d| d.shared.clone()).expect("registering on a hub");
        let token = Arc::into_raw(self.shared.clone());
        let reg = Registration { worker, token };
        let res = reg.worker.registry.register(
            &mut mio::unix::SourceFd(&self.fd()),
            mio::Token(token as usize),
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        );
        if let Err(e) = res {
            // SAFETY: the reference made by `into_raw` above, unused.
            drop(unsafe { Arc::from_raw(token) });
            return Err(e);
        }
        reg.worker.io_registered.fetch_add(1, Ordering::SeqCst);
        if self.registration.set(reg).is_err() {
            unreachable!("a source is registered once, by its owner");
        }
        Ok(())
    }
}

/// Takes a waiter off its list when its wait ends, however it ends.
struct Leave<'a, T: AsRawFd> {
    source: &'a Source<T>,
    dir: Direction,
    id: u64,
}

impl<T: AsRawFd> Drop for Leave<'_, T> {
    fn drop(&mut self) {
        if let Some(r) = self.source.registration.get() {
            r.worker.io_waiters.fetch_sub(1, Ordering::SeqCst);
        }
        let removed = {
            let mut w = self
                .source
                .shared
                .waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let list = match self.dir {
                Direction::Read => &mut w.read,
                Direction::Write => &mut w.write,
            };
            list.iter()
                .position(|(i, _)| *i == self.id)
                .map(|at| list.swap_remove(at))
        };
        drop(removed);
    }
}

impl<T: AsRawFd> Source<T> {
    /// Deregisters and gives the object back (still non-blocking).
    pub(crate) fn into_inner(mut self) -> T {
        self.deregister();
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; each field is read
        // out once. The registration is gone already.
        unsafe {
            drop(std::ptr::read(&this.shared));
            drop(std::ptr::read(&this.registration));
            std::ptr::read(&this.io)
        }
    }

    fn deregister(&mut self) {
        let Some(reg) = self.registration.take() else {
            return;
        };
        let _ = reg
            .worker
            .registry
            .deregister(&mut mio::unix::SourceFd(&self.fd()));
        reg.worker.io_registered.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: the registration's own reference, released once.
        let token = unsafe { Arc::from_raw(reg.token) };
        let here = Driver::with(|d| Arc::ptr_eq(&d.shared, &reg.worker)).unwrap_or(false);
        if !here {
            // The hub may be reading an event that names this token: let it
            // drop the reference after its batch.
            reg.worker.push_remote(Remote::Release(token));
        }
    }
}

impl<T: AsRawFd> Drop for Source<T> {
    fn drop(&mut self) {
        // Out of the `epoll` set before `io` closes the fd.
        self.deregister();
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "operation timed out")
}

/// Blocks the thread until `fd` is ready in `dir` or `deadline` passes.
fn poll_fd(fd: RawFd, dir: Direction, deadline: Option<Instant>) -> io::Result<()> {
    let events = match dir {
        Direction::Read => libc::POLLIN,
        Direction::Write => libc::POLLOUT,
    };
    loop {
        let timeout = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timed_out());
                }
                // Round up so a wait never ends early.
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the call's duration.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout) };
        if n > 0 {
            return Ok(());
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Sets or clears `O_NONBLOCK`.
pub(crate) fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own, with valid commands.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let want = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if want != flags && libc::fcntl(fd, libc::F_SETFL, want) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
