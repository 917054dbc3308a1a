//! gevent's echo server, answering like the seed's selectors echo server:
//! each line comes back upper-cased with the suffix `_SB`.
//!
//! ```text
//! cargo run --example echo_server              # serve on 127.0.0.1:8088
//! cargo run --example echo_server -- 9000      # ... on port 9000
//! cargo run --example echo_server -- client    # type lines, see replies
//! cargo run --example echo_server -- client 9000
//! ```
//!
//! One greenlet per connection, written as plain blocking code; `quit`
//! closes the connection. The client reads stdin on the thread pool (a
//! terminal read would block the hub) and talks to the server in a greenlet.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;

use greenlet::net::TcpStream;
use greenlet::server::StreamServer;

/// What the server says first.
pub const GREETING: &str = "Welcome to the echo server! Type quit to exit.";

/// Lines longer than this are cut (the seed reads 1024 bytes at a time).
const MAX_LINE: u64 = 1024;

/// The reply to one line: upper-cased, with the suffix `_SB`.
pub fn reply(line: &str) -> String {
    format!("{}_SB", line.to_uppercase())
}

/// Serves one connection until the client says `quit` or goes away.
pub fn handle(conn: TcpStream, peer: SocketAddr) {
    println!("{peer} connected");
    let mut out = &conn;
    let mut input = BufReader::new(&conn);
    if writeln!(out, "{GREETING}").is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut input).take(MAX_LINE).read_line(&mut line) {
            Ok(0) | Err(_) => break, // EOF or an error: close, like the seed
            Ok(_) => {}
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if text == "quit" {
            break;
        }
        if writeln!(out, "{}", reply(text)).is_err() {
            break;
        }
    }
    println!("{peer} left");
}

/// An echo server on `addr` (not started).
pub fn server(addr: &str) -> io::Result<StreamServer> {
    StreamServer::new(addr, handle)
}

/// The client: prints the greeting, then sends each line that `next_line`
/// gives and prints the reply with `print`, until the lines run out.
pub fn client(
    addr: &str,
    mut next_line: impl FnMut() -> Option<String>,
    mut print: impl FnMut(&str),
) -> io::Result<()> {
    let conn = TcpStream::connect(addr)?;
    let mut replies = BufReader::new(&conn);
    let mut text = String::new();
    replies.read_line(&mut text)?;
    print(text.trim_end());
    while let Some(line) = next_line() {
        writeln!(&conn, "{}", line.trim_end())?;
        text.clear();
        if replies.read_line(&mut text)? == 0 {
            break; // the server closed (we said quit)
        }
        print(text.trim_end());
    }
    Ok(())
}

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let is_client = args.first().is_some_and(|a| a == "client");
    let port = args
        .get(usize::from(is_client))
        .map_or(Ok(8088), |p| p.parse::<u16>())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let addr = format!("127.0.0.1:{port}");
    greenlet::run(move || {
        if is_client {
            let next_line = || {
                // Reading the terminal blocks: do it on the thread pool.
                let job = greenlet::threadpool::spawn_blocking(|| {
                    let mut line = String::new();
                    match io::stdin().read_line(&mut line) {
                        Ok(0) | Err(_) => None,
                        Ok(_) => Some(line),
                    }
                });
                job.get().ok().cloned().flatten()
            };
            client(&addr, next_line, |reply| println!("{reply}"))
        } else {
            let server = server(&addr)?;
            println!("Starting echo server on {addr}");
            server.serve_forever()
        }
    })
}
