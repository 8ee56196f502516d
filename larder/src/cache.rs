//! The span cache: segment-aligned spans that held an empty segment or a freed large block,
//! kept mapped for reuse. A program that frees and reallocates big blocks in a loop reuses
//! resident memory instead of faulting fresh pages in (the cliff mimalloc and jemalloc fall off);
//! a span nobody reuses is purged after the purge delay and unmapped after a longer one, so RSS
//! still falls when the program goes idle.
//!
//! A span larger than a request is split: the part the request needs is reused, the rest given
//! back or kept as a span of its own, so freed big blocks do not sit in the cache unused while
//! smaller requests fault in fresh memory. A request larger than every cached span takes their
//! resident pages instead (`take_donor`, moved by `segment::obtain_span`), so smaller freed
//! blocks do not sit in the cache unused while a bigger one faults in fresh memory either. (A bound on the cache's dirty bytes relative to the
//! live bytes was tried, purging the oldest spans beyond it at once: on the large-block benchmark
//! it cost 2 to 4 times the time for no lower peak RSS, so the purge delay alone bounds them.)
//!
//! Each span records its dirty prefix: the bytes from its base that may be resident (a large
//! block's span is reserved whole segments at a time, but only the block's pages were touched).
//! The prefix counts as committed; past it, and in a purged span, memory reads as zero and
//! counts nothing.

use core::sync::atomic::Ordering;

use crate::segment::{release_span, Segment, SEGMENT_SIZE};
use crate::sync::Lock;
use crate::{os, purge, segment_map, stats};

/// Spans larger than this are huge blocks: unmapped at once on free, never cached.
pub const MAX_CACHED_SPAN: usize = 64 << 20;
/// Enough for the empty segments of a few hundred threads' worth of teardown.
const SLOTS: usize = 256;
/// Cached dirty bytes beyond which a new dirty span is unmapped instead of cached.
const MAX_CACHED_DIRTY: usize = 1 << 30;
/// A purged span left unused this long goes back to the OS entirely.
const UNMAP_AFTER_MS: u64 = 10_000;

/// Segment-aligned memory larder holds but no segment uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First byte (a multiple of `SEGMENT_SIZE`).
    pub base: usize,
    /// Bytes mapped.
    pub size: usize,
    /// Bytes from `base` that may be resident and count as committed; the rest reads as zero.
    pub dirty: usize,
    /// The span is advised to the kernel for transparent huge pages (`os::advise_huge_pages`).
    pub huge_pages: bool,
}

#[derive(Clone, Copy)]
struct Entry {
    span: Span,
    cached_at: u64,
}

struct Cache {
    entries: [Entry; SLOTS],
    len: usize,
    bytes: usize,
    dirty: usize,
}

impl Cache {
    /// Removes entry `i` (the last one takes its place).
    fn remove(&mut self, i: usize) -> Span {
        let e = self.entries[i].span;
        self.len -= 1;
        self.entries[i] = self.entries[self.len];
        self.bytes -= e.size;
        self.dirty -= e.dirty;
        e
    }
}

static CACHE: Lock<Cache> = Lock::new(Cache {
    entries: [Entry {
        span: Span {
            base: 0,
            size: 0,
            dirty: 0,
            huge_pages: false,
        },
        cached_at: 0,
    }; SLOTS],
    len: 0,
    bytes: 0,
    dirty: 0,
});

/// The lock, for `fork` handlers.
pub fn lock_for_fork() {
    CACHE.lock_for_fork();
}

/// Releases the lock taken by `lock_for_fork`.
///
/// # Safety
/// As `Lock::unlock_after_fork`.
pub unsafe fn unlock_after_fork() {
    // SAFETY: forwarded from the caller.
    unsafe { CACHE.unlock_after_fork() };
}

/// Takes a cached span for a request of `min` bytes (page-aligned) that will touch its first
/// `need` bytes: `(base, size, dirty)`, `size >= min`, where the first `dirty` bytes may hold old
/// data and the rest reads as zero. The span whose dirty prefix is closest to `need` wins (a
/// shorter one costs page faults, a longer one pins resident memory or a purge), then the
/// smaller span. A span much larger than the request is split: a dirty span may be at most
/// twice `need` (in whole segments), so a small block does not pin much resident memory; a purged one at most a
/// segment larger (its untouched part costs only address space). The rest goes back to the OS
/// up to the next segment boundary, and what lies beyond it stays cached as a span of its own.
/// With `exact` (a small or medium segment, whose pages cover exactly `min` bytes, so that
/// nothing past them would ever be purged or counted) a larger span is always split at `min`.
pub fn take(min: usize, need: usize, exact: bool) -> Option<Span> {
    let e = take_cheapest(|s| s.size >= min, |s| (s.dirty.abs_diff(need), s.size))?;
    let limit = if exact {
        min
    } else if e.dirty > 0 {
        need.saturating_mul(2)
            .next_multiple_of(SEGMENT_SIZE)
            .max(min)
    } else {
        min.saturating_add(SEGMENT_SIZE)
    };
    if e.size <= limit {
        return Some(e);
    }
    split(e, min);
    Some(Span {
        size: min,
        dirty: e.dirty.min(min),
        ..e
    })
}

/// Takes the cached span with the most dirty bytes, at most `max_dirty` of them, for a request
/// that no cached span was large enough for: the caller moves its resident pages into the new
/// block's reservation (`segment::obtain_span`). `None` when no such span is dirty.
pub fn take_donor(max_dirty: usize) -> Option<Span> {
    take_cheapest(
        |s| (1..=max_dirty).contains(&s.dirty),
        |s| core::cmp::Reverse(s.dirty),
    )
}

/// Takes out of the cache the span `eligible` accepts at the least `cost` (the first of equal
/// ones); its dirty bytes stop counting as free resident memory.
fn take_cheapest<K: Ord>(
    eligible: impl Fn(&Span) -> bool,
    cost: impl Fn(&Span) -> K,
) -> Option<Span> {
    let e = {
        let mut cache = CACHE.lock();
        let best = (0..cache.len)
            .filter(|&i| eligible(&cache.entries[i].span))
            .min_by_key(|&i| cost(&cache.entries[i].span))?;
        cache.remove(best)
    };
    purge::remove_dirty(e.dirty);
    Some(e)
}

/// Gives back the part of a taken span past its first `keep` bytes: up to the next segment
/// boundary to the OS (so that the kept block can also grow in place), the rest to the cache as
/// a span of its own.
fn split(e: Span, keep: usize) {
    let end = e.base + e.size;
    let boundary = (e.base + keep).next_multiple_of(SEGMENT_SIZE).min(end);
    let gap = boundary - (e.base + keep);
    if gap > 0 {
        os::unmap((e.base + keep) as *mut u8, gap);
        stats::add_reserved(-(gap as isize));
        let gap_dirty = e.dirty.saturating_sub(keep).min(gap);
        stats::add_committed(-(gap_dirty as isize));
    }
    if boundary < end {
        // The rest starts a span: its first bytes become a dead segment header (a stale free
        // into them is refused), then the map marks it larder's.
        let rest = boundary as *mut Segment;
        let rest_dirty = e.dirty.saturating_sub(boundary - e.base);
        if rest_dirty > 0 {
            // SAFETY: [boundary, end) is mapped and ours, unused, and segment-aligned; the state
            // byte is a plain atomic store into it.
            unsafe { (*rest).state.store(0, Ordering::Release) };
        }
        // (Memory that reads as zero holds a dead state already: writing would fault in a page
        // nobody counts.)
        segment_map::set(boundary, segment_map::SEGMENT_START);
        put(Span {
            base: boundary,
            size: end - boundary,
            dirty: rest_dirty,
            huge_pages: e.huge_pages,
        });
    }
}

/// Caches a span that holds nothing any more (or unmaps it when it is huge or the cache full).
/// Its dirty bytes are counted as committed by the caller.
pub fn put(span: Span) {
    if span.size <= MAX_CACHED_SPAN {
        let mut cache = CACHE.lock();
        let fits = |cache: &Cache| cache.dirty + span.dirty <= MAX_CACHED_DIRTY;
        // A full cache makes room by unmapping its oldest purged span: a span just freed is
        // the likelier to be asked for again, and only a dirty one saves page faults.
        let mut evicted = None;
        if cache.len == SLOTS && fits(&cache) {
            if let Some(oldest) = (0..cache.len)
                .filter(|&i| cache.entries[i].span.dirty == 0)
                .min_by_key(|&i| cache.entries[i].cached_at)
            {
                evicted = Some(cache.remove(oldest));
            }
        }
        if cache.len < SLOTS && fits(&cache) {
            let len = cache.len;
            cache.entries[len] = Entry {
                span,
                cached_at: os::now_ms(),
            };
            cache.len += 1;
            cache.bytes += span.size;
            cache.dirty += span.dirty;
            drop(cache);
            if span.dirty > 0 {
                purge::add_dirty(span.dirty);
            }
            if let Some(e) = evicted {
                release_span(e.base, e.size);
            }
            return;
        }
        drop(cache);
        if let Some(e) = evicted {
            release_span(e.base, e.size);
        }
    }
    stats::add_committed(-(span.dirty as isize));
    release_span(span.base, span.size);
}

/// Purges dirty spans cached before `cutoff_ms`, and unmaps purged spans unused for long (all of
/// them when `unmap_all`). Returns the bytes purged.
pub fn purge_expired(cutoff_ms: u64, unmap_all: bool) -> usize {
    let mut purged = 0;
    let mut to_unmap = [(0usize, 0usize); SLOTS];
    let mut unmap_count = 0;
    {
        let mut cache = CACHE.lock();
        let mut i = 0;
        while i < cache.len {
            let e = cache.entries[i];
            // (A purge the kernel refuses, e.g. under mlockall, leaves the span dirty.)
            if e.span.dirty > 0
                && e.cached_at <= cutoff_ms
                && os::purge(e.span.base as *mut u8, e.span.dirty)
            {
                purge::remove_dirty(e.span.dirty);
                stats::add_committed(-(e.span.dirty as isize));
                purged += e.span.dirty;
                cache.dirty -= e.span.dirty;
                cache.entries[i].span.dirty = 0;
            }
            let e = cache.entries[i];
            let stale = e.cached_at.saturating_add(UNMAP_AFTER_MS) <= cutoff_ms;
            if e.span.dirty == 0 && (unmap_all || stale) {
                to_unmap[unmap_count] = (e.span.base, e.span.size);
                unmap_count += 1;
                cache.remove(i);
                continue;
            }
            i += 1;
        }
    }
    for &(base, size) in &to_unmap[..unmap_count] {
        release_span(base, size);
    }
    purged
}

/// Copies the address ranges of the cached spans into `out` (as many as fit); how many. Memory
/// no block lives in: check mode's leak mark leaves it out of its roots, since its stale bytes
/// would keep lost blocks "reachable".
pub fn spans(out: &mut [core::ops::Range<usize>]) -> usize {
    let cache = CACHE.lock();
    let n = cache.len.min(out.len());
    for (range, e) in out.iter_mut().zip(&cache.entries[..n]) {
        *range = e.span.base..e.span.base + e.span.size;
    }
    n
}

/// Spans the cache holds at most.
pub const SPANS_MAX: usize = SLOTS;

/// Cached spans and their bytes.
pub fn usage() -> (usize, usize) {
    let cache = CACHE.lock();
    (cache.len, cache.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache is one for the process, and each test takes back the spans it put only if no
    /// other test takes them first: the tests that use it run one at a time. (In parallel, one
    /// test's request took the other's span, whose dirty bytes were closer to it.)
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// A span recorded as larder's, as `segment::obtain_span` leaves it.
    fn mapped_span(size: usize) -> usize {
        assert!(segment_map::ensure());
        let base = os::map_aligned(size, SEGMENT_SIZE)
            .expect("address space")
            .as_ptr() as usize;
        segment_map::set(base, segment_map::SEGMENT_START);
        stats::add_reserved(size as isize);
        stats::add_committed(size as isize);
        base
    }

    fn dirty_span(base: usize, size: usize) -> Span {
        Span {
            base,
            size,
            dirty: size,
            huge_pages: false,
        }
    }

    #[test]
    fn a_big_span_is_split_for_a_smaller_request() {
        let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        // Sizes no other test of this crate caches, so that the best fit is this span.
        let size = 7 * SEGMENT_SIZE + (5 << 12);
        let base = mapped_span(size);
        // SAFETY: the span is mapped and unused.
        unsafe { (base as *mut u8).add(size - 1).write(0xa5) };
        put(dirty_span(base, size));
        let want = SEGMENT_SIZE + (3 << 12);
        let got = take(want, want, false).expect("the cached span fits");
        assert_eq!(got, dirty_span(base, want), "the head, dirty, cut to size");
        // The rest of its first two chunks went back to the OS; from the next boundary on it is
        // a span of its own, whose contents survived.
        assert_eq!(
            segment_map::entry(base + 2 * SEGMENT_SIZE),
            segment_map::SEGMENT_START
        );
        let rest = take(5 * SEGMENT_SIZE, 5 * SEGMENT_SIZE, false).expect("the rest is cached");
        let rest_size = 5 * SEGMENT_SIZE + (5 << 12);
        assert_eq!(rest, dirty_span(base + 2 * SEGMENT_SIZE, rest_size));
        let rest = rest.base;
        // SAFETY: the rest is mapped; its last byte was written above.
        let last = unsafe { (rest as *const u8).add(rest_size - 1).read() };
        assert_eq!(last, 0xa5);
        stats::add_committed(-((want + rest_size) as isize));
        release_span(rest, rest_size);
        release_span(base, want);
    }

    #[test]
    fn a_segment_never_takes_more_than_a_segment() {
        let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        // A dirty span a little over a segment (a freed large block): a small segment's pages
        // would cover only its first 4 MiB, and its tail would later be cached as reading zero
        // while it still held the block's bytes.
        let size = SEGMENT_SIZE + (3 << 19) + (7 << 12);
        let base = mapped_span(size);
        // SAFETY: the span is mapped and unused.
        unsafe { (base as *mut u8).add(size - 1).write(0x5a) };
        put(dirty_span(base, size));
        let got = take(SEGMENT_SIZE, SEGMENT_SIZE, true).expect("the cached span fits");
        assert_eq!(got, dirty_span(base, SEGMENT_SIZE));
        let tail = size - SEGMENT_SIZE;
        let rest = take(tail, tail, false).expect("the tail is cached");
        assert_eq!(rest, dirty_span(base + SEGMENT_SIZE, tail), "still dirty");
        let (rest, rest_size) = (rest.base, rest.size);
        stats::add_committed(-((SEGMENT_SIZE + tail) as isize));
        release_span(rest, rest_size);
        release_span(base, SEGMENT_SIZE);
    }
}
