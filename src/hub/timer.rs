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

    /// Timers set, cancelled and fired in a random mix, at random times
    /// (some already past), against a plain list: every live timer fires
    /// once, none before its deadline, in deadline order (a timer set for a
    /// time before the last one fired counts as set for that time), and
    /// none is left once time runs past them all.
    #[test]
    fn random_mix_fires_every_live_timer_once_and_in_order() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut t = Timers::new();
        let epoch = t.epoch;
        let at = |ns: u64| epoch + Duration::from_nanos(ns);
        // id -> (deadline in ns, key, deadline for the order)
        let mut pending: std::collections::HashMap<u64, (u64, TimerKey, u64)> = Default::default();
        let mut fired = std::collections::HashSet::new();
        let mut now = 0u64;
        let mut last_fired = 0u64;
        for id in 0..20_000u64 {
            match next() % 8 {
                0..=4 => {
                    // Up to 2^(0..40) ns ahead, sometimes behind now.
                    let span = 1u64 << (next() % 40);
                    let d = if next() % 16 == 0 {
                        now.saturating_sub(next() % span)
                    } else {
                        now + next() % span
                    };
                    let key = t.add(at(d), timeout(id));
                    pending.insert(id, (d, key, d.max(last_fired)));
                }
                5 => {
                    if let Some(&victim) = pending.keys().next() {
                        let (_, key, _) = pending.remove(&victim).unwrap();
                        assert!(t.cancel(key).is_some());
                    }
                }
                _ => {
                    now += next() % (1 << (next() % 30));
                    while let Some(a) = t.pop_due(at(now)) {
                        let id = key_of(a);
                        let (d, _, order) = pending.remove(&id).expect("fired once, not cancelled");
                        assert!(d <= now, "fired early");
                        assert!(order >= last_fired, "out of order");
                        last_fired = order;
                        assert!(fired.insert(id));
                    }
                    let due = pending.values().filter(|p| p.0 <= now).count();
                    assert_eq!(due, 0, "a due timer was left");
                    let expect = pending.values().map(|p| p.0.saturating_sub(now)).min();
                    assert_eq!(t.next_timeout(at(now)), expect.map(Duration::from_nanos));
                }
            }
            assert_eq!(t.len(), pending.len());
        }
        let end = u64::MAX / 4;
        while let Some(a) = t.pop_due(at(end)) {
            assert!(pending.remove(&key_of(a)).is_some());
        }
        assert!(pending.is_empty());
        assert_eq!(t.next_timeout(at(end)), None);
    }
}
