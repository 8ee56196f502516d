//! One page: a run of blocks of one size and the three free lists sharded on it.
//!
//! - `free`: blocks the owning thread allocates from (the fast path pops it);
//! - `local_free`: blocks the owning thread freed (the fast path pushes it);
//! - `thread_free`: blocks other threads freed, an atomic list (see `remote.rs`).
//!
//! Invariant, for a page in use:
//! `used == capacity - |free| - |local_free|`, where `used` still counts blocks sitting on
//! `thread_free` until the owner collects them. The slow path moves `thread_free` onto `free`
//! (or `local_free`), and `local_free` onto `free` when `free` is empty, in one step
//! (`collect`), and carves more of the page into blocks a little at a time (`extend`), so that a
//! fresh page costs little.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::freed;
use crate::heap::Heap;
use crate::stats::{self, Counters};

/// A free block: its first word links to the next free block.
#[repr(C)]
pub struct Block {
    /// The next free block, or null.
    pub next: *mut Block,
}

/// State of a page that is not in use, shared with the purger thread. `PURGED` is zero, so an
/// all-zero `Page` is an unused page over untouched memory: a segment fresh from the OS need
/// not write its page table (see `Segment::create`).
pub mod purge_state {
    /// Free and given back: reads as zero.
    pub const PURGED: u8 = 0;
    /// Free, its memory still resident.
    pub const FREE_DIRTY: u8 = 1;
    /// Free, the purger is giving its memory back right now.
    pub const PURGING: u8 = 2;
    /// The page holds blocks (its lists are live).
    pub const IN_USE: u8 = 3;
}

/// Bytes carved into new blocks per `extend`: one OS page, so that a new size class costs one
/// page fault, not four.
const EXTEND_BYTES: usize = 4 * 1024;

/// Metadata of one page, kept in its segment's header (never inside the page's memory).
///
/// Laid out by who writes it, one 64-byte line each, and aligned so that no line is shared
/// with a neighbouring page or the segment's own fields: the first line holds what the owner
/// changes on every allocation and free (the lists, the counts, the queue links); the second
/// what other threads read to free into the page (the block geometry, the owner) and the
/// `thread_free` word they push onto, which the owner's allocations never touch. Mixed, a
/// thread freeing another's blocks (a consumer of blocks a producer makes) read the geometry
/// from the line the producer wrote with each allocation, and took a coherence miss per free.
#[repr(C, align(64))]
pub struct Page {
    // The owner's line.
    /// Blocks to allocate from.
    pub free: *mut Block,
    /// Blocks freed by the owning thread.
    pub local_free: *mut Block,
    /// Links in the heap's bin queue or full list.
    pub next: *mut Page,
    /// See `next`.
    pub prev: *mut Page,
    /// When the page last became free (ms, monotonic), for the purge delay.
    pub freed_at: AtomicU64,
    /// Blocks in use, including remote frees not yet collected.
    pub used: u32,
    /// Blocks that fit in the page (read by the owner's `extend` only). Between `used` and
    /// `local_frees`, which the fast free changes together: adjacent, LLVM merges the two into
    /// a vector add of four instructions.
    pub reserved: u32,
    /// Frees by the owning thread since the page was last counted (see `count_into`): the only
    /// statistic the fast paths keep.
    pub local_frees: u32,
    /// `used` when the page was last counted, less the remote frees collected since (those are
    /// counted by the threads that made them).
    pub used_base: u32,
    /// The page is in its heap's full list (no free blocks when last looked at).
    /// Written through `set_full`, which keeps `free_limit` in step.
    pub is_full: bool,
    /// Every block on `free` is fresh: zero but for its link word.
    pub free_is_zero: bool,
    /// Memory past `capacity` blocks has not been touched since it was mapped or purged.
    pub fresh_tail: bool,
    /// `purge_state` of a page not in use.
    pub purge: AtomicU8,
    /// The fast free leaves this page on its bin when it empties: true only while it is its
    /// bin's only page and not `reclaimed_on_free` (kept by the bin-queue operations, so that
    /// the fast path reads one byte instead of both links).
    pub keep_if_emptied: bool,
    /// The page came with a segment its heap reclaimed because it freed a block there, and the
    /// heap's slow path has not allocated from it since. Such a page is not kept once empty: a
    /// heap that only frees into a bin would otherwise keep one empty page per size class,
    /// pinning a segment that the next threads could have reclaimed whole.
    pub reclaimed_on_free: bool,
    // The line other threads read.
    /// Size of each block in bytes.
    pub block_size: usize,
    /// The inverse of `block_size`'s odd part modulo 2^64, and `block_shift` its power of two:
    /// `(offset * block_inverse).rotate_right(block_shift)` is `offset / block_size` when the
    /// division is exact and larger than any block index when it is not, so one multiply and
    /// one compare tell whether a pointer starts a carved block (see `is_block_start`).
    pub block_inverse: u64,
    /// Blocks carved so far: a full word, so that `is_block_start` compares with it in memory
    /// (a `u32` would take a load of its own on C's `free`).
    pub capacity: usize,
    /// `capacity` while the page is off its heap's full list, 0 while it is on it or not in
    /// use: the bound of the owner's fast free on C's `free` (`is_block_start_unless_full`), so
    /// that one compare both refuses pointers that start no block and sends the frees of a full
    /// page to the slow path, which takes it off the list.
    pub free_limit: usize,
    /// First byte of the first block.
    pub start: *mut u8,
    /// Blocks freed by other threads, tagged with the delayed-free state (see `remote.rs`).
    pub thread_free: AtomicUsize,
    /// The heap that owns the page (null while its segment is abandoned).
    pub heap: AtomicPtr<Heap>,
    /// Trailing zero bits of `block_size`.
    pub block_shift: u8,
    /// Bin (size class) of the blocks; 0 when the page is not in use.
    pub bin: u8,
}

// Two lines, so that the fast free's page address stays a shift of the page index.
const _: () = assert!(core::mem::size_of::<Page>() == 128 && core::mem::align_of::<Page>() == 64);
const _: () = assert!(core::mem::offset_of!(Page, block_size) == 64);

impl Page {
    /// The metadata of a page not in use whose memory is untouched (fresh or purged).
    pub const fn unused() -> Page {
        Page {
            free: ptr::null_mut(),
            used: 0,
            is_full: false,
            keep_if_emptied: false,
            reclaimed_on_free: false,
            free_is_zero: false,
            bin: 0,
            fresh_tail: true,
            local_free: ptr::null_mut(),
            local_frees: 0,
            used_base: 0,
            block_size: 0,
            block_inverse: 0,
            block_shift: 0,
            reserved: 0,
            capacity: 0,
            free_limit: 0,
            start: ptr::null_mut(),
            thread_free: AtomicUsize::new(0),
            heap: AtomicPtr::new(ptr::null_mut()),
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
            purge: AtomicU8::new(purge_state::PURGED),
            freed_at: AtomicU64::new(0),
        }
    }

    /// Puts the page on its heap's full list or takes it off, as far as the page's own fields
    /// go (`free_limit` follows).
    #[inline]
    pub fn set_full(&mut self, full: bool) {
        self.is_full = full;
        self.free_limit = if full { 0 } else { self.capacity };
    }

    /// Whether the page holds blocks for a heap.
    #[inline]
    pub fn in_use(&self) -> bool {
        self.bin != 0
    }

    /// Sets the page up for blocks of `block_size` bytes over `[start, start + bytes)` and
    /// carves the first blocks.
    ///
    /// # Safety
    /// The range must be memory of this page's segment that no live block occupies.
    pub unsafe fn init(
        &mut self,
        heap: *mut Heap,
        bin: u8,
        block_size: usize,
        start: *mut u8,
        bytes: usize,
        zeroed: bool,
    ) {
        self.free = ptr::null_mut();
        self.local_free = ptr::null_mut();
        self.used = 0;
        self.local_frees = 0;
        self.used_base = 0;
        self.set_full(false);
        self.keep_if_emptied = false;
        self.reclaimed_on_free = false;
        self.bin = bin;
        self.set_block_size(block_size);
        self.capacity = 0;
        self.reserved = (bytes / block_size) as u32;
        self.start = start;
        self.fresh_tail = zeroed;
        self.free_is_zero = false;
        self.thread_free.store(0, Ordering::Relaxed);
        self.heap.store(heap, Ordering::Relaxed);
        self.next = ptr::null_mut();
        self.prev = ptr::null_mut();
        // SAFETY: forwarded from the caller.
        unsafe { self.extend() };
    }

    /// Carves up to `EXTEND_BYTES` more of the page into blocks on `free` (which must be empty).
    ///
    /// # Safety
    /// The page must be in use and owned by the calling thread.
    pub unsafe fn extend(&mut self) {
        debug_assert!(self.free.is_null());
        let remaining = self.reserved as usize - self.capacity;
        if remaining == 0 {
            return;
        }
        // At least a few blocks of the larger classes too, so that they do not come back to
        // the slow path every few allocations.
        let size = self.block_size;
        let count = (EXTEND_BYTES / size)
            .max((4 * EXTEND_BYTES / size).min(16))
            .clamp(1, remaining);
        // SAFETY: blocks `capacity .. capacity + count` lie inside the page (count <= remaining)
        // and no live block occupies them; each is at least 16 bytes and 8-aligned. Fresh
        // blocks carry the freed mark like every block on a free list, so that a free of one
        // that was never handed out is refused too.
        unsafe {
            let first = self.start.add(self.capacity * size);
            let mut block = first;
            for _ in 1..count {
                let next = block.add(size);
                (*block.cast::<Block>()).next = next.cast();
                freed::mark(block);
                block = next;
            }
            (*block.cast::<Block>()).next = ptr::null_mut();
            freed::mark(block);
            self.free = first.cast();
        }
        self.capacity += count;
        self.set_full(self.is_full);
        self.free_is_zero = self.fresh_tail;
    }

    /// Moves the blocks freed locally and remotely onto `free`. Also carves fresh blocks if
    /// nothing was free.
    ///
    /// # Safety
    /// The page must be in use and owned by the calling thread.
    pub unsafe fn collect(&mut self) {
        // SAFETY: forwarded from the caller.
        unsafe { self.collect_frees() };
        if self.free.is_null() {
            // SAFETY: forwarded from the caller.
            unsafe { self.extend() };
        }
    }

    /// Moves the blocks freed remotely onto `free`, and those freed locally too when `free` is
    /// empty, carving nothing. No list is walked in the usual case: the remote list comes with
    /// its length (see `remote.rs`) and becomes `free` when `free` is empty, or `local_free`
    /// when that is; `local_free` waits for `free` to run dry (its blocks are counted free
    /// already). Only when both hold blocks is the remote list walked, to its tail.
    ///
    /// # Safety
    /// The page must be in use and owned by the calling thread (or, abandoned, held off the
    /// abandoned list by it).
    pub unsafe fn collect_frees(&mut self) {
        // SAFETY: forwarded from the caller.
        let (remote, count) = unsafe { crate::remote::take_thread_free(self) };
        if !remote.is_null() {
            // SAFETY: the taken list holds `count` blocks of this page, each freed once.
            debug_assert_eq!(unsafe { list_tail_and_len(remote) }.1, count);
            if self.free.is_null() {
                self.free = remote;
                self.free_is_zero = false;
            } else if self.local_free.is_null() {
                self.local_free = remote;
            } else {
                // SAFETY: the taken list holds blocks of this page, each freed exactly once.
                let (tail, _) = unsafe { list_tail_and_len(remote) };
                // SAFETY: `tail` is a block of the taken list.
                unsafe { (*tail).next = self.free };
                self.free = remote;
                self.free_is_zero = false;
            }
            self.forget_counted_frees(count);
        }
        if self.free.is_null() && !self.local_free.is_null() {
            self.free = self.local_free;
            self.local_free = ptr::null_mut();
            self.free_is_zero = false;
        }
    }
}

impl Page {
    /// Adds the allocations and owner frees made on this page since it was last counted to
    /// `counters`. The fast paths count nothing but `used` and `local_frees`; the allocations
    /// follow from them (`used` rose by the allocations less the frees), so the counters are
    /// brought up to date here, when the page is refilled, emptied or abandoned, and when
    /// `stats()` asks. Requested bytes are counted as block bytes: the requested size of a
    /// small block is not kept.
    ///
    /// Called by the owning thread only.
    pub fn count_into(&mut self, counters: &Counters) {
        let frees = self.local_frees;
        let allocs = self.used.wrapping_sub(self.used_base).wrapping_add(frees);
        if allocs == 0 && frees == 0 {
            return;
        }
        let size = self.block_size as u64;
        stats::bump(&counters.alloc_count, allocs as u64);
        stats::bump(&counters.alloc_bytes, allocs as u64 * size);
        stats::bump(&counters.requested_bytes, allocs as u64 * size);
        stats::bump(&counters.free_count, frees as u64);
        stats::bump(&counters.freed_bytes, frees as u64 * size);
        stats::bump(&counters.freed_requested_bytes, frees as u64 * size);
        self.used_base = self.used;
        self.local_frees = 0;
    }

    /// Takes `n` blocks out of `used` that other threads freed (and counted) while the
    /// page's owner (or its abandoned segment's reaper) collects them.
    #[inline]
    pub fn forget_counted_frees(&mut self, n: u32) {
        self.used -= n;
        self.used_base = self.used_base.wrapping_sub(n);
    }

    /// Whether `ptr` is the start of one of the page's carved blocks (not an interior pointer).
    /// An exact division of the offset by `d = odd * 2^k` is `offset * odd^-1` shifted right
    /// by `k`; when `d` does not divide the offset, the low `k` bits are not zero (they rotate
    /// to the top) or the product exceeds `(2^64 - 1) / odd` (Granlund and Montgomery's
    /// divisibility test), so the rotated value is past every block index either way. Pointers
    /// before `start` wrap to huge offsets and fail the same way.
    #[inline(always)]
    pub fn is_block_start(&self, ptr: *const u8) -> bool {
        self.block_index(ptr) < self.capacity as u64
    }

    /// `is_block_start`, and false for every pointer into a page on the full list or not in
    /// use (see `free_limit`).
    #[inline(always)]
    pub fn is_block_start_unless_full(&self, ptr: *const u8) -> bool {
        self.block_index(ptr) < self.free_limit as u64
    }

    /// The index of the block `ptr` starts, or a number past every block index when it starts
    /// none (see `is_block_start`).
    #[inline(always)]
    fn block_index(&self, ptr: *const u8) -> u64 {
        let offset = (ptr as usize).wrapping_sub(self.start as usize) as u64;
        offset
            .wrapping_mul(self.block_inverse)
            .rotate_right(self.block_shift as u32)
    }

    /// Sets the size of the page's blocks and the constants `is_block_start` divides with.
    pub fn set_block_size(&mut self, block_size: usize) {
        let size = block_size.max(1) as u64;
        self.block_size = block_size;
        self.block_shift = size.trailing_zeros() as u8;
        self.block_inverse = odd_inverse(size >> self.block_shift);
    }
}

/// The inverse of an odd number modulo 2^64, by Newton's iteration: `x = odd` is correct to 3
/// bits (odd * odd = 1 mod 8), and each step doubles the correct bits (3, 6, 12, 24, 48, 96).
const fn odd_inverse(odd: u64) -> u64 {
    let mut x = odd;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(x)));
        i += 1;
    }
    x
}

/// The last block of a non-empty list and the list's length.
///
/// # Safety
/// `head` must start a valid, null-terminated list of blocks.
unsafe fn list_tail_and_len(head: *mut Block) -> (*mut Block, u32) {
    let mut tail = head;
    let mut count = 1;
    // SAFETY: every link of a valid list is a block or null.
    unsafe {
        while !(*tail).next.is_null() {
            tail = (*tail).next;
            count += 1;
        }
    }
    (tail, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size_class::{class_size, BIN_COUNT, SMALL_MAX};

    #[test]
    fn block_start_test_is_exact_for_every_class_and_offset() {
        for bin in 1..BIN_COUNT {
            let size = class_size(bin);
            let page_bytes = if size <= SMALL_MAX {
                64 << 10
            } else {
                512 << 10
            };
            let mut page = Page::unused();
            page.set_block_size(size);
            page.start = 0x1000_0000 as *mut u8;
            page.capacity = page_bytes / size;
            for offset in 0..page_bytes {
                let expected = offset % size == 0 && offset / size < page.capacity;
                let ptr = page.start.wrapping_add(offset);
                assert_eq!(
                    page.is_block_start(ptr),
                    expected,
                    "class {size} offset {offset}"
                );
                page.set_full(false);
                assert_eq!(page.is_block_start_unless_full(ptr), expected);
                page.set_full(true);
                assert!(!page.is_block_start_unless_full(ptr));
            }
            assert!(!page.is_block_start(page.start.wrapping_sub(size)));
        }
    }
}
