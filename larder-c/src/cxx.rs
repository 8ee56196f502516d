//! C++'s `operator new` and `operator delete`, every replaceable form (plain and array,
//! sized, aligned, nothrow), so that a C++ program's allocations reach larder's fast path
//! directly instead of through libstdc++'s forwarders, which add about 24 instructions to a
//! `new` + `delete` pair (callgrind, bench/cxx_pair.cpp).
//!
//! The symbols are the Itanium C++ ABI's mangled names, which libstdc++ and libc++ both use.
//!
//! A successful `new` is `malloc` (or `memalign` for the aligned forms). A failed one must do
//! what C++ requires: call the installed new-handler until it gives up, then throw
//! `std::bad_alloc` (or, for the nothrow forms, return null). Rust can neither call the
//! handler's C++ API without linking a C++ runtime nor throw a C++ exception, so the failure
//! path hands the request to the next definition of the same operator in the process, the C++
//! runtime's own: it calls `malloc` (larder's), runs the new-handler loop and throws. The
//! exception unwinds through the `extern "C-unwind"` frames here to the caller. The next
//! definition is looked up with `dlsym` on the first failure only; a process with no C++
//! runtime has no C++ code to catch anything, and is stopped with a message instead.
//!
//! Deletes forward to `free`, which finds the block's size and alignment from its address: the
//! size and alignment arguments are not needed.

use core::ffi::{c_void, CStr};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::backend::AllocKind;
use crate::c_rules;
use crate::line::Line;

/// `operator new(size)` and friends, as C++ runtimes export them.
type NewFn = unsafe extern "C-unwind" fn(usize) -> *mut c_void;
/// `operator new(size, std::align_val_t)`.
type AlignedNewFn = unsafe extern "C-unwind" fn(usize, usize) -> *mut c_void;
/// `operator new(size, const std::nothrow_t&)`.
type NothrowNewFn = unsafe extern "C" fn(usize, *const c_void) -> *mut c_void;
/// `operator new(size, std::align_val_t, const std::nothrow_t&)`.
type AlignedNothrowNewFn = unsafe extern "C" fn(usize, usize, *const c_void) -> *mut c_void;

/// The C++ runtime's definition of the operator named `symbol` (NUL-terminated), looked up
/// once and kept in `slot` (0: not looked up yet; 1: the runtime has none).
#[cold]
fn next_definition(slot: &AtomicUsize, symbol: &CStr) -> Option<usize> {
    const MISSING: usize = 1;
    let mut address = slot.load(Ordering::Acquire);
    if address == 0 {
        // SAFETY: dlsym takes a valid NUL-terminated name; RTLD_NEXT asks for the definition
        // after this library's in the lookup order, which is the C++ runtime's. It runs only
        // after an allocation failed, never on the allocation path.
        let found = unsafe { libc::dlsym(libc::RTLD_NEXT, symbol.as_ptr()) };
        address = if found.is_null() {
            MISSING
        } else {
            found as usize
        };
        slot.store(address, Ordering::Release);
    }
    (address != MISSING).then_some(address)
}

/// A throwing `new` failed and no C++ runtime is there to throw: nothing can catch, so stop.
#[cold]
fn no_runtime_to_throw(symbol: &CStr, size: usize) -> ! {
    let mut line = Line::<200>::new();
    line.push(b"larder: operator new (")
        .push(symbol.to_bytes())
        .push(b") could not allocate ")
        .push_u64(size as u64)
        .push(b" bytes, and no C++ runtime is loaded to throw std::bad_alloc; aborting\n");
    line.write_to(libc::STDERR_FILENO);
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

const NEW: &CStr = c"_Znwm";
const NEW_ALIGNED: &CStr = c"_ZnwmSt11align_val_t";
const NEW_NOTHROW: &CStr = c"_ZnwmRKSt9nothrow_t";
const NEW_ALIGNED_NOTHROW: &CStr = c"_ZnwmSt11align_val_tRKSt9nothrow_t";

/// `new(size)` past malloc's fast path: malloc's slow path, then, if that fails too, the
/// runtime's `operator new`, which runs the new-handler loop and throws. One out-of-line
/// call, so that `new`'s fast path needs no stack frame and tail-calls it.
#[cold]
#[inline(never)]
extern "C-unwind" fn new_slow(size: usize, kind: AllocKind) -> *mut c_void {
    let block = c_rules::malloc_slow(size, kind);
    if !block.is_null() {
        return block;
    }
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let Some(address) = next_definition(&NEXT, NEW) else {
        no_runtime_to_throw(NEW, size)
    };
    // SAFETY: `address` is the runtime's `operator new(std::size_t)`, of this type by the ABI.
    let runtime_new: NewFn = unsafe { core::mem::transmute::<usize, NewFn>(address) };
    // SAFETY: any size is valid; the runtime allocates with larder's malloc, or throws.
    unsafe { runtime_new(size) }
}

/// `new(size, align)` failed: as [`new_slow`]'s failure, with the runtime's aligned `operator new`.
#[cold]
#[inline(never)]
extern "C-unwind" fn aligned_new_failed(size: usize, align: usize) -> *mut c_void {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let Some(address) = next_definition(&NEXT, NEW_ALIGNED) else {
        no_runtime_to_throw(NEW_ALIGNED, size)
    };
    // SAFETY: the runtime's `operator new(std::size_t, std::align_val_t)`, of this type.
    let runtime_new: AlignedNewFn = unsafe { core::mem::transmute::<usize, AlignedNewFn>(address) };
    // SAFETY: `align` is the caller's, a power of two as C++ requires.
    unsafe { runtime_new(size, align) }
}

/// A nothrow `new` past malloc's fast path: malloc's slow path, then the runtime's nothrow
/// form, which runs the new-handler loop and returns null when the handler gives up. Without a
/// runtime there is no handler: null at once.
#[cold]
#[inline(never)]
extern "C" fn nothrow_new_slow(size: usize, tag: *const c_void, kind: AllocKind) -> *mut c_void {
    let block = c_rules::malloc_slow(size, kind);
    if !block.is_null() {
        return block;
    }
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let Some(address) = next_definition(&NEXT, NEW_NOTHROW) else {
        return core::ptr::null_mut();
    };
    // SAFETY: the runtime's `operator new(std::size_t, const std::nothrow_t&)`, of this type.
    let runtime_new: NothrowNewFn = unsafe { core::mem::transmute::<usize, NothrowNewFn>(address) };
    // SAFETY: `tag` is the caller's reference to `std::nothrow`.
    unsafe { runtime_new(size, tag) }
}

/// An aligned nothrow `new` failed: as [`nothrow_new_slow`]'s failure.
#[cold]
#[inline(never)]
extern "C" fn aligned_nothrow_new_failed(
    size: usize,
    align: usize,
    tag: *const c_void,
) -> *mut c_void {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let Some(address) = next_definition(&NEXT, NEW_ALIGNED_NOTHROW) else {
        return core::ptr::null_mut();
    };
    // SAFETY: the runtime's `operator new(std::size_t, std::align_val_t, const
    // std::nothrow_t&)`, of this type.
    let runtime_new: AlignedNothrowNewFn =
        unsafe { core::mem::transmute::<usize, AlignedNothrowNewFn>(address) };
    // SAFETY: the caller's arguments, passed on.
    unsafe { runtime_new(size, align, tag) }
}

/// A throwing `new` of family `kind`: malloc's fast path, else [`new_slow`].
#[inline(always)]
fn new_block(size: usize, kind: AllocKind) -> *mut c_void {
    let block = c_rules::malloc_fast(size);
    if !block.is_null() {
        return block;
    }
    new_slow(size, kind)
}

/// A nothrow `new` of family `kind`.
#[inline(always)]
fn nothrow_new_block(size: usize, tag: *const c_void, kind: AllocKind) -> *mut c_void {
    let block = c_rules::malloc_fast(size);
    if !block.is_null() {
        return block;
    }
    nothrow_new_slow(size, tag, kind)
}

/// A throwing aligned `new` of family `kind`.
#[inline(always)]
fn aligned_new_block(size: usize, align: usize, kind: AllocKind) -> *mut c_void {
    // SAFETY: memalign takes any alignment and size.
    let block = unsafe { c_rules::memalign_as(align, size, kind) };
    if block.is_null() {
        return aligned_new_failed(size, align);
    }
    block
}

/// A nothrow aligned `new` of family `kind`.
#[inline(always)]
fn aligned_nothrow_new_block(
    size: usize,
    align: usize,
    tag: *const c_void,
    kind: AllocKind,
) -> *mut c_void {
    // SAFETY: memalign takes any alignment and size.
    let block = unsafe { c_rules::memalign_as(align, size, kind) };
    if block.is_null() {
        return aligned_nothrow_new_failed(size, align, tag);
    }
    block
}

/// `operator new(std::size_t)`: larder's malloc, or the runtime's failure path.
///
/// # Safety
/// Called from C++ with C++'s contract.
#[export_name = "_Znwm"]
pub unsafe extern "C-unwind" fn operator_new(size: usize) -> *mut c_void {
    new_block(size, AllocKind::New)
}

/// `operator new[](std::size_t)`.
///
/// # Safety
/// As [`operator_new`].
#[export_name = "_Znam"]
pub unsafe extern "C-unwind" fn operator_new_array(size: usize) -> *mut c_void {
    new_block(size, AllocKind::NewArray)
}

/// `operator new(std::size_t, const std::nothrow_t&)`.
///
/// # Safety
/// `tag` is a reference to `std::nothrow`.
#[export_name = "_ZnwmRKSt9nothrow_t"]
pub unsafe extern "C" fn operator_new_nothrow(size: usize, tag: *const c_void) -> *mut c_void {
    nothrow_new_block(size, tag, AllocKind::New)
}

/// `operator new[](std::size_t, const std::nothrow_t&)`.
///
/// # Safety
/// As [`operator_new_nothrow`].
#[export_name = "_ZnamRKSt9nothrow_t"]
pub unsafe extern "C" fn operator_new_array_nothrow(
    size: usize,
    tag: *const c_void,
) -> *mut c_void {
    nothrow_new_block(size, tag, AllocKind::NewArray)
}

/// `operator new(std::size_t, std::align_val_t)`.
///
/// # Safety
/// `align` is a power of two, as C++ requires of `std::align_val_t`.
#[export_name = "_ZnwmSt11align_val_t"]
pub unsafe extern "C-unwind" fn operator_new_aligned(size: usize, align: usize) -> *mut c_void {
    aligned_new_block(size, align, AllocKind::New)
}

/// `operator new[](std::size_t, std::align_val_t)`.
///
/// # Safety
/// As [`operator_new_aligned`].
#[export_name = "_ZnamSt11align_val_t"]
pub unsafe extern "C-unwind" fn operator_new_array_aligned(
    size: usize,
    align: usize,
) -> *mut c_void {
    aligned_new_block(size, align, AllocKind::NewArray)
}

/// `operator new(std::size_t, std::align_val_t, const std::nothrow_t&)`.
///
/// # Safety
/// As [`operator_new_aligned`]; `tag` is a reference to `std::nothrow`.
#[export_name = "_ZnwmSt11align_val_tRKSt9nothrow_t"]
pub unsafe extern "C" fn operator_new_aligned_nothrow(
    size: usize,
    align: usize,
    tag: *const c_void,
) -> *mut c_void {
    aligned_nothrow_new_block(size, align, tag, AllocKind::New)
}

/// `operator new[](std::size_t, std::align_val_t, const std::nothrow_t&)`.
///
/// # Safety
/// As [`operator_new_aligned_nothrow`].
#[export_name = "_ZnamSt11align_val_tRKSt9nothrow_t"]
pub unsafe extern "C" fn operator_new_array_aligned_nothrow(
    size: usize,
    align: usize,
    tag: *const c_void,
) -> *mut c_void {
    aligned_nothrow_new_block(size, align, tag, AllocKind::NewArray)
}

/// Defines each `operator delete` form as `free` of its pointer by its family (`delete` frees
/// `new`'s blocks, `delete[]` those of `new[]`: check mode reports a mismatch); the other
/// arguments (size, alignment, the nothrow tag) are what C++ passes, and larder finds all it
/// needs from the block's address.
macro_rules! deletes_are_free {
    ($($symbol:literal $name:ident($($extra:ident: $ty:ty),*) $kind:ident;)*) => {$(
        #[doc = concat!("`", $symbol, "`: `free(ptr)`.")]
        ///
        /// # Safety
        /// `ptr` is null or a live block from the matching `operator new`.
        #[export_name = $symbol]
        pub unsafe extern "C" fn $name(ptr: *mut c_void, $($extra: $ty),*) {
            // SAFETY: the caller's contract is free's.
            unsafe { c_rules::free_as(ptr, AllocKind::$kind) }
        }
    )*};
}

deletes_are_free! {
    "_ZdlPv" operator_delete() New;
    "_ZdaPv" operator_delete_array() NewArray;
    "_ZdlPvm" operator_delete_sized(_size: usize) New;
    "_ZdaPvm" operator_delete_array_sized(_size: usize) NewArray;
    "_ZdlPvRKSt9nothrow_t" operator_delete_nothrow(_tag: *const c_void) New;
    "_ZdaPvRKSt9nothrow_t" operator_delete_array_nothrow(_tag: *const c_void) NewArray;
    "_ZdlPvSt11align_val_t" operator_delete_aligned(_align: usize) New;
    "_ZdaPvSt11align_val_t" operator_delete_array_aligned(_align: usize) NewArray;
    "_ZdlPvmSt11align_val_t" operator_delete_sized_aligned(_size: usize, _align: usize) New;
    "_ZdaPvmSt11align_val_t" operator_delete_array_sized_aligned(_size: usize, _align: usize) NewArray;
    "_ZdlPvSt11align_val_tRKSt9nothrow_t" operator_delete_aligned_nothrow(_align: usize, _tag: *const c_void) New;
    "_ZdaPvSt11align_val_tRKSt9nothrow_t" operator_delete_array_aligned_nothrow(_align: usize, _tag: *const c_void) NewArray;
}
