//! Unix domain sockets: `UnixListener`, `UnixStream`, `UnixDatagram`.

use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::Conn;
use crate::io::{Direction, Source};

/// A Unix stream socket whose blocking calls park only the calling greenlet.
///
/// ```
/// use std::io::{Read, Write};
/// use greenlet::net::UnixStream;
///
/// greenlet::run(|| {
///     let (mut a, mut b) = UnixStream::pair().unwrap();
///     a.write_all(b"hi").unwrap();
///     let mut buf = [0; 2];
///     b.read_exact(&mut buf).unwrap();
///     assert_eq!(&buf, b"hi");
/// });
/// ```
#[derive(Clone)]
pub struct UnixStream {
    inner: Arc<Conn<std::os::unix::net::UnixStream>>,
}

impl UnixStream {
    fn wrap(s: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            inner: Arc::new(Conn::new(s)?),
        })
    }

    /// Connects to the socket at `path`.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_addr(&SocketAddr::from_pathname(path)?)
    }

    /// Connects to the socket at `addr` (a path, or an abstract name).
    ///
    /// A local connect completes at once or fails, except that a listener
    /// whose backlog is full answers "try again" with nothing to wait on:
    /// then the caller sleeps (a greenlet parks) and retries, backing off
    /// from 1 ms to 100 ms, until the listener takes it or closes.
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        let mut pause = Duration::from_millis(1);
        loop {
            match mio::net::UnixStream::connect_addr(addr) {
                Ok(s) => return UnixStream::wrap(s.into()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    crate::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Two connected sockets.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::wrap(a)?, UnixStream::wrap(b)?))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().peer_addr()
    }

    /// Shuts down the read, write, or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get().shutdown(how)
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(self.clone())
    }

    timeout_methods!();

    /// Takes the pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get().take_error()
    }

    /// In non-blocking mode, calls that would wait fail with
    /// `ErrorKind::WouldBlock` instead (for every clone).
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.src.set_nonblocking(nonblocking);
        Ok(())
    }
}

stream_read_write!(UnixStream);

/// A Unix listening socket whose `accept` parks only the calling greenlet.
///
/// ```
/// use std::io::{Read, Write};
/// use greenlet::net::{UnixListener, UnixStream};
///
/// greenlet::run(|| {
///     let path = std::env::temp_dir().join(format!("greenlet-doc-{}", std::process::id()));
///     let listener = UnixListener::bind(&path).unwrap();
///     let p = path.clone();
///     let client = greenlet::spawn(move || {
///         let mut c = UnixStream::connect(&p).unwrap();
///         c.write_all(b"hi").unwrap();
///     });
///     let (mut conn, _) = listener.accept().unwrap();
///     let mut buf = [0; 2];
///     conn.read_exact(&mut buf).unwrap();
///     assert_eq!(&buf, b"hi");
///     client.join();
///     std::fs::remove_file(&path).unwrap();
/// });
/// ```
#[derive(Clone)]
pub struct UnixListener {
    inner: Arc<Source<std::os::unix::net::UnixListener>>,
}

impl UnixListener {
    /// Binds to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let l = std::os::unix::net::UnixListener::bind(path)?;
        Ok(UnixListener {
            inner: Arc::new(Source::new(l)?),
        })
    }

    /// Binds to `addr` (a path, or an abstract name).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        let l = std::os::unix::net::UnixListener::bind_addr(addr)?;
        Ok(UnixListener {
            inner: Arc::new(Source::new(l)?),
        })
    }

    /// Waits for a connection.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, addr) = self.inner.io(Direction::Read, None, |l| l.accept())?;
        Ok((UnixStream::wrap(s)?, addr))
    }

    /// An endless iterator of accepted connections.
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<UnixStream>> + '_ {
        std::iter::repeat_with(move || self.accept().map(|(s, _)| s))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().local_addr()
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(self.clone())
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

/// A Unix datagram socket whose blocking calls park only the calling
/// greenlet.
///
/// ```
/// use greenlet::net::UnixDatagram;
///
/// greenlet::run(|| {
///     let (a, b) = UnixDatagram::pair().unwrap();
///     let rx = greenlet::spawn(move || {
///         let mut buf = [0; 8];
///         let n = b.recv(&mut buf).unwrap(); // parks until a datagram comes
///         buf[..n].to_vec()
///     });
///     a.send(b"ping").unwrap();
///     assert_eq!(rx.get().unwrap(), b"ping");
/// });
/// ```
#[derive(Clone)]
pub struct UnixDatagram {
    inner: Arc<Conn<std::os::unix::net::UnixDatagram>>,
}

impl UnixDatagram {
    fn wrap(s: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            inner: Arc::new(Conn::new(s)?),
        })
    }

    /// Binds to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::wrap(std::os::unix::net::UnixDatagram::bind(path)?)
    }

    /// Binds to `addr` (a path, or an abstract name).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::wrap(std::os::unix::net::UnixDatagram::bind_addr(addr)?)
    }

    /// A socket bound to no address.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::wrap(std::os::unix::net::UnixDatagram::unbound()?)
    }

    /// Two connected sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::wrap(a)?, UnixDatagram::wrap(b)?))
    }

    /// Sets the default peer.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.inner.get().connect(path)
    }

    /// Sets the default peer to `addr` (a path, or an abstract name).
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        self.inner.get().connect_addr(addr)
    }

    /// Waits for a datagram; returns its length and sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_with(|s| s.recv_from(buf))
    }

    /// Waits for a datagram.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.recv(buf))
    }

    /// Sends a datagram to `path`.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.inner.write_with(|s| s.send_to(buf, path))
    }

    /// Sends a datagram to `addr` (a path, or an abstract name).
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.inner.write_with(|s| s.send_to_addr(buf, addr))
    }

    /// Sends a datagram to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_with(|s| s.send(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get().peer_addr()
    }

    /// Shuts down the read, write, or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get().shutdown(how)
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        Ok(self.clone())
    }

    timeout_methods!();

    /// Takes the pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get().take_error()
    }

    /// In non-blocking mode, calls that would wait fail with
    /// `ErrorKind::WouldBlock` instead (for every clone).
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.src.set_nonblocking(nonblocking);
        Ok(())
    }
}

socket_impls!(
    conn UnixStream,
    std::os::unix::net::UnixStream,
    "Unix stream",
    "Takes over a `std` socket (made non-blocking underneath).",
);
socket_impls!(
    conn UnixDatagram,
    std::os::unix::net::UnixDatagram,
    "Unix datagram socket",
    "Takes over a `std` socket (made non-blocking underneath).",
);
socket_impls!(
    listener UnixListener,
    std::os::unix::net::UnixListener,
    "Unix listener",
    "Takes over a `std` socket (made non-blocking underneath).",
);
