//! Frees from other threads: the atomic `thread_free` list of each page, and the delayed-free
//! handshake that tells a heap when one of its full pages gets a block back.
//!
//! A page's `thread_free` word is a block pointer with a two-bit state in its low bits (blocks
//! are 8-aligned):
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

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::heap::Heap;
use crate::page::{Block, Page};

/// Remote frees go to the page's list.
pub const NORMAL: usize = 0;
/// The next remote free notifies the heap (the page is full).
pub const USE_DELAYED: usize = 1;
/// A remote free is notifying the heap right now.
pub const DELAYED_FREEING: usize = 2;
/// The page's heap is gone or going: never notify it.
pub const NEVER_DELAYED: usize = 3;
const STATE_MASK: usize = 3;

/// Frees `block` of `page` from a thread that does not own the page.
///
/// # Safety
/// `block` must be a live block of `page`, which must be in use.
pub unsafe fn free_remote(page: &Page, block: *mut Block) {
    let mut word = page.thread_free.load(Ordering::Relaxed);
    let notify = loop {
        let state = word & STATE_MASK;
        let notify = state == USE_DELAYED;
        let new = if notify {
            (word & !STATE_MASK) | DELAYED_FREEING
        } else {
            // SAFETY: the block is live and ours to free, so we may write its link word.
            unsafe { (*block).next = (word & !STATE_MASK) as *mut Block };
            block as usize | state
        };
        match page
            .thread_free
            .compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => break notify,
            Err(current) => word = current,
        }
    };
    if !notify {
        return;
    }
    // The owner cannot abandon the heap while the state is DELAYED_FREEING (it waits in
    // `set_delayed_state`), so the heap read here stays valid until the state is reset.
    let heap = page.heap.load(Ordering::Acquire);
    if heap.is_null() {
        // No owner to notify: leave the block on the page's list for a future reclaimer.
        push_thread_free(page, block);
    } else {
        // SAFETY: the heap is valid (see above); its delayed list accepts blocks of its pages.
        push_atomic(unsafe { &(*heap).delayed_free }, block);
    }
    let mut word = page.thread_free.load(Ordering::Relaxed);
    loop {
        let new = (word & !STATE_MASK) | NORMAL;
        match page
            .thread_free
            .compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => break,
            Err(current) => word = current,
        }
    }
}

/// Pushes a block onto the page's `thread_free` list, keeping the state bits.
fn push_thread_free(page: &Page, block: *mut Block) {
    let mut word = page.thread_free.load(Ordering::Relaxed);
    loop {
        // SAFETY: the caller owns `block` until the push succeeds.
        unsafe { (*block).next = (word & !STATE_MASK) as *mut Block };
        let new = block as usize | (word & STATE_MASK);
        match page
            .thread_free
            .compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => return,
            Err(current) => word = current,
        }
    }
}

/// Pushes a block onto an atomic list (a heap's `delayed_free`).
pub fn push_atomic(list: &AtomicPtr<Block>, block: *mut Block) {
    let mut head = list.load(Ordering::Relaxed);
    loop {
        // SAFETY: the caller owns `block` until the push succeeds.
        unsafe { (*block).next = head };
        match list.compare_exchange_weak(head, block, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return,
            Err(current) => head = current,
        }
    }
}

/// Takes every block on the page's `thread_free` list, keeping its state bits.
///
/// # Safety
/// The caller must own the page.
#[inline]
pub unsafe fn take_thread_free(page: &Page) -> *mut Block {
    let mut word = page.thread_free.load(Ordering::Relaxed);
    loop {
        if word & !STATE_MASK == 0 {
            return ptr::null_mut();
        }
        match page.thread_free.compare_exchange_weak(
            word,
            word & STATE_MASK,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => return (word & !STATE_MASK) as *mut Block,
            Err(current) => word = current,
        }
    }
}

/// Sets the page's delayed-free state, waiting while a remote free is notifying the heap.
/// `NEVER_DELAYED` is sticky against `USE_DELAYED` unless `force` is set (a reclaim resets it).
pub fn set_delayed_state(page: &Page, state: usize, force: bool) {
    let mut word = page.thread_free.load(Ordering::Acquire);
    loop {
        let current = word & STATE_MASK;
        if current == DELAYED_FREEING {
            core::hint::spin_loop();
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
            word = page.thread_free.load(Ordering::Acquire);
            continue;
        }
        if current == state || (current == NEVER_DELAYED && !force) {
            return;
        }
        let new = (word & !STATE_MASK) | state;
        match page
            .thread_free
            .compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return,
            Err(w) => word = w,
        }
    }
}

/// Takes every block that other threads handed this heap through the delayed-free path.
pub fn take_delayed(heap: &Heap) -> *mut Block {
    if heap.delayed_free.load(Ordering::Relaxed).is_null() {
        return ptr::null_mut();
    }
    heap.delayed_free.swap(ptr::null_mut(), Ordering::AcqRel)
}
