//! The map of the segments larder owns: one byte per 4 MiB chunk of the address space, so that
//! "is this pointer ours?" is one load. The map is a lazily-zeroed mapping of 32 MiB of address
//! space (the 47-bit user address space in 4 MiB chunks); only the few pages covering addresses
//! larder uses are ever touched.
//!
//! A chunk is either not larder's (0), the start of a segment (`SEGMENT_START`), or the first
//! chunk after a segment whose block needed an alignment above half a segment
//! (`ALIGNED_TAIL`): its header lies one chunk before.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use crate::os;
use crate::segment::{SEGMENT_SHIFT, SEGMENT_SIZE};

/// Addresses at or above this are never larder's (user space on x86-64 and aarch64 with 4-level
/// page tables; larder refuses mappings the kernel places higher).
pub const ADDRESS_LIMIT: usize = 1 << 47;
const ENTRIES: usize = ADDRESS_LIMIT >> SEGMENT_SHIFT;

/// Map entry: the chunk starts a segment.
pub const SEGMENT_START: u8 = 1;
/// Map entry: the chunk holds an over-aligned block whose segment header is one chunk before.
pub const ALIGNED_TAIL: u8 = 2;

static MAP: AtomicPtr<AtomicU8> = AtomicPtr::new(ptr::null_mut());

fn map_base() -> *mut AtomicU8 {
    let base = MAP.load(Ordering::Acquire);
    if !base.is_null() {
        return base;
    }
    init_map()
}

#[cold]
fn init_map() -> *mut AtomicU8 {
    let Some(fresh) = os::map_aligned(ENTRIES, os::page_size()) else {
        return ptr::null_mut();
    };
    let fresh = fresh.as_ptr().cast::<AtomicU8>();
    match MAP.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => fresh,
        Err(winner) => {
            os::unmap(fresh.cast(), ENTRIES);
            winner
        }
    }
}

/// Makes sure the map exists; returns false if it cannot be mapped (then larder cannot
/// allocate).
pub fn ensure() -> bool {
    !map_base().is_null()
}

/// Records the entry of the chunk holding `addr`. `addr` must be below `ADDRESS_LIMIT` and the
/// map must exist (`ensure`).
pub fn set(addr: usize, entry: u8) {
    let base = MAP.load(Ordering::Acquire);
    debug_assert!(!base.is_null() && addr < ADDRESS_LIMIT);
    if base.is_null() || addr >= ADDRESS_LIMIT {
        return;
    }
    // SAFETY: the index is below ENTRIES because addr < ADDRESS_LIMIT, and the map is ENTRIES
    // bytes long.
    unsafe { (*base.add(addr >> SEGMENT_SHIFT)).store(entry, Ordering::Release) };
}

/// The map entry of the chunk holding `addr` (0 for anything larder does not own).
#[inline]
pub fn entry(addr: usize) -> u8 {
    let base = MAP.load(Ordering::Relaxed);
    if base.is_null() || addr >= ADDRESS_LIMIT {
        return 0;
    }
    // SAFETY: as in `set`, the index is in bounds.
    unsafe { (*base.add(addr >> SEGMENT_SHIFT)).load(Ordering::Relaxed) }
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
    }
}
