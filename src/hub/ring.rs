//! The hub's run queues: a FIFO ring buffer for one thread.
//!
//! Every park, wake and yield pushes to or pops from these queues, so they
//! are kept to a few instructions: the capacity is a power of two (an index
//! is masked, not compared and wrapped), and there is no borrow flag to
//! check and restore, which `RefCell<VecDeque<T>>` paid on every push and
//! pop. That is sound because no method hands out a reference into the
//! buffer or runs code of anyone else's while it works on it (elements are
//! moved in and out whole; dropping them is the caller's business), and the
//! `Cell`s keep the ring on one thread. The one exception, `update_back`,
//! lends its closure the last element, and the closure must not reach the
//! ring (the hub's is a match on the element).

use std::cell::{Cell, UnsafeCell};
use std::mem::MaybeUninit;

/// The smallest buffer a ring allocates.
const MIN_CAPACITY: usize = 16;

pub(crate) struct Ring<T> {
    /// Empty until the first push, then a power-of-two number of slots.
    buf: UnsafeCell<Box<[MaybeUninit<T>]>>,
    /// Positions of the first element and one past the last; they only
    /// grow (wrapping), and are masked to index the buffer.
    head: Cell<usize>,
    tail: Cell<usize>,
}

impl<T> Ring<T> {
    pub(crate) fn new() -> Self {
        Ring {
            buf: UnsafeCell::new(Box::new([])),
            head: Cell::new(0),
            tail: Cell::new(0),
        }
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.tail.get().wrapping_sub(self.head.get())
    }

    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.get() == self.tail.get()
    }

    #[inline(always)]
    fn capacity(&self) -> usize {
        // SAFETY: no reference into the buffer outlives a method of ours,
        // and the ring is not shared between threads (see the module docs).
        unsafe { (&*self.buf.get()).len() }
    }

    #[inline(always)]
    pub(crate) fn push_back(&self, value: T) {
        if self.len() == self.capacity() {
            self.grow();
        }
        // SAFETY: as in `capacity`.
        let buf = unsafe { &mut *self.buf.get() };
        let tail = self.tail.get();
        // SAFETY: the mask keeps the index inside the (non-empty, after
        // `grow`) buffer, and the slot is free: the ring is not full.
        unsafe { (*buf.as_mut_ptr().add(tail & (buf.len() - 1))).write(value) };
        self.tail.set(tail.wrapping_add(1));
    }

    #[inline(always)]
    pub(crate) fn pop_front(&self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        // SAFETY: as in `capacity`.
        let buf = unsafe { &*self.buf.get() };
        let head = self.head.get();
        self.head.set(head.wrapping_add(1));
        // SAFETY: the mask keeps the index inside the buffer (non-empty:
        // the ring holds a value); positions from head to tail hold
        // initialised values, and moving head past this one gives up the
        // ring's claim on it.
        Some(unsafe { (*buf.as_ptr().add(head & (buf.len() - 1))).assume_init_read() })
    }

    /// Takes the first value out and puts `value` last, in one step (no
    /// room is needed: the first slot is read before the last is written,
    /// and they are the same slot only in a full ring); `value` back if
    /// the ring is empty.
    #[inline(always)]
    pub(crate) fn rotate(&self, value: T) -> Result<T, T> {
        if self.is_empty() {
            return Err(value);
        }
        // SAFETY: as in `capacity`.
        let buf = unsafe { &mut *self.buf.get() };
        let mask = buf.len() - 1;
        let (head, tail) = (self.head.get(), self.tail.get());
        // SAFETY: as in `pop_front` for the first value, then as in
        // `push_back` for the slot after the last, which is free once the
        // first is out (the first's own, in a full ring).
        let first = unsafe {
            let first = (*buf.as_ptr().add(head & mask)).assume_init_read();
            (*buf.as_mut_ptr().add(tail & mask)).write(value);
            first
        };
        self.head.set(head.wrapping_add(1));
        self.tail.set(tail.wrapping_add(1));
        Ok(first)
    }

    /// Lets `f` change the last value in place; false, without calling
    /// `f`, if the ring is empty. `f` must not reach the ring.
    #[inline(always)]
    pub(crate) fn update_back(&self, f: impl FnOnce(&mut T) -> bool) -> bool {
        if self.is_empty() {
            return false;
        }
        // SAFETY: as in `capacity`.
        let buf = unsafe { &mut *self.buf.get() };
        let last = self.tail.get().wrapping_sub(1) & (buf.len() - 1);
        // SAFETY: the mask keeps the index inside the (non-empty) buffer,
        // whose last position holds an initialised value that stays in the
        // ring; `f` gets the only reference, for its call.
        f(unsafe { (*buf.as_mut_ptr().add(last)).assume_init_mut() })
    }

    /// Puts `value` first, to come out next.
    #[inline(always)]
    pub(crate) fn push_front(&self, value: T) {
        if self.len() == self.capacity() {
            self.grow();
        }
        // SAFETY: as in `capacity`.
        let buf = unsafe { &mut *self.buf.get() };
        let head = self.head.get().wrapping_sub(1);
        // SAFETY: as in `push_back`: the masked index is inside the buffer
        // and the slot before the first value is free (not full).
        unsafe { (*buf.as_mut_ptr().add(head & (buf.len() - 1))).write(value) };
        self.head.set(head);
    }

    /// Doubles the buffer, keeping the order.
    #[cold]
    #[inline(never)]
    fn grow(&self) {
        let len = self.len();
        // SAFETY: as in `capacity`.
        let buf = unsafe { &mut *self.buf.get() };
        let cap = (buf.len() * 2).max(MIN_CAPACITY);
        let mut bigger: Box<[MaybeUninit<T>]> = (0..cap).map(|_| MaybeUninit::uninit()).collect();
        let head = self.head.get();
        for (i, slot) in bigger.iter_mut().take(len).enumerate() {
            // SAFETY: each initialised value is moved once, to the new
            // buffer; the old one is then freed without dropping any.
            slot.write(unsafe { buf[head.wrapping_add(i) & (buf.len() - 1)].assume_init_read() });
        }
        *buf = bigger;
        self.head.set(0);
        self.tail.set(len);
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        while self.pop_front().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn keeps_fifo_order_across_growth_and_wrap_around() {
        let r = Ring::new();
        let mut next_in = 0;
        let mut next_out = 0;
        // Interleave pushes and pops so head and tail wrap while the
        // buffer grows from empty to several times its first size.
        for round in 0..200 {
            for _ in 0..(round % 7) + 1 {
                r.push_back(next_in);
                next_in += 1;
            }
            for _ in 0..(round % 5) {
                if let Some(v) = r.pop_front() {
                    assert_eq!(v, next_out);
                    next_out += 1;
                }
            }
            assert_eq!(r.len(), next_in - next_out);
        }
        while let Some(v) = r.pop_front() {
            assert_eq!(v, next_out);
            next_out += 1;
        }
        assert_eq!(next_out, next_in);
        assert!(r.is_empty());
    }

    #[test]
    fn values_pushed_in_front_come_out_first() {
        let r = Ring::new();
        // Pushed in front of an empty buffer, then around the wrap point.
        for i in 0..40 {
            r.push_front(i);
            r.push_back(100 + i);
        }
        assert_eq!(r.len(), 80);
        for i in (0..40).rev() {
            assert_eq!(r.pop_front(), Some(i));
        }
        for i in 0..40 {
            assert_eq!(r.pop_front(), Some(100 + i));
        }
        assert_eq!(r.pop_front(), None);
        assert!(r.is_empty());
    }

    #[test]
    fn rotate_moves_the_first_last_even_when_full() {
        let r = Ring::new();
        assert_eq!(r.rotate(7), Err(7), "an empty ring gives the value back");
        // MIN_CAPACITY values fill the first buffer: the first slot is the
        // one the rotated value goes to.
        for i in 0..MIN_CAPACITY {
            r.push_back(i);
        }
        assert_eq!(r.len(), r.capacity());
        for i in 0..3 * MIN_CAPACITY {
            assert_eq!(
                r.rotate(100 + i),
                Ok(if i < MIN_CAPACITY {
                    i
                } else {
                    100 + i - MIN_CAPACITY
                })
            );
            assert_eq!(r.len(), MIN_CAPACITY);
        }
        for i in 0..MIN_CAPACITY {
            assert_eq!(r.pop_front(), Some(100 + 2 * MIN_CAPACITY + i));
        }
        assert!(r.is_empty());
    }

    #[test]
    fn update_back_changes_the_last_value_in_place() {
        let r = Ring::new();
        assert!(!r.update_back(|_: &mut u32| unreachable!("empty")));
        // Around the wrap point, so the last slot is at the buffer's end.
        for i in 0..MIN_CAPACITY as u32 {
            r.push_back(i);
            r.pop_front();
        }
        r.push_back(1);
        r.push_back(2);
        assert!(r.update_back(|v| {
            *v += 40;
            true
        }));
        assert_eq!(r.pop_front(), Some(1));
        assert_eq!(r.pop_front(), Some(42));
    }

    #[test]
    fn drops_what_it_still_holds_once() {
        let counted = Rc::new(());
        {
            let r = Ring::new();
            for _ in 0..40 {
                r.push_back(counted.clone());
            }
            for _ in 0..15 {
                drop(r.pop_front());
            }
            assert_eq!(Rc::strong_count(&counted), 26);
        }
        assert_eq!(Rc::strong_count(&counted), 1);
    }
}
