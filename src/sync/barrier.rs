//! `Barrier` (n parties meet) and `WaitGroup` (wait for a count to reach 0).
//!
//! Both are broadcasts. A barrier waiter that leaves before the barrier trips
//! (killed, timed out) withdraws its arrival, so the barrier still waits for
//! `n` parties that are really there; one that leaves after it tripped has
//! nothing to undo.

use std::fmt;
use std::time::{Duration, Instant};

use super::waitlist::{Status, WaitList, Wakeups, deadline_in, wait, wait_ready};
use crate::loom::{Mutex, Waiter, lock};

struct BarrierState {
    arrived: usize,
    waiters: WaitList,
}

/// Makes `n` greenlets (or threads) wait until all of them have arrived,
/// then lets them all go; it can be used again (like `std::sync::Barrier`).
///
/// ```
/// use std::sync::Arc;
/// use greenlet::sync::Barrier;
///
/// greenlet::run(|| {
///     let barrier = Arc::new(Barrier::new(3));
///     let gs: Vec<_> = (0..3)
///         .map(|_| {
///             let b = barrier.clone();
///             greenlet::spawn(move || b.wait().is_leader())
///         })
///         .collect();
///     let leaders = gs.iter().filter(|g| *g.get().unwrap()).count();
///     assert_eq!(leaders, 1);
/// });
/// ```
pub struct Barrier {
    parties: usize,
    state: Mutex<BarrierState>,
}

/// What [`Barrier::wait`] returns: one waiter of each round is the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// True for the waiter whose arrival tripped the barrier.
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `parties` waiters (0 and 1 never wait).
    pub fn new(parties: usize) -> Self {
        Barrier {
            parties,
            state: Mutex::new(BarrierState {
                arrived: 0,
                waiters: WaitList::new(),
            }),
        }
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Option<BarrierWaitResult> {
        let key = {
            let mut s = lock(&self.state);
            s.arrived += 1;
            if s.arrived >= self.parties {
                s.arrived = 0;
                let wake = s.waiters.notify_all();
                drop(s);
                wake.wake();
                return Some(BarrierWaitResult(true));
            }
            s.waiters.push(Waiter::current(), ())
        };
        wait(
            &self.state,
            key,
            deadline,
            |s| &mut s.waiters,
            |_, ()| BarrierWaitResult(false),
            |s, status, ()| {
                if status == Status::Waiting {
                    s.arrived -= 1;
                }
                Wakeups::new()
            },
        )
    }

    /// Waits until `n` parties have called `wait`.
    pub fn wait(&self) -> BarrierWaitResult {
        self.wait_until(None).expect("no deadline")
    }

    /// Waits at most `timeout`; `None` if it timed out (the caller's arrival
    /// is then withdrawn).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<BarrierWaitResult> {
        self.wait_until(deadline_in(timeout))
    }

    /// How many are waiting now.
    pub fn waiters(&self) -> usize {
        lock(&self.state).waiters.len()
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("waiters", &self.waiters())
            .finish()
    }
}

struct GroupState {
    count: usize,
    waiters: WaitList,
}

/// Waits for a count of outstanding jobs to reach zero (Go's `WaitGroup`).
///
/// ```
/// use std::sync::Arc;
/// use greenlet::sync::WaitGroup;
///
/// greenlet::run(|| {
///     let wg = Arc::new(WaitGroup::new());
///     for _ in 0..4 {
///         wg.add(1);
///         let wg = wg.clone();
///         greenlet::spawn(move || wg.done());
///     }
///     wg.wait();
///     assert_eq!(wg.count(), 0);
/// });
/// ```
pub struct WaitGroup {
    state: Mutex<GroupState>,
}

impl Default for WaitGroup {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitGroup {
    /// A group with a count of zero.
    pub fn new() -> Self {
        WaitGroup {
            state: Mutex::new(GroupState {
                count: 0,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Adds `n` to the count.
    pub fn add(&self, n: usize) {
        lock(&self.state).count += n;
    }

    /// Takes one from the count; at zero, wakes every waiter.
    ///
    /// # Panics
    /// If the count is already zero.
    pub fn done(&self) {
        let wake = {
            let mut s = lock(&self.state);
            assert!(s.count > 0, "WaitGroup::done called more times than add");
            s.count -= 1;
            if s.count > 0 {
                return;
            }
            s.waiters.notify_all()
        };
        wake.wake();
    }

    /// The count now.
    pub fn count(&self) -> usize {
        lock(&self.state).count
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        wait_ready(&self.state, deadline, |s| &mut s.waiters, |s| s.count == 0)
    }

    /// Waits until the count is zero.
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Waits at most `timeout`; true if the count reached zero.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(deadline_in(timeout))
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}
