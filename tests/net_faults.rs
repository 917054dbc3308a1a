//! Bad input and faults (issue 3, section 6): each fails cleanly, nothing
//! panics or hangs. The fd-counting faults are in `net_fd.rs`.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use common::guard;
use greenlet::Builder;
use greenlet::net::{TcpListener, TcpStream, UdpSocket, lookup_host};
use greenlet::server::StreamServer;

fn rt() -> Builder {
    Builder::new().workers(2)
}

/// A loopback port with nothing listening on it.
fn closed_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A host name that cannot resolve: `.invalid` is reserved (RFC 6761), and
/// a 64-byte label is longer than DNS allows, so the resolver fails without
/// sending a query anywhere.
fn unresolvable() -> String {
    format!("{}.invalid", "x".repeat(64))
}

#[test]
fn connection_refused() {
    guard(|| {
        rt().run(|| {
            let addr = closed_port();
            let err = TcpStream::connect(addr).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
            let err = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
            // By name too (every address of "localhost" refuses).
            let err = TcpStream::connect(format!("localhost:{}", addr.port())).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        });
    });
}

#[test]
fn reset_by_peer() {
    guard(|| {
        rt().run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let server = greenlet::spawn(move || {
                let (s, _) = l.accept().unwrap();
                // Wait until the client's bytes are here, then close without
                // reading them: the kernel answers with a reset.
                s.peek(&mut [0; 1]).unwrap();
                drop(s);
            });
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"unread").unwrap();
            server.get().unwrap();
            let err = c.read(&mut [0; 16]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionReset);
            // Writing after the reset fails too (EPIPE or ECONNRESET).
            let err = loop {
                if let Err(e) = c.write(b"more") {
                    break e;
                }
            };
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
                ),
                "{err}"
            );
        });
    });
}

#[test]
fn eof_in_the_middle_of_a_message() {
    guard(|| {
        rt().run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let server = greenlet::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                // A 10-byte message announced, 4 bytes sent, then EOF.
                s.write_all(&10u32.to_be_bytes()).unwrap();
                s.write_all(b"half").unwrap();
            });
            let mut c = TcpStream::connect(addr).unwrap();
            let mut len = [0; 4];
            c.read_exact(&mut len).unwrap();
            let mut body = vec![0; u32::from_be_bytes(len) as usize];
            let err = c.read_exact(&mut body).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
            assert_eq!(&body[..4], b"half");
            assert_eq!(c.read(&mut body).unwrap(), 0);
            server.get().unwrap();
        });
    });
}

#[test]
fn a_peer_that_never_reads_parks_the_writer_until_the_timeout() {
    guard(|| {
        rt().run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (_never_read, _) = l.accept().unwrap();
            c.set_write_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            // Another greenlet keeps running while the writer is parked.
            let ticker = greenlet::spawn(|| {
                for _ in 0..5 {
                    greenlet::sleep(Duration::from_millis(1));
                }
            });
            let writer = greenlet::spawn(move || {
                let chunk = vec![0u8; 256 * 1024];
                let mut sent = 0usize;
                loop {
                    match (&c).write(&chunk) {
                        Ok(n) => sent += n,
                        Err(e) => return (sent, e.kind()),
                    }
                }
            });
            ticker.get().unwrap();
            let (sent, kind) = *writer.get().unwrap();
            assert_eq!(kind, ErrorKind::TimedOut);
            assert!(sent > 0);
        });
    });
}

#[test]
fn zero_length_reads_and_writes() {
    guard(|| {
        rt().run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (mut s, _) = l.accept().unwrap();
            // Nothing to read, yet an empty read returns at once.
            assert_eq!(c.read(&mut []).unwrap(), 0);
            assert_eq!(c.write(&[]).unwrap(), 0);
            c.write_all(&[]).unwrap();
            s.write_all(b"x").unwrap();
            assert_eq!(c.read(&mut []).unwrap(), 0);
            let mut one = [0; 1];
            c.read_exact(&mut one).unwrap();
            assert_eq!(&one, b"x");
            // An empty UDP datagram is sent and received as one.
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            assert_eq!(a.send_to(&[], b.local_addr().unwrap()).unwrap(), 0);
            let (n, from) = b.recv_from(&mut [0; 4]).unwrap();
            assert_eq!((n, from), (0, a.local_addr().unwrap()));
        });
    });
}

#[test]
fn an_unresolvable_host_name_is_an_error() {
    guard(|| {
        rt().run(|| {
            let name = unresolvable();
            assert!(lookup_host(&format!("{name}:80")).is_err());
            assert!(TcpStream::connect(format!("{name}:80")).is_err());
            assert!(TcpStream::connect((name.as_str(), 80)).is_err());
            assert!(TcpListener::bind(format!("{name}:0")).is_err());
            assert!(UdpSocket::bind(format!("{name}:0")).is_err());
            // Malformed input is an error as well.
            assert!(lookup_host("no port here").is_err());
            assert!(lookup_host("").is_err());
        });
        // And on a plain thread.
        assert!(lookup_host(&format!("{}:80", unresolvable())).is_err());
    });
}

#[test]
fn a_server_stopped_while_clients_are_mid_request() {
    guard(|| {
        rt().run(|| {
            let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let all_in = std::sync::Arc::new(greenlet::sync::Event::new());
            let (seen, full) = (started.clone(), all_in.clone());
            // Handlers read a 100-byte request that never completes.
            let server = StreamServer::new("127.0.0.1:0", move |mut s: TcpStream, _| {
                if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 3 {
                    full.set();
                }
                let mut req = [0; 100];
                let _ = s.read_exact(&mut req);
            })
            .unwrap()
            .max_connections(4);
            server.start().unwrap();
            let addr = server.local_addr().unwrap();
            // 4 clients are being handled; 4 more wait in the backlog.
            let clients: Vec<_> = (0..8)
                .map(|_| {
                    greenlet::spawn(move || {
                        let mut c = TcpStream::connect(addr).unwrap();
                        c.write_all(&[1; 10]).unwrap();
                        let mut buf = [0; 16];
                        c.read(&mut buf).map_err(|e| e.kind())
                    })
                })
                .collect();
            all_in.wait();
            assert_eq!(server.connection_count(), 4);
            server.stop(Duration::from_millis(20));
            assert_eq!(server.connection_count(), 0);
            for c in &clients {
                // EOF from a killed handler, or a reset from the closed
                // backlog: either way the client is released.
                match c.get().unwrap() {
                    Ok(0) => {}
                    Err(ErrorKind::ConnectionReset) => {}
                    other => panic!("unexpected client outcome {other:?}"),
                }
            }
            assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 4);
        });
    });
}
