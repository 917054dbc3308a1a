//! The machinery shared by `Queue`, `LifoQueue` and `PriorityQueue`: one
//! lock around the items (in a [`Store`] that decides the order) and four
//! wait lists.
//!
//! # Reservations
//!
//! A put that finds getters waiting pushes the item and *reserves* it for the
//! first getter (`reserved_items`), notifying it; a get that frees a place
//! reserves it for the first waiting putter (`reserved_slots`). Reserved items
//! and places are invisible to everyone else, so a `get_nowait` cannot take
//! an item a parked getter was promised, and waiters are served in FIFO
//! order. A notified waiter that leaves without using its reservation
//! (killed, timed out) drops it and passes it to the next waiter, so no item
//! sits unclaimed while a getter waits.
//!
//! Notifications from `close` reserve nothing (payload `false`): the waiter
//! wakes, finds the queue closed and returns an error, unless items that
//! nobody else was promised remain for a getter.

use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use super::{GetError, PutError};
use crate::loom::{Mutex, Unparker, lock};
use crate::sync::waitlist::{Status, WaitList, Wakeups, wait};

/// How a queue orders its items.
pub(crate) trait Store: Default {
    type Item;
    fn push(&mut self, v: Self::Item);
    fn pop(&mut self) -> Option<Self::Item>;
    fn peek(&self) -> Option<&Self::Item>;
    fn len(&self) -> usize;
}

/// First in, first out.
pub(crate) struct Fifo<T>(VecDeque<T>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}

impl<T> Store for Fifo<T> {
    type Item = T;
    fn push(&mut self, v: T) {
        self.0.push_back(v)
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn peek(&self) -> Option<&T> {
        self.0.front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Last in, first out.
pub(crate) struct Lifo<T>(Vec<T>);

impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}

impl<T> Store for Lifo<T> {
    type Item = T;
    fn push(&mut self, v: T) {
        self.0.push(v)
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn peek(&self) -> Option<&T> {
        self.0.last()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Lowest first.
pub(crate) struct Priority<T: Ord>(BinaryHeap<std::cmp::Reverse<T>>);

impl<T: Ord> Default for Priority<T> {
    fn default() -> Self {
        Priority(BinaryHeap::new())
    }
}

impl<T: Ord> Store for Priority<T> {
    type Item = T;
    fn push(&mut self, v: T) {
        self.0.push(std::cmp::Reverse(v))
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|r| r.0)
    }
    fn peek(&self) -> Option<&T> {
        self.0.peek().map(|r| &r.0)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

struct State<S> {
    items: S,
    capacity: Option<usize>,
    closed: bool,
    unfinished: usize,
    reserved_items: usize,
    reserved_slots: usize,
    /// Payload: the waiter was granted a reservation.
    getters: WaitList<bool>,
    putters: WaitList<bool>,
    peekers: WaitList,
    joiners: WaitList,
}

impl<S: Store> State<S> {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn free_items(&self) -> usize {
        self.len() - self.reserved_items
    }

    fn has_space(&self) -> bool {
        self.capacity
            .is_none_or(|c| self.len() + self.reserved_slots < c)
    }

    /// Promises free items to waiting getters.
    fn grant_getters(&mut self, wake: &mut Wakeups) {
        while self.free_items() > 0 {
            match self.getters.notify_one_with(|g| *g = true) {
                Some(((), u)) => {
                    self.reserved_items += 1;
                    wake.push(u);
                }
                None => break,
            }
        }
    }

    /// Promises free places to waiting putters.
    fn grant_putters(&mut self, wake: &mut Wakeups) {
        while self.has_space() {
            match self.putters.notify_one_with(|g| *g = true) {
                Some(((), u)) => {
                    self.reserved_slots += 1;
                    wake.push(u);
                }
                None => break,
            }
        }
    }

    fn push_item(&mut self, v: S::Item) -> Wakeups {
        self.items.push(v);
        self.unfinished += 1;
        let mut wake = self.peekers.notify_all();
        self.grant_getters(&mut wake);
        wake
    }

    fn pop_item(&mut self) -> (S::Item, Wakeups) {
        let v = self.items.pop().expect("checked non-empty");
        let mut wake = Wakeups::new();
        self.grant_putters(&mut wake);
        (v, wake)
    }
}

pub(crate) struct Inner<T, S: Store<Item = T>> {
    state: Mutex<State<S>>,
    _t: std::marker::PhantomData<fn(T) -> T>,
}

impl<T, S: Store<Item = T>> Inner<T, S> {
    pub(crate) fn new(capacity: Option<usize>) -> Self {
        assert!(
            capacity != Some(0),
            "a queue needs room for an item; use Channel for a rendezvous"
        );
        Inner {
            state: Mutex::new(State {
                items: S::default(),
                capacity,
                closed: false,
                unfinished: 0,
                reserved_items: 0,
                reserved_slots: 0,
                getters: WaitList::new(),
                putters: WaitList::new(),
                peekers: WaitList::new(),
                joiners: WaitList::new(),
            }),
            _t: std::marker::PhantomData,
        }
    }

    pub(crate) fn put(
        &self,
        v: T,
        deadline: Option<Instant>,
        block: bool,
    ) -> Result<(), PutError<T>> {
        let key = {
            let mut s = lock(&self.state);
            if s.closed {
                return Err(PutError::Closed(v));
            }
            if s.has_space() {
                let wake = s.push_item(v);
                drop(s);
                wake.wake();
                return Ok(());
            }
            if !block {
                return Err(PutError::Full(v));
            }
            s.putters.push(Unparker::current(), false)
        };
        let mut item = Some(v);
        let done = wait(
            &self.state,
            key,
            deadline,
            |s| &mut s.putters,
            |s, granted| {
                if granted {
                    s.reserved_slots -= 1;
                }
                if s.closed {
                    return Wakeups::new();
                }
                s.push_item(item.take().expect("put once"))
            },
            |s, status, granted| {
                let mut wake = Wakeups::new();
                if status == Status::Notified && granted {
                    s.reserved_slots -= 1;
                    s.grant_putters(&mut wake);
                }
                wake
            },
        );
        match (done, item) {
            (Some(wake), None) => {
                wake.wake();
                Ok(())
            }
            (Some(_), Some(v)) => Err(PutError::Closed(v)),
            (None, Some(v)) => Err(PutError::Timeout(v)),
            (None, None) => unreachable!("a timed-out put keeps its item"),
        }
    }

    pub(crate) fn get(&self, deadline: Option<Instant>, block: bool) -> Result<T, GetError> {
        let key = {
            let mut s = lock(&self.state);
            if s.free_items() > 0 {
                let (v, wake) = s.pop_item();
                drop(s);
                wake.wake();
                return Ok(v);
            }
            if s.closed {
                return Err(GetError::Closed);
            }
            if !block {
                return Err(GetError::Empty);
            }
            s.getters.push(Unparker::current(), false)
        };
        let got = wait(
            &self.state,
            key,
            deadline,
            |s| &mut s.getters,
            |s, granted| {
                if granted {
                    s.reserved_items -= 1;
                } else if s.free_items() == 0 {
                    return Err(GetError::Closed);
                }
                Ok(s.pop_item())
            },
            |s, status, granted| {
                let mut wake = Wakeups::new();
                if status == Status::Notified && granted {
                    s.reserved_items -= 1;
                    s.grant_getters(&mut wake);
                }
                wake
            },
        );
        match got {
            Some(Ok((v, wake))) => {
                wake.wake();
                Ok(v)
            }
            Some(Err(e)) => Err(e),
            None => Err(GetError::Timeout),
        }
    }

    pub(crate) fn peek(&self, deadline: Option<Instant>, block: bool) -> Result<T, GetError>
    where
        T: Clone,
    {
        loop {
            let key = {
                let mut s = lock(&self.state);
                if let Some(v) = s.items.peek() {
                    return Ok(v.clone());
                }
                if s.closed {
                    return Err(GetError::Closed);
                }
                if !block {
                    return Err(GetError::Empty);
                }
                s.peekers.push(Unparker::current(), ())
            };
            let woken = wait(
                &self.state,
                key,
                deadline,
                |s| &mut s.peekers,
                |_, ()| (),
                |_, _, ()| Wakeups::new(),
            );
            if woken.is_none() {
                return Err(GetError::Timeout);
            }
        }
    }

    pub(crate) fn task_done(&self) {
        let wake = {
            let mut s = lock(&self.state);
            assert!(
                s.unfinished > 0,
                "task_done called more times than items were put"
            );
            s.unfinished -= 1;
            if s.unfinished > 0 {
                return;
            }
            s.joiners.notify_all()
        };
        wake.wake();
    }

    pub(crate) fn join(&self, deadline: Option<Instant>) -> bool {
        let key = {
            let mut s = lock(&self.state);
            if s.unfinished == 0 {
                return true;
            }
            s.joiners.push(Unparker::current(), ())
        };
        wait(
            &self.state,
            key,
            deadline,
            |s| &mut s.joiners,
            |_, ()| (),
            |_, _, ()| Wakeups::new(),
        )
        .is_some()
    }

    pub(crate) fn close(&self) {
        let wake = {
            let mut s = lock(&self.state);
            s.closed = true;
            let mut wake = s.getters.notify_all();
            wake.extend(s.putters.notify_all());
            wake.extend(s.peekers.notify_all());
            wake
        };
        wake.wake();
    }

    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.state).len()
    }

    pub(crate) fn is_full(&self) -> bool {
        !lock(&self.state).has_space()
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        lock(&self.state).capacity
    }

    pub(crate) fn unfinished_tasks(&self) -> usize {
        lock(&self.state).unfinished
    }

    pub(crate) fn getters(&self) -> usize {
        lock(&self.state).getters.len()
    }

    pub(crate) fn putters(&self) -> usize {
        lock(&self.state).putters.len()
    }
}
