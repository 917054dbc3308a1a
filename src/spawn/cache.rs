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
//! prefix naming the thread cache that made it and its class; the cell
//! follows. A freed block goes back to its own thread's cache: pushed on a
//! plain list when freed on that thread, or on the cache's lock-free
//! `remote` list when freed elsewhere (the owner takes that list in one swap
//! when its own lists run dry). Blocks come from the system allocator one by
//! one, so any block can also go back to it alone.
//!
//! What a cache keeps is bounded, over time on workers as for stacks: an
//! idle worker gives back, at most once a second ([`trim_now`]), the blocks
//! of each class beyond [`HOT_BLOCKS`] that stayed unused for the whole
//! second. A plain thread (which never goes idle in a hub) keeps at most
//! [`PLAIN_THREAD_BLOCKS`] per class and frees the rest at once.
//!
//! A thread that exits empties its cache into the system allocator and
//! *closes* it: a block freed later, by another thread, goes straight to the
//! system allocator. Caches are never freed; a closed one is reopened by the
//! next new thread, which then owns the blocks still out (a block freed to
//! it joins its lists like its own). So the caches ever made number at most
//! the threads alive at once.

use std::alloc::Layout;
use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Size classes are multiples of this.
const CLASS_STEP: usize = 64;
/// The largest block (prefix included) served from a cache.
const MAX_BLOCK: usize = 1024;
const CLASSES: usize = MAX_BLOCK / CLASS_STEP;
/// What precedes a cell in its block: the owning cache and the class.
const PREFIX: usize = 16;
/// What [`grow_heap_ahead`] takes and frees: under glibc's smallest
/// threshold for serving an allocation with a mapping of its own (128 KiB),
/// so that it comes from the heap.
const HEAP_PAD: usize = 120 * 1024;
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
    class: usize,
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
                unsafe { free_block(p, class) };
                p = next;
            }
            cache.len[class].set(0);
            cache.low_water[class].set(0);
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
    /// Bytes of new blocks since the heap was last grown ahead.
    static SINCE_GROWN: Cell<usize> = const { Cell::new(usize::MAX) };
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

/// The size of the block a cell of `layout` gets, prefix included, if such
/// cells are cached.
#[cfg(test)]
pub(crate) fn block_size(layout: Layout) -> Option<usize> {
    class_of(layout).map(|c| block_layout(c).size())
}

/// The layout of a whole block of `class`.
#[inline(always)]
fn block_layout(class: usize) -> Layout {
    // SAFETY: a non-zero multiple of 64 with a power-of-two alignment.
    unsafe { Layout::from_size_align_unchecked((class + 1) * CLASS_STEP, PREFIX) }
}

/// Frees a block (given by the address after its prefix) to the system
/// allocator.
///
/// # Safety
/// `p` is a free block of `class` made by [`new_block`].
unsafe fn free_block(p: *mut Free, class: usize) {
    // SAFETY: per the caller, the block starts PREFIX bytes before.
    unsafe { std::alloc::dealloc(p.cast::<u8>().sub(PREFIX), block_layout(class)) }
}

/// Frees every block of a remote list to the system allocator.
///
/// # Safety
/// The list is ours alone (taken whole from a `remote` list).
unsafe fn free_list(mut p: *mut Free) {
    while !p.is_null() && p != CLOSED {
        // SAFETY: a free block whose prefix says its class.
        unsafe {
            let next = (*p).next;
            let class = (*prefix_of(p)).class;
            free_block(p, class);
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

/// A new block of `class` from the system allocator, owned by `owner`
/// (null: by no cache).
#[cold]
fn new_block(owner: *const Cache, class: usize) -> NonNull<u8> {
    let layout = block_layout(class);
    let _ = SINCE_GROWN.try_with(|s| s.set(s.get().saturating_add(layout.size())));
    // SAFETY: a non-zero size.
    let base = unsafe { std::alloc::alloc(layout) };
    if base.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: a fresh block of at least PREFIX bytes, suitably aligned.
    unsafe {
        base.cast::<Prefix>().write(Prefix { owner, class });
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
        .unwrap_or_else(|_| new_block(ptr::null(), class))
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
            let c = (*prefix_of(p)).class;
            keep(cache, c, p);
            p = next;
        }
    }
    let head = cache.local[class].get();
    if head.is_null() {
        grow_heap_ahead();
        return new_block(cache, class);
    }
    take(cache, class)
}

/// Makes the system allocator grow this thread's heap by about
/// [`HEAP_PAD`] / 2 at once, by taking and freeing [`HEAP_PAD`] bytes.
///
/// glibc grows a worker thread's heap by just what each allocation needs,
/// one `mprotect` per page; each such call takes the process's memory-map
/// lock for writing, and page faults on every other worker (and so their
/// timers) wait behind it. Called when a burst of spawns has used up the
/// cache, once per [`HEAP_PAD`] / 2 bytes of new blocks: a burst of 100,000
/// spawns then makes about 15 times fewer such calls. With an allocator
/// that does not grow that way it costs an allocation and a free.
#[cold]
fn grow_heap_ahead() {
    let _ = SINCE_GROWN.try_with(|s| {
        if s.get() < HEAP_PAD / 2 {
            return;
        }
        let layout = Layout::from_size_align(HEAP_PAD, 16).expect("a valid layout");
        // SAFETY: a non-zero size; freed at once, never used. `black_box`
        // keeps the compiler from eliding the pair.
        unsafe {
            let p = std::hint::black_box(std::alloc::alloc(layout));
            if !p.is_null() {
                std::alloc::dealloc(p, layout);
            }
        }
        s.set(0);
    });
}

/// Keeps a free block of ours for reuse, unless this plain thread's cache
/// is full (then it goes back to the system allocator).
#[inline(always)]
fn keep(cache: &Cache, class: usize, p: *mut Free) {
    if cache.len[class].get() >= PLAIN_THREAD_BLOCKS && !crate::hub::Driver::is_worker_thread() {
        // SAFETY: a free block of ours, held by nobody else.
        unsafe { free_block(p, class) };
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
    let block = p.as_ptr().cast::<Free>();
    // SAFETY: a cached block: its prefix is just before it.
    let Prefix { owner, class } = unsafe { prefix_of(block).read() };
    if owner.is_null() {
        // SAFETY: an orphan block, from the system allocator.
        unsafe { free_block(block, class) };
        return;
    }
    // SAFETY: caches are never freed.
    let owner = unsafe { &*owner };
    let mine = OWNED.try_with(|o| ptr::eq(o.0, owner)).unwrap_or(false);
    if mine {
        keep(owner, class, block);
    } else {
        // SAFETY: the block is free and ours to hand over.
        unsafe { free_remote(owner, block, class) };
    }
}

/// Hands a block to another thread's cache (or to the system allocator if
/// that cache is closed).
///
/// # Safety
/// `p` is a free block of `class` owned by `cache`, held by nobody else.
#[cold]
unsafe fn free_remote(cache: &Cache, p: *mut Free, class: usize) {
    let mut head = cache.remote.load(Ordering::Relaxed);
    loop {
        if head == CLOSED {
            // SAFETY: per the caller.
            unsafe { free_block(p, class) };
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
                free_block(head, class);
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
            assert!(block_layout(c).size() >= size + PREFIX);
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

    /// Blocks held by this thread's cache, all classes together.
    fn cached_blocks() -> usize {
        OWNED.with(|o| o.0.len.iter().map(Cell::get).sum())
    }

    /// A worker that goes idle gives back, once its greenlets' cells have
    /// gone unused for a whole trim period, those beyond `HOT_BLOCKS`: the
    /// idle loop's call to `trim_now`, end to end.
    #[test]
    fn an_idle_worker_gives_back_the_cells_of_a_burst() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = crate::Builder::new().workers(1).build().unwrap();
            rt.run(|| {
                // The main greenlet runs on the worker: its spawns take
                // cells from the worker's cache, and they come back there.
                let before = cached_blocks();
                let gs: Vec<_> = (0..2_000).map(|_| crate::spawn(|| ())).collect();
                crate::joinall(&gs);
                drop(gs);
                let burst = cached_blocks();
                assert!(burst >= before + 2_000, "{before} then {burst}");
                // Each sleep idles the worker, which trims at most once a
                // period; the second trim after the burst gives back.
                let start = std::time::Instant::now();
                while cached_blocks() > before + HOT_BLOCKS {
                    assert!(
                        start.elapsed() < std::time::Duration::from_secs(10),
                        "still {} blocks held (before the burst: {before})",
                        cached_blocks()
                    );
                    crate::sleep(std::time::Duration::from_millis(100));
                }
            });
            let _ = tx.send(());
        });
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("the test finishes (or panics) within 30 s");
    }
}
