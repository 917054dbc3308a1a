//! Greenlet stacks: carved from mmap slabs, pooled per thread, guarded.
//!
//! # Design
//!
//! A stack is `size` usable bytes above one guard page. Stacks are cut from
//! slabs, large anonymous mappings made with `MAP_NORESERVE`, so a slab costs
//! address space, not memory: a page becomes resident only when a greenlet
//! touches it, and nothing here writes to a stack (no painting), so an idle
//! greenlet costs the page or two its frames use.
//!
//! Guard pages: on Linux 6.13 and later `madvise(MADV_GUARD_INSTALL)` marks
//! the guard page inside the slab's single mapping (for a whole slab in one
//! `process_madvise` where the kernel takes it). Older kernels get an
//! `mprotect(PROT_NONE)` guard, which splits the mapping: every stack then
//! costs two of the kernel's `vm.max_map_count` mappings (65530 by default),
//! and running out is reported with that name and how to raise it.
//!
//! Ownership: each thread has its own pool (a free list per stack size) and
//! never shares it, so taking and returning a stack is a `Vec` pop and push.
//! Returning a stack makes no system call: a worker gives pages back only
//! when idle, at most once a second, for the stacks that stayed unused over
//! the whole second beyond the first [`HOT_STACKS`] (a `madvise` per run of
//! neighbouring stacks: each one flushes other CPUs' TLBs, which a busy
//! worker must not pay per greenlet).
//! A stack is returned by dropping it, on the thread that took it (the greenlet
//! core drops a coroutine only on its own thread). A slab is unmapped when the
//! pool and every stack cut from it are gone, that is at thread exit.
//!
//! Overflow: a fault in the guard page of the greenlet running on this thread
//! is caught by a `SIGSEGV`/`SIGBUS` handler on an alternate signal stack,
//! which prints `greenlet <name> overflowed its <N> KiB stack` and aborts. Any
//! other fault is handed back to the handler that was there before ours.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::Rc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// The stack size a greenlet gets unless told otherwise: 32 KiB.
pub const DEFAULT_STACK_SIZE: usize = 32 * 1024;

/// The smallest stack size accepted: 16 KiB.
///
/// Below this, the runtime's own frames (start-up, unwinding a kill) leave
/// too little room for user code.
pub const MIN_STACK_SIZE: usize = 16 * 1024;
/// The largest stack size accepted: 2 GiB.
const MAX_STACK_SIZE: usize = 1 << 31;

/// How many free stacks of one size a thread keeps resident for good. Free
/// stacks beyond this that went unused for a whole trim period give their
/// pages back (they keep their address range).
const HOT_STACKS: usize = 1024;

/// How often a worker looks for free stacks to trim (when it goes idle).
const TRIM_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// Slabs start small and double up to this many stacks.
const MAX_SLAB_STACKS: usize = 1024;

/// Linux's `MADV_GUARD_INSTALL` (6.13+); the libc crate does not name it yet.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Why a stack could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackError {
    /// The requested size is below [`MIN_STACK_SIZE`].
    TooSmall {
        /// The size asked for, in bytes.
        requested: usize,
    },
    /// The closure is too large for the stack: it is moved onto the stack
    /// as the greenlet starts, and may take at most half of it.
    ClosureTooLarge {
        /// The closure's size, in bytes.
        closure: usize,
        /// The stack's size, in bytes.
        stack: usize,
    },
    /// The kernel refused the mapping or the guard page.
    Os {
        /// What failed, in words a user can act on.
        message: String,
    },
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::TooSmall { requested } => write!(
                f,
                "greenlet stack size {requested} bytes is below the minimum of {} KiB",
                MIN_STACK_SIZE / 1024
            ),
            StackError::ClosureTooLarge { closure, stack } => write!(
                f,
                "a greenlet closure of {closure} bytes does not fit on a {} KiB stack \
                 (it may take half of it): box its large captures or ask for a larger stack",
                stack / 1024
            ),
            StackError::Os { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for StackError {}

/// Checks that a greenlet closure of type `F` fits on a stack of `size`
/// bytes, with room to spare for the frames it runs in (see
/// `Header::set_coro`, which moves it there).
pub(crate) fn check_fits<F>(size: usize) -> Result<(), StackError> {
    let closure = std::mem::size_of::<F>();
    if closure + 2 * std::mem::align_of::<F>() + 64 <= size / 2 {
        Ok(())
    } else {
        Err(StackError::ClosureTooLarge {
            closure,
            stack: size,
        })
    }
}

pub(crate) fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize })
}

/// Rounds a requested size up to whole pages, or refuses it.
pub(crate) fn checked_size(requested: usize) -> Result<usize, StackError> {
    if requested < MIN_STACK_SIZE {
        return Err(StackError::TooSmall { requested });
    }
    let page = page_size();
    requested
        .checked_next_multiple_of(page)
        .filter(|&size| size <= MAX_STACK_SIZE)
        .ok_or(StackError::Os {
            message: format!(
                "greenlet stack size {requested} bytes is too large (the most is {MAX_STACK_SIZE} bytes)"
            ),
        })
}

/// One mapping that stacks are cut from; unmapped when the last user goes.
struct Slab {
    addr: usize,
    len: usize,
    /// Its stacks' registrations with valgrind (set only when running
    /// under it, see `crate::valgrind`).
    valgrind_ids: std::cell::OnceCell<Box<[usize]>>,
}

impl Drop for Slab {
    fn drop(&mut self) {
        for &id in self.valgrind_ids.get().into_iter().flatten() {
            crate::valgrind::deregister(id);
        }
        // SAFETY: `addr..addr+len` is a mapping this slab made and owns; every
        // stack cut from it holds an `Rc<Slab>`, so none is in use any more.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

/// Free stack memory: `size` usable bytes below `top`, a guard page below.
struct StackMem {
    top: usize,
    size: usize,
    _slab: Rc<Slab>,
}

/// A greenlet stack taken from this thread's pool; dropping it gives it back.
pub(crate) struct Stack(std::mem::ManuallyDrop<StackMem>);

impl Stack {
    /// Takes a stack of `size` bytes (already checked by [`checked_size`])
    /// from this thread's pool, mapping a new slab if the pool is empty.
    pub(crate) fn take(size: usize) -> Result<Stack, StackError> {
        with_pool(|pool| pool.take(size)).unwrap_or_else(|| Err(exiting()))
    }

    /// Makes sure this thread's pool could hand out a stack of `size` bytes
    /// (already checked by [`checked_size`]) now, mapping a slab if it is
    /// empty: how `try_spawn` reports allocation failures at spawn time,
    /// although the stack is taken later, by the worker that starts the
    /// greenlet.
    #[inline(always)]
    pub(crate) fn ensure_available(size: usize) -> Result<(), StackError> {
        with_pool(|pool| pool.class(size).refill()).unwrap_or_else(|| Err(exiting()))
    }

    /// The highest address (stacks grow down from here).
    #[inline(always)]
    fn top(&self) -> usize {
        self.0.top
    }

    /// The bytes kept at the top of every stack for its greenlet's record
    /// (`greenlet::header::Running`), above the greenlet's first frame.
    pub(crate) const RECORD_BYTES: usize = 128;

    /// Where the greenlet's record goes: the top [`Self::RECORD_BYTES`]
    /// bytes, 16-aligned, which the greenlet's frames never use.
    #[inline(always)]
    pub(crate) fn record_slot(&self) -> *mut u8 {
        (self.top() - Self::RECORD_BYTES) as *mut u8
    }

    /// The usable bytes (the guard page not counted).
    pub(crate) fn size(&self) -> usize {
        self.0.size
    }

    /// The lowest address of the guard page.
    pub(crate) fn guard(&self) -> usize {
        self.0.top - self.0.size - page_size()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: `self.0` is not used again after this.
        let mem = unsafe { std::mem::ManuallyDrop::take(&mut self.0) };
        // A stack dropped after its thread's pool is gone just releases its
        // slab reference (the closure, unrun, drops it).
        let _ = with_pool(move |pool| pool.give(mem));
    }
}

thread_local! {
    /// This thread's pool once made, null before and once the thread's
    /// locals are being destroyed. Const and without destructor, so reading
    /// it is one load: a spawn + join reaches the pool three times.
    static POOL: Cell<*mut Pool> = const { Cell::new(std::ptr::null_mut()) };
    /// Frees the pool at thread exit (touched once, to register that).
    static POOL_OWNER: PoolOwner = const { PoolOwner };
}

struct PoolOwner;

impl Drop for PoolOwner {
    fn drop(&mut self) {
        let p = POOL.with(|p| p.replace(std::ptr::null_mut()));
        if !p.is_null() {
            // SAFETY: made by `make_pool` with `Box::into_raw`; `POOL` no
            // longer names it, so nothing reaches it any more.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// Runs `f` on this thread's pool, made on first use; `None` once the
/// thread's locals are being destroyed.
#[inline(always)]
fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> Option<R> {
    let mut p = POOL.with(|p| p.get());
    if p.is_null() {
        p = make_pool()?;
    }
    // SAFETY: `p` is this thread's pool, alive until `PoolOwner`'s
    // destructor, which clears `POOL` first. The reference is the only one:
    // every `f` given here takes, gives, refills or trims, none of which
    // reaches the pool again (dropping a `StackMem` only releases its slab).
    Some(f(unsafe { &mut *p }))
}

#[cold]
#[inline(never)]
fn make_pool() -> Option<*mut Pool> {
    POOL_OWNER
        .try_with(|_| {
            let p = Box::into_raw(Box::new(Pool {
                classes: Vec::new(),
                last: 0,
            }));
            POOL.with(|c| c.set(p));
            p
        })
        .ok()
}

fn exiting() -> StackError {
    StackError::Os {
        message: "this thread is exiting: its stack pool is gone".into(),
    }
}

/// The free stacks of one size: `hot` ones may still have their pages,
/// `cold` ones gave them back.
struct Class {
    size: usize,
    hot: Vec<StackMem>,
    cold: Vec<StackMem>,
    next_slab: usize,
    /// The fewest hot stacks seen since the last trim: those below it were
    /// not used during the period.
    low_water: usize,
}

impl Class {
    /// Maps a new slab if no stack is free.
    #[inline(always)]
    fn refill(&mut self) -> Result<(), StackError> {
        if self.hot.is_empty() && self.cold.is_empty() {
            return self.map_more();
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn map_more(&mut self) -> Result<(), StackError> {
        self.cold = map_slab(self.size, self.next_slab)?;
        self.next_slab = (self.next_slab * 2).min(MAX_SLAB_STACKS);
        Ok(())
    }
}

struct Pool {
    classes: Vec<Class>,
    /// The class used last (most programs use one or two sizes).
    last: usize,
}

impl Pool {
    #[inline(always)]
    fn class(&mut self, size: usize) -> &mut Class {
        if self.classes.get(self.last).is_some_and(|c| c.size == size) {
            return &mut self.classes[self.last];
        }
        self.other_class(size)
    }

    #[cold]
    #[inline(never)]
    fn other_class(&mut self, size: usize) -> &mut Class {
        let at = match self.classes.iter().position(|c| c.size == size) {
            Some(at) => at,
            None => {
                self.classes.push(Class {
                    size,
                    hot: Vec::new(),
                    cold: Vec::new(),
                    next_slab: 16,
                    low_water: 0,
                });
                self.classes.len() - 1
            }
        };
        self.last = at;
        &mut self.classes[at]
    }

    #[inline(always)]
    fn take(&mut self, size: usize) -> Result<Stack, StackError> {
        let class = self.class(size);
        class.refill()?;
        let mem = match class.hot.pop() {
            Some(mem) => {
                class.low_water = class.low_water.min(class.hot.len());
                mem
            }
            None => class.cold.pop().expect("a new slab has stacks"),
        };
        Ok(Stack(std::mem::ManuallyDrop::new(mem)))
    }

    #[inline(always)]
    fn give(&mut self, stack: StackMem) {
        self.class(stack.size).hot.push(stack);
    }

    /// Gives back the pages of the stacks that went unused since the last
    /// trim, beyond the first [`HOT_STACKS`] of each size.
    fn trim(&mut self) {
        let page = page_size();
        for class in &mut self.classes {
            let excess = class.low_water.saturating_sub(HOT_STACKS);
            if excess > 0 {
                // The bottom of `hot` is the least recently used.
                let mut idle: Vec<StackMem> = class.hot.drain(..excess).collect();
                idle.sort_by_key(|s| s.top);
                release_pages(&idle, class.size + page);
                class.cold.append(&mut idle);
            }
            class.low_water = class.hot.len();
        }
    }
}

/// Gives the pages of `stacks` (sorted by address) back to the kernel, one
/// `madvise` per run of neighbours. A run includes the guard pages between
/// its stacks: `MADV_DONTNEED` keeps guard markers and `PROT_NONE` pages.
fn release_pages(stacks: &[StackMem], stride: usize) {
    let mut i = 0;
    while i < stacks.len() {
        let start = stacks[i].top - stacks[i].size;
        let mut end = stacks[i].top;
        let mut j = i + 1;
        while j < stacks.len() && stacks[j].top == end + stride {
            end = stacks[j].top;
            j += 1;
        }
        // SAFETY: the range covers free stacks of this pool (and the guard
        // pages between them), which no greenlet runs on; dropping their
        // pages only makes the next use fault in zeroed memory.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        i = j;
    }
}

/// Trims this thread's pool if a trim period has passed since the last
/// (called by an idle worker); true if it did.
pub(crate) fn trim_idle() -> bool {
    thread_local! {
        static LAST: Cell<Option<std::time::Instant>> = const { Cell::new(None) };
    }
    let now = std::time::Instant::now();
    let due = LAST.with(|l| match l.get() {
        Some(t) if now.duration_since(t) < TRIM_PERIOD => false,
        _ => {
            l.set(Some(now));
            true
        }
    });
    if due {
        with_pool(|p| p.trim());
    }
    due
}

/// How guard pages are made on this kernel, found on first use.
const GUARD_UNKNOWN: u8 = 0;
const GUARD_INSTALL: u8 = 1;
const GUARD_MPROTECT: u8 = 2;
static GUARD_MODE: AtomicU8 = AtomicU8::new(GUARD_UNKNOWN);

fn guard_mode() -> u8 {
    let mode = GUARD_MODE.load(Ordering::Relaxed);
    if mode != GUARD_UNKNOWN {
        return mode;
    }
    // GREENLET_GUARD=mprotect forces the old-kernel path (used by tests).
    let forced = std::env::var_os("GREENLET_GUARD").is_some_and(|v| v == "mprotect");
    let mode = if forced {
        GUARD_MPROTECT
    } else {
        GUARD_INSTALL
    };
    GUARD_MODE.store(mode, Ordering::Relaxed);
    mode
}

/// Maps a slab of `count` stacks of `size` bytes and cuts it up.
fn map_slab(size: usize, count: usize) -> Result<Vec<StackMem>, StackError> {
    install_overflow_handler();
    let page = page_size();
    let stride = size + page;
    let len = stride * count + page;
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing aliases nothing.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(os_error(
            "mapping greenlet stacks",
            io::Error::last_os_error(),
        ));
    }
    // The first page is a separator: inaccessible, so the kernel does not
    // merge this mapping with a neighbouring slab's. Merged, every slab
    // would be one mapping, and mapping a new slab would lock it while page
    // faults on other workers' stacks in it wait. Stacks start above it.
    // Should the call fail, the page stays writable and unused: the slab
    // may then merge, which costs time, not correctness.
    // SAFETY: the first page of the mapping we just made, used by nothing.
    unsafe { libc::mprotect(base, page, libc::PROT_NONE) };
    let first = base as usize + page;
    let slab = Rc::new(Slab {
        addr: base as usize,
        len,
        valgrind_ids: std::cell::OnceCell::new(),
    });
    let mut stacks = Vec::with_capacity(count);
    // One system call for the whole slab where the kernel can (else one
    // per stack, below).
    let batched = guard_mode() == GUARD_INSTALL && install_guards(first, count, stride, page);
    for i in 0..count {
        let guard = first + i * stride;
        if !batched && let Err(e) = guard_page(guard, page) {
            if stacks.is_empty() {
                return Err(e);
            }
            // Out of mappings part way: keep the stacks already guarded.
            break;
        }
        stacks.push(StackMem {
            top: guard + stride,
            size,
            _slab: slab.clone(),
        });
    }
    if crate::valgrind::running() {
        let ids = stacks
            .iter()
            .map(|s| crate::valgrind::register(s.top - s.size, s.top))
            .collect();
        let _ = slab.valgrind_ids.set(ids);
    }
    // Hand out the lowest addresses first (popped from the end).
    stacks.reverse();
    Ok(stacks)
}

/// Installs the guard pages of a slab's `count` stacks (the first page of
/// every `stride` bytes from `addr`) with `process_madvise` on this
/// process, 1024 ranges per call: a slab of 1024 stacks then costs one
/// system call of about 0.8 ms instead of 1024 `madvise` calls taking about
/// 1.3 ms, during which the worker's timers wait and the other workers' page
/// faults contend for the same memory-map locks. False if the kernel cannot
/// (no guard advice before Linux 6.13, and `process_madvise` takes any
/// advice on one's own process only on recent kernels): the caller then
/// guards page by page.
fn install_guards(addr: usize, count: usize, stride: usize, page: usize) -> bool {
    /// Linux's `PIDFD_SELF_THREAD_GROUP` (6.15+): this process, without an fd.
    const PIDFD_SELF: libc::c_int = -10001;
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return false;
    }
    let ranges: Vec<libc::iovec> = (0..count)
        .map(|i| libc::iovec {
            iov_base: (addr + i * stride) as *mut libc::c_void,
            iov_len: page,
        })
        .collect();
    let advise = |pidfd: libc::c_int, chunk: &[libc::iovec]| {
        // SAFETY: every range is a page-aligned page of the slab mapping the
        // caller just made and nothing uses yet; guard advice only makes
        // those pages fault on access.
        let done = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                pidfd,
                chunk.as_ptr(),
                chunk.len(),
                MADV_GUARD_INSTALL,
                0,
            )
        };
        done == (chunk.len() * page) as libc::c_long
    };
    let mut ok = true;
    let mut opened = None;
    // The kernel takes at most IOV_MAX (1024) ranges per call.
    for chunk in ranges.chunks(1024) {
        let pidfd = opened.unwrap_or(PIDFD_SELF);
        if advise(pidfd, chunk) {
            continue;
        }
        if opened.is_none() && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF) {
            // No PIDFD_SELF (Linux 6.13, 6.14): a pidfd of our own, closed
            // below.
            // SAFETY: a plain system call.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
            if fd >= 0 {
                opened = Some(fd as libc::c_int);
                if advise(fd as libc::c_int, chunk) {
                    continue;
                }
            }
        }
        ok = false;
        break;
    }
    if let Some(fd) = opened {
        // SAFETY: our own fd, closed once.
        unsafe { libc::close(fd) };
    }
    if !ok {
        // Applied in part at most: the per-page path installs the rest
        // (guard advice on an already guarded page leaves it guarded).
        UNSUPPORTED.store(true, Ordering::Relaxed);
    }
    ok
}

fn guard_page(addr: usize, page: usize) -> Result<(), StackError> {
    if guard_mode() == GUARD_INSTALL {
        // SAFETY: `addr` is a page-aligned page of a mapping we own and
        // nothing uses yet.
        let rc = unsafe { libc::madvise(addr as *mut libc::c_void, page, MADV_GUARD_INSTALL) };
        if rc == 0 {
            return Ok(());
        }
        // EINVAL: a kernel older than 6.13. Fall back for good.
        GUARD_MODE.store(GUARD_MPROTECT, Ordering::Relaxed);
    }
    // SAFETY: as above; PROT_NONE only takes access away.
    let rc = unsafe { libc::mprotect(addr as *mut libc::c_void, page, libc::PROT_NONE) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOMEM) {
        let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        return Err(StackError::Os {
            message: format!(
                "cannot make a guard page for another greenlet stack: the kernel's \
                 vm.max_map_count ({limit}) is used up. On kernels older than 6.13 every \
                 stack costs two mappings; raise the limit, for example with \
                 `sysctl -w vm.max_map_count=1048576`, or run fewer greenlets at once"
            ),
        });
    }
    Err(os_error("protecting a greenlet guard page", err))
}

fn os_error(what: &str, err: io::Error) -> StackError {
    StackError::Os {
        message: format!("{what} failed: {err}"),
    }
}

// ---------------------------------------------------------------------------
// Overflow reporting

/// What the fault handler needs to know about the greenlet running on this
/// thread (read from its header, found through the switch code's
/// `CURRENT` thread-local).
#[derive(Clone, Copy)]
pub(crate) struct RunningStack {
    pub(crate) id: u64,
    pub(crate) guard: usize,
    pub(crate) size: usize,
    pub(crate) name: *const u8,
    pub(crate) name_len: usize,
}

static mut PREV_SEGV: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();
static mut PREV_BUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

fn install_overflow_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `on_fault` is async-signal-safe (it reads a TLS cell, calls
        // write and abort, or reinstalls the previous action). PREV_* are
        // written once here, before the handler can run.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fault as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(
                libc::SIGSEGV,
                &action,
                (&raw mut PREV_SEGV).cast::<libc::sigaction>(),
            );
            libc::sigaction(
                libc::SIGBUS,
                &action,
                (&raw mut PREV_BUS).cast::<libc::sigaction>(),
            );
        }
    });
    ensure_altstack();
}

/// Gives this thread an alternate signal stack if it has none (std gives one
/// to threads it spawns, but not always).
fn ensure_altstack() {
    thread_local! {
        static ALT: Cell<bool> = const { Cell::new(false) };
        static OWNED: RefCell<Option<AltStack>> = const { RefCell::new(None) };
    }
    if ALT.with(|a| a.replace(true)) {
        return;
    }
    // SAFETY: querying the current alternate stack writes only `old`.
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    unsafe { libc::sigaltstack(std::ptr::null(), &mut old) };
    if old.ss_flags & libc::SS_DISABLE == 0 {
        return;
    }
    let size = 64 * 1024;
    // SAFETY: a fresh private anonymous mapping aliases nothing.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return;
    }
    let stack = libc::stack_t {
        ss_sp: addr,
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `stack` describes memory owned by `AltStack` below, which
    // disables it before unmapping at thread exit.
    unsafe { libc::sigaltstack(&stack, std::ptr::null_mut()) };
    OWNED.with(|o| *o.borrow_mut() = Some(AltStack { addr, size }));
}

struct AltStack {
    addr: *mut libc::c_void,
    size: usize,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let off = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: the alternate stack is switched off before its memory goes.
        unsafe {
            libc::sigaltstack(&off, std::ptr::null_mut());
            libc::munmap(self.addr, self.size);
        }
    }
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let cur = crate::greenlet::switch::current_ptr();
    let running = if cur.is_null() {
        RunningStack {
            id: 0,
            guard: 0,
            size: 0,
            name: std::ptr::null(),
            name_len: 0,
        }
    } else {
        // SAFETY: `CURRENT` names the greenlet running on this thread (a
        // const thread-local: no lazy initialisation in the handler), whose
        // header is alive while it runs.
        unsafe { (*cur).running_stack() }
    };
    let page = page_size();
    if running.guard != 0 && addr >= running.guard && addr < running.guard + page {
        let mut buf = [0u8; 256];
        let mut out = Out {
            buf: &mut buf,
            len: 0,
        };
        out.put(b"greenlet ");
        if running.name.is_null() {
            out.put(b"Greenlet-");
            out.num(running.id as usize);
        } else {
            // SAFETY: name/name_len point at the running greenlet's name,
            // which lives as long as the greenlet does.
            let name = unsafe { std::slice::from_raw_parts(running.name, running.name_len) };
            out.put(&name[..name.len().min(160)]);
        }
        out.put(b" overflowed its ");
        out.num(running.size / 1024);
        out.put(b" KiB stack\n");
        // SAFETY: write(2) and abort(3) are async-signal-safe.
        unsafe {
            libc::write(2, out.buf.as_ptr().cast(), out.len);
            libc::abort();
        }
    }
    // Not ours: put the previous action back and return, so the fault
    // happens again and reaches it.
    // SAFETY: PREV_* were filled in before this handler was installed.
    unsafe {
        let prev = if sig == libc::SIGBUS {
            (&raw const PREV_BUS).cast::<libc::sigaction>()
        } else {
            (&raw const PREV_SEGV).cast::<libc::sigaction>()
        };
        libc::sigaction(sig, prev, std::ptr::null_mut());
    }
}

/// A fixed buffer for building the overflow message without allocating.
struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn num(&mut self, mut n: usize) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[i..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_and_rounded() {
        assert_eq!(
            checked_size(1024),
            Err(StackError::TooSmall { requested: 1024 })
        );
        assert_eq!(checked_size(MIN_STACK_SIZE), Ok(MIN_STACK_SIZE));
        let odd = MIN_STACK_SIZE + 1;
        assert_eq!(checked_size(odd).unwrap() % page_size(), 0);
        // A header keeps the size in 32 bits.
        assert_eq!(checked_size(MAX_STACK_SIZE), Ok(MAX_STACK_SIZE));
        assert!(matches!(
            checked_size(MAX_STACK_SIZE + 1),
            Err(StackError::Os { message }) if message.contains("too large")
        ));
        assert!(matches!(
            checked_size(usize::MAX),
            Err(StackError::Os { .. })
        ));
    }

    #[test]
    fn stacks_are_reused_from_the_pool() {
        let a = Stack::take(DEFAULT_STACK_SIZE).unwrap();
        let top = a.top();
        drop(a);
        let b = Stack::take(DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(b.top(), top);
    }

    #[test]
    fn stacks_do_not_overlap() {
        let stacks: Vec<_> = (0..40)
            .map(|_| Stack::take(DEFAULT_STACK_SIZE).unwrap())
            .collect();
        let mut ranges: Vec<_> = stacks.iter().map(|s| (s.guard(), s.top())).collect();
        ranges.sort();
        for w in ranges.windows(2) {
            assert!(w[0].1 <= w[1].0);
        }
    }

    /// Whether `addr`'s page is a guard: populating a guard page fails
    /// (`MADV_POPULATE_READ` is refused on guard regions and on
    /// `PROT_NONE` pages), while a stack page can be populated.
    fn is_guard(addr: usize) -> bool {
        const MADV_POPULATE_READ: libc::c_int = 22;
        // SAFETY: `addr` is a page of a slab mapping this test holds; the
        // advice only faults pages in (or fails), it changes no contents.
        unsafe { libc::madvise(addr as *mut libc::c_void, page_size(), MADV_POPULATE_READ) != 0 }
    }

    #[test]
    fn every_stack_of_a_slab_gets_its_guard_page() {
        let size = checked_size(MIN_STACK_SIZE).unwrap();
        // A whole slab and then some, the batched path included.
        let slab = map_slab(size, MAX_SLAB_STACKS + 3).unwrap();
        assert_eq!(slab.len(), MAX_SLAB_STACKS + 3);
        for s in &slab {
            let guard = s.top - s.size - page_size();
            assert!(
                is_guard(guard),
                "guard page of the stack below {:#x}",
                s.top
            );
            assert!(!is_guard(guard + page_size()), "lowest stack page");
            assert!(!is_guard(s.top - page_size()), "top stack page");
        }
    }

    /// The start and end of the mapping holding `addr`, from
    /// `/proc/self/maps`.
    fn mapping_of(addr: usize) -> (usize, usize) {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter_map(|l| {
                let range = l.split(' ').next()?;
                let (a, b) = range.split_once('-')?;
                let a = usize::from_str_radix(a, 16).ok()?;
                let b = usize::from_str_radix(b, 16).ok()?;
                (a <= addr && addr < b).then_some((a, b))
            })
            .next()
            .expect("the address is mapped")
    }

    #[test]
    fn slabs_stay_separate_mappings() {
        let size = checked_size(MIN_STACK_SIZE).unwrap();
        let a = map_slab(size, 4).unwrap();
        let b = map_slab(size, 4).unwrap();
        let in_a = mapping_of(a[0].top - 1);
        for s in &b {
            let addr = s.top - 1;
            assert!(
                !(in_a.0 <= addr && addr < in_a.1),
                "two slabs share one mapping: page faults on one would wait for changes to the other"
            );
        }
    }

    #[test]
    fn trimming_gives_back_only_stacks_unused_for_a_whole_period() {
        let size = checked_size(MIN_STACK_SIZE + 4096).unwrap();
        let n = HOT_STACKS + 40;
        let stacks: Vec<_> = (0..n).map(|_| Stack::take(size).unwrap()).collect();
        drop(stacks);
        let counts = || {
            with_pool(|p| {
                let c = p.class(size);
                (c.hot.len(), c.cold.len())
            })
            .unwrap()
        };
        let (hot, cold) = counts();
        assert!(hot >= n);
        // The first trim only starts the period: everything was in use.
        with_pool(|p| p.trim());
        assert_eq!(counts(), (hot, cold));
        // Nothing used since: all but HOT_STACKS go cold.
        with_pool(|p| p.trim());
        let (hot2, cold2) = counts();
        assert_eq!(hot2, HOT_STACKS);
        assert_eq!(cold2, cold + hot - HOT_STACKS);
        // And they are still usable.
        let again: Vec<_> = (0..n).map(|_| Stack::take(size).unwrap()).collect();
        assert_eq!(again.len(), n);
    }
}
