//! `Channel<T>`: a rendezvous, where `put` waits until a `get` takes the item.
//!
//! A waiting putter's node holds its item; a getter takes the item out of the
//! first putter's node, under the lock, and wakes it: the put is done. A
//! waiting getter's node is empty; a putter that finds one drops its item
//! into the node and returns. If that getter then leaves without taking it
//! (killed, timed out), the item goes to the next waiting getter, or else to
//! a small `handed` buffer the next get drains first: the putter was told its
//! item was taken, so it must not be lost.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::{GetError, Getter, Iter, PutError};
use crate::loom::{Mutex, Waiter, lock};
use crate::sync::waitlist::{Status, WaitList, Wakeups, deadline_in, wait};

struct State<T> {
    closed: bool,
    /// Items whose putters were released but whose getter left.
    handed: VecDeque<T>,
    /// Each waiting getter's node receives its item.
    getters: WaitList<Option<T>>,
    /// Each waiting putter's node holds its item until a getter takes it.
    putters: WaitList<Option<T>>,
}

impl<T> State<T> {
    /// Gives an item to the first waiting getter, or to the buffer.
    fn hand_on(&mut self, v: T) -> Wakeups {
        let mut slot = Some(v);
        match self.getters.notify_one_with(|g| *g = slot.take()) {
            Some(((), u)) => Wakeups::one(Some(u)),
            None => {
                self.handed.push_back(slot.take().expect("not handed"));
                Wakeups::new()
            }
        }
    }
}

/// A rendezvous channel (gevent's `Channel`): `put` waits until a getter has
/// taken the item, so producer and consumer meet.
///
/// ```
/// use std::sync::Arc;
/// use greenlet::queue::Channel;
///
/// greenlet::run(|| {
///     let ch = Arc::new(Channel::new());
///     let c = ch.clone();
///     let consumer = greenlet::spawn(move || c.iter().sum::<i32>());
///     for i in 1..=4 {
///         ch.put(i).unwrap(); // returns once the consumer took it
///     }
///     ch.close();
///     assert_eq!(consumer.get(), Ok(&10));
/// });
/// ```
pub struct Channel<T> {
    state: Mutex<State<T>>,
}

impl<T> Default for Channel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Channel<T> {
    /// A channel nobody waits on.
    pub fn new() -> Self {
        Channel {
            state: Mutex::new(State {
                closed: false,
                handed: VecDeque::new(),
                getters: WaitList::new(),
                putters: WaitList::new(),
            }),
        }
    }

    fn put_until(&self, v: T, deadline: Option<Instant>, block: bool) -> Result<(), PutError<T>> {
        let key = {
            let mut s = lock(&self.state);
            if s.closed {
                return Err(PutError::Closed(v));
            }
            if !s.getters.is_empty() {
                let wake = s.hand_on(v);
                drop(s);
                wake.wake();
                return Ok(());
            }
            if !block {
                return Err(PutError::Full(v));
            }
            s.putters.push(Waiter::current(), Some(v))
        };
        let mut back = None;
        let taken = wait(
            &self.state,
            key,
            deadline,
            |s| &mut s.putters,
            // Still holding the item once notified: the channel was closed.
            |_, item| item,
            |_, _, item| {
                // Leaving before a getter took it: the item is ours again.
                back = item;
                Wakeups::new()
            },
        );
        match (taken, back) {
            (Some(None), _) => Ok(()),
            (Some(Some(v)), _) => Err(PutError::Closed(v)),
            (None, Some(v)) => Err(PutError::Timeout(v)),
            (None, None) => unreachable!("a timed-out putter keeps its item"),
        }
    }

    fn get_until(&self, deadline: Option<Instant>, block: bool) -> Result<T, GetError> {
        let key = {
            let mut s = lock(&self.state);
            if let Some(v) = s.handed.pop_front() {
                return Ok(v);
            }
            if let Some((v, u)) = s.putters.notify_one_with(|p| p.take()) {
                drop(s);
                u.unpark();
                return Ok(v.expect("a waiting putter holds its item"));
            }
            if s.closed {
                return Err(GetError::Closed);
            }
            if !block {
                return Err(GetError::Empty);
            }
            s.getters.push(Waiter::current(), None)
        };
        let got = wait(
            &self.state,
            key,
            deadline,
            |s| &mut s.getters,
            |_, item| item,
            |s, status, item| match (status, item) {
                // Handed an item we will not take: pass it on.
                (Status::Notified, Some(v)) => s.hand_on(v),
                _ => Wakeups::new(),
            },
        );
        match got {
            Some(Some(v)) => Ok(v),
            Some(None) => Err(GetError::Closed),
            None => Err(GetError::Timeout),
        }
    }

    /// Gives `item` to a getter, waiting until one takes it; fails only if
    /// the channel is closed first.
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_until(item, None, true)
    }

    /// Gives `item` to a getter that is waiting now, else fails with `Full`.
    pub fn put_nowait(&self, item: T) -> Result<(), PutError<T>> {
        self.put_until(item, None, false)
    }

    /// [`put`](Self::put), waiting at most `timeout` for a getter.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_until(item, deadline_in(timeout), true)
    }

    /// Takes an item from a putter, waiting for one; fails once the channel
    /// is closed (and no item is left in flight).
    pub fn get(&self) -> Result<T, GetError> {
        self.get_until(None, true)
    }

    /// Takes an item from a putter waiting now.
    pub fn get_nowait(&self) -> Result<T, GetError> {
        self.get_until(None, false)
    }

    /// [`get`](Self::get), waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_until(deadline_in(timeout), true)
    }

    /// Closes the channel: waiting putters get their item back in an error,
    /// waiting getters fail, and so do later calls.
    pub fn close(&self) {
        let wake = {
            let mut s = lock(&self.state);
            s.closed = true;
            let mut wake = s.getters.notify_all();
            wake.extend(s.putters.notify_all());
            wake
        };
        wake.wake();
    }

    /// True once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// How many wait to get.
    pub fn getters(&self) -> usize {
        lock(&self.state).getters.len()
    }

    /// How many wait to put.
    pub fn putters(&self) -> usize {
        lock(&self.state).putters.len()
    }

    /// Iterates by `get`, until the channel is closed.
    pub fn iter(&self) -> Iter<'_, T, Self> {
        Iter {
            queue: self,
            _t: std::marker::PhantomData,
        }
    }
}

impl<T> Getter<T> for Channel<T> {
    fn get_item(&self) -> Result<T, GetError> {
        self.get()
    }
}

impl<'a, T> IntoIterator for &'a Channel<T> {
    type Item = T;
    type IntoIter = Iter<'a, T, Channel<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("getters", &self.getters())
            .field("putters", &self.putters())
            .field("closed", &self.is_closed())
            .finish()
    }
}
