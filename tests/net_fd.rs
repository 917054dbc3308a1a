//! Faults that count file descriptors (issue 3, section 6): a burst of
//! 10,000 connections, a kill storm on greenlets waiting on sockets, and a
//! server that runs out of fds. Each test holds `LOCK`, so no other test of
//! this binary opens or closes fds while one counts.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::guard;
use greenlet::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use greenlet::server::{Listener, StreamServer};
use greenlet::{Builder, GreenletError};

static LOCK: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn rt() -> Builder {
    Builder::new().workers(2)
}

/// Open fds of this process.
fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Fds registered in every `epoll` set of this process.
fn epoll_registrations() -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        if target.to_string_lossy().contains("eventpoll") {
            let info = std::fs::read_to_string(format!(
                "/proc/self/fdinfo/{}",
                e.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            n += info.lines().filter(|l| l.starts_with("tfd:")).count();
        }
    }
    n
}

#[test]
fn ten_thousand_connections_in_a_burst_leak_no_fd() {
    const CLIENTS: usize = 100;
    const EACH: usize = 100;
    let _serial = serial();
    guard(|| {
        rt().run(|| {
            let before = fd_count();
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            // The server closes first (its side keeps TIME_WAIT, not the
            // clients' ephemeral ports).
            let server = greenlet::spawn(move || {
                for _ in 0..CLIENTS * EACH {
                    let (s, _) = l.accept().unwrap();
                    drop(s);
                }
            });
            let clients: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    greenlet::spawn(move || {
                        for _ in 0..EACH {
                            let mut c = TcpStream::connect(addr).unwrap();
                            match c.read(&mut [0; 1]) {
                                Ok(0) => {}
                                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                                other => panic!("{other:?}"),
                            }
                        }
                    })
                })
                .collect();
            greenlet::joinall(&clients);
            for c in &clients {
                c.get().unwrap();
            }
            server.get().unwrap();
            drop(server);
            assert_eq!(fd_count(), before);
        });
    });
}

#[test]
fn a_kill_storm_leaves_no_registration_waiter_or_fd() {
    let _serial = serial();
    guard(|| {
        rt().run(|| {
            let fds = fd_count();
            let regs = epoll_registrations();
            let entered = Arc::new(AtomicUsize::new(0));
            let mut gs = Vec::new();
            let mut keep = Vec::new();
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            // Readers on TCP.
            for _ in 0..200 {
                let c = TcpStream::connect(addr).unwrap();
                let (s, _) = l.accept().unwrap();
                let (c2, e) = (c.clone(), entered.clone());
                gs.push(greenlet::spawn(move || {
                    e.fetch_add(1, Ordering::SeqCst);
                    let _ = (&c2).read(&mut [0; 8]);
                }));
                keep.push((c, s));
            }
            // Writers parked on full Unix socket buffers.
            let mut pairs = Vec::new();
            for _ in 0..20 {
                let (a, b) = UnixStream::pair().unwrap();
                let (a2, e) = (a.clone(), entered.clone());
                gs.push(greenlet::spawn(move || {
                    e.fetch_add(1, Ordering::SeqCst);
                    let chunk = vec![0u8; 64 * 1024];
                    loop {
                        if (&a2).write(&chunk).is_err() {
                            return;
                        }
                    }
                }));
                pairs.push((a, b));
            }
            // Acceptors and UDP receivers, some with timeouts pending.
            for i in 0..40 {
                let (l2, e) = (l.clone(), entered.clone());
                gs.push(greenlet::spawn(move || {
                    e.fetch_add(1, Ordering::SeqCst);
                    let _ = l2.accept_timeout(Duration::from_secs(3600));
                }));
                let u = UdpSocket::bind("127.0.0.1:0").unwrap();
                if i % 2 == 0 {
                    u.set_read_timeout(Some(Duration::from_secs(3600))).unwrap();
                }
                let e = entered.clone();
                gs.push(greenlet::spawn(move || {
                    e.fetch_add(1, Ordering::SeqCst);
                    let _ = u.recv_from(&mut [0; 8]);
                }));
            }
            let total = gs.len();
            while entered.load(Ordering::SeqCst) < total {
                greenlet::yield_now();
            }
            greenlet::killall(&gs);
            for g in &gs {
                assert_eq!(g.error(), Some(GreenletError::Killed));
            }
            // No stale waiter: a new reader on a socket whose reader was
            // killed gets the data.
            let (c, s) = &keep[0];
            let c2 = c.clone();
            let reader = greenlet::spawn(move || {
                let mut b = [0; 4];
                (&c2).read_exact(&mut b).unwrap();
                b
            });
            (&*s).write_all(b"live").unwrap();
            assert_eq!(reader.get(), Ok(b"live"));
            drop((gs, keep, pairs, l, reader));
            assert_eq!(fd_count(), fds);
            assert_eq!(epoll_registrations(), regs);
        });
    });
}

#[test]
fn timeouts_and_with_timeout_leave_nothing_behind() {
    let _serial = serial();
    guard(|| {
        rt().run(|| {
            let fds = fd_count();
            let regs = epoll_registrations();
            let gs: Vec<_> = (0..100)
                .map(|i| {
                    greenlet::spawn(move || {
                        let (a, _b) = UnixStream::pair().unwrap();
                        if i % 2 == 0 {
                            a.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
                            (&a).read(&mut [0; 1]).unwrap_err().kind() == ErrorKind::TimedOut
                        } else {
                            greenlet::with_timeout(Duration::from_millis(5), || {
                                (&a).read(&mut [0; 1])
                            })
                            .is_err()
                        }
                    })
                })
                .collect();
            for g in &gs {
                assert_eq!(g.get(), Ok(&true));
            }
            drop(gs);
            assert_eq!(fd_count(), fds);
            assert_eq!(epoll_registrations(), regs);
        });
    });
}

/// A listener that records the accept errors it passes on.
#[derive(Clone)]
struct Watched {
    inner: TcpListener,
    errors: Arc<Mutex<Vec<i32>>>,
    hit: Arc<greenlet::sync::Event>,
}

impl Listener for Watched {
    type Stream = TcpStream;
    type Addr = std::net::SocketAddr;

    fn accept(&self) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
        let r = self.inner.accept();
        if let Err(e) = &r {
            self.errors
                .lock()
                .unwrap()
                .push(e.raw_os_error().unwrap_or(-1));
            self.hit.set();
        }
        r
    }

    fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }
}

fn nofile() -> libc::rlimit {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r
}

fn set_nofile(r: &libc::rlimit) {
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, r) }, 0);
}

#[test]
fn a_server_out_of_fds_backs_off_and_recovers() {
    let _serial = serial();
    guard(|| {
        rt().run(|| {
            let hit = Arc::new(greenlet::sync::Event::new());
            let errors = Arc::new(Mutex::new(Vec::new()));
            let listener = Watched {
                inner: TcpListener::bind("127.0.0.1:0").unwrap(),
                errors: errors.clone(),
                hit: hit.clone(),
            };
            let server = StreamServer::new(listener, |mut s: TcpStream, _| {
                let _ = s.write_all(b"ok");
            })
            .unwrap();
            server.start().unwrap();
            let addr = server.local_addr().unwrap();
            // The client's socket exists before the fds run out.
            // SAFETY: socket(2) with constant arguments.
            let fd =
                unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
            assert!(fd >= 0);
            // SAFETY: a fresh fd that nothing else owns.
            let client = std::net::TcpStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
            let saved = nofile();
            let mut low = saved;
            low.rlim_cur = (fd_count() + 16) as libc::rlim_t;
            set_nofile(&low);
            // Use up every fd left.
            let null = std::fs::File::open("/dev/null").unwrap();
            let mut hog = Vec::new();
            while let Ok(f) = null.try_clone() {
                hog.push(f);
            }
            // A blocking connect on loopback completes in the backlog.
            let (sa, len) = {
                let std::net::SocketAddr::V4(v4) = addr else {
                    unreachable!()
                };
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                (
                    sin,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            // SAFETY: a valid sockaddr_in of `len` bytes.
            let rc = unsafe { libc::connect(client.as_raw_fd(), (&raw const sa).cast(), len) };
            assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
            // The server fails to accept it for want of an fd...
            hit.wait();
            assert!(errors.lock().unwrap().contains(&libc::EMFILE));
            // ...and takes it once fds are free again.
            drop(hog);
            set_nofile(&saved);
            let mut c = TcpStream::from(client);
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            assert_eq!(reply, "ok");
            assert!(server.started());
            server.stop(Duration::from_secs(5));
        });
    });
}
