//! What C programs expect of the malloc family, in one place, on top of the
//! core's `larder::raw` entry points, which know nothing of C.
//!
//! The backend is `crate::backend`: `larder::raw` re-exported in liblarder.so,
//! check mode's entry points in liblarder_check.so, which compiles this same
//! file (static dispatch by module: the default library's code is unchanged).
//!
//! The rules are glibc's, because glibc is what the programs we replace were
//! written and tested against:
//! - failure is NULL with `errno = ENOMEM`, for sizes above `PTRDIFF_MAX` and for
//!   `calloc` and `reallocarray` whose count × size overflows, and leaves the old
//!   block of a failed `realloc` untouched;
//! - `malloc(0)` is a unique pointer that `free` accepts; `free(NULL)` does
//!   nothing; `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p` and
//!   returns NULL, as glibc's does (it has no errno to report);
//! - results are 16-byte aligned, except blocks of 8 bytes or less, which only
//!   need 8 (no object that fits in them needs more);
//! - `posix_memalign` answers `EINVAL` for an alignment that is not a power of
//!   two multiple of `sizeof(void *)`; `memalign` and `aligned_alloc` round such
//!   an alignment up to a power of two, as glibc 2.36 does, so that a program
//!   that works on glibc works here; `valloc` and `pvalloc` align to the page,
//!   and `pvalloc` also rounds the size up to whole pages.

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::backend as raw;
use crate::backend::AllocKind;

use crate::foreign;

/// glibc refuses any request above `PTRDIFF_MAX`: pointer differences inside
/// a larger block would overflow.
const MAX_REQUEST: usize = isize::MAX as usize;

/// The largest alignment `memalign` accepts; above it glibc answers `EINVAL`.
const MAX_ALIGN: usize = MAX_REQUEST / 2 + 1;

/// The alignment a `malloc` result of `size` bytes must have.
#[inline(always)]
fn fundamental_align(size: usize) -> usize {
    if size <= 8 {
        8
    } else {
        16
    }
}

/// The size to ask the core for so that its fast path (which serves only
/// `align <= 8`) returns a block with malloc's alignment: above 8 bytes, the
/// size rounded up to a multiple of 16. Every size class of larder's that
/// serves a multiple of 16 is itself a multiple of 16, and pages start
/// aligned, so those blocks are 16-byte aligned; asking with `align = 16`
/// instead would take the core's out-of-line generic path, about 25 more
/// instructions per malloc (callgrind), only to do this same rounding. The
/// tests of this module and tests/c/api_semantics.c check the alignment.
///
/// A backend with `EXACT_SIZES` (check mode) is given the size asked for: the
/// bytes between it and the size class are its redzone. The constant is
/// false for the core, and the branch folds away.
#[inline(always)]
fn fast_path_request(size: usize) -> usize {
    if raw::EXACT_SIZES {
        return size;
    }
    // Every block is at least 16 bytes (`size_class::MIN_BLOCK`), so rounding every size up
    // to 16 gives the fundamental alignment and costs no memory; 0 stays 0, which the core
    // serves with a distinct 16-byte block like any size up to 16.
    (size + 15) & !15
}

/// The alignment the malloc family asks the backend for: `align` for the core; 1 for check
/// mode (`EXACT_SIZES`), which gives a block at least the alignment its size needs (the largest
/// power of two dividing it, at most 16) and, for a block against a guard page, no more, so
/// that the block's end touches the page. The constant folds away.
#[inline(always)]
fn request_align(align: usize) -> usize {
    if raw::EXACT_SIZES {
        1
    } else {
        align
    }
}

#[cold]
fn set_errno(code: i32) {
    // SAFETY: __errno_location returns this thread's errno slot, valid for the
    // thread's lifetime; libc sets it up before any code of a thread runs.
    unsafe { *libc::__errno_location() = code };
}

/// NULL with `errno = ENOMEM`.
#[cold]
#[inline(never)]
fn out_of_memory() -> *mut c_void {
    set_errno(libc::ENOMEM);
    ptr::null_mut()
}

/// Turns the core's result into C's: NULL results also set `errno`.
#[inline(always)]
fn c_result(block: *mut u8) -> *mut c_void {
    if block.is_null() {
        return out_of_memory();
    }
    block.cast()
}

/// `malloc(size)`.
///
/// # Safety
/// None beyond the C contract: the result is owned by the caller.
#[inline(always)]
pub unsafe fn malloc(size: usize) -> *mut c_void {
    malloc_as(size, AllocKind::Malloc)
}

/// `malloc` for the allocating function of family `kind`: the fast path, else the slow one.
#[inline(always)]
fn malloc_as(size: usize, kind: AllocKind) -> *mut c_void {
    let block = malloc_fast(size);
    if !block.is_null() {
        return block;
    }
    malloc_slow(size, kind)
}

/// `malloc`'s fast path alone: a small block from the thread's free list, or NULL when that
/// takes more (a bigger size, an empty list); then [`malloc_slow`] does the rest.
#[inline(always)]
pub fn malloc_fast(size: usize) -> *mut c_void {
    if size <= raw::SMALL_FAST_MAX {
        return raw::alloc_small_fast(fast_path_request(size)).cast();
    }
    ptr::null_mut()
}

/// `malloc` past the small fast path, for the allocating function of family `kind` (C++'s
/// `new` shares this path; check mode records the family). `extern "C"` so that the call
/// cannot unwind and `malloc` can tail-call it, needing no stack frame.
#[cold]
#[inline(never)]
pub extern "C" fn malloc_slow(size: usize, kind: AllocKind) -> *mut c_void {
    if size > MAX_REQUEST {
        return out_of_memory();
    }
    // SAFETY: no overflow (size <= MAX_REQUEST) and a power-of-two alignment,
    // as raw::alloc requires.
    c_result(unsafe { raw::alloc_as(fast_path_request(size), request_align(8), kind) })
}

/// `calloc(count, size)`: zeroed memory, NULL and `ENOMEM` when
/// `count * size` overflows.
///
/// # Safety
/// None beyond the C contract.
#[inline(always)]
pub unsafe fn calloc(count: usize, size: usize) -> *mut c_void {
    let total = match count.checked_mul(size) {
        Some(total) if total <= MAX_REQUEST => total,
        _ => return out_of_memory(),
    };
    // SAFETY: non-zero size, power-of-two alignment. The core zeroes only what
    // is not already zero (fresh pages from the OS are).
    c_result(unsafe { raw::alloc_zeroed(fast_path_request(total), request_align(8)) })
}

/// `free(ptr)`.
///
/// # Safety
/// `ptr` is NULL or a block from this allocator that is not freed yet; a
/// pointer larder does not own is reported and ignored by the core.
#[inline(always)]
pub unsafe fn free(ptr: *mut c_void) {
    // SAFETY: the caller's contract is raw::free's; NULL is a no-op there.
    unsafe { raw::free(ptr.cast()) }
}

/// `free(ptr)` by the freeing function of family `kind` (C++'s `delete` and `delete[]`): the
/// same as `free` in the core; check mode reports a block of another family.
///
/// # Safety
/// As [`free`].
#[inline(always)]
pub unsafe fn free_as(ptr: *mut c_void, kind: AllocKind) {
    // SAFETY: the caller's contract is raw::free's; NULL is a no-op there.
    unsafe { raw::free_as(ptr.cast(), kind) }
}

/// `realloc(ptr, size)`.
///
/// # Safety
/// `ptr` is NULL or a live block of this allocator.
#[inline(always)]
pub unsafe fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    if ptr.is_null() {
        // SAFETY: realloc(NULL, n) is malloc(n).
        return unsafe { malloc(size) };
    }
    if size == 0 {
        // SAFETY: glibc frees the block and returns NULL; `ptr` is live.
        unsafe { free(ptr) };
        return ptr::null_mut();
    }
    if size > MAX_REQUEST {
        return out_of_memory();
    }
    // SAFETY: `ptr` is a live block, or one larder does not own, which the
    // core reports and leaves alone, returning NULL (so ENOMEM here). The size
    // is non-zero and the alignment a power of two. On failure the old block is
    // left as it was.
    c_result(unsafe { raw::realloc(ptr.cast(), size, request_align(fundamental_align(size))) })
}

/// `reallocarray(ptr, count, size)`: `realloc` with an overflow check.
///
/// # Safety
/// As [`realloc`].
pub unsafe fn reallocarray(ptr: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        // SAFETY: the caller's contract is realloc's.
        Some(total) => unsafe { realloc(ptr, total) },
        None => out_of_memory(),
    }
}

/// An aligned block for `memalign`, `aligned_alloc`, `valloc` and `pvalloc`;
/// `align` may be anything, and is rounded up to a power of two.
///
/// # Safety
/// None beyond the C contract.
pub unsafe fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: the same contract.
    unsafe { memalign_as(align, size, AllocKind::Malloc) }
}

/// As [`memalign`], for the allocating function of family `kind` (C++'s aligned `new`).
///
/// # Safety
/// None beyond the C contract.
pub unsafe fn memalign_as(align: usize, size: usize, kind: AllocKind) -> *mut c_void {
    if raw::EXACT_SIZES && align <= fundamental_align(size) {
        // Check mode places a guarded `malloc` block at the alignment its size needs (so that
        // its end touches the guard page), which may be less than malloc's 16 bytes: it is
        // told the alignment asked for. (The constant is false for the core: folded away.)
        // SAFETY: non-zero size and a power-of-two alignment (at most 16 here).
        return c_result(unsafe {
            raw::alloc_as(size.max(1), align.max(1).next_power_of_two(), kind)
        });
    }
    if align <= fundamental_align(size) {
        // Malloc's own alignment already satisfies the request.
        return malloc_as(size, kind);
    }
    if align > MAX_ALIGN {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    let align = align.next_power_of_two();
    if size > MAX_REQUEST - align {
        return out_of_memory();
    }
    // SAFETY: non-zero size and a power-of-two alignment.
    c_result(unsafe { raw::alloc_as(size.max(1), align, kind) })
}

/// `posix_memalign(out, align, size)`: 0, `EINVAL` or `ENOMEM`; `*out` is
/// written only on success.
///
/// # Safety
/// `out` points to writable storage for a pointer.
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    if !align.is_power_of_two() || align % core::mem::size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    // memalign may set errno; posix_memalign reports through its result only.
    // SAFETY: errno_location is this thread's errno slot.
    let saved_errno = unsafe { *libc::__errno_location() };
    // SAFETY: no requirement beyond C's.
    let block = unsafe { memalign(align, size) };
    if block.is_null() {
        set_errno(saved_errno);
        return libc::ENOMEM;
    }
    // SAFETY: the caller guarantees `out` is writable.
    unsafe { out.write(block) };
    0
}

/// The page size, read once: sysconf neither allocates nor locks.
fn page_size() -> usize {
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions.
    let queried = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if queried > 0 { queried as usize } else { 4096 };
    PAGE_SIZE.store(page, Ordering::Relaxed);
    page
}

/// `valloc(size)`: page-aligned.
///
/// # Safety
/// None beyond the C contract.
pub unsafe fn valloc(size: usize) -> *mut c_void {
    // SAFETY: no requirement beyond C's.
    unsafe { memalign(page_size(), size) }
}

/// `pvalloc(size)`: page-aligned, the size rounded up to whole pages.
///
/// # Safety
/// None beyond the C contract.
pub unsafe fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    match size.checked_add(page - 1) {
        // SAFETY: no requirement beyond C's.
        Some(padded) => unsafe { memalign(page, padded & !(page - 1)) },
        None => out_of_memory(),
    }
}

/// `malloc_usable_size(ptr)`: how many bytes the block really has, 0 for NULL
/// and for pointers larder does not own.
///
/// # Safety
/// `ptr` is NULL or a live block.
pub unsafe fn malloc_usable_size(ptr: *mut c_void) -> usize {
    // SAFETY: `ptr` is NULL, a live block, or memory larder does not own, for
    // which the core answers 0.
    let usable = unsafe { raw::usable_size(ptr.cast()) };
    if usable == 0 && !ptr.is_null() && !raw::owns(ptr.cast()) {
        foreign::report(b"malloc_usable_size", ptr.cast());
    }
    usable
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sizes a C program asks for, from 0 to past the largest size class.
    fn sizes() -> impl Iterator<Item = usize> {
        (0..=300usize).chain((301..400_000).step_by(97))
    }

    /// What a block of `size` bytes must be aligned to: glibc's alignment from the core; in
    /// check mode (`EXACT_SIZES`), whose blocks may end against a guard page, at least what an
    /// object of exactly that size needs (the largest power of two dividing the size, at most
    /// 16), which is what `LARDER_GUARD_ALIGN=exact` gives; the default gives more, what C asks
    /// of `malloc` for any object of the size or less (the largest power of two not above it).
    fn expected_align(size: usize) -> usize {
        if raw::EXACT_SIZES {
            (1usize << size.trailing_zeros().min(4)).min(fundamental_align(size))
        } else {
            fundamental_align(size)
        }
    }

    #[test]
    fn malloc_and_calloc_blocks_have_the_fundamental_alignment() {
        for size in sizes() {
            // SAFETY: each block is checked, written within its size and freed once.
            unsafe {
                for block in [malloc(size), calloc(1, size)] {
                    assert!(!block.is_null(), "size {size}");
                    let align = expected_align(size);
                    assert_eq!(
                        block as usize % align,
                        0,
                        "size {size} wants {align}-byte alignment"
                    );
                    assert!(malloc_usable_size(block) >= size, "size {size}");
                    block.cast::<u8>().write_bytes(0xab, size);
                    free(block);
                }
            }
        }
    }

    #[test]
    fn failures_are_null_with_enomem() {
        // SAFETY: reading and writing this thread's errno.
        let errno = || unsafe { *libc::__errno_location() };
        // SAFETY: failed allocations return null and own nothing.
        unsafe {
            assert!(malloc(usize::MAX).is_null());
            assert_eq!(errno(), libc::ENOMEM);
            set_errno(0);
            assert!(calloc(usize::MAX / 2, 3).is_null());
            assert_eq!(errno(), libc::ENOMEM);
            set_errno(0);
            assert!(reallocarray(ptr::null_mut(), usize::MAX / 2, 3).is_null());
            assert_eq!(errno(), libc::ENOMEM);
            let mut out = ptr::null_mut();
            assert_eq!(posix_memalign(&mut out, 24, 10), libc::EINVAL);
            assert_eq!(posix_memalign(&mut out, 64, usize::MAX - 10), libc::ENOMEM);
            assert!(out.is_null());
        }
    }

    #[test]
    fn realloc_to_zero_frees_and_returns_null() {
        // SAFETY: the block is live until realloc(p, 0) frees it.
        unsafe {
            let block = malloc(100);
            assert!(realloc(block, 0).is_null());
            let fresh = realloc(ptr::null_mut(), 40);
            assert!(!fresh.is_null());
            free(fresh);
        }
    }
}
