//! The entry points the C library (`larder-c`) forwards to: addresses without layouts, foreign
//! pointers tolerated. C's own rules (errno, overflow of `count * size`, alignment validation)
//! live in `larder-c`, not here.

use crate::alloc;

/// Allocates `size` bytes aligned to `align` (a power of two). Null when memory cannot be had.
///
/// # Safety
/// None beyond the usual: the result must be freed with `free` of this module.
#[inline]
pub unsafe fn alloc(size: usize, align: usize) -> *mut u8 {
    alloc::alloc(size, align)
}

/// Requests up to this size may try `alloc_small_fast`.
pub const SMALL_FAST_MAX: usize = crate::size_class::DIRECT_MAX;

/// The small fast path alone: a block of `size <= SMALL_FAST_MAX` bytes, or null when only the
/// slow path (`alloc`) can serve it.
#[inline(always)]
pub fn alloc_small_fast(size: usize) -> *mut u8 {
    alloc::alloc_small_fast(size)
}

/// Allocates `size` zeroed bytes aligned to `align`.
///
/// # Safety
/// As `alloc`.
#[inline]
pub unsafe fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    alloc::alloc_zeroed(size, align)
}

/// Frees a block. Null is a no-op; a pointer larder does not own is reported once on stderr and
/// left alone.
///
/// # Safety
/// `ptr` must not be a block already freed (larder reports many such frees, not all).
#[inline]
pub unsafe fn free(ptr: *mut u8) {
    // SAFETY: forwarded from the caller.
    unsafe { alloc::free(ptr) }
}

/// Resizes a block (null `ptr` allocates). A null result leaves the old block intact.
///
/// # Safety
/// As `free`.
#[inline]
pub unsafe fn realloc(ptr: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    // SAFETY: forwarded from the caller.
    unsafe { alloc::realloc(ptr, new_size, align) }
}

/// Sets larder up (its thread-exit key, its `fork` handlers) before any allocation. The C
/// library calls it from a constructor: `pthread_atfork` runs prepare handlers in the reverse
/// of their registration order and the others in that order, so larder's handlers, registered
/// before the program's, take larder's locks after every prepare handler of the program's has
/// run (which may allocate, or wait for a thread that is allocating) and release them before
/// the program's parent and child handlers run. Returns false when memory cannot be had.
pub fn init() -> bool {
    crate::heap::init()
}

/// Whether `ptr` lies in larder's memory.
#[inline]
pub fn owns(ptr: *const u8) -> bool {
    alloc::owns(ptr)
}

/// The usable size of a live block; 0 for null or foreign pointers.
///
/// # Safety
/// `ptr` must be null, foreign, or a live block (not one already freed).
#[inline]
pub unsafe fn usable_size(ptr: *const u8) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { alloc::usable_size(ptr) }
}

/// Writes a human-readable heap report to `fd` with write(2), without allocating.
pub fn write_stats(fd: i32) {
    write_report(fd, &crate::stats());
}

/// Writes `stats` (a snapshot, the core's or check mode's) as [`write_stats`] does.
pub fn write_report(fd: i32, stats: &crate::Stats) {
    crate::stats::write_report(fd, stats);
}
