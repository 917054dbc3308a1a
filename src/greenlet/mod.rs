//! The greenlet core: stackful coroutines with symmetric `switch`, `throw`
//! and parents (python greenlet's contract), built on corosensei.
//!
//! - `header`: what every greenlet is (one allocation, counted by hand).
//! - `switch`: the thread's root and the trampoline that drives switches.
//! - `raw`: the public `RawGreenlet` API.

pub(crate) mod header;
mod raw;
pub(crate) mod switch;

pub use raw::{GreenletExit, RawBuilder, RawGreenlet, RemoteGreenlet, SwitchError};
