//! The started greenlets of one worker that have not ended, for shutdown to
//! kill.
//!
//! A greenlet is added as it starts and removed as it ends, so both must be
//! cheap and touch nothing but the set and the greenlet's own record. The
//! set is a slab: each greenlet keeps its slot's index (in its record), an
//! ended greenlet's slot is cleared and its index reused by the next to
//! start. A list with `swap_remove` moved the last greenlet into the hole
//! and had to fix that greenlet's index, in a record on a stack that was
//! most likely out of cache.

use std::ptr::NonNull;

use crate::greenlet::header::Header;

#[derive(Default)]
pub(crate) struct LiveSet {
    /// A greenlet per slot; `None` in a free slot.
    slots: Vec<Option<NonNull<Header>>>,
    /// The free slots, the last freed first.
    free: Vec<usize>,
}

impl LiveSet {
    /// Adds `g`; returns its slot, for [`remove`](Self::remove).
    #[inline]
    pub(crate) fn insert(&mut self, g: NonNull<Header>) -> usize {
        match self.free.pop() {
            Some(at) => {
                debug_assert!(self.slots[at].is_none());
                self.slots[at] = Some(g);
                at
            }
            None => {
                self.slots.push(Some(g));
                self.slots.len() - 1
            }
        }
    }

    /// Removes `g` from slot `at`, if it is there.
    #[inline]
    pub(crate) fn remove(&mut self, g: NonNull<Header>, at: usize) {
        if let Some(slot) = self.slots.get_mut(at)
            && *slot == Some(g)
        {
            *slot = None;
            self.free.push(at);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.len() == self.free.len()
    }

    /// The greenlets in the set.
    pub(crate) fn to_vec(&self) -> Vec<NonNull<Header>> {
        self.slots.iter().flatten().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(n: usize) -> NonNull<Header> {
        // Never dereferenced: the set only compares and copies pointers.
        NonNull::new((n * 8) as *mut Header).unwrap()
    }

    #[test]
    fn slots_are_reused_and_removal_checks_the_greenlet() {
        let mut s = LiveSet::default();
        assert!(s.is_empty());
        let at: Vec<usize> = (1..=4).map(|n| s.insert(fake(n))).collect();
        assert_eq!(at, [0, 1, 2, 3]);
        s.remove(fake(2), at[1]);
        // A stale index (or another greenlet's) changes nothing.
        s.remove(fake(2), at[1]);
        s.remove(fake(3), at[0]);
        assert_eq!(s.to_vec(), [fake(1), fake(3), fake(4)]);
        assert_eq!(s.insert(fake(5)), 1, "the freed slot is reused");
        for (n, i) in [(1, 0), (3, 2), (4, 3), (5, 1)] {
            s.remove(fake(n), i);
        }
        assert!(s.is_empty());
        assert!(s.to_vec().is_empty());
    }
}
