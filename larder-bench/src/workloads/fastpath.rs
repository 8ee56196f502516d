//! The small-object fast path on its own: allocate and free one block of a given size, many
//! times, through the global allocator. `bench/callgrind.sh` runs it under callgrind with two
//! iteration counts and divides the difference in instructions by the difference in pairs, which
//! cancels the fixed costs (process start, the allocator's first-time set-up).

use std::alloc::{alloc, dealloc, Layout};
use std::hint::black_box;

fn minor_faults() -> i64 {
    // SAFETY: an all-zero rusage is valid for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid and writable.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_minflt
}

/// Allocates and writes one block of each of `classes` sizes (16, 32, 48, …), keeping them
/// live, and returns the minor page faults and the growth of the resident set this caused.
pub fn first_touch(classes: usize) -> (i64, i64) {
    let mut blocks = Vec::with_capacity(classes);
    let (faults, resident) = (minor_faults(), super::sizes::resident_bytes() as i64);
    for class in 1..=classes {
        let mut block = super::block::Block::new(16 * class, class as u64);
        block.touch_pages();
        blocks.push(block);
    }
    let cost = (
        minor_faults() - faults,
        super::sizes::resident_bytes() as i64 - resident,
    );
    black_box(&blocks);
    cost
}

/// Runs `iters` allocate+free pairs of `size` bytes, with `hold` other blocks of that size live
/// throughout; returns a value derived from the addresses so the work cannot be optimised away.
pub fn run(size: usize, iters: u64, hold: usize) -> u64 {
    let held: Vec<super::block::Block> = (0..hold)
        .map(|i| super::block::Block::new(size, i as u64))
        .collect();
    let layout = Layout::from_size_align(size.max(1), 8).expect("valid layout");
    let mut checksum = 0u64;
    for _ in 0..iters {
        // SAFETY: the layout's size is non-zero.
        let block = unsafe { alloc(black_box(layout)) };
        assert!(!block.is_null(), "allocation of {size} bytes failed");
        checksum = checksum.wrapping_add(block as u64 & 0xfff);
        // SAFETY: `block` was just allocated with `layout` and is freed once.
        unsafe { dealloc(black_box(block), layout) };
    }
    black_box(held);
    checksum
}
