//! The wait list every primitive is built on, and the one way to wait on it.
//!
//! # Design
//!
//! A primitive keeps its state and its wait lists under one short-lived
//! `Mutex` (never held across a park). A waiter that cannot proceed pushes a
//! node onto a [`WaitList`] and parks; whoever makes progress possible
//! *notifies* the front node under the same lock: it unlinks the node, marks
//! it `Notified`, and hands it whatever the primitive grants (the lock's
//! ownership, a permit, a reserved item or slot) by changing the primitive's
//! state on the waiter's behalf. It then unparks the waiter after releasing
//! the lock. Waiters are therefore served strictly first come, first served,
//! and a newcomer cannot take what was granted to a parked waiter.
//!
//! # Node states
//!
//! ```text
//!   push ──> Waiting ──notify──> Notified ──waiter takes it──> (removed)
//!              │                     │
//!              │ timeout / unwind    │ timeout / unwind after the grant
//!              ▼                     ▼
//!   abandon: undo what its     abandon: the grant goes to the next
//!   arrival counted            waiter, or back to the primitive
//! ```
//!
//! The waiter removes its own node, always under the lock, in [`wait`]: on
//! success, on timeout, and, through a drop guard, when its park unwinds (a
//! `Greenlet::kill` or a `Timeout`). A grant that reached a waiter which then
//! gave up is handed back by the primitive's `abandon`, so a kill or a
//! timeout never swallows a permit, an item or a wake-up meant for another.
//!
//! A timed-out waiter decides under the lock: a node found `Notified` when
//! the deadline passes still counts as served.
//!
//! Two shapes of waiting recur, and have their helpers on top of [`wait`]:
//! [`acquire`], for what a release hands over whole to one waiter (a lock, a
//! permit), and [`wait_ready`], for broadcasts that grant nothing (an event
//! being set, a count reaching zero).
//!
//! Nodes live in a slab inside the list (on the heap, never on a greenlet's
//! stack); a [`Key`] names one with a generation, so a stale key cannot reach
//! a reused slot.

use std::time::Instant;

use crate::loom::{Mutex, Waiter, Wake, expired, lock, park_until};

const NIL: u32 = u32::MAX;

/// Where a waiter's node stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Status {
    /// Linked in the list, waiting.
    Waiting,
    /// Unlinked by a waker, which granted it something.
    Notified,
}

/// Names a node of a [`WaitList`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Key {
    idx: u32,
    generation: u32,
}

struct Node<P> {
    prev: u32,
    /// The next waiter, or, while the slot is free, the next free slot.
    next: u32,
    generation: u32,
    /// `None` while the slot is free.
    status: Option<Status>,
    waiter: Option<Waiter>,
    payload: Option<P>,
}

/// A FIFO list of waiters, each with a payload `P`. Not synchronised: it
/// lives inside a primitive's `Mutex`.
pub(crate) struct WaitList<P = ()> {
    nodes: Vec<Node<P>>,
    /// The first free slot (`NIL`: none); free slots chain through `next`.
    free: u32,
    head: u32,
    tail: u32,
    waiting: usize,
}

impl<P> Default for WaitList<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> WaitList<P> {
    pub(crate) const fn new() -> Self {
        WaitList {
            nodes: Vec::new(),
            free: NIL,
            head: NIL,
            tail: NIL,
            waiting: 0,
        }
    }

    /// How many nodes are waiting (not yet notified).
    pub(crate) fn len(&self) -> usize {
        self.waiting
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// How many slots hold a node (for tests of cleanup).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn live_nodes(&self) -> usize {
        self.nodes.iter().filter(|n| n.status.is_some()).count()
    }

    /// Adds a waiter at the back.
    #[inline]
    pub(crate) fn push(&mut self, waiter: Waiter, payload: P) -> Key {
        let idx = match self.free {
            NIL => {
                let i = u32::try_from(self.nodes.len()).expect("too many waiters");
                assert!(i != NIL, "too many waiters");
                self.nodes.push(Node {
                    prev: NIL,
                    next: NIL,
                    generation: 0,
                    status: None,
                    waiter: None,
                    payload: None,
                });
                i
            }
            free => {
                self.free = self.nodes[free as usize].next;
                free
            }
        };
        let tail = self.tail;
        let n = &mut self.nodes[idx as usize];
        n.prev = tail;
        n.next = NIL;
        n.status = Some(Status::Waiting);
        n.waiter = Some(waiter);
        n.payload = Some(payload);
        let key = Key {
            idx,
            generation: n.generation,
        };
        if tail == NIL {
            self.head = idx;
        } else {
            self.nodes[tail as usize].next = idx;
        }
        self.tail = idx;
        self.waiting += 1;
        key
    }

    #[inline]
    fn unlink(&mut self, idx: u32) {
        let (prev, next) = {
            let n = &self.nodes[idx as usize];
            (n.prev, n.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        self.waiting -= 1;
    }

    #[inline]
    fn node(&self, key: Key) -> &Node<P> {
        let n = &self.nodes[key.idx as usize];
        assert!(
            n.generation == key.generation && n.status.is_some(),
            "stale wait-list key"
        );
        n
    }

    /// Notifies the front waiter, letting `grant` take or change its payload
    /// first; returns what `grant` returned and who to unpark (after the
    /// primitive's lock is released). A greenlet of this thread is woken at
    /// once instead (see [`Waiter::notify`]): the list lives in the
    /// primitive's lock, which the caller holds.
    #[inline]
    pub(crate) fn notify_one_with<R>(
        &mut self,
        grant: impl FnOnce(&mut P) -> R,
    ) -> Option<(R, Wake)> {
        let idx = self.head;
        if idx == NIL {
            return None;
        }
        self.unlink(idx);
        let n = &mut self.nodes[idx as usize];
        n.status = Some(Status::Notified);
        let r = grant(n.payload.as_mut().expect("a live node has a payload"));
        let w = n.waiter.take().expect("a waiting node has a waiter");
        // SAFETY: under the primitive's lock (the list is only reached
        // through it), and the node was listed until just now: its waiter
        // has not left its wait.
        Some((r, unsafe { w.notify() }))
    }

    /// Notifies the front waiter; returns who to unpark.
    pub(crate) fn notify_one(&mut self) -> Option<Wake> {
        self.notify_one_with(|_| ()).map(|(_, u)| u)
    }

    /// Notifies every waiter; returns who to unpark.
    pub(crate) fn notify_all(&mut self) -> Wakeups {
        let mut w = Wakeups::new();
        while let Some(u) = self.notify_one() {
            w.push(u);
        }
        w
    }

    /// The status of a live node.
    #[inline]
    pub(crate) fn status(&self, key: Key) -> Status {
        self.node(key).status.expect("checked live")
    }

    /// Frees a node (unlinking it if it still waits); returns its status and
    /// payload.
    #[inline(always)]
    pub(crate) fn remove(&mut self, key: Key) -> (Status, P) {
        let status = self.status(key);
        if status == Status::Waiting {
            self.unlink(key.idx);
        }
        (status, self.free_node(key.idx))
    }

    /// Frees a node that was notified and returns its payload; `None` (the
    /// node left as it is) if it still waits.
    #[inline(always)]
    pub(crate) fn take_notified(&mut self, key: Key) -> Option<P> {
        match self.status(key) {
            Status::Waiting => None,
            Status::Notified => Some(self.free_node(key.idx)),
        }
    }

    /// Frees an unlinked node; its payload.
    #[inline(always)]
    fn free_node(&mut self, idx: u32) -> P {
        let free = self.free;
        let n = &mut self.nodes[idx as usize];
        n.status = None;
        n.waiter = None;
        n.generation = n.generation.wrapping_add(1);
        n.next = free;
        self.free = idx;
        n.payload.take().expect("a live node has a payload")
    }
}

/// Waiters to unpark once the primitive's lock is released. Usually none or
/// one, kept without an allocation.
#[must_use = "wake-ups must be delivered"]
pub(crate) struct Wakeups {
    first: Option<Wake>,
    rest: Option<Vec<Wake>>,
}

impl Wakeups {
    pub(crate) const fn new() -> Self {
        Wakeups {
            first: None,
            rest: None,
        }
    }

    pub(crate) fn one(u: Option<Wake>) -> Self {
        Wakeups {
            first: u,
            rest: None,
        }
    }

    pub(crate) fn push(&mut self, u: Wake) {
        if self.first.is_none() {
            self.first = Some(u);
        } else {
            self.rest.get_or_insert_with(Vec::new).push(u);
        }
    }

    pub(crate) fn extend(&mut self, other: Wakeups) {
        let Wakeups { first, rest } = other;
        if let Some(u) = first {
            self.push(u);
        }
        for u in rest.into_iter().flatten() {
            self.push(u);
        }
    }

    /// Unparks them all.
    #[inline(always)]
    pub(crate) fn wake(self) {
        let Wakeups { first, rest } = self;
        if let Some(u) = first {
            u.unpark();
        }
        if let Some(rest) = rest {
            rest.into_iter().for_each(Wake::unpark);
        }
    }
}

/// Gives up a node: removes it, and lets the primitive undo what the node
/// stood for (a grant it had received, or its place in a count).
struct Abandon<'a, S, P, L, G>
where
    L: Fn(&mut S) -> &mut WaitList<P>,
    G: FnMut(&mut S, Status, P) -> Wakeups,
{
    mutex: &'a Mutex<S>,
    key: Key,
    list: &'a L,
    abandon: G,
    armed: bool,
}

impl<S, P, L, G> Drop for Abandon<'_, S, P, L, G>
where
    L: Fn(&mut S) -> &mut WaitList<P>,
    G: FnMut(&mut S, Status, P) -> Wakeups,
{
    #[inline(always)]
    fn drop(&mut self) {
        if self.armed {
            self.abandon_now();
        }
    }
}

impl<S, P, L, G> Abandon<'_, S, P, L, G>
where
    L: Fn(&mut S) -> &mut WaitList<P>,
    G: FnMut(&mut S, Status, P) -> Wakeups,
{
    #[cold]
    #[inline(never)]
    fn abandon_now(&mut self) {
        let wake = {
            let mut s = lock(self.mutex);
            let (status, payload) = (self.list)(&mut s).remove(self.key);
            (self.abandon)(&mut s, status, payload)
        };
        wake.wake();
    }
}

/// Parks the caller until its node `key` (in the list `list` picks out of the
/// state behind `mutex`) is notified, then, still under the lock, removes the
/// node and returns what `take` makes of its payload. Returns `None` if
/// `deadline` passed first (the node is then removed).
///
/// If the park unwinds (a kill, a `Timeout`) or the deadline passes, the
/// node is removed and `abandon` is told its status and payload, under the
/// lock: for a `Notified` node it returns the grant to the primitive
/// (typically by notifying the next waiter), for a `Waiting` one it undoes
/// whatever the waiter's arrival counted; it says whom to wake.
///
/// The caller pushed the node under the same lock, after checking it could
/// not proceed, and does not hold the lock now.
#[inline(always)]
pub(crate) fn wait<S, P, R, L, T, G>(
    mutex: &Mutex<S>,
    key: Key,
    deadline: Option<Instant>,
    list: L,
    take: T,
    abandon: G,
) -> Option<R>
where
    L: Fn(&mut S) -> &mut WaitList<P>,
    T: FnOnce(&mut S, P) -> R,
    G: FnMut(&mut S, Status, P) -> Wakeups,
{
    let mut guard = Abandon {
        mutex,
        key,
        list: &list,
        abandon,
        armed: true,
    };
    loop {
        park_until(deadline);
        let mut s = lock(mutex);
        if let Some(payload) = list(&mut s).take_notified(key) {
            guard.armed = false;
            return Some(take(&mut s, payload));
        }
        if expired(deadline) {
            guard.armed = false;
            let (status, payload) = list(&mut s).remove(key);
            let wake = (guard.abandon)(&mut s, status, payload);
            drop(s);
            wake.wake();
            return None;
        }
    }
}

/// Takes something a release hands over whole (a lock, a permit): at once if
/// `try_take` can take it (under the lock), else by queueing a node with
/// `payload` and [`wait`]ing until a release hands it to this waiter. True if
/// taken, false if `deadline` passed first.
///
/// A waiter that was handed it but leaves (killed, or timed out as it was
/// handed over) gives it back through `pass_on`, which says whom to wake; one
/// still waiting has nothing to undo.
pub(crate) fn acquire<S, P>(
    mutex: &Mutex<S>,
    deadline: Option<Instant>,
    list: impl Fn(&mut S) -> &mut WaitList<P>,
    try_take: impl FnOnce(&mut S) -> bool,
    payload: P,
    mut pass_on: impl FnMut(&mut S) -> Wakeups,
) -> bool {
    let key = {
        let mut s = lock(mutex);
        if try_take(&mut s) {
            return true;
        }
        list(&mut s).push(Waiter::current(), payload)
    };
    wait(
        mutex,
        key,
        deadline,
        list,
        |_, _| (),
        |s, status, _| match status {
            Status::Waiting => Wakeups::new(),
            Status::Notified => pass_on(s),
        },
    )
    .is_some()
}

/// Waits on a broadcast list, where a notification grants nothing (every
/// waiter is woken by `notify_all` and looks at the state again), so a
/// waiter that leaves has nothing to undo: true at once if `ready` (checked
/// under the lock), else once notified; false if `deadline` passed first.
pub(crate) fn wait_ready<S>(
    mutex: &Mutex<S>,
    deadline: Option<Instant>,
    list: impl Fn(&mut S) -> &mut WaitList,
    ready: impl FnOnce(&mut S) -> bool,
) -> bool {
    let key = {
        let mut s = lock(mutex);
        if ready(&mut s) {
            return true;
        }
        list(&mut s).push(Waiter::current(), ())
    };
    wait_notified(mutex, key, deadline, list)
}

/// [`wait`] for a node `key` of a broadcast list (see [`wait_ready`]): true
/// once notified, false if `deadline` passed first.
pub(crate) fn wait_notified<S>(
    mutex: &Mutex<S>,
    key: Key,
    deadline: Option<Instant>,
    list: impl Fn(&mut S) -> &mut WaitList,
) -> bool {
    wait(
        mutex,
        key,
        deadline,
        list,
        |_, ()| (),
        |_, _, ()| Wakeups::new(),
    )
    .is_some()
}

/// The deadline `timeout` from now (`None`: too far to say, so never).
pub(crate) fn deadline_in(timeout: std::time::Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn me() -> Waiter {
        Waiter::current()
    }

    #[test]
    fn fifo_and_removal_from_the_middle() {
        let mut l: WaitList<u32> = WaitList::new();
        let a = l.push(me(), 1);
        let b = l.push(me(), 2);
        let c = l.push(me(), 3);
        assert_eq!(l.len(), 3);
        assert_eq!(l.remove(b), (Status::Waiting, 2));
        assert_eq!(l.notify_one_with(|p| *p).map(|x| x.0), Some(1));
        assert_eq!(l.status(a), Status::Notified);
        assert_eq!(l.status(c), Status::Waiting);
        assert_eq!(l.notify_one_with(|p| *p).map(|x| x.0), Some(3));
        assert!(l.notify_one().is_none());
        assert_eq!(l.remove(a), (Status::Notified, 1));
        assert_eq!(l.remove(c), (Status::Notified, 3));
        assert_eq!(l.live_nodes(), 0);
        assert!(l.is_empty());
    }

    #[test]
    fn slots_are_reused_and_stale_keys_are_caught() {
        let mut l: WaitList = WaitList::new();
        let a = l.push(me(), ());
        l.remove(a);
        let b = l.push(me(), ());
        assert_eq!(l.nodes.len(), 1, "the slot was reused");
        let stale = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l.status(a)));
        assert!(stale.is_err());
        assert_eq!(l.status(b), Status::Waiting);
    }
}
