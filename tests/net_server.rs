//! `greenlet::server::StreamServer`: gevent's StreamServer behaviours.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{DropCount, guard};
use greenlet::Builder;
use greenlet::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use greenlet::server::{Listener, StreamServer};
use greenlet::sync::{Barrier, Event};

fn rt() -> Builder {
    Builder::new().workers(2)
}

/// Handler: echo one line-less message back upper-cased.
fn upper(mut s: TcpStream, _: SocketAddr) {
    let mut buf = [0; 64];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || s.write_all(&buf[..n].to_ascii_uppercase()).is_err() {
            break;
        }
    }
}

fn ask(addr: SocketAddr, msg: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(msg.as_bytes()).unwrap();
    let mut buf = vec![0; msg.len()];
    c.read_exact(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn start_serves_in_the_background_and_stop_closes() {
    guard(|| {
        rt().run(|| {
            let server = StreamServer::new("127.0.0.1:0", upper).unwrap();
            assert!(!server.started() && !server.closed());
            server.start().unwrap();
            server.start().unwrap(); // already running: nothing to do
            assert!(server.started());
            let addr = server.local_addr().unwrap();
            assert_eq!(ask(addr, "hello"), "HELLO");
            assert!(format!("{server:?}").contains("StreamServer"));
            server.stop(Duration::from_secs(5));
            assert!(server.closed() && !server.started());
            assert_eq!(server.local_addr().unwrap(), addr);
            let err = TcpStream::connect(addr).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
            assert!(server.start().is_err());
            server.stop(Duration::from_secs(1)); // stopping twice is fine
        });
    });
}

#[test]
fn serve_forever_returns_when_stopped_elsewhere() {
    guard(|| {
        rt().run(|| {
            let server = StreamServer::new("127.0.0.1:0", upper).unwrap();
            let addr = server.local_addr().unwrap();
            let s2 = server.clone();
            let serving = greenlet::spawn(move || s2.serve_forever().unwrap());
            assert_eq!(ask(addr, "abc"), "ABC");
            server.stop(Duration::from_secs(5));
            serving.get().unwrap();
        });
    });
}

#[test]
fn killing_serve_forever_stops_the_server() {
    guard(|| {
        rt().run(|| {
            let server = StreamServer::new("127.0.0.1:0", upper).unwrap();
            let addr = server.local_addr().unwrap();
            let s2 = server.clone();
            let serving = greenlet::spawn(move || s2.serve_forever().unwrap());
            assert_eq!(ask(addr, "x"), "X");
            serving.kill();
            assert!(server.closed());
            assert_eq!(
                TcpStream::connect(addr).unwrap_err().kind(),
                ErrorKind::ConnectionRefused
            );
        });
    });
}

#[test]
fn serve_forever_on_a_plain_thread() {
    guard(|| {
        let server = StreamServer::new("127.0.0.1:0", upper).unwrap();
        let addr = server.local_addr().unwrap();
        let s2 = server.clone();
        let t = std::thread::spawn(move || s2.serve_forever());
        assert_eq!(ask(addr, "thread"), "THREAD");
        server.stop(Duration::from_secs(5));
        t.join().unwrap().unwrap();
    });
}

#[test]
fn each_connection_gets_its_own_greenlet_with_its_peer_address() {
    const N: usize = 20;
    guard(|| {
        rt().run(|| {
            // Every handler waits for all the others: they must run at once.
            let barrier = Arc::new(Barrier::new(N));
            let peers = Arc::new(Mutex::new(Vec::new()));
            let (b, p) = (barrier.clone(), peers.clone());
            let server = StreamServer::new("127.0.0.1:0", move |mut s: TcpStream, peer| {
                assert_eq!(s.peer_addr().unwrap(), peer);
                p.lock().unwrap().push(peer);
                b.wait();
                s.write_all(b"!").unwrap();
            })
            .unwrap();
            server.start().unwrap();
            let addr = server.local_addr().unwrap();
            let clients: Vec<_> = (0..N)
                .map(|_| {
                    greenlet::spawn(move || {
                        let mut c = TcpStream::connect(addr).unwrap();
                        let me = c.local_addr().unwrap();
                        let mut b = [0; 1];
                        c.read_exact(&mut b).unwrap();
                        me
                    })
                })
                .collect();
            let mut mine: Vec<SocketAddr> = clients.iter().map(|c| *c.get().unwrap()).collect();
            let mut seen = peers.lock().unwrap().clone();
            mine.sort();
            seen.sort();
            assert_eq!(mine, seen);
            server.stop(Duration::from_secs(5));
        });
    });
}

#[test]
fn max_connections_stops_accepting_while_full() {
    guard(|| {
        Builder::new().workers(1).run(|| {
            let release = Arc::new(Event::new());
            let two_in = Arc::new(Event::new());
            let now = Arc::new(AtomicUsize::new(0));
            let max = Arc::new(AtomicUsize::new(0));
            let served = Arc::new(AtomicUsize::new(0));
            let (r, t, n, m, sv) = (
                release.clone(),
                two_in.clone(),
                now.clone(),
                max.clone(),
                served.clone(),
            );
            let server = StreamServer::new("127.0.0.1:0", move |mut s: TcpStream, _| {
                let in_now = n.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(in_now, Ordering::SeqCst);
                if in_now == 2 {
                    t.set();
                }
                r.wait();
                n.fetch_sub(1, Ordering::SeqCst);
                sv.fetch_add(1, Ordering::SeqCst);
                s.write_all(b"done").unwrap();
            })
            .unwrap()
            .max_connections(2);
            server.start().unwrap();
            let addr = server.local_addr().unwrap();
            let clients: Vec<_> = (0..6)
                .map(|_| {
                    greenlet::spawn(move || {
                        let mut c = TcpStream::connect(addr).unwrap();
                        let mut s = String::new();
                        c.read_to_string(&mut s).unwrap();
                        s
                    })
                })
                .collect();
            two_in.wait();
            // Give the acceptor every chance to take more (the hub polls
            // I/O between these turns): it must not.
            for _ in 0..500 {
                greenlet::yield_now();
            }
            assert_eq!(server.connection_count(), 2);
            release.set();
            for c in &clients {
                assert_eq!(c.get().unwrap(), "done");
            }
            assert_eq!(served.load(Ordering::SeqCst), 6);
            assert_eq!(max.load(Ordering::SeqCst), 2);
            server.stop(Duration::from_secs(5));
        });
    });
}

#[test]
fn stop_waits_for_handlers_that_finish_in_time() {
    guard(|| {
        rt().run(|| {
            let inside = Arc::new(Event::new());
            let finished = Arc::new(AtomicUsize::new(0));
            let (i, f) = (inside.clone(), finished.clone());
            let server = StreamServer::new("127.0.0.1:0", move |mut s: TcpStream, _| {
                let mut b = [0; 1];
                s.read_exact(&mut b).unwrap();
                i.set();
                greenlet::sleep(Duration::from_millis(30)); // work in progress
                s.write_all(b"bye").unwrap();
                f.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            server.start().unwrap();
            let addr = server.local_addr().unwrap();
            let client = greenlet::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.write_all(b"?").unwrap();
                let mut s = String::new();
                c.read_to_string(&mut s).unwrap();
                s
            });
            inside.wait();
            server.stop(Duration::from_secs(30));
            assert_eq!(finished.load(Ordering::SeqCst), 1);
            assert_eq!(client.get().unwrap(), "bye");
        });
    });
}

#[test]
fn stop_kills_handlers_past_the_timeout() {
    guard(|| {
        rt().run(|| {
            let inside = Arc::new(Event::new());
            let dropped = Arc::new(AtomicUsize::new(0));
            let (i, d) = (inside.clone(), dropped.clone());
            let server = StreamServer::new("127.0.0.1:0", move |mut s: TcpStream, _| {
                let _flag = DropCount(d.clone());
                i.set();
                let _ = s.read(&mut [0; 1]); // the client never writes
                unreachable!("killed while reading");
            })
            .unwrap();
            server.start().unwrap();
            let addr = server.local_addr().unwrap();
            let mut c = TcpStream::connect(addr).unwrap();
            inside.wait();
            server.stop(Duration::from_millis(10));
            // Killed and unwound: destructors ran, the socket closed.
            assert_eq!(dropped.load(Ordering::SeqCst), 1);
            assert_eq!(server.connection_count(), 0);
            assert_eq!(c.read(&mut [0; 1]).unwrap(), 0);
        });
    });
}

#[test]
fn a_handler_can_stop_its_server() {
    guard(|| {
        rt().run(|| {
            let slot: Arc<Mutex<Option<StreamServer>>> = Arc::new(Mutex::new(None));
            let s2 = slot.clone();
            let server = StreamServer::new("127.0.0.1:0", move |mut s: TcpStream, _| {
                let me = s2.lock().unwrap().clone().unwrap();
                me.stop(Duration::from_secs(30)); // does not wait for itself
                s.write_all(b"stopped").unwrap();
            })
            .unwrap();
            *slot.lock().unwrap() = Some(server.clone());
            let addr = server.local_addr().unwrap();
            let s3 = server.clone();
            let serving = greenlet::spawn(move || s3.serve_forever().unwrap());
            let mut c = TcpStream::connect(addr).unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            assert_eq!(reply, "stopped");
            serving.get().unwrap();
            assert!(server.closed());
            slot.lock().unwrap().take();
        });
    });
}

#[test]
fn a_panicking_handler_does_not_stop_the_server() {
    guard(|| {
        rt().run(|| {
            let calls = Arc::new(AtomicUsize::new(0));
            let c2 = calls.clone();
            let server = StreamServer::new("127.0.0.1:0", move |s: TcpStream, peer| {
                if c2.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first handler fails");
                }
                upper(s, peer)
            })
            .unwrap();
            server.start().unwrap();
            let addr = server.local_addr().unwrap();
            let mut first = TcpStream::connect(addr).unwrap();
            // The panicking handler's connection is closed.
            assert!(matches!(first.read(&mut [0; 1]), Ok(0) | Err(_)));
            assert_eq!(ask(addr, "second"), "SECOND");
            server.stop(Duration::from_secs(5));
            // The panicked handler left the table too.
            assert_eq!(server.connection_count(), 0);
            assert_eq!(calls.load(Ordering::SeqCst), 2);
        });
    });
}

/// A listener whose first accepts fail the way a process out of fds does.
#[derive(Clone)]
struct Flaky {
    inner: TcpListener,
    failures: Arc<Mutex<Vec<(Instant, i32)>>>,
    plan: Arc<Mutex<Vec<i32>>>,
}

impl Listener for Flaky {
    type Stream = TcpStream;
    type Addr = SocketAddr;

    fn accept(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        if let Some(errno) = self.plan.lock().unwrap().pop() {
            self.failures.lock().unwrap().push((Instant::now(), errno));
            return Err(std::io::Error::from_raw_os_error(errno));
        }
        self.inner.accept()
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

#[test]
fn accept_errors_back_off_then_recover() {
    guard(|| {
        rt().run(|| {
            let failures = Arc::new(Mutex::new(Vec::new()));
            // Popped from the end: an aborted connection (retried at once),
            // then three EMFILE and an ENFILE (each followed by a pause).
            let plan = vec![
                libc::ENFILE,
                libc::EMFILE,
                libc::EMFILE,
                libc::EMFILE,
                libc::ECONNABORTED,
            ];
            let flaky = Flaky {
                inner: TcpListener::bind("127.0.0.1:0").unwrap(),
                failures: failures.clone(),
                plan: Arc::new(Mutex::new(plan)),
            };
            let server = StreamServer::new(flaky, upper).unwrap();
            server.start().unwrap();
            assert_eq!(ask(server.local_addr().unwrap(), "after"), "AFTER");
            let f = failures.lock().unwrap().clone();
            assert_eq!(f.len(), 5);
            // The pauses after each resource error: 10, 20, 40, 80 ms at
            // least (lower bounds only: the pauses happened).
            let gaps: Vec<Duration> = f.windows(2).map(|w| w[1].0 - w[0].0).collect();
            for (gap, min) in gaps[1..].iter().zip([10, 20, 40]) {
                assert!(*gap >= Duration::from_millis(min), "{gaps:?}");
            }
            server.stop(Duration::from_secs(5));
        });
    });
}

#[test]
fn stop_during_a_back_off_pause() {
    guard(|| {
        rt().run(|| {
            let flaky = Flaky {
                inner: TcpListener::bind("127.0.0.1:0").unwrap(),
                failures: Arc::new(Mutex::new(Vec::new())),
                plan: Arc::new(Mutex::new(vec![libc::EMFILE; 100])),
            };
            let server = StreamServer::new(flaky, upper).unwrap();
            server.start().unwrap();
            greenlet::yield_now();
            server.stop(Duration::from_secs(5));
            assert!(server.closed());
        });
    });
}

#[test]
fn servers_from_listeners_and_addresses() {
    guard(|| {
        rt().run(|| {
            let from_std =
                StreamServer::new(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), upper)
                    .unwrap();
            let from_green =
                StreamServer::new(TcpListener::bind("127.0.0.1:0").unwrap(), upper).unwrap();
            let from_addr =
                StreamServer::new("127.0.0.1:0".parse::<SocketAddr>().unwrap(), upper).unwrap();
            let from_tuple = StreamServer::new(("127.0.0.1", 0), upper).unwrap();
            let from_string = StreamServer::new(String::from("localhost:0"), upper).unwrap();
            for s in [
                &from_std,
                &from_green,
                &from_addr,
                &from_tuple,
                &from_string,
            ] {
                s.start().unwrap();
                assert_eq!(ask(s.local_addr().unwrap(), "ok"), "OK");
                s.stop(Duration::from_secs(5));
            }
            assert!(StreamServer::new("not an address", upper).is_err());
        });
    });
}

#[test]
fn a_unix_socket_server() {
    guard(|| {
        rt().run(|| {
            let path = std::env::temp_dir().join(format!("greenlet-srv-{}", std::process::id()));
            let _ = std::fs::remove_file(&path);
            let server = StreamServer::new(
                UnixListener::bind(&path).unwrap(),
                |mut s: UnixStream, _| {
                    let mut text = String::new();
                    s.read_to_string(&mut text).unwrap();
                    s.write_all(text.to_uppercase().as_bytes()).unwrap();
                },
            )
            .unwrap();
            assert_eq!(
                server.local_addr().unwrap().as_pathname(),
                Some(path.as_path())
            );
            server.start().unwrap();
            let mut c = UnixStream::connect(&path).unwrap();
            c.write_all(b"unix").unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            assert_eq!(reply, "UNIX");
            server.stop(Duration::from_secs(5));
            let _ = std::fs::remove_file(&path);
        });
    });
}
