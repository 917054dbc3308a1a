//! The seed's crawler: fetch ten pages over HTTP/1.0 with plain,
//! blocking-looking `TcpStream` code, concurrently in greenlets, and once
//! more one by one to compare.
//!
//! ```text
//! cargo run --release --example crawl
//! ```
//!
//! It needs no outside service: it first starts a small HTTP server on
//! loopback (green sockets too) that serves `/`, `/1` … `/9`, each after a
//! 50 ms pause, so the ten fetches overlap when run concurrently.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use greenlet::net::TcpStream;
use greenlet::server::StreamServer;

/// The paths the crawler fetches.
pub const PATHS: [&str; 10] = ["/", "/1", "/2", "/3", "/4", "/5", "/6", "/7", "/8", "/9"];

/// A tiny HTTP/1.0 server on `127.0.0.1` (any port) that answers each known
/// path after `delay` and closes the connection.
pub fn http_server(delay: Duration) -> io::Result<StreamServer> {
    StreamServer::new("127.0.0.1:0", move |conn: TcpStream, _| {
        let mut request = BufReader::new(&conn);
        let mut first = String::new();
        if request.read_line(&mut first).is_err() {
            return;
        }
        // Skip the headers, up to the empty line.
        let mut header = String::new();
        while request.read_line(&mut header).is_ok_and(|n| n > 2) {
            header.clear();
        }
        let path = first.split_whitespace().nth(1).unwrap_or("");
        greenlet::sleep(delay); // the "slow backend"
        let (status, body) = if PATHS.contains(&path) {
            ("200 OK", format!("<html>page {path}</html>\n"))
        } else {
            ("404 Not Found", "not found\n".to_string())
        };
        let _ = write!(
            &conn,
            "HTTP/1.0 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    })
}

/// Fetches `path` from `host:port` with HTTP/1.0 and returns the whole
/// response (read until the server closes).
pub fn fetch(host: &str, port: u16, path: &str) -> io::Result<String> {
    let mut conn = TcpStream::connect((host, port))?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut response = String::new();
    conn.read_to_string(&mut response)?;
    Ok(response)
}

/// The status line of a response.
pub fn status(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

/// Fetches every path at once, one greenlet each; results in path order.
pub fn crawl_concurrently(host: &str, port: u16) -> Vec<io::Result<String>> {
    let jobs: Vec<_> = PATHS
        .iter()
        .map(|path| {
            let host = host.to_string();
            greenlet::spawn(move || {
                let r = fetch(&host, port, path);
                match &r {
                    Ok(resp) => println!("  {path:<3} {} ({} bytes)", status(resp), resp.len()),
                    Err(e) => println!("  {path:<3} error: {e}"),
                }
                r
            })
        })
        .collect();
    greenlet::joinall(&jobs);
    jobs.iter()
        .map(|g| match g.get() {
            Ok(Ok(s)) => Ok(s.clone()),
            Ok(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
            Err(e) => Err(io::Error::other(e)),
        })
        .collect()
}

/// Fetches every path, one after the other.
pub fn crawl_one_by_one(host: &str, port: u16) -> Vec<io::Result<String>> {
    PATHS.iter().map(|path| fetch(host, port, path)).collect()
}

#[allow(dead_code)]
fn main() -> io::Result<()> {
    greenlet::run(|| {
        let server = http_server(Duration::from_millis(50))?;
        server.start()?;
        let port = server.local_addr()?.port();
        println!(
            "Serving {} pages on localhost:{port}, 50 ms each",
            PATHS.len()
        );

        println!("Fetching concurrently:");
        let t0 = Instant::now();
        let pages = crawl_concurrently("localhost", port);
        let concurrent = t0.elapsed();
        let ok = pages.iter().filter(|p| p.is_ok()).count();
        println!("{ok} pages concurrently in {concurrent:.3?}");

        let t0 = Instant::now();
        let pages = crawl_one_by_one("localhost", port);
        let sequential = t0.elapsed();
        let ok = pages.iter().filter(|p| p.is_ok()).count();
        println!("{ok} pages one by one in {sequential:.3?}");

        server.stop(Duration::from_secs(1));
        Ok(())
    })
}
