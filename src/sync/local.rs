//! Greenlet-local storage (gevent's `local`): [`greenlet_local!`](crate::greenlet_local) and
//! [`LocalKey`].
//!
//! # Design
//!
//! Each greenlet's header has a [`Locals`] slot: a small map from a key's
//! address to a boxed value, made on first use. Only the greenlet itself
//! touches it (it never changes threads once started), so it needs no lock.
//! `with` hands out `&T` into the value's own box, which stays put however
//! the map grows, and is freed only when the greenlet ends: the core calls
//! [`drop_locals`] from the end of a spawned or raw greenlet, before its
//! result is published, so a `join` sees the locals already dropped.
//!
//! Code not running in a greenlet (a plain thread, or a thread's root) uses
//! a per-thread map instead, dropped when the thread exits.
//!
//! A greenlet that can never finish (its thread went away) has its locals
//! leaked rather than dropped on a foreign thread, as its stack is.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::greenlet::header::Header;
use crate::greenlet::switch::current_ptr;

type Map = Vec<(usize, Box<dyn Any>)>;

/// The greenlet-local values of one greenlet (a field of its header).
pub(crate) struct Locals(UnsafeCell<Option<Box<Map>>>);

impl Locals {
    pub(crate) const fn new() -> Self {
        Locals(UnsafeCell::new(None))
    }

    /// The value for `key`, made with `init` if missing.
    ///
    /// # Safety
    /// On the owning thread (of the greenlet, or the thread-local), and the
    /// map is not being dropped by [`Locals::clear`] further up this stack
    /// for the same key.
    unsafe fn get_or_init<T: 'static>(&self, key: usize, init: fn() -> T) -> *const T {
        // SAFETY: owner thread (caller's contract); no reference into the
        // map itself outlives this statement.
        if let Some(p) = find::<T>(unsafe { &*self.0.get() }, key) {
            return p;
        }
        // No borrow of the map is held while `init` runs: it may use other
        // keys (or panic).
        let value: Box<dyn Any> = Box::new(init());
        // SAFETY: as above; `init` may have added entries, so look again.
        if let Some(p) = find::<T>(unsafe { &*self.0.get() }, key) {
            return p;
        }
        let p = value.downcast_ref::<T>().expect("just made") as *const T;
        // SAFETY: as above; the only reference to the map now.
        let map = unsafe { (*self.0.get()).get_or_insert_with(Default::default) };
        map.push((key, value));
        p
    }

    /// Drops every value (values made while dropping are dropped too).
    ///
    /// # Safety
    /// On the owning thread, with no `&T` from `get_or_init` alive.
    #[inline]
    unsafe fn clear(&self) {
        // SAFETY: per the caller.
        if unsafe { (*self.0.get()).is_none() } {
            return;
        }
        // SAFETY: per the caller.
        unsafe { self.clear_slow() }
    }

    /// # Safety
    /// As for `clear`.
    #[cold]
    #[inline(never)]
    unsafe fn clear_slow(&self) {
        for _ in 0..16 {
            // SAFETY: per the caller; the map is moved out before any value
            // runs its destructor, so a destructor may use the slot again.
            let Some(map) = (unsafe { (*self.0.get()).take() }) else {
                return;
            };
            // A destructor that panics must not unwind into the hub.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(map)));
        }
    }
}

impl Drop for Locals {
    fn drop(&mut self) {
        // Left over only by a greenlet that never finished: we may be on a
        // foreign thread, where its (maybe `!Send`) values must not drop.
        if let Some(map) = self.0.get_mut().take() {
            std::mem::forget(map);
        }
    }
}

fn find<T: 'static>(map: &Option<Box<Map>>, key: usize) -> Option<*const T> {
    map.as_ref()?
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.downcast_ref::<T>().expect("one type per key") as *const T)
}

/// The locals of the running plain thread; dropped at thread exit.
struct ThreadLocals(Locals);

impl Drop for ThreadLocals {
    fn drop(&mut self) {
        // SAFETY: this thread's own map, and the thread is exiting, so no
        // `with` closure is running on it.
        unsafe { self.0.clear() }
    }
}

thread_local! {
    static THREAD: ThreadLocals = const { ThreadLocals(Locals::new()) };
}

/// Drops the locals of a greenlet that is ending.
///
/// # Safety
/// Called by the greenlet `h` itself, on its own stack (so it has its
/// record), after its function (and every `with` closure in it) returned or
/// unwound.
pub(crate) unsafe fn drop_locals(h: &Header) {
    // SAFETY: per the caller: on its thread, with no value borrowed.
    unsafe { h.running().locals.clear() }
}

/// A key to greenlet-local storage, made by [`greenlet_local!`](crate::greenlet_local): each
/// greenlet that uses it gets its own value, made on first use by the
/// initialiser and dropped when the greenlet ends. Outside any greenlet, each
/// thread gets its own value.
///
/// The value is shared (`&T`), as with `std::thread_local!`: use a `Cell` or
/// `RefCell` to change it. It need not be `Send`: a greenlet never changes
/// threads.
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> Self {
        LocalKey { init }
    }

    /// Runs `f` with the current greenlet's value (made now if it has none).
    ///
    /// ```
    /// use std::cell::Cell;
    ///
    /// greenlet::greenlet_local! {
    ///     static HITS: Cell<u32> = Cell::new(0);
    /// }
    ///
    /// greenlet::run(|| {
    ///     HITS.with(|h| h.set(h.get() + 1));
    ///     let other = greenlet::spawn(|| HITS.with(|h| h.get()));
    ///     assert_eq!(other.get(), Ok(&0), "another greenlet has its own");
    ///     assert_eq!(HITS.with(|h| h.get()), 1);
    /// });
    /// ```
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let key = self as *const Self as usize;
        let g = current_ptr();
        let p = if g.is_null() {
            THREAD.with(|t| {
                // SAFETY: this thread's own map; values are only dropped at
                // thread exit, after every `with` on it returned.
                unsafe { t.0.get_or_init(key, self.init) }
            })
        } else {
            // SAFETY: `g` is the running greenlet, so we are on its thread
            // and its locals are dropped only after its function returns,
            // which cannot happen while this `with` runs on its stack.
            // A running greenlet has its record.
            unsafe { (*g).running().locals.get_or_init(key, self.init) }
        };
        // SAFETY: the value lives in its own box until the owner ends (see
        // above), which outlasts this call.
        f(unsafe { &*p })
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalKey { .. }")
    }
}

/// Declares greenlet-local statics (gevent's `local`), like
/// `std::thread_local!` but one value per greenlet; see [`LocalKey`].
///
/// ```
/// use std::cell::RefCell;
///
/// greenlet::greenlet_local! {
///     /// The request this greenlet serves.
///     static REQUEST: RefCell<String> = RefCell::new(String::new());
/// }
///
/// greenlet::run(|| {
///     let gs: Vec<_> = (0..3)
///         .map(|i| greenlet::spawn(move || {
///             REQUEST.with(|r| *r.borrow_mut() = format!("req-{i}"));
///             greenlet::sleep(std::time::Duration::from_millis(1));
///             REQUEST.with(|r| r.borrow().clone())
///         }))
///         .collect();
///     let seen: Vec<_> = gs.iter().map(|g| g.get().unwrap().clone()).collect();
///     assert_eq!(seen, ["req-0", "req-1", "req-2"]);
/// });
/// ```
#[macro_export]
macro_rules! greenlet_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])*
        $vis static $name: $crate::sync::LocalKey<$t> = $crate::sync::LocalKey::new({
            fn __greenlet_local_init() -> $t {
                $init
            }
            __greenlet_local_init
        });
        $crate::greenlet_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $crate::greenlet_local!($(#[$attr])* $vis static $name: $t = $init;);
    };
}
