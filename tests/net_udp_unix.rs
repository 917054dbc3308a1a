//! `greenlet::net` UDP and Unix sockets, in greenlets.

mod common;

use std::io::{ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::path::PathBuf;
use std::time::Duration;

use common::{guard, guard_for};
use greenlet::Builder;
use greenlet::net::{UdpSocket, UnixDatagram, UnixListener, UnixStream};

fn rt() -> Builder {
    Builder::new().workers(2)
}

/// A fresh directory for socket files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "greenlet-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn udp_send_to_and_recv_from() {
    guard(|| {
        rt().run(|| {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b_addr = b.local_addr().unwrap();
            // The receiver waits first: it parks until the datagram comes.
            let rx = {
                let b = b.clone();
                greenlet::spawn(move || {
                    let mut buf = [0; 16];
                    let (n, from) = b.recv_from(&mut buf).unwrap();
                    (buf[..n].to_vec(), from)
                })
            };
            a.send_to(b"ping", b_addr).unwrap();
            let (data, from) = rx.get().unwrap().clone();
            assert_eq!((&data[..], from), (&b"ping"[..], a.local_addr().unwrap()));
            // peek_from leaves the datagram queued.
            a.send_to(b"twice", b_addr).unwrap();
            let mut buf = [0; 16];
            let (n, _) = b.peek_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"twice");
            let (n, _) = b.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"twice");
        });
    });
}

#[test]
fn udp_connected_send_recv_and_peek() {
    guard(|| {
        rt().run(|| {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            a.connect(b.local_addr().unwrap()).unwrap();
            b.connect(a.local_addr().unwrap()).unwrap();
            assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
            a.send(b"hello").unwrap();
            let mut buf = [0; 8];
            assert_eq!(b.peek(&mut buf).unwrap(), 5);
            assert_eq!(b.recv(&mut buf).unwrap(), 5);
            assert_eq!(&buf[..5], b"hello");
            // A zero-length datagram is a datagram.
            b.send(b"").unwrap();
            assert_eq!(a.recv(&mut buf).unwrap(), 0);
        });
    });
}

#[test]
fn udp_timeouts_options_and_nonblocking() {
    guard(|| {
        rt().run(|| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(20)));
            let err = s.recv_from(&mut [0; 4]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut);
            s.set_write_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            assert_eq!(s.write_timeout().unwrap(), Some(Duration::from_millis(20)));
            s.set_read_timeout(None).unwrap();
            s.set_nonblocking(true).unwrap();
            assert_eq!(
                s.recv(&mut [0; 4]).unwrap_err().kind(),
                ErrorKind::WouldBlock
            );
            s.set_broadcast(true).unwrap();
            assert!(s.broadcast().unwrap());
            s.set_ttl(9).unwrap();
            assert_eq!(s.ttl().unwrap(), 9);
            s.set_multicast_loop_v4(false).unwrap();
            assert!(!s.multicast_loop_v4().unwrap());
            s.set_multicast_ttl_v4(3).unwrap();
            assert_eq!(s.multicast_ttl_v4().unwrap(), 3);
            assert!(s.take_error().unwrap().is_none());
            let c = s.try_clone().unwrap();
            assert_eq!(c.as_raw_fd(), s.as_raw_fd());
            assert!(format!("{s:?}").contains("UdpSocket"));
        });
    });
}

#[test]
fn udp_conversions() {
    guard(|| {
        rt().run(|| {
            let std_s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = std_s.local_addr().unwrap();
            let s = UdpSocket::from(std_s);
            assert_eq!(s.local_addr().unwrap(), addr);
            let back = std::net::UdpSocket::from(s);
            assert_eq!(back.local_addr().unwrap(), addr);
            back.set_read_timeout(Some(Duration::from_millis(1)))
                .unwrap();
            // Blocking again: a std timeout gives std's error, not ours.
            let err = back.recv(&mut [0; 1]).unwrap_err();
            assert!(matches!(
                err.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut
            ));
        });
    });
}

#[test]
fn unix_stream_pair_and_clones() {
    guard(|| {
        rt().run(|| {
            let (a, mut b) = UnixStream::pair().unwrap();
            let reader = {
                let b2 = b.try_clone().unwrap();
                greenlet::spawn(move || {
                    let mut buf = String::new();
                    (&b2).read_to_string(&mut buf).unwrap();
                    buf
                })
            };
            (&a).write_all(b"one ").unwrap();
            let mut a2 = a.clone();
            let n = a2
                .write_vectored(&[IoSlice::new(b"two "), IoSlice::new(b"three")])
                .unwrap();
            assert_eq!(n, 9); // a Unix stream takes a small write whole
            a.shutdown(Shutdown::Write).unwrap();
            assert_eq!(reader.get().unwrap(), "one two three");
            b.write_all(b"back").unwrap();
            let mut x = [0; 4];
            let mut y = [0; 0];
            let mut bufs = [IoSliceMut::new(&mut y), IoSliceMut::new(&mut x)];
            let mut got = 0;
            while got < 4 {
                got += (&a).read_vectored(&mut bufs).unwrap();
            }
            assert_eq!(&x, b"back");
            assert!(a.take_error().unwrap().is_none());
            assert!(a.local_addr().unwrap().as_pathname().is_none());
            assert!(a.peer_addr().is_ok());
        });
    });
}

#[test]
fn unix_listener_connect_accept() {
    guard(|| {
        rt().run(|| {
            let dir = TempDir::new("uds");
            let path = dir.path("sock");
            let l = UnixListener::bind(&path).unwrap();
            assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
            let server = {
                let l = l.try_clone().unwrap();
                greenlet::spawn(move || {
                    let (mut s, _) = l.accept().unwrap();
                    let mut buf = [0; 3];
                    s.read_exact(&mut buf).unwrap();
                    s.write_all(&buf).unwrap();
                    let mut more = l.incoming();
                    let mut s2 = more.next().unwrap().unwrap();
                    s2.write_all(b"second").unwrap();
                })
            };
            let mut c = UnixStream::connect(&path).unwrap();
            c.write_all(b"abc").unwrap();
            let mut buf = [0; 3];
            c.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"abc");
            let mut c2 = UnixStream::connect(&path).unwrap();
            let mut s = String::new();
            c2.read_to_string(&mut s).unwrap();
            assert_eq!(s, "second");
            server.get().unwrap();
            assert!(l.take_error().unwrap().is_none());
        });
    });
}

#[test]
fn unix_abstract_addresses() {
    guard(|| {
        rt().run(|| {
            let name = format!("greenlet-test-{}", std::process::id());
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
            let l = UnixListener::bind_addr(&addr).unwrap();
            let c = greenlet::spawn(move || {
                let mut c = UnixStream::connect_addr(&addr).unwrap();
                c.write_all(b"abstract").unwrap();
            });
            let (mut s, _) = l.accept().unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            assert_eq!(text, "abstract");
            c.get().unwrap();

            let d_name = format!("greenlet-test-dgram-{}", std::process::id());
            let d_addr = std::os::unix::net::SocketAddr::from_abstract_name(&d_name).unwrap();
            let d = UnixDatagram::bind_addr(&d_addr).unwrap();
            let u = UnixDatagram::unbound().unwrap();
            u.send_to_addr(b"dgram", &d_addr).unwrap();
            let mut buf = [0; 8];
            assert_eq!(d.recv(&mut buf).unwrap(), 5);
            u.connect_addr(&d_addr).unwrap();
            u.send(b"again").unwrap();
            assert_eq!(d.recv(&mut buf).unwrap(), 5);
        });
    });
}

#[test]
fn unix_stream_timeouts_and_nonblocking() {
    guard(|| {
        rt().run(|| {
            let (a, _b) = UnixStream::pair().unwrap();
            a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_millis(20)));
            assert_eq!(
                (&a).read(&mut [0; 1]).unwrap_err().kind(),
                ErrorKind::TimedOut
            );
            a.set_write_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            assert_eq!(a.write_timeout().unwrap(), Some(Duration::from_millis(20)));
            let chunk = vec![0u8; 64 * 1024];
            let err = loop {
                if let Err(e) = (&a).write(&chunk) {
                    break e;
                }
            };
            assert_eq!(err.kind(), ErrorKind::TimedOut);
            a.set_nonblocking(true).unwrap();
            assert_eq!(
                (&a).write(&chunk).unwrap_err().kind(),
                ErrorKind::WouldBlock
            );
            let dir = TempDir::new("uds-nb");
            let l = UnixListener::bind(dir.path("s")).unwrap();
            l.set_nonblocking(true).unwrap();
            assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
        });
    });
}

#[test]
fn unix_datagrams() {
    guard(|| {
        rt().run(|| {
            let dir = TempDir::new("udg");
            let pa = dir.path("a");
            let pb = dir.path("b");
            let a = UnixDatagram::bind(&pa).unwrap();
            let b = UnixDatagram::bind(&pb).unwrap();
            let rx = {
                let b = b.try_clone().unwrap();
                greenlet::spawn(move || {
                    let mut buf = [0; 8];
                    let (n, from) = b.recv_from(&mut buf).unwrap();
                    (buf[..n].to_vec(), from.as_pathname().map(|p| p.to_owned()))
                })
            };
            a.send_to(b"to b", &pb).unwrap();
            let (data, from) = rx.get().unwrap().clone();
            assert_eq!(data, b"to b");
            assert_eq!(from.as_deref(), Some(pa.as_path()));
            a.connect(&pb).unwrap();
            assert_eq!(a.peer_addr().unwrap().as_pathname(), Some(pb.as_path()));
            a.send(b"conn").unwrap();
            let mut buf = [0; 8];
            assert_eq!(b.recv(&mut buf).unwrap(), 4);
            assert_eq!(a.local_addr().unwrap().as_pathname(), Some(pa.as_path()));

            let (x, y) = UnixDatagram::pair().unwrap();
            x.send(b"pair").unwrap();
            assert_eq!(y.recv(&mut buf).unwrap(), 4);
            y.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            assert_eq!(y.read_timeout().unwrap(), Some(Duration::from_millis(20)));
            assert_eq!(y.recv(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
            y.set_write_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            assert_eq!(y.write_timeout().unwrap(), Some(Duration::from_millis(20)));
            y.set_nonblocking(true).unwrap();
            y.set_read_timeout(None).unwrap();
            assert_eq!(y.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
            x.shutdown(Shutdown::Both).unwrap();
            assert!(x.take_error().unwrap().is_none());
            assert!(format!("{x:?}").contains("UnixDatagram"));
        });
    });
}

#[test]
fn unix_conversions() {
    guard(|| {
        rt().run(|| {
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            let a = UnixStream::from(a);
            let mut b = UnixStream::from(b);
            (&a).write_all(b"x").unwrap();
            let mut std_a = std::os::unix::net::UnixStream::from(a);
            let mut buf = [0; 1];
            b.read_exact(&mut buf).unwrap();
            b.write_all(b"y").unwrap();
            std_a.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"y");

            let (x, y) = std::os::unix::net::UnixDatagram::pair().unwrap();
            let x = UnixDatagram::from(x);
            let y = std::os::unix::net::UnixDatagram::from(UnixDatagram::from(y));
            x.send(b"d").unwrap();
            assert_eq!(y.recv(&mut buf).unwrap(), 1);

            let dir = TempDir::new("uconv");
            let std_l = std::os::unix::net::UnixListener::bind(dir.path("l")).unwrap();
            let l = UnixListener::from(std_l);
            let std_l = std::os::unix::net::UnixListener::from(l);
            assert!(std_l.local_addr().unwrap().as_pathname().is_some());
        });
    });
}

/// An unconnected `send_to` whose peer's queue is full (filled by another
/// socket) parks, and gets through once the peer drains its queue. Linux
/// reports such a sender writable by its own buffer, so no edge comes from
/// the peer; the failed attempt itself gives one (its buffer space comes
/// back), and the retry it causes finds the room.
#[test]
fn unix_send_to_a_full_peer_resumes_when_it_drains() {
    guard_for(Duration::from_secs(30), || {
        Builder::new().workers(1).run(|| {
            let dir = TempDir::new("udg-full");
            let pb = dir.path("b");
            let b = UnixDatagram::bind(&pb).unwrap();
            let a = UnixDatagram::unbound().unwrap();
            // Register `a` with the hub first (a wait that times out), so the
            // edge every new registration reports is spent before the test.
            a.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
            assert_eq!(a.recv(&mut [0; 4]).unwrap_err().kind(), ErrorKind::TimedOut);
            // Fill the receiver's queue from another socket: a datagram of
            // `a`'s own that leaves the queue would wake `a` (its buffer
            // space comes back), one of another sender does not.
            let c = std::os::unix::net::UnixDatagram::unbound().unwrap();
            c.set_nonblocking(true).unwrap();
            let mut queued = 0u32;
            loop {
                match c.send_to(&queued.to_le_bytes(), &pb) {
                    Ok(_) => queued += 1,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(queued > 0);
            let sender = greenlet::spawn(move || a.send_to(&queued.to_le_bytes(), &pb).unwrap());
            // The sender runs until its send finds the queue full and parks.
            greenlet::yield_now();
            assert!(!sender.ready(), "the queue was full");
            let mut buf = [0; 4];
            for i in 0..=queued {
                assert_eq!(b.recv(&mut buf).unwrap(), 4);
                assert_eq!(u32::from_le_bytes(buf), i, "in order, none lost");
            }
            assert_eq!(*sender.get().unwrap(), 4);
        });
    });
}

#[test]
fn udp_multicast_on_loopback() {
    use std::net::Ipv4Addr;
    guard(|| {
        rt().run(|| {
            let group = Ipv4Addr::new(239, 255, 42, 7);
            let lo = Ipv4Addr::LOCALHOST;
            let rx = UdpSocket::bind("0.0.0.0:0").unwrap();
            let port = rx.local_addr().unwrap().port();
            rx.join_multicast_v4(&group, &lo).unwrap();
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            tx.set_multicast_loop_v4(true).unwrap();
            assert!(tx.multicast_loop_v4().unwrap());
            tx.set_multicast_ttl_v4(1).unwrap();
            assert_eq!(tx.multicast_ttl_v4().unwrap(), 1);
            // Send on the loopback interface (IP_MULTICAST_IF; std has no
            // setter for it).
            let ifaddr = libc::in_addr {
                s_addr: u32::from(lo).to_be(),
            };
            // SAFETY: a valid socket and a properly sized option value.
            let rc = unsafe {
                libc::setsockopt(
                    tx.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_MULTICAST_IF,
                    (&raw const ifaddr).cast(),
                    std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
            let waiter = {
                let rx = rx.clone();
                greenlet::spawn(move || {
                    let mut buf = [0; 16];
                    let (n, from) = rx.recv_from(&mut buf).unwrap();
                    (buf[..n].to_vec(), from)
                })
            };
            tx.send_to(b"to the group", (group, port)).unwrap();
            let (data, from) = waiter.get().unwrap().clone();
            assert_eq!(data, b"to the group");
            assert_eq!(from, tx.local_addr().unwrap());
            rx.leave_multicast_v4(&group, &lo).unwrap();
            // Leaving twice: the membership is gone.
            assert!(rx.leave_multicast_v4(&group, &lo).is_err());
        });
    });
}
