//! Check mode: the heap-bug finder behind `liblarder_check.so`, `larder run --check` and
//! [`Checked`]. A layer over the core's entry points; the default paths never call it, so the
//! default build pays nothing for it.
//!
//! - [`backtrace`]: stacks captured without allocating, named through `dladdr`;
//! - [`fail`]: fault injection (`LARDER_FAIL`): which allocations return null;
//! - [`profile`]: heap profiling by sampled allocation sites (`LARDER_PROFILE`), with check
//!   mode's own checks off;
//! - `block`: the header, canary, redzones and poison of each checked block;
//! - `depot`: every distinct backtrace stored once, named by a 32-bit id;
//! - `guard`: blocks placed against guard pages, and the fault handler that reports on them;
//! - `leaks`: the live-block list and the conservative mark at exit;
//! - `program_stats`: the program's calls and requested bytes, for its heap figures;
//! - `quarantine`: freed blocks held, poisoned, first in first out;
//! - `tls`: per-thread words reached without `__tls_get_addr`;
//! - `report`: error reports on stderr and in `LARDER_REPORT_FILE`, exit status 23;
//! - `unwind_cache`: frame sizes learned per call site, for backtraces without the unwinder.
//!
//! What it finds: double frees (state in the header, both stacks), frees and reallocs of
//! pointers that are not live blocks (interior, misaligned, stack, global, mmap'd), overflows
//! and underflows of the requested size (checked on free and realloc, and for blocks still live
//! at exit), writes after free
//! (poison verified when a block leaves the quarantine), and on guarded blocks overflow reads
//! and writes and uses after free at the faulting instruction. Fresh blocks not from calloc are
//! filled with `0xbe` (their first 64 KiB), so uninitialised reads show.

pub mod backtrace;
mod block;
mod depot;
pub mod fail;
mod guard;
mod leaks;
pub mod profile;
mod program_stats;
mod quarantine;
pub mod report;
mod tls;
mod unwind_cache;

pub use program_stats::stats;

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

use self::backtrace::Backtrace;
use self::block::{
    first_mismatch, header_of, Header, CANARY_LEN, FRESH, HEADER_SIZE, LIVE, MAGIC, POISON_BYTE,
    POISON_MAX, QUARANTINED, REDZONE_BYTE, RELEASED, TAIL_MAX, TAIL_MIN, UNINIT_BYTE, UNINIT_MAX,
};
use self::report::Error;
use crate::{alloc as core_alloc, options};

/// Every checked block is at least this aligned (the header is).
const MIN_ALIGN: usize = 16;

/// Which family of functions allocated a block. A block must go back through its own
/// family's function: an array freed by `delete` runs one destructor instead of all of them, a
/// block from `new` given to `free` runs none, and an allocator that keeps a cookie before
/// `new[]` blocks frees the wrong address. Valgrind and ASan report these; so does check mode.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocKind {
    /// `malloc`, `calloc`, `realloc`, `memalign` and the rest of C's family; freed by `free`.
    Malloc = 0,
    /// C++'s `operator new`; freed by `operator delete`.
    New = 1,
    /// C++'s `operator new[]`; freed by `operator delete[]`.
    NewArray = 2,
}

impl AllocKind {
    fn from_word(word: usize) -> AllocKind {
        match word {
            1 => AllocKind::New,
            2 => AllocKind::NewArray,
            _ => AllocKind::Malloc,
        }
    }

    /// The function that frees this family's blocks.
    pub fn deallocator(self) -> &'static str {
        match self {
            AllocKind::Malloc => "free",
            AllocKind::New => "operator delete",
            AllocKind::NewArray => "operator delete[]",
        }
    }
}

/// Allocates `size` bytes aligned to `align` (a power of two), checked. Null when memory cannot
/// be had.
///
/// # Safety
/// None beyond the usual: free the block with this module's `free`.
#[inline(never)]
pub unsafe fn alloc(size: usize, align: usize) -> *mut u8 {
    let mut at = Backtrace::EMPTY;
    at.capture_here(1);
    alloc_with(size, align, false, AllocKind::Malloc, &at)
}

/// As [`alloc`], for the allocating function of family `kind` (C++'s `new` and `new[]`); the
/// block must be freed by [`free_as`] with the same family.
///
/// # Safety
/// As [`alloc`].
#[inline(never)]
pub unsafe fn alloc_as(size: usize, align: usize, kind: AllocKind) -> *mut u8 {
    let mut at = Backtrace::EMPTY;
    at.capture_here(1);
    alloc_with(size, align, false, kind, &at)
}

/// As [`alloc`], zeroed.
///
/// # Safety
/// As [`alloc`].
#[inline(never)]
pub unsafe fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    let mut at = Backtrace::EMPTY;
    at.capture_here(1);
    alloc_with(size, align, true, AllocKind::Malloc, &at)
}

/// Frees a checked block; anything else (a block already freed, a pointer into a block, a
/// pointer larder never handed out) is reported.
///
/// # Safety
/// Any pointer may be passed: check mode validates it before touching the block.
#[inline(never)]
pub unsafe fn free(ptr: *mut u8) {
    // The header is read once the stack is captured: start bringing it in now.
    block::prefetch(header_of(ptr as usize) as usize);
    let mut at = Backtrace::EMPTY;
    at.capture_here(1);
    free_with(ptr, AllocKind::Malloc, &at);
}

/// As [`free`], by the freeing function of family `kind` (C++'s `delete` and `delete[]`): a
/// block of another family is reported as an `alloc-dealloc-mismatch` (and then freed).
///
/// # Safety
/// As [`free`].
#[inline(never)]
pub unsafe fn free_as(ptr: *mut u8, kind: AllocKind) {
    block::prefetch(header_of(ptr as usize) as usize);
    let mut at = Backtrace::EMPTY;
    at.capture_here(1);
    free_with(ptr, kind, &at);
}

fn free_with(ptr: *mut u8, kind: AllocKind, at: &Backtrace) {
    if ptr.is_null() {
        return;
    }
    let op = kind.deallocator();
    if guard::owns(ptr as usize) {
        guard::free(ptr as usize, Some(kind), op, at);
        return;
    }
    if let Some(h) = live_header(ptr as usize, op, at) {
        // SAFETY: `live_header` made this thread the block's owner.
        let header = unsafe { &*h };
        check_kind(
            AllocKind::from_word(header.kind),
            kind,
            (header.user(), header.size),
            header.alloc_stack,
            at,
        );
        release_to_quarantine(h, at, op);
    }
}

/// Reports a block of family `allocated` freed by family `freed`'s function.
pub(super) fn check_kind(
    allocated: AllocKind,
    freed: AllocKind,
    block: (usize, usize),
    alloc_stack: u32,
    at: &Backtrace,
) {
    if allocated == freed || !options::get().mismatch {
        return;
    }
    // A block that went through a private copy of C++'s operators took C's function inside it.
    let allocated = match allocated {
        AllocKind::Malloc => private_operator(&depot::get(alloc_stack), b"_Znw", b"_Zna"),
        kind => kind,
    };
    let freed = match freed {
        AllocKind::Malloc => private_operator(at, b"_Zdl", b"_Zda"),
        kind => kind,
    };
    if allocated == freed {
        return;
    }
    let op = match (allocated, freed) {
        (AllocKind::Malloc, AllocKind::New) => "operator delete, of a block from malloc",
        (AllocKind::Malloc, _) => "operator delete[], of a block from malloc",
        (AllocKind::New, AllocKind::Malloc) => "free, of a block from operator new",
        (AllocKind::New, _) => "operator delete[], of a block from operator new",
        (AllocKind::NewArray, AllocKind::Malloc) => "free, of a block from operator new[]",
        (AllocKind::NewArray, _) => "operator delete, of a block from operator new[]",
    };
    report::error(&Error {
        class: "alloc-dealloc-mismatch",
        op,
        addr: block.0,
        block: Some(block),
        offset: None,
        alloc: Some(&depot::get(alloc_stack)),
        free: None,
        at: Some(at),
    });
}

/// The family of C++'s operator whose own copy called `malloc` or `free` at the innermost frame
/// of `stack` outside larder (named through the dynamic symbol table: `single` and `array` are
/// the mangled prefixes of the scalar and array forms), or C's family when it is none. A library
/// that links the C++ runtime statically keeps such a copy: LLVM's `operator new` calls
/// `malloc`, and the program's `delete` then reaches check mode's; that pair is not a mismatch.
/// A copy that jumps to `malloc` or `free` (`operator delete` is often `jmp free`) leaves no
/// frame: the innermost frame is then its caller's, whose call instruction names it.
fn private_operator(stack: &Backtrace, single: &[u8], array: &[u8]) -> AllocKind {
    let Some(&ret) = stack.shown().first() else {
        return AllocKind::Malloc;
    };
    let family = |symbol: &[u8]| {
        if symbol.starts_with(single) {
            Some(AllocKind::New)
        } else if symbol.starts_with(array) {
            Some(AllocKind::NewArray)
        } else {
            None
        }
    };
    let caller = backtrace::locate(backtrace::call_site(ret)).and_then(|l| family(l.symbol));
    let jumped_from = || {
        let target = backtrace::callee(ret)?;
        let l = backtrace::locate(target).filter(|l| l.symbol_addr == target)?;
        family(l.symbol)
    };
    caller.or_else(jumped_from).unwrap_or(AllocKind::Malloc)
}

/// Resizes a checked block (always by moving it, so stale pointers to the old one are found).
/// A null result leaves the old block intact.
///
/// # Safety
/// As [`free`].
#[inline(never)]
pub unsafe fn realloc(ptr: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    block::prefetch(header_of(ptr as usize) as usize);
    let mut at = Backtrace::EMPTY;
    at.capture_here(1);
    if ptr.is_null() {
        return alloc_with(new_size, align, false, AllocKind::Malloc, &at);
    }
    if guard::owns(ptr as usize) {
        let Some(old_size) = guard::size_of_live(ptr as usize) else {
            guard::free(ptr as usize, None, "realloc", &at);
            return ptr::null_mut();
        };
        let new = alloc_with(new_size, align, false, AllocKind::Malloc, &at);
        if !new.is_null() {
            // SAFETY: both blocks hold at least the bytes copied.
            unsafe { ptr::copy_nonoverlapping(ptr, new, old_size.min(new_size)) };
            guard::free(ptr as usize, None, "realloc", &at);
        }
        return new;
    }
    let Some(h) = live_header(ptr as usize, "realloc", &at) else {
        return ptr::null_mut();
    };
    let new = alloc_with(new_size, align, false, AllocKind::Malloc, &at);
    if new.is_null() {
        // The old block stays the caller's, live.
        // SAFETY: this thread took `h` from LIVE above; nobody else changes it.
        unsafe { (*h).state.store(LIVE, Ordering::Release) };
        return new;
    }
    // SAFETY: `h` is a live header; both blocks hold at least the bytes copied.
    unsafe { ptr::copy_nonoverlapping(ptr, new, (*h).size.min(new_size)) };
    release_to_quarantine(h, &at, "realloc");
    new
}

/// The requested size of a live checked block; 0 for anything else.
///
/// # Safety
/// Any pointer may be passed.
pub unsafe fn usable_size(ptr: *const u8) -> usize {
    if guard::owns(ptr as usize) {
        return guard::size_of_live(ptr as usize).unwrap_or(0);
    }
    match find(ptr as usize) {
        // SAFETY: `find` returns only headers of check mode's blocks.
        Some(h) if unsafe { (*h).state() } == LIVE => unsafe { (*h).size },
        _ => 0,
    }
}

/// The checks at exit: blocks still in the quarantine are verified for writes after free, the
/// redzones of blocks still live are checked, and live blocks no longer reachable are reported
/// as leaks (unless `LARDER_LEAKS=off`); with `LARDER_LEAKS_FAIL=on` and blocks lost, the
/// process then ends with status 23.
/// Call it once, at the end of `main`.
#[inline(never)]
pub fn at_exit() {
    // The program's frames are this one's callers: what lies below it on the stack is the
    // checks' own (see `leaks::Caller::Program`).
    let marker = 0usize;
    let frames_from = core::hint::black_box(&marker) as *const usize as usize;
    if exit_checks(leaks::Caller::Program { frames_from }) {
        // SAFETY: _exit has no preconditions; the reports are written.
        unsafe { libc::_exit(report::EXIT_STATUS) };
    }
}

/// As [`at_exit`], for a library's `.fini_array` function run by `exit` (liblarder_check.so's):
/// the frames of the exit machinery on the stack are not roots of the leak mark. Returns
/// whether the process is to end with status 23 for its leaks (`LARDER_LEAKS_FAIL=on`), which
/// the caller does once its own records are written.
pub fn at_exit_from_fini() -> bool {
    exit_checks(leaks::Caller::ExitMachinery)
}

/// Whether blocks were lost and `LARDER_LEAKS_FAIL` asks for status 23.
#[inline(never)]
fn exit_checks(caller: leaks::Caller) -> bool {
    fail::at_exit();
    guard::write_summary();
    quarantine::drain(leave_quarantine);
    // Blocks never freed had their redzones checked by no free: check them now.
    leaks::for_each_live(|h| check_redzones(h, "exit", None));
    guard::check_live_redzones("exit");
    let o = options::get();
    o.leaks && leaks::check(caller) && o.leaks_fail
}

/// Registers check mode's fork handlers (its locks are held across `fork`, so a child of a
/// threaded program does not inherit them held). Call once at start-up, before threads:
/// liblarder_check.so does, from `.init_array`.
pub fn init() {
    extern "C" fn prepare() {
        quarantine::lock_for_fork();
        leaks::lock_for_fork();
        profile::lock_for_fork();
        guard::lock_for_fork();
    }
    extern "C" fn after() {
        guard::unlock_after_fork();
        profile::unlock_after_fork();
        leaks::unlock_after_fork();
        quarantine::unlock_after_fork();
    }
    // SAFETY: the handlers are plain functions that live as long as the process.
    unsafe { libc::pthread_atfork(Some(prepare), Some(after), Some(after)) };
    // A crash is reported with its stack even in a process that never guards a block.
    guard::install_handlers();
}

/// Whether `ptr` lies in larder's memory.
pub fn owns(ptr: *const u8) -> bool {
    core_alloc::owns(ptr) || guard::owns(ptr as usize)
}

/// A new checked block, guarded or in a core block between redzones; null when none can be had
/// (or fault injection says so).
fn alloc_with(size: usize, align: usize, zeroed: bool, kind: AllocKind, bt: &Backtrace) -> *mut u8 {
    // Fault injection decides first: a failed realloc leaves the old block alone, as C's does
    // when memory runs out.
    if fail::inject(size, bt) {
        return ptr::null_mut();
    }
    if !align.is_power_of_two() {
        return ptr::null_mut();
    }
    let stack = depot::insert(bt);
    if let Some(p) = guard::alloc(size, align, zeroed, stack, kind) {
        program_stats::allocated(size);
        return p;
    }
    let align = align.max(MIN_ALIGN);
    // The header ends where the user bytes start, which must be aligned.
    let Some(offset) = crate::os::align_up(HEADER_SIZE, align) else {
        return ptr::null_mut();
    };
    let Some(total) = size
        .checked_add(offset)
        .and_then(|t| t.checked_add(TAIL_MIN))
    else {
        return ptr::null_mut();
    };
    let base = if zeroed {
        core_alloc::alloc_zeroed(total, align)
    } else {
        core_alloc::alloc(total, align)
    } as usize;
    if base == 0 {
        return ptr::null_mut();
    }
    let user = base + offset;
    let h = header_of(user);
    // SAFETY: the core block holds `offset + size + TAIL_MIN` bytes from `base`, and the
    // usable size it reports; the header lies in the first `offset` bytes.
    unsafe {
        h.write(Header {
            state: AtomicU32::new(FRESH),
            ..Header::new(base, size, stack, kind)
        })
    };
    // The locked instructions come before the fills: each waits until every store before it
    // has reached the cache, and after the fills (hundreds of bytes, lines not yet owned among
    // them) the table lock's compare-and-swap took 60% of this function's samples (perf).
    leaks::insert(h);
    program_stats::allocated(size);
    // SAFETY: as above: the pad, the user bytes and the tail lie inside the core block.
    unsafe {
        if offset > HEADER_SIZE {
            block::bytes(base, offset - HEADER_SIZE).fill(REDZONE_BYTE);
        }
        if !zeroed {
            block::bytes(user, size.min(UNINIT_MAX)).fill(UNINIT_BYTE);
        }
        let usable = core_alloc::usable_size(base as *const u8);
        let tail = (base + usable - user - size).min(TAIL_MAX);
        block::bytes(user + size, tail).fill(REDZONE_BYTE);
    }
    // Listed while FRESH, which the exit checks pass over; LIVE once the redzones are written
    // (a release store: a plain one on x86, no wait).
    // SAFETY: the header was written above and is this thread's.
    unsafe { (*h).state.store(LIVE, Ordering::Release) };
    user as *mut u8
}

impl Header {
    pub(super) fn new(base: usize, size: usize, alloc_stack: u32, kind: AllocKind) -> Header {
        Header {
            kind: kind as usize,
            base,
            size,
            magic: MAGIC,
            state: AtomicU32::new(LIVE),
            alloc_stack,
            free_stack: 0,
            place: leaks::UNLISTED,
            _reserved: 0,
            canary: [REDZONE_BYTE; CANARY_LEN],
        }
    }
}

/// The header of the check-mode block whose user bytes start at `user`, in any state; `None`
/// for a pointer that is not such a start.
fn find(user: usize) -> Option<*mut Header> {
    if user % MIN_ALIGN != 0 || !core_alloc::owns(user as *const u8) {
        return None;
    }
    let h = header_of(user);
    if !core_alloc::owns(h as *const u8) {
        return None;
    }
    // SAFETY: the header's range is in larder's memory, mapped while owned; its fields are
    // plain integers, any value of which is safe to read.
    let (magic, base) = unsafe { (ptr::addr_of!((*h).magic).read(), (*h).base) };
    if magic != MAGIC || base > h as usize || (h as usize) - base >= 1 << 30 {
        return None;
    }
    Some(h)
}

/// The header of `user` if it is a live block; otherwise reports what it is and returns `None`.
fn live_header(user: usize, op: &str, at: &Backtrace) -> Option<*mut Header> {
    let Some(h) = find(user) else {
        report_invalid(user, op, at);
        return None;
    };
    // SAFETY: `find` returns headers of check mode's blocks, whose memory stays mapped.
    let header = unsafe { &*h };
    match header
        .state
        .compare_exchange(LIVE, QUARANTINED, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => Some(h),
        Err(QUARANTINED) | Err(RELEASED) => {
            report::error(&Error {
                class: "double-free",
                op,
                addr: user,
                block: Some((user, header.size)),
                offset: None,
                alloc: Some(&depot::get(header.alloc_stack)),
                free: Some(&depot::get(header.free_stack)),
                at: Some(at),
            });
            None
        }
        Err(_) => {
            report_invalid(user, op, at);
            None
        }
    }
}

fn report_invalid(addr: usize, op: &str, at: &Backtrace) {
    report::error(&Error {
        class: "invalid-free",
        op,
        addr,
        block: None,
        offset: None,
        alloc: None,
        free: None,
        at: Some(at),
    });
}

/// Checks the redzones of a block that was live, poisons it and puts it in the quarantine.
fn release_to_quarantine(h: *mut Header, at: &Backtrace, op: &str) {
    // SAFETY: the caller won LIVE -> QUARANTINED on `h`, so this thread owns the block.
    let header = unsafe { &mut *h };
    let user = header.user();
    let size = header.size;
    // Out of the live blocks before the poison fill, for the reason `alloc_with` lists them
    // before its fills: the lock's compare-and-swap waits for the stores before it.
    leaks::remove(h);
    program_stats::freed(size);
    check_redzones(header, op, Some(at));
    header.free_stack = depot::insert(at);
    // SAFETY: the user bytes are the block's.
    unsafe { block::bytes(user, size.min(POISON_MAX)).fill(POISON_BYTE) };
    quarantine::push(
        user,
        size,
        options::get().quarantine_bytes,
        leave_quarantine,
    );
}

/// Reports a broken canary (underflow) or tail redzone (overflow).
fn check_redzones(header: &Header, op: &str, at: Option<&Backtrace>) {
    let user = header.user();
    let size = header.size;
    let offset = if let Some(i) = first_mismatch(&header.canary, REDZONE_BYTE) {
        Some(i as isize - CANARY_LEN as isize)
    } else {
        // SAFETY: the core block is live and holds its usable size from `base`.
        let usable = unsafe { core_alloc::usable_size(header.base as *const u8) };
        let tail = (header.base + usable - user - size).min(TAIL_MAX);
        // SAFETY: the tail redzone lies inside the core block.
        let tail_bytes = unsafe { block::bytes(user + size, tail) };
        first_mismatch(tail_bytes, REDZONE_BYTE).map(|i| (size + i) as isize)
    };
    if let Some(offset) = offset {
        report_redzone(op, (user, size), offset, header.alloc_stack, at);
    }
}

/// Reports a redzone byte of `block` (start, size) found changed at `offset` from its start:
/// before it an underflow, past its size an overflow.
pub(super) fn report_redzone(
    op: &str,
    block: (usize, usize),
    offset: isize,
    alloc_stack: u32,
    at: Option<&Backtrace>,
) {
    let class = if offset < 0 {
        "heap-buffer-underflow"
    } else {
        "heap-buffer-overflow"
    };
    report::error(&Error {
        class,
        op,
        addr: block.0.wrapping_add_signed(offset),
        block: Some(block),
        offset: Some(offset),
        alloc: Some(&depot::get(alloc_stack)),
        free: None,
        at,
    });
}

/// A block leaving the quarantine (`size`: its requested size, as the ring kept it): a changed
/// poison byte is a write after free.
fn leave_quarantine(user: usize, size: usize) {
    // SAFETY: quarantined blocks keep their header and memory until given back below.
    let header = unsafe { &*header_of(user) };
    // SAFETY: the user bytes are the quarantined block's.
    let poisoned = unsafe { block::bytes(user, size.min(POISON_MAX)) };
    if let Some(i) = first_mismatch(poisoned, POISON_BYTE) {
        report::error(&Error {
            class: "use-after-free",
            op: "quarantine",
            addr: user + i,
            block: Some((user, size)),
            offset: Some(i as isize),
            alloc: Some(&depot::get(header.alloc_stack)),
            free: Some(&depot::get(header.free_stack)),
            at: None,
        });
    }
    header.state.store(RELEASED, Ordering::Release);
    // SAFETY: `base` is the core block this checked block was carved from, freed once here.
    unsafe { core_alloc::free(header.base as *mut u8) };
}

/// Check mode as Rust's global allocator:
/// `#[global_allocator] static GLOBAL: larder::Checked = larder::Checked;`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checked;

// SAFETY: every method forwards to check mode, which returns blocks of at least the layout's
// size and alignment, or null, and frees only blocks it handed out (reporting anything else).
unsafe impl GlobalAlloc for Checked {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: no requirement beyond the layout's.
        unsafe { alloc(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: check mode validates the pointer.
        unsafe { free(ptr) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: no requirement beyond the layout's.
        unsafe { alloc_zeroed(layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: check mode validates the pointer.
        unsafe { realloc(ptr, new_size, layout.align()) }
    }
}
