//! A TCP port forwarder: every connection to the listening address is
//! relayed to a target address by two greenlets, one per direction, joined
//! with `joinall` (gevent's portforwarder).
//!
//! ```text
//! cargo run --example port_forwarder                       # self-contained demo
//! cargo run --example port_forwarder -- 127.0.0.1:8080 127.0.0.1:8088
//! ```
//!
//! The demo starts an upper-casing backend and a forwarder in front of it on
//! loopback, and sends a few messages through the forwarder.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use greenlet::net::TcpStream;
use greenlet::server::StreamServer;

/// Copies `from` to `to` until EOF, then passes the EOF on.
pub fn pipe(from: TcpStream, to: TcpStream) -> io::Result<u64> {
    let n = io::copy(&mut &from, &mut &to);
    let _ = to.shutdown(Shutdown::Write);
    n
}

/// Relays one accepted connection to `target`.
pub fn relay(client: TcpStream, peer: SocketAddr, target: &str) {
    let upstream = match TcpStream::connect(target) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{peer}: cannot reach {target}: {e}");
            return;
        }
    };
    let up = {
        let (c, u) = (client.clone(), upstream.clone());
        greenlet::spawn(move || pipe(c, u))
    };
    let down = greenlet::spawn(move || pipe(upstream, client));
    greenlet::joinall(&[up.clone(), down.clone()]);
    if let (Ok(Ok(a)), Ok(Ok(b))) = (up.get(), down.get()) {
        println!("{peer}: {a} bytes up, {b} bytes down");
    }
}

/// A forwarder from `listen` to `target` (not started).
pub fn forwarder(listen: &str, target: &str) -> io::Result<StreamServer> {
    let target = target.to_string();
    StreamServer::new(listen, move |client, peer| relay(client, peer, &target))
}

/// A backend for the demo: answers each connection with what it read,
/// upper-cased, once the client has finished writing.
pub fn upper_backend() -> io::Result<StreamServer> {
    StreamServer::new("127.0.0.1:0", |mut s: TcpStream, _| {
        let mut text = String::new();
        if s.read_to_string(&mut text).is_ok() {
            let _ = s.write_all(text.to_uppercase().as_bytes());
        }
    })
}

/// Sends `msg` to `addr`, half-closes, and returns the whole answer.
pub fn ask(addr: SocketAddr, msg: &str) -> io::Result<String> {
    let mut c = TcpStream::connect(addr)?;
    c.write_all(msg.as_bytes())?;
    c.shutdown(Shutdown::Write)?;
    let mut answer = String::new();
    c.read_to_string(&mut answer)?;
    Ok(answer)
}

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    greenlet::run(move || {
        if let [listen, target] = &args[..] {
            println!("Forwarding {listen} to {target}");
            return forwarder(listen, target)?.serve_forever();
        }
        let backend = upper_backend()?;
        backend.start()?;
        let target = backend.local_addr()?.to_string();
        let front = forwarder("127.0.0.1:0", &target)?;
        front.start()?;
        let addr = front.local_addr()?;
        println!("Forwarding {addr} to {target}");
        let clients: Vec<_> = ["hello", "green", "threads"]
            .into_iter()
            .map(|m| greenlet::spawn(move || (m, ask(addr, m))))
            .collect();
        for c in &clients {
            let (m, answer) = c.get().expect("client greenlet");
            println!(
                "sent {m:?}, got {:?}",
                answer.as_ref().map_err(|e| e.to_string())
            );
        }
        front.stop(Duration::from_secs(1));
        backend.stop(Duration::from_secs(1));
        Ok(())
    })
}
