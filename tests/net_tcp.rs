//! `greenlet::net` TCP: `TcpListener` and `TcpStream`, in greenlets.

mod common;

use std::io::{ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::guard;
use greenlet::Builder;
use greenlet::net::{TcpListener, TcpStream, ToSocketAddrs, lookup_host};

fn rt() -> Builder {
    Builder::new().workers(2)
}

/// A connected (client, server-side) pair on loopback.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, peer) = l.accept().unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    (c, s)
}

fn is_nonblocking(fd: i32) -> bool {
    // SAFETY: F_GETFL on an open fd.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    flags & libc::O_NONBLOCK != 0
}

/// A listener that never accepts, with a backlog of 0: once one connection
/// waits in it, further SYNs are dropped and connects hang.
fn full_backlog_listener() -> (std::net::TcpListener, Vec<std::net::TcpStream>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen(2) on a bound socket we own.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    (l, Vec::new())
}

#[test]
fn connect_accept_and_echo() {
    guard(|| {
        rt().run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            assert!(addr.ip().is_loopback() && addr.port() != 0);
            let server = greenlet::spawn(move || {
                let (mut s, peer) = l.accept().unwrap();
                assert_eq!(s.peer_addr().unwrap(), peer);
                let mut buf = [0; 64];
                loop {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    s.write_all(&buf[..n]).unwrap();
                }
            });
            let mut c = TcpStream::connect(addr).unwrap();
            assert_eq!(c.peer_addr().unwrap(), addr);
            for i in 0..100u32 {
                let msg = format!("message {i}");
                c.write_all(msg.as_bytes()).unwrap();
                let mut back = vec![0; msg.len()];
                c.read_exact(&mut back).unwrap();
                assert_eq!(back, msg.as_bytes());
            }
            c.shutdown(Shutdown::Write).unwrap();
            server.get().unwrap();
            // The server closed after our shutdown: EOF.
            assert_eq!(c.read(&mut [0; 8]).unwrap(), 0);
        });
    });
}

#[test]
fn read_and_write_through_shared_references() {
    guard(|| {
        rt().run(|| {
            let (c, s) = tcp_pair();
            (&c).write_all(b"by reference").unwrap();
            let mut buf = [0; 12];
            (&s).read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"by reference");
            let mut r = &s;
            let mut w = &c;
            w.write_all(b"x").unwrap();
            w.flush().unwrap();
            assert_eq!(r.read(&mut buf).unwrap(), 1);
        });
    });
}

/// One socket, two greenlets parked on it at once: a reader waiting for a
/// reply that comes only after the peer has drained everything a writer
/// (parked on a full send buffer) pushes through the same socket.
fn reader_and_writer_on_one_socket(workers: usize) {
    const TOTAL: usize = 32 << 20;
    Builder::new().workers(workers).run(|| {
        let (c, s) = tcp_pair();
        let reader_side = c.try_clone().unwrap();
        let reader = greenlet::spawn(move || {
            let mut reply = [0; 5];
            (&reader_side).read_exact(&mut reply).unwrap();
            reply
        });
        let writer_side = c.clone();
        let writer = greenlet::spawn(move || {
            // The byte at stream offset `p` is `p % 251`.
            let chunk: Vec<u8> = (0..251 * 256).map(|i| (i % 251) as u8).collect();
            let mut sent = 0;
            while sent < TOTAL {
                let start = sent % 251;
                let end = (start + TOTAL - sent).min(chunk.len());
                sent += (&writer_side).write(&chunk[start..end]).unwrap();
            }
            sent
        });
        let peer = greenlet::spawn(move || {
            let mut buf = vec![0; 256 * 1024];
            let mut got = 0;
            while got < TOTAL {
                let n = (&s).read(&mut buf).unwrap();
                assert!(n > 0, "early EOF");
                for (i, &b) in buf[..n].iter().enumerate() {
                    assert_eq!(b as usize, (got + i) % 251, "corrupt at {}", got + i);
                }
                got += n;
            }
            (&s).write_all(b"done!").unwrap();
            got
        });
        assert_eq!(writer.get(), Ok(&TOTAL));
        assert_eq!(peer.get(), Ok(&TOTAL));
        assert_eq!(reader.get(), Ok(b"done!"));
    });
}

#[test]
fn a_reader_and_a_writer_wait_on_the_same_socket_one_worker() {
    guard(|| reader_and_writer_on_one_socket(1));
}

#[test]
fn a_reader_and_a_writer_wait_on_the_same_socket_two_workers() {
    guard(|| reader_and_writer_on_one_socket(2));
}

#[test]
fn many_connections_across_workers() {
    guard(|| {
        rt().run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let server = greenlet::spawn(move || {
                let handlers: Vec<_> = (0..200)
                    .map(|_| {
                        let (mut s, _) = l.accept().unwrap();
                        greenlet::spawn(move || {
                            let mut buf = [0; 4];
                            s.read_exact(&mut buf).unwrap();
                            let n = u32::from_le_bytes(buf) * 2;
                            s.write_all(&n.to_le_bytes()).unwrap();
                        })
                    })
                    .collect();
                greenlet::joinall(&handlers);
            });
            let clients: Vec<_> = (0..200u32)
                .map(|i| {
                    greenlet::spawn(move || {
                        let mut c = TcpStream::connect(addr).unwrap();
                        c.write_all(&i.to_le_bytes()).unwrap();
                        let mut buf = [0; 4];
                        c.read_exact(&mut buf).unwrap();
                        u32::from_le_bytes(buf)
                    })
                })
                .collect();
            for (i, c) in clients.iter().enumerate() {
                assert_eq!(c.get(), Ok(&(i as u32 * 2)));
            }
            server.get().unwrap();
        });
    });
}

#[test]
fn read_timeout_returns_timed_out_and_the_socket_stays_usable() {
    guard(|| {
        rt().run(|| {
            let (c, mut s) = tcp_pair();
            assert_eq!(c.read_timeout().unwrap(), None);
            c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
            assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_millis(30)));
            let err = (&c).read(&mut [0; 4]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut);
            // Clones share the setting.
            let c2 = c.try_clone().unwrap();
            assert_eq!(
                (&c2).read(&mut [0; 4]).unwrap_err().kind(),
                ErrorKind::TimedOut
            );
            s.write_all(b"late").unwrap();
            let mut buf = [0; 4];
            (&c).read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"late");
            c.set_read_timeout(None).unwrap();
            assert_eq!(c.read_timeout().unwrap(), None);
            let zero = c.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
            assert_eq!(zero.kind(), ErrorKind::InvalidInput);
        });
    });
}

#[test]
fn write_timeout_fires_when_the_peer_never_reads() {
    guard(|| {
        rt().run(|| {
            let (c, _s) = tcp_pair();
            c.set_write_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            assert_eq!(c.write_timeout().unwrap(), Some(Duration::from_millis(50)));
            let chunk = vec![7u8; 64 * 1024];
            let mut sent = 0usize;
            let err = loop {
                match (&c).write(&chunk) {
                    Ok(n) => sent += n,
                    Err(e) => break e,
                }
            };
            assert_eq!(err.kind(), ErrorKind::TimedOut);
            assert!(sent > 0);
        });
    });
}

#[test]
fn connect_timeout_returns_timed_out() {
    guard(|| {
        rt().run(|| {
            let (l, mut held) = full_backlog_listener();
            let addr = l.local_addr().unwrap();
            // Fill the backlog; the first connect that hangs must time out.
            let mut timed_out = false;
            for _ in 0..8 {
                match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                    Ok(s) => held.push(std::net::TcpStream::from(s)),
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
                        timed_out = true;
                        break;
                    }
                }
            }
            assert!(timed_out, "no connect hung on a full backlog");
            let zero = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
            assert_eq!(zero.kind(), ErrorKind::InvalidInput);
        });
    });
}

#[test]
fn accept_timeout_returns_timed_out() {
    guard(|| {
        rt().run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let err = l.accept_timeout(Duration::from_millis(20)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut);
            let addr = l.local_addr().unwrap();
            let c = greenlet::spawn(move || TcpStream::connect(addr).unwrap());
            let (s, peer) = l.accept_timeout(Duration::from_secs(30)).unwrap();
            assert_eq!(peer, c.get().unwrap().local_addr().unwrap());
            assert_eq!(s.local_addr().unwrap(), addr);
        });
    });
}

#[test]
fn clones_share_the_socket_and_it_closes_with_the_last() {
    guard(|| {
        rt().run(|| {
            let (c, mut s) = tcp_pair();
            let c2 = c.try_clone().unwrap();
            assert_eq!(c.as_raw_fd(), c2.as_raw_fd());
            drop(c);
            (&c2).write_all(b"still open").unwrap();
            let mut buf = [0; 10];
            s.read_exact(&mut buf).unwrap();
            drop(c2);
            assert_eq!(s.read(&mut buf).unwrap(), 0);
        });
    });
}

#[test]
fn shutdown_halves() {
    guard(|| {
        rt().run(|| {
            let (c, mut s) = tcp_pair();
            c.shutdown(Shutdown::Write).unwrap();
            assert_eq!(s.read(&mut [0; 4]).unwrap(), 0);
            // The other direction still works.
            s.write_all(b"ok").unwrap();
            let mut buf = [0; 2];
            (&c).read_exact(&mut buf).unwrap();
            c.shutdown(Shutdown::Read).unwrap();
            assert_eq!((&c).read(&mut buf).unwrap(), 0);
        });
    });
}

#[test]
fn socket_options_and_peek() {
    guard(|| {
        rt().run(|| {
            let (c, mut s) = tcp_pair();
            c.set_nodelay(true).unwrap();
            assert!(c.nodelay().unwrap());
            c.set_nodelay(false).unwrap();
            assert!(!c.nodelay().unwrap());
            c.set_ttl(42).unwrap();
            assert_eq!(c.ttl().unwrap(), 42);
            assert!(c.take_error().unwrap().is_none());
            let peeker = {
                let c = c.clone();
                greenlet::spawn(move || {
                    let mut buf = [0; 5];
                    let n = c.peek(&mut buf).unwrap();
                    buf[..n].to_vec()
                })
            };
            s.write_all(b"peek!").unwrap();
            let peeked = peeker.get().unwrap().clone();
            assert!(!peeked.is_empty() && b"peek!".starts_with(&peeked));
            let mut buf = [0; 5];
            (&c).read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"peek!");
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_ttl(7).unwrap();
            assert_eq!(l.ttl().unwrap(), 7);
            assert!(l.take_error().unwrap().is_none());
            assert!(format!("{c:?}").contains("TcpStream"));
            assert!(format!("{l:?}").contains("TcpListener"));
        });
    });
}

#[test]
fn vectored_reads_and_writes() {
    guard(|| {
        rt().run(|| {
            let (mut c, mut s) = tcp_pair();
            let n = c
                .write_vectored(&[IoSlice::new(b"hello "), IoSlice::new(b"world")])
                .unwrap();
            assert_eq!(n, 11);
            let (mut a, mut b) = ([0; 6], [0; 5]);
            let mut got = 0;
            while got < 11 {
                let mut bufs = [IoSliceMut::new(&mut a[..]), IoSliceMut::new(&mut b[..])];
                IoSliceMut::advance_slices(&mut &mut bufs[..], got);
                got += s.read_vectored(&mut bufs).unwrap();
            }
            assert_eq!((&a, &b), (b"hello ", b"world"));
        });
    });
}

#[test]
fn set_nonblocking_turns_waits_into_would_block() {
    guard(|| {
        rt().run(|| {
            let (c, mut s) = tcp_pair();
            c.set_nonblocking(true).unwrap();
            let err = (&c).read(&mut [0; 4]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::WouldBlock);
            s.write_all(b"x").unwrap();
            // Data arrives: a non-blocking read takes it once it is there.
            let mut buf = [0; 1];
            loop {
                match (&c).read(&mut buf) {
                    Ok(n) => {
                        assert_eq!(n, 1);
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => greenlet::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            c.set_nonblocking(false).unwrap();
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
        });
    });
}

#[test]
fn conversions_to_and_from_std() {
    guard(|| {
        rt().run(|| {
            // std -> green: a blocking std listener and stream become green.
            let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = std_l.local_addr().unwrap();
            let l = TcpListener::from(std_l);
            assert!(is_nonblocking(l.as_raw_fd()));
            let std_c = std::net::TcpStream::connect(addr).unwrap();
            let mut c = TcpStream::from(std_c);
            assert!(is_nonblocking(c.as_raw_fd()));
            let (s, _) = l.accept().unwrap();
            // green -> std: back in blocking mode.
            let mut std_s = std::net::TcpStream::from(s);
            assert!(!is_nonblocking(std_s.as_raw_fd()));
            c.write_all(b"abc").unwrap();
            let mut buf = [0; 3];
            std_s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"abc");
            // A stream still shared by a clone is handed back as a duplicate.
            let c2 = c.clone();
            let std_c = std::net::TcpStream::from(c2);
            assert_ne!(std_c.as_raw_fd(), c.as_raw_fd());
            let std_l = std::net::TcpListener::from(l);
            assert!(!is_nonblocking(std_l.as_raw_fd()));
            assert_eq!(std_l.local_addr().unwrap(), addr);
        });
    });
}

#[test]
fn incoming_yields_connections() {
    guard(|| {
        rt().run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let clients: Vec<_> = (0..3)
                .map(|_| greenlet::spawn(move || TcpStream::connect(addr).unwrap()))
                .collect();
            let accepted: Vec<TcpStream> = l.incoming().take(3).map(Result::unwrap).collect();
            greenlet::joinall(&clients);
            assert_eq!(accepted.len(), 3);
            let l2 = l.try_clone().unwrap();
            assert_eq!(l2.as_raw_fd(), l.as_raw_fd());
        });
    });
}

#[test]
fn lookup_host_and_connect_by_name() {
    guard(|| {
        rt().run(|| {
            let addrs = lookup_host("localhost:80").unwrap();
            assert!(!addrs.is_empty());
            assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
            // Literal addresses skip the resolver.
            assert_eq!(
                lookup_host("127.0.0.1:9").unwrap(),
                ["127.0.0.1:9".parse::<SocketAddr>().unwrap()]
            );
            assert_eq!(lookup_host("[::1]:9").unwrap()[0].port(), 9);

            let l = TcpListener::bind("localhost:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let server = greenlet::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                s.write_all(b"hi").unwrap();
            });
            let mut c = TcpStream::connect(format!("localhost:{port}")).unwrap();
            let mut buf = [0; 2];
            c.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hi");
            server.get().unwrap();
            let _ = TcpStream::connect(("localhost", port));
        });
    });
}

#[test]
fn to_socket_addrs_impls() {
    guard(|| {
        rt().run(|| {
            let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
            assert_eq!(a.to_socket_addrs().unwrap(), [a]);
            assert_eq!(("127.0.0.1", 1).to_socket_addrs().unwrap(), [a]);
            assert_eq!(
                (String::from("127.0.0.1"), 1).to_socket_addrs().unwrap(),
                [a]
            );
            assert_eq!((a.ip(), 1).to_socket_addrs().unwrap(), [a]);
            assert_eq!(
                (std::net::Ipv4Addr::LOCALHOST, 1)
                    .to_socket_addrs()
                    .unwrap(),
                [a]
            );
            assert_eq!(
                (std::net::Ipv6Addr::LOCALHOST, 1)
                    .to_socket_addrs()
                    .unwrap()[0]
                    .port(),
                1
            );
            assert_eq!("127.0.0.1:1".to_socket_addrs().unwrap(), [a]);
            assert_eq!(String::from("127.0.0.1:1").to_socket_addrs().unwrap(), [a]);
            assert_eq!([a][..].to_socket_addrs().unwrap(), [a]);
            let v4 = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 1);
            assert_eq!(v4.to_socket_addrs().unwrap(), [a]);
            let v6 = std::net::SocketAddrV6::new(std::net::Ipv6Addr::LOCALHOST, 1, 0, 0);
            assert_eq!(v6.to_socket_addrs().unwrap()[0].port(), 1);
            let err = TcpStream::connect(&[][..]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
        });
    });
}

#[test]
fn a_socket_outlives_its_runtime_and_serves_in_the_next() {
    guard(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        for round in 0..3u8 {
            let l = l.clone();
            rt().run(move || {
                // Waiting registers the listener with this runtime's hub
                // (the last one's is gone).
                let err = l.accept_timeout(Duration::from_millis(1)).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::TimedOut);
                let c = greenlet::spawn(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.write_all(&[round]).unwrap();
                });
                let (mut s, _) = l.accept().unwrap();
                let mut b = [0; 1];
                s.read_exact(&mut b).unwrap();
                assert_eq!(b[0], round);
                c.get().unwrap();
            });
        }
    });
}

#[test]
fn an_eof_right_behind_the_data_is_seen_after_a_short_read() {
    guard(|| {
        rt().run(|| {
            for _ in 0..50 {
                let (c, s) = tcp_pair();
                let reader = greenlet::spawn(move || {
                    let mut buf = [0; 1024];
                    // Parks first; wakes with the data and the FIN queued.
                    let n = (&c).read(&mut buf).unwrap();
                    let mut rest = Vec::new();
                    (&c).read_to_end(&mut rest).unwrap();
                    (n, rest.len())
                });
                (&s).write_all(b"abc").unwrap();
                drop(s);
                let (n, rest) = *reader.get().unwrap();
                assert_eq!(n + rest, 3);
            }
        });
    });
}

#[test]
fn short_reads_then_more_data_keep_flowing() {
    guard(|| {
        rt().run(|| {
            let (c, s) = tcp_pair();
            let echo = greenlet::spawn(move || {
                let mut buf = [0; 4096];
                let mut total = 0;
                loop {
                    let n = (&s).read(&mut buf).unwrap();
                    if n == 0 {
                        return total;
                    }
                    total += n;
                    (&s).write_all(&buf[..n]).unwrap();
                }
            });
            let mut back = [0; 7];
            for i in 0..2000u32 {
                let msg = format!("{:07}", i);
                (&c).write_all(msg.as_bytes()).unwrap();
                (&c).read_exact(&mut back).unwrap();
                assert_eq!(&back, msg.as_bytes());
            }
            c.shutdown(Shutdown::Write).unwrap();
            assert_eq!(echo.get(), Ok(&(2000 * 7)));
        });
    });
}

#[test]
fn ipv6_loopback_when_available() {
    guard(|| {
        rt().run(|| {
            let Ok(l) = TcpListener::bind("[::1]:0") else {
                return; // no IPv6 on this machine
            };
            let addr = l.local_addr().unwrap();
            let mut c = TcpStream::connect(addr).unwrap();
            let (mut s, peer) = l.accept().unwrap();
            assert_eq!(peer, c.local_addr().unwrap());
            assert!(peer.is_ipv6());
            s.write_all(b"v6").unwrap();
            let mut buf = [0; 2];
            c.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"v6");
        });
    });
}
