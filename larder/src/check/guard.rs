//! Guard pages, as GWP-ASan and Electric Fence place blocks: a guarded block ends where a
//! `PROT_NONE` page begins, in a pool of address space of its own, so a read or write one byte
//! past its end faults at the instruction; a freed block's pages are made to fault too (and
//! their memory handed back), so a read or write after free faults. On Linux 6.13 and later the
//! pool is read-write in 2 MiB chunks covered with guard markers (`MADV_GUARD_INSTALL`), which
//! a block's malloc takes off its pages and its free puts back, one `madvise` each; on older
//! kernels each block is a mapping of its own, one `mmap` at malloc and one at free. A `SIGSEGV`/`SIGBUS`
//! handler, installed when the pool is made, turns a fault inside the pool into a report
//! (`heap-buffer-overflow`, `heap-buffer-underflow` or `use-after-free`, read or write, with the
//! block and its stacks) and exits with status 23; faults elsewhere go to the handler that was
//! there before.
//!
//! Which blocks: `LARDER_GUARD=auto` (the default) guards every block until the guarded blocks
//! have taken `LARDER_GUARD_BUDGET` of the pool (data and guard pages, live or freed: a freed
//! block's memory goes back to the OS, but its system calls, one at malloc and one at free, do
//! not), then one in 1,024 (as GWP-ASan samples: one in 64 cost the C++ workload a
//! quarter of its time in `mprotect` and its TLB shootdowns; an allocation sampled out takes no
//! lock); `all`, `1/N`, `off`. A small program thus gets Electric Fence's full coverage, and a
//! program that allocates millions of blocks pays for a few thousand. Live guarded blocks'
//! redzones are checked at exit too. A block's
//! start is aligned to the largest power of two not above its size (at most 16), what C asks of
//! `malloc` for any object that fits, so that its end lies at most 15 bytes before the guard page
//! (a read in that slack is not caught; a write is, on free); `LARDER_GUARD_ALIGN=exact` aligns
//! it only as an object of exactly its size needs, so that it ends at the guard page. With
//! `LARDER_GUARD_SIDE=before` a block starts at its first page instead, right after the guard
//! page before it, so that an underflow faults. The bytes before it in its first page and the
//! slack after it are a redzone, checked on free. Address space is never reused: each guarded
//! block takes its pages and one guard page of a 64 GiB reservation (so every block has a guard
//! page on both sides); the metadata of every guarded block is a slot in a table sorted by
//! address (the pool is handed out upward), which the signal handler reads without a lock.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::backtrace::Backtrace;
use super::block::{self, first_mismatch, REDZONE_BYTE, UNINIT_BYTE, UNINIT_MAX};
use super::depot;
use super::report::{self, Error};
use super::{check_kind, report_redzone, AllocKind};
use crate::options::{self, Guard, GuardAlign, GuardSide};
use crate::sync::Lock;

const PAGE: usize = 4096;
/// The pool's reservation.
const POOL_BYTES: usize = 64 << 30;
/// Guarded blocks a process may have over its life (the slot table's reservation).
const SLOTS_MAX: usize = 1 << 20;
/// Live guarded blocks at most: each is a mapping of its own, and the kernel allows about
/// 65,000 per process.
const LIVE_MAX: usize = 16 << 10;
/// `auto` beyond the budget guards one block in this many.
const AUTO_SAMPLE: u64 = 1024;

const LIVE: u32 = 1;
const FREED: u32 = 2;

/// One guarded block.
#[repr(C)]
struct Slot {
    /// The first of its data pages (read-write while live).
    data: usize,
    /// Bytes of its data pages; the guard page follows.
    len: usize,
    /// The user bytes' start and requested size.
    user: usize,
    size: usize,
    state: AtomicU32,
    alloc_stack: u32,
    free_stack: AtomicU32,
    /// The family that allocated it, which must free it.
    kind: AllocKind,
}

struct Pool {
    /// Bytes of the pool handed out (the first page stays a guard).
    used: usize,
    /// Live guarded blocks.
    live: usize,
    /// Bytes of the pool made read-write and covered with guard markers (see `GUARD_REGIONS`),
    /// ahead of `used`.
    ready: usize,
}

static POOL: Lock<Pool> = Lock::new(Pool {
    used: PAGE,
    live: 0,
    ready: 0,
});

/// Linux 6.13's guard regions (`madvise` advice values; not yet in the libc crate): a guard
/// marker makes a page fault like `PROT_NONE` does, inside a read-write mapping, without a
/// mapping of its own.
const MADV_GUARD_INSTALL: i32 = 102;
const MADV_GUARD_REMOVE: i32 = 103;
/// How much of the pool is made ready at a time: one page table's worth of guard markers.
const CHUNK: usize = 2 << 20;
/// Whether guarded blocks are made with guard markers: 0 not tried yet, 1 yes, 2 no (the kernel
/// refused them, or `LARDER_GUARD_MARKERS=off`; blocks are then mapped and unmapped one `mmap`
/// each, as before 6.13). With
/// markers, a block's malloc is one `madvise` that takes them off its pages (which fault in as
/// they are first written), and its free one that puts them back (and hands the memory back):
/// neither splits nor merges a mapping, which made each `mmap` about three times as costly.
static GUARD_REGIONS: AtomicU32 = AtomicU32::new(0);

fn advise(addr: usize, len: usize, advice: i32) -> bool {
    // SAFETY: the guard advice only changes how the pool's own pages fault (and drops their
    // contents), in ranges callers own.
    unsafe { libc::madvise(addr as *mut _, len, advice) == 0 }
}

/// Makes `[data, data + len)`, pages of the pool never handed out, read-write for a new block
/// (pool locked); false if the kernel refuses.
fn map_block(pool: &mut Pool, base: usize, data: usize, len: usize) -> bool {
    if GUARD_REGIONS.load(Ordering::Relaxed) == 0 && !options::get().guard_markers {
        GUARD_REGIONS.store(2, Ordering::Relaxed);
    }
    if GUARD_REGIONS.load(Ordering::Relaxed) != 2 {
        let end = data - base + len + PAGE;
        if end > pool.ready {
            // A block mapped the old way may lie past `ready`: chunks start above it.
            let from = pool.ready.max(data - base);
            let to = end.next_multiple_of(CHUNK).min(POOL_BYTES);
            let chunk = (base + from, to - from);
            if remap(chunk.0, chunk.1, libc::PROT_READ | libc::PROT_WRITE, 0)
                && advise(chunk.0, chunk.1, MADV_GUARD_INSTALL)
            {
                pool.ready = to;
                GUARD_REGIONS.store(1, Ordering::Relaxed);
            } else {
                remap(chunk.0, chunk.1, libc::PROT_NONE, 0);
                GUARD_REGIONS.store(2, Ordering::Relaxed);
            }
        }
        if end <= pool.ready {
            return advise(data, len, MADV_GUARD_REMOVE);
        }
    }
    // A fresh read-write mapping over the reserved pages, populated at once: the fills touch
    // every page, and one system call that maps them costs less than mprotect and a page fault
    // each.
    remap(
        data,
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_POPULATE,
    )
}

/// Makes a freed block's pages fault and hands their memory back.
fn unmap_block(data: usize, len: usize) {
    // Guard markers where the kernel has them (a block mapped the old way takes them too),
    // else a fresh inaccessible mapping: one system call instead of mprotect and madvise.
    if GUARD_REGIONS.load(Ordering::Relaxed) != 1 || !advise(data, len, MADV_GUARD_INSTALL) {
        remap(data, len, libc::PROT_NONE, 0);
    }
}
static BASE: AtomicUsize = AtomicUsize::new(0);
static SLOTS: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());
/// Slots written (published with `Release` after each is complete).
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// Blocks guarded.
static GUARDED: AtomicU64 = AtomicU64::new(0);
/// Blocks left unguarded by sampling or limits: nearly every malloc counts one, so the count
/// is striped by thread number (one counter was a line that every thread's malloc wrote).
static UNGUARDED: [Stripe; STRIPES] = [const { Stripe(AtomicU64::new(0)) }; STRIPES];
const STRIPES: usize = 16;
#[repr(align(64))]
struct Stripe(AtomicU64);

fn count_unguarded() {
    UNGUARDED[super::tls::thread_number() % STRIPES]
        .0
        .fetch_add(1, Ordering::Relaxed);
}
/// Whether `auto` went past its budget (and sampled from then on).
static OVER_BUDGET: AtomicU32 = AtomicU32::new(0);
/// Bytes of the data pages of live guarded blocks, for the heap figures.
static COMMITTED: AtomicUsize = AtomicUsize::new(0);

/// Bytes of the pool's memory that may be resident, and of its address space handed out (each
/// block's pages and guard page, live or freed: address space is never reused).
pub fn memory() -> (usize, usize) {
    // The pool's first page stays a guard: nothing is handed out until a block is.
    let used = POOL.lock().used;
    let handed_out = if used > PAGE { used } else { 0 };
    (COMMITTED.load(Ordering::Relaxed), handed_out)
}

/// Maps fresh anonymous pages at `[addr, addr + len)`, a page-aligned range of the pool's
/// reservation, replacing what was there; false if the kernel refuses.
fn remap(addr: usize, len: usize, prot: i32, flags: i32) -> bool {
    // SAFETY: MAP_FIXED replaces only pages of the pool's own reservation, which callers own
    // (a block's pages, never handed out before or no longer in use).
    let p = unsafe {
        libc::mmap(
            addr as *mut _,
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED | flags,
            -1,
            0,
        )
    };
    p as usize == addr
}

/// A fresh anonymous mapping of `len` bytes (reserved lazily), anywhere; check mode's tables
/// that must not come from the heap are made so too.
pub(super) fn map(len: usize, prot: i32) -> Option<usize> {
    // SAFETY: an anonymous private mapping with no address hint.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p as usize)
}

/// The pool's base, making the pool, its slot table and the signal handlers on first use (under
/// the pool's lock).
fn base() -> Option<usize> {
    let b = BASE.load(Ordering::Acquire);
    if b != 0 {
        return Some(b);
    }
    let slots = map(
        SLOTS_MAX * core::mem::size_of::<Slot>(),
        libc::PROT_READ | libc::PROT_WRITE,
    )?;
    let pool = map(POOL_BYTES, libc::PROT_NONE)?;
    SLOTS.store(slots as *mut Slot, Ordering::Release);
    install_handlers();
    BASE.store(pool, Ordering::Release);
    Some(pool)
}

/// The pool's address range (empty before it is made).
pub fn pool_range() -> core::ops::Range<usize> {
    match BASE.load(Ordering::Acquire) {
        0 => 0..0,
        b => b..b + POOL_BYTES,
    }
}

/// The pool and the slot table: no roots of the leak mark (the pool's live blocks are marked
/// as blocks; the table points to every block).
pub fn mapped_ranges() -> [core::ops::Range<usize>; 2] {
    let slots = match SLOTS.load(Ordering::Acquire) as usize {
        0 => 0..0,
        p => p..p + SLOTS_MAX * core::mem::size_of::<Slot>(),
    };
    [pool_range(), slots]
}

fn slots() -> &'static [Slot] {
    let p = SLOTS.load(Ordering::Acquire);
    let n = COUNT.load(Ordering::Acquire);
    if p.is_null() {
        return &[];
    }
    // SAFETY: the first `n` slots were written completely before `COUNT` was raised past them,
    // and the table is never unmapped.
    unsafe { core::slice::from_raw_parts(p, n) }
}

/// The slot whose data pages or following guard page hold `addr`.
fn slot_near(addr: usize) -> Option<&'static Slot> {
    let slots = slots();
    let i = slots.partition_point(|s| s.data <= addr);
    let s = slots.get(i.checked_sub(1)?)?;
    (addr < s.data + s.len + PAGE).then_some(s)
}

/// The alignment a block of `size` bytes that ends against its guard page gets, or `align` if
/// more (C's malloc family asks for 1, `memalign` for what it was asked, Rust for the
/// layout's). By default (`GuardAlign::C`) the largest power of two not above its size, at
/// most 16: C asks `malloc` for an alignment fit for any object of the size *or less* (a
/// struct with a trailing array is allocated with a size its alignment does not divide, and
/// programs keep tag bits in such pointers), so up to 15 bytes of slack lie between the
/// block's end and the guard page, a redzone checked on free where reads are missed. With
/// `GuardAlign::Exact`, the largest power of two dividing the size, at most 16: the block
/// ends at the guard page whenever `align` allows it.
fn placement_align(size: usize, align: usize, how: GuardAlign) -> usize {
    let natural = match (size, how) {
        (0, _) => 16,
        (_, GuardAlign::C) => (1usize << (usize::BITS - 1 - size.leading_zeros())).min(16),
        (_, GuardAlign::Exact) => (1usize << size.trailing_zeros()).min(16),
    };
    align.max(natural)
}

/// Where the user bytes of a guarded block of `size` bytes start in its data pages
/// `[data, data + len)`: against the guard page after them (the default), or at the start of
/// the first page, right after the guard page before it (`LARDER_GUARD_SIDE=before`: an
/// underflow faults, an overflow is found on free by the slack's redzone).
fn placement(data: usize, len: usize, size: usize, align: usize, o: &options::Options) -> usize {
    match o.guard_side {
        GuardSide::Before => data,
        GuardSide::After => {
            (data + len - size) & !(placement_align(size, align, o.guard_align) - 1)
        }
    }
}

super::tls::tls_word!(
    /// Allocations this thread has seen, for sampling (one in N of each thread's): counted
    /// outside the pool's lock, so that an allocation sampled out never takes it (every malloc
    /// of every thread did, and with four threads the lock was contended), and per thread,
    /// since one counter for all was a line that every thread's malloc wrote.
    seen_here,
    "larder_check_guard_seen"
);

/// This thread's allocations seen, this one included.
fn count_seen() -> u64 {
    let seen = seen_here::get().wrapping_add(1);
    seen_here::set(seen);
    seen
}
/// Set once the budget of `auto` cannot hold even a one-page block: from then on its sampling
/// is decided without the lock.
static BUDGET_SPENT: AtomicU32 = AtomicU32::new(0);

/// Whether an allocation, the `seen`th, is sampled out before the pool is looked at.
fn sampled_out(guard: Guard, seen: u64) -> bool {
    match guard {
        Guard::Off => true,
        Guard::All => false,
        Guard::Sample(n) => seen % u64::from(n) != 0,
        Guard::Auto => BUDGET_SPENT.load(Ordering::Relaxed) != 0 && seen % AUTO_SAMPLE != 0,
    }
}

/// Whether the `seen`th allocation gets a guard page, by the option and the budget (pool
/// locked).
fn decide(pool: &mut Pool, len: usize, seen: u64) -> bool {
    if pool.live >= LIVE_MAX
        || pool.used + len + PAGE > POOL_BYTES
        || COUNT.load(Ordering::Relaxed) >= SLOTS_MAX
    {
        return false;
    }
    let o = options::get();
    match o.guard {
        Guard::Off => false,
        Guard::All => true,
        Guard::Sample(n) => seen % u64::from(n) == 0,
        Guard::Auto => {
            if (pool.used + 2 * PAGE) as u64 > o.guard_budget {
                BUDGET_SPENT.store(1, Ordering::Relaxed);
            }
            if (pool.used + len + PAGE) as u64 <= o.guard_budget {
                true
            } else {
                OVER_BUDGET.store(1, Ordering::Relaxed);
                seen % AUTO_SAMPLE == 0
            }
        }
    }
}

/// A guarded block of `size` bytes, or `None` when this one is not to be guarded (the caller
/// then allocates as usual).
pub fn alloc(
    size: usize,
    align: usize,
    zeroed: bool,
    alloc_stack: u32,
    kind: AllocKind,
) -> Option<*mut u8> {
    if options::get().guard == Guard::Off || align > PAGE {
        return None;
    }
    let len = size.max(1).checked_next_multiple_of(PAGE)?;
    let seen = count_seen();
    if sampled_out(options::get().guard, seen) {
        count_unguarded();
        return None;
    }
    let mut pool = POOL.lock();
    if !decide(&mut pool, len, seen) {
        drop(pool);
        count_unguarded();
        return None;
    }
    let base = base()?;
    install_handlers();
    let data = base + pool.used;
    if !map_block(&mut pool, base, data, len) {
        return None;
    }
    pool.used += len + PAGE;
    pool.live += 1;
    COMMITTED.fetch_add(len, Ordering::Relaxed);
    let user = placement(data, len, size, align, options::get());
    // SAFETY: the data pages are read-write now and the block's alone; fresh pages read as
    // zero, so a zeroed block needs nothing more.
    unsafe {
        block::bytes(data, user - data).fill(REDZONE_BYTE);
        block::bytes(user + size, data + len - user - size).fill(REDZONE_BYTE);
        if !zeroed {
            block::bytes(user, size.min(UNINIT_MAX)).fill(UNINIT_BYTE);
        }
    }
    let n = COUNT.load(Ordering::Relaxed);
    // SAFETY: slot `n < SLOTS_MAX` (checked in `decide`) is unused; it is published below.
    unsafe {
        SLOTS.load(Ordering::Relaxed).add(n).write(Slot {
            data,
            len,
            user,
            size,
            state: AtomicU32::new(LIVE),
            alloc_stack,
            free_stack: AtomicU32::new(0),
            kind,
        })
    };
    COUNT.store(n + 1, Ordering::Release);
    drop(pool);
    GUARDED.fetch_add(1, Ordering::Relaxed);
    Some(user as *mut u8)
}

/// Whether `ptr` lies in the guard pool (and so is for [`free`], [`size_of_live`]).
pub fn owns(ptr: usize) -> bool {
    pool_range().contains(&ptr)
}

/// The requested size of the live guarded block starting at `ptr`.
pub fn size_of_live(ptr: usize) -> Option<usize> {
    let s = slot_near(ptr)?;
    (s.user == ptr && s.state.load(Ordering::Acquire) == LIVE).then_some(s.size)
}

/// Frees the guarded block at `ptr` (a pointer in the pool): checks its redzone (and, with
/// `kind`, that the block is of that family), makes its pages inaccessible and gives their
/// memory back. Anything else is reported.
pub fn free(ptr: usize, kind: Option<AllocKind>, op: &str, at: &Backtrace) {
    let bad = |class: &str, block: Option<&Slot>| {
        report::error(&Error {
            class,
            op,
            addr: ptr,
            block: block.map(|s| (s.user, s.size)),
            offset: None,
            alloc: block.map(|s| depot::get(s.alloc_stack)).as_ref(),
            free: block
                .map(|s| depot::get(s.free_stack.load(Ordering::Acquire)))
                .as_ref(),
            at: Some(at),
        })
    };
    let Some(s) = slot_near(ptr).filter(|s| s.user == ptr) else {
        bad("invalid-free", None);
        return;
    };
    if s.state
        .compare_exchange(LIVE, FREED, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        bad("double-free", Some(s));
        return;
    }
    if let Some(kind) = kind {
        check_kind(s.kind, kind, (s.user, s.size), s.alloc_stack, at);
    }
    super::program_stats::freed(s.size);
    check_redzones(s, op, Some(at));
    s.free_stack.store(depot::insert(at), Ordering::Release);
    // The data pages are this block's; after this no one may touch them (a use after free
    // faults, which is the point). Under the pool's lock, so that the exit checks never read a
    // block's pages as they go.
    let mut pool = POOL.lock();
    unmap_block(s.data, s.len);
    pool.live -= 1;
    COMMITTED.fetch_sub(s.len, Ordering::Relaxed);
}

/// Reports a changed byte in the redzones of a guarded block: the bytes before it in its first
/// page and the slack after it up to the guard page.
fn check_redzones(s: &Slot, op: &str, at: Option<&Backtrace>) {
    // SAFETY: the redzones before and after the block lie in its data pages, read-write while
    // live (the caller holds the block live).
    let (redzone, slack) = unsafe {
        (
            block::bytes(s.data, s.user - s.data),
            block::bytes(s.user + s.size, s.data + s.len - s.user - s.size),
        )
    };
    if let Some(i) = first_mismatch(slack, REDZONE_BYTE) {
        report_redzone(
            op,
            (s.user, s.size),
            (s.size + i) as isize,
            s.alloc_stack,
            at,
        );
    }
    if let Some(i) = first_mismatch(redzone, REDZONE_BYTE) {
        let offset = i as isize - redzone.len() as isize;
        report_redzone(op, (s.user, s.size), offset, s.alloc_stack, at);
    }
}

/// Checks the redzones of every live guarded block (at exit, for blocks never freed). Holds
/// the pool's lock, so that no block's pages are made inaccessible while they are read.
pub fn check_live_redzones(op: &str) {
    let _pool = POOL.lock();
    for s in slots() {
        if s.state.load(Ordering::Acquire) == LIVE {
            check_redzones(s, op, None);
        }
    }
}

/// Fork handlers: the pool's lock is held across `fork`.
pub fn lock_for_fork() {
    POOL.lock_for_fork();
}

/// Releases the lock taken by `lock_for_fork`, in the parent or the child.
pub fn unlock_after_fork() {
    // SAFETY: called only after `lock_for_fork` by the forking thread (or its child copy).
    unsafe { POOL.unlock_after_fork() };
}

/// Calls `f(user, size, alloc_stack)` for every live guarded block (for the leak mark).
pub fn for_each_live(mut f: impl FnMut(usize, usize, u32)) {
    for s in slots() {
        if s.state.load(Ordering::Acquire) == LIVE {
            f(s.user, s.size, s.alloc_stack);
        }
    }
}

/// The pool held still: while it lives no guarded block's pages are made inaccessible (a free
/// waits for it before unmapping), so the leak mark may read live guarded blocks in place.
pub struct Held(crate::sync::LockGuard<'static, Pool>);

impl Held {
    /// Live guarded blocks (for sizing the leak mark's tables).
    pub fn live_count(&self) -> usize {
        self.0.live
    }
}

/// Holds the pool still (see `Held`).
pub fn hold() -> Held {
    Held(POOL.lock())
}

/// Says what guarding did, at exit: a `larder-guard v1` record in the report file, which
/// `larder run --check` prints in its summary, and with `LARDER_CHECK_VERBOSE=on` a line on
/// stderr. Nothing when no block was guarded or guarding is off. Not on stderr by default:
/// every checked process would print it, and in a program that starts hundreds of processes
/// (a build, a test suite) the lines are noise mixed into the program's own output.
pub fn write_summary() {
    let (guarded, unguarded) = (
        GUARDED.load(Ordering::Relaxed),
        UNGUARDED
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add),
    );
    let o = options::get();
    if guarded == 0 || o.guard == Guard::Off {
        return;
    }
    let over_budget = OVER_BUDGET.load(Ordering::Relaxed) != 0;
    let mut r = report::Record::new();
    r.push(b"larder-guard v1 pid=");
    // SAFETY: getpid has no preconditions.
    r.num(unsafe { libc::getpid() } as u64, 10);
    r.push(b" guarded=");
    r.num(guarded, 10);
    r.push(b" unguarded=");
    r.num(unguarded, 10);
    r.push(b" how=");
    match o.guard {
        Guard::Auto if over_budget => {
            r.push(b"budget-then-1/");
            r.num(AUTO_SAMPLE, 10);
            r.push(b" budget=");
            r.num(o.guard_budget, 10);
        }
        Guard::Auto | Guard::All => r.push(b"all"),
        Guard::Sample(n) => {
            r.push(b"1/");
            r.num(u64::from(n), 10);
        }
        Guard::Off => {}
    }
    r.append_to_report_file();
    if !o.check_verbose {
        return;
    }
    let mut w = crate::report::Writer::new(2);
    w.str("larder check: guard pages: ");
    w.u64(guarded);
    w.str(" blocks guarded, ");
    w.u64(unguarded);
    w.str(" not (");
    match o.guard {
        Guard::Auto if over_budget => {
            w.str("every block until guarded blocks had taken LARDER_GUARD_BUDGET=");
            w.u64(o.guard_budget);
            w.str(" bytes, then 1 in 1024");
        }
        Guard::Auto | Guard::All => w.str("every block within the pool's limits"),
        Guard::Sample(n) => {
            w.str("1 in ");
            w.u64(u64::from(n));
        }
        Guard::Off => {}
    }
    w.str(")\n");
    w.flush();
}

type Action = extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void);

/// The handlers that were installed before ours, for SIGSEGV and SIGBUS.
static PREVIOUS: [Lock<Option<libc::sigaction>>; 2] = [const { Lock::new(None) }; 2];
static PREVIOUS_READY: AtomicU32 = AtomicU32::new(0);

/// Installs the fault handlers, or installs them again where another one replaced them (Rust's
/// runtime installs its own SIGSEGV handler, for stack overflows, after the first allocations;
/// it does not pass on faults it does not know): checked at every guarded allocation.
pub(super) fn install_handlers() {
    for (i, sig) in [libc::SIGSEGV, libc::SIGBUS].into_iter().enumerate() {
        // Read, compare, install and record under one lock: two threads installing at once
        // (a library's constructor may start threads before check mode's own runs) would
        // otherwise record `on_fault` as the handler before it, and chaining to it would
        // recurse.
        let mut previous = PREVIOUS[i].lock();
        // SAFETY: a zeroed `sigaction` is valid; with a null new action, sigaction only reads
        // the current one.
        let current = unsafe {
            let mut current: libc::sigaction = core::mem::zeroed();
            libc::sigaction(sig, ptr::null(), &mut current);
            current
        };
        if current.sa_sigaction == on_fault as Action as usize {
            continue;
        }
        // SAFETY: zeroed `sigaction` structs are valid; `on_fault` has the SA_SIGINFO
        // signature and never returns into a fault of ours. Not SA_ONSTACK: a program's
        // alternate signal stack (Rust's runtime, CPython's faulthandler) is a few KiB, less
        // than a report's unwind and buffers take.
        unsafe {
            let mut new: libc::sigaction = core::mem::zeroed();
            new.sa_sigaction = on_fault as Action as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
            libc::sigemptyset(&mut new.sa_mask);
            if libc::sigaction(sig, &new, ptr::null_mut()) == 0 {
                *previous = Some(current);
            }
        }
    }
    PREVIOUS_READY.store(1, Ordering::Release);
}

/// Whether the fault was a write (the page-fault error code's bit 1), and the faulting
/// instruction's address, on x86-64.
fn fault_context(ctx: *mut libc::c_void) -> (Option<bool>, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if ctx.is_null() {
            return (None, 0);
        }
        // SAFETY: the kernel passes a `ucontext_t` to an SA_SIGINFO handler.
        let uc = unsafe { &*ctx.cast::<libc::ucontext_t>() };
        let regs = &uc.uc_mcontext.gregs;
        (
            Some(regs[libc::REG_ERR as usize] & 2 != 0),
            regs[libc::REG_RIP as usize] as usize,
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ctx;
        (None, 0)
    }
}

extern "C" fn on_fault(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let (write, pc) = fault_context(ctx);
    if owns(addr) {
        report_fault(addr, write, pc);
    }
    // SAFETY: as above.
    let code = unsafe { (*info).si_code };
    if chain(sig, info, ctx) {
        return;
    }
    if code > 0 {
        // A fault: its instruction runs again on return, and the default action ends the
        // process.
        report_wild_fault(sig, code, addr, write, pc);
    } else {
        // Sent (`raise`, `kill`): not delivered again on return, so delivered now, with the
        // default action back (SA_NODEFER: it is not blocked in here).
        // SAFETY: raise is async-signal-safe.
        unsafe { libc::raise(sig) };
    }
}

/// The stack from the faulting instruction `pc` out: the handler's and the signal
/// trampoline's frames left out (the unwinder keeps an interrupted frame's address one byte
/// on).
fn fault_stack(pc: usize) -> Backtrace {
    let mut at = Backtrace::capture(0);
    if let Some(i) = at.frames().iter().position(|&f| f == pc + 1) {
        let len = at.len as usize;
        at.frames.copy_within(i..len, 0);
        at.len = (len - i) as u8;
    }
    at
}

fn access(write: Option<bool>) -> &'static str {
    match write {
        Some(true) => "write",
        Some(false) => "read",
        None => "access",
    }
}

/// Reports a fault outside the pool that no handler of the program's takes (a wild or null
/// pointer, a block's memory long given back), as AddressSanitizer's `SEGV on unknown
/// address` does: the process then dies of the signal as it would have, but the report says
/// where, and a crash in a checked run is not only a status.
fn report_wild_fault(sig: i32, code: i32, addr: usize, write: Option<bool>, pc: usize) {
    let mut at = fault_stack(pc);
    // The stack starts at the fault (when the walk passed it): a fault in larder's own code is
    // larder's bug, and its frames then say where.
    at.keep_own = at.frames().first() == Some(&(pc + 1));
    // A general-protection fault (a non-canonical pointer, as from a garbage value) gives no
    // address, and no page-fault error code to tell a read from a write.
    let general_protection = code == libc::SI_KERNEL;
    report::describe(&Error {
        class: if sig == libc::SIGBUS {
            "bus-error"
        } else {
            "segv"
        },
        op: if general_protection {
            "access, general protection: a non-canonical or otherwise bad pointer"
        } else {
            access(write)
        },
        addr,
        block: None,
        offset: None,
        alloc: None,
        free: None,
        at: Some(&at),
    });
}

/// The slot whose data pages start right after the guard page holding `addr`.
fn slot_after_guard(addr: usize) -> Option<&'static Slot> {
    let slots = slots();
    let next = (addr & !(PAGE - 1)) + PAGE;
    slots
        .get(slots.partition_point(|s| s.data < next))
        .filter(|s| s.data == next)
}

/// Reports a fault at `addr` in the pool and exits with status 23 (or returns when no guarded
/// block is near it).
fn report_fault(addr: usize, write: Option<bool>, pc: usize) {
    let before = slot_near(addr);
    let after = slot_after_guard(addr);
    // In a block's data pages: freed. In a guard page: past the end of the block before it,
    // or (nearer) before the start of the block after it.
    let (class, s) = match (before, after) {
        (Some(b), _) if addr < b.data + b.len => ("use-after-free", b),
        (Some(b), Some(a)) if a.user - addr < addr - (b.user + b.size) => {
            ("heap-buffer-underflow", a)
        }
        (Some(b), _) => ("heap-buffer-overflow", b),
        (None, Some(a)) => ("heap-buffer-underflow", a),
        (None, None) => return,
    };
    let at = fault_stack(pc);
    let op = access(write);
    let freed = s.state.load(Ordering::Acquire) == FREED;
    let class = if freed { "use-after-free" } else { class };
    report::error(&Error {
        class,
        op,
        addr,
        block: Some((s.user, s.size)),
        offset: Some(addr as isize - s.user as isize),
        alloc: Some(&depot::get(s.alloc_stack)),
        free: freed
            .then(|| depot::get(s.free_stack.load(Ordering::Acquire)))
            .as_ref(),
        at: Some(&at),
    });
    // Going on after the fault would fault again: the process ends here whatever
    // LARDER_CHECK_ERRORS says.
    // SAFETY: _exit ends the process at once.
    unsafe { libc::_exit(report::EXIT_STATUS) };
}

/// Hands a fault that is not ours to the handler that was there before ours (true), or
/// restores the default action, so that the faulting instruction, run again, ends the process
/// as usual (false).
fn chain(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) -> bool {
    let i = usize::from(sig == libc::SIGBUS);
    // The lock cannot be held by this thread (taken only at install), and the handlers were
    // stored before the pool was published, so `try`ing is not needed.
    let previous = if PREVIOUS_READY.load(Ordering::Acquire) != 0 {
        *PREVIOUS[i].lock()
    } else {
        None
    };
    match previous {
        Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN => {
            if old.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed with this signature.
                let f: Action = unsafe { core::mem::transmute(old.sa_sigaction) };
                f(sig, info, ctx);
            } else {
                // SAFETY: the previous handler was installed as a plain handler.
                let f: extern "C" fn(i32) = unsafe { core::mem::transmute(old.sa_sigaction) };
                f(sig);
            }
            true
        }
        _ => {
            // SAFETY: restores the default action; the faulting instruction runs again and the
            // kernel ends the process with the signal.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_alignment_fits_any_object_of_the_size_or_less() {
        let c = |size| placement_align(size, 1, GuardAlign::C);
        assert_eq!(
            [c(1), c(3), c(5), c(8), c(24), c(49), c(4096)],
            [1, 2, 4, 8, 16, 16, 16]
        );
        assert_eq!(placement_align(24, 64, GuardAlign::C), 64);
    }

    #[test]
    fn exact_alignment_fits_only_an_object_of_the_size() {
        let exact = |size| placement_align(size, 1, GuardAlign::Exact);
        assert_eq!(
            [
                exact(1),
                exact(3),
                exact(6),
                exact(24),
                exact(49),
                exact(4096)
            ],
            [1, 1, 2, 8, 1, 16]
        );
        assert_eq!(placement_align(49, 8, GuardAlign::Exact), 8);
    }

    #[test]
    fn a_block_ends_at_its_guard_page_or_starts_after_it() {
        let mut o = options::Options::DEFAULT;
        let (data, len) = (1 << 20, 2 * PAGE);
        for size in [1, 5, 24, 49, 1000, 5000] {
            o.guard_side = GuardSide::After;
            o.guard_align = GuardAlign::Exact;
            assert_eq!(
                placement(data, len, size, 1, &o) + size,
                data + len,
                "{size}"
            );
            o.guard_align = GuardAlign::C;
            let user = placement(data, len, size, 1, &o);
            assert!(data + len - (user + size) < 16, "{size}");
            o.guard_side = GuardSide::Before;
            assert_eq!(placement(data, len, size, 1, &o), data);
        }
    }
}
