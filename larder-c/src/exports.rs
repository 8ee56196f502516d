//! The C ABI: every symbol of glibc's malloc family, and larder's own
//! `larder_*` functions declared in `include/larder.h`. Each is a one-line
//! forwarder; the rules live in [`crate::c_rules`].
//!
//! These definitions take the place of glibc's: the dynamic linker binds every
//! call to `malloc` in the process (libc's own included) to the first
//! definition it finds, which is this library's when it is preloaded or linked
//! ahead of libc.

use core::ffi::{c_int, c_void};

use crate::c_rules;

/// C's `malloc`.
///
/// # Safety
/// Called from C with C's contract.
#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: the C contract is c_rules::malloc's.
    unsafe { c_rules::malloc(size) }
}

/// C's `calloc`.
///
/// # Safety
/// Called from C with C's contract.
#[no_mangle]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    // SAFETY: the C contract is c_rules::calloc's.
    unsafe { c_rules::calloc(count, size) }
}

/// C's `free`.
///
/// # Safety
/// `ptr` is NULL or a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    // SAFETY: the C contract is c_rules::free's.
    unsafe { c_rules::free(ptr) }
}

/// `cfree`, an old name of `free` that glibc still exports.
///
/// # Safety
/// As [`free`].
#[no_mangle]
pub unsafe extern "C" fn cfree(ptr: *mut c_void) {
    // SAFETY: the C contract is c_rules::free's.
    unsafe { c_rules::free(ptr) }
}

/// C's `realloc`.
///
/// # Safety
/// `ptr` is NULL or a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the C contract is c_rules::realloc's.
    unsafe { c_rules::realloc(ptr, size) }
}

/// C's `reallocarray`.
///
/// # Safety
/// `ptr` is NULL or a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, count: usize, size: usize) -> *mut c_void {
    // SAFETY: the C contract is c_rules::reallocarray's.
    unsafe { c_rules::reallocarray(ptr, count, size) }
}

/// C's `memalign`.
///
/// # Safety
/// Called from C with C's contract.
#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: the C contract is c_rules::memalign's.
    unsafe { c_rules::memalign(align, size) }
}

/// C11's `aligned_alloc`, which glibc implements as `memalign`.
///
/// # Safety
/// Called from C with C's contract.
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    // SAFETY: the C contract is c_rules::memalign's.
    unsafe { c_rules::memalign(align, size) }
}

/// POSIX's `posix_memalign`.
///
/// # Safety
/// `out` points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    // SAFETY: the C contract is c_rules::posix_memalign's.
    unsafe { c_rules::posix_memalign(out, align, size) }
}

/// `valloc`: page-aligned memory.
///
/// # Safety
/// Called from C with C's contract.
#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    // SAFETY: the C contract is c_rules::valloc's.
    unsafe { c_rules::valloc(size) }
}

/// `pvalloc`: page-aligned memory in whole pages.
///
/// # Safety
/// Called from C with C's contract.
#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    // SAFETY: the C contract is c_rules::pvalloc's.
    unsafe { c_rules::pvalloc(size) }
}

/// glibc's `malloc_usable_size`.
///
/// # Safety
/// `ptr` is NULL or a live block.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    // SAFETY: the C contract is c_rules::malloc_usable_size's.
    unsafe { c_rules::malloc_usable_size(ptr) }
}

/// `larder_stats_print()`: larder's statistics, human-readable, on stderr.
#[no_mangle]
pub extern "C" fn larder_stats_print() {
    crate::backend::write_stats(libc::STDERR_FILENO);
}

/// glibc's internal names of the functions above, `__libc_malloc` and the rest, as forwarders:
/// a few programs and libraries call them directly, and a block from larder given to glibc's
/// `__libc_free` would abort the program.
macro_rules! glibc_internal_names {
    ($($alias:ident => $public:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {$(
        #[doc = concat!("`", stringify!($alias), "`: `", stringify!($public), "`.")]
        ///
        /// # Safety
        /// As the public function's.
        #[no_mangle]
        pub unsafe extern "C" fn $alias($($arg: $ty),*) $(-> $ret)? {
            // SAFETY: the caller's contract is the public function's.
            unsafe { $public($($arg),*) }
        }
    )*};
}

glibc_internal_names! {
    __libc_malloc => malloc(size: usize) -> *mut c_void;
    __libc_calloc => calloc(count: usize, size: usize) -> *mut c_void;
    __libc_realloc => realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    __libc_free => free(ptr: *mut c_void);
    __libc_memalign => memalign(align: usize, size: usize) -> *mut c_void;
    __libc_valloc => valloc(size: usize) -> *mut c_void;
    __libc_pvalloc => pvalloc(size: usize) -> *mut c_void;
}

/// `larder_collect(force)`: gives memory larder does not use back to the OS
/// now; with `force` non-zero, also what it would keep a while for reuse.
#[no_mangle]
pub extern "C" fn larder_collect(force: c_int) {
    larder_core::collect(force != 0);
}
