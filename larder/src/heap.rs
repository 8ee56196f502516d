//! The per-thread heap and the allocation slow path.
//!
//! A heap owns segments and the pages in them. It keeps, per bin, a queue of pages with (or
//! recently with) free blocks, a list of full pages, and a direct table from small sizes to the
//! page at the head of their bin's queue, so that the fast path (`alloc.rs`) is a table load and
//! a list pop. Every thread reaches its heap through one `thread_local!` pointer with const
//! initialisation; until the thread's first allocation it points at `EMPTY_HEAP`, whose table
//! leads only to an empty page, so the very first allocation falls into the slow path, which
//! creates the real heap.
//!
//! Threads that exit abandon their segments (a pthread key destructor runs for Rust and C
//! threads alike); a heap that needs a page and has no free page of its own reclaims one of
//! them (of the kind it needs) before it creates a segment.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use crate::page::{Block, Page};
use crate::remote;
use crate::segment::{Kind, Segment};
use crate::size_class::{self, BIN_COUNT, DIRECT_BIN, DIRECT_MAX, DIRECT_SLOTS, SMALL_MAX};
use crate::stats::{self, Counters};
use crate::sync::Lock;
use crate::{freed, os, purge};

/// A doubly linked list of pages.
#[derive(Clone, Copy)]
pub struct PageQueue {
    first: *mut Page,
    last: *mut Page,
}

impl PageQueue {
    const EMPTY: PageQueue = PageQueue {
        first: ptr::null_mut(),
        last: ptr::null_mut(),
    };
}

/// A doubly linked list of segments: those with free pages first.
#[derive(Clone, Copy)]
struct SegmentList {
    head: *mut Segment,
    tail: *mut Segment,
}

impl SegmentList {
    const EMPTY: SegmentList = SegmentList {
        head: ptr::null_mut(),
        tail: ptr::null_mut(),
    };
}

/// A thread's heap.
#[repr(C)]
pub struct Heap {
    /// Size/8 → the page to allocate from (`EMPTY_PAGE` when the bin has none).
    pub direct: [*mut Page; DIRECT_SLOTS],
    /// `freed::key()`, copied when the heap is made (after `freed::init`), for the owner's
    /// free; 0 in `EMPTY_HEAP`, which owns nothing.
    pub freed_key: usize,
    /// Counters for `stats()`.
    pub counters: Counters,
    /// Blocks of this heap's full pages freed by other threads (see `remote.rs`).
    pub delayed_free: AtomicPtr<Block>,
    /// Blocks this thread freed into other heaps' pages, held back as one chain per size class.
    pending_remote: [remote::PendingChain; BIN_COUNT],
    /// Bit `b` set: `pending_remote[b]` may hold a chain.
    pending_bins: u128,
    queues: [PageQueue; BIN_COUNT],
    full: PageQueue,
    segments: [SegmentList; 2],
    /// Live bytes already published to the global peak tracker.
    flushed_live: isize,
    /// False only for `EMPTY_HEAP`.
    is_real: bool,
    /// Links in the list of live heaps (or the pool's free list).
    next_heap: *mut Heap,
    prev_heap: *mut Heap,
    /// Small and medium segments this heap owns.
    owned_segments: u32,
    /// Abandoned segments this heap reclaimed because it freed a block into them.
    free_reclaims: u32,
}

struct SyncPage(Page);
// SAFETY: EMPTY_PAGE is never written: its free list is empty, so every path that would modify
// a page leaves it for the slow path first.
unsafe impl Sync for SyncPage {}
static EMPTY_PAGE: SyncPage = SyncPage(Page::unused());

/// The stand-in heap of threads that have not allocated yet.
#[repr(transparent)]
pub struct SyncHeap(Heap);
// SAFETY: EMPTY_HEAP is never written except through its atomic counters: its direct table
// leads only to EMPTY_PAGE, and the slow path replaces it before touching heap state.
unsafe impl Sync for SyncHeap {}

const fn empty_page_ptr() -> *mut Page {
    &EMPTY_PAGE.0 as *const Page as *mut Page
}

/// The heap of threads that have not allocated yet.
pub static EMPTY_HEAP: SyncHeap = SyncHeap(Heap::new(false));

impl Heap {
    const fn new(is_real: bool) -> Heap {
        Heap {
            direct: [empty_page_ptr(); DIRECT_SLOTS],
            freed_key: 0,
            counters: Counters::new(),
            delayed_free: AtomicPtr::new(ptr::null_mut()),
            pending_remote: [remote::PendingChain::EMPTY; BIN_COUNT],
            pending_bins: 0,
            queues: [PageQueue::EMPTY; BIN_COUNT],
            full: PageQueue::EMPTY,
            segments: [SegmentList::EMPTY; 2],
            flushed_live: 0,
            is_real,
            next_heap: ptr::null_mut(),
            prev_heap: ptr::null_mut(),
            owned_segments: 0,
            free_reclaims: 0,
        }
    }

    /// Whether this is a thread's own heap (not `EMPTY_HEAP`).
    #[inline]
    pub fn is_real(&self) -> bool {
        self.is_real
    }
}

/// The calling thread's heap pointer.
///
/// On x86-64 Linux it is a TLS variable of the initial-exec model, defined in assembly: one
/// `fs`-relative load, also inside `liblarder.so`, where a `thread_local!` would go through
/// `__tls_get_addr` (a call on every malloc and free). Its initial value, in the TLS image, is
/// `EMPTY_HEAP`. Elsewhere it is a const-initialised `thread_local!`.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod current_heap {
    use super::{Heap, EMPTY_HEAP};

    core::arch::global_asm!(
        ".pushsection .tdata,\"awT\",@progbits",
        ".p2align 3",
        ".globl larder_current_heap",
        ".hidden larder_current_heap",
        ".type larder_current_heap, @object",
        ".size larder_current_heap, 8",
        "larder_current_heap:",
        ".quad {empty}",
        ".popsection",
        empty = sym EMPTY_HEAP,
    );

    #[inline(always)]
    pub fn get() -> *mut Heap {
        let heap: *mut Heap;
        // SAFETY: reads this thread's copy of the 8-byte TLS variable defined above (its offset
        // from the thread pointer comes from the GOT); no other memory is touched.
        unsafe {
            core::arch::asm!(
                "mov {h}, qword ptr [rip + larder_current_heap@GOTTPOFF]",
                "mov {h}, qword ptr fs:[{h}]",
                h = out(reg) heap,
                options(nostack, preserves_flags, readonly),
            );
        }
        heap
    }

    #[inline]
    pub fn set(heap: *mut Heap) {
        // SAFETY: writes this thread's copy of the TLS variable defined above, nothing else.
        unsafe {
            core::arch::asm!(
                "mov {t}, qword ptr [rip + larder_current_heap@GOTTPOFF]",
                "mov qword ptr fs:[{t}], {h}",
                t = out(reg) _,
                h = in(reg) heap,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod current_heap {
    use super::{Heap, EMPTY_HEAP};

    thread_local! {
        static CURRENT: Cell<*mut Heap> =
            const { Cell::new(&EMPTY_HEAP.0 as *const Heap as *mut Heap) };
    }

    #[inline(always)]
    pub fn get() -> *mut Heap {
        CURRENT.with(|h| h.get())
    }

    #[inline]
    pub fn set(heap: *mut Heap) {
        CURRENT.with(|h| h.set(heap));
    }
}

/// The calling thread's heap (`EMPTY_HEAP` before its first allocation).
#[inline(always)]
pub fn current() -> *mut Heap {
    current_heap::get()
}

/// The calling thread's heap, made now if it has none yet; `EMPTY_HEAP` only when no heap can
/// be had (no memory).
#[cold]
pub fn current_or_new() -> *mut Heap {
    let heap = current();
    // SAFETY: `current` returns a valid heap, real or EMPTY_HEAP.
    if unsafe { (*heap).is_real } {
        return heap;
    }
    let fresh = init_thread_heap();
    if fresh.is_null() {
        heap
    } else {
        fresh
    }
}

// ---------------------------------------------------------------------------------------------
// Queues and the direct table.

/// Points the direct-table slots of `bin` at `page` (or `EMPTY_PAGE` when null).
#[inline]
unsafe fn set_direct(heap: &mut Heap, bin: usize, page: *mut Page) {
    let class = size_class::class_size(bin);
    if class > DIRECT_MAX {
        return;
    }
    let page = if page.is_null() {
        empty_page_ptr()
    } else {
        page
    };
    for slot in size_class::direct_slots(bin) {
        debug_assert_eq!(DIRECT_BIN[slot] as usize, bin);
        heap.direct[slot] = page;
    }
}

unsafe fn queue_remove(q: &mut PageQueue, page: *mut Page) {
    // SAFETY: the caller guarantees `page` is on `q`; its links are valid pages or null.
    unsafe {
        let (prev, next) = ((*page).prev, (*page).next);
        if prev.is_null() {
            q.first = next;
        } else {
            (*prev).next = next;
        }
        if next.is_null() {
            q.last = prev;
        } else {
            (*next).prev = prev;
        }
        (*page).prev = ptr::null_mut();
        (*page).next = ptr::null_mut();
    }
}

unsafe fn queue_push_front(q: &mut PageQueue, page: *mut Page) {
    // SAFETY: the caller guarantees `page` is on no queue.
    unsafe {
        (*page).prev = ptr::null_mut();
        (*page).next = q.first;
        if q.first.is_null() {
            q.last = page;
        } else {
            (*q.first).prev = page;
        }
    }
    q.first = page;
}

unsafe fn queue_push_back(q: &mut PageQueue, page: *mut Page) {
    // SAFETY: the caller guarantees `page` is on no queue.
    unsafe {
        (*page).next = ptr::null_mut();
        (*page).prev = q.last;
        if q.last.is_null() {
            q.first = page;
        } else {
            (*q.last).next = page;
        }
    }
    q.last = page;
}

/// Removes `page` from its bin queue, keeping the direct table on the queue's head.
unsafe fn remove_from_bin(heap: &mut Heap, page: *mut Page) {
    // SAFETY: the page is in use and on its bin's queue.
    unsafe {
        let bin = (*page).bin as usize;
        let was_first = heap.queues[bin].first == page;
        queue_remove(&mut heap.queues[bin], page);
        mark_only_page(&heap.queues[bin]);
        if was_first {
            set_direct(heap, bin, heap.queues[bin].first);
        }
    }
}

/// Sets `keep_if_emptied` on a bin queue's ends after a page joined or left it: a queue's only
/// page is its two ends, and the page that made a queue longer, or the one that was alone
/// before, is an end, so no page in the middle ever holds the flag.
unsafe fn mark_only_page(q: &PageQueue) {
    if q.first.is_null() {
        return;
    }
    let alone = q.first == q.last;
    // SAFETY: the pages on a bin queue are in use and the heap's.
    unsafe {
        (*q.first).keep_if_emptied = alone && !(*q.first).reclaimed_on_free;
        (*q.last).keep_if_emptied = alone && !(*q.last).reclaimed_on_free;
    }
}

unsafe fn seglist_remove(list: &mut SegmentList, seg: *mut Segment) {
    // SAFETY: the caller guarantees `seg` is on `list`.
    unsafe {
        let (prev, next) = ((*seg).prev, (*seg).next);
        if prev.is_null() {
            list.head = next;
        } else {
            (*prev).next = next;
        }
        if next.is_null() {
            list.tail = prev;
        } else {
            (*next).prev = prev;
        }
        (*seg).prev = ptr::null_mut();
        (*seg).next = ptr::null_mut();
    }
}

unsafe fn seglist_push_front(list: &mut SegmentList, seg: *mut Segment) {
    // SAFETY: the caller guarantees `seg` is on no list.
    unsafe {
        (*seg).prev = ptr::null_mut();
        (*seg).next = list.head;
        if list.head.is_null() {
            list.tail = seg;
        } else {
            (*list.head).prev = seg;
        }
    }
    list.head = seg;
}

unsafe fn seglist_push_back(list: &mut SegmentList, seg: *mut Segment) {
    // SAFETY: the caller guarantees `seg` is on no list.
    unsafe {
        (*seg).next = ptr::null_mut();
        (*seg).prev = list.tail;
        if list.tail.is_null() {
            list.head = seg;
        } else {
            (*list.tail).next = seg;
        }
    }
    list.tail = seg;
}

fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Small => 0,
        _ => 1,
    }
}

/// Index of `page` in its segment.
unsafe fn page_index(seg: *mut Segment, page: *mut Page) -> usize {
    // SAFETY: `page` lies in `seg`'s page array.
    let first = unsafe { Segment::page(seg, 0) };
    (page as usize - first as usize) / core::mem::size_of::<Page>()
}

/// Pops a block from the head page of `size`'s bin queue (sizes past the direct table), or
/// takes the slow path.
///
/// # Safety
/// `heap` must be the calling thread's current heap and `size <= MEDIUM_MAX`.
#[inline]
pub unsafe fn alloc_from_queue(heap: *mut Heap, size: usize) -> *mut u8 {
    let bin = size_class::bin_of(size);
    // SAFETY: the queue heads of the current heap are its own pages (EMPTY_HEAP's are null).
    unsafe {
        let page = (*heap).queues.get_unchecked(bin).first;
        if page.is_null() || (*page).free.is_null() {
            return alloc_slow(heap, size);
        }
        pop_block(page)
    }
}

/// Pops the first block of `page`'s free list (counted later, by `Page::count_into`).
///
/// # Safety
/// `page` must be owned by the calling thread's heap, and its `free` list non-empty.
#[inline(always)]
pub unsafe fn pop_block(page: *mut Page) -> *mut u8 {
    // SAFETY: forwarded from the caller: the list is owned and non-empty.
    unsafe {
        let page = &mut *page;
        let block = page.free;
        page.free = (*block).next;
        freed::unmark(block.cast());
        page.used += 1;
        block.cast()
    }
}

// ---------------------------------------------------------------------------------------------
// The slow path.

/// Allocates a block of `size` bytes (at most `MEDIUM_MAX`, already rounded to the alignment)
/// when the fast path found no free block. Returns null when memory cannot be had.
///
/// # Safety
/// `heap` must be the calling thread's current heap.
#[cold]
#[inline(never)]
pub unsafe fn alloc_slow(heap: *mut Heap, size: usize) -> *mut u8 {
    // SAFETY: `heap` is the current heap, real or EMPTY_HEAP; both are valid to read.
    let heap = if unsafe { (*heap).is_real } {
        heap
    } else {
        let fresh = init_thread_heap();
        if fresh.is_null() {
            return ptr::null_mut();
        }
        fresh
    };
    // SAFETY: `heap` is this thread's real heap.
    let heap = unsafe { &mut *heap };
    let bin = size_class::bin_of(size);
    // SAFETY: the heap is ours.
    let mut page = unsafe { refill_from_local_frees(heap, bin) };
    if page.is_null() {
        // SAFETY: the heap is ours.
        page = unsafe { find_page(heap, bin) };
        if page.is_null() {
            return ptr::null_mut();
        }
    }
    // SAFETY: `find_page` returns an owned page with a non-empty free list.
    let block = unsafe { pop_block(page) };
    slow_path_tail(heap);
    block
}

/// The usual refill, kept short: the page at the head of `bin`'s queue ran through its free
/// list, and its owner freed blocks onto `local_free` meanwhile. Taken only when no other work
/// waits (frees into full pages, held-back remote frees), which `find_page` does. Returns the
/// page with a non-empty free list, or null.
///
/// # Safety
/// `heap` must be the calling thread's real heap.
#[inline]
unsafe fn refill_from_local_frees(heap: &mut Heap, bin: usize) -> *mut Page {
    let page = heap.queues[bin].first;
    // SAFETY: pages on our queues are in use and owned by this heap.
    unsafe {
        if page.is_null()
            || (*page).local_free.is_null()
            || heap.pending_bins != 0
            || !heap.delayed_free.load(Ordering::Relaxed).is_null()
        {
            return ptr::null_mut();
        }
        (*page).count_into(&heap.counters);
        // Remote frees too, if any; then `local_free` becomes `free`, which is empty.
        (*page).collect_frees();
        if (*page).free.is_null() {
            return ptr::null_mut();
        }
    }
    page
}

/// Deferred work done every time the slow path runs (the heap's heartbeat): held-back remote
/// frees go out too, so that a thread that frees now and then and allocates on keeps no chain
/// for long.
fn slow_path_tail(heap: &mut Heap) {
    if heap.pending_bins != 0 {
        flush_pending_remote(heap);
    }
    publish_live(heap);
    purge::maybe_start();
}

fn publish_live(heap: &mut Heap) {
    let live = heap.counters.live_delta();
    // A refill that only reuses freed blocks changes nothing: no atomics then.
    if live != heap.flushed_live {
        stats::flush_live(live - heap.flushed_live);
        heap.flushed_live = live;
    }
}

/// Unpublished frees beyond which a thread publishes from a free path: a thread that only frees
/// (blocks other threads made, or its own after its last allocation) never runs the allocation
/// slow path, and without this the global live bytes, and so the peak, would stay too high.
const UNPUBLISHED_FREES_MAX: isize = 256 << 10;

fn publish_if_behind(heap: &mut Heap) {
    if heap.counters.live_delta() - heap.flushed_live < -UNPUBLISHED_FREES_MAX {
        // A thread that only frees flushes its held-back chains here too (counting them).
        flush_pending_remote(heap);
        publish_live(heap);
    }
}

/// Publishes the calling thread's frees if many are unpublished (called from the counted free
/// paths: remote and large frees).
pub fn publish_frees_if_behind() {
    with_own_heap(publish_if_behind);
}

/// Publishes the calling thread's live bytes for the peak now (after a large allocation, which
/// can move the peak by megabytes between two slow paths).
pub fn publish_live_now() {
    with_own_heap(publish_live);
}

/// Runs `f` on the calling thread's heap, if it has a real one.
fn with_own_heap(f: fn(&mut Heap)) {
    let heap = current();
    // SAFETY: the current heap is the calling thread's own (EMPTY_HEAP is only read).
    unsafe {
        if (*heap).is_real {
            f(&mut *heap);
        }
    }
}

/// A page of `bin` with a free block, or null when memory cannot be had.
unsafe fn find_page(heap: &mut Heap, bin: usize) -> *mut Page {
    // SAFETY: the heap is ours.
    unsafe { process_delayed(heap) };
    loop {
        let mut page = heap.queues[bin].first;
        while !page.is_null() {
            // SAFETY: pages on our queues are in use and owned by this heap.
            unsafe {
                let next = (*page).next;
                (*page).count_into(&heap.counters);
                (*page).collect();
                if !(*page).free.is_null() {
                    // The heap allocates here now: an only page is worth keeping again.
                    (*page).reclaimed_on_free = false;
                    if heap.queues[bin].first != page {
                        queue_remove(&mut heap.queues[bin], page);
                        queue_push_front(&mut heap.queues[bin], page);
                    }
                    mark_only_page(&heap.queues[bin]);
                    set_direct(heap, bin, page);
                    return page;
                }
                move_to_full(heap, page);
                page = next;
            }
        }
        // A free page of our own first, then abandoned segments, one at a time: a heap that
        // reclaimed more than it needs would sit on free pages while the other threads, with
        // nothing left to reclaim, create segments.
        let kind = kind_of_bin(bin);
        // SAFETY: the heap is ours.
        if unsafe { has_free_page(heap, kind) } || !unsafe { reclaim_one(heap, Some(kind)) } {
            break;
        }
    }
    // SAFETY: the heap is ours.
    unsafe { fresh_page(heap, bin) }
}

/// The kind of segment whose pages hold blocks of `bin`.
fn kind_of_bin(bin: usize) -> Kind {
    if size_class::class_size(bin) <= SMALL_MAX {
        Kind::Small
    } else {
        Kind::Medium
    }
}

/// Whether one of the heap's segments of `kind` has a page not in use.
unsafe fn has_free_page(heap: &Heap, kind: Kind) -> bool {
    let seg = heap.segments[kind_index(kind)].head;
    // SAFETY: segments on our lists are active and owned by this heap; those with free pages
    // come first, so the head answers for all.
    !seg.is_null() && unsafe { Segment::find_free_page(seg) }.is_some()
}

/// Moves a page with no free block to the full list, where the slow path does not look; the
/// next remote free notifies the heap through `delayed_free`.
unsafe fn move_to_full(heap: &mut Heap, page: *mut Page) {
    // SAFETY: the page is ours and on its bin queue.
    unsafe {
        remove_from_bin(heap, page);
        (*page).set_full(true);
        queue_push_back(&mut heap.full, page);
        remote::set_delayed_state(&*page, remote::USE_DELAYED, false);
        // A remote free that raced with the state change left its block on the page's list.
        if remote::has_thread_free(&*page) {
            unfull(heap, page);
        }
    }
}

/// Moves a page from the full list back to its bin queue.
unsafe fn unfull(heap: &mut Heap, page: *mut Page) {
    // SAFETY: the page is ours and on the full list.
    unsafe {
        queue_remove(&mut heap.full, page);
        (*page).set_full(false);
        remote::set_delayed_state(&*page, remote::NORMAL, false);
        let bin = (*page).bin as usize;
        queue_push_back(&mut heap.queues[bin], page);
        mark_only_page(&heap.queues[bin]);
        if heap.queues[bin].first == page {
            set_direct(heap, bin, page);
        }
    }
}

/// Takes a page not in use from the heap's segments (or a new segment) and sets it up for `bin`.
unsafe fn fresh_page(heap: &mut Heap, bin: usize) -> *mut Page {
    let class = size_class::class_size(bin);
    let kind = kind_of_bin(bin);
    let k = kind_index(kind);
    let mut seg = heap.segments[k].head;
    let mut index = if seg.is_null() {
        None
    } else {
        // SAFETY: segments on our lists are active and owned by this heap.
        unsafe { Segment::find_free_page(seg) }
    };
    if index.is_none() {
        seg = Segment::create(heap, kind);
        if seg.is_null() {
            return ptr::null_mut();
        }
        heap.owned_segments += 1;
        // SAFETY: the new segment is ours and on no list.
        unsafe {
            seglist_push_front(&mut heap.segments[k], seg);
            index = Segment::find_free_page(seg);
        }
    }
    let Some(index) = index else {
        return ptr::null_mut();
    };
    // SAFETY: `seg` is ours and page `index` is not in use.
    unsafe {
        let (start, bytes, zeroed) = Segment::take_page(seg, index);
        let page = Segment::page(seg, index);
        (*page).init(heap, bin as u8, class, start, bytes, zeroed);
        if Segment::find_free_page(seg).is_none() {
            // Keep segments with free pages at the head of the list.
            seglist_remove(&mut heap.segments[k], seg);
            seglist_push_back(&mut heap.segments[k], seg);
        }
        queue_push_front(&mut heap.queues[bin], page);
        mark_only_page(&heap.queues[bin]);
        set_direct(heap, bin, page);
        page
    }
}

// ---------------------------------------------------------------------------------------------
// Frees by the owner that need more than a list push.

/// Called by the fast free path when the page of `block`, just freed, became empty or was on
/// the full list. `extern "C"` so that the call does not unwind and the fast path can tail-call
/// it (see `alloc.rs`); it takes the block rather than the page so that the fast path never
/// computes the page's address as a value, and first, so that the block stays in the register
/// it came in (see `alloc::free_in_segment`).
///
/// # Safety
/// `seg` must be the small or medium segment holding `block`, owned by `heap`, the calling
/// thread's heap.
#[cold]
#[inline(never)]
pub unsafe extern "C" fn local_free_slow(block: *mut u8, seg: *mut Segment, heap: *mut Heap) {
    // SAFETY: forwarded from the caller: the block's page is in use and the heap's.
    unsafe { move_freed_page(heap, Segment::page_of_in_chunk(seg, block)) };
    // The free is complete and the heap consistent: a program whose last act is freeing gets
    // a purger from here.
    purge::maybe_start();
}

/// Moves a page that a free emptied or took off the full list.
///
/// # Safety
/// As `local_free_slow`.
unsafe fn move_freed_page(heap: *mut Heap, page: *mut Page) {
    // SAFETY: forwarded from the caller.
    unsafe {
        let heap = &mut *heap;
        if (*page).is_full {
            unfull(heap, page);
        }
        if (*page).used == 0 {
            page_became_empty(heap, page, false);
            publish_if_behind(heap);
        }
    }
}

/// Frees a block of one of this heap's pages (from the delayed list or during abandonment).
unsafe fn free_owned_block(heap: &mut Heap, block: *mut Block) {
    // SAFETY: the block is a live block of a page this heap owns.
    unsafe {
        let seg = Segment::of(block.cast());
        let page = Segment::page_of(seg, block.cast());
        (*block).next = (*page).local_free;
        (*page).local_free = block;
        // Another thread freed it, and counted it.
        (*page).forget_counted_frees(1);
        move_freed_page(heap, page);
    }
}

/// Returns an empty page to its segment, unless `force` is not set and the page is one the
/// fast free keeps (`keep_if_emptied`: its bin's only page, kept to avoid churning a page for
/// a program that allocates and frees one block in a loop).
unsafe fn page_became_empty(heap: &mut Heap, page: *mut Page, force: bool) {
    // SAFETY: the page is ours, in use, on its bin queue, with no live block.
    unsafe {
        (*page).count_into(&heap.counters);
        if !force && (*page).keep_if_emptied {
            return;
        }
        remove_from_bin(heap, page);
        // Page metadata lives in its segment's header, so masking finds the segment.
        release_page(heap, Segment::of(page.cast()), page);
    }
}

unsafe fn release_page(heap: &mut Heap, seg: *mut Segment, page: *mut Page) {
    // SAFETY: the page is ours, off every queue, with no live block.
    unsafe {
        let k = kind_index((*seg).kind);
        let index = page_index(seg, page);
        if Segment::free_page(seg, index) {
            seglist_remove(&mut heap.segments[k], seg);
            heap.owned_segments -= 1;
            Segment::release(seg);
        } else if heap.segments[k].head != seg {
            seglist_remove(&mut heap.segments[k], seg);
            seglist_push_front(&mut heap.segments[k], seg);
        }
    }
}

/// Frees the blocks other threads handed over for this heap's full pages.
unsafe fn process_delayed(heap: &mut Heap) {
    let mut block = remote::take_delayed(heap);
    while !block.is_null() {
        // SAFETY: blocks on the delayed list are live blocks of this heap's pages.
        unsafe {
            let next = (*block).next;
            free_owned_block(heap, block);
            block = next;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Abandon and reclaim.

/// Takes one abandoned segment of `kind` (any kind when `None`) into this heap. Returns false
/// when there was none.
unsafe fn reclaim_one(heap: &mut Heap, kind: Option<Kind>) -> bool {
    let seg = Segment::take_abandoned(kind);
    if seg.is_null() {
        return false;
    }
    // SAFETY: the segment came off the abandoned list, so nobody else owns it.
    unsafe { adopt(heap, seg, false) };
    true
}

/// Makes `seg`, just taken off the abandoned list, this heap's: collects every page, frees the
/// empty ones that the heap has no use for (and the segment, when all are) and queues the rest.
/// `on_free`: the heap reclaims it because it freed a block there, not because it needs pages,
/// so it keeps none of the segment's pages once empty (see `Page::keep_if_emptied`).
unsafe fn adopt(heap: &mut Heap, seg: *mut Segment, on_free: bool) {
    // SAFETY: the caller took the segment off the abandoned list, so nobody else owns it.
    unsafe {
        (*seg).owner.store(heap, Ordering::Release);
        let k = kind_index((*seg).kind);
        seglist_push_front(&mut heap.segments[k], seg);
        heap.owned_segments += 1;
        for i in 0..(*seg).page_count as usize {
            let page = Segment::page(seg, i);
            if !(*page).in_use() {
                continue;
            }
            (*page).heap.store(heap, Ordering::Release);
            remote::set_delayed_state(&*page, remote::NORMAL, true);
            (*page).set_full(false);
            (*page).reclaimed_on_free = on_free;
            (*page).next = ptr::null_mut();
            (*page).prev = ptr::null_mut();
            (*page).collect();
            let bin = (*page).bin as usize;
            // An empty page is kept for its bin when the heap has none there yet: the next
            // thread of a program that starts threads over and over then uses the pages of its
            // predecessor for the same sizes, and their resident memory stays what one thread
            // needs, instead of the union of what every bin ever carved in every page. Not
            // for a segment reclaimed on free: the heap has shown no need for its bins.
            if (*page).used == 0 && (on_free || !heap.queues[bin].first.is_null()) {
                if Segment::free_page(seg, i) {
                    seglist_remove(&mut heap.segments[k], seg);
                    heap.owned_segments -= 1;
                    Segment::release(seg);
                    return;
                }
                continue;
            }
            if (*page).free.is_null() {
                (*page).set_full(true);
                queue_push_back(&mut heap.full, page);
                remote::set_delayed_state(&*page, remote::USE_DELAYED, false);
            } else {
                queue_push_back(&mut heap.queues[bin], page);
                mark_only_page(&heap.queues[bin]);
                if heap.queues[bin].first == page {
                    set_direct(heap, bin, page);
                }
            }
        }
        if Segment::find_free_page(seg).is_none() {
            seglist_remove(&mut heap.segments[k], seg);
            seglist_push_back(&mut heap.segments[k], seg);
        }
    }
}

/// Calls `f` on every page of the heap (bin queues and full list). `f` may unlink the page.
unsafe fn for_each_page(heap: &mut Heap, mut f: impl FnMut(&mut Heap, *mut Page)) {
    for bin in 0..BIN_COUNT {
        let mut page = heap.queues[bin].first;
        while !page.is_null() {
            // SAFETY: pages on our queues are valid; `next` is read before `f` can unlink.
            let next = unsafe { (*page).next };
            f(heap, page);
            page = next;
        }
    }
    let mut page = heap.full.first;
    while !page.is_null() {
        // SAFETY: as above.
        let next = unsafe { (*page).next };
        f(heap, page);
        page = next;
    }
}

/// Frees a block of another heap's page from this heap's thread, held back in the chain of the
/// page's size class (see `remote::PendingChain`). A block of an abandoned segment makes this
/// heap reclaim the segment first, within a limit (see `reclaim_on_free`), and is then freed as
/// the heap's own. The free is counted here, or with its chain when the chain goes.
///
/// # Safety
/// `heap` must be the calling thread's own heap; `block` a live block of `page`, which must be
/// in use and not owned by `heap`.
pub unsafe fn free_remote_held(heap: &mut Heap, page: *const Page, block: *mut Block) {
    // SAFETY: forwarded from the caller: the block lies in a live small or medium segment.
    if unsafe { reclaim_on_free(heap, Segment::of(block.cast())) } {
        // SAFETY: the segment, and so the block's page, is this heap's now.
        unsafe {
            count_remote_frees(heap, 1, (*page).block_size);
            free_owned_block(heap, block);
        }
        publish_if_behind(heap);
        return;
    }
    // SAFETY: forwarded from the caller.
    unsafe { hold_remote(heap, page, block) };
}

/// `free_remote_held` for a block whose segment has a live owner (nothing to reclaim): the
/// block joins its class's chain, and the chain it replaces, if any, goes to its owner and is
/// counted. Called by C's `free` and Rust's `dealloc` for a block of another thread; adding to
/// the chain is inline, the rest (`start_chain`) out of line, so that the caller needs no stack
/// frame for the usual case.
///
/// # Safety
/// As `free_remote_held`.
#[inline(always)]
pub unsafe fn hold_remote(heap: &mut Heap, page: *const Page, block: *mut Block) {
    // SAFETY: forwarded from the caller: the page is in use.
    let bin = unsafe { (*page).bin } as usize;
    if let Some(chain) = heap.pending_remote.get_mut(bin) {
        // SAFETY: forwarded from the caller; the chain is this thread's own.
        if unsafe { remote::try_append(chain, page, block) } {
            return;
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { start_chain(block, page, heap) }
}

/// `hold_remote` when the block cannot join its class's chain: the chain goes to its owner and
/// the block starts a new one. `extern "C"` so that the call cannot unwind and is a tail call.
///
/// # Safety
/// As `free_remote_held`.
#[cold]
#[inline(never)]
unsafe extern "C" fn start_chain(block: *mut Block, page: *const Page, heap: *mut Heap) {
    // SAFETY: forwarded from the caller: the heap is the calling thread's and the page in use.
    let (heap, page) = unsafe { (&mut *heap, &*page) };
    let bin = page.bin as usize;
    match heap.pending_remote.get_mut(bin) {
        Some(chain) => {
            // SAFETY: forwarded from the caller; the chain is this thread's own. (The caller
            // found that the block cannot join it.)
            let (blocks, bytes) = unsafe { remote::restart_chain(chain, page, block) };
            heap.pending_bins |= 1 << bin;
            if blocks != 0 {
                count_remote_frees(heap, blocks, bytes);
                publish_if_behind(heap);
            }
        }
        None => {
            count_remote_frees(heap, 1, page.block_size);
            // SAFETY: forwarded from the caller.
            unsafe { remote::free_remote(page, block) };
            publish_if_behind(heap);
        }
    }
}

/// Counts frees this heap's thread made into other heaps' pages: `blocks` blocks of `bytes`
/// in all. Per chain rather than per block (a consumer of another thread's blocks spent a
/// tenth of its free in the three counters and the publish test); a thread's own figures stay
/// exact because `count_pages` hands its chains over first.
fn count_remote_frees(heap: &mut Heap, blocks: u32, bytes: usize) {
    let c = &heap.counters;
    stats::bump(&c.free_count, blocks as u64);
    stats::bump(&c.freed_requested_bytes, bytes as u64);
    stats::bump(&c.freed_bytes, bytes as u64);
}

/// Reclaims `seg` into `heap` if it is abandoned and the heap has not reclaimed too many
/// segments this way. Returns whether `seg` is the heap's now.
///
/// A thread that frees the blocks of an exited thread (a server whose connections outlive the
/// thread that accepted them) would otherwise push each one onto an atomic list that nobody
/// reads until some heap runs out of pages, while it carves fresh pages for its own
/// allocations: the freed memory sits unused and the program's footprint grows by the exited
/// thread's segments. Reclaimed, the frees are local and the freed blocks are reused at once.
/// The limit (reclaimed on free at most as many segments as the heap made itself) keeps a
/// thread that only frees from taking in any: it would keep an empty page in each size class
/// it does not allocate from (the fast free path keeps a bin's only page), pinning the
/// segment, while other threads' allocations missed it (larson's replacement threads, which
/// start by freeing their predecessor's blocks: peak RSS 34-37 MiB when they reclaimed, 27-30
/// when not).
///
/// # Safety
/// `heap` must be the calling thread's own heap; `seg` a live small or medium segment.
unsafe fn reclaim_on_free(heap: &mut Heap, seg: *mut Segment) -> bool {
    // SAFETY: forwarded from the caller: the segment's header is mapped.
    if !unsafe { (*seg).owner.load(Ordering::Relaxed) }.is_null()
        || heap.free_reclaims * 2 >= heap.owned_segments
        || !Segment::take_abandoned_exact(seg)
    {
        return false;
    }
    // SAFETY: the segment came off the abandoned list, so nobody else owns it. The block being
    // freed keeps its page in use, so adopting cannot release the segment under it.
    unsafe { adopt(heap, seg, true) };
    heap.free_reclaims += 1;
    true
}

/// Hands every chain of blocks this heap's thread held back to the pages' owners.
fn flush_pending_remote(heap: &mut Heap) {
    let mut bins = core::mem::take(&mut heap.pending_bins);
    while bins != 0 {
        let bin = bins.trailing_zeros() as usize;
        bins &= bins - 1;
        // SAFETY: the heap is the calling thread's own, and so are its chains.
        let (blocks, bytes) = unsafe { remote::flush_pending(&mut heap.pending_remote[bin]) };
        count_remote_frees(heap, blocks, bytes);
    }
}

/// Frees what can be freed and hands the rest to the abandoned list. The heap is empty after.
unsafe fn abandon(heap: &mut Heap) {
    // SAFETY: the heap is the calling thread's and about to die; every page listed is ours.
    unsafe {
        // Blocks held back for other heaps go now (some may be of this heap's own pages, if it
        // reclaimed their segment since: they are collected below).
        flush_pending_remote(heap);
        // No remote free may notify this heap from now on.
        for_each_page(heap, |_, page| {
            remote::set_delayed_state(&*page, remote::NEVER_DELAYED, true)
        });
        process_delayed(heap);
        for_each_page(heap, |heap, page| {
            // Counted before the page is left to others (`counters` retire with the heap).
            (*page).count_into(&heap.counters);
            (*page).collect();
            if (*page).used == 0 {
                page_became_empty(heap, page, true);
            }
        });
        for k in 0..2 {
            let mut seg = heap.segments[k].head;
            while !seg.is_null() {
                let next = (*seg).next;
                for i in 0..(*seg).page_count as usize {
                    let page = Segment::page(seg, i);
                    if (*page).in_use() {
                        (*page).heap.store(ptr::null_mut(), Ordering::Release);
                        (*page).set_full(false);
                    }
                }
                (*seg).next = ptr::null_mut();
                (*seg).prev = ptr::null_mut();
                (*seg).owner.store(ptr::null_mut(), Ordering::Release);
                Segment::abandon(seg);
                seg = next;
            }
            heap.segments[k] = SegmentList::EMPTY;
        }
        heap.owned_segments = 0;
        heap.free_reclaims = 0;
        heap.queues = [PageQueue::EMPTY; BIN_COUNT];
        heap.full = PageQueue::EMPTY;
        heap.direct = [empty_page_ptr(); DIRECT_SLOTS];
    }
}

/// Frees every empty page of this heap now, reclaims abandoned segments, and (with `force`)
/// lets the purger's work happen at once. Behind `larder::collect`.
pub fn collect(force: bool) {
    let heap = current();
    // SAFETY: the current heap is the calling thread's own.
    unsafe {
        if (*heap).is_real {
            let heap = &mut *heap;
            flush_pending_remote(heap);
            process_delayed(heap);
            while force && reclaim_one(heap, None) {}
            for_each_page(heap, |heap, page| {
                (*page).collect();
                if (*page).is_full && !(*page).free.is_null() {
                    unfull(heap, page);
                }
                if (*page).used == 0 {
                    page_became_empty(heap, page, force);
                }
            });
            slow_path_tail(heap);
        }
    }
    let cutoff = if force {
        u64::MAX
    } else {
        os::now_ms().saturating_sub(purge::purge_delay_ms())
    };
    purge::purge_expired(cutoff, force);
}

// ---------------------------------------------------------------------------------------------
// Heap life cycle: the pool of heap structs, the thread-exit key, fork handlers.

struct HeapList {
    live: *mut Heap,
    live_count: usize,
    /// Live heaps whose thread exists (in a `fork` child, only the forking thread's: the other
    /// heaps' threads were not copied). At zero the purger thread ends.
    running_threads: usize,
    free: *mut Heap,
    /// The part of the last chunk of heap structs not handed out yet: `[carve_next, carve_end)`.
    /// Structs are carved one at a time, so a process with one thread touches one struct's
    /// pages of the chunk, not all sixteen (page faults at start-up).
    carve_next: usize,
    carve_end: usize,
}
// SAFETY: only touched under its lock.
unsafe impl Send for HeapList {}
static HEAPS: Lock<HeapList> = Lock::new(HeapList {
    live: ptr::null_mut(),
    live_count: 0,
    running_threads: 0,
    free: ptr::null_mut(),
    carve_next: 0,
    carve_end: 0,
});

const INIT_NONE: u8 = 0;
const INIT_RUNNING: u8 = 1;
const INIT_DONE: u8 = 2;
static GLOBAL_INIT: AtomicU8 = AtomicU8::new(INIT_NONE);
static mut THREAD_KEY: libc::pthread_key_t = 0;

/// Sets up the process-wide state once; see `raw::init`.
pub fn init() -> bool {
    global_init()
}

fn global_init() -> bool {
    loop {
        match GLOBAL_INIT.compare_exchange(
            INIT_NONE,
            INIT_RUNNING,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => break,
            Err(INIT_DONE) => return true,
            Err(_) => core::hint::spin_loop(),
        }
    }
    if !crate::segment_map::ensure() {
        GLOBAL_INIT.store(INIT_NONE, Ordering::Release);
        return false;
    }
    freed::init();
    // SAFETY: THREAD_KEY is written once here, before INIT_DONE publishes it; pthread_key_create
    // does not allocate.
    unsafe {
        libc::pthread_key_create(&raw mut THREAD_KEY, Some(on_thread_exit));
    }
    GLOBAL_INIT.store(INIT_DONE, Ordering::Release);
    // Registered after INIT_DONE: pthread_atfork may allocate, which re-enters larder.
    // SAFETY: the handlers are plain functions that only take and release larder's locks.
    unsafe {
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
    }
    true
}

/// Gives the calling thread its own heap. Returns null if no memory can be had.
#[cold]
fn init_thread_heap() -> *mut Heap {
    if !global_init() {
        return ptr::null_mut();
    }
    let heap = take_heap_struct();
    if heap.is_null() {
        return ptr::null_mut();
    }
    current_heap::set(heap);
    // SAFETY: THREAD_KEY was created by `global_init`; setting a low-numbered key does not
    // allocate.
    unsafe {
        libc::pthread_setspecific(THREAD_KEY, heap.cast());
    }
    heap
}

/// A fresh heap struct, registered as live.
fn take_heap_struct() -> *mut Heap {
    let mut heaps = HEAPS.lock();
    let size = core::mem::size_of::<Heap>();
    let heap = if !heaps.free.is_null() {
        let heap = heaps.free;
        // SAFETY: heaps on the free list are valid structs nobody uses.
        heaps.free = unsafe { (*heap).next_heap };
        heap
    } else {
        if heaps.carve_end - heaps.carve_next < size {
            let chunk = 64 * 1024;
            let Some(mem) = os::map_aligned(chunk, os::page_size()) else {
                return ptr::null_mut();
            };
            stats::add_reserved(chunk as isize);
            stats::add_committed(chunk as isize);
            heaps.carve_next = mem.as_ptr() as usize;
            heaps.carve_end = heaps.carve_next + chunk;
        }
        let heap = heaps.carve_next as *mut Heap;
        heaps.carve_next += size;
        heap
    };
    // SAFETY: `heap` is unused memory for one heap struct, aligned (a page-aligned chunk carved
    // in steps of the struct's size, a multiple of its alignment).
    unsafe {
        ptr::write(heap, Heap::new(true));
        (*heap).freed_key = freed::key();
        (*heap).next_heap = heaps.live;
        if !heaps.live.is_null() {
            (*heaps.live).prev_heap = heap;
        }
    }
    heaps.live = heap;
    heaps.live_count += 1;
    heaps.running_threads += 1;
    heap
}

extern "C" fn on_thread_exit(value: *mut libc::c_void) {
    let heap = value.cast::<Heap>();
    if heap.is_null() {
        return;
    }
    // Later destructors of this thread may still allocate: they get a new heap (and this key
    // is set again, so that heap is abandoned in a later destructor round).
    current_heap::set(&EMPTY_HEAP.0 as *const Heap as *mut Heap);
    // SAFETY: the key's value is this thread's heap, no longer reachable through `current()`.
    unsafe {
        abandon(&mut *heap);
        let mut heaps = HEAPS.lock();
        (*heap).counters.retire();
        let (prev, next) = ((*heap).prev_heap, (*heap).next_heap);
        if prev.is_null() {
            heaps.live = next;
        } else {
            (*prev).next_heap = next;
        }
        if !next.is_null() {
            (*next).prev_heap = prev;
        }
        heaps.live_count -= 1;
        heaps.running_threads = heaps.running_threads.saturating_sub(1);
        let last = heaps.running_threads == 0;
        (*heap).is_real = false;
        (*heap).next_heap = heaps.free;
        heaps.free = heap;
        drop(heaps);
        if last {
            // The last thread that allocated is ending. If it is the process's last thread
            // too (a main thread that called pthread_exit), the process ends when it does,
            // unless the purger thread lives on: it blocks every signal, so not even SIGTERM
            // would end the process then. A later allocation starts a new purger if needed.
            purge::stop();
        }
    }
}

/// Sums the counters of every heap, live or exited. The calling thread's heap counts its pages
/// first, so its own figures are exact; other live heaps' lag by what their threads did on pages
/// not refilled, emptied or abandoned since (see `Page::count_into`).
pub fn totals() -> (stats::Totals, usize) {
    with_own_heap(count_pages);
    let mut sum = stats::Totals::default();
    let heaps = HEAPS.lock();
    let mut h = heaps.live;
    while !h.is_null() {
        // SAFETY: live heaps stay valid while the HEAPS lock is held.
        unsafe {
            (*h).counters.add_to(&mut sum);
            h = (*h).next_heap;
        }
    }
    stats::RETIRED.add_to(&mut sum);
    (sum, heaps.live_count)
}

/// Brings the heap's counters up to date with its pages.
fn count_pages(heap: &mut Heap) {
    // Held-back remote frees are counted when their chains go.
    flush_pending_remote(heap);
    // SAFETY: the heap is the calling thread's own, and so are its pages.
    unsafe { for_each_page(heap, |heap, page| (*page).count_into(&heap.counters)) };
}

extern "C" fn fork_prepare() {
    HEAPS.lock_for_fork();
    crate::segment::lock_all_for_fork();
    crate::cache::lock_for_fork();
}

extern "C" fn fork_parent() {
    // SAFETY: this thread took these locks in `fork_prepare`.
    unsafe {
        crate::cache::unlock_after_fork();
        crate::segment::unlock_all_after_fork();
        HEAPS.unlock_after_fork();
    }
}

extern "C" fn fork_child() {
    // SAFETY: the child's only thread is the copy of the one that took the locks.
    unsafe {
        crate::cache::unlock_after_fork();
        crate::segment::unlock_all_after_fork();
        HEAPS.unlock_after_fork();
    }
    // SAFETY: the current heap pointer is always valid to read.
    let own_heap = unsafe { (*current()).is_real };
    HEAPS.lock().running_threads = usize::from(own_heap);
    purge::after_fork_in_child();
}
