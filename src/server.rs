//! gevent's `StreamServer`: accept connections and handle each one in a new
//! greenlet.
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use greenlet::net::TcpStream;
//! use greenlet::server::StreamServer;
//!
//! greenlet::run(|| {
//!     // An echo server: one greenlet per connection, written as blocking code.
//!     let server = StreamServer::new("127.0.0.1:0", |mut conn: TcpStream, _peer| {
//!         let mut line = String::new();
//!         while BufReader::new(&conn).read_line(&mut line).unwrap_or(0) > 0 {
//!             conn.write_all(line.as_bytes()).unwrap();
//!             line.clear();
//!         }
//!     })
//!     .unwrap();
//!     server.start().unwrap(); // serves in the background
//!
//!     let mut c = TcpStream::connect(server.local_addr().unwrap()).unwrap();
//!     c.write_all(b"hello\n").unwrap();
//!     let mut reply = String::new();
//!     BufReader::new(&c).read_line(&mut reply).unwrap();
//!     assert_eq!(reply, "hello\n");
//!
//!     server.stop(std::time::Duration::from_secs(1));
//! });
//! ```
//!
//! # Design
//!
//! A server is a shared `Inner`: the listener, the handler, and a `State`
//! under one lock. [`StreamServer::start`] spawns the *acceptor*, a greenlet
//! that loops on `accept` and spawns one handler greenlet per connection.
//! Every handler greenlet's closure carries a `Slot` guard; the guard is
//! dropped when the closure ends (returned, panicked, killed) or is dropped
//! unrun (cancelled at shutdown), and it takes the handler out of the
//! server's table and wakes whoever waits on the server. So the count of live
//! handlers is exact, which is what the concurrency limit and `stop` wait on.
//!
//! Phases: `Created --start--> Running --stop--> Stopping --> Stopped`
//! (`stop` on a server never started goes straight to `Stopped`). `stop`
//! kills the acceptor, closes the listener (connections still in its
//! backlog are reset by the kernel), waits for the handlers up to the
//! timeout, kills the rest and waits for them to unwind.
//!
//! Accept errors: a connection that died in the backlog
//! (`ECONNABORTED`, `EPROTO`, ...) is skipped; anything else (`EMFILE`,
//! `ENFILE`, `ENOBUFS`, `ENOMEM`, ...) is logged once per kind of error and
//! retried after a back-off that starts at 10 ms and doubles up to 1 s,
//! resetting on the next success: the server neither dies nor spins.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::greenlet::switch::current_ptr;
use crate::hub::park::{Unparker, park_until};
use crate::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use crate::spawn::Greenlet;

/// A listening socket a [`StreamServer`] can serve: TCP or Unix, or a
/// wrapper of one (to filter or count connections, say).
pub trait Listener: Clone + Send + Sync + 'static {
    /// The connection type `accept` returns.
    type Stream: Send + 'static;
    /// The address type of peers and of the listener.
    type Addr: Clone + fmt::Debug + Send + Sync + 'static;

    /// Waits for a connection (parking the calling greenlet).
    fn accept(&self) -> io::Result<(Self::Stream, Self::Addr)>;

    /// The address the listener is bound to.
    fn local_addr(&self) -> io::Result<Self::Addr>;
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    type Addr = SocketAddr;

    fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        TcpListener::accept(self)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    type Addr = std::os::unix::net::SocketAddr;

    fn accept(&self) -> io::Result<(UnixStream, Self::Addr)> {
        UnixListener::accept(self)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        UnixListener::local_addr(self)
    }
}

/// What [`StreamServer::new`] accepts: a listener, or an address to bind.
pub trait IntoListener {
    /// The listener this becomes.
    type Listener: Listener;

    /// Binds (for an address) or wraps (for a listener).
    fn into_listener(self) -> io::Result<Self::Listener>;
}

impl<L: Listener> IntoListener for L {
    type Listener = L;
    fn into_listener(self) -> io::Result<L> {
        Ok(self)
    }
}

impl IntoListener for std::net::TcpListener {
    type Listener = TcpListener;
    fn into_listener(self) -> io::Result<TcpListener> {
        Ok(self.into())
    }
}

impl IntoListener for std::os::unix::net::UnixListener {
    type Listener = UnixListener;
    fn into_listener(self) -> io::Result<UnixListener> {
        Ok(self.into())
    }
}

macro_rules! bind_tcp {
    ($($t:ty),*) => {$(
        impl IntoListener for $t {
            type Listener = TcpListener;
            fn into_listener(self) -> io::Result<TcpListener> {
                TcpListener::bind(self)
            }
        }
    )*};
}

bind_tcp!(
    SocketAddr,
    &str,
    String,
    (&str, u16),
    (String, u16),
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

type Handler<L> = dyn Fn(<L as Listener>::Stream, <L as Listener>::Addr) + Send + Sync + 'static;

/// Accepts connections and calls a handler in a new greenlet for each
/// (gevent's `StreamServer`).
///
/// Clones are handles to the same server (so one greenlet can `stop` what
/// another serves). See the [module docs](self) for an example.
pub struct StreamServer<L: Listener = TcpListener> {
    inner: Arc<Inner<L>>,
}

impl<L: Listener> Clone for StreamServer<L> {
    fn clone(&self) -> Self {
        StreamServer {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<L: Listener> {
    /// `None` once the server has stopped (the socket is closed).
    listener: Mutex<Option<L>>,
    addr: L::Addr,
    handler: Box<Handler<L>>,
    state: Mutex<State>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Created,
    Running,
    Stopping,
    Stopped,
}

struct State {
    phase: Phase,
    /// 0: no limit.
    max: usize,
    acceptor: Option<Greenlet<()>>,
    /// Live handlers by slot id; `None` between spawn and record.
    handlers: HashMap<u64, Option<Greenlet<()>>>,
    next_id: u64,
    /// Waiting for a change: a handler ended, or the phase moved.
    waiters: Vec<(u64, Unparker)>,
    /// Accept errors already logged (by `errno`, or -1 for others).
    logged: Vec<i32>,
}

impl State {
    fn wake_all(&mut self) {
        for (_, u) in self.waiters.drain(..) {
            u.unpark();
        }
    }

    /// Live handlers other than the calling greenlet.
    fn others(&self) -> usize {
        let me = current_ptr();
        self.handlers
            .values()
            .filter(|g| g.as_ref().is_none_or(|g| g.header().as_ptr() != me))
            .count()
    }
}

impl<L: Listener> StreamServer<L> {
    /// A server on `listener` (a listener, or an address to bind, e.g.
    /// `"127.0.0.1:8080"`) that calls `handler(stream, peer_addr)` in a new
    /// greenlet for each connection. Nothing is accepted before
    /// [`start`](Self::start) or [`serve_forever`](Self::serve_forever).
    pub fn new<A, F>(listener: A, handler: F) -> io::Result<StreamServer<L>>
    where
        A: IntoListener<Listener = L>,
        F: Fn(L::Stream, L::Addr) + Send + Sync + 'static,
    {
        let listener = listener.into_listener()?;
        let addr = listener.local_addr()?;
        Ok(StreamServer {
            inner: Arc::new(Inner {
                listener: Mutex::new(Some(listener)),
                addr,
                handler: Box::new(handler),
                state: Mutex::new(State {
                    phase: Phase::Created,
                    max: 0,
                    acceptor: None,
                    handlers: HashMap::new(),
                    next_id: 0,
                    waiters: Vec::new(),
                    logged: Vec::new(),
                }),
            }),
        })
    }

    /// Limits how many connections are handled at once: while `n` handlers
    /// run, the server stops accepting (new connections wait in the
    /// listener's backlog), as gevent's pool-backed servers do. `0` means
    /// no limit (the default).
    pub fn max_connections(self, n: usize) -> Self {
        self.inner.lock().max = n;
        self
    }

    /// The address the server listens on (still known after `stop`).
    pub fn local_addr(&self) -> io::Result<L::Addr> {
        Ok(self.inner.addr.clone())
    }

    /// Starts accepting in a background greenlet and returns at once.
    /// Starting a running server does nothing; a stopped one cannot start
    /// again (its socket is closed).
    pub fn start(&self) -> io::Result<()> {
        let mut st = self.inner.lock();
        match st.phase {
            Phase::Created => {}
            Phase::Running => return Ok(()),
            Phase::Stopping | Phase::Stopped => {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the server has been stopped",
                ));
            }
        }
        let listener = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .expect("a server that has not stopped has its listener");
        let inner = self.inner.clone();
        let acceptor = crate::GreenletBuilder::new()
            .name("StreamServer-acceptor")
            .try_spawn(move || accept_loop(&inner, &listener))
            .map_err(io::Error::other)?;
        st.acceptor = Some(acceptor);
        st.phase = Phase::Running;
        Ok(())
    }

    /// Starts the server (if it is not running) and waits until it is
    /// stopped by [`stop`](Self::stop) from elsewhere. If the waiting
    /// greenlet is killed, the server is stopped (handlers get one second)
    /// before the kill goes on.
    pub fn serve_forever(&self) -> io::Result<()> {
        self.start()?;
        struct StopOnExit<'a, L: Listener>(&'a StreamServer<L>, bool);
        impl<L: Listener> Drop for StopOnExit<'_, L> {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.stop(Duration::from_secs(1));
                }
            }
        }
        let mut guard = StopOnExit(self, false);
        self.inner.wait_until(None, |st| st.phase == Phase::Stopped);
        guard.1 = true;
        Ok(())
    }

    /// Stops the server: stops accepting and closes the listening socket,
    /// waits up to `timeout` for the running handlers to finish, then kills
    /// the rest and waits for them to unwind. A handler that calls `stop`
    /// is not waited for (nor killed). A second `stop` waits for the first.
    pub fn stop(&self, timeout: Duration) {
        let deadline = Instant::now().checked_add(timeout);
        let acceptor = {
            let mut st = self.inner.lock();
            match st.phase {
                Phase::Stopped => return,
                Phase::Stopping => {
                    drop(st);
                    self.inner.wait_until(None, |st| st.phase == Phase::Stopped);
                    return;
                }
                Phase::Created | Phase::Running => st.phase = Phase::Stopping,
            }
            st.acceptor.take()
        };
        if let Some(a) = acceptor {
            a.kill();
        }
        // The acceptor's clone is gone: this closes the socket.
        drop(
            self.inner
                .listener
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        if !self.inner.wait_until(deadline, |st| st.others() == 0) {
            let me = current_ptr();
            let rest: Vec<Greenlet<()>> = self
                .inner
                .lock()
                .handlers
                .values()
                .flatten()
                .filter(|g| g.header().as_ptr() != me)
                .cloned()
                .collect();
            crate::killall(&rest);
        }
        let mut st = self.inner.lock();
        st.phase = Phase::Stopped;
        st.wake_all();
    }

    /// True once started (and until stopped).
    pub fn started(&self) -> bool {
        self.inner.lock().phase == Phase::Running
    }

    /// True once stopped (or stopping): the listening socket is closed.
    pub fn closed(&self) -> bool {
        matches!(self.inner.lock().phase, Phase::Stopping | Phase::Stopped)
    }

    /// How many connections are being handled right now.
    pub fn connection_count(&self) -> usize {
        self.inner.lock().handlers.len()
    }
}

impl<L: Listener> fmt::Debug for StreamServer<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("StreamServer")
            .field("addr", &self.inner.addr)
            .field("phase", &st.phase)
            .field("connections", &st.handlers.len())
            .finish()
    }
}

impl<L: Listener> Inner<L> {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks until `cond` holds (true) or `deadline` passes (false).
    fn wait_until(&self, deadline: Option<Instant>, cond: impl Fn(&State) -> bool) -> bool {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        struct Unlist<'a, L: Listener>(&'a Inner<L>, u64);
        impl<L: Listener> Drop for Unlist<'_, L> {
            fn drop(&mut self) {
                let removed = {
                    let mut st = self.0.lock();
                    let at = st.waiters.iter().position(|(i, _)| *i == self.1);
                    at.map(|at| st.waiters.swap_remove(at))
                };
                drop(removed);
            }
        }
        let _unlist = Unlist(self, id);
        loop {
            {
                let mut st = self.lock();
                if cond(&st) {
                    return true;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return false;
                }
                if !st.waiters.iter().any(|(i, _)| *i == id) {
                    st.waiters.push((id, Unparker::current()));
                }
            }
            park_until(deadline);
        }
    }

    /// Logs an accept error the first time its kind is seen.
    fn log_once(&self, e: &io::Error) {
        let key = e.raw_os_error().unwrap_or(-1);
        let mut st = self.lock();
        if !st.logged.contains(&key) {
            st.logged.push(key);
            drop(st);
            eprintln!(
                "greenlet StreamServer on {:?}: accept failed: {e}; retrying with a back-off \
                 (logged once)",
                self.addr
            );
        }
    }
}

/// Removes a handler from its server when its closure ends or is dropped.
struct Slot<L: Listener> {
    inner: Arc<Inner<L>>,
    id: u64,
}

impl<L: Listener> Drop for Slot<L> {
    fn drop(&mut self) {
        let gone = {
            let mut st = self.inner.lock();
            let gone = st.handlers.remove(&self.id);
            st.wake_all();
            gone
        };
        drop(gone);
    }
}

/// The acceptor greenlet's body: runs until killed by `stop`.
fn accept_loop<L: Listener>(inner: &Arc<Inner<L>>, listener: &L) {
    const FIRST_PAUSE: Duration = Duration::from_millis(10);
    const MAX_PAUSE: Duration = Duration::from_secs(1);
    let mut pause: Option<Duration> = None;
    loop {
        inner.wait_until(None, |st| st.max == 0 || st.handlers.len() < st.max);
        match listener.accept() {
            Ok((stream, peer)) => {
                pause = None;
                spawn_handler(inner, stream, peer);
            }
            Err(e) if is_transient(&e) => {}
            Err(e) => {
                inner.log_once(&e);
                let p = pause.map_or(FIRST_PAUSE, |p| (p * 2).min(MAX_PAUSE));
                pause = Some(p);
                crate::sleep(p);
            }
        }
    }
}

/// Errors about one connection that died before it was accepted (or an
/// interrupted call): try the next one at once.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EPROTO) | Some(libc::EPERM) | Some(libc::ENOPROTOOPT) | Some(libc::EHOSTUNREACH)
    )
}

fn spawn_handler<L: Listener>(inner: &Arc<Inner<L>>, stream: L::Stream, peer: L::Addr) {
    let id = {
        let mut st = inner.lock();
        st.next_id += 1;
        let id = st.next_id;
        st.handlers.insert(id, None);
        id
    };
    let slot = Slot {
        inner: inner.clone(),
        id,
    };
    // Handlers live as long as their connection: spread them over the
    // workers rather than leave them where the acceptor runs.
    let spawned = crate::GreenletBuilder::new()
        .spread(true)
        .try_spawn(move || {
            let slot = slot;
            (slot.inner.handler)(stream, peer);
        });
    match spawned {
        Ok(g) => {
            let mut st = inner.lock();
            if let Some(entry) = st.handlers.get_mut(&id) {
                *entry = Some(g);
            }
        }
        // The closure (and with it the slot and the connection) is dropped.
        Err(e) => inner.log_once(&io::Error::other(e)),
    }
}
