//! The machinery shared by `Queue`, `LifoQueue` and `PriorityQueue`: one
//! lock around the items (in a [`Store`] that decides the order) and four
//! wait lists.
//!
//! # Hand-over and reservations
//!
//! A put that finds getters waiting hands the item straight to the first
//! one (into its wait-list node), so items go to getters in the order the
//! getters came; the queue's storage only holds items nobody waits for. A
//! get that frees a place *reserves* it for the first waiting putter
//! (`reserved_slots`), notifying it; reserved places are invisible to
//! everyone else, so a `put_nowait` cannot take the place a parked putter
//! was promised.
//!
//! A getter that leaves (killed, timed out) after it was handed an item gives
//! the item to the next waiting getter, or back to the front of the queue; a
//! putter that leaves after it was promised a place passes the place on. So
//! nothing is lost and nothing sits unclaimed while someone waits.
//!
//! Notifications from `close` carry nothing: the waiter wakes, finds the
//! queue closed and returns an error (a getter still takes the items left).
//!
//! Peekers wait for an item in the storage: an item handed straight to a
//! waiting getter is never seen by `peek`.

use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use super::{GetError, PutError};
use crate::loom::{Mutex, Waiter, lock};
use crate::sync::waitlist::{Status, WaitList, Wakeups, wait, wait_notified, wait_ready};

/// How a queue orders its items.
pub(crate) trait Store: Default {
    type Item;
    fn push(&mut self, v: Self::Item);
    fn pop(&mut self) -> Option<Self::Item>;
    fn peek(&self) -> Option<&Self::Item>;
    fn len(&self) -> usize;
    /// Puts back an item that was taken out, to come out next.
    fn unget(&mut self, v: Self::Item);
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
    fn unget(&mut self, v: T) {
        self.0.push_front(v)
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
    fn unget(&mut self, v: T) {
        self.0.push(v)
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
    fn unget(&mut self, v: T) {
        self.push(v)
    }
}

struct State<S: Store> {
    items: S,
    capacity: Option<usize>,
    closed: bool,
    unfinished: usize,
    reserved_slots: usize,
    /// Each waiting getter's node receives its item.
    getters: WaitList<Option<S::Item>>,
    /// Payload: the putter was promised a place.
    putters: WaitList<bool>,
    peekers: WaitList,
    joiners: WaitList,
}

impl<S: Store> State<S> {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn has_space(&self) -> bool {
        self.capacity
            .is_none_or(|c| self.len() + self.reserved_slots < c)
    }

    /// Gives an item to the first waiting getter, else to the storage
    /// (at the front if `back`, as for an item a getter gave back).
    fn place(&mut self, v: S::Item, back: bool) -> Wakeups {
        let mut slot = Some(v);
        if let Some(((), u)) = self.getters.notify_one_with(|g| *g = slot.take()) {
            return Wakeups::one(Some(u));
        }
        let v = slot.take().expect("not handed");
        if back {
            self.items.unget(v);
        } else {
            self.items.push(v);
        }
        self.peekers.notify_all()
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
        self.unfinished += 1;
        self.place(v, false)
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
            s.putters.push(Waiter::current(), false)
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
            if s.len() > 0 {
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
            s.getters.push(Waiter::current(), None)
        };
        let got = wait(
            &self.state,
            key,
            deadline,
            |s| &mut s.getters,
            |s, item| match item {
                Some(v) => Ok((v, Wakeups::new())),
                // Woken by `close`: take what is left, if anything.
                None if s.len() > 0 => Ok(s.pop_item()),
                None => Err(GetError::Closed),
            },
            |s, status, item| match (status, item) {
                // Handed an item we will not take: pass it on.
                (Status::Notified, Some(v)) => s.place(v, true),
                _ => Wakeups::new(),
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
                s.peekers.push(Waiter::current(), ())
            };
            if !wait_notified(&self.state, key, deadline, |s| &mut s.peekers) {
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
        wait_ready(
            &self.state,
            deadline,
            |s| &mut s.joiners,
            |s| s.unfinished == 0,
        )
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
