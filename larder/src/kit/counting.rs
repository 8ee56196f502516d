//! `Counting<A>`: an allocator wrapper that counts live blocks and bytes, so a
//! test can prove that a code path gave back everything it took.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use allocator_api2::alloc::{AllocError, Allocator, Layout};

use super::asked::AskedSizes;

/// Wraps any allocator and counts the blocks and bytes that are live through it.
///
/// Every successful `allocate`, `grow` and `shrink` updates the counts; a failed
/// one leaves them alone. Bytes are counted as the layout sizes the caller asked
/// for. A caller may free a block with a larger layout when the allocator gave it
/// more than it asked for (a `Buffer` over larder does); the wrapper remembers
/// what was asked for such blocks, so the counts stay exact.
/// The counters are atomics, so a `Counting` can be shared between threads.
///
/// `&Counting<A>` is an allocator too, so wrappers stack:
/// `Failing::nth(&counting, 3)` fails the third allocation made through it.
///
/// ```
/// use allocator_api2::alloc::Global;
/// use allocator_api2::vec::Vec;
/// use larder::Counting;
///
/// let counting = Counting::new(Global);
/// {
///     let mut v: Vec<u32, &Counting<Global>> = Vec::new_in(&counting);
///     v.extend_from_slice(&[1, 2, 3]);
///     assert_eq!(counting.live_blocks(), 1);
///     assert!(counting.live_bytes() >= 12);
/// }
/// counting.assert_no_leaks();
/// ```
#[derive(Debug, Default)]
pub struct Counting<A> {
    inner: A,
    live_blocks: AtomicUsize,
    live_bytes: AtomicUsize,
    total_allocations: AtomicUsize,
    total_grows: AtomicUsize,
    asked: AskedSizes,
}

impl<A> Counting<A> {
    /// Wraps `inner`; all counts start at zero.
    pub const fn new(inner: A) -> Self {
        Counting {
            inner,
            live_blocks: AtomicUsize::new(0),
            live_bytes: AtomicUsize::new(0),
            total_allocations: AtomicUsize::new(0),
            total_grows: AtomicUsize::new(0),
            asked: AskedSizes::new(),
        }
    }

    /// Blocks allocated through this wrapper and not yet deallocated.
    pub fn live_blocks(&self) -> usize {
        self.live_blocks.load(Ordering::Relaxed)
    }

    /// Bytes (as requested by the layouts) in the live blocks.
    pub fn live_bytes(&self) -> usize {
        self.live_bytes.load(Ordering::Relaxed)
    }

    /// Successful `allocate` calls since creation (grows and shrinks not included).
    pub fn total_allocations(&self) -> usize {
        self.total_allocations.load(Ordering::Relaxed)
    }

    /// Successful `grow` and `grow_zeroed` calls since creation: the
    /// reallocations a growing collection asked for.
    pub fn total_grows(&self) -> usize {
        self.total_grows.load(Ordering::Relaxed)
    }

    /// Panics, naming the counts, if any block is still live.
    #[track_caller]
    pub fn assert_no_leaks(&self) {
        let blocks = self.live_blocks();
        let bytes = self.live_bytes();
        assert!(
            blocks == 0 && bytes == 0,
            "leak: {blocks} block(s) holding {bytes} byte(s) still live"
        );
    }

    /// The wrapped allocator.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    fn count_new_block(&self, size: usize) {
        self.live_blocks.fetch_add(1, Ordering::Relaxed);
        self.live_bytes.fetch_add(size, Ordering::Relaxed);
        self.total_allocations.fetch_add(1, Ordering::Relaxed);
    }

    fn count_resize(&self, old_size: usize, new_size: usize) {
        if new_size >= old_size {
            self.live_bytes
                .fetch_add(new_size - old_size, Ordering::Relaxed);
        } else {
            self.live_bytes
                .fetch_sub(old_size - new_size, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `inner` with the caller's arguments unchanged,
// so the blocks and their validity are exactly those of `inner`; the wrapper
// only updates counters.
unsafe impl<A: Allocator> Allocator for Counting<A> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let block = self.inner.allocate(layout)?;
        self.asked.note(block, layout.size());
        self.count_new_block(layout.size());
        Ok(block)
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let block = self.inner.allocate_zeroed(layout)?;
        self.asked.note(block, layout.size());
        self.count_new_block(layout.size());
        Ok(block)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let counted = self.asked.take(ptr).unwrap_or(layout.size());
        // SAFETY: the caller upholds `deallocate`'s contract for this allocator,
        // which is `inner`'s contract.
        unsafe { self.inner.deallocate(ptr, layout) };
        self.live_blocks.fetch_sub(1, Ordering::Relaxed);
        self.live_bytes.fetch_sub(counted, Ordering::Relaxed);
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded unchanged; the caller upholds `grow`'s contract.
        let block = self.resize(ptr, old_layout, new_layout, |inner| unsafe {
            inner.grow(ptr, old_layout, new_layout)
        })?;
        self.total_grows.fetch_add(1, Ordering::Relaxed);
        Ok(block)
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded unchanged; the caller upholds `grow_zeroed`'s contract.
        let block = self.resize(ptr, old_layout, new_layout, |inner| unsafe {
            inner.grow_zeroed(ptr, old_layout, new_layout)
        })?;
        self.total_grows.fetch_add(1, Ordering::Relaxed);
        Ok(block)
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded unchanged; the caller upholds `shrink`'s contract.
        self.resize(ptr, old_layout, new_layout, |inner| unsafe {
            inner.shrink(ptr, old_layout, new_layout)
        })
    }
}

impl<A: Allocator> Counting<A> {
    /// Runs one of `inner`'s resizes of the block at `ptr` and counts it if it succeeds.
    fn resize(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
        inner_resize: impl FnOnce(&A) -> Result<NonNull<[u8]>, AllocError>,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let taken = self.asked.take(ptr);
        match inner_resize(&self.inner) {
            Ok(block) => {
                self.asked.note(block, new_layout.size());
                self.count_resize(taken.unwrap_or(old_layout.size()), new_layout.size());
                Ok(block)
            }
            Err(error) => {
                self.asked.restore(ptr, taken);
                Err(error)
            }
        }
    }
}
