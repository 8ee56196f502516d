//! The stack depot: each distinct backtrace is stored once, in memory mapped for it (never the
//! heap), and named by a 32-bit id that a block's header keeps (0: no stack). A program has a
//! few thousand distinct allocation and free stacks and millions of blocks, so the headers
//! shrink from two inline backtraces (272 bytes) to two ids.
//!
//! The index is an open-addressed table of ids, hashed by the frames; a new stack is appended
//! to the store (one atomic add reserves its words), written, and published by a compare and
//! swap on its slot, so `insert` takes no lock. Two threads racing to add the same stack both
//! write a record; the loser's stays unused (a few words). The store's record: the hash, the
//! frame count, the frames. An id is the record's word offset plus one.
//!
//! Most stacks come back: the same call site, the same callers. The recent ids, a small table
//! beside the index keyed by a stack's innermost frames, hold the id last found for each key;
//! `insert` takes it when the record's frames are the stack's (compared, so a stale or
//! overwritten slot only costs the probe it saves), and skips hashing every frame and probing
//! the index. Its slots are read and written with plain loads and stores, no locked
//! instruction, by every thread.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use super::backtrace::{Backtrace, MAX_FRAMES};

/// Slots of the index (a power of two): a quarter more than the distinct stacks it can hold.
const SLOTS: usize = 1 << 20;
/// Slots of the recent ids (a power of two), after the index's in its mapping.
const RECENT: usize = 1 << 12;
/// The index's mapping: its slots, then the recent ids.
const INDEX_BYTES: usize = (SLOTS + RECENT) * core::mem::size_of::<AtomicU32>();
/// Probes before `insert` gives up on a crowded table (the stack is then not kept).
const PROBES_MAX: usize = 128;
/// The store's reservation, in 8-byte words (1 GiB, touched only as stacks arrive).
const STORE_WORDS: usize = 1 << 27;

static INDEX: AtomicPtr<AtomicU32> = AtomicPtr::new(ptr::null_mut());
static STORE: AtomicPtr<usize> = AtomicPtr::new(ptr::null_mut());
/// Words of the store handed out.
static STORE_USED: AtomicUsize = AtomicUsize::new(0);

/// Maps `len` bytes of zeroed memory, reserved without commitment; `None` if the OS refuses.
fn map_reserved(len: usize) -> Option<*mut u8> {
    // SAFETY: an anonymous private mapping with no address hint.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p.cast())
}

/// The mapping in `slot`, made on first use (a thread that loses the race unmaps its own):
/// check mode's tables that must not come from the heap.
pub(super) fn mapped<T>(slot: &AtomicPtr<T>, len: usize) -> Option<*mut T> {
    let p = slot.load(Ordering::Acquire);
    if !p.is_null() {
        return Some(p);
    }
    let fresh = map_reserved(len)?.cast::<T>();
    match slot.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(fresh),
        Err(winner) => {
            // SAFETY: `fresh` was mapped above with `len` bytes and never published.
            unsafe { libc::munmap(fresh.cast(), len) };
            Some(winner)
        }
    }
}

fn hash(frames: &[usize]) -> u64 {
    frames
        .iter()
        .fold(0x9e37_79b9_7f4a_7c15u64 ^ frames.len() as u64, |h, &f| {
            (h ^ f as u64)
                .wrapping_mul(0x0100_0000_01b3)
                .rotate_left(29)
        })
}

/// The record of `id`: its hash and its frames.
///
/// # Safety
/// `id` must have been returned by `insert` (non-zero).
unsafe fn record(store: *mut usize, id: u32) -> (u64, &'static [usize]) {
    let at = id as usize - 1;
    // SAFETY: `insert` wrote `[hash, len, frames...]` at `at` before publishing `id`, and
    // records are never changed or unmapped.
    unsafe {
        let len = (*store.add(at + 1)).min(MAX_FRAMES);
        (
            *store.add(at) as u64,
            core::slice::from_raw_parts(store.add(at + 2), len),
        )
    }
}

/// The id of `bt`'s stack, adding it to the depot when new; 0 for an empty backtrace, or when
/// memory for the depot cannot be had (the block then reports no stack).
pub fn insert(bt: &Backtrace) -> u32 {
    let frames = bt.frames();
    if frames.is_empty() {
        return 0;
    }
    let (Some(index), Some(store)) = (
        mapped(&INDEX, INDEX_BYTES),
        mapped(&STORE, STORE_WORDS * core::mem::size_of::<usize>()),
    ) else {
        return 0;
    };
    // SAFETY: the recent ids follow the index's slots in its mapping; the slot is below
    // `RECENT`.
    let recent = unsafe { &*index.add(SLOTS + recent_slot(frames)) };
    let id = recent.load(Ordering::Acquire);
    // SAFETY: a non-zero recent id was published by `insert`.
    if id != 0 && unsafe { record(store, id) }.1 == frames {
        return id;
    }
    let id = insert_indexed(frames, index, store);
    recent.store(id, Ordering::Release);
    id
}

/// The recent ids' slot of a stack, from its innermost frames (where the call sites differ)
/// and its depth: a few loads, where the index's hash reads every frame.
fn recent_slot(frames: &[usize]) -> usize {
    let key = frames
        .iter()
        .take(4)
        .fold(frames.len(), |k, &f| k.rotate_left(17) ^ f);
    key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (usize::BITS - RECENT.trailing_zeros())
}

/// `insert`'s work past the recent ids: the index's probe, and the record of a new stack.
fn insert_indexed(frames: &[usize], index: *mut AtomicU32, store: *mut usize) -> u32 {
    let h = hash(frames);
    let mut i = h as usize & (SLOTS - 1);
    for _ in 0..PROBES_MAX {
        // SAFETY: `i < SLOTS`, inside the index mapping.
        let slot = unsafe { &*index.add(i) };
        let mut id = slot.load(Ordering::Acquire);
        if id == 0 {
            let words = 2 + frames.len();
            let at = STORE_USED.fetch_add(words, Ordering::Relaxed);
            if at + words > STORE_WORDS || at + 1 > u32::MAX as usize {
                return 0;
            }
            // SAFETY: the words `[at, at + words)` were reserved for this thread alone above,
            // inside the store mapping.
            unsafe {
                store.add(at).write(h as usize);
                store.add(at + 1).write(frames.len());
                ptr::copy_nonoverlapping(frames.as_ptr(), store.add(at + 2), frames.len());
            }
            let new = (at + 1) as u32;
            match slot.compare_exchange(0, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return new,
                Err(other) => id = other,
            }
        }
        // SAFETY: a non-zero slot holds an id published by `insert`.
        let (their_hash, their_frames) = unsafe { record(store, id) };
        if their_hash == h && their_frames == frames {
            return id;
        }
        i = (i + 1) & (SLOTS - 1);
    }
    0
}

/// The depot's mappings (empty ranges until made): the leak mark leaves them out of its roots,
/// since they hold code addresses only, and reading the store's untouched reservation would
/// fault in a gigabyte of zero pages.
pub fn mapped_ranges() -> [core::ops::Range<usize>; 2] {
    let range = |p: usize, len: usize| if p == 0 { 0..0 } else { p..p + len };
    [
        range(INDEX.load(Ordering::Acquire) as usize, INDEX_BYTES),
        range(
            STORE.load(Ordering::Acquire) as usize,
            STORE_WORDS * core::mem::size_of::<usize>(),
        ),
    ]
}

/// The backtrace stored as `id` (empty for 0).
pub fn get(id: u32) -> Backtrace {
    let mut bt = Backtrace::EMPTY;
    let store = STORE.load(Ordering::Acquire);
    if id == 0 || store.is_null() {
        return bt;
    }
    // SAFETY: ids in headers come from `insert`, which mapped the store first.
    let (_, frames) = unsafe { record(store, id) };
    bt.frames[..frames.len()].copy_from_slice(frames);
    bt.len = frames.len() as u8;
    bt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bt(frames: &[usize]) -> Backtrace {
        let mut bt = Backtrace::EMPTY;
        bt.frames[..frames.len()].copy_from_slice(frames);
        bt.len = frames.len() as u8;
        bt
    }

    #[test]
    fn a_stack_is_stored_once_and_read_back() {
        let a = bt(&[0x1000, 0x2000, 0x3000]);
        let b = bt(&[0x1000, 0x2000, 0x3001]);
        let (ia, ib) = (insert(&a), insert(&b));
        assert!(ia != 0 && ib != 0 && ia != ib);
        assert_eq!(insert(&a), ia);
        assert_eq!(get(ia).frames(), a.frames());
        assert_eq!(get(ib).frames(), b.frames());
        assert_eq!(insert(&Backtrace::EMPTY), 0);
        assert_eq!(get(0).len, 0);
    }

    #[test]
    fn stacks_sharing_a_recent_slot_keep_their_own_ids() {
        // The same innermost frames and depth: one recent slot, taken by each in turn.
        let a = bt(&[0x1100, 0x2200, 0x3300, 0x4400, 0x5501]);
        let b = bt(&[0x1100, 0x2200, 0x3300, 0x4400, 0x5502]);
        assert_eq!(recent_slot(a.frames()), recent_slot(b.frames()));
        let (ia, ib) = (insert(&a), insert(&b));
        assert_ne!(ia, ib);
        for _ in 0..3 {
            assert_eq!(insert(&a), ia);
            assert_eq!(insert(&a), ia);
            assert_eq!(insert(&b), ib);
        }
        assert_eq!(get(ib).frames(), b.frames());
    }

    #[test]
    fn threads_adding_the_same_stacks_agree_on_their_ids() {
        let ids: Vec<Vec<u32>> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..2000usize)
                        .map(|i| insert(&bt(&[0x5000, i + 1, 0x7000])))
                        .collect()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        for other in &ids[1..] {
            assert_eq!(other, &ids[0]);
        }
        for (i, &id) in ids[0].iter().enumerate() {
            assert_eq!(get(id).frames(), &[0x5000, i + 1, 0x7000]);
        }
    }
}
