//! The core seed programs, run as tests.

mod common;

#[path = "../examples/switch_pingpong.rs"]
mod switch_pingpong;

#[path = "../examples/spawn_joinall.rs"]
mod spawn_joinall;

#[path = "../examples/spinner.rs"]
mod spinner;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::guard;

#[test]
fn switch_pingpong_prints_in_order() {
    guard(|| {
        let lines = Rc::new(RefCell::new(Vec::new()));
        let l = lines.clone();
        switch_pingpong::pingpong(move |s| l.borrow_mut().push(s.to_string()));
        assert_eq!(
            *lines.borrow(),
            ["task1 start", "task2 start", "task1 end", "task2 end"]
        );
    });
}

#[test]
fn spawn_joinall_returns_the_values_and_the_sleeps_overlap() {
    guard(|| {
        let t0 = Instant::now();
        let values = spawn_joinall::spawn_joinall(Duration::from_secs(1));
        assert_eq!(values, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
        // Not a speed test: one after the other the sleeps take 10 s; run
        // together they must take far less, however slow the machine.
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    });
}

#[test]
fn spinner_draws_until_the_answer_is_in_then_clears_its_line() {
    guard(|| {
        let drawn = Arc::new(Mutex::new(Vec::<String>::new()));
        let d = drawn.clone();
        let answer = spinner::supervisor(
            Duration::from_millis(300),
            Duration::from_millis(10),
            Arc::new(move |s: &str| d.lock().unwrap().push(s.to_string())),
        );
        assert_eq!(answer, 42);
        let drawn = drawn.lock().unwrap();
        // The spinner draws its first frame as soon as it starts, which is
        // while the slow function sleeps; the kill's unwinding clears the
        // line last, before `supervisor` returns.
        let (clear, frames) = drawn.split_last().expect("the spinner drew");
        assert_eq!(clear, &format!("\r{}\r", " ".repeat("thinking!".len() + 2)));
        assert!(!frames.is_empty(), "no frame was drawn");
        for (i, f) in frames.iter().enumerate() {
            let want = spinner::FRAMES[i % spinner::FRAMES.len()];
            assert_eq!(f, &format!("\r{want} thinking!"), "frame {i}");
        }
    });
}
