//! Pools of greenlets (gevent's `gevent.pool`): [`Group`] tracks the
//! greenlets it spawns; [`Pool`] also limits how many run at once.
//!
//! ```
//! use greenlet::pool::Pool;
//!
//! greenlet::run(|| {
//!     let pool = Pool::new(4); // at most 4 at a time
//!     let squares = pool.map(|x: u64| x * x, 1..=10).unwrap();
//!     assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
//! });
//! ```
//!
//! # Design
//!
//! A pool's slots are a FIFO [`Semaphore`]: `spawn` takes a permit (waiting
//! for one) before it spawns. Every spawned greenlet gets a link (the core's
//! "tell me when you end" hook), which fires exactly once however the
//! greenlet ends (returned, panicked, killed, or cancelled before it ran):
//! it removes the greenlet from the group, releases its permit, and wakes
//! `join` once the group is empty. So a panicking or killed task never leaks
//! its slot.
//!
//! `map`, `imap` and `imap_unordered` keep at most as many tasks in flight as
//! the pool has slots (a [`Group`]: [`GROUP_WINDOW`]), pulling the input
//! lazily; a task's failure is returned to the caller as
//! [`GreenletError`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::loom::{Mutex, lock};
use crate::queue::Queue;
use crate::spawn::{Greenlet, GreenletError, Link, add_link};
use crate::sync::Semaphore;
use crate::sync::waitlist::{WaitList, Wakeups, deadline_in, wait_ready};

/// How many tasks a [`Group`]'s `map` family keeps in flight.
pub const GROUP_WINDOW: usize = 1024;

/// What the group keeps of a member: enough to kill it.
trait Member: Send + Sync {
    fn kill_nowait(&self);
}

struct Handle<T>(Greenlet<T>);

// SAFETY: a `Handle` only kills its greenlet (and drops its reference); it
// never reads the result, so no `&T` is shared (no `T: Sync` needed). The
// last reference may free the result on this thread, hence `T: Send`.
unsafe impl<T: Send> Send for Handle<T> {}
// SAFETY: as above: `kill_nowait` touches only the shared header.
unsafe impl<T: Send> Sync for Handle<T> {}

impl<T: Send> Member for Handle<T> {
    fn kill_nowait(&self) {
        self.0.kill_nowait()
    }
}

struct State {
    members: HashMap<u64, Arc<dyn Member>>,
    joiners: WaitList,
}

struct Inner {
    slots: Option<(usize, Semaphore)>,
    state: Mutex<State>,
}

impl Inner {
    /// A member ended: forget it, free its slot, wake `join` if empty.
    fn finished(&self, id: u64) {
        let (gone, wake) = {
            let mut s = lock(&self.state);
            let gone = s.members.remove(&id);
            let wake = if s.members.is_empty() {
                s.joiners.notify_all()
            } else {
                Wakeups::new()
            };
            (gone, wake)
        };
        if let Some((_, sem)) = &self.slots {
            sem.release();
        }
        wake.wake();
        drop(gone);
    }
}

/// A set of greenlets that can be joined or killed together (gevent's
/// `Group`), with no limit on how many run at once.
///
/// ```
/// use greenlet::pool::Group;
///
/// greenlet::run(|| {
///     let group = Group::new();
///     for i in 0..3 {
///         group.spawn(move || greenlet::sleep(std::time::Duration::from_millis(i)));
///     }
///     group.join();
///     assert!(group.is_empty());
/// });
/// ```
#[derive(Clone)]
pub struct Group {
    inner: Arc<Inner>,
}

impl Default for Group {
    fn default() -> Self {
        Self::new()
    }
}

impl Group {
    /// An empty group.
    pub fn new() -> Self {
        Self::with_slots(None)
    }

    fn with_slots(slots: Option<usize>) -> Self {
        Group {
            inner: Arc::new(Inner {
                slots: slots.map(|n| (n, Semaphore::new(n))),
                state: Mutex::new(State {
                    members: HashMap::new(),
                    joiners: WaitList::new(),
                }),
            }),
        }
    }

    /// Spawns `f` as a member (in a [`Pool`], after waiting for a free
    /// slot).
    pub fn spawn<T, F>(&self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = self.inner.slots.as_ref().map(|(_, sem)| {
            sem.acquire();
            // Released by the link from now on; until then, by this guard
            // (if spawning panics).
            SlotGuard(sem)
        });
        let g = crate::spawn(f);
        std::mem::forget(slot);
        self.track(&g);
        g
    }

    fn track<T: Send + 'static>(&self, g: &Greenlet<T>) {
        let id = g.id();
        lock(&self.inner.state)
            .members
            .insert(id, Arc::new(Handle(g.clone())));
        let inner = self.inner.clone();
        let link = Link::call(move || inner.finished(id));
        if let Err(Link::Call(done)) = add_link(g.header(), link) {
            done();
        }
    }

    /// Runs `f` in the group and waits for its result.
    pub fn apply<T, F>(&self, f: F) -> Result<T, GreenletError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        take_result(self.spawn(f))
    }

    /// Runs `f` on every item, at most as many at once as the pool allows,
    /// and returns the results in input order; a task that panicked (or was
    /// killed) makes it return that error (the first in input order).
    pub fn map<I, R, F>(&self, f: F, items: I) -> Result<Vec<R>, GreenletError>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        self.imap(f, items).collect()
    }

    /// Like [`map`](Self::map), but lazy: an iterator of the results in
    /// input order, which starts tasks as it goes.
    pub fn imap<I, R, F>(&self, f: F, items: I) -> Imap<I::IntoIter, R, F>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        Imap {
            feed: Feed::new(self, f, items),
            pending: VecDeque::new(),
        }
    }

    /// Like [`imap`](Self::imap), but yields results as tasks finish.
    pub fn imap_unordered<I, R, F>(&self, f: F, items: I) -> ImapUnordered<I::IntoIter, R, F>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        ImapUnordered {
            feed: Feed::new(self, f, items),
            pending: HashMap::new(),
            done: Arc::new(Queue::new()),
            next_id: 0,
        }
    }

    fn window(&self) -> usize {
        self.inner.slots.as_ref().map_or(GROUP_WINDOW, |(n, _)| *n)
    }

    fn join_until(&self, deadline: Option<Instant>) -> bool {
        wait_ready(
            &self.inner.state,
            deadline,
            |s| &mut s.joiners,
            |s| s.members.is_empty(),
        )
    }

    /// Waits until every member has ended.
    pub fn join(&self) {
        self.join_until(None);
    }

    /// Waits at most `timeout`; true if every member has ended.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_until(deadline_in(timeout))
    }

    /// Kills every member and waits until all have ended.
    pub fn kill(&self) {
        self.kill_nowait();
        self.join();
    }

    /// Kills every member, waiting at most `timeout`; true if all ended.
    pub fn kill_timeout(&self, timeout: Duration) -> bool {
        self.kill_nowait();
        self.join_timeout(timeout)
    }

    fn kill_nowait(&self) {
        let members: Vec<_> = lock(&self.inner.state).members.values().cloned().collect();
        for m in members {
            m.kill_nowait();
        }
    }

    /// How many members are running (or waiting to start).
    pub fn len(&self) -> usize {
        lock(&self.inner.state).members.len()
    }

    /// True if no member is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("len", &self.len()).finish()
    }
}

/// Releases a pool slot if spawning fails half-way.
struct SlotGuard<'a>(&'a Semaphore);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// The value of a finished greenlet nobody else reads.
fn take_result<T>(g: Greenlet<T>) -> Result<T, GreenletError> {
    g.join();
    // The group's handle never reads results; this is the only reader.
    g.into_result()
}

/// A group that runs at most `size` greenlets at once (gevent's `Pool`).
/// `spawn` waits for a free slot; everything [`Group`] does, it does too.
///
/// ```
/// use std::time::Duration;
/// use greenlet::pool::Pool;
///
/// greenlet::run(|| {
///     let pool = Pool::new(2);
///     pool.spawn(|| greenlet::sleep(Duration::from_millis(5)));
///     pool.spawn(|| greenlet::sleep(Duration::from_millis(5)));
///     assert_eq!(pool.free_count(), 0);
///     pool.wait_available(); // one of them ended
///     assert!(pool.free_count() >= 1);
///     pool.join();
///     assert_eq!(pool.free_count(), 2);
/// });
/// ```
#[derive(Clone)]
pub struct Pool {
    group: Group,
}

impl Pool {
    /// A pool of `size` slots.
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn new(size: usize) -> Self {
        assert!(size > 0, "a pool needs at least one slot");
        Pool {
            group: Group::with_slots(Some(size)),
        }
    }

    fn sem(&self) -> &Semaphore {
        &self.group.inner.slots.as_ref().expect("a pool has slots").1
    }

    /// How many slots it has.
    pub fn size(&self) -> usize {
        self.group.window()
    }

    /// How many slots are free now.
    pub fn free_count(&self) -> usize {
        self.sem().available()
    }

    /// True if no slot is free.
    pub fn full(&self) -> bool {
        self.free_count() == 0
    }

    /// Waits until a slot is free (it is not reserved for the caller).
    pub fn wait_available(&self) {
        self.sem().acquire();
        self.sem().release();
    }

    /// [`wait_available`](Self::wait_available), at most `timeout`; true if
    /// a slot was free.
    pub fn wait_available_timeout(&self, timeout: Duration) -> bool {
        let ok = self.sem().acquire_timeout(timeout);
        if ok {
            self.sem().release();
        }
        ok
    }
}

impl Deref for Pool {
    type Target = Group;
    fn deref(&self) -> &Group {
        &self.group
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size())
            .field("free", &self.free_count())
            .finish()
    }
}

/// Where the `map` family's tasks come from: the input, pulled lazily, and
/// the function each item is run with, in the group's greenlets.
struct Feed<It, F> {
    group: Group,
    f: Arc<F>,
    input: It,
    /// The most tasks in flight.
    window: usize,
}

impl<It: Iterator, F> Feed<It, F> {
    fn new<I: IntoIterator<IntoIter = It>>(group: &Group, f: F, items: I) -> Self {
        Feed {
            group: group.clone(),
            f: Arc::new(f),
            input: items.into_iter(),
            window: group.window(),
        }
    }

    /// Starts the tasks of the next items, as many as the window has room
    /// for beside the `in_flight` ones (fewer if the input ends).
    fn start<R>(&mut self, in_flight: usize) -> impl Iterator<Item = Greenlet<R>>
    where
        It::Item: Send + 'static,
        F: Fn(It::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        let room = self.window.saturating_sub(in_flight);
        (&mut self.input).take(room).map(|item| {
            let f = self.f.clone();
            self.group.spawn(move || f(item))
        })
    }
}

/// The iterator of [`Group::imap`]: results in input order.
pub struct Imap<It, R, F> {
    feed: Feed<It, F>,
    pending: VecDeque<Greenlet<R>>,
}

impl<It, R, F> Iterator for Imap<It, R, F>
where
    It: Iterator,
    It::Item: Send + 'static,
    F: Fn(It::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    type Item = Result<R, GreenletError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.pending.extend(self.feed.start(self.pending.len()));
        self.pending.pop_front().map(take_result)
    }
}

impl<It, R, F> fmt::Debug for Imap<It, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("in_flight", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// The iterator of [`Group::imap_unordered`]: results as tasks finish.
pub struct ImapUnordered<It, R, F> {
    feed: Feed<It, F>,
    pending: HashMap<u64, Greenlet<R>>,
    /// Ids of finished tasks, pushed by their links.
    done: Arc<Queue<u64>>,
    next_id: u64,
}

impl<It, R, F> Iterator for ImapUnordered<It, R, F>
where
    It: Iterator,
    It::Item: Send + 'static,
    F: Fn(It::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    type Item = Result<R, GreenletError>;

    fn next(&mut self) -> Option<Self::Item> {
        for g in self.feed.start(self.pending.len()) {
            let id = self.next_id;
            self.next_id += 1;
            let done = self.done.clone();
            let link = Link::call(move || {
                let _ = done.put(id);
            });
            if let Err(Link::Call(fire)) = add_link(g.header(), link) {
                fire();
            }
            self.pending.insert(id, g);
        }
        if self.pending.is_empty() {
            return None;
        }
        let id = self.done.get().expect("the done queue is never closed");
        let g = self.pending.remove(&id).expect("a pending task");
        Some(take_result(g))
    }
}

impl<It, R, F> fmt::Debug for ImapUnordered<It, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapUnordered")
            .field("in_flight", &self.pending.len())
            .finish_non_exhaustive()
    }
}
