//! `Block`: one heap allocation made straight through the global allocator, stamped at both
//! ends so that a workload can prove at the end that no other block was placed over it.
//!
//! Workloads use `Block` rather than `Vec<u8>` so that every allocation is a plain
//! `alloc`/`dealloc` of the requested size (a `Vec` would zero it or round it), and so that the
//! check costs the same two cache lines for every allocator.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

/// The alignment of every `Block`: what C's `malloc` promises for small sizes on 64-bit Linux
/// is 16, but 8 is what most Rust allocations ask for, and every allocator serves it from its
/// fast path.
pub const BLOCK_ALIGN: usize = 8;

/// The smallest block a workload may ask for: room for one stamp.
pub const MIN_BLOCK: usize = 8;

/// A live heap block of `size` bytes whose first 8 bytes, and last 8 bytes if they do not
/// overlap the first, hold `stamp`.
pub struct Block {
    ptr: NonNull<u8>,
    size: usize,
    stamp: u64,
}

// SAFETY: a `Block` owns its allocation exclusively (no aliases are handed out), and every
// allocator under test allows a block to be freed by a thread other than the one that made it.
unsafe impl Send for Block {}

impl Block {
    /// Allocates `size` bytes (at least [`MIN_BLOCK`]) and stamps both ends with `stamp`.
    pub fn new(size: usize, stamp: u64) -> Block {
        let size = size.max(MIN_BLOCK);
        let layout = Layout::from_size_align(size, BLOCK_ALIGN).expect("block size overflows");
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        let block = Block { ptr, size, stamp };
        block.write_stamps();
        block
    }

    fn write_stamps(&self) {
        let bytes = self.stamp.to_ne_bytes();
        // SAFETY: the block is `size >= 8` bytes long and owned by `self`; both copies lie
        // inside it, and the second is made only where it does not overlap the first.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr(), 8);
            if self.size >= 16 {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    self.ptr.as_ptr().add(self.size - 8),
                    8,
                );
            }
        }
    }

    fn read_u64(&self, offset: usize) -> u64 {
        let mut bytes = [0u8; 8];
        // SAFETY: `offset + 8 <= size` for the two offsets this is called with.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), bytes.as_mut_ptr(), 8)
        };
        u64::from_ne_bytes(bytes)
    }

    /// The size that was asked for.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The stamp the block was made with.
    pub fn stamp(&self) -> u64 {
        self.stamp
    }

    /// True when both stamps are intact: nothing overwrote either end of the block.
    pub fn is_intact(&self) -> bool {
        self.read_u64(0) == self.stamp
            && (self.size < 16 || self.read_u64(self.size - 8) == self.stamp)
    }

    /// Writes one byte in every 4 KiB page of the block, so that the pages are really resident.
    pub fn touch_pages(&mut self) {
        let mut offset = 8;
        while offset + 8 < self.size {
            // SAFETY: `offset` is inside the block and clear of both stamps.
            unsafe { self.ptr.as_ptr().add(offset).write_volatile(offset as u8) };
            offset += 4096;
        }
    }

    /// The block's address, for workloads that care where blocks land (false sharing).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.size, BLOCK_ALIGN).expect("checked at alloc");
        // SAFETY: `ptr` came from `alloc` with this same layout and is freed only here.
        unsafe { dealloc(self.ptr.as_ptr(), layout) };
    }
}

/// Counts verified blocks; a workload fails when any block it checks is not intact.
#[derive(Default, Debug, Clone, Copy)]
pub struct Tally {
    /// Blocks whose stamps were checked and found intact.
    pub checked: u64,
    /// Blocks whose stamps were found overwritten.
    pub corrupt: u64,
}

impl Tally {
    /// Checks `block` (and drops it, which frees it).
    pub fn check_and_free(&mut self, block: Block) {
        self.check(&block);
    }

    /// Checks `block` without freeing it.
    pub fn check(&mut self, block: &Block) {
        if block.is_intact() {
            self.checked += 1;
        } else {
            self.corrupt += 1;
        }
    }

    /// Adds another tally (from another thread) to this one.
    pub fn merge(&mut self, other: Tally) {
        self.checked += other.checked;
        self.corrupt += other.corrupt;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_block_is_intact_and_a_scribbled_one_is_not() {
        for size in [1, 8, 9, 15, 16, 17, 100, 70_000] {
            let mut block = Block::new(size, 0xDEAD_BEEF_0000 + size as u64);
            assert!(block.is_intact());
            block.touch_pages();
            assert!(block.is_intact());
            // SAFETY: the block is at least 8 bytes long.
            unsafe { block.as_mut_ptr().write(0x55) };
            assert!(!block.is_intact());
        }
    }

    #[test]
    fn tally_counts_intact_and_corrupt_blocks() {
        let mut tally = Tally::default();
        tally.check_and_free(Block::new(32, 7));
        let mut bad = Block::new(32, 7);
        // SAFETY: byte 31 is inside the 32-byte block.
        unsafe { bad.as_mut_ptr().add(31).write(0xFF) };
        tally.check_and_free(bad);
        assert_eq!((tally.checked, tally.corrupt), (1, 1));
    }
}
