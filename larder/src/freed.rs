//! Recognising a freed block, so that a double free is caught in the default build.
//!
//! Every small or medium block that is freed gets a per-process secret, `KEY`, written into its
//! second word (its first word is the free-list link); handing a block out writes zero there.
//! So a free that finds the key in the block's second word frees a block that is already free:
//! a live block holds the key only if the program wrote that exact 64-bit value there, which a
//! random secret (from the kernel's `AT_RANDOM` bytes) makes a 2^-64 chance. This is glibc's
//! tcache key, without its confirming walk: a walk could not see blocks held back on other
//! threads' remote-free chains anyway. Cost: one load, compare and store on free, one store on
//! allocation (`bench/callgrind.sh`). Blocks are at least 16 bytes so that the second word is
//! the block's own (see `size_class::MIN_BLOCK`). Check mode builds on the same mark for the
//! blocks that have left its quarantine.

use core::sync::atomic::{AtomicUsize, Ordering};

/// The mark; a fixed odd value until `init` draws the process's own.
static KEY: AtomicUsize = AtomicUsize::new(0x9e37_79b9_7f4a_7c15);

/// Draws the process's secret. Called once, before the first block is handed out (blocks
/// freed with the old value would only go unrecognised, never be falsely accused).
pub fn init() {
    // SAFETY: getauxval has no preconditions; AT_RANDOM points at 16 random bytes the kernel
    // placed on the initial stack, which stay mapped for the process's life.
    let random = unsafe {
        let at_random = libc::getauxval(libc::AT_RANDOM) as *const u8;
        if at_random.is_null() {
            0
        } else {
            // The first 8 bytes seed libc's stack guard; use the other 8.
            at_random.add(8).cast::<usize>().read_unaligned()
        }
    };
    // Mixed with an address (ASLR) and the clock, in case AT_RANDOM is absent; never zero,
    // the value of every word a new block holds.
    let mixed = random
        ^ (&KEY as *const AtomicUsize as usize).rotate_left(29)
        ^ crate::os::now_ms() as usize;
    KEY.store(mixed | 1, Ordering::Relaxed);
}

/// The mark. A heap keeps a copy (`Heap::freed_key`), which the owner's free reads from the
/// heap it has loaded already rather than through the GOT.
#[inline(always)]
pub fn key() -> usize {
    KEY.load(Ordering::Relaxed)
}

/// Whether `block` carries the freed mark.
///
/// # Safety
/// `block` must point to a small or medium block of larder's (at least 16 readable bytes).
#[inline(always)]
pub unsafe fn is_marked(block: *const u8) -> bool {
    // SAFETY: forwarded from the caller: the second word is the block's own.
    unsafe { block.cast::<usize>().add(1).read() == key() }
}

/// Marks `block` freed with `key` (the value of `key()`), unless it carries the mark already
/// (then returns false: a double free).
///
/// # Safety
/// `block` must be a small or medium block of larder's that is being freed.
#[inline(always)]
pub unsafe fn mark_unless_marked(block: *mut u8, key: usize) -> bool {
    // SAFETY: forwarded from the caller: the second word is the block's own.
    unsafe {
        let word = block.cast::<usize>().add(1);
        if word.read() == key {
            return false;
        }
        word.write(key);
    }
    true
}

/// Marks `block` freed.
///
/// # Safety
/// `block` must be a small or medium block of larder's that is being freed.
#[inline(always)]
pub unsafe fn mark(block: *mut u8) {
    // SAFETY: forwarded from the caller.
    unsafe { block.cast::<usize>().add(1).write(key()) }
}

/// Clears the mark of a block being handed out.
///
/// # Safety
/// `block` must be a small or medium block of larder's that is being allocated.
#[inline(always)]
pub unsafe fn unmark(block: *mut u8) {
    // SAFETY: forwarded from the caller.
    unsafe { block.cast::<usize>().add(1).write(0) }
}
