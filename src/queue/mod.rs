//! Queues between greenlets and threads (gevent's `gevent.queue`):
//! [`Queue`] (FIFO, bounded or not, joinable), [`LifoQueue`],
//! [`PriorityQueue`] and the rendezvous [`Channel`].
//!
//! ```
//! use std::sync::Arc;
//! use greenlet::queue::Queue;
//!
//! greenlet::run(|| {
//!     let q = Arc::new(Queue::bounded(2));
//!     let producer = {
//!         let q = q.clone();
//!         greenlet::spawn(move || {
//!             for i in 0..5 {
//!                 q.put(i).unwrap(); // waits while the queue is full
//!             }
//!             q.close(); // consumers stop once the queue is drained
//!         })
//!     };
//!     let got: Vec<i32> = q.iter().collect();
//!     assert_eq!(got, [0, 1, 2, 3, 4]);
//!     producer.join();
//! });
//! ```
//!
//! Every blocking method has `_nowait` and `_timeout` variants, and parks a
//! greenlet (blocks a plain thread). Waiting getters and putters are served
//! in FIFO order; a waiter killed or timed out leaves no item or free place
//! behind unclaimed (see the `inner` module for how).
//!
//! Closing a queue wakes every waiting getter, putter and peeker: puts fail
//! with [`PutError::Closed`] (giving the item back) and gets fail with
//! [`GetError::Closed`] once the items left are gone. Iterating a queue
//! yields items until it is closed and empty.

mod channel;
mod inner;

use std::fmt;
use std::time::Duration;

use crate::sync::waitlist::deadline_in;
use inner::{Fifo, Inner, Lifo, Priority};

pub use channel::Channel;

/// Why a put did not happen; the item is given back.
#[derive(Clone, PartialEq, Eq)]
pub enum PutError<T> {
    /// The queue is full (`put_nowait`), or no getter waits (a `Channel`'s
    /// `put_nowait`).
    Full(T),
    /// The timeout passed first.
    Timeout(T),
    /// The queue is closed.
    Closed(T),
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(v) | PutError::Timeout(v) | PutError::Closed(v) => v,
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Timeout(_) => f.write_str("Timeout(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PutError::Full(_) => "the queue is full",
            PutError::Timeout(_) => "timed out waiting to put",
            PutError::Closed(_) => "the queue is closed",
        })
    }
}

impl<T> std::error::Error for PutError<T> {}

/// Why a get (or peek) returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetError {
    /// Nothing to take now (`get_nowait`).
    Empty,
    /// The timeout passed first.
    Timeout,
    /// The queue is closed and empty.
    Closed,
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GetError::Empty => "the queue is empty",
            GetError::Timeout => "timed out waiting for an item",
            GetError::Closed => "the queue is closed",
        })
    }
}

impl std::error::Error for GetError {}

macro_rules! queue_type {
    (
        $(#[$doc:meta])*
        $name:ident, $store:ident, [$($bound:tt)*], $order:literal
    ) => {
        $(#[$doc])*
        pub struct $name<T: $($bound)*> {
            inner: Inner<T, $store<T>>,
        }

        impl<T: $($bound)*> Default for $name<T> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T: $($bound)*> $name<T> {
            /// An unbounded queue: `put` never waits.
            pub fn new() -> Self {
                $name { inner: Inner::new(None) }
            }

            /// A queue holding at most `capacity` items: `put` waits while
            /// it is full.
            ///
            /// # Panics
            /// If `capacity` is 0 (use a [`Channel`] for a rendezvous).
            pub fn bounded(capacity: usize) -> Self {
                $name { inner: Inner::new(Some(capacity)) }
            }

            /// Adds an item, waiting while the queue is full; fails only if
            /// the queue is closed.
            pub fn put(&self, item: T) -> Result<(), PutError<T>> {
                self.inner.put(item, None, true)
            }

            /// Adds an item if there is room now.
            pub fn put_nowait(&self, item: T) -> Result<(), PutError<T>> {
                self.inner.put(item, None, false)
            }

            /// Adds an item, waiting at most `timeout` for room.
            pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
                self.inner.put(item, deadline_in(timeout), true)
            }

            #[doc = concat!("Takes the ", $order, " item, waiting while the queue is empty;")]
            /// fails once the queue is closed and empty.
            pub fn get(&self) -> Result<T, GetError> {
                self.inner.get(None, true)
            }

            /// Takes an item if there is one now.
            pub fn get_nowait(&self) -> Result<T, GetError> {
                self.inner.get(None, false)
            }

            /// Takes an item, waiting at most `timeout`.
            pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
                self.inner.get(deadline_in(timeout), true)
            }

            #[doc = concat!("A copy of the ", $order, " item, without taking it, waiting")]
            /// while the queue is empty.
            pub fn peek(&self) -> Result<T, GetError>
            where
                T: Clone,
            {
                self.inner.peek(None, true)
            }

            /// [`peek`](Self::peek) without waiting.
            pub fn peek_nowait(&self) -> Result<T, GetError>
            where
                T: Clone,
            {
                self.inner.peek(None, false)
            }

            /// [`peek`](Self::peek), waiting at most `timeout`.
            pub fn peek_timeout(&self, timeout: Duration) -> Result<T, GetError>
            where
                T: Clone,
            {
                self.inner.peek(deadline_in(timeout), true)
            }

            /// Marks one item taken with `get` as processed (for
            /// [`join`](Self::join)).
            ///
            /// # Panics
            /// If called more times than items were put.
            pub fn task_done(&self) {
                self.inner.task_done()
            }

            /// Waits until every item put has been marked with
            /// [`task_done`](Self::task_done).
            pub fn join(&self) {
                self.inner.join(None);
            }

            /// [`join`](Self::join), waiting at most `timeout`; true if all
            /// items are done.
            pub fn join_timeout(&self, timeout: Duration) -> bool {
                self.inner.join(deadline_in(timeout))
            }

            /// How many items were put and not yet marked done.
            pub fn unfinished_tasks(&self) -> usize {
                self.inner.unfinished_tasks()
            }

            /// Closes the queue: puts fail from now on, every waiter wakes,
            /// and gets fail once the remaining items are taken.
            pub fn close(&self) {
                self.inner.close()
            }

            /// True once [`close`](Self::close) was called.
            pub fn is_closed(&self) -> bool {
                self.inner.is_closed()
            }

            /// How many items it holds.
            pub fn len(&self) -> usize {
                self.inner.len()
            }

            /// True if it holds no item.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// True if a put would wait.
            pub fn is_full(&self) -> bool {
                self.inner.is_full()
            }

            /// The bound, if any.
            pub fn capacity(&self) -> Option<usize> {
                self.inner.capacity()
            }

            /// How many greenlets or threads wait to get.
            pub fn getters(&self) -> usize {
                self.inner.getters()
            }

            /// How many wait to put.
            pub fn putters(&self) -> usize {
                self.inner.putters()
            }

            /// Iterates by `get`, until the queue is closed and empty.
            pub fn iter(&self) -> Iter<'_, T, Self> {
                Iter { queue: self, _t: std::marker::PhantomData }
            }
        }

        impl<T: $($bound)*> Getter<T> for $name<T> {
            fn get_item(&self) -> Result<T, GetError> {
                self.get()
            }
        }

        impl<'a, T: $($bound)*> IntoIterator for &'a $name<T> {
            type Item = T;
            type IntoIter = Iter<'a, T, $name<T>>;
            fn into_iter(self) -> Self::IntoIter {
                self.iter()
            }
        }

        impl<T: $($bound)*> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("len", &self.len())
                    .field("capacity", &self.capacity())
                    .field("closed", &self.is_closed())
                    .finish()
            }
        }
    };
}

queue_type!(
    /// A first-in, first-out queue (gevent's `Queue`, which is
    /// `JoinableQueue` too): bounded or unbounded, with
    /// [`task_done`](Self::task_done) and [`join`](Self::join).
    ///
    /// ```
    /// use greenlet::queue::{GetError, Queue};
    ///
    /// let q = Queue::new();
    /// q.put("a").unwrap();
    /// q.put("b").unwrap();
    /// assert_eq!(q.peek_nowait(), Ok("a"));
    /// assert_eq!(q.get(), Ok("a"));
    /// assert_eq!(q.get(), Ok("b"));
    /// assert_eq!(q.get_nowait(), Err(GetError::Empty));
    /// q.task_done();
    /// q.task_done();
    /// q.join(); // both items are done
    /// ```
    Queue, Fifo, [], "oldest"
);

queue_type!(
    /// A last-in, first-out queue (gevent's `LifoQueue`).
    ///
    /// ```
    /// let q = greenlet::queue::LifoQueue::new();
    /// for i in 0..3 {
    ///     q.put(i).unwrap();
    /// }
    /// assert_eq!(q.get(), Ok(2));
    /// ```
    LifoQueue, Lifo, [], "newest"
);

queue_type!(
    /// A queue that hands out its lowest item first (gevent's
    /// `PriorityQueue`; use `std::cmp::Reverse` for highest first).
    ///
    /// ```
    /// let q = greenlet::queue::PriorityQueue::new();
    /// for (prio, job) in [(3, "low"), (1, "urgent"), (2, "normal")] {
    ///     q.put((prio, job)).unwrap();
    /// }
    /// assert_eq!(q.get(), Ok((1, "urgent")));
    /// ```
    PriorityQueue, Priority, [Ord], "lowest"
);

/// Something that can be drained by `get` (the queues and [`Channel`]).
pub trait Getter<T> {
    /// One blocking get.
    fn get_item(&self) -> Result<T, GetError>;
}

/// The iterator of a queue: `get` until closed and empty.
pub struct Iter<'a, T, Q: ?Sized> {
    queue: &'a Q,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T, Q: Getter<T> + ?Sized> Iterator for Iter<'_, T, Q> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.queue.get_item().ok()
    }
}

impl<T, Q: ?Sized> fmt::Debug for Iter<'_, T, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Iter { .. }")
    }
}
