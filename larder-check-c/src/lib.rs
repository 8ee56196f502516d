//! liblarder_check.so: larder's check mode as the `malloc` of C and C++
//! programs (`LD_PRELOAD=liblarder_check.so`, or `larder run --check`).
//!
//! The C symbols, C's rules, the foreign-pointer warning and the exit record
//! are liblarder.so's own source files (larder-c/src), compiled here over a
//! different [`backend`]: check mode's entry points (`larder::check`) instead
//! of the core's. One copy of the rules, two libraries, and the default one
//! pays nothing for the checks.
//!
//! With `LARDER_PROFILE=RATE` the same library is a heap profiler instead (`larder run
//! --profile`): blocks come from the core unchecked, one allocation per RATE bytes on average
//! is sampled with its stack (`larder::check::profile`), and the sites are written at exit.

#[path = "../../larder-c/src/c_rules.rs"]
pub mod c_rules;
#[path = "../../larder-c/src/cxx.rs"]
pub mod cxx;
#[path = "../../larder-c/src/exit_report.rs"]
pub mod exit_report;
#[path = "../../larder-c/src/exports.rs"]
pub mod exports;
#[path = "../../larder-c/src/foreign.rs"]
pub mod foreign;
#[path = "../../larder-c/src/glibc_ext.rs"]
pub mod glibc_ext;
#[path = "../../larder-c/src/line.rs"]
pub mod line;
#[path = "../../larder-c/src/timeline.rs"]
pub mod timeline;

pub mod backend {
    //! The entry points the C rules sit on: check mode's, or, with `LARDER_PROFILE` set, the
    //! sampling profiler's (the core's blocks, no checks). One branch on an option read once
    //! decides; the default liblarder.so has neither.
    use larder_core::check::{self, profile};
    pub use larder_core::check::{owns, AllocKind};
    /// Check mode needs the requested size: what lies past it is redzone. The profiler
    /// samples requested sizes, and rounds them for the core itself.
    pub const EXACT_SIZES: bool = true;

    /// The heap figures of the exit record, the timeline and `larder_print_stats`: the
    /// program's own calls under check mode (the core's would count headers, redzones and
    /// quarantined blocks, and miss guarded ones); the core's under the profiler, whose blocks
    /// are the core's.
    pub fn stats() -> larder_core::Stats {
        if profile::enabled() {
            larder_core::stats()
        } else {
            check::stats()
        }
    }

    /// Writes [`stats`] as a human-readable report to `fd`, without allocating.
    pub fn write_stats(fd: i32) {
        larder_core::raw::write_report(fd, &stats());
    }

    /// `size` bytes aligned to `align`.
    ///
    /// # Safety
    /// As `larder::check::alloc`.
    #[inline(always)]
    pub unsafe fn alloc(size: usize, align: usize) -> *mut u8 {
        if profile::enabled() {
            // SAFETY: the caller's contract is the profiler's.
            unsafe { profile::alloc(size, align) }
        } else {
            // SAFETY: the caller's contract is check mode's.
            unsafe { check::alloc(size, align) }
        }
    }

    /// As [`alloc`], for the allocating function of family `kind` (C++'s `new`, `new[]`).
    ///
    /// # Safety
    /// As `larder::check::alloc_as`.
    #[inline(always)]
    pub unsafe fn alloc_as(size: usize, align: usize, kind: AllocKind) -> *mut u8 {
        if profile::enabled() {
            // SAFETY: the caller's contract is the profiler's.
            unsafe { profile::alloc(size, align) }
        } else {
            // SAFETY: the caller's contract is check mode's.
            unsafe { check::alloc_as(size, align, kind) }
        }
    }

    /// As [`free`], by the freeing function of family `kind`: a mismatch is reported.
    ///
    /// # Safety
    /// As `larder::check::free_as`.
    #[inline(always)]
    pub unsafe fn free_as(ptr: *mut u8, kind: AllocKind) {
        if profile::enabled() {
            // SAFETY: the caller's contract is the profiler's.
            unsafe { profile::free(ptr) }
        } else {
            // SAFETY: the caller's contract is check mode's.
            unsafe { check::free_as(ptr, kind) }
        }
    }

    /// As [`alloc`], zeroed.
    ///
    /// # Safety
    /// As [`alloc`].
    #[inline(always)]
    pub unsafe fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
        if profile::enabled() {
            // SAFETY: the caller's contract is the profiler's.
            unsafe { profile::alloc_zeroed(size, align) }
        } else {
            // SAFETY: the caller's contract is check mode's.
            unsafe { check::alloc_zeroed(size, align) }
        }
    }

    /// Frees a block.
    ///
    /// # Safety
    /// As `larder::check::free`.
    #[inline(always)]
    pub unsafe fn free(ptr: *mut u8) {
        if profile::enabled() {
            // SAFETY: the caller's contract is the profiler's.
            unsafe { profile::free(ptr) }
        } else {
            // SAFETY: the caller's contract is check mode's.
            unsafe { check::free(ptr) }
        }
    }

    /// Resizes a block.
    ///
    /// # Safety
    /// As `larder::check::realloc`.
    #[inline(always)]
    pub unsafe fn realloc(ptr: *mut u8, new_size: usize, align: usize) -> *mut u8 {
        if profile::enabled() {
            // SAFETY: the caller's contract is the profiler's.
            unsafe { profile::realloc(ptr, new_size, align) }
        } else {
            // SAFETY: the caller's contract is check mode's.
            unsafe { check::realloc(ptr, new_size, align) }
        }
    }

    /// The usable size of a live block.
    ///
    /// # Safety
    /// As `larder::check::usable_size`.
    pub unsafe fn usable_size(ptr: *const u8) -> usize {
        if profile::enabled() {
            // SAFETY: the profiler's blocks are the core's.
            unsafe { larder_core::raw::usable_size(ptr) }
        } else {
            // SAFETY: the caller's contract is check mode's.
            unsafe { check::usable_size(ptr) }
        }
    }

    pub use larder_core::raw::SMALL_FAST_MAX;
    /// Check mode and the profiler have no unchecked fast path: every request takes `alloc`.
    #[inline(always)]
    pub fn alloc_small_fast(_size: usize) -> *mut u8 {
        core::ptr::null_mut()
    }
}

/// Rust code inside this library allocates from the core directly: its own
/// blocks are not the program's, and are not checked.
#[global_allocator]
static GLOBAL: larder_core::Larder = larder_core::Larder;

/// Run at `exit` after the program's own destructors: the end-of-life checks.
#[used]
#[link_section = ".fini_array"]
static CHECK_AT_EXIT: extern "C" fn() = check_at_exit;

extern "C" fn check_at_exit() {
    if larder_core::check::profile::enabled() {
        larder_core::check::profile::at_exit();
    } else if larder_core::check::at_exit_from_fini() {
        // Leaks, and LARDER_LEAKS_FAIL=on: the heap record first (its own `.fini_array`
        // entry may come after this one), then status 23, as LeakSanitizer ends.
        exit_report::write_at_exit();
        // SAFETY: _exit has no preconditions.
        unsafe { libc::_exit(larder_core::check::report::EXIT_STATUS) };
    }
}

/// Run by the dynamic linker before `main`: check mode's fork handlers.
#[used]
#[link_section = ".init_array"]
static CHECK_INIT: extern "C" fn() = check_init;

extern "C" fn check_init() {
    larder_core::check::init();
}
