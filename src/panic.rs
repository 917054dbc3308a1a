//! Panic reporting: a panic inside a greenlet is printed once, naming the
//! greenlet (the default hook would name only the worker thread).
//!
//! The hook is installed once, wrapping whatever hook was there: panics
//! outside greenlets go to it unchanged. Kills and timeouts unwind with
//! `resume_unwind`, which bypasses hooks, so they print nothing.

use std::sync::Once;

use crate::greenlet::switch::current_ptr;

pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let cur = current_ptr();
            if cur.is_null() {
                return previous(info);
            }
            // SAFETY: the running greenlet is alive while it runs.
            let name = unsafe { (*cur).display_name() };
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                s.to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "Box<dyn Any>".into()
            };
            let at = info
                .location()
                .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            let backtrace = std::backtrace::Backtrace::capture();
            let trace = match backtrace.status() {
                std::backtrace::BacktraceStatus::Captured => format!("\n{backtrace}"),
                _ => String::new(),
            };
            eprintln!("greenlet '{name}' panicked{at}:\n{msg}{trace}");
        }));
    });
}
