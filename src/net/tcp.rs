//! TCP: `TcpListener` and `TcpStream`.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Conn;
use super::addr::{ToSocketAddrs, each_addr};
use crate::io::{Direction, Source};

/// A TCP connection whose blocking calls park only the calling greenlet.
///
/// Clones (`try_clone`) share the socket, so one greenlet can read while
/// another writes. The socket closes when the last clone is dropped.
///
/// ```
/// use std::io::{Read, Write};
/// use greenlet::net::{TcpListener, TcpStream};
///
/// greenlet::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let server = greenlet::spawn(move || {
///         let (mut s, _) = listener.accept().unwrap();
///         let mut buf = [0; 5];
///         s.read_exact(&mut buf).unwrap();
///         s.write_all(&buf).unwrap();
///     });
///     let mut c = TcpStream::connect(addr).unwrap();
///     c.write_all(b"hello").unwrap();
///     let mut back = [0; 5];
///     c.read_exact(&mut back).unwrap();
///     assert_eq!(&back, b"hello");
///     server.join();
/// });
/// ```
#[derive(Clone)]
pub struct TcpStream {
    inner: Arc<Conn<std::net::TcpStream>>,
}

impl TcpStream {
    /// Wraps a socket made with `SOCK_NONBLOCK`.
    fn wrap_nonblocking(s: std::net::TcpStream) -> TcpStream {
        TcpStream {
            inner: Arc::new(Conn::from_source(Source::new_nonblocking(s))),
        }
    }

    /// Connects to the first address of `addr` that accepts (names are
    /// resolved on the thread pool).
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| connect(a, None))
    }

    /// Connects to `addr`, failing with `TimedOut` after `timeout`.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        connect(addr, Instant::now().checked_add(timeout))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().local_addr()
    }

    /// Shuts down the read, write, or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get().shutdown(how)
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(self.clone())
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.get().set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.get().nodelay()
    }

    timeout_methods! {
        /// Sets the read timeout (`None`: wait for ever). Reads that time out
        /// fail with `ErrorKind::TimedOut`.
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.get().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.get().ttl()
    }

    /// Takes the pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get().take_error()
    }

    /// Reads without consuming, waiting for data like `read`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.inner.read_with(|s| s.peek(buf))
    }

    /// In non-blocking mode, calls that would wait fail with
    /// `ErrorKind::WouldBlock` instead (for every clone). The socket is
    /// non-blocking underneath either way.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.src.set_nonblocking(nonblocking);
        Ok(())
    }
}

/// Starts a non-blocking connect and waits for it to finish.
fn connect(addr: &SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket that nothing else owns.
    let std = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    let stream = TcpStream::wrap_nonblocking(std);
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
    let rc = unsafe { libc::connect(fd, (&raw const storage).cast(), len) };
    if rc == 0 {
        return Ok(stream);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINPROGRESS) | Some(libc::EINTR) | Some(libc::EAGAIN) => {}
        _ => return Err(err),
    }
    // The handshake goes on in the kernel; the socket turns writable when it
    // is over. A fresh socket counts as ready at first, so ask the socket
    // itself whether it is connected, and wait while it is not.
    stream.inner.src.io(Direction::Write, deadline, |s| {
        if let Some(e) = s.take_error()? {
            return Err(e);
        }
        match s.peer_addr() {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => Err(e),
        }
    })?;
    Ok(stream)
}

/// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: the new socket needs no
/// `fcntl` calls before it is wrapped.
fn accept4(l: &std::net::TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `len` are valid for writes and describe the
    // buffer's size, as accept4(2) requires.
    let fd = unsafe {
        libc::accept4(
            l.as_raw_fd(),
            (&raw mut storage).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket that nothing else owns.
    let stream = TcpStream::wrap_nonblocking(unsafe { std::net::TcpStream::from_raw_fd(fd) });
    let peer = socket_addr(&storage)?;
    Ok((stream, peer))
}

/// The address in a `sockaddr_storage` filled by the kernel.
fn socket_addr(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET);
            // sockaddr_storage is larger than and aligned for it.
            let a =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            // `s_addr` holds the octets in network order.
            Ok(SocketAddr::from((
                a.sin_addr.s_addr.to_ne_bytes(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Ok(SocketAddr::V6(std::net::SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "accept returned an address that is not IPv4 or IPv6",
        )),
    }
}

/// A `sockaddr_storage` for `addr`, and its length.
pub(crate) fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

stream_read_write!(TcpStream);

socket_impls!(
    conn TcpStream,
    std::net::TcpStream,
    "TCP socket",
    "Takes over a connected `std` stream (made non-blocking underneath).",
    "peer": peer_addr,
);

/// A TCP listening socket whose `accept` parks only the calling greenlet.
///
/// Clones share the socket. For a server that handles each connection in
/// its own greenlet, see [`StreamServer`](crate::server::StreamServer).
///
/// ```
/// use std::io::Write;
/// use greenlet::net::{TcpListener, TcpStream};
///
/// greenlet::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let client = greenlet::spawn(move || TcpStream::connect(addr).unwrap());
///     let (mut conn, peer) = listener.accept().unwrap(); // parks until the client connects
///     assert_eq!(peer, client.get().unwrap().local_addr().unwrap());
///     conn.write_all(b"welcome").unwrap();
/// });
/// ```
#[derive(Clone)]
pub struct TcpListener {
    inner: Arc<Source<std::net::TcpListener>>,
}

impl TcpListener {
    /// Binds to the first address of `addr` that works.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let l = each_addr(addr, |a| std::net::TcpListener::bind(a))?;
        Ok(TcpListener {
            inner: Arc::new(Source::new(l)?),
        })
    }

    /// Waits for a connection.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.inner.io(Direction::Read, None, accept4)
    }

    /// Waits for a connection at most until `timeout` passes (`TimedOut`).
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
        let deadline = Instant::now().checked_add(timeout);
        self.inner.io(Direction::Read, deadline, accept4)
    }

    /// An endless iterator of accepted connections.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().local_addr()
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(self.clone())
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.get().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.get().ttl()
    }

    /// Takes the pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get().take_error()
    }

    /// In non-blocking mode, `accept` fails with `ErrorKind::WouldBlock`
    /// instead of waiting (for every clone).
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.set_nonblocking(nonblocking);
        Ok(())
    }
}

/// The iterator of [`TcpListener::incoming`].
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

socket_impls!(
    listener TcpListener,
    std::net::TcpListener,
    "TCP listener",
    "Takes over a bound `std` listener (made non-blocking underneath).",
    "addr": local_addr,
);
