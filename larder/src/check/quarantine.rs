//! Freed blocks wait here, poisoned, first in first out, until the bytes held pass
//! `LARDER_QUARANTINE`; a block that leaves is checked for writes after free and given back to
//! the core. The ring of (pointer, size) pairs is mmap'd on first use, never allocated from the
//! heap.
//!
//! The quarantine is larger than the caches, so the block that leaves is cold: its header and
//! poison are a trip to memory each, which was most of what a free cost in check mode. The ring
//! therefore keeps each block's size (the byte count needs no header read), and since the order
//! of leaving is known, the blocks next in line are prefetched `AHEAD` slots before they leave.

use super::block::{prefetch, HEADER_SIZE};
use crate::sync::Lock;

/// Ring slots: enough for the default 64 MiB of 64-byte blocks.
const SLOTS: usize = 1 << 20;
/// How many blocks before the head are prefetched: enough that a block's lines arrive before
/// it leaves (a free in check mode takes longer than a trip to memory), few enough that they
/// are still in the cache when it does. (32 and 1 KiB against 16 and 256 bytes: churn
/// 0.476 -> 0.443 s, medians of 11 interleaved rounds; its blocks average about 400 bytes.)
const AHEAD: usize = 32;
/// Bytes of a block's poison prefetched (the hardware prefetcher follows the rest).
const PREFETCH_BYTES: usize = 1024;

#[derive(Clone, Copy)]
struct Slot {
    user: usize,
    size: usize,
}

struct Ring {
    slots: *mut Slot,
    head: usize,
    len: usize,
    /// Slots `[head, head + fetched)` have been prefetched.
    fetched: usize,
    bytes: u64,
}

// SAFETY: the ring's memory is only touched under the lock that holds it.
unsafe impl Send for Ring {}

static RING: Lock<Ring> = Lock::new(Ring {
    slots: core::ptr::null_mut(),
    head: 0,
    len: 0,
    fetched: 0,
    bytes: 0,
});

/// Puts the block whose user bytes start at `user` (of `size` bytes) in the quarantine and
/// calls `release` for each block that leaves it (the oldest first), holding the lock: `release`
/// must not allocate from check mode.
pub fn push(user: usize, size: usize, limit: u64, mut release: impl FnMut(usize, usize)) {
    let mut ring = RING.lock();
    if ring.slots.is_null() {
        let Some(p) = super::guard::map(
            SLOTS * core::mem::size_of::<Slot>(),
            libc::PROT_READ | libc::PROT_WRITE,
        ) else {
            drop(ring);
            release(user, size);
            return;
        };
        ring.slots = p as *mut Slot;
    }
    if ring.len == SLOTS {
        evict_one(&mut ring, &mut release);
    }
    let tail = (ring.head + ring.len) % SLOTS;
    // SAFETY: `tail < SLOTS`, inside the mapping.
    unsafe { ring.slots.add(tail).write(Slot { user, size }) };
    ring.len += 1;
    ring.bytes += size as u64;
    while ring.bytes > limit && ring.len > 0 {
        evict_one(&mut ring, &mut release);
    }
    prefetch_ahead(&mut ring);
}

/// Prefetches the header and first poison bytes of the blocks up to `AHEAD` slots from the
/// head that are not yet fetched.
fn prefetch_ahead(ring: &mut Ring) {
    while ring.fetched < ring.len.min(AHEAD) {
        // SAFETY: the slot is inside the mapping and holds a pushed block (`fetched < len`).
        let slot = unsafe { ring.slots.add((ring.head + ring.fetched) % SLOTS).read() };
        let mut line = slot.user - HEADER_SIZE;
        let end = slot.user + slot.size.min(PREFETCH_BYTES);
        while line < end {
            prefetch(line);
            line += 64;
        }
        ring.fetched += 1;
    }
}

fn evict_one(ring: &mut Ring, release: &mut impl FnMut(usize, usize)) {
    // SAFETY: `head < SLOTS`, and the slot holds a pushed block since `len > 0`.
    let Slot { user, size } = unsafe { ring.slots.add(ring.head).read() };
    ring.head = (ring.head + 1) % SLOTS;
    ring.len -= 1;
    ring.fetched = ring.fetched.saturating_sub(1);
    ring.bytes = ring.bytes.saturating_sub(size as u64);
    release(user, size);
}

/// The ring's mapping (empty until made): not a root of the leak mark (it holds freed blocks
/// only).
pub fn mapped_range() -> core::ops::Range<usize> {
    let slots = RING.lock().slots as usize;
    if slots == 0 {
        0..0
    } else {
        slots..slots + SLOTS * core::mem::size_of::<Slot>()
    }
}

/// Takes every block out of the quarantine, oldest first, calling `release` for each (at exit:
/// writes after free into blocks still held are found too).
pub fn drain(mut release: impl FnMut(usize, usize)) {
    let mut ring = RING.lock();
    while ring.len > 0 {
        prefetch_ahead(&mut ring);
        evict_one(&mut ring, &mut release);
    }
}

/// Fork handlers: the ring's lock is held across `fork`, so the child's copy is consistent.
pub fn lock_for_fork() {
    RING.lock_for_fork();
}

/// Releases the lock taken by `lock_for_fork`, in the parent or the child.
pub fn unlock_after_fork() {
    // SAFETY: called only after `lock_for_fork` by the forking thread (or its child copy).
    unsafe { RING.unlock_after_fork() };
}
