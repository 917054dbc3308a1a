//! The cell cache grows the system allocator's heap ahead of a burst of
//! spawns, in steps rather than a page at a time (`spawn::cache`, the
//! `grow_heap_ahead` pad). Counted with an allocator that watches one
//! thread: the blocks the cache makes for cells (16-aligned, whole multiples
//! of 64 bytes, at most 1 KiB) and the pads (120 KiB, taken and freed).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::guard;

struct Counting;

thread_local! {
    static WATCH: Cell<bool> = const { Cell::new(false) };
    static BLOCK_BYTES: Cell<usize> = const { Cell::new(0) };
    static PADS: Cell<usize> = const { Cell::new(0) };
}

const PAD: usize = 120 * 1024;

fn is_cell_block(layout: Layout) -> bool {
    layout.align() == 16 && layout.size().is_multiple_of(64) && layout.size() <= 1024
}

// SAFETY: every call goes to the system allocator unchanged; the counting
// touches const-initialised thread-locals without destructors (no
// allocation, usable during thread teardown through `try_with`).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = WATCH.try_with(|w| {
            if w.get() {
                if layout.size() == PAD && layout.align() == 16 {
                    PADS.with(|p| p.set(p.get() + 1));
                } else if is_cell_block(layout) {
                    BLOCK_BYTES.with(|b| b.set(b.get() + layout.size()));
                }
            }
        });
        // SAFETY: as the caller promised us.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as the caller promised us.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn a_burst_of_spawns_grows_the_heap_once_per_60_kib_of_new_cells() {
    guard(|| {
        // A new thread has an empty cache (a reopened one was emptied when
        // its thread exited), and the handles keep every cell in use, so
        // each spawn makes a new block.
        WATCH.with(|w| w.set(true));
        let gs: Vec<_> = (0..20_000).map(|i| greenlet::spawn(move || i)).collect();
        WATCH.with(|w| w.set(false));
        let bytes = BLOCK_BYTES.with(Cell::get);
        let pads = PADS.with(Cell::get);
        greenlet::joinall(&gs);
        assert!(gs.iter().enumerate().all(|(i, g)| g.get().ok() == Some(&i)));

        assert!(
            bytes >= 20_000 * 64,
            "only {bytes} bytes of cell blocks were made"
        );
        // One pad as the first block is made, then one per 60 KiB.
        let expected = 1 + bytes / (PAD / 2);
        assert!(
            pads + 1 >= expected && pads <= expected + 1,
            "{pads} pads for {bytes} bytes of new blocks; expected about {expected}"
        );
    });
}
