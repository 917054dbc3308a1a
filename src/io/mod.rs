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
//! waits on it (it may later be used from greenlets of other workers of the
//! same runtime: the event is handled by the registering hub, which unparks
//! the waiters wherever they run). The hub records readiness per direction in
//! `state`; waiters park on per-direction lists; a reader and a writer may
//! wait at the same time. A source that outlives its runtime and is then
//! used from another one moves its registration to the new runtime's hub.
//!
//! Waiting anywhere else (a plain thread, a thread-pool job): `poll(2)` on
//! the fd with the timeout, which blocks only that thread.
//!
//! Readiness is `[tick | bits]` in one atomic: each event bumps the tick. A
//! caller that saw readiness, tried the call and got `WouldBlock` clears the
//! bit only if the tick has not moved since it looked, so an event that
//! arrived in between is not lost. A stream read that fills less than its
//! buffer has drained the socket and clears the bit the same way
//! ([`Source::read_stream`]), so the next read waits for the next edge
//! instead of paying a failing system call; `READ_CLOSED` (sticky, set on
//! hang-up or error) turns that off once an EOF may be waiting.
//!
//! # Who owns what
//!
//! - `Source::registration` (under its own lock, written only when the fd
//!   is first registered or moves runtime) says which hub's `epoll` holds
//!   the fd; `registered_at` mirrors its worker pointer so the common case
//!   ("already registered here") takes no lock.
//! - `Shared::waiters` (the per-direction lists) is locked by waiters to
//!   enlist and leave, and by the hub to drain a list when its direction
//!   becomes ready. A waiter's entry is removed either by the hub (it was
//!   woken) or by the waiter's own `Leave` guard, on every exit path,
//!   including a kill or a timeout unwinding through the park.
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
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::hub::park::{Unparker, current_hub_greenlet, park_until};
use crate::hub::{Driver, Remote};
use crate::sync::spin::{Mutex as SpinMutex, MutexGuard as SpinGuard};

/// Which way an operation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

const READ: u64 = 1;
const WRITE: u64 = 2;
/// The peer closed its side or the socket failed: sticky, never cleared
/// (a read there returns at once, with EOF or the error).
const READ_CLOSED: u64 = 4;
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
    /// Held for a few instructions, never across a park: the primitives'
    /// spin lock.
    waiters: SpinMutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    next_id: u64,
    read: Vec<(u64, Unparker)>,
    write: Vec<(u64, Unparker)>,
}

impl Waiters {
    fn list(&mut self, dir: Direction) -> &mut Vec<(u64, Unparker)> {
        match dir {
            Direction::Read => &mut self.read,
            Direction::Write => &mut self.write,
        }
    }
}

impl Shared {
    fn lock(&self) -> SpinGuard<'_, Waiters> {
        self.waiters.lock()
    }

    /// Called by the registering hub for each event.
    pub(crate) fn on_event(&self, ev: &mio::event::Event) {
        let mut bits = 0;
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            bits |= READ;
        }
        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
            bits |= WRITE;
        }
        if ev.is_read_closed() || ev.is_error() {
            bits |= READ_CLOSED;
        }
        if bits == 0 {
            return;
        }
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some((s & !BITS).wrapping_add(TICK) | (s & BITS) | bits)
            });
        // Waking under the lock is fine: an unpark only queues the greenlet
        // (it never runs it here) and takes no lock of ours.
        let mut w = self.lock();
        if bits & READ != 0 {
            for (_, u) in w.read.drain(..) {
                u.unpark();
            }
        }
        if bits & WRITE != 0 {
            for (_, u) in w.write.drain(..) {
                u.unpark();
            }
        }
    }
}

/// Where an fd is registered: the hub's worker and its registry.
struct Registration {
    worker: Arc<crate::hub::Shared>,
    /// The `epoll` token: `Arc::into_raw` of the source's `Shared`.
    token: *const Shared,
}

// SAFETY: `token` is only turned back into an `Arc` once, when the
// registration ends (`Registration::end`); elsewhere it is an opaque number.
unsafe impl Send for Registration {}

impl Registration {
    /// Takes `fd` out of the worker's `epoll` set and releases the token's
    /// reference on that worker, after any event batch that may name it.
    fn end(self, fd: RawFd) {
        let _ = self
            .worker
            .registry
            .deregister(&mut mio::unix::SourceFd(&fd));
        self.worker.io_registered.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: the registration's own reference, released once (`self`
        // is consumed).
        let token = unsafe { Arc::from_raw(self.token) };
        let here = Driver::with(|d| Arc::ptr_eq(&d.shared, &self.worker)).unwrap_or(false);
        if !here {
            // The hub may be reading an event that names this token: let it
            // drop the reference after its batch. (If that runtime is gone,
            // the queue is dropped with the worker's last handle.)
            self.worker.push_remote(Remote::Release(token));
        }
    }
}

/// A non-blocking I/O object that greenlets and threads can wait on.
pub(crate) struct Source<T: AsRawFd> {
    io: T,
    shared: Arc<Shared>,
    registration: Mutex<Option<Registration>>,
    /// The worker of `registration`, for the lock-free "registered here?".
    registered_at: AtomicPtr<crate::hub::Shared>,
    /// `set_nonblocking(true)`: fail with `WouldBlock` instead of waiting.
    nonblocking: AtomicBool,
}

impl<T: AsRawFd> Source<T> {
    /// Takes ownership of `io` and makes it non-blocking.
    pub(crate) fn new(io: T) -> io::Result<Source<T>> {
        set_nonblocking(io.as_raw_fd(), true)?;
        Ok(Source::new_nonblocking(io))
    }

    /// Takes ownership of `io`, which was made with `O_NONBLOCK` already
    /// (`accept4`, `socket` with `SOCK_NONBLOCK`).
    pub(crate) fn new_nonblocking(io: T) -> Source<T> {
        Source {
            io,
            shared: Arc::new(Shared {
                state: AtomicU64::new(READ | WRITE),
                waiters: SpinMutex::new(Waiters::default()),
            }),
            registration: Mutex::new(None),
            registered_at: AtomicPtr::new(std::ptr::null_mut()),
            nonblocking: AtomicBool::new(false),
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }

    /// The wrapped object, for calls that never block.
    pub(crate) fn get(&self) -> &T {
        &self.io
    }

    /// In non-blocking mode an operation that would wait fails with
    /// `WouldBlock` instead (`std`'s `set_nonblocking`).
    pub(crate) fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
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
                    if self.nonblocking.load(Ordering::Relaxed) {
                        return Err(e);
                    }
                    self.clear(dir, seen);
                    self.wait(dir, deadline)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// [`io`](Self::io) for a read from a stream socket into `len` bytes of
    /// buffer. A read that fills less than the buffer has drained the
    /// socket's receive queue (a stream read takes all it can), which is as
    /// good as a `WouldBlock`: on a hub, read readiness is forgotten (unless
    /// an event came meanwhile), and the next read waits for the next edge
    /// instead of paying a system call to learn that nothing is there. (A
    /// request/response connection then makes two system calls per message
    /// instead of three.) An arrival after the read either shows as a newer
    /// tick (the bit stays) or is an edge the hub has yet to report. Once
    /// the peer has closed (`READ_CLOSED`, sticky) reads always try, since
    /// the EOF needs no new edge. Not for datagrams or peeks: neither
    /// drains.
    pub(crate) fn read_stream(
        &self,
        deadline: Option<Instant>,
        len: usize,
        mut op: impl FnMut(&T) -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            let seen = self.shared.state.load(Ordering::Acquire);
            if seen & (READ | READ_CLOSED) == 0
                && !self.nonblocking.load(Ordering::Relaxed)
                && current_hub_greenlet().is_some()
            {
                // Drained last time, and no event since.
                self.wait(Direction::Read, deadline)?;
                continue;
            }
            match op(&self.io) {
                Ok(n) => {
                    // Not once the peer has closed: an EOF (or an error)
                    // may wait behind the data, with no edge to come.
                    if n > 0
                        && n < len
                        && seen & READ_CLOSED == 0
                        && current_hub_greenlet().is_some()
                    {
                        self.clear(Direction::Read, seen);
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.nonblocking.load(Ordering::Relaxed) {
                        return Err(e);
                    }
                    self.clear(Direction::Read, seen);
                    self.wait(Direction::Read, deadline)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
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
        let worker = self.register()?;
        // Enlist, then look again: an event either shows in `state` now or
        // finds us on the list.
        let mut leave = self.enlist(dir, worker);
        while !self.ready(dir) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(timed_out());
            }
            park_until(deadline);
            if !self.still_listed(&mut leave) {
                // An event took us off the list: look at the fd again.
                break;
            }
        }
        Ok(())
    }

    fn enlist(&self, dir: Direction, worker: Arc<crate::hub::Shared>) -> Leave<'_> {
        let mut w = self.shared.lock();
        w.next_id += 1;
        let id = w.next_id;
        w.list(dir).push((id, Unparker::current()));
        drop(w);
        worker.io_waiters.fetch_add(1, Ordering::SeqCst);
        Leave {
            shared: &self.shared,
            worker,
            dir,
            id,
            listed: true,
        }
    }

    /// Whether the waiter is still on its list; if not, its guard has
    /// nothing left to remove.
    fn still_listed(&self, leave: &mut Leave<'_>) -> bool {
        let mut w = self.shared.lock();
        leave.listed = w.list(leave.dir).iter().any(|(i, _)| *i == leave.id);
        leave.listed
    }

    /// Registers the fd with the current hub's `epoll` unless it is already
    /// registered with a hub of the current runtime; returns that hub.
    fn register(&self) -> io::Result<Arc<crate::hub::Shared>> {
        Driver::with(|d| {
            let at = self.registered_at.load(Ordering::Acquire);
            if std::ptr::eq(at, Arc::as_ptr(&d.shared)) {
                return Ok(d.shared.clone());
            }
            if let Some(w) =
                d.rt.workers
                    .iter()
                    .find(|w| std::ptr::eq(at, Arc::as_ptr(w)))
            {
                return Ok(w.clone());
            }
            self.register_slow(d)
        })
        .expect("registering on a hub")
    }

    fn register_slow(&self, d: &Driver) -> io::Result<Arc<crate::hub::Shared>> {
        let mut reg = self.registration.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = reg.as_ref()
            && d.rt.workers.iter().any(|w| Arc::ptr_eq(w, &r.worker))
        {
            // Another greenlet registered it meanwhile.
            return Ok(r.worker.clone());
        }
        if let Some(old) = reg.take() {
            // Registered by a runtime that is gone (or another one): move.
            self.registered_at
                .store(std::ptr::null_mut(), Ordering::Release);
            old.end(self.fd());
            self.shared.state.fetch_or(READ | WRITE, Ordering::AcqRel);
        }
        let worker = d.shared.clone();
        let token = Arc::into_raw(self.shared.clone());
        let res = worker.registry.register(
            &mut mio::unix::SourceFd(&self.fd()),
            mio::Token(token as usize),
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        );
        if let Err(e) = res {
            // SAFETY: the reference made by `into_raw` above, unused.
            drop(unsafe { Arc::from_raw(token) });
            return Err(e);
        }
        worker.io_registered.fetch_add(1, Ordering::SeqCst);
        self.registered_at
            .store(Arc::as_ptr(&worker).cast_mut(), Ordering::Release);
        *reg = Some(Registration {
            worker: worker.clone(),
            token,
        });
        Ok(worker)
    }
}

/// Takes a waiter off its list when its wait ends, however it ends, and
/// uncounts it on the hub that would have woken it.
struct Leave<'a> {
    shared: &'a Shared,
    worker: Arc<crate::hub::Shared>,
    dir: Direction,
    id: u64,
    /// False once the waiter is known to be off the list.
    listed: bool,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.worker.io_waiters.fetch_sub(1, Ordering::SeqCst);
        if !self.listed {
            return;
        }
        let removed = {
            let mut w = self.shared.lock();
            let list = w.list(self.dir);
            list.iter()
                .position(|(i, _)| *i == self.id)
                .map(|at| list.swap_remove(at))
        };
        // The unparker (a greenlet reference) is dropped outside the lock.
        drop(removed);
    }
}

impl<T: AsRawFd> Source<T> {
    /// Deregisters and gives the object back (still non-blocking).
    pub(crate) fn into_inner(mut self) -> T {
        self.deregister();
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; each field is read
        // out once. The registration is gone already (the remaining fields
        // hold no resources beyond their own memory and `shared`).
        unsafe {
            drop(std::ptr::read(&this.shared));
            drop(std::ptr::read(&this.registration));
            std::ptr::read(&this.io)
        }
    }

    fn deregister(&mut self) {
        let reg = self
            .registration
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(reg) = reg {
            reg.end(self.io.as_raw_fd());
        }
    }
}

impl<T: AsRawFd> Drop for Source<T> {
    fn drop(&mut self) {
        // Out of the `epoll` set before `io` closes the fd.
        self.deregister();
    }
}

pub(crate) fn timed_out() -> io::Error {
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
