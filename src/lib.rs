//! gevent for Rust: stackful green threads that you can switch between
//! explicitly, run by a hub on every core.
//!
//! ```
//! use std::time::Duration;
//!
//! let values = greenlet::run(|| {
//!     let gs: Vec<_> = (0..10)
//!         .map(|i| greenlet::spawn(move || {
//!             greenlet::sleep(Duration::from_millis(10)); // the ten sleeps overlap
//!             i * 2
//!         }))
//!         .collect();
//!     greenlet::joinall(&gs);
//!     gs.iter().map(|g| *g.get().unwrap()).collect::<Vec<_>>()
//! });
//! assert_eq!(values, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
//! ```
//!
//! Two levels, one mechanism:
//!
//! - [`RawGreenlet`] is python's `greenlet`: `switch` between greenlets by
//!   hand, values passed both ways, `throw`, parents.
//! - The gevent level: [`run`] starts a runtime with a hub per worker thread;
//!   [`spawn`](spawn()) schedules greenlets that park in the hub when they
//!   [`sleep`], [`join`](Greenlet::join) or wait, with [`joinall`],
//!   [`iwait`], [`killall`] and [`Timeout`].
//!
//! And around them: green sockets ([`net`], [`server::StreamServer`]), a
//! thread pool for blocking work ([`threadpool::spawn_blocking`]), locks,
//! events and the rest of `gevent.lock` / `gevent.event` ([`sync`]), queues
//! ([`queue`]), pools ([`pool`]) and greenlet-local storage
//! ([`greenlet_local!`](crate::greenlet_local)).
//!
//! A greenlet that has started never changes threads, so thread-locals stay
//! valid across switches. Greenlets must not block their thread in plain
//! system calls (`std::thread::sleep`, `std::net`): that stalls every
//! greenlet of its worker.
//!
//! Kills and timeouts unwind the greenlet's stack like a panic, so the crate
//! needs `panic = "unwind"` (the default).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("greenlet supports Linux on x86_64 only");

mod greenlet;
mod hub;
mod io;
mod loom;
pub mod net;
mod panic;
pub mod pool;
pub mod queue;
mod runtime;
pub mod server;
mod spawn;
mod stack;
pub mod sync;
pub mod threadpool;
mod time;
mod valgrind;
mod wait;

pub use crate::greenlet::{GreenletExit, RawBuilder, RawGreenlet, RemoteGreenlet, SwitchError};
pub use crate::hub::park::yield_now;
pub use crate::runtime::{Builder, Runtime, run};
pub use crate::spawn::{
    Greenlet, GreenletBuilder, GreenletError, SpawnError, spawn, spawn_later, spawn_local,
    try_spawn,
};
pub use crate::stack::{DEFAULT_STACK_SIZE, MIN_STACK_SIZE, StackError};
pub use crate::time::{Elapsed, Timeout, sleep, with_timeout};
pub use crate::wait::{
    Iwait, JoinAll, JoinAllError, iwait, iwait_timeout, joinall, killall, killall_timeout,
};

/// loom models only: the pin protocol by which other threads reach a
/// greenlet's worker (`tests/loom_pin.rs`).
#[cfg(loom)]
#[doc(hidden)]
pub mod __loom_pin {
    pub use crate::hub::pin::{Counted, WorkerPin};
}
