//! The fast paths: allocate, free, reallocate, zeroed and aligned allocation, usable size.
//!
//! Small allocation: the thread's heap, its direct table, a pop, a count. Free by the owning
//! thread: a mask to the segment, a shift to the page, a push, a count. Everything else
//! (the first allocation of a thread, an empty list, frees from other threads, large blocks)
//! branches once to an out-of-line function.
//!
//! Alignment: a request aligned to `a <= MEDIUM_MAX` is served from the class of its size
//! rounded up to `a`; that class is a multiple of `a` and every page start is aligned to its
//! largest block, so the block is aligned and wastes less than `a`. Larger alignments go to a
//! single-block segment with the block placed at an aligned offset.

use core::ptr;

use crate::heap::{self, Heap};
use crate::page::Block;
use crate::report::BadFree;
use crate::segment::{self, Kind, Segment, SEGMENT_SIZE, STATE_ACTIVE};
use crate::size_class::{self, DIRECT_MAX, MEDIUM_MAX};
use crate::stats::{self, RETIRED};
use crate::{cache, freed, os, purge, remote, report, segment_map};

/// Alignment every block has without asking.
pub const MIN_ALIGN: usize = 8;

/// Allocates `size` bytes aligned to `align` (a power of two). Null when memory cannot be had.
#[inline(always)]
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    if align <= MIN_ALIGN && size <= DIRECT_MAX {
        // SAFETY: the current heap is this thread's; size is within the direct table.
        unsafe { alloc_small(heap::current(), size) }
    } else {
        alloc_generic(size, align)
    }
}

/// The small-object fast path.
///
/// # Safety
/// `heap` must be the calling thread's current heap and `size <= DIRECT_MAX`.
#[inline(always)]
unsafe fn alloc_small(heap: *mut Heap, size: usize) -> *mut u8 {
    // SAFETY: the direct table has a slot for every size up to DIRECT_MAX, each pointing to a
    // page of this heap or to the empty page; a non-null `free` is an owned list of blocks.
    unsafe {
        let page = *(*heap).direct.get_unchecked((size + 7) >> 3);
        if (*page).free.is_null() {
            return heap::alloc_slow(heap, size);
        }
        heap::pop_block(page)
    }
}

/// The small-allocation fast path alone: a block of `size <= DIRECT_MAX` bytes (8-aligned), or
/// null when the slow path is needed. C's `malloc` calls its own out-of-line function then, so
/// that its fast path makes no call and needs no stack frame.
#[inline(always)]
pub fn alloc_small_fast(size: usize) -> *mut u8 {
    debug_assert!(size <= DIRECT_MAX);
    let heap = heap::current();
    // SAFETY: as in `alloc_small`; a page with a non-empty free list is the current heap's.
    unsafe {
        let page = *(*heap).direct.get_unchecked((size + 7) >> 3);
        if (*page).free.is_null() {
            return ptr::null_mut();
        }
        heap::pop_block(page)
    }
}

#[inline(never)]
fn alloc_generic(size: usize, align: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        return ptr::null_mut();
    }
    let rounded = if align > MIN_ALIGN {
        // A zero-size request still needs an aligned block of its own.
        match os::align_up(size.max(1), align) {
            Some(r) => r,
            None => return ptr::null_mut(),
        }
    } else {
        size
    };
    if rounded <= MEDIUM_MAX && align <= MEDIUM_MAX {
        let heap = heap::current();
        if rounded <= DIRECT_MAX {
            // SAFETY: as in `alloc`.
            return unsafe { alloc_small(heap, rounded) };
        }
        // SAFETY: the queue path serves any size up to MEDIUM_MAX for the current heap.
        return unsafe { heap::alloc_from_queue(heap, rounded) };
    }
    match alloc_large(size, align) {
        Some((block, _)) => block,
        None => ptr::null_mut(),
    }
}

/// A block in its own segment; returns it and whether it reads as zero.
#[cold]
fn alloc_large(size: usize, align: usize) -> Option<(*mut u8, bool)> {
    let usable = if size <= cache::MAX_CACHED_SPAN {
        size_class::round_large(size)?
    } else {
        size
    };
    let (block, zeroed) = segment::alloc_single(usable, align)?;
    // SAFETY: the block was just made, so its segment header and page are valid.
    let block_size = unsafe { (*Segment::page(segment_of_block(block), 0)).block_size };
    count_alloc(size, block_size);
    heap::publish_live_now();
    Some((block, zeroed))
}

fn count_alloc(size: usize, block_size: usize) {
    let heap = heap::current();
    // SAFETY: the current heap is valid; only a real heap's counters are owner-written.
    unsafe {
        if (*heap).is_real() {
            let c = &(*heap).counters;
            stats::bump(&c.alloc_count, 1);
            stats::bump(&c.requested_bytes, size as u64);
            stats::bump(&c.alloc_bytes, block_size as u64);
            return;
        }
    }
    use core::sync::atomic::Ordering::Relaxed;
    RETIRED.alloc_count.fetch_add(1, Relaxed);
    RETIRED.requested_bytes.fetch_add(size as u64, Relaxed);
    RETIRED.alloc_bytes.fetch_add(block_size as u64, Relaxed);
    stats::flush_live(block_size as isize);
}

fn count_free(requested: u64, block_size: u64) {
    let heap = heap::current();
    // SAFETY: as in `count_alloc`.
    unsafe {
        if (*heap).is_real() {
            let c = &(*heap).counters;
            stats::bump(&c.free_count, 1);
            stats::bump(&c.freed_requested_bytes, requested);
            stats::bump(&c.freed_bytes, block_size);
            heap::publish_frees_if_behind();
            return;
        }
    }
    use core::sync::atomic::Ordering::Relaxed;
    RETIRED.free_count.fetch_add(1, Relaxed);
    RETIRED.freed_requested_bytes.fetch_add(requested, Relaxed);
    RETIRED.freed_bytes.fetch_add(block_size, Relaxed);
    stats::flush_live(-(block_size as isize));
}

/// The segment of a block returned by larder (handles over-aligned blocks).
#[inline]
fn segment_of_block(block: *const u8) -> *mut Segment {
    if block as usize & (SEGMENT_SIZE - 1) == 0 {
        // Only an over-aligned block starts a chunk: its header is one chunk before.
        (block as usize - SEGMENT_SIZE) as *mut Segment
    } else {
        Segment::of(block)
    }
}

/// Allocates zeroed memory, without touching fresh pages that are zero already.
pub fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    let rounded = match os::align_up(size, align.max(MIN_ALIGN)) {
        Some(r) => r,
        None => return ptr::null_mut(),
    };
    if rounded > MEDIUM_MAX || align > MEDIUM_MAX {
        if !align.is_power_of_two() {
            return ptr::null_mut();
        }
        return match alloc_large(size, align) {
            Some((block, true)) => block,
            Some((block, false)) => {
                // SAFETY: the block has at least `size` writable bytes.
                unsafe { block.write_bytes(0, size) };
                block
            }
            None => ptr::null_mut(),
        };
    }
    let block = alloc(size, align);
    if block.is_null() {
        return block;
    }
    // SAFETY: a small or medium block of this thread's page: the page flag tells whether the
    // list it came from held only fresh blocks (zero but for the link word).
    unsafe {
        let page = Segment::page_of(Segment::of(block), block);
        if (*page).free_is_zero {
            block.cast::<*mut Block>().write(ptr::null_mut());
        } else {
            block.write_bytes(0, size);
        }
    }
    block
}

/// Frees a block whose size and alignment the caller knows (Rust's `dealloc`).
///
/// # Safety
/// `block` must be a live block from larder allocated with this alignment.
#[inline(always)]
pub unsafe fn free_sized(block: *mut u8, size: usize, align: usize) {
    if align > SEGMENT_SIZE / 2 {
        // SAFETY: forwarded.
        unsafe { free_generic(block, size as u64) };
        return;
    }
    // SAFETY: forwarded; a block aligned at most to half a segment lies in its segment's first
    // chunk, so masking finds its header.
    unsafe { free_in_segment::<false>(Segment::of(block), block, size as u64) }
}

/// Frees a block given only its address (C's `free`): a pointer larder does not own is
/// reported once and ignored.
///
/// # Safety
/// `block` must be null, a live block from larder, or memory larder does not own.
#[inline(always)]
pub unsafe fn free(block: *mut u8) {
    let (base, entry) = segment_map::chunk_wrapping(block as usize);
    if entry != segment_map::SEGMENT_START {
        if !block.is_null() {
            // SAFETY: forwarded.
            unsafe { free_generic(block, u64::MAX) };
        }
        return;
    }
    // SAFETY: the map says the chunk (or the chunk `block` aliases, past the map's reach)
    // starts a segment of larder's; `free_in_segment` finds the page from the offset inside
    // the chunk and, with CHECKED, refuses a pointer that starts no block of it.
    unsafe { free_in_segment::<true>(base as *mut Segment, block, u64::MAX) }
}

/// The owner's fast free, or the generic path. `requested` is the size asked for, or
/// `u64::MAX` when unknown. With `CHECKED` (C's `free`, whose pointers nobody vouches for), an
/// interior pointer is refused even on the owner's path, at the cost of one multiply.
///
/// The cold calls take the block first and its segment rather than its page: the block stays in
/// the register it came in, and the page's address is computed only where it is used.
#[inline(always)]
unsafe fn free_in_segment<const CHECKED: bool>(seg: *mut Segment, block: *mut u8, requested: u64) {
    let heap = heap::current();
    // SAFETY: `seg` is mapped (a live block lies in it, or the map says it is larder's). If
    // this thread's heap owns it, the page and its lists are ours to change, and the heap is
    // real, so its copy of the freed mark is the process's.
    unsafe {
        if (*seg).owner.load(core::sync::atomic::Ordering::Relaxed) == heap {
            let page = Segment::page_of_in_chunk(seg, block);
            if CHECKED && !(*page).is_block_start_unless_full(block) {
                free_misfit_or_full(block, seg);
                return;
            }
            if !freed::mark_unless_marked(block, (*heap).freed_key) {
                refuse_double_free(block, seg);
                return;
            }
            let b = block.cast::<Block>();
            (*b).next = (*page).local_free;
            (*page).local_free = b;
            (*page).used -= 1;
            (*page).local_frees += 1;
            // With CHECKED, a full page's frees took the slow path above.
            let full = !CHECKED && (*page).is_full;
            if (*page).used == 0 || full {
                // An empty page alone in its bin stays (a program that allocates and frees one
                // block in a loop must not churn pages): decided here, without a call, from
                // one flag the queue operations keep rather than both links.
                if full || !(*page).keep_if_emptied {
                    heap::local_free_slow(block, seg, heap);
                }
            }
            return;
        }
        free_other(block, seg, requested);
    }
}

/// A free of a block of a segment this thread's heap does not own. The usual case, a small or
/// medium block of another live heap freed by a thread with a heap of its own, is checked and
/// held back in the freeing heap's chain here, with the segment map, the segment's state, the
/// block test and the freed mark exactly as the generic path checks them, but without its
/// second map lookup, its reclaim test (a segment with an owner is not abandoned), its purger
/// test (nothing becomes dirty) and its per-block counting (chains are counted when they go):
/// about half the instructions. Everything else goes to `free_generic`.
///
/// # Safety
/// As `free_in_segment`: `seg` is the segment the map (C's `free`) or the block's address
/// (Rust's `dealloc`) gives for `block`.
#[cold]
#[inline(never)]
unsafe extern "C" fn free_other(block: *mut u8, seg: *mut Segment, requested: u64) {
    let heap = heap::current();
    // SAFETY: `seg` is mapped (see the caller). A segment with an owner is small or medium
    // (large and huge ones never have one) and stays mapped while a block of it is live; a
    // pointer that only aliases into it from past the map's reach fails the address test and
    // goes to the generic path, which refuses it. The page of a live block is in use, and its
    // geometry is fixed while it is, so reading it from another thread is sound; the freed
    // mark is the block's own second word.
    unsafe {
        let owner = (*seg).owner.load(core::sync::atomic::Ordering::Relaxed);
        if owner.is_null()
            || !(*heap).is_real()
            || block as usize & !(SEGMENT_SIZE - 1) != seg as usize
            || (*seg).state.load(core::sync::atomic::Ordering::Acquire) != STATE_ACTIVE
        {
            free_generic(block, requested);
            return;
        }
        let page = Segment::page_of_in_chunk(seg, block);
        if !(*page).in_use() || !(*page).is_block_start(block) {
            // Reported there (an interior pointer, or a block of a page freed since).
            free_generic(block, requested);
            return;
        }
        if !freed::mark_unless_marked(block, (*heap).freed_key) {
            refuse_double_free(block, seg);
            return;
        }
        heap::hold_remote(&mut *heap, page, block.cast());
    }
}

// The out-of-line functions the fast paths call are `extern "C"`: a panic cannot unwind out of
// them (it aborts), so the compiler knows the call does not unwind and can make it a tail call,
// and the fast path needs no stack frame of its own (two instructions per call of `free`).

/// Frees from another thread, frees of large blocks, and frees of doubtful pointers.
#[cold]
#[inline(never)]
unsafe extern "C" fn free_generic(block: *mut u8, requested: u64) {
    let Some(base) = segment_map::segment_of(block as usize) else {
        refuse_unowned("free", block);
        return;
    };
    let seg = base as *mut Segment;
    // SAFETY: the map says `seg` is a segment of larder's, so its header is mapped.
    unsafe {
        if (*seg).state.load(core::sync::atomic::Ordering::Acquire) != STATE_ACTIVE {
            // A single segment's header stays readable in the span cache (or reads as zero
            // once purged): its block was freed.
            report::bad_free(BadFree::DoubleFree, "free", block as usize, None);
            return;
        }
        let page = Segment::page_of(seg, block);
        if (block as usize) < base + (*seg).first_page_offset || !block_is_valid(&*page, block) {
            report::bad_free(misfit_kind(seg, block), "free", block as usize, None);
            return;
        }
        let block_size = (*page).block_size as u64;
        let requested = if requested == u64::MAX {
            block_size
        } else {
            requested
        };
        match (*seg).kind {
            Kind::Single => {
                count_free(requested, block_size);
                segment::free_single(seg);
            }
            _ if (*seg).owner.load(core::sync::atomic::Ordering::Relaxed) == heap::current() => {
                // Our own segment, reached through the doubtful-pointer path.
                free_in_segment::<true>(seg, block, requested);
            }
            _ => {
                if freed::is_marked(block) {
                    double_free("free", &*page, block);
                    return;
                }
                freed::mark(block);
                // A thread that only frees (a consumer of blocks other threads allocate) gets a
                // heap on its first such free, as a thread that allocates does on its first
                // allocation: its frees are then counted in its own counters rather than in
                // atomics shared by every thread, and held back in chains per page like any
                // heap's (xmalloc-test's releasers spent their time in the shared counters).
                let heap = heap::current_or_new();
                if (*seg)
                    .owner
                    .load(core::sync::atomic::Ordering::Relaxed)
                    .is_null()
                {
                    purge::note_abandoned_free();
                }
                if (*heap).is_real() {
                    heap::free_remote_held(&mut *heap, &*page, block.cast());
                } else {
                    // The allocation counted its block size (see `Page::count_into`).
                    count_free(block_size, block_size);
                    remote::free_remote(&*page, block.cast());
                }
            }
        }
    }
    // Every list is consistent again: a program that frees into the span cache or into the
    // segments of exited threads and then goes idle gets a purger from here.
    purge::maybe_start();
}

/// The owner's free of a pointer that failed the fast bound: a block of a page on the full list
/// is freed (by the unchecked owner's path, which takes the page off the list); a pointer that
/// starts no block, or one past the map's reach that aliases into `seg` (see
/// `segment_map::chunk_wrapping`), is reported.
///
/// # Safety
/// `seg` must be an active small or medium segment of the calling thread's heap holding
/// `block`, or the one `block` aliases.
#[cold]
#[inline(never)]
unsafe extern "C" fn free_misfit_or_full(block: *mut u8, seg: *mut Segment) {
    if segment_map::segment_of(block as usize) != Some(seg as usize) {
        refuse_unowned("free", block);
        return;
    }
    // SAFETY: forwarded from the caller: `block` lies in `seg`, whose pages are this thread's.
    unsafe {
        let page = Segment::page_of(seg, block);
        if (*page).is_full && (*page).is_block_start(block) {
            free_in_segment::<false>(seg, block, u64::MAX);
            return;
        }
        report::bad_free(misfit_kind(seg, block), "free", block as usize, None);
    }
}

/// What a pointer into an active segment that is not a live block's start is: one into the
/// segment's header or into a page not in use points where a block once was and is no more (a
/// large block whose span was freed and became a new segment, a block of a page that emptied):
/// a double free; anything else is an interior or misaligned pointer.
///
/// # Safety
/// `seg` must be an active segment of larder's holding `block`.
#[cold]
unsafe fn misfit_kind(seg: *mut Segment, block: *mut u8) -> BadFree {
    // SAFETY: forwarded from the caller: the header is readable.
    unsafe {
        if (block as usize) < seg as usize + (*seg).first_page_offset
            || !(*Segment::page_of(seg, block)).in_use()
        {
            BadFree::DoubleFree
        } else {
            BadFree::Interior
        }
    }
}

/// Reports a free of a block that carries the freed mark.
///
/// # Safety
/// `seg` must be the active small or medium segment holding `block`.
#[cold]
#[inline(never)]
unsafe extern "C" fn refuse_double_free(block: *mut u8, seg: *mut Segment) {
    // SAFETY: forwarded from the caller.
    double_free(
        "free",
        unsafe { &*Segment::page_of_in_chunk(seg, block) },
        block,
    );
}

#[cold]
#[inline(never)]
fn double_free(what: &str, page: &crate::page::Page, block: *mut u8) {
    let address = block as usize;
    report::bad_free(
        BadFree::DoubleFree,
        what,
        address,
        Some((address, page.block_size)),
    );
}

/// A pointer outside larder's segments given to `free` or `realloc`: a free of memory larder
/// gave back (a double free), of the stack or of a global is reported; anything else (memory
/// of another allocator, or the loader's from before larder was loaded) is left alone with a
/// one-time warning, since freeing it is what a preloaded allocator must put up with.
#[cold]
#[inline(never)]
fn refuse_unowned(what: &str, block: *mut u8) {
    if segment_map::entry(block as usize) == segment_map::RELEASED {
        report::bad_free(BadFree::DoubleFree, what, block as usize, None);
        return;
    }
    let here = 0u8;
    match os::mapping_of(block as usize, &here as *const u8 as usize) {
        os::Mapping::Stack => report::bad_free(BadFree::Stack, what, block as usize, None),
        os::Mapping::Module => report::bad_free(BadFree::Module, what, block as usize, None),
        os::Mapping::Other | os::Mapping::Unmapped => report::foreign_pointer(what, block as usize),
    }
}

/// Whether `block` is the start of a block of an in-use page (not an interior pointer).
fn block_is_valid(page: &crate::page::Page, block: *mut u8) -> bool {
    if !page.in_use() {
        return false;
    }
    if page.bin == u8::MAX {
        return block == page.start;
    }
    page.is_block_start(block)
}

/// The usable size of a live block (0 for null or a pointer larder does not own).
///
/// # Safety
/// `block` must be null, a live block from larder, or memory larder does not own.
pub unsafe fn usable_size(block: *const u8) -> usize {
    let Some(base) = segment_map::segment_of(block as usize) else {
        return 0;
    };
    let seg = base as *mut Segment;
    // SAFETY: the map says `seg` is larder's segment; a live block keeps it active.
    unsafe {
        if (*seg).state.load(core::sync::atomic::Ordering::Acquire) != STATE_ACTIVE {
            return 0;
        }
        let page = &*Segment::page_of(seg, block);
        if !page.in_use() {
            return 0;
        }
        if page.bin == u8::MAX {
            (page.start as usize + page.block_size).saturating_sub(block as usize)
        } else {
            page.block_size
        }
    }
}

/// Whether `ptr` lies in memory larder owns (a segment or a huge block's first chunk).
pub fn owns(ptr: *const u8) -> bool {
    segment_map::segment_of(ptr as usize).is_some()
}

/// Resizes a block, in place when its size class (or its span) has room. On failure returns
/// null and leaves the block as it was.
///
/// # Safety
/// `block` must be null or a live block from larder allocated with `align`.
pub unsafe fn realloc(block: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    if block.is_null() {
        return alloc(new_size, align);
    }
    // SAFETY: forwarded from the caller.
    let usable = unsafe { usable_size(block) };
    if usable == 0 {
        if owns(block) {
            // In larder's memory but not a live block: its segment or page was freed.
            report::bad_free(BadFree::DoubleFree, "realloc", block as usize, None);
        } else {
            refuse_unowned("realloc", block);
        }
        return ptr::null_mut();
    }
    // SAFETY: a block with a usable size is a live-looking block of larder's; small and medium
    // blocks carry the freed mark when free.
    if usable <= MEDIUM_MAX && unsafe { freed::is_marked(block) } {
        report::bad_free(BadFree::DoubleFree, "realloc", block as usize, None);
        return ptr::null_mut();
    }
    // Stay in place when the block fits and would not waste more than half of itself.
    if new_size <= usable && new_size >= usable / 2 && block as usize % align.max(1) == 0 {
        return block;
    }
    // SAFETY: forwarded from the caller.
    if let Some(grown) = unsafe { grow_single(block, new_size) } {
        return grown;
    }
    let fresh = alloc(new_size, align);
    if fresh.is_null() {
        return fresh;
    }
    // SAFETY: both blocks are live and distinct; each has at least the copied length.
    unsafe {
        ptr::copy_nonoverlapping(block, fresh, usable.min(new_size));
        free(block);
    }
    fresh
}

/// Large blocks grow in place into the rest of their span, or into the address space after it
/// (mremap without moving), or else move page by page to a larger span (mremap): never a copy.
unsafe fn grow_single(block: *mut u8, new_size: usize) -> Option<*mut u8> {
    let seg = segment_of_block(block);
    // SAFETY: `block` is a live block of larder's, so its header is valid.
    unsafe {
        if (*seg).kind != Kind::Single || (*seg).aligned_tail {
            return None;
        }
        let page = Segment::page(seg, 0);
        let offset = (*seg).first_page_offset;
        let old_mapped = (*seg).mapped_size;
        let old_size = (*page).block_size;
        if new_size <= old_size {
            return None;
        }
        let usable = if new_size <= cache::MAX_CACHED_SPAN {
            size_class::round_large(new_size)?
        } else {
            new_size
        };
        let want = os::align_up(offset.checked_add(usable)?, os::page_size())?;
        if want > isize::MAX as usize {
            return None;
        }
        let mut seg = seg;
        if want > old_mapped {
            // A block growing past its span is likely to grow again (a buffer appended to in
            // small steps): reserve half as much again as it has, in whole segments, so that
            // the next steps are bookkeeping, not a system call each. Untouched pages cost
            // address space only.
            let roomy = want.max(
                old_mapped
                    .saturating_add(old_mapped / 2)
                    .min(want + (16 << 20)),
            );
            let roomy = os::align_up(roomy, SEGMENT_SIZE).unwrap_or(want);
            let want_reserved = os::align_up(want, SEGMENT_SIZE).unwrap_or(want);
            // Roomy first, then just enough; one attempt when the two are the same.
            let sizes = [roomy, want_reserved];
            let sizes = &sizes[..if roomy == want_reserved { 1 } else { 2 }];
            let base = seg as usize;
            if let Some(&mapped) = sizes.iter().find(|&&size| {
                os::may_grow_in_place(base + old_mapped, base + size)
                    && os::grow_in_place(seg.cast(), old_mapped, size)
            }) {
                stats::add_reserved((mapped - old_mapped) as isize);
                (*seg).mapped_size = mapped;
            } else {
                // The address space behind is taken: move the pages rather than copy them.
                seg = sizes
                    .iter()
                    .find_map(|&size| segment::move_single(seg, size))?;
            }
        }
        if segment::wants_huge_pages(usable) && !(*seg).huge_pages {
            os::advise_huge_pages(seg.cast(), (*seg).mapped_size, true);
            (*seg).huge_pages = true;
        }
        let resident = segment::resident_extent(want, (*seg).mapped_size, (*seg).huge_pages);
        if resident > (*seg).touched {
            stats::add_committed((resident - (*seg).touched) as isize);
            (*seg).touched = resident;
        }
        let page = Segment::page(seg, 0);
        (*page).block_size = usable;
        count_resize(old_size, usable);
        Some(seg.cast::<u8>().add(offset))
    }
}

fn count_resize(old: usize, new: usize) {
    let heap = heap::current();
    // SAFETY: as in `count_alloc`.
    unsafe {
        if (*heap).is_real() {
            let c = &(*heap).counters;
            stats::bump(&c.alloc_bytes, new as u64);
            stats::bump(&c.freed_bytes, old as u64);
            return;
        }
    }
    use core::sync::atomic::Ordering::Relaxed;
    RETIRED.alloc_bytes.fetch_add(new as u64, Relaxed);
    RETIRED.freed_bytes.fetch_add(old as u64, Relaxed);
}
