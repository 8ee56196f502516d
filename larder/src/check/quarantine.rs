//! Freed blocks wait here, poisoned, first in first out, until the bytes held pass
//! `LARDER_QUARANTINE`; a block that leaves is checked for writes after free and given back to
//! the core. The ring of pointers is mmap'd on first use, never allocated from the heap.

use crate::sync::Lock;

/// Ring slots: enough for the default 64 MiB of 64-byte blocks.
const SLOTS: usize = 1 << 20;

struct Ring {
    slots: *mut usize,
    head: usize,
    len: usize,
    bytes: u64,
}

// SAFETY: the ring's memory is only touched under the lock that holds it.
unsafe impl Send for Ring {}

static RING: Lock<Ring> = Lock::new(Ring {
    slots: core::ptr::null_mut(),
    head: 0,
    len: 0,
    bytes: 0,
});

/// Puts the block whose user bytes start at `user` (of `size` bytes) in the quarantine and
/// calls `release` for each block that leaves it (the oldest first), holding the lock: `release`
/// must not allocate from check mode.
pub fn push(user: usize, size: usize, limit: u64, mut release: impl FnMut(usize)) {
    let mut ring = RING.lock();
    if ring.slots.is_null() {
        // SAFETY: an anonymous private mapping with no address hint.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                SLOTS * core::mem::size_of::<usize>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            drop(ring);
            release(user);
            return;
        }
        ring.slots = p.cast();
    }
    if ring.len == SLOTS {
        evict_one(&mut ring, &mut release);
    }
    let tail = (ring.head + ring.len) % SLOTS;
    // SAFETY: `tail < SLOTS`, inside the mapping.
    unsafe { ring.slots.add(tail).write(user) };
    ring.len += 1;
    ring.bytes += size as u64;
    while ring.bytes > limit && ring.len > 0 {
        evict_one(&mut ring, &mut release);
    }
}

fn evict_one(ring: &mut Ring, release: &mut impl FnMut(usize)) {
    // SAFETY: `head < SLOTS`, and the slot holds a pushed block since `len > 0`.
    let user = unsafe { ring.slots.add(ring.head).read() };
    ring.head = (ring.head + 1) % SLOTS;
    ring.len -= 1;
    // SAFETY: a quarantined block's header is intact until it is released.
    let size = unsafe { (*super::block::header_of(user)).size };
    ring.bytes = ring.bytes.saturating_sub(size as u64);
    release(user);
}

/// The ring's mapping (empty until made): not a root of the leak mark (it holds freed blocks
/// only).
pub fn mapped_range() -> core::ops::Range<usize> {
    let slots = RING.lock().slots as usize;
    if slots == 0 {
        0..0
    } else {
        slots..slots + SLOTS * core::mem::size_of::<usize>()
    }
}

/// Takes every block out of the quarantine, oldest first, calling `release` for each (at exit:
/// writes after free into blocks still held are found too).
pub fn drain(mut release: impl FnMut(usize)) {
    let mut ring = RING.lock();
    while ring.len > 0 {
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
