//! The flag downloader example's core logic, run as a test.

mod common;

#[path = "../examples/downloads.rs"]
mod downloads;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::guard;
use downloads::{CODES, Counts, MISSING, Status};
use indicatif::ProgressBar;

#[test]
fn downloads_every_flag_with_the_missing_ones_not_found() {
    guard(|| {
        greenlet::run(|| {
            let (server, peak) = downloads::flag_server(Duration::from_millis(2)).unwrap();
            server.start().unwrap();
            let addr = server.local_addr().unwrap();
            let dir = downloads::fresh_dir().unwrap();
            let bar = ProgressBar::hidden();
            let counts = downloads::download_many(addr, &dir, 5, &bar);
            let expected = Counts {
                ok: 18,
                not_found: 2,
                errors: 0,
            };
            assert_eq!(counts, expected);
            assert_eq!(bar.position(), 20);
            // The semaphore kept at most five requests in flight.
            let peak = peak.load(Ordering::Relaxed);
            assert!((1..=5).contains(&peak), "peak {peak}");
            // Every found flag is saved with the served bytes; no other file.
            let mut saved = 0;
            for cc in CODES.iter().map(|c| c.to_lowercase()) {
                let file = dir.join(format!("{cc}.gif"));
                if MISSING.iter().any(|m| m.eq_ignore_ascii_case(&cc)) {
                    assert!(!file.exists(), "{cc} was saved");
                } else {
                    let bytes = std::fs::read(&file).unwrap();
                    assert_eq!(bytes, downloads::flag_bytes(&cc), "{cc}");
                    assert!(bytes.starts_with(b"GIF89a") && bytes.len() > 200);
                    saved += 1;
                }
            }
            assert_eq!(std::fs::read_dir(&dir).unwrap().count(), saved);
            std::fs::remove_dir_all(&dir).unwrap();
            server.stop(Duration::from_secs(5));
        });
    });
}

#[test]
fn one_at_a_time_gives_the_same_counts() {
    guard(|| {
        greenlet::run(|| {
            let (server, peak) = downloads::flag_server(Duration::ZERO).unwrap();
            server.start().unwrap();
            let addr = server.local_addr().unwrap();
            let dir = downloads::fresh_dir().unwrap();
            let counts = downloads::download_many(addr, &dir, 1, &ProgressBar::hidden());
            assert_eq!(
                counts,
                Counts {
                    ok: 18,
                    not_found: 2,
                    errors: 0
                }
            );
            assert_eq!(peak.load(Ordering::Relaxed), 1);
            std::fs::remove_dir_all(&dir).unwrap();
            server.stop(Duration::from_secs(5));
        });
    });
}

#[test]
fn a_404_is_not_found_and_a_dead_server_is_an_error_naming_the_code() {
    guard(|| {
        greenlet::run(|| {
            let (server, _) = downloads::flag_server(Duration::ZERO).unwrap();
            server.start().unwrap();
            let addr = server.local_addr().unwrap();
            let dir = downloads::fresh_dir().unwrap();
            let (code, _) = downloads::http_get(addr, "/xx/yy.gif").unwrap();
            assert_eq!(code, 404);
            let missing = downloads::download_one(addr, MISSING[0], &dir).unwrap();
            assert_eq!(missing, Status::NotFound);
            assert_eq!(
                downloads::download_one(addr, "BR", &dir).unwrap(),
                Status::Ok
            );
            server.stop(Duration::from_secs(5));

            // Nobody listens there now: each download fails with its code.
            let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = dead.local_addr().unwrap();
            drop(dead);
            let err = downloads::download_one(addr, "JP", &dir).unwrap_err();
            assert!(err.to_string().starts_with("JP: "), "{err}");
            let counts = downloads::download_many(addr, &dir, 5, &ProgressBar::hidden());
            assert_eq!(
                counts,
                Counts {
                    ok: 0,
                    not_found: 0,
                    errors: 20
                }
            );
            std::fs::remove_dir_all(&dir).unwrap();
        });
    });
}
