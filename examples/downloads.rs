//! The seed's flag downloader: fetch a small GIF for each of 20 countries
//! with plain, blocking-looking HTTP/1.0 code in greenlets, at most
//! CONCURRENCY (default 5, up to 1000) at a time through a `Semaphore`,
//! handle each as it completes (`iwait`), and count how they ended.
//!
//! ```text
//! cargo run --release --example downloads -- [-v] [CONCURRENCY]
//! ```
//!
//! A progress bar is drawn; with `-v`, each code as it arrives. No outside
//! service: it starts an HTTP server on loopback (green sockets too) that
//! serves `/{cc}/{cc}.gif` after a short pause, 404 for [`MISSING`]. The
//! files go to a fresh directory in the temp dir, removed at the end.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use greenlet::net::TcpStream;
use greenlet::server::StreamServer;
use greenlet::sync::Semaphore;
use indicatif::{ProgressBar, ProgressStyle};

/// The 20 most populous countries, as in the seed.
pub const CODES: [&str; 20] = [
    "CN", "IN", "US", "ID", "BR", "PK", "NG", "BD", "RU", "JP", "MX", "PH", "VN", "ET", "EG", "DE",
    "IR", "TR", "CD", "FR",
];
/// The codes the server has no flag for (404).
pub const MISSING: [&str; 2] = ["ET", "CD"];
/// The most downloads in flight, whatever is asked.
pub const MAX_CONCURRENCY: usize = 1000;

/// The fake image served for `cc` (lower case): a GIF header and 300 bytes.
pub fn flag_bytes(cc: &str) -> Vec<u8> {
    let body = (0..300).map(|i| cc.as_bytes()[i % cc.len()].wrapping_mul(i as u8));
    b"GIF89a".iter().copied().chain(body).collect()
}

/// A tiny HTTP/1.0 flag server on `127.0.0.1` (any port). Each request
/// waits `delay` (one to three times, by code) before the answer; the
/// counter returned holds the most requests it ever had in flight at once.
pub fn flag_server(delay: Duration) -> io::Result<(StreamServer, Arc<AtomicUsize>)> {
    let (busy, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let most = peak.clone();
    let server = StreamServer::new("127.0.0.1:0", move |conn: TcpStream, _| {
        let mut request = BufReader::new(&conn);
        let (mut first, mut header) = (String::new(), String::new());
        let _ = request.read_line(&mut first); // "GET /cn/cn.gif HTTP/1.0"
        while request.read_line(&mut header).is_ok_and(|n| n > 2) {
            header.clear(); // skip the headers, up to the empty line
        }
        peak.fetch_max(busy.fetch_add(1, Relaxed) + 1, Relaxed);
        let path = first.split_whitespace().nth(1).unwrap_or("");
        let cc = path.split('/').nth(1).unwrap_or(""); // lower case
        greenlet::sleep(delay * (1 + u32::from(cc.bytes().next().unwrap_or(0) % 3)));
        let listed = |list: &[&str]| list.iter().any(|c| c.eq_ignore_ascii_case(cc));
        let found = path == format!("/{cc}/{cc}.gif") && listed(&CODES) && !listed(&MISSING);
        let (status, body) = if found {
            ("200 OK", flag_bytes(cc))
        } else {
            ("404 Not Found", b"not found\n".to_vec())
        };
        let len = body.len();
        let head = format!("HTTP/1.0 {status}\r\nContent-Length: {len}\r\n\r\n");
        let _ = (&conn).write_all(&[head.as_bytes(), &body].concat());
        busy.fetch_sub(1, Relaxed);
    })?;
    Ok((server, most))
}

/// GETs `path` over HTTP/1.0, reading until the server closes; returns the
/// status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
    let mut conn = TcpStream::connect(addr)?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response)?;
    let bad = |what| io::Error::new(io::ErrorKind::InvalidData, what);
    let end = response.windows(4).position(|w| w == b"\r\n\r\n");
    let end = end.ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&response[..end]);
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    let code = code.ok_or_else(|| bad("no status code"))?;
    Ok((code, response[end + 4..].to_vec()))
}

/// How one download ended, short of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,       // saved
    NotFound, // 404
}

/// Downloads the flag of `cc` into `dir` as `{cc}.gif` (lower case); an
/// error says which country it was for.
pub fn download_one(addr: SocketAddr, cc: &str, dir: &Path) -> io::Result<Status> {
    let lc = cc.to_lowercase();
    let with_cc = |e: io::Error| io::Error::new(e.kind(), format!("{cc}: {e}"));
    match http_get(addr, &format!("/{lc}/{lc}.gif")).map_err(with_cc)? {
        // A few hundred bytes to a local file: quick enough to write inline.
        (200, body) => std::fs::write(dir.join(format!("{lc}.gif")), body).map_err(with_cc)?,
        (404, _) => return Ok(Status::NotFound),
        (code, _) => return Err(with_cc(io::Error::other(format!("HTTP {code}")))),
    }
    Ok(Status::Ok)
}

/// How many downloads ended each way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub ok: usize,
    pub not_found: usize,
    pub errors: usize,
}

/// Downloads every code, one greenlet each but at most `limit` at a time,
/// and handles each result as it completes: `bar` counts them, or if it is
/// hidden (`-v`, or no terminal) each code is printed as it arrives.
pub fn download_many(addr: SocketAddr, dir: &Path, limit: usize, bar: &ProgressBar) -> Counts {
    let sem = Arc::new(Semaphore::new(limit.clamp(1, MAX_CONCURRENCY)));
    let jobs: Vec<_> = CODES
        .iter()
        .map(|&cc| {
            let (sem, dir) = (sem.clone(), dir.to_path_buf());
            greenlet::spawn(move || {
                let _permit = sem.access();
                (cc, download_one(addr, cc, &dir))
            })
        })
        .collect();
    let mut counts = Counts::default();
    for job in greenlet::iwait(&jobs) {
        let (line, count) = match job.get() {
            Ok((cc, Ok(Status::Ok))) => (format!("{cc} ok"), &mut counts.ok),
            Ok((cc, Ok(Status::NotFound))) => (format!("{cc} not found"), &mut counts.not_found),
            Ok((_, Err(e))) => (format!("error: {e}"), &mut counts.errors),
            Err(e) => (format!("error: {e}"), &mut counts.errors),
        };
        *count += 1;
        if bar.is_hidden() {
            println!("{line}");
        } else if line.starts_with("error") {
            bar.println(line); // above the bar
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    counts
}

/// A new, empty directory under the system temp dir.
pub fn fresh_dir() -> io::Result<PathBuf> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Relaxed);
    let dir = std::env::temp_dir().join(format!("greenlet-flags-{}-{n}", std::process::id()));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let concurrency = match args.iter().find(|a| *a != "-v").map(|a| a.parse::<usize>()) {
        None => 5,
        Some(Ok(n)) if n > 0 => n.min(MAX_CONCURRENCY),
        _ => {
            eprintln!("usage: downloads [-v] [CONCURRENCY], CONCURRENCY from 1 (up to 1000)");
            std::process::exit(2);
        }
    };
    greenlet::run(move || {
        let (server, _) = flag_server(Duration::from_millis(50))?;
        server.start()?;
        let dir = fresh_dir()?;
        let (n, to) = (CODES.len(), dir.display());
        println!("Downloading {n} flags, {concurrency} at a time, into {to}");
        let bar = if verbose {
            ProgressBar::hidden()
        } else {
            let style = ProgressStyle::with_template("{bar:40} {pos}/{len} [{elapsed}, {per_sec}]");
            ProgressBar::new(n as u64).with_style(style.expect("a valid template"))
        };
        let t0 = Instant::now();
        let c = download_many(server.local_addr()?, &dir, concurrency, &bar);
        let (secs, ok, nf, err) = (t0.elapsed().as_secs_f64(), c.ok, c.not_found, c.errors);
        println!("{ok} flags downloaded in {secs:.2} s ({nf} not found, {err} errors)");
        server.stop(Duration::from_secs(1));
        std::fs::remove_dir_all(&dir)
    })
}
