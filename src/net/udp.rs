//! UDP: `UdpSocket`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use super::Conn;
use super::addr::{ToSocketAddrs, each_addr};

/// A UDP socket whose blocking calls park only the calling greenlet.
///
/// ```
/// use greenlet::net::UdpSocket;
///
/// greenlet::run(|| {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     a.send_to(b"ping", b.local_addr().unwrap()).unwrap();
///     let mut buf = [0; 8];
///     let (n, from) = b.recv_from(&mut buf).unwrap();
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
/// });
/// ```
#[derive(Clone)]
pub struct UdpSocket {
    inner: Arc<Conn<std::net::UdpSocket>>,
}

impl UdpSocket {
    /// Binds to the first address of `addr` that works.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        let s = each_addr(addr, |a| std::net::UdpSocket::bind(a))?;
        Ok(UdpSocket {
            inner: Arc::new(Conn::new(s)?),
        })
    }

    /// Sets the default peer (for `send` and `recv`).
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| self.inner.get().connect(a))
    }

    /// Waits for a datagram; returns its length and sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_with(|s| s.recv_from(buf))
    }

    /// Like `recv_from`, without taking the datagram off the queue.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_with(|s| s.peek_from(buf))
    }

    /// Waits for a datagram from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.recv(buf))
    }

    /// Like `recv`, without taking the datagram off the queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.peek(buf))
    }

    /// Sends a datagram to `addr`.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        each_addr(addr, |a| self.inner.write_with(|s| s.send_to(buf, a)))
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

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(self.clone())
    }

    timeout_methods!();

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.get().set_broadcast(on)
    }

    /// Reads `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.get().broadcast()
    }

    /// Joins an IPv4 multicast group.
    pub fn join_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.inner.get().join_multicast_v4(group, interface)
    }

    /// Joins an IPv6 multicast group.
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.get().join_multicast_v6(group, interface)
    }

    /// Leaves an IPv4 multicast group.
    pub fn leave_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.inner.get().leave_multicast_v4(group, interface)
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.get().leave_multicast_v6(group, interface)
    }

    /// Sets `IP_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.inner.get().set_multicast_loop_v4(on)
    }

    /// Reads `IP_MULTICAST_LOOP`.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.inner.get().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.inner.get().set_multicast_ttl_v4(ttl)
    }

    /// Reads `IP_MULTICAST_TTL`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.inner.get().multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.inner.get().set_multicast_loop_v6(on)
    }

    /// Reads `IPV6_MULTICAST_LOOP`.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.inner.get().multicast_loop_v6()
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

    /// In non-blocking mode, calls that would wait fail with
    /// `ErrorKind::WouldBlock` instead (for every clone).
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.src.set_nonblocking(nonblocking);
        Ok(())
    }
}

socket_impls!(
    conn UdpSocket,
    std::net::UdpSocket,
    "UDP socket",
    "Takes over a bound `std` socket (made non-blocking underneath).",
    "addr": local_addr,
);
