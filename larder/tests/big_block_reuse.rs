//! A big block that no freed span is large enough for takes over the resident pages of freed
//! smaller ones (`segment::adopt_donors`) instead of faulting in fresh pages while they sit
//! resident: a program whose big blocks vary in size stays near its live bytes in RSS.

#[global_allocator]
static GLOBAL: larder::Larder = larder::Larder;

use std::alloc::{alloc, dealloc, Layout};

const MIB: usize = 1 << 20;

/// Allocates `size` bytes and writes every page; the first word holds `tag`.
///
/// # Safety
/// As `alloc`; the caller frees the block with the same size.
unsafe fn touched(size: usize, tag: u8) -> *mut u8 {
    let layout = Layout::from_size_align(size, 16).unwrap();
    // SAFETY: a non-zero size; writes stay inside the block.
    unsafe {
        let p = alloc(layout);
        assert!(!p.is_null());
        for offset in (0..size).step_by(4096) {
            p.add(offset).write_volatile(tag);
        }
        p
    }
}

#[test]
fn a_bigger_block_reuses_the_pages_of_freed_smaller_ones() {
    // SAFETY: every block is written inside its bounds and freed once with its own layout.
    unsafe {
        let small = [
            touched(6 * MIB, 1),
            touched(7 * MIB, 2),
            touched(9 * MIB, 3),
        ];
        let sizes = [6 * MIB, 7 * MIB, 9 * MIB];
        for (p, size) in small.iter().zip(sizes) {
            dealloc(*p, Layout::from_size_align(size, 16).unwrap());
        }
        let before = larder::stats().resident_bytes;
        // Larger than any freed span (each is 8 or 12 MiB of address space).
        let big = touched(24 * MIB, 4);
        let grown = larder::stats().resident_bytes.saturating_sub(before) as usize;
        for offset in (0..24 * MIB).step_by(4096) {
            assert_eq!(big.add(offset).read_volatile(), 4, "at {offset}");
        }
        // A block made of moved pages grows like any other (by mremap, or by a copy where the
        // kernel will not move a range of several mappings), its bytes intact.
        let layout = Layout::from_size_align(24 * MIB, 16).unwrap();
        let grown_block = std::alloc::realloc(big, layout, 60 * MIB);
        assert!(!grown_block.is_null());
        for offset in (0..24 * MIB).step_by(4096) {
            assert_eq!(grown_block.add(offset).read_volatile(), 4, "at {offset}");
        }
        dealloc(grown_block, Layout::from_size_align(60 * MIB, 16).unwrap());
        // 22 MiB of freed pages could be adopted: at most the rest should be new. (Without the
        // adoption, 24 MiB.) Some slack for the purger having run in between.
        assert!(
            grown < 12 * MIB,
            "a 24 MiB block made {} MiB more resident",
            grown / MIB
        );
    }
}
