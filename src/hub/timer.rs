//! Per-hub timers: a binary heap of deadlines over a slab of actions.
//!
//! Each timer is a slab slot (its action and a generation) plus a 16-byte heap
//! entry `(deadline, slot, generation)`. Cancelling frees the slot and bumps
//! its generation, which turns the heap entry stale; stale entries are skipped
//! when they surface, and the heap is rebuilt when they outnumber live ones.
//! A million pending sleeps cost about 48 bytes each.
//!
//! Deadlines are nanoseconds since the hub's `epoch`, so they fit in a `u64`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::greenlet::header::{Header, HeaderRef};

/// What a timer does when it fires.
pub(crate) enum Action {
    /// Wake a parked greenlet of this hub. The greenlet cancels the timer
    /// before it moves on, so the pointer is live whenever the timer fires.
    Wake(NonNull<Header>),
    /// Raise the `Timeout` with this id in a greenlet of this hub (same
    /// liveness rule as `Wake`).
    Timeout(NonNull<Header>, u64),
    /// Start a greenlet spawned with `spawn_later`.
    Spawn(HeaderRef),
}

/// Names a timer so it can be cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    slot: u32,
    generation: u32,
}

struct Slot {
    generation: u32,
    action: Option<Action>,
}

pub(crate) struct Timers {
    epoch: Instant,
    heap: BinaryHeap<Reverse<(u64, u32, u32)>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

impl Timers {
    pub(crate) fn new() -> Self {
        Timers {
            epoch: Instant::now(),
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }

    fn ticks(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Number of pending timers.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn add(&mut self, deadline: Instant, action: Action) -> TimerKey {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    action: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.action = Some(action);
        let generation = s.generation;
        self.heap
            .push(Reverse((self.ticks(deadline), slot, generation)));
        self.live += 1;
        TimerKey { slot, generation }
    }

    /// Cancels a pending timer; returns its action if it had not fired.
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<Action> {
        let s = self.slots.get_mut(key.slot as usize)?;
        if s.generation != key.generation || s.action.is_none() {
            return None;
        }
        let action = self.release(key.slot);
        if self.heap.len() > 64 && self.heap.len() > 2 * self.live {
            self.compact();
        }
        action
    }

    fn release(&mut self, slot: u32) -> Option<Action> {
        let s = &mut self.slots[slot as usize];
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
        s.action.take()
    }

    /// Drops stale heap entries.
    fn compact(&mut self) {
        let slots = &self.slots;
        self.heap.retain(|Reverse((_, slot, generation))| {
            slots[*slot as usize].generation == *generation
        });
    }

    /// How long until the next timer is due (zero if one is), or `None`.
    pub(crate) fn next_timeout(&mut self, now: Instant) -> Option<Duration> {
        let now = self.ticks(now);
        while let Some(Reverse((at, slot, generation))) = self.heap.peek().copied() {
            if self.slots[slot as usize].generation != generation {
                self.heap.pop();
                continue;
            }
            return Some(Duration::from_nanos(at.saturating_sub(now)));
        }
        None
    }

    /// Takes the next action due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Action> {
        let now = self.ticks(now);
        while let Some(Reverse((at, slot, generation))) = self.heap.peek().copied() {
            if self.slots[slot as usize].generation != generation {
                self.heap.pop();
                continue;
            }
            if at > now {
                return None;
            }
            self.heap.pop();
            return self.release(slot);
        }
        None
    }

    /// Takes every pending action (at shutdown).
    pub(crate) fn drain(&mut self) -> Vec<Action> {
        self.heap.clear();
        let mut out = Vec::new();
        for slot in 0..self.slots.len() as u32 {
            if self.slots[slot as usize].action.is_some() {
                out.extend(self.release(slot));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(a: Action) -> u64 {
        match a {
            Action::Timeout(_, id) => id,
            _ => unreachable!(),
        }
    }

    fn timeout(id: u64) -> Action {
        Action::Timeout(NonNull::dangling(), id)
    }

    #[test]
    fn fires_in_deadline_order_and_skips_cancelled() {
        let mut t = Timers::new();
        let now = Instant::now();
        t.add(now + Duration::from_millis(30), timeout(3));
        let k = t.add(now + Duration::from_millis(10), timeout(1));
        t.add(now + Duration::from_millis(20), timeout(2));
        assert!(t.cancel(k).is_some());
        assert!(t.cancel(k).is_none(), "a cancelled timer cancels once");
        assert_eq!(t.len(), 2);
        let later = now + Duration::from_millis(40);
        let ids: Vec<_> = std::iter::from_fn(|| t.pop_due(later))
            .map(key_of)
            .collect();
        assert_eq!(ids, vec![2, 3]);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn next_timeout_reports_the_earliest_live_timer() {
        let mut t = Timers::new();
        let now = Instant::now();
        assert_eq!(t.next_timeout(now), None);
        let k = t.add(now + Duration::from_millis(5), timeout(1));
        t.add(now + Duration::from_millis(50), timeout(2));
        t.cancel(k);
        let d = t.next_timeout(now).unwrap();
        assert!(d > Duration::from_millis(40) && d <= Duration::from_millis(50));
        assert!(t.pop_due(now).is_none());
    }

    #[test]
    fn slots_are_reused_without_confusing_generations() {
        let mut t = Timers::new();
        let now = Instant::now();
        let a = t.add(now, timeout(1));
        t.cancel(a);
        let b = t.add(now, timeout(2));
        assert_ne!(a, b);
        assert!(t.cancel(a).is_none());
        assert_eq!(key_of(t.pop_due(now).unwrap()), 2);
    }

    #[test]
    fn heap_is_compacted_when_mostly_stale() {
        let mut t = Timers::new();
        let now = Instant::now();
        let keys: Vec<_> = (0..1000).map(|i| t.add(now, timeout(i))).collect();
        for k in &keys[..990] {
            t.cancel(*k);
        }
        assert!(t.heap.len() <= 2 * t.len().max(64));
    }
}
