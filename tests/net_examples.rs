//! The network examples' core logic, run as tests.

mod common;

#[path = "../examples/echo_server.rs"]
mod echo_server;

#[path = "../examples/crawl.rs"]
mod crawl;

#[path = "../examples/port_forwarder.rs"]
mod port_forwarder;

use std::time::Duration;

use common::guard;

#[test]
fn echo_server_replies_upper_cased_with_the_suffix() {
    assert_eq!(echo_server::reply("hello"), "HELLO_SB");
    guard(|| {
        greenlet::run(|| {
            let server = echo_server::server("127.0.0.1:0").unwrap();
            server.start().unwrap();
            let addr = server.local_addr().unwrap().to_string();
            let mut lines = vec!["quit", "second line", "hello"];
            let mut printed = Vec::new();
            echo_server::client(
                &addr,
                || lines.pop().map(String::from),
                |r| printed.push(r.to_string()),
            )
            .unwrap();
            assert_eq!(
                printed,
                [echo_server::GREETING, "HELLO_SB", "SECOND LINE_SB"]
            );
            // Several clients at once, each in its own greenlet.
            let clients: Vec<_> = (0..10)
                .map(|i| {
                    let addr = addr.clone();
                    greenlet::spawn(move || {
                        let mut once = Some(format!("client {i}"));
                        let mut out = Vec::new();
                        echo_server::client(&addr, || once.take(), |r| out.push(r.to_string()))
                            .unwrap();
                        out.pop().unwrap()
                    })
                })
                .collect();
            for (i, c) in clients.iter().enumerate() {
                assert_eq!(c.get().unwrap(), &format!("CLIENT {i}_SB"));
            }
            server.stop(Duration::from_secs(5));
        });
    });
}

#[test]
fn crawl_fetches_every_page_both_ways() {
    guard(|| {
        greenlet::run(|| {
            let server = crawl::http_server(Duration::from_millis(5)).unwrap();
            server.start().unwrap();
            let port = server.local_addr().unwrap().port();
            let pages = crawl::crawl_concurrently("localhost", port);
            assert_eq!(pages.len(), 10);
            for (path, page) in crawl::PATHS.iter().zip(&pages) {
                let page = page.as_ref().unwrap();
                assert_eq!(crawl::status(page), "HTTP/1.0 200 OK");
                assert!(page.ends_with(&format!("<html>page {path}</html>\n")));
            }
            let again = crawl::crawl_one_by_one("127.0.0.1", port);
            assert!(again.iter().all(|p| p.is_ok()));
            let missing = crawl::fetch("127.0.0.1", port, "/nope").unwrap();
            assert_eq!(crawl::status(&missing), "HTTP/1.0 404 Not Found");
            server.stop(Duration::from_secs(5));
        });
    });
}

#[test]
fn port_forwarder_relays_both_ways() {
    guard(|| {
        greenlet::run(|| {
            let backend = port_forwarder::upper_backend().unwrap();
            backend.start().unwrap();
            let target = backend.local_addr().unwrap().to_string();
            let front = port_forwarder::forwarder("127.0.0.1:0", &target).unwrap();
            front.start().unwrap();
            let addr = front.local_addr().unwrap();
            let clients: Vec<_> = (0..20)
                .map(|i| greenlet::spawn(move || port_forwarder::ask(addr, &format!("msg {i}"))))
                .collect();
            for (i, c) in clients.iter().enumerate() {
                assert_eq!(c.get().unwrap().as_ref().unwrap(), &format!("MSG {i}"));
            }
            // A large message crosses in both directions at once.
            let big = "x".repeat(1 << 20);
            assert_eq!(port_forwarder::ask(addr, &big).unwrap(), big.to_uppercase());
            front.stop(Duration::from_secs(5));
            backend.stop(Duration::from_secs(5));
        });
    });
}

#[test]
fn port_forwarder_to_a_closed_port_drops_the_client() {
    guard(|| {
        greenlet::run(|| {
            let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let target = dead.local_addr().unwrap().to_string();
            drop(dead);
            let front = port_forwarder::forwarder("127.0.0.1:0", &target).unwrap();
            front.start().unwrap();
            let answer = port_forwarder::ask(front.local_addr().unwrap(), "anyone?");
            assert!(matches!(answer.as_deref(), Ok("") | Err(_)));
            front.stop(Duration::from_secs(5));
        });
    });
}
