//! `Larder` as Rust's global allocator (`GlobalAlloc`) and as an `allocator_api2` `Allocator`.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator};

use crate::alloc;

/// The larder allocator. Install it with
/// `#[global_allocator] static GLOBAL: larder::Larder = larder::Larder;`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Larder;

// SAFETY: every method forwards to larder's allocator, which returns blocks of at least the
// layout's size and alignment, or null, and frees exactly the blocks it handed out.
unsafe impl GlobalAlloc for Larder {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        alloc::alloc(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned for `layout`.
        unsafe { alloc::free_sized(ptr, layout.size(), layout.align()) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        alloc::alloc_zeroed(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a live block allocated with `layout`.
        unsafe { alloc::realloc(ptr, new_size, layout.align()) }
    }
}

// SAFETY: blocks stay valid until deallocated (the allocator has no state that a move or clone
// could invalidate); the returned slice length is the block's usable size, which it really has.
unsafe impl Allocator for Larder {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = alloc::alloc(layout.size(), layout.align());
        block_slice(p)
    }

    #[inline]
    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = alloc::alloc_zeroed(layout.size(), layout.align());
        let block = NonNull::new(p).ok_or(AllocError)?;
        // Only the requested bytes are promised zero: report exactly those.
        Ok(NonNull::slice_from_raw_parts(block, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned for `layout`.
        unsafe { alloc::free_sized(ptr.as_ptr(), layout.size(), layout.align()) }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller (a live block of `old`'s layout).
        unsafe { self.resize(ptr, old, new) }
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller.
        let block = unsafe { self.resize(ptr, old, new)? };
        // SAFETY: the block has at least `new.size()` bytes; the tail past the old size is ours.
        unsafe {
            block
                .cast::<u8>()
                .as_ptr()
                .add(old.size())
                .write_bytes(0, new.size() - old.size());
        }
        Ok(NonNull::slice_from_raw_parts(block.cast(), new.size()))
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller.
        unsafe { self.resize(ptr, old, new) }
    }
}

impl Larder {
    /// Moves or resizes a block to `new`'s layout, keeping its contents.
    ///
    /// # Safety
    /// `ptr` must be a live block allocated with `old`.
    unsafe fn resize(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if new.align() <= old.align() || ptr.as_ptr() as usize % new.align() == 0 {
            // SAFETY: forwarded from the caller; realloc keeps the alignment asked for.
            let p = unsafe { alloc::realloc(ptr.as_ptr(), new.size(), new.align()) };
            return block_slice(p);
        }
        let fresh = alloc::alloc(new.size(), new.align());
        let slice = block_slice(fresh)?;
        // SAFETY: both blocks are live and distinct; each holds the copied bytes.
        unsafe {
            core::ptr::copy_nonoverlapping(ptr.as_ptr(), fresh, old.size().min(new.size()));
            alloc::free_sized(ptr.as_ptr(), old.size(), old.align());
        }
        Ok(slice)
    }
}

/// The block as a slice of its usable size (so callers such as `Buffer` can use the slack).
#[inline]
fn block_slice(p: *mut u8) -> Result<NonNull<[u8]>, AllocError> {
    let block = NonNull::new(p).ok_or(AllocError)?;
    // SAFETY: `p` is a live block just returned by larder.
    let usable = unsafe { alloc::usable_size(p) };
    Ok(NonNull::slice_from_raw_parts(block, usable))
}
