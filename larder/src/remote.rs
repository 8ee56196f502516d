//! Frees from other threads: the atomic `thread_free` list of each page, and the delayed-free
//! handshake that tells a heap when one of its full pages gets a block back.
//!
//! A page's `thread_free` word packs three things: the list's head block in bits 2-47 (blocks
//! are 8-aligned and lie in larder's 47-bit address range), the number of blocks on the list in
//! bits 48-63, and a two-bit state in bits 0-1. The count travels with the list so that the
//! owner, collecting it, learns how many blocks came back without walking them: a freeing
//! thread knows how many it pushes (its held-back chain's length), adds that in the same
//! compare-and-swap as the push, and the owner's take clears both. (Walking each collected list
//! for its length was about a tenth of producer-consumer's samples, all cache misses on lines
//! the freeing thread had just written.) The states:
//! - `NORMAL`: a remote free pushes the block onto the page's list; the owner collects it in its
//!   slow path.
//! - `USE_DELAYED`: the page sits in its heap's full list, where the slow path does not look. The
//!   next remote free instead pushes the block onto the heap's `delayed_free` list (moving the
//!   state through `DELAYED_FREEING` back to `NORMAL`), so that the owner learns the page has
//!   room again. Only one remote free per full page pays for this.
//! - `DELAYED_FREEING`: a remote thread is between the two steps above and is reading the
//!   page's heap; the owner waits for it to finish before abandoning the heap, so the heap it
//!   reads stays valid.
//! - `NEVER_DELAYED`: the heap is abandoning or has abandoned the page; remote frees only ever
//!   go to the page's list, for whichever heap reclaims it.
//!
//! Each operation is a thin function on a `Page` or `Heap` over an `_on` function on the atomic
//! words themselves, generic over `atomic::AtomicWord`: larder instantiates them with core's
//! atomics (the same machine code as before the split), and `tests/loom_remote.rs` runs the same
//! functions on loom's atomics to model-check them.

use core::ptr;
use core::sync::atomic::AtomicPtr;

use crate::atomic::{AtomicWord, Ordering};
use crate::heap::Heap;
use crate::page::{Block, Page};
use crate::size_class::{self, BIN_COUNT};

/// Remote frees go to the page's list.
pub const NORMAL: usize = 0;
/// The next remote free notifies the heap (the page is full).
pub const USE_DELAYED: usize = 1;
/// A remote free is notifying the heap right now.
pub const DELAYED_FREEING: usize = 2;
/// The page's heap is gone or going: never notify it.
pub const NEVER_DELAYED: usize = 3;
/// The state bits of a `thread_free` word.
pub const STATE_MASK: usize = 3;
/// Where a `thread_free` word's block count starts.
pub const COUNT_SHIFT: u32 = 48;
/// The head-block bits of a `thread_free` word.
pub const HEAD_MASK: usize = ((1 << COUNT_SHIFT) - 1) & !STATE_MASK;

/// The head of the list in a `thread_free` word.
#[inline(always)]
pub fn head_of(word: usize) -> *mut Block {
    (word & HEAD_MASK) as *mut Block
}

/// The number of blocks on the list in a `thread_free` word.
#[inline(always)]
pub fn count_of(word: usize) -> u32 {
    (word >> COUNT_SHIFT) as u32
}

/// `word` with `first` as its list head and `len` more blocks counted, its state kept.
#[inline(always)]
fn pushed(word: usize, first: *mut Block, len: u32) -> usize {
    debug_assert_eq!(first as usize & !HEAD_MASK, 0);
    ((word & !HEAD_MASK) + ((len as usize) << COUNT_SHIFT)) | first as usize
}

/// The heap side of the handshake: where a full page's first remote free goes.
pub trait DelayedFree {
    /// The list's head word.
    type List: AtomicWord<Value = *mut Block>;
    /// The heap's list of blocks freed by other threads into its full pages.
    fn delayed_free(&self) -> &Self::List;
}

impl DelayedFree for Heap {
    type List = AtomicPtr<Block>;
    #[inline(always)]
    fn delayed_free(&self) -> &AtomicPtr<Block> {
        &self.delayed_free
    }
}

/// Frees `block` of `page` from a thread that does not own the page.
///
/// # Safety
/// `block` must be a live block of `page`, which must be in use.
pub unsafe fn free_remote(page: &Page, block: *mut Block) {
    // SAFETY: forwarded from the caller.
    unsafe { free_remote_chain(page, block, block, 1) }
}

/// Hands a chain of `len` blocks of `page`, linked through `next` from `first` to `last`, to
/// the page's owner in one atomic operation.
///
/// # Safety
/// Every block of the chain must be a live block of `page`, which must be in use.
unsafe fn free_remote_chain(page: &Page, first: *mut Block, last: *mut Block, len: u32) {
    // SAFETY: forwarded from the caller; a page's heap stays valid while the page's state is
    // DELAYED_FREEING (the owner waits in `set_delayed_state`).
    unsafe { free_remote_chain_on(&page.thread_free, &page.heap, first, last, len) }
}

/// Blocks a thread freed into one page it does not own, linked but not yet handed over. A
/// thread that frees many blocks of other threads (a consumer of a queue) frees the blocks of
/// each size mostly page by page, as they were made: holding back one chain per size class while
/// the frees of that class stay on one page turns an atomic operation per block into one per
/// chain. The blocks still count as used in their page until the chain goes, so the page cannot
/// be freed under it.
#[derive(Clone, Copy)]
pub struct PendingChain {
    page: *const Page,
    first: *mut Block,
    last: *mut Block,
    len: u32,
    /// The longest this chain may grow (`CHAIN_MAX` blocks or `CHAIN_BYTES_MAX` bytes of its
    /// page's blocks), worked out when it starts so that adding a block is one compare.
    limit: u32,
}

impl PendingChain {
    /// No chain.
    pub const EMPTY: PendingChain = PendingChain {
        page: ptr::null(),
        first: ptr::null_mut(),
        last: ptr::null_mut(),
        len: 0,
        limit: 0,
    };
}

/// The longest chain held back, in blocks and in bytes: a thread that stops freeing keeps at
/// most this much of one page from its owner.
const CHAIN_MAX: u32 = 32;
const CHAIN_BYTES_MAX: usize = 16 << 10;

/// Adds `block` to the calling thread's chain if the chain holds blocks of `page` and has room;
/// returns false (and changes nothing) otherwise.
///
/// # Safety
/// As `free_remote`; `pending` must be the calling thread's own chain.
#[inline(always)]
pub unsafe fn try_append(pending: &mut PendingChain, page: *const Page, block: *mut Block) -> bool {
    if ptr::eq(pending.page, page) && pending.len < pending.limit {
        // SAFETY: the block is live and ours to free, so we may write its link word.
        unsafe { (*block).next = pending.first };
        pending.first = block;
        pending.len += 1;
        return true;
    }
    false
}

/// Hands the calling thread's chain to its owner, as `flush_pending`, and starts a new one
/// with `block`, of `page` (when `try_append` refused it). Returns what went, as `flush_pending`.
///
/// # Safety
/// As `free_remote`; `pending` must be the calling thread's own chain.
#[inline]
pub unsafe fn restart_chain(
    pending: &mut PendingChain,
    page: &Page,
    block: *mut Block,
) -> (u32, usize) {
    // SAFETY: forwarded from the caller.
    let handed = unsafe { flush_pending(pending) };
    *pending = PendingChain {
        page,
        first: block,
        last: block,
        len: 1,
        limit: chain_limit(page.bin as usize),
    };
    handed
}

/// The longest chain of blocks of `bin`, from a table: a thread freeing other threads' blocks
/// in no order starts a chain on almost every free, and a division there cost server-churn
/// (larder-bench) about 5% of its time.
#[inline(always)]
fn chain_limit(bin: usize) -> u32 {
    const LIMITS: [u32; BIN_COUNT] = {
        let mut limits = [1; BIN_COUNT];
        let mut bin = 0;
        while bin < BIN_COUNT {
            let fit = match CHAIN_BYTES_MAX.checked_div(size_class::class_size(bin)) {
                Some(fit) => fit,
                None => 1,
            };
            limits[bin] = if fit > CHAIN_MAX as usize {
                CHAIN_MAX
            } else if fit == 0 {
                1
            } else {
                fit as u32
            };
            bin += 1;
        }
        limits
    };
    LIMITS.get(bin).copied().unwrap_or(1)
}

/// Hands the held-back chain, if any, to its page's owner. Returns how many blocks went and
/// their bytes (the freeing thread counts its frees then, one chain at a time, not per block).
///
/// # Safety
/// `pending` must be the calling thread's own chain.
pub unsafe fn flush_pending(pending: &mut PendingChain) -> (u32, usize) {
    let chain = core::mem::replace(pending, PendingChain::EMPTY);
    if chain.page.is_null() {
        return (0, 0);
    }
    // SAFETY: the chain's blocks are live blocks of its page, which stays in use while they
    // are (they count as used until the owner collects them), so its block size is readable
    // before the hand-over and the hand-over is sound.
    unsafe {
        let bytes = chain.len as usize * (*chain.page).block_size;
        free_remote_chain(&*chain.page, chain.first, chain.last, chain.len);
        (chain.len, bytes)
    }
}

/// `free_remote_chain` on a page's `thread_free` word and heap word (the model checker calls it
/// on loom's atomics).
///
/// # Safety
/// Every block of the chain of `len` blocks, linked through `next` from `first` to `last`, must
/// be a live block of the page these words belong to, which must be in use; while the page's
/// state is `DELAYED_FREEING`, a non-null `heap` must point to a valid heap.
#[inline(always)]
pub unsafe fn free_remote_chain_on<H: DelayedFree>(
    thread_free: &impl AtomicWord<Value = usize>,
    heap: &impl AtomicWord<Value = *mut H>,
    first: *mut Block,
    last: *mut Block,
    len: u32,
) {
    let mut word = thread_free.load(Ordering::Relaxed);
    let notify = loop {
        let state = word & STATE_MASK;
        let notify = state == USE_DELAYED;
        let new = if notify {
            (word & !STATE_MASK) | DELAYED_FREEING
        } else {
            // SAFETY: the blocks are live and ours to free, so we may write their link words.
            unsafe { (*last).next = head_of(word) };
            pushed(word, first, len)
        };
        match thread_free.compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => break notify,
            Err(current) => word = current,
        }
    };
    if !notify {
        return;
    }
    // The owner cannot abandon the heap while the state is DELAYED_FREEING (it waits in
    // `set_delayed_state`), so the heap read here stays valid until the state is reset.
    let heap = heap.load(Ordering::Acquire);
    if heap.is_null() {
        // No owner to notify: leave the blocks on the page's list for a future reclaimer.
        push_thread_free(thread_free, first, last, len);
    } else {
        // SAFETY: the heap is valid (see above); its delayed list accepts blocks of its pages.
        push_chain(unsafe { (*heap).delayed_free() }, first, last);
    }
    let mut word = thread_free.load(Ordering::Relaxed);
    loop {
        let new = (word & !STATE_MASK) | NORMAL;
        match thread_free.compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => break,
            Err(current) => word = current,
        }
    }
}

/// Pushes a chain of `len` blocks onto a page's `thread_free` list, keeping the state bits.
fn push_thread_free(
    thread_free: &impl AtomicWord<Value = usize>,
    first: *mut Block,
    last: *mut Block,
    len: u32,
) {
    let mut word = thread_free.load(Ordering::Relaxed);
    loop {
        // SAFETY: the caller owns the chain until the push succeeds.
        unsafe { (*last).next = head_of(word) };
        let new = pushed(word, first, len);
        match thread_free.compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return,
            Err(current) => word = current,
        }
    }
}

/// Pushes a chain of blocks, linked from `first` to `last`, onto an atomic list.
fn push_chain(list: &impl AtomicWord<Value = *mut Block>, first: *mut Block, last: *mut Block) {
    let mut head = list.load(Ordering::Relaxed);
    loop {
        // SAFETY: the caller owns the chain until the push succeeds.
        unsafe { (*last).next = head };
        match list.compare_exchange_weak(head, first, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return,
            Err(current) => head = current,
        }
    }
}

/// Takes every block on the page's `thread_free` list, keeping its state bits: the list's head
/// and its length (null and 0 when it is empty).
///
/// # Safety
/// The caller must own the page.
#[inline]
pub unsafe fn take_thread_free(page: &Page) -> (*mut Block, u32) {
    // SAFETY: forwarded from the caller.
    unsafe { take_thread_free_on(&page.thread_free) }
}

/// `take_thread_free` on a page's `thread_free` word.
///
/// # Safety
/// The caller must own the page the word belongs to.
#[inline(always)]
pub unsafe fn take_thread_free_on(
    thread_free: &impl AtomicWord<Value = usize>,
) -> (*mut Block, u32) {
    let mut word = thread_free.load(Ordering::Relaxed);
    loop {
        if word & HEAD_MASK == 0 {
            return (ptr::null_mut(), 0);
        }
        match thread_free.compare_exchange_weak(
            word,
            word & STATE_MASK,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => return (head_of(word), count_of(word)),
            Err(current) => word = current,
        }
    }
}

/// Whether blocks wait on the page's `thread_free` list.
#[inline]
pub fn has_thread_free(page: &Page) -> bool {
    page.thread_free.load(Ordering::Acquire) & HEAD_MASK != 0
}

/// Sets the page's delayed-free state, waiting while a remote free is notifying the heap.
/// `NEVER_DELAYED` is sticky against `USE_DELAYED` unless `force` is set (a reclaim resets it).
pub fn set_delayed_state(page: &Page, state: usize, force: bool) {
    set_delayed_state_on(&page.thread_free, state, force);
}

/// `set_delayed_state` on a page's `thread_free` word.
#[inline(always)]
pub fn set_delayed_state_on(
    thread_free: &impl AtomicWord<Value = usize>,
    state: usize,
    force: bool,
) {
    let mut word = thread_free.load(Ordering::Acquire);
    loop {
        let current = word & STATE_MASK;
        if current == DELAYED_FREEING {
            thread_free.wait_for_change();
            word = thread_free.load(Ordering::Acquire);
            continue;
        }
        if current == state || (current == NEVER_DELAYED && !force) {
            return;
        }
        let new = (word & !STATE_MASK) | state;
        match thread_free.compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(w) => word = w,
        }
    }
}

/// Takes every block that other threads handed this heap through the delayed-free path.
pub fn take_delayed(heap: &Heap) -> *mut Block {
    take_delayed_on(heap.delayed_free())
}

/// `take_delayed` on a heap's `delayed_free` list.
#[inline(always)]
pub fn take_delayed_on(list: &impl AtomicWord<Value = *mut Block>) -> *mut Block {
    if list.load(Ordering::Relaxed).is_null() {
        return ptr::null_mut();
    }
    list.swap(ptr::null_mut(), Ordering::AcqRel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicUsize;

    /// Chains of 3 and 2 blocks, then one block, pushed onto a page's word: the owner's take
    /// gets all six, linked, with a count of 6 that it does not need to walk for, and the state
    /// bits stay where they were.
    #[test]
    fn the_count_travels_with_the_list() {
        let mut blocks: Vec<Block> = (0..6)
            .map(|_| Block {
                next: ptr::null_mut(),
            })
            .collect();
        let base = blocks.as_mut_ptr();
        // Block `i` (the vector holds six).
        let b = |i: usize| base.wrapping_add(i);
        let word = AtomicUsize::new(NEVER_DELAYED);
        let heap = AtomicPtr::<Heap>::new(ptr::null_mut());
        // SAFETY: the blocks are ours; each chain is linked first to last before it is pushed.
        unsafe {
            (*b(0)).next = b(1);
            (*b(1)).next = b(2);
            free_remote_chain_on(&word, &heap, b(0), b(2), 3);
            (*b(3)).next = b(4);
            free_remote_chain_on(&word, &heap, b(3), b(4), 2);
            free_remote_chain_on(&word, &heap, b(5), b(5), 1);
        }
        assert_eq!(count_of(word.load(Ordering::Relaxed)), 6);
        // SAFETY: this test owns the word's page.
        let (head, count) = unsafe { take_thread_free_on(&word) };
        assert_eq!(count, 6);
        let mut seen = 0;
        let mut block = head;
        while !block.is_null() {
            seen += 1;
            // SAFETY: the list holds the test's blocks.
            block = unsafe { (*block).next };
        }
        assert_eq!(seen, 6);
        assert_eq!(word.load(Ordering::Relaxed), NEVER_DELAYED);
        // SAFETY: as above.
        assert_eq!(unsafe { take_thread_free_on(&word) }, (ptr::null_mut(), 0));
    }
}
