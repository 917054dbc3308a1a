//! A per-thread cache of the memory spawned greenlets' cells live in.
//!
//! # Why
//!
//! Every spawn allocates one cell (a few hundred bytes) and every finished
//! greenlet frees one. A program that spawns in bursts (a greenlet per
//! request, 100,000 at once in the benchmarks) keeps more cells in flight
//! than the system allocator's per-thread caches hold, so each spawn and
//! each free took its slow path: about 200 instructions each way, a quarter
//! of a whole spawn + join. On worker threads glibc also grows its heap one
//! page per `mprotect`, thousands of calls in a burst, each contending with
//! the other workers' page faults.
//!
//! # How
//!
//! Cells of up to [`MAX_BLOCK`] bytes (alignment at most 16) are served from
//! blocks in size classes of [`CLASS_STEP`] bytes. A block starts with a
//! prefix naming the thread cache that made it and the slab it was carved
//! from; the cell follows. A freed block goes back to its own thread's
//! cache: pushed on a plain list when freed on that thread, or on the
//! cache's lock-free `remote` list when freed elsewhere (the owner takes that
//! list in one swap when its own lists run dry).
//!
//! New blocks are carved from slabs of about [`SLAB_BYTES`], one system
//! allocation each. A block that leaves the cache for good (trimmed, beyond
//! a cap, or freed to a closed cache) is given back to its slab, and the slab
//! goes back to the system allocator with its last block.
//!
//! What a cache keeps is bounded, over time on workers as for stacks: an
//! idle worker gives back, at most once a second ([`trim_now`]), the blocks
//! of each class beyond [`HOT_BLOCKS`] that stayed unused for the whole
//! second. A plain thread (which never goes idle in a hub) keeps at most
//! [`PLAIN_THREAD_BLOCKS`] per class and gives the rest back at once.
//!
//! A thread that exits gives back everything its cache holds (and the
//! blocks it never carved) and *closes* the cache: a block freed later, by
//! another thread, goes straight back to its slab. Caches are never freed; a
//! closed one is reopened by the next new thread, which then owns the
//! blocks still out (a block freed to it joins its lists like its own). So
//! the caches ever made number at most the threads alive at once.

use std::alloc::Layout;
use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Size classes are multiples of this.
const CLASS_STEP: usize = 64;
/// The largest block (prefix included) served from a cache.
const MAX_BLOCK: usize = 1024;
const CLASSES: usize = MAX_BLOCK / CLASS_STEP;
/// What precedes a cell in its block: the owning cache and the slab.
const PREFIX: usize = 16;
/// Blocks are carved from slabs of about this many bytes, one allocation
/// each: a burst of new cells then grows the system allocator's heap a slab
/// at a time (glibc grows a worker thread's heap with one `mprotect` per
/// request, so one per cell before).
const SLAB_BYTES: usize = 32 * 1024;
/// Room for the slab header; keeps the blocks 64-byte aligned.
const SLAB_HEADER: usize = 64;
/// Blocks of each class a worker's cache keeps for good.
const HOT_BLOCKS: usize = 256;
/// Blocks of each class a plain thread's cache keeps at most. Nothing trims
/// a plain thread's cache (only idle workers trim), so it is capped instead:
/// a thread that spawns a burst and then joins it gives the memory back.
const PLAIN_THREAD_BLOCKS: usize = 1024;
/// Marks a closed cache's `remote` list (no block is at this address).
const CLOSED: *mut Free = ptr::dangling_mut::<Free>();

/// A free block, linked through the word after its prefix.
struct Free {
    next: *mut Free,
}

/// The prefix of every cached block.
#[repr(C)]
struct Prefix {
    owner: *const Cache,
    slab: *const Slab,
}

/// The header of a slab of `count` blocks of one class. The slab is freed
/// when every block has been given back to it (`live` reaches zero); blocks
/// not carved yet count as live until their cache closes.
#[repr(C)]
struct Slab {
    class: usize,
    count: usize,
    live: AtomicUsize,
}

impl Slab {
    fn layout(class: usize, count: usize) -> Layout {
        Layout::from_size_align(SLAB_HEADER + count * block_size(class), SLAB_HEADER)
            .expect("a slab layout")
    }

    /// A new slab of `count` blocks of `class`: its header and its first
    /// block's address.
    fn new(class: usize, count: usize) -> (*const Slab, *mut u8) {
        let layout = Slab::layout(class, count);
        // SAFETY: a non-zero size.
        let base = unsafe { std::alloc::alloc(layout) };
        if base.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        let slab = base.cast::<Slab>();
        #[cfg(test)]
        tests::LIVE_SLABS[class].fetch_add(1, Ordering::Relaxed);
        // SAFETY: fresh memory, aligned for the header, with the blocks
        // after it.
        unsafe {
            slab.write(Slab {
                class,
                count,
                live: AtomicUsize::new(count),
            });
            (slab, base.add(SLAB_HEADER))
        }
    }

    /// Gives `n` blocks back to the slab, freeing it with the last.
    ///
    /// # Safety
    /// `slab` is alive and the `n` blocks are its own, free and used by
    /// nobody any more.
    unsafe fn release(slab: *const Slab, n: usize) {
        if n == 0 {
            return;
        }
        // SAFETY: alive per the caller; `live` counts blocks not given back,
        // these among them.
        unsafe {
            if (*slab).live.fetch_sub(n, Ordering::AcqRel) == n {
                #[cfg(test)]
                tests::LIVE_SLABS[(*slab).class].fetch_sub(1, Ordering::Relaxed);
                let layout = Slab::layout((*slab).class, (*slab).count);
                std::alloc::dealloc(slab.cast_mut().cast::<u8>(), layout);
            }
        }
    }
}

/// Where a cache carves its next new block of a class from.
struct Bump {
    slab: Cell<*const Slab>,
    next: Cell<*mut u8>,
    left: Cell<usize>,
}

/// One thread's cache.
struct Cache {
    /// Free blocks per class, for the owning thread only.
    local: [Cell<*mut Free>; CLASSES],
    /// How many blocks each `local` list holds, and the fewest since the
    /// last trim.
    len: [Cell<usize>; CLASSES],
    low_water: [Cell<usize>; CLASSES],
    /// Blocks freed by other threads (any class), or [`CLOSED`].
    remote: AtomicPtr<Free>,
    /// The slab being carved, per class.
    bump: [Bump; CLASSES],
}

// SAFETY: the `Cell` fields are touched only by the thread that owns the
// cache (the one whose `OWNED` holds it, or the one closing or reopening it
// under `CLOSED_CACHES`'s lock); other threads touch only `remote`, an
// atomic.
unsafe impl Sync for Cache {}

/// Closed caches, for new threads to reopen.
static CLOSED_CACHES: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// The calling thread's cache, closed when the thread exits.
struct Owned(&'static Cache);

impl Drop for Owned {
    fn drop(&mut self) {
        let cache = self.0;
        for class in 0..CLASSES {
            let mut p = cache.local[class].replace(ptr::null_mut());
            while !p.is_null() {
                // SAFETY: blocks on a local list are free and ours.
                let next = unsafe { (*p).next };
                // SAFETY: as above; `p` points just past the prefix.
                unsafe { free_block(p) };
                p = next;
            }
            cache.len[class].set(0);
            cache.low_water[class].set(0);
            // The blocks never carved go back with the slab's share.
            let bump = &cache.bump[class];
            let slab = bump.slab.replace(ptr::null());
            // SAFETY: a slab we carve from is alive (its uncarved blocks
            // count as live), and those blocks were never handed out.
            unsafe { Slab::release(slab, bump.left.replace(0)) };
            bump.next.set(ptr::null_mut());
        }
        // From now on other threads free to the system allocator.
        let p = cache.remote.swap(CLOSED, Ordering::Acquire);
        // SAFETY: the remote list was handed over whole by the swap.
        unsafe { free_list(p) };
        CLOSED_CACHES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cache as *const Cache as usize);
    }
}

thread_local! {
    static OWNED: Owned = Owned(open_cache());
}

/// A cache for this thread: a closed one reopened, or a new one.
fn open_cache() -> &'static Cache {
    let reused = CLOSED_CACHES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop();
    match reused {
        Some(addr) => {
            // SAFETY: caches are leaked, so never freed; a closed one is in
            // the list once, and we just took it out.
            let cache = unsafe { &*(addr as *const Cache) };
            // Blocks freed to it while it was closed went to the system
            // allocator; from now on they come to us.
            cache.remote.store(ptr::null_mut(), Ordering::Release);
            cache
        }
        None => Box::leak(Box::new(Cache {
            local: std::array::from_fn(|_| Cell::new(ptr::null_mut())),
            len: std::array::from_fn(|_| Cell::new(0)),
            low_water: std::array::from_fn(|_| Cell::new(0)),
            remote: AtomicPtr::new(ptr::null_mut()),
            bump: std::array::from_fn(|_| Bump {
                slab: Cell::new(ptr::null()),
                next: Cell::new(ptr::null_mut()),
                left: Cell::new(0),
            }),
        })),
    }
}

/// The class of a cell layout, if cells of that layout are cached.
#[inline(always)]
const fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > PREFIX || layout.size() > MAX_BLOCK - PREFIX {
        return None;
    }
    Some((layout.size() + PREFIX).div_ceil(CLASS_STEP) - 1)
}

/// The size of a whole block of `class`, prefix included.
#[inline(always)]
const fn block_size(class: usize) -> usize {
    (class + 1) * CLASS_STEP
}

/// Gives a block (given by the address after its prefix) back to its slab,
/// for good: the memory goes back to the system allocator with the slab.
///
/// # Safety
/// `p` is a free block made by [`new_block`], used by nobody any more.
unsafe fn free_block(p: *mut Free) {
    // SAFETY: per the caller, its prefix names its slab, alive while the
    // block is not given back.
    unsafe { Slab::release((*prefix_of(p)).slab, 1) }
}

/// Frees every block of a remote list to the system allocator.
///
/// # Safety
/// The list is ours alone (taken whole from a `remote` list).
unsafe fn free_list(mut p: *mut Free) {
    while !p.is_null() && p != CLOSED {
        // SAFETY: a free block of ours alone.
        unsafe {
            let next = (*p).next;
            free_block(p);
            p = next;
        }
    }
}

#[inline(always)]
fn prefix_of(p: *mut Free) -> *mut Prefix {
    // SAFETY (of the arithmetic): every cached block starts PREFIX bytes
    // before what its users see.
    p.cast::<u8>().wrapping_sub(PREFIX).cast::<Prefix>()
}

/// A new block of `class` for `cache`, carved from its slab of that class
/// (a new slab when that one is used up).
#[cold]
fn new_block(cache: &'static Cache, class: usize) -> NonNull<u8> {
    let bump = &cache.bump[class];
    if bump.left.get() == 0 {
        let (slab, first) = Slab::new(class, (SLAB_BYTES - SLAB_HEADER) / block_size(class));
        bump.slab.set(slab);
        bump.next.set(first);
        // SAFETY: just made.
        bump.left.set(unsafe { (*slab).count });
    }
    let base = bump.next.get();
    // SAFETY: `left` blocks remain from `base` on, inside the slab.
    bump.next.set(unsafe { base.add(block_size(class)) });
    bump.left.set(bump.left.get() - 1);
    // SAFETY: an uncarved block of the slab: ours, 64-byte aligned, of
    // `block_size(class)` bytes.
    unsafe { write_prefix(base, cache, bump.slab.get()) }
}

/// A block for a thread whose cache is gone (thread teardown): a slab of
/// one, owned by no cache.
#[cold]
fn orphan_block(class: usize) -> NonNull<u8> {
    let (slab, base) = Slab::new(class, 1);
    // SAFETY: the slab's only block.
    unsafe { write_prefix(base, ptr::null(), slab) }
}

/// Writes a block's prefix; the address its user gets.
///
/// # Safety
/// `base` is a whole free block of `slab`.
unsafe fn write_prefix(base: *mut u8, owner: *const Cache, slab: *const Slab) -> NonNull<u8> {
    // SAFETY: per the caller.
    unsafe {
        base.cast::<Prefix>().write(Prefix { owner, slab });
        NonNull::new_unchecked(base.add(PREFIX))
    }
}

/// Memory for a cell of `layout` (uninitialised).
#[inline]
pub(crate) fn alloc(layout: Layout) -> NonNull<u8> {
    let Some(class) = class_of(layout) else {
        // SAFETY: cells are never zero-sized (they hold a header).
        let p = unsafe { std::alloc::alloc(layout) };
        return NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
    };
    // During thread teardown the cache may be gone: use the system
    // allocator then (such a block has a prefix too, owned by no cache).
    OWNED
        .try_with(|o| take(o.0, class))
        .unwrap_or_else(|_| orphan_block(class))
}

#[inline(always)]
fn take(cache: &'static Cache, class: usize) -> NonNull<u8> {
    let head = cache.local[class].get();
    if head.is_null() {
        return take_slow(cache, class);
    }
    // SAFETY: blocks on our local list are free and ours.
    cache.local[class].set(unsafe { (*head).next });
    let len = cache.len[class].get() - 1;
    cache.len[class].set(len);
    if len < cache.low_water[class].get() {
        cache.low_water[class].set(len);
    }
    // SAFETY: not null.
    unsafe { NonNull::new_unchecked(head.cast::<u8>()) }
}

/// The local list of `class` is empty: take in what other threads freed,
/// else make a new block.
#[cold]
fn take_slow(cache: &'static Cache, class: usize) -> NonNull<u8> {
    let mut p = cache.remote.swap(ptr::null_mut(), Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: the list was handed over whole by the swap; each block is
        // free and now ours.
        unsafe {
            let next = (*p).next;
            let c = (*(*prefix_of(p)).slab).class;
            keep(cache, c, p);
            p = next;
        }
    }
    let head = cache.local[class].get();
    if head.is_null() {
        return new_block(cache, class);
    }
    take(cache, class)
}

/// Keeps a free block of ours for reuse, unless this plain thread's cache
/// is full (then it goes back to the system allocator).
#[inline(always)]
fn keep(cache: &Cache, class: usize, p: *mut Free) {
    if cache.len[class].get() >= PLAIN_THREAD_BLOCKS && !crate::hub::Driver::is_worker_thread() {
        // SAFETY: a free block of ours, held by nobody else.
        unsafe { free_block(p) };
    } else {
        give(cache, class, p);
    }
}

/// Puts a free block of ours on its local list.
#[inline(always)]
fn give(cache: &Cache, class: usize, p: *mut Free) {
    // SAFETY: `p` is a free block nobody else holds.
    unsafe { (*p).next = cache.local[class].get() };
    cache.local[class].set(p);
    cache.len[class].set(cache.len[class].get() + 1);
}

/// Frees memory from [`alloc`] for a cell of `layout` (already dropped).
///
/// # Safety
/// `p` came from `alloc(layout)` with this same layout and is not used
/// again.
#[inline]
pub(crate) unsafe fn dealloc(p: NonNull<u8>, layout: Layout) {
    if class_of(layout).is_none() {
        // SAFETY: per the caller, from the system allocator with `layout`.
        unsafe { std::alloc::dealloc(p.as_ptr(), layout) };
        return;
    }
    let class = class_of(layout).expect("checked");
    let block = p.as_ptr().cast::<Free>();
    // SAFETY: a cached block: its prefix is just before it.
    let owner = unsafe { (*prefix_of(block)).owner };
    if owner.is_null() {
        // SAFETY: an orphan block, used by nobody any more.
        unsafe { free_block(block) };
        return;
    }
    // SAFETY: caches are never freed.
    let owner = unsafe { &*owner };
    let mine = OWNED.try_with(|o| ptr::eq(o.0, owner)).unwrap_or(false);
    if mine {
        keep(owner, class, block);
    } else {
        // SAFETY: the block is free and ours to hand over.
        unsafe { free_remote(owner, block) };
    }
}

/// Hands a block to another thread's cache (or back to its slab if that
/// cache is closed).
///
/// # Safety
/// `p` is a free block owned by `cache`, held by nobody else.
#[cold]
unsafe fn free_remote(cache: &Cache, p: *mut Free) {
    let mut head = cache.remote.load(Ordering::Relaxed);
    loop {
        if head == CLOSED {
            // SAFETY: per the caller.
            unsafe { free_block(p) };
            return;
        }
        // SAFETY: per the caller, the block is ours until the push lands.
        unsafe { (*p).next = head };
        match cache
            .remote
            .compare_exchange_weak(head, p, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => return,
            Err(actual) => head = actual,
        }
    }
}

/// Gives back the blocks of each class beyond [`HOT_BLOCKS`] that stayed
/// unused since the last trim.
fn trim(cache: &Cache) {
    for class in 0..CLASSES {
        let excess = cache.low_water[class].get().saturating_sub(HOT_BLOCKS);
        for _ in 0..excess {
            let head = cache.local[class].get();
            // SAFETY: there are at least `excess` blocks on the list; each
            // is free and ours.
            unsafe {
                cache.local[class].set((*head).next);
                free_block(head);
            }
        }
        let len = cache.len[class].get() - excess;
        cache.len[class].set(len);
        cache.low_water[class].set(len);
    }
}

/// Trims this thread's cache (called by an idle worker once a trim period,
/// with the stack pool's trim).
pub(crate) fn trim_now() {
    let _ = OWNED.try_with(|o| trim(o.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slabs alive per class. Class 15 (cells of 993 to 1008 bytes) is used
    /// by the slab tests alone.
    pub(super) static LIVE_SLABS: [AtomicUsize; CLASSES] = [const { AtomicUsize::new(0) }; CLASSES];
    const SLAB_TEST_SIZE: usize = 1000;
    static SLAB_TESTS: Mutex<()> = Mutex::new(());

    fn slab_test_layout() -> Layout {
        Layout::from_size_align(SLAB_TEST_SIZE, 16).unwrap()
    }

    fn live_test_slabs() -> usize {
        LIVE_SLABS[class_of(slab_test_layout()).unwrap()].load(Ordering::Relaxed)
    }

    #[test]
    fn slabs_are_freed_once_every_block_is_back() {
        let _one = SLAB_TESTS.lock().unwrap();
        assert_eq!(class_of(slab_test_layout()), Some(15));
        // Counts are global (a test's blocks may sit in another thread's
        // cache for a while): compare with what was there before.
        let before = live_test_slabs();
        // Blocks made and freed on a thread that then exits.
        std::thread::spawn(move || {
            let blocks: Vec<_> = (0..100).map(|_| alloc(slab_test_layout())).collect();
            let per_slab = (SLAB_BYTES - SLAB_HEADER) / block_size(15);
            assert!(live_test_slabs() >= before + 100 / per_slab);
            for b in blocks {
                // SAFETY: from alloc with this layout, once.
                unsafe { dealloc(b, slab_test_layout()) };
            }
        })
        .join()
        .unwrap();
        assert!(live_test_slabs() <= before, "the thread's slabs were freed");
    }

    #[test]
    fn blocks_still_out_keep_their_slab_after_their_thread_exits() {
        let _one = SLAB_TESTS.lock().unwrap();
        let before = live_test_slabs();
        let addrs: Vec<usize> = std::thread::spawn(|| {
            (0..100)
                .map(|_| alloc(slab_test_layout()).as_ptr() as usize)
                .collect()
        })
        .join()
        .unwrap();
        assert!(
            live_test_slabs() > before,
            "the blocks still out keep their slabs"
        );
        for a in &addrs {
            // SAFETY: each block is ours and has room for the test's bytes.
            unsafe { (*a as *mut u8).write_bytes(0xA5, SLAB_TEST_SIZE) };
        }
        for a in addrs {
            // SAFETY: from alloc with this layout, once.
            unsafe { dealloc(NonNull::new(a as *mut u8).unwrap(), slab_test_layout()) };
        }
    }

    /// A cell of 300 bytes, aligned as a header is.
    fn layout() -> Layout {
        Layout::from_size_align(300, 16).unwrap()
    }

    #[test]
    fn classes_cover_sizes_with_the_prefix() {
        assert_eq!(class_of(Layout::from_size_align(1, 8).unwrap()), Some(0));
        assert_eq!(class_of(Layout::from_size_align(48, 8).unwrap()), Some(0));
        assert_eq!(class_of(Layout::from_size_align(49, 8).unwrap()), Some(1));
        assert_eq!(
            class_of(Layout::from_size_align(MAX_BLOCK - PREFIX, 16).unwrap()),
            Some(CLASSES - 1)
        );
        assert_eq!(
            class_of(Layout::from_size_align(MAX_BLOCK, 8).unwrap()),
            None
        );
        assert_eq!(class_of(Layout::from_size_align(64, 32).unwrap()), None);
        for size in 1..=MAX_BLOCK - PREFIX {
            let c = class_of(Layout::from_size_align(size, 8).unwrap()).unwrap();
            assert!(block_size(c) >= size + PREFIX);
        }
    }

    #[test]
    fn a_freed_block_is_reused_on_its_thread() {
        let a = alloc(layout());
        // SAFETY: from alloc with this layout.
        unsafe { dealloc(a, layout()) };
        let b = alloc(layout());
        assert_eq!(a, b);
        // SAFETY: as above.
        unsafe { dealloc(b, layout()) };
    }

    #[test]
    fn blocks_are_writable_and_distinct() {
        let blocks: Vec<_> = (0..1000).map(|_| alloc(layout())).collect();
        for (i, b) in blocks.iter().enumerate() {
            // SAFETY: each block has room for 300 bytes.
            unsafe { b.as_ptr().write_bytes(i as u8, 300) };
        }
        for (i, b) in blocks.iter().enumerate() {
            // SAFETY: as above.
            let s = unsafe { std::slice::from_raw_parts(b.as_ptr(), 300) };
            assert!(s.iter().all(|&x| x == i as u8));
        }
        for b in blocks {
            // SAFETY: from alloc with this layout, once.
            unsafe { dealloc(b, layout()) };
        }
    }

    #[test]
    fn a_block_freed_on_another_thread_returns_to_its_owner() {
        let a = alloc(layout());
        let addr = a.as_ptr() as usize;
        std::thread::spawn(move || {
            let p = NonNull::new(addr as *mut u8).unwrap();
            // SAFETY: from alloc with this layout, handed over whole.
            unsafe { dealloc(p, layout()) };
        })
        .join()
        .unwrap();
        // Our local list of that class may hold others: drain until found.
        let mut got = Vec::new();
        let found = loop {
            let b = alloc(layout());
            if b.as_ptr() as usize == addr {
                break true;
            }
            got.push(b);
            if got.len() > 10_000 {
                break false;
            }
        };
        assert!(found, "the block came back to the cache that made it");
        for b in got
            .into_iter()
            .chain(std::iter::once(NonNull::new(addr as *mut u8).unwrap()))
        {
            // SAFETY: each from alloc with this layout, once.
            unsafe { dealloc(b, layout()) };
        }
    }

    #[test]
    fn blocks_outliving_their_thread_are_freed_safely() {
        // Blocks made on threads that exit, freed here afterwards (to a
        // closed or a reopened cache), many times over.
        for _ in 0..20 {
            let addrs: Vec<usize> = std::thread::spawn(|| {
                (0..500)
                    .map(|_| alloc(layout()).as_ptr() as usize)
                    .collect()
            })
            .join()
            .unwrap();
            for a in addrs {
                // SAFETY: from alloc with this layout, once.
                unsafe { dealloc(NonNull::new(a as *mut u8).unwrap(), layout()) };
            }
        }
    }

    #[test]
    fn a_plain_thread_keeps_a_bounded_number_of_blocks() {
        // Test threads are plain threads (no hub).
        let odd = Layout::from_size_align(700, 16).unwrap();
        let class = class_of(odd).unwrap();
        let blocks: Vec<_> = (0..PLAIN_THREAD_BLOCKS + 500).map(|_| alloc(odd)).collect();
        for b in blocks {
            // SAFETY: from alloc with this layout, once.
            unsafe { dealloc(b, odd) };
        }
        assert_eq!(OWNED.with(|o| o.0.len[class].get()), PLAIN_THREAD_BLOCKS);
    }

    #[test]
    fn trimming_gives_back_only_blocks_unused_for_a_whole_period() {
        let big = Layout::from_size_align(900, 16).unwrap();
        let class = class_of(big).unwrap();
        let n = HOT_BLOCKS + 50;
        let blocks: Vec<_> = (0..n).map(|_| alloc(big)).collect();
        for b in blocks {
            // SAFETY: from alloc with this layout, once.
            unsafe { dealloc(b, big) };
        }
        let len = || OWNED.with(|o| o.0.len[class].get());
        let held = len();
        assert!(held >= n);
        OWNED.with(|o| o.0.low_water[class].set(held));
        trim_now();
        assert_eq!(len(), HOT_BLOCKS);
        // The rest were in use during the period (low water at HOT_BLOCKS
        // now): nothing more goes.
        trim_now();
        assert_eq!(len(), HOT_BLOCKS);
    }
}
