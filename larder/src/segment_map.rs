//! The map of the segments larder owns: one byte per 4 MiB chunk of the address space, so that
//! "is this pointer ours?" is one load. The map is a zero-initialised static of 32 MiB (the
//! 47-bit user address space in 4 MiB chunks): it lives in .bss, which the loader maps with the
//! program at no extra system call and the kernel fills lazily, so only the few pages covering
//! addresses larder uses are ever touched. (A mapping made on first use cost a short-lived
//! process one mmap more and a null check on every lookup.)
//!
//! A chunk is either not larder's (0), the start of a segment (`SEGMENT_START`), or the first
//! chunk after a segment whose block needed an alignment above half a segment
//! (`ALIGNED_TAIL`): its header lies one chunk before; or released (`RELEASED`), for reports.

use core::sync::atomic::{AtomicU8, Ordering};

use crate::segment::{opaque, SEGMENT_SHIFT, SEGMENT_SIZE};

/// Addresses at or above this are never larder's (user space on x86-64 and aarch64 with 4-level
/// page tables; larder refuses mappings the kernel places higher).
pub const ADDRESS_LIMIT: usize = 1 << 47;
const ENTRIES: usize = ADDRESS_LIMIT >> SEGMENT_SHIFT;

/// Map entry: the chunk starts a segment.
pub const SEGMENT_START: u8 = 1;
/// Map entry: the chunk holds an over-aligned block whose segment header is one chunk before.
pub const ALIGNED_TAIL: u8 = 2;

/// Map entry: the chunk started a segment or block that larder has given back to the OS: a
/// free of a pointer into it frees a block that is gone (a double free), not a foreign pointer.
/// A mapping larder makes there later overwrites it.
pub const RELEASED: u8 = 3;

static MAP: [AtomicU8; ENTRIES] = [const { AtomicU8::new(0) }; ENTRIES];

/// Whether the map exists; always true now that it is static (callers written for a map made on
/// first use still ask).
pub fn ensure() -> bool {
    true
}

/// The map's own address range (check mode's leak mark leaves its 32 MiB out of the roots: it
/// holds no pointers).
pub fn own_range() -> core::ops::Range<usize> {
    let start = MAP.as_ptr() as usize;
    start..start + ENTRIES
}

/// Records the entry of the chunk holding `addr`. `addr` must be below `ADDRESS_LIMIT`.
pub fn set(addr: usize, entry: u8) {
    debug_assert!(addr < ADDRESS_LIMIT);
    if let Some(slot) = MAP.get(addr >> SEGMENT_SHIFT) {
        slot.store(entry, Ordering::Release);
    }
}

/// The map entry of the chunk holding `addr` (0 for anything larder does not own).
#[inline]
pub fn entry(addr: usize) -> u8 {
    match MAP.get(addr >> SEGMENT_SHIFT) {
        Some(slot) => slot.load(Ordering::Relaxed),
        None => 0,
    }
}

/// The base of the chunk holding `addr` and its entry, read with no compare: the fast path of
/// C's `free`. Null reads as 0 (not larder's): the first chunk never starts a segment, since
/// segments are chunk-aligned mappings and nothing is mapped at address 0. An address at or
/// above `ADDRESS_LIMIT` reads the chunk it aliases below the limit (the base is that alias);
/// a caller that finds `SEGMENT_START` there reads only that segment's headers, taking the page
/// from the offset inside the chunk (`Segment::page_of_in_chunk`), and lets the block test
/// refuse the pointer (no block of the page starts at it).
#[inline(always)]
pub fn chunk_wrapping(addr: usize) -> (usize, u8) {
    // Opaque, or LLVM rewrites the index `(addr & mask) >> shift` as `(addr >> shift) &
    // (mask >> shift)`, computed apart from the base: one instruction more on every `free`.
    let base = opaque(addr & (ADDRESS_LIMIT - 1) & !(SEGMENT_SIZE - 1));
    // SAFETY: base < ADDRESS_LIMIT, so the index is below ENTRIES.
    let entry = unsafe { MAP.get_unchecked(base >> SEGMENT_SHIFT) }.load(Ordering::Relaxed);
    (base, entry)
}

/// The base of the segment owning `addr`, or `None` when larder does not own it.
#[inline]
pub fn segment_of(addr: usize) -> Option<usize> {
    let chunk = addr & !(SEGMENT_SIZE - 1);
    match entry(addr) {
        SEGMENT_START => Some(chunk),
        ALIGNED_TAIL => Some(chunk - SEGMENT_SIZE),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_addresses_are_not_ours() {
        assert!(ensure());
        let on_stack = 0u64;
        assert_eq!(segment_of(&on_stack as *const u64 as usize), None);
        assert_eq!(segment_of(0), None);
        assert_eq!(segment_of(usize::MAX), None);
        assert_eq!(chunk_wrapping(0), (0, 0));
        assert_eq!(
            chunk_wrapping(ADDRESS_LIMIT + SEGMENT_SIZE + 5).0,
            SEGMENT_SIZE
        );
    }
}
