//! The layout of a checked block, in one core block:
//!
//! `[pad][Header][user bytes: the requested size][tail redzone ...usable end]`
//!
//! The header sits right before the user bytes, so `ptr - HEADER_SIZE` finds it; it ends in a
//! canary (an underflow by one byte breaks it) and records the requested size, the state and the
//! depot ids of the allocation and free backtraces; 64 bytes in all. The tail redzone runs from the requested size to the end of
//! the core block (at least `TAIL_MIN` bytes), so an overflow by one byte at any size lands in
//! it. Freed blocks are poisoned (up to `POISON_MAX` bytes) and checked when they leave the
//! quarantine.

use core::sync::atomic::{AtomicU32, Ordering};

/// Marks a header written by check mode.
pub const MAGIC: u32 = 0x1a4d_e7c4;
/// Block states.
pub const LIVE: u32 = 1;
/// Freed and held in the quarantine.
pub const QUARANTINED: u32 = 2;
/// Left the quarantine and given back to the core.
pub const RELEASED: u32 = 3;
/// Listed among the live blocks but not yet handed out, its redzones still being written: the
/// exit checks pass over it.
pub const FRESH: u32 = 4;

/// Bytes of the header's canary.
pub const CANARY_LEN: usize = 8;
/// The canary and redzone byte.
pub const REDZONE_BYTE: u8 = 0xfa;
/// The byte freed blocks are filled with.
pub const POISON_BYTE: u8 = 0xfd;
/// The byte fresh (non-calloc) blocks are filled with, so that reads of uninitialised memory
/// show a recognisable value.
pub const UNINIT_BYTE: u8 = 0xbe;
/// The smallest tail redzone.
pub const TAIL_MIN: usize = 16;
/// How much of the tail redzone is written and checked (the rest of a page-rounded huge block
/// would cost a page touch for nothing: a one-byte overflow lands in the first bytes).
pub const TAIL_MAX: usize = 4096;
/// How much of a freed block is poisoned and verified.
pub const POISON_MAX: usize = 64 << 10;
/// How much of a fresh block is filled with `UNINIT_BYTE`: a program reading uninitialised
/// memory meets the pattern at the start of a block; filling whole multi-MiB blocks (which the
/// program then writes anyway) cost more than all other checks of a large-block workload.
pub const UNINIT_MAX: usize = 64 << 10;

/// The metadata before every checked block.
#[repr(C, align(16))]
pub struct Header {
    /// Which family allocated the block (`AllocKind as usize`). The core's free-list link
    /// overwrites it once the block is given back, when nobody reads it any more.
    pub kind: usize,
    /// The core block's start.
    pub base: usize,
    /// The requested size.
    pub size: usize,
    /// `MAGIC` while the header is check mode's.
    pub magic: u32,
    /// `FRESH`, `LIVE`, `QUARANTINED` or `RELEASED`.
    pub state: AtomicU32,
    /// Where the block was allocated: a stack depot id (0: unknown).
    pub alloc_stack: u32,
    /// Where it was freed (valid in `QUARANTINED` and `RELEASED`): a depot id.
    pub free_stack: u32,
    /// The block's place in its shard's table of live blocks (`leaks::UNLISTED`: none),
    /// written when it is listed, read when it stops being live.
    pub place: usize,
    /// Unused: holds the canary against the user bytes (without it the header's padding
    /// would lie between them, and a one-byte underflow would miss the canary).
    pub _reserved: usize,
    /// Bytes of `REDZONE_BYTE`: broken by an underflow.
    pub canary: [u8; CANARY_LEN],
}

/// Bytes the header takes before the user bytes.
pub const HEADER_SIZE: usize = core::mem::size_of::<Header>();
const _: () = assert!(HEADER_SIZE == 64);

/// The header of the block whose user bytes start at `user`.
pub fn header_of(user: usize) -> *mut Header {
    user.wrapping_sub(HEADER_SIZE) as *mut Header
}

impl Header {
    /// The user bytes' start.
    pub fn user(&self) -> usize {
        self as *const Header as usize + HEADER_SIZE
    }

    /// The state, read once.
    pub fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }
}

/// Where the first byte of `bytes` differing from `expected` lies. Poison and redzones are
/// verified on every free and quarantine exit, so whole 64-byte runs are compared first, eight
/// words ORed together and one branch a run; the run that differs (and the rest) is then
/// searched a word, then a byte, at a time.
pub fn first_mismatch(bytes: &[u8], expected: u8) -> Option<usize> {
    const RUN: usize = 64;
    let pattern = u64::from_ne_bytes([expected; 8]);
    let differs = |w: &[u8]| u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])) ^ pattern;
    let mut at = 0;
    for run in bytes.chunks_exact(RUN) {
        if run.chunks_exact(8).fold(0, |acc, w| acc | differs(w)) != 0 {
            break;
        }
        at += RUN;
    }
    for w in bytes[at..].chunks_exact(8) {
        if differs(w) != 0 {
            break;
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| b != expected)
        .map(|i| at + i)
}

/// The bytes `[start, start + len)` as a slice.
///
/// # Safety
/// The range must be readable memory of a block check mode owns.
pub unsafe fn bytes<'a>(start: usize, len: usize) -> &'a mut [u8] {
    // SAFETY: forwarded from the caller.
    unsafe { core::slice::from_raw_parts_mut(start as *mut u8, len) }
}

/// Asks the CPU to bring the cache line holding `addr` in, without waiting for it: the blocks
/// that leave the quarantine are cold, and their lines can be on their way while other work is
/// done. A hint only; any address may be passed.
#[inline(always)]
pub fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and changes no memory, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above: `prfm` is a hint that neither faults nor writes.
    unsafe {
        core::arch::asm!(
            "prfm pldl1keep, [{0}]",
            in(reg) addr,
            options(nostack, readonly, preserves_flags)
        )
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = addr;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_mismatch_finds_the_first_odd_byte_anywhere() {
        for len in [37, 64, 200] {
            let mut bytes = vec![POISON_BYTE; len];
            assert_eq!(first_mismatch(&bytes, POISON_BYTE), None);
            for i in [0, 7, 8, 15, 31, 32, 36, 63, 64, 65, 127, 130, 199] {
                if i >= len {
                    continue;
                }
                bytes[i] = 0;
                assert_eq!(first_mismatch(&bytes, POISON_BYTE), Some(i));
                bytes[len - 1] = 0;
                assert_eq!(first_mismatch(&bytes, POISON_BYTE), Some(i));
                bytes.fill(POISON_BYTE);
            }
        }
    }
}
