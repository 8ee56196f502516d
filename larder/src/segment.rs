//! Segments: 4 MiB-aligned spans of memory carved into pages, with all page metadata in a header
//! at the segment's start. Pointer → segment is a mask and segment → page a shift, so `free` and
//! `usable_size` need no lookup table and small blocks need no header.
//!
//! Three kinds:
//! - small: 64 pages of 64 KiB, for blocks up to 8 KiB;
//! - medium: 8 pages of 512 KiB, for blocks up to 64 KiB;
//! - single: one block (large or huge) in a span of whole segments reserved for it, from the
//!   span cache. Only the block's pages are ever touched; the rest of the reservation lets the
//!   block grow in place without a system call (a vector doubling from 128 KiB to 2 MiB does no
//!   mmap or mremap at all).
//!
//! The first page starts after the header, rounded up to the page's largest block size, so that
//! every page start is aligned to any alignment its blocks can be asked for.
//!
//! Small and medium segments belong to one heap (`owner`), or to nobody while abandoned; they
//! are listed in the global registry, which the purger walks to purge free pages. Single
//! segments belong to nobody: any thread frees them directly.

use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use crate::cache::{self, Span};
use crate::heap::Heap;
use crate::page::{purge_state, Page};
use crate::sync::Lock;
use crate::{os, purge, segment_map, stats};

/// log2 of the segment size and alignment.
pub const SEGMENT_SHIFT: u32 = 22;
/// Segment size and alignment: 4 MiB.
pub const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
const SMALL_PAGE_SHIFT: u32 = 16;
const MEDIUM_PAGE_SHIFT: u32 = 19;
/// Page shift of a single-block segment: every offset maps to page 0.
const SINGLE_PAGE_SHIFT: u32 = 63;

// A page's `thread_free` word counts its list's blocks in the bits above `COUNT_SHIFT`, so no
// page may hold more blocks than they count (blocks are at least 16 bytes), and every block
// must lie below the count.
const _: () = assert!((1usize << MEDIUM_PAGE_SHIFT) / 16 < 1 << (64 - crate::remote::COUNT_SHIFT));
const _: () = assert!(crate::segment_map::ADDRESS_LIMIT <= 1 << crate::remote::COUNT_SHIFT);

/// What a segment holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Kind {
    /// 64 KiB pages of blocks up to 8 KiB.
    Small = 0,
    /// 512 KiB pages of blocks up to 64 KiB.
    Medium = 1,
    /// One large or huge block.
    Single = 2,
}

/// `Segment::state`: the segment is in use (values other than these mean larder's memory that
/// holds no segment now, e.g. a cached span).
pub const STATE_ACTIVE: u8 = 0xA5;

/// The header at the start of every segment. The page metadata array follows it in memory,
/// from the next 64-byte line (see `Page` for why its lines are its own).
#[repr(C, align(64))]
pub struct Segment {
    /// `STATE_ACTIVE` while the segment holds pages (checked when freeing foreign pointers).
    pub state: AtomicU8,
    /// What the segment holds.
    pub kind: Kind,
    /// The segment's memory is only partly mapped past an over-aligned block (map entry
    /// `ALIGNED_TAIL` for the chunk after the header's).
    pub aligned_tail: bool,
    /// The segment's memory is advised for transparent huge pages (a big single block).
    pub huge_pages: bool,
    /// log2 of the page size (pointer offset >> page_shift = page index).
    pub page_shift: u32,
    /// Number of pages.
    pub page_count: u32,
    /// Pages in use.
    pub used_pages: u32,
    /// Offset of the first page's first byte from the segment base.
    pub first_page_offset: usize,
    /// Bytes mapped at the segment base.
    pub mapped_size: usize,
    /// Single segments: bytes from the base that may be resident and count as committed (the
    /// block's pages, or a reused span's old dirty prefix if longer). Others: `mapped_size`.
    pub touched: usize,
    /// The owning heap; null while abandoned (and always for single segments).
    pub owner: AtomicPtr<Heap>,
    /// Links in the owner's list of segments of this kind (segments with free pages first).
    pub next: *mut Segment,
    /// See `next`.
    pub prev: *mut Segment,
    /// Links in the global registry.
    reg_next: *mut Segment,
    reg_prev: *mut Segment,
    /// Link in the abandoned list.
    pub abandoned_next: *mut Segment,
    /// When the segment was abandoned (milliseconds, `os::now_ms`).
    abandoned_at: u64,
}

/// All small and medium segments, for the purger and for stats. Holding this lock also keeps
/// every listed segment mapped.
pub static REGISTRY: Lock<Registry> = Lock::new(Registry {
    head: ptr::null_mut(),
    count: 0,
});

/// Head of the registry list.
pub struct Registry {
    head: *mut Segment,
    /// Registered segments.
    pub count: usize,
}

// SAFETY: the registry is only touched under its lock; the segments it lists are shared memory
// whose fields are either immutable while listed or atomic.
unsafe impl Send for Registry {}

impl Registry {
    /// Calls `f` on every registered segment.
    pub fn for_each(&self, mut f: impl FnMut(*mut Segment)) {
        let mut seg = self.head;
        while !seg.is_null() {
            f(seg);
            // SAFETY: listed segments stay mapped while the registry lock is held.
            seg = unsafe { (*seg).reg_next };
        }
    }
}

impl Segment {
    /// The segment containing `ptr` by masking (valid for pointers into small/medium pages and
    /// to the start of single blocks with alignment up to half a segment).
    #[inline]
    pub fn of(ptr: *const u8) -> *mut Segment {
        (ptr as usize & !(SEGMENT_SIZE - 1)) as *mut Segment
    }

    /// The metadata of page `index`.
    ///
    /// # Safety
    /// `seg` must be an active segment and `index < page_count`.
    #[inline]
    pub unsafe fn page(seg: *mut Segment, index: usize) -> *mut Page {
        // SAFETY: the page array follows the header inside the segment's first page.
        unsafe {
            seg.cast::<u8>()
                .add(size_of::<Segment>())
                .cast::<Page>()
                .add(index)
        }
    }

    /// The page holding `ptr`.
    ///
    /// # Safety
    /// `seg` must be the active segment containing `ptr`.
    #[inline]
    pub unsafe fn page_of(seg: *mut Segment, ptr: *const u8) -> *mut Page {
        // SAFETY: caller guarantees `seg` is active; the shift maps offsets into page_count.
        unsafe {
            let index = (ptr as usize - seg as usize) >> (*seg).page_shift;
            Segment::page(seg, index)
        }
    }

    /// The page holding `ptr`, found from `ptr`'s offset inside its chunk, so that a pointer
    /// that reached `seg` through an alias (see `segment_map::chunk_wrapping`) still selects
    /// one of `seg`'s pages.
    ///
    /// # Safety
    /// `seg` must be an active small or medium segment (one chunk) and `ptr` must lie in it or
    /// alias into it.
    #[inline(always)]
    pub unsafe fn page_of_in_chunk(seg: *mut Segment, ptr: *const u8) -> *mut Page {
        // SAFETY: the offset is below SEGMENT_SIZE, so the index is below the page count.
        unsafe {
            let index = (ptr as usize & (SEGMENT_SIZE - 1)) >> (*seg).page_shift;
            // The segment plus the index's bytes, opaque so that it is one register, each field
            // an offset from it: otherwise LLVM makes the page's address in two adds (base,
            // index, header) where a free touches more than two of its fields.
            let at = opaque(seg as usize + index * size_of::<Page>());
            Segment::page(at as *mut Segment, 0)
        }
    }

    fn header_bytes(page_count: usize) -> usize {
        size_of::<Segment>() + page_count * size_of::<Page>()
    }

    /// The byte range of page `index`: `(start, length)`.
    ///
    /// # Safety
    /// `seg` must be an active small or medium segment and `index < page_count`.
    pub unsafe fn page_area(seg: *mut Segment, index: usize) -> (*mut u8, usize) {
        // SAFETY: the header is readable for an active segment.
        let (shift, first) = unsafe { ((*seg).page_shift, (*seg).first_page_offset) };
        let begin = (index << shift).max(first);
        let end = (index + 1) << shift;
        // SAFETY: [begin, end) lies inside the segment's mapping.
        (
            unsafe { seg.cast::<u8>().add(begin) },
            end.saturating_sub(begin),
        )
    }

    /// A new small or medium segment owned by `heap`, or null when the OS refuses memory.
    pub fn create(heap: *mut Heap, kind: Kind) -> *mut Segment {
        let (shift, page_align) = match kind {
            Kind::Small => (SMALL_PAGE_SHIFT, crate::size_class::SMALL_MAX),
            _ => (MEDIUM_PAGE_SHIFT, crate::size_class::MEDIUM_MAX),
        };
        let page_count = SEGMENT_SIZE >> shift;
        let first = os::align_up(
            Segment::header_bytes(page_count),
            page_align.max(os::page_size()),
        )
        .unwrap_or(SEGMENT_SIZE);
        let Some(Span {
            base,
            size: mapped,
            dirty,
            ..
        }) = obtain_span(SEGMENT_SIZE, SEGMENT_SIZE, SEGMENT_SIZE, true, false)
        else {
            return ptr::null_mut();
        };
        let zeroed = dirty == 0;
        if zeroed {
            stats::add_committed(first as isize);
        } else {
            // A dirty span's pages all start dirty: count the whole span as committed.
            stats::add_committed((mapped - dirty) as isize);
        }
        let seg = base as *mut Segment;
        // SAFETY: the span is SEGMENT_SIZE bytes of mapped memory that nothing else uses; the
        // header and page array fit in `first` bytes.
        unsafe {
            ptr::write(
                seg,
                Segment {
                    state: AtomicU8::new(STATE_ACTIVE),
                    kind,
                    aligned_tail: false,
                    huge_pages: false,
                    page_shift: shift,
                    page_count: page_count as u32,
                    used_pages: 0,
                    first_page_offset: first,
                    mapped_size: mapped,
                    touched: mapped,
                    owner: AtomicPtr::new(heap),
                    next: ptr::null_mut(),
                    prev: ptr::null_mut(),
                    reg_next: ptr::null_mut(),
                    reg_prev: ptr::null_mut(),
                    abandoned_next: ptr::null_mut(),
                    abandoned_at: 0,
                },
            );
        }
        // Memory that reads as zero already holds unused pages (`purge_state::PURGED` is zero;
        // `fresh_tail` is set when a page is taken): writing them would fault in every OS page
        // of the page table now, though a short program uses only the first few pages.
        if !zeroed {
            let now = os::now_ms();
            for i in 0..page_count {
                // SAFETY: i < page_count; the page table lies inside the header, in `first`
                // bytes of the span.
                unsafe {
                    let page = Segment::page(seg, i);
                    ptr::write(page, Page::unused());
                    let (_, bytes) = Segment::page_area(seg, i);
                    (*page)
                        .purge
                        .store(purge_state::FREE_DIRTY, Ordering::Relaxed);
                    (*page).freed_at.store(now, Ordering::Relaxed);
                    purge::add_dirty(bytes);
                }
            }
        }
        let mut reg = REGISTRY.lock();
        // SAFETY: the registry lock is held; `seg` is initialised and not yet listed.
        unsafe {
            (*seg).reg_next = reg.head;
            if !reg.head.is_null() {
                (*reg.head).reg_prev = seg;
            }
        }
        reg.head = seg;
        reg.count += 1;
        seg
    }

    /// Index of a page not in use, if any.
    ///
    /// # Safety
    /// `seg` must be an active small or medium segment owned by the caller.
    pub unsafe fn find_free_page(seg: *mut Segment) -> Option<usize> {
        // SAFETY: caller guarantees the segment is active.
        let count = unsafe { (*seg).page_count } as usize;
        (0..count).find(|&i| {
            // SAFETY: i < page_count.
            let (page, (_, bytes)) = unsafe { (Segment::page(seg, i), Segment::page_area(seg, i)) };
            // SAFETY: the page metadata is valid.
            bytes > 0 && !unsafe { (*page).in_use() }
        })
    }

    /// Takes page `index` for use, waiting for the purger if it is purging it right now.
    /// Returns the page's area and whether its memory reads as zero.
    ///
    /// # Safety
    /// `seg` must be an active small or medium segment owned by the caller; the page not in use.
    pub unsafe fn take_page(seg: *mut Segment, index: usize) -> (*mut u8, usize, bool) {
        // SAFETY: forwarded from the caller.
        let (page, (start, bytes)) =
            unsafe { (Segment::page(seg, index), Segment::page_area(seg, index)) };
        // SAFETY: the page metadata is valid; `purge` is shared with the purger.
        let purge = unsafe { &(*page).purge };
        let zeroed = loop {
            match purge.load(Ordering::Acquire) {
                purge_state::PURGED => {
                    purge.store(purge_state::IN_USE, Ordering::Relaxed);
                    break true;
                }
                purge_state::FREE_DIRTY => {
                    if purge
                        .compare_exchange(
                            purge_state::FREE_DIRTY,
                            purge_state::IN_USE,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        )
                        .is_ok()
                    {
                        purge::remove_dirty(bytes);
                        break false;
                    }
                }
                // PURGING: the purger finishes in microseconds.
                _ => {
                    // SAFETY: sched_yield has no preconditions.
                    unsafe { libc::sched_yield() };
                }
            }
        };
        // SAFETY: the owner updates its own counter.
        unsafe { (*seg).used_pages += 1 };
        if zeroed {
            stats::add_committed(bytes as isize);
        }
        (start, bytes, zeroed)
    }

    /// Returns page `index` to the segment; its memory stays resident until the purger's delay
    /// passes. Returns true when the segment has no page in use left.
    ///
    /// # Safety
    /// `seg` must be an active small or medium segment owned by the caller; the page in use and
    /// holding no live block.
    pub unsafe fn free_page(seg: *mut Segment, index: usize) -> bool {
        // SAFETY: forwarded from the caller.
        unsafe {
            let page = Segment::page(seg, index);
            let (_, bytes) = Segment::page_area(seg, index);
            (*page).bin = 0;
            (*page).free = ptr::null_mut();
            (*page).local_free = ptr::null_mut();
            (*page).set_full(false);
            // No free of a page not in use passes the owner's fast bound: the slow path calls
            // it a double free (`alloc::misfit_kind`).
            (*page).free_limit = 0;
            (*page).heap.store(ptr::null_mut(), Ordering::Relaxed);
            (*page).thread_free.store(0, Ordering::Relaxed);
            (*page).freed_at.store(os::now_ms(), Ordering::Relaxed);
            (*page)
                .purge
                .store(purge_state::FREE_DIRTY, Ordering::Release);
            purge::add_dirty(bytes);
            (*seg).used_pages -= 1;
            (*seg).used_pages == 0
        }
    }

    /// Gives an empty small or medium segment to the span cache (or back to the OS).
    ///
    /// # Safety
    /// `seg` must be active, unlisted from any heap, and hold no page in use.
    pub unsafe fn release(seg: *mut Segment) {
        let mut dirty_bytes = 0;
        let mut purged_bytes = 0;
        // SAFETY: the segment is active; its header is readable.
        let (first, mapped) = unsafe { ((*seg).first_page_offset, (*seg).mapped_size) };
        {
            let mut reg = REGISTRY.lock();
            // SAFETY: the registry lock is held and `seg` is listed; holding the lock also
            // means the purger is not purging any of its pages now.
            unsafe {
                let (prev, next) = ((*seg).reg_prev, (*seg).reg_next);
                if prev.is_null() {
                    reg.head = next;
                } else {
                    (*prev).reg_next = next;
                }
                if !next.is_null() {
                    (*next).reg_prev = prev;
                }
                reg.count -= 1;
                for i in 0..(*seg).page_count as usize {
                    let page = Segment::page(seg, i);
                    let (_, bytes) = Segment::page_area(seg, i);
                    if (*page).purge.load(Ordering::Acquire) == purge_state::FREE_DIRTY {
                        dirty_bytes += bytes;
                    } else {
                        purged_bytes += bytes;
                    }
                }
                // A stale free into the cached span must not pass the owner check.
                (*seg).owner.store(ptr::null_mut(), Ordering::Relaxed);
                (*seg).state.store(0, Ordering::Release);
            }
        }
        purge::remove_dirty(dirty_bytes);
        let dirty = if dirty_bytes > 0 {
            // A dirty span goes to the cache counted as committed whole.
            stats::add_committed((purged_bytes + mapped - SEGMENT_SIZE) as isize);
            mapped
        } else if os::purge(seg.cast(), first) {
            // Every page is purged: the header too now, so the span reads as zero.
            stats::add_committed(-(first as isize));
            0
        } else {
            // The kernel refused (mlockall): the header keeps its bytes, so the span does not
            // read as zero; count it dirty whole.
            stats::add_committed((mapped - first) as isize);
            mapped
        };
        cache::put(Span {
            base: seg as usize,
            size: mapped,
            dirty,
            huge_pages: false,
        });
    }

    /// Adds the segment to the abandoned list, for another heap to reclaim.
    ///
    /// # Safety
    /// `seg` must be active and no longer owned by any heap.
    pub unsafe fn abandon(seg: *mut Segment) {
        // SAFETY: forwarded from the caller.
        unsafe { Self::abandon_since(seg, os::now_ms()) }
    }

    /// As `abandon`, for a segment abandoned since `at_ms` (one put back by a reaping pass
    /// keeps its age, so the next pass reaps it again rather than a purge delay later).
    ///
    /// # Safety
    /// As `abandon`.
    unsafe fn abandon_since(seg: *mut Segment, at_ms: u64) {
        let mut list = ABANDONED.lock();
        // SAFETY: the abandoned lock is held; `seg` is not on the list.
        unsafe {
            (*seg).abandoned_next = list.0;
            (*seg).abandoned_at = at_ms;
        }
        list.0 = seg;
        list.1 += 1;
        ABANDONED_HINT.store(list.1, Ordering::Relaxed);
        drop(list);
        purge::wake();
    }

    /// Takes an abandoned segment of `kind` (of any kind when `None`), if any.
    pub fn take_abandoned(kind: Option<Kind>) -> *mut Segment {
        if ABANDONED_HINT.load(Ordering::Relaxed) == 0 {
            return ptr::null_mut();
        }
        let mut list = ABANDONED.lock();
        let mut link: *mut *mut Segment = &mut list.0;
        // SAFETY: the abandoned lock is held; listed segments are active and their
        // `abandoned_next` links are only changed under the lock.
        unsafe {
            while !(*link).is_null() {
                let seg = *link;
                if kind.is_none_or(|k| (*seg).kind == k) {
                    *link = (*seg).abandoned_next;
                    (*seg).abandoned_next = ptr::null_mut();
                    list.1 -= 1;
                    ABANDONED_HINT.store(list.1, Ordering::Relaxed);
                    return seg;
                }
                link = &raw mut (*seg).abandoned_next;
            }
        }
        ptr::null_mut()
    }
}

impl Segment {
    /// Takes `seg` itself off the abandoned list. False when it is not there: another heap
    /// reclaimed it first, or a reaping pass holds it.
    pub fn take_abandoned_exact(seg: *mut Segment) -> bool {
        let mut list = ABANDONED.lock();
        let mut link: *mut *mut Segment = &mut list.0;
        // SAFETY: the abandoned lock is held; listed segments are active and their
        // `abandoned_next` links are only changed under the lock.
        unsafe {
            while !(*link).is_null() {
                if *link == seg {
                    *link = (*seg).abandoned_next;
                    (*seg).abandoned_next = ptr::null_mut();
                    list.1 -= 1;
                    ABANDONED_HINT.store(list.1, Ordering::Relaxed);
                    return true;
                }
                link = &raw mut (**link).abandoned_next;
            }
        }
        false
    }
}

/// Collects the blocks that other threads freed to the segments abandoned before `cutoff_ms`,
/// frees the pages that emptied, so that the purger can give them back, and releases the
/// segments that emptied. Without this, a segment whose blocks were all freed by other threads
/// after its thread exited stays committed until some heap runs out of pages and happens to
/// reclaim it, which may be never. Younger segments are left alone: a heap that reclaims one
/// soon uses its empty pages for the same sizes again. Called from `purge::purge_expired` (the
/// purger's tick and `larder::collect`).
pub fn reap_abandoned(cutoff_ms: u64) {
    if ABANDONED_HINT.load(Ordering::Relaxed) == 0 {
        return;
    }
    // Held for the whole pass: the segments being reaped are on no list meanwhile, and a `fork`
    // then would leave the child without them.
    let _reaping = REAPING.lock();
    let mut chain: *mut Segment = ptr::null_mut();
    {
        let mut list = ABANDONED.lock();
        let mut link: *mut *mut Segment = &mut list.0;
        let mut taken = 0;
        // SAFETY: the abandoned lock is held; listed segments are active and their
        // `abandoned_next` links are only changed under the lock.
        unsafe {
            while !(*link).is_null() {
                let seg = *link;
                if (*seg).abandoned_at <= cutoff_ms {
                    *link = (*seg).abandoned_next;
                    (*seg).abandoned_next = chain;
                    chain = seg;
                    taken += 1;
                } else {
                    link = &raw mut (*seg).abandoned_next;
                }
            }
        }
        list.1 -= taken;
        ABANDONED_HINT.store(list.1, Ordering::Relaxed);
    }
    while !chain.is_null() {
        let seg = chain;
        // SAFETY: the segments taken off the list are active and nobody else owns them; until
        // they are listed again this thread does, so it may change their pages' owner-only
        // fields (other threads' frees only push onto `thread_free`).
        unsafe {
            chain = (*seg).abandoned_next;
            (*seg).abandoned_next = ptr::null_mut();
            let since = (*seg).abandoned_at;
            if !reap(seg) {
                Segment::abandon_since(seg, since);
            }
        }
    }
}

/// Frees the empty pages of `seg`, held off the abandoned list, and releases it when all are.
/// Returns whether it was released.
///
/// # Safety
/// `seg` must be an active small or medium segment that nobody owns and that is on no list.
unsafe fn reap(seg: *mut Segment) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe {
        for i in 0..(*seg).page_count as usize {
            let page = Segment::page(seg, i);
            if !(*page).in_use() {
                continue;
            }
            (*page).collect_frees();
            if (*page).used == 0 && Segment::free_page(seg, i) {
                Segment::release(seg);
                return true;
            }
        }
    }
    false
}

/// Abandoned segments (head, count).
struct AbandonedList(*mut Segment, usize);
// SAFETY: only touched under its lock.
unsafe impl Send for AbandonedList {}
/// Held by a reaping pass (`reap_abandoned`), taken before the registry and abandoned-list locks.
static REAPING: Lock<()> = Lock::new(());
static ABANDONED: Lock<AbandonedList> = Lock::new(AbandonedList(ptr::null_mut(), 0));
static ABANDONED_HINT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Number of segments waiting to be reclaimed.
pub fn abandoned_count() -> usize {
    ABANDONED_HINT.load(Ordering::Relaxed)
}

/// A span of `size` bytes aligned to `align` (at least a segment), from the cache or the OS,
/// recorded in the segment map, whose first `dirty` bytes may hold old data and count as
/// committed, and the rest reads as zero and is not yet counted. The caller will touch the
/// first `need` bytes. The cache may hand out a span larger than asked for, unless `exact`.
/// The span comes advised for huge pages as `huge_pages` asks.
fn obtain_span(
    size: usize,
    need: usize,
    align: usize,
    exact: bool,
    huge_pages: bool,
) -> Option<Span> {
    let cached = if align == SEGMENT_SIZE {
        cache::take(size, need, exact)
    } else {
        None
    };
    let mut span = match cached {
        Some(span) => span,
        None => {
            let base = map_addressable(size, align)?;
            segment_map::set(base, segment_map::SEGMENT_START);
            stats::add_reserved(size as isize);
            let fresh = Span {
                base,
                size,
                dirty: 0,
                huge_pages: false,
            };
            if align == SEGMENT_SIZE && !exact {
                adopt_donors(fresh, need)
            } else {
                fresh
            }
        }
    };
    if span.huge_pages != huge_pages {
        // Advice lives with the mapping: a span reused for small pages must not fault in
        // 2 MiB for each page it touches.
        os::advise_huge_pages(span.base as *mut u8, span.size, huge_pages);
        span.huge_pages = huge_pages;
    }
    Some(span)
}

/// A fresh span that no cached span was large enough for takes over the resident pages of
/// cached spans, the fullest first, until they cover the `need` bytes its block will touch: the
/// kernel moves each one's dirty pages next to the last one's (mremap), what is left of the
/// donor is unmapped, and the block faults in only what the donors did not cover. Without it, a
/// program whose big blocks vary in size kept every freed block that was too small for the next
/// request resident for the purge delay, while faulting in fresh pages for that request: on
/// larder-bench's large workload (blocks of 64 KiB-32 MiB, five live per thread) peak RSS was
/// 1.7-1.9x the peak live bytes (mimalloc and tcmalloc 1.3x). A move that fails (a kernel that
/// will not move a range made of several mappings, as a block built from donors is) leaves the
/// donor where it was; it goes back to the cache, and after a few failures the adoption ends.
fn adopt_donors(fresh: Span, need: usize) -> Span {
    const FAILURES_MAX: usize = 4;
    let page = os::page_size();
    let mut filled = 0;
    let mut any_huge = false;
    let mut refused = [None; FAILURES_MAX];
    let mut failures = 0;
    while filled < need && failures < FAILURES_MAX {
        let Some(donor) = cache::take_donor(need - filled) else {
            break;
        };
        let moved = donor.dirty.next_multiple_of(page).min(donor.size);
        // The donor's entry goes first, as in `release_span`: once its pages move, another
        // thread may map its old addresses and mark them.
        segment_map::set(donor.base, segment_map::RELEASED);
        if !os::move_mapping(
            donor.base as *mut u8,
            moved,
            moved,
            (fresh.base + filled) as *mut u8,
        ) {
            // On failure the kernel leaves the old range as it was. (Back to the cache only
            // after the loop, or it would be taken again.)
            segment_map::set(donor.base, segment_map::SEGMENT_START);
            refused[failures] = Some(donor);
            failures += 1;
            continue;
        }
        if moved < donor.size {
            os::unmap((donor.base + moved) as *mut u8, donor.size - moved);
        }
        stats::add_reserved(-(donor.size as isize));
        // The moved pages stay committed; any bytes between `donor.dirty` and `moved` read as
        // zero but now lie inside the dirty prefix.
        stats::add_committed((moved - donor.dirty) as isize);
        filled += moved;
        any_huge |= donor.huge_pages;
    }
    for donor in refused.into_iter().flatten() {
        cache::put(donor);
    }
    if any_huge {
        // Advice moved with the pages: the span is advised as a whole again, so that it is one
        // thing for `obtain_span` to set as its block wants.
        os::advise_huge_pages(fresh.base as *mut u8, fresh.size, false);
    }
    Span {
        dirty: filled,
        ..fresh
    }
}

/// Fresh address space of `size` bytes aligned to `align`, below the segment map's reach (a
/// mapping the kernel places higher is given back).
fn map_addressable(size: usize, align: usize) -> Option<usize> {
    let base = os::map_aligned(size, align)?.as_ptr() as usize;
    if base + size > segment_map::ADDRESS_LIMIT {
        os::unmap(base as *mut u8, size);
        return None;
    }
    Some(base)
}

/// Resident bytes a reused span may hold past (twice) its new block before they are purged.
const DIRTY_EXCESS_MAX: usize = 1 << 20;

/// With `LARDER_HUGE_PAGES=on`, blocks at least this big get transparent huge pages: rounding
/// the last 2 MiB up would cost at most half of such a block.
const HUGE_PAGE_BLOCK_MIN: usize = 2 << 20;

/// Whether a block of `size` bytes is advised for transparent huge pages. Off unless asked
/// for: a big block is as often capacity reserved ahead (an n-body simulation's arrays sized
/// for the most bodies, a hash table's slots) as a buffer written whole, and with huge pages
/// each scattered first touch makes 2 MiB resident, not 4 KiB (mimalloc-bench's barnes: peak
/// RSS 39.5 MiB against glibc's 30.7 with them, 31.3 without). What they save, a page fault
/// per 4 KiB, did not show in time here: larder-bench's large workload took 13,939 faults
/// instead of 56,906 but no less system time (docs/BENCHMARKS.md).
pub fn wants_huge_pages(size: usize) -> bool {
    size >= HUGE_PAGE_BLOCK_MIN && crate::options::get().huge_pages
}
/// The transparent huge page size (x86-64, and aarch64 with 4 KiB pages).
const HUGE_PAGE: usize = 2 << 20;

/// Bytes from a single segment's base that may become resident once its first `end` bytes are
/// written: with huge pages the kernel faults in whole 2 MiB pages, so the last one counts
/// whole (and is purged whole, so that a purge never splits one and leaves its rest resident).
pub fn resident_extent(end: usize, mapped: usize, huge_pages: bool) -> usize {
    if huge_pages {
        end.next_multiple_of(HUGE_PAGE).min(mapped)
    } else {
        end
    }
}

/// Advises huge pages for the whole huge pages of `[base, base + end)` only, and not for the rest
/// of the span: the kernel faulted the last, partial 2 MiB of a block in whole, and a program
/// of 2-4 MiB blocks (3 MiB on average) had 4 MiB of each resident, a third more than glibc
/// (issue 13). Both ranges are advised every time: the span may come from the cache with the
/// advice of a block of another size.
fn limit_huge_pages(base: usize, end: usize, mapped: usize) {
    let whole = end / HUGE_PAGE * HUGE_PAGE;
    if whole > 0 {
        os::advise_huge_pages(base as *mut u8, whole, true);
    }
    if mapped > whole {
        os::advise_huge_pages((base + whole) as *mut u8, mapped - whole, false);
    }
}

/// Header bytes before the block of a single segment (also the offset of an unaligned block).
fn single_header_bytes() -> usize {
    Segment::header_bytes(1)
}

/// Allocates a large or huge block in its own segment. `size` is the usable size wanted (already
/// rounded by the caller); `align` any power of two. Returns the block and whether it reads as
/// zero.
pub fn alloc_single(size: usize, align: usize) -> Option<(*mut u8, bool)> {
    let page = os::page_size();
    if align > SEGMENT_SIZE / 2 {
        return alloc_over_aligned(size, align);
    }
    let offset = os::align_up(single_header_bytes(), align.max(page))?;
    let total = os::align_up(offset.checked_add(size)?, page)?;
    let reserve = os::align_up(total, SEGMENT_SIZE)?;
    if reserve > isize::MAX as usize {
        return None;
    }
    let huge_pages = wants_huge_pages(size);
    // Only the block's whole huge pages are advised (`limit_huge_pages`), so it becomes
    // resident to its end, not to the end of its last huge page.
    let resident = total;
    let Span {
        base,
        size: mapped,
        mut dirty,
        ..
    } = obtain_span(reserve, resident, SEGMENT_SIZE, false, huge_pages)?;
    if huge_pages {
        limit_huge_pages(base, total, mapped);
    }
    // A span that held a small segment or a bigger block: a block that might live long would
    // pin its resident pages. Purge beyond the block (if the kernel refuses, e.g. under
    // mlockall, the old bytes stay and count as dirty).
    if dirty > DIRTY_EXCESS_MAX + 2 * resident
        && os::purge((base + resident) as *mut u8, dirty - resident)
    {
        stats::add_committed(-((dirty - resident) as isize));
        dirty = resident;
    }
    // The block's pages count as committed from now on (a dirty prefix already does).
    stats::add_committed(resident.saturating_sub(dirty) as isize);
    let seg = base as *mut Segment;
    // SAFETY: the span is mapped, at least `offset + size` bytes, and unused.
    unsafe { init_single(seg, mapped, offset, size, false, resident.max(dirty)) };
    // SAFETY: just written.
    unsafe { (*seg).huge_pages = huge_pages };
    // SAFETY: offset < mapped.
    Some((unsafe { seg.cast::<u8>().add(offset) }, dirty == 0))
}

/// A block aligned above half a segment: the header sits one chunk before the block, whose chunk
/// the segment map marks `ALIGNED_TAIL`.
fn alloc_over_aligned(size: usize, align: usize) -> Option<(*mut u8, bool)> {
    let page = os::page_size();
    let block_bytes = os::align_up(size, page)?;
    let reserve = SEGMENT_SIZE.checked_add(block_bytes)?.checked_add(align)?;
    let raw = os::map_aligned(reserve, SEGMENT_SIZE)?.as_ptr() as usize;
    let block = os::align_up(raw + SEGMENT_SIZE, align)?;
    let base = block - SEGMENT_SIZE;
    let end = block + block_bytes;
    if end > segment_map::ADDRESS_LIMIT {
        os::unmap(raw as *mut u8, reserve);
        return None;
    }
    if base > raw {
        os::unmap(raw as *mut u8, base - raw);
    }
    if raw + reserve > end {
        os::unmap(end as *mut u8, raw + reserve - end);
    }
    let mapped = end - base;
    stats::add_reserved(mapped as isize);
    stats::add_committed(mapped as isize);
    segment_map::set(base, segment_map::SEGMENT_START);
    segment_map::set(block, segment_map::ALIGNED_TAIL);
    let seg = base as *mut Segment;
    // SAFETY: [base, end) is mapped and unused; the block starts SEGMENT_SIZE past the header.
    unsafe { init_single(seg, mapped, SEGMENT_SIZE, block_bytes, true, mapped) };
    Some((block as *mut u8, true))
}

/// Writes the header of a single segment whose block of `block_size` bytes starts at `offset`,
/// of which the first `touched` bytes count as committed.
///
/// # Safety
/// `seg` must point to `mapped` bytes of unused, mapped memory with
/// `offset + block_size <= mapped`.
unsafe fn init_single(
    seg: *mut Segment,
    mapped: usize,
    offset: usize,
    block_size: usize,
    aligned_tail: bool,
    touched: usize,
) {
    // SAFETY: forwarded from the caller; the header fits before `offset`.
    unsafe {
        ptr::write(
            seg,
            Segment {
                state: AtomicU8::new(STATE_ACTIVE),
                kind: Kind::Single,
                aligned_tail,
                huge_pages: false,
                page_shift: SINGLE_PAGE_SHIFT,
                page_count: 1,
                used_pages: 1,
                first_page_offset: offset,
                mapped_size: mapped,
                touched,
                owner: AtomicPtr::new(ptr::null_mut()),
                next: ptr::null_mut(),
                prev: ptr::null_mut(),
                reg_next: ptr::null_mut(),
                reg_prev: ptr::null_mut(),
                abandoned_next: ptr::null_mut(),
                abandoned_at: 0,
            },
        );
        let page = Segment::page(seg, 0);
        ptr::write(page, Page::unused());
        (*page).bin = u8::MAX;
        (*page).used = 1;
        (*page).capacity = 1;
        (*page).reserved = 1;
        (*page).block_size = block_size;
        (*page).start = seg.cast::<u8>().add(offset);
        (*page).purge.store(purge_state::IN_USE, Ordering::Relaxed);
    }
}

/// Frees a single segment's block: the span goes to the cache (large) or back to the OS (huge).
///
/// # Safety
/// `seg` must be an active single segment whose block is being freed.
pub unsafe fn free_single(seg: *mut Segment) {
    // SAFETY: forwarded from the caller.
    let (mapped, touched, aligned_tail, huge_pages) = unsafe {
        (
            (*seg).mapped_size,
            (*seg).touched,
            (*seg).aligned_tail,
            (*seg).huge_pages,
        )
    };
    // SAFETY: as above; the state marks the segment dead for later (invalid) frees.
    unsafe { (*seg).state.store(0, Ordering::Release) };
    let base = seg as usize;
    if aligned_tail {
        segment_map::set(base + SEGMENT_SIZE, segment_map::RELEASED);
        stats::add_committed(-(mapped as isize));
        release_span(base, mapped);
    } else {
        cache::put(Span {
            base,
            size: mapped,
            dirty: touched,
            huge_pages,
        });
    }
}

/// Moves a single segment, header and block, to a fresh segment-aligned span of `new_size`
/// bytes: the kernel moves the pages (mremap), so a block of megabytes changes address without
/// a copy and without faulting its pages in again, and the old span is not left behind dirty.
/// Returns the moved header, or `None` (the segment untouched) when the OS refuses.
///
/// # Safety
/// `seg` must be an active single segment without an aligned tail whose block the caller owns,
/// and `new_size` at least its mapped size.
pub unsafe fn move_single(seg: *mut Segment, new_size: usize) -> Option<*mut Segment> {
    let old_base = seg as usize;
    // SAFETY: forwarded from the caller: the header is valid.
    let old_size = unsafe { (*seg).mapped_size };
    let dest = map_addressable(new_size, SEGMENT_SIZE)?;
    // The old entry goes first, as in `release_span`: once the pages move, another thread may
    // map the old addresses and mark them.
    segment_map::set(old_base, 0);
    if !os::move_mapping(seg.cast(), old_size, new_size, dest as *mut u8) {
        segment_map::set(old_base, segment_map::SEGMENT_START);
        // The reservation is left mapped, not unmapped: a failing mremap may already have
        // unmapped it, and another thread may have mapped (and be using) those addresses since.
        // Address space only (MAP_NORESERVE, never touched), and the kernel refuses rarely.
        return None;
    }
    segment_map::set(dest, segment_map::SEGMENT_START);
    stats::add_reserved((new_size - old_size) as isize);
    let moved = dest as *mut Segment;
    // SAFETY: the header moved with its pages; a single segment's only absolute pointer into
    // itself is its page's block start (its list links are null: it is on no list).
    unsafe {
        (*moved).mapped_size = new_size;
        let page = Segment::page(moved, 0);
        (*page).start = moved.cast::<u8>().add((*moved).first_page_offset);
    }
    Some(moved)
}

/// Forgets a span and unmaps it. The map entry is cleared first, so that a thread mapping the
/// same addresses afterwards cannot have its entry erased.
pub fn release_span(base: usize, size: usize) {
    segment_map::set(base, segment_map::RELEASED);
    os::unmap(base as *mut u8, size);
    stats::add_reserved(-(size as isize));
}

/// Takes the reaping, registry and abandoned-list locks for `fork` (after the heap list's lock,
/// before the cache's: the one order every fork handler uses). Only a reaping pass holds two
/// of them at once, and it takes them in this order too (reaping first, then the others).
pub fn lock_all_for_fork() {
    REAPING.lock_for_fork();
    REGISTRY.lock_for_fork();
    ABANDONED.lock_for_fork();
}

/// Releases the locks taken by `lock_all_for_fork`.
///
/// # Safety
/// As `Lock::unlock_after_fork`.
pub unsafe fn unlock_all_after_fork() {
    // SAFETY: forwarded from the caller.
    unsafe {
        ABANDONED.unlock_after_fork();
        REGISTRY.unlock_after_fork();
        REAPING.unlock_after_fork();
    }
}

/// `x`, hidden from the optimiser, so that a value the fast path computes stays one value
/// rather than being recomputed or split (see its callers); it costs no instruction.
#[inline(always)]
pub fn opaque(x: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let mut x = x;
        // SAFETY: an empty template: no instruction, no memory or flags touched.
        unsafe {
            core::arch::asm!("/* {0} */", inout(reg) x, options(pure, nomem, nostack, preserves_flags));
        }
        x
    }
    #[cfg(not(target_arch = "x86_64"))]
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_page_metadata_is_an_unused_purged_page() {
        // SAFETY: every field of `Page` (pointers, integers, bools, atomics) is valid as zero.
        let page: Page = unsafe { core::mem::zeroed() };
        assert!(!page.in_use());
        assert_eq!(page.purge.load(Ordering::Relaxed), purge_state::PURGED);
    }

    #[test]
    fn a_huge_page_block_counts_its_last_huge_page_whole() {
        let mapped = 3 * SEGMENT_SIZE;
        let end = SEGMENT_SIZE + (64 << 10);
        assert_eq!(resident_extent(end, mapped, false), end);
        assert_eq!(resident_extent(end, mapped, true), SEGMENT_SIZE + HUGE_PAGE);
        assert_eq!(resident_extent(mapped - 4096, mapped, true), mapped);
    }

    #[test]
    fn consecutive_segments_are_aligned() {
        let spans: [usize; 3] = core::array::from_fn(|_| {
            os::map_aligned(SEGMENT_SIZE, SEGMENT_SIZE)
                .expect("mmap")
                .as_ptr() as usize
        });
        for base in spans {
            assert_eq!(base % SEGMENT_SIZE, 0);
            os::unmap(base as *mut u8, SEGMENT_SIZE);
        }
    }
}
