//! Shared test helpers.
#![allow(dead_code)]

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on its own thread and fails the test if it takes longer than
/// `limit` (a hang becomes a failure instead of stalling CI).
pub fn guard_for<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match t.join().unwrap() {
            Ok(v) => v,
            Err(p) => resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {limit:?}"),
    }
}

/// [`guard_for`] with a 60 s limit.
pub fn guard<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    guard_for(Duration::from_secs(60), f)
}

/// The text of a caught panic.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-text panic>".into()
    }
}

/// Counts drops, to check destructors ran.
pub struct DropFlag(pub std::rc::Rc<std::cell::Cell<u32>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A `Send` drop counter.
pub struct DropCount(pub std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
