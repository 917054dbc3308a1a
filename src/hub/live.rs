//! The started greenlets of one worker that have not ended, for shutdown to
//! kill.
//!
//! A greenlet is added as it starts and removed as it ends, so both must be
//! cheap and touch nothing but the set and the greenlet's own record. The
//! set is a slab: each greenlet keeps its slot's index (in its record), an
//! ended greenlet's slot joins a free list threaded through the free
//! slots, and the next greenlet to start takes it. A list with
//! `swap_remove` moved the last greenlet into the hole and had to fix that
//! greenlet's index, in a record on a stack that was most likely out of
//! cache.

use std::ptr::NonNull;

use crate::greenlet::header::Header;

/// A free slot's word: the next free slot's index, shifted, with the low
/// bit set (a greenlet's address, 8-aligned, has it clear).
const FREE: usize = 1;
/// The end of the free list.
const NO_SLOT: usize = usize::MAX >> 1;

pub(crate) struct LiveSet {
    /// A greenlet's address, or a free slot's word.
    slots: Vec<usize>,
    /// The first free slot (the last freed), or `NO_SLOT`.
    free: usize,
    /// How many slots hold a greenlet.
    len: usize,
}

impl Default for LiveSet {
    fn default() -> Self {
        LiveSet {
            slots: Vec::new(),
            free: NO_SLOT,
            len: 0,
        }
    }
}

impl LiveSet {
    /// Adds `g`; returns its slot, for [`remove`](Self::remove).
    #[inline]
    pub(crate) fn insert(&mut self, g: NonNull<Header>) -> usize {
        let word = g.as_ptr() as usize;
        debug_assert_eq!(word & FREE, 0);
        self.len += 1;
        let at = self.free;
        if at == NO_SLOT {
            self.slots.push(word);
            return self.slots.len() - 1;
        }
        self.free = self.slots[at] >> 1;
        self.slots[at] = word;
        at
    }

    /// Removes `g` from slot `at`, if it is there.
    #[inline]
    pub(crate) fn remove(&mut self, g: NonNull<Header>, at: usize) {
        if let Some(slot) = self.slots.get_mut(at)
            && *slot == g.as_ptr() as usize
        {
            *slot = self.free << 1 | FREE;
            self.free = at;
            self.len -= 1;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The greenlets in the set.
    pub(crate) fn to_vec(&self) -> Vec<NonNull<Header>> {
        self.slots
            .iter()
            .filter(|&&w| w & FREE == 0)
            .filter_map(|&w| NonNull::new(w as *mut Header))
            .collect()
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
