//! `greenlet::net` from plain OS threads, outside any runtime: the calls
//! block the thread, like `std`'s, with the same timeouts.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use common::guard;
use greenlet::net::{TcpListener, TcpStream, UdpSocket, UnixStream, lookup_host};

#[test]
fn tcp_between_two_plain_threads() {
    guard(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"plain").unwrap();
        let mut buf = [0; 5];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"plain");
        server.join().unwrap();
        assert_eq!(c.read(&mut buf).unwrap(), 0);
    });
}

#[test]
fn timeouts_on_a_plain_thread() {
    guard(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = l.accept_timeout(Duration::from_millis(10)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_s, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let err = (&c).read(&mut [0; 1]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        c.set_write_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let chunk = vec![1u8; 64 * 1024];
        let err = loop {
            if let Err(e) = (&c).write(&chunk) {
                break e;
            }
        };
        assert_eq!(err.kind(), ErrorKind::TimedOut);
    });
}

#[test]
fn a_plain_thread_talks_to_a_greenlet_server() {
    guard(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"from a thread").unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            reply
        });
        greenlet::Builder::new().workers(1).run(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            s.write_all(text.to_uppercase().as_bytes()).unwrap();
        });
        assert_eq!(client.join().unwrap(), "FROM A THREAD");
    });
}

#[test]
fn udp_and_unix_on_plain_threads() {
    guard(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b_addr = b.local_addr().unwrap();
        let rx = std::thread::spawn(move || {
            let mut buf = [0; 8];
            let (n, _) = b.recv_from(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        a.send_to(b"thread", b_addr).unwrap();
        assert_eq!(rx.join().unwrap(), b"thread");

        let (x, mut y) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0; 3];
            (&x).read_exact(&mut buf).unwrap();
            buf
        });
        y.write_all(b"uds").unwrap();
        assert_eq!(&t.join().unwrap(), b"uds");
    });
}

#[test]
fn lookup_and_connect_by_name_on_a_plain_thread() {
    guard(|| {
        let addrs = lookup_host("localhost:443").unwrap();
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 443)
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let c = TcpStream::connect(format!("localhost:{port}")).unwrap();
        let (s, _) = l.accept().unwrap();
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
    });
}

#[test]
fn a_thread_pool_job_uses_sockets() {
    guard(|| {
        greenlet::Builder::new().workers(1).run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            // The job blocks its pool thread, not the hub.
            let job = greenlet::threadpool::spawn_blocking(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                let mut s = String::new();
                c.read_to_string(&mut s).unwrap();
                s
            });
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"to the job").unwrap();
            drop(s);
            assert_eq!(job.get().unwrap(), "to the job");
        });
    });
}
