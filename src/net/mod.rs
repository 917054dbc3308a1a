//! Green sockets: the `std::net` types, with the same method names, whose
//! blocking calls park only the calling greenlet.
//!
//! Every type wraps its `std` counterpart in non-blocking mode inside an
//! `io::Source`, and runs each operation through the one
//! "try, and on `WouldBlock` wait for readiness" path. Outside a greenlet
//! (a plain thread, a thread-pool job) the same calls block the thread, as
//! `std`'s do. Read and write timeouts are kept per socket and return
//! `ErrorKind::TimedOut`.
//!
//! Names are resolved on the thread pool ([`lookup_host`]): `getaddrinfo`
//! blocks and cannot be made readiness-based.

#[macro_use]
mod macros;

mod addr;
mod tcp;
mod udp;
mod unix;

pub use addr::{ToSocketAddrs, lookup_host};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::io::{Direction, Source};

/// A socket with read and write timeouts: what every connection-like type
/// (TCP and Unix streams, UDP and Unix datagram sockets) wraps in an `Arc`,
/// shared by its clones.
pub(crate) struct Conn<T: AsRawFd> {
    pub(crate) src: Source<T>,
    read_timeout: TimeoutCell,
    write_timeout: TimeoutCell,
}

impl<T: AsRawFd> Conn<T> {
    pub(crate) fn new(io: T) -> io::Result<Conn<T>> {
        Ok(Conn::from_source(Source::new(io)?))
    }

    pub(crate) fn from_source(src: Source<T>) -> Conn<T> {
        Conn {
            src,
            read_timeout: TimeoutCell::new(),
            write_timeout: TimeoutCell::new(),
        }
    }

    /// The wrapped `std` socket, for calls that never block.
    pub(crate) fn get(&self) -> &T {
        self.src.get()
    }

    /// Runs a receiving operation, waiting for readability within the read
    /// timeout.
    pub(crate) fn read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.src
            .io(Direction::Read, self.read_timeout.deadline(), op)
    }

    /// Runs a read from a stream socket into `len` bytes of buffer (see
    /// [`Source::read_stream`]), within the read timeout.
    pub(crate) fn read_stream(
        &self,
        len: usize,
        op: impl FnMut(&T) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.src.read_stream(self.read_timeout.deadline(), len, op)
    }

    /// Runs a sending operation, waiting for writability within the write
    /// timeout.
    pub(crate) fn write_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.src
            .io(Direction::Write, self.write_timeout.deadline(), op)
    }

    pub(crate) fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.read_timeout.set(d)
    }

    pub(crate) fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.read_timeout.get())
    }

    pub(crate) fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.write_timeout.set(d)
    }

    pub(crate) fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.write_timeout.get())
    }
}

/// Hands a shared socket back as its blocking `std` self: the socket itself
/// if no other clone uses it, else a duplicate.
pub(crate) fn into_blocking<T: AsRawFd>(
    conn: std::sync::Arc<Conn<T>>,
    dup: impl FnOnce(&T) -> io::Result<T>,
) -> io::Result<T> {
    let io = match std::sync::Arc::try_unwrap(conn) {
        Ok(c) => c.src.into_inner(),
        Err(shared) => dup(shared.get())?,
    };
    crate::io::set_nonblocking(io.as_raw_fd(), false)?;
    Ok(io)
}

/// A timeout setting shared by the clones of a socket (`None`: block).
pub(crate) struct TimeoutCell(AtomicU64);

impl TimeoutCell {
    pub(crate) const fn new() -> Self {
        TimeoutCell(AtomicU64::new(0))
    }

    /// Sets the timeout; `Some(ZERO)` is refused as `std` refuses it.
    pub(crate) fn set(&self, d: Option<Duration>) -> std::io::Result<()> {
        let nanos = match d {
            None => 0,
            Some(d) if d.is_zero() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "cannot set a 0 duration timeout",
                ));
            }
            Some(d) => d.as_nanos().min(u64::MAX as u128) as u64,
        };
        self.0.store(nanos, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    /// The deadline for an operation starting now.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.get().and_then(|d| Instant::now().checked_add(d))
    }
}
