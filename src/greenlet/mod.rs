//! The greenlet core: stackful coroutines with symmetric `switch`, `throw`
//! and parents (python greenlet's contract), on a stack switch of our own.
//!
//! - `context`: the stack switch (registers and stack pointer).
//! - `header`: what every greenlet is (one allocation, counted by hand).
//! - `switch`: the running greenlet, the thread's root, and `switch_from`.
//! - `raw`: the public `RawGreenlet` API.

pub(crate) mod context;
pub(crate) mod header;
mod raw;
pub(crate) mod switch;

pub use raw::{GreenletExit, RawBuilder, RawGreenlet, RemoteGreenlet, SwitchError};
