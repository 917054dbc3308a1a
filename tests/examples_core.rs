//! The core seed programs, run as tests.

mod common;

#[path = "../examples/switch_pingpong.rs"]
mod switch_pingpong;

#[path = "../examples/spawn_joinall.rs"]
mod spawn_joinall;

use std::cell::RefCell;
use std::rc::Rc;
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
