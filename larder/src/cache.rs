//! The span cache: segment-aligned spans that held an empty segment or a freed large block,
//! kept mapped for reuse. A program that frees and reallocates big blocks in a loop reuses
//! resident memory instead of faulting fresh pages in (the cliff mimalloc and jemalloc fall off);
//! a span nobody reuses is purged after the purge delay and unmapped after a longer one, so RSS
//! still falls when the program goes idle.
//!
//! A span larger than a request is split: the part the request needs is reused, the rest given
//! back or kept as a span of its own, so freed big blocks do not sit in the cache unused while
//! smaller requests fault in fresh memory. (A bound on the cache's dirty bytes relative to the
//! live bytes was tried, purging the oldest spans beyond it at once: on the large-block benchmark
//! it cost 2 to 4 times the time for no lower peak RSS, so the purge delay alone bounds them.)
//!
//! Dirty spans count as committed whole; purged spans read as zero and count nothing.

use core::sync::atomic::Ordering;

use crate::segment::{release_span, Segment, SEGMENT_SIZE};
use crate::sync::Lock;
use crate::{os, purge, segment_map, stats};

/// Spans larger than this are huge blocks: unmapped at once on free, never cached.
pub const MAX_CACHED_SPAN: usize = 64 << 20;
const SLOTS: usize = 64;
/// Cached bytes beyond which a new span is unmapped instead of cached.
const MAX_CACHED_BYTES: usize = 1 << 30;
/// A purged span left unused this long goes back to the OS entirely.
const UNMAP_AFTER_MS: u64 = 10_000;
#[derive(Clone, Copy)]
struct Entry {
    base: usize,
    size: usize,
    cached_at: u64,
    dirty: bool,
}

struct Cache {
    entries: [Entry; SLOTS],
    len: usize,
    bytes: usize,
}

impl Cache {
    /// Removes entry `i` (the last one takes its place).
    fn remove(&mut self, i: usize) -> Entry {
        let e = self.entries[i];
        self.len -= 1;
        self.entries[i] = self.entries[self.len];
        self.bytes -= e.size;
        e
    }
}

static CACHE: Lock<Cache> = Lock::new(Cache {
    entries: [Entry {
        base: 0,
        size: 0,
        cached_at: 0,
        dirty: false,
    }; SLOTS],
    len: 0,
    bytes: 0,
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

/// Takes a cached span for a request of `min` bytes (page-aligned): `(base, size, reads_as_zero)`,
/// `size >= min`. A dirty span is preferred to a purged one, whose pages fault in again. A span
/// much larger than the request is split: a dirty span may be at most twice `min`, so a small
/// block does not pin much resident memory; a purged one at most a segment larger (its untouched
/// part costs only address space). The rest goes back to the OS up to the next segment boundary,
/// and what lies beyond it stays cached as a span of its own. With `exact` (a small or medium
/// segment, whose pages cover exactly `min` bytes, so that nothing past them would ever be
/// purged or counted) a larger span is always split at `min`.
pub fn take(min: usize, exact: bool) -> Option<(usize, usize, bool)> {
    let e = {
        let mut cache = CACHE.lock();
        let mut best: Option<usize> = None;
        for i in 0..cache.len {
            let e = cache.entries[i];
            if e.size < min {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => {
                    let b = cache.entries[b];
                    (e.dirty, core::cmp::Reverse(e.size)) > (b.dirty, core::cmp::Reverse(b.size))
                }
            };
            if better {
                best = Some(i);
            }
        }
        cache.remove(best?)
    };
    if e.dirty {
        purge::remove_dirty(e.size);
    }
    let limit = if exact {
        min
    } else if e.dirty {
        min.saturating_mul(2)
    } else {
        min.saturating_add(SEGMENT_SIZE)
    };
    if e.size <= limit {
        return Some((e.base, e.size, !e.dirty));
    }
    split(e, min);
    Some((e.base, min, !e.dirty))
}

/// Gives back the part of a taken span past its first `keep` bytes: up to the next segment
/// boundary to the OS (so that the kept block can also grow in place), the rest to the cache as
/// a span of its own.
fn split(e: Entry, keep: usize) {
    let end = e.base + e.size;
    let boundary = (e.base + keep).next_multiple_of(SEGMENT_SIZE).min(end);
    let gap = boundary - (e.base + keep);
    if gap > 0 {
        os::unmap((e.base + keep) as *mut u8, gap);
        stats::add_reserved(-(gap as isize));
        if e.dirty {
            stats::add_committed(-(gap as isize));
        }
    }
    if boundary < end {
        // The rest starts a span: its first bytes become a dead segment header (a stale free
        // into them is refused), then the map marks it larder's.
        let rest = boundary as *mut Segment;
        if e.dirty {
            // SAFETY: [boundary, end) is mapped and ours, unused, and segment-aligned; the state
            // byte is a plain atomic store into it.
            unsafe { (*rest).state.store(0, Ordering::Release) };
        }
        // (A purged span reads as zero already: writing would fault in a page nobody counts.)
        segment_map::set(boundary, segment_map::SEGMENT_START);
        put(boundary, end - boundary, e.dirty);
    }
}

/// Caches a span that holds nothing any more (or unmaps it when it is huge or the cache full).
/// A dirty span is counted as committed whole by the caller.
pub fn put(base: usize, size: usize, dirty: bool) {
    if size <= MAX_CACHED_SPAN {
        let mut cache = CACHE.lock();
        // A full cache makes room by unmapping its oldest purged span: a span just freed is
        // the likelier to be asked for again, and only a dirty one saves page faults.
        let mut evicted = None;
        if cache.len == SLOTS && cache.bytes + size <= MAX_CACHED_BYTES {
            if let Some(oldest) = (0..cache.len)
                .filter(|&i| !cache.entries[i].dirty)
                .min_by_key(|&i| cache.entries[i].cached_at)
            {
                evicted = Some(cache.remove(oldest));
            }
        }
        if cache.len < SLOTS && cache.bytes + size <= MAX_CACHED_BYTES {
            let len = cache.len;
            cache.entries[len] = Entry {
                base,
                size,
                cached_at: os::now_ms(),
                dirty,
            };
            cache.len += 1;
            cache.bytes += size;
            drop(cache);
            if dirty {
                purge::add_dirty(size);
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
    if dirty {
        stats::add_committed(-(size as isize));
    }
    release_span(base, size);
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
            if e.dirty && e.cached_at <= cutoff_ms {
                os::purge(e.base as *mut u8, e.size);
                purge::remove_dirty(e.size);
                stats::add_committed(-(e.size as isize));
                purged += e.size;
                cache.entries[i].dirty = false;
            }
            let e = cache.entries[i];
            let stale = e.cached_at.saturating_add(UNMAP_AFTER_MS) <= cutoff_ms;
            if !e.dirty && (unmap_all || stale) {
                to_unmap[unmap_count] = (e.base, e.size);
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

/// Cached spans and their bytes.
pub fn usage() -> (usize, usize) {
    let cache = CACHE.lock();
    (cache.len, cache.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_big_span_is_split_for_a_smaller_request() {
        // Sizes no other test of this crate caches, so that the best fit is this span.
        let size = 7 * SEGMENT_SIZE + (5 << 12);
        let base = mapped_span(size);
        // SAFETY: the span is mapped and unused.
        unsafe { (base as *mut u8).add(size - 1).write(0xa5) };
        put(base, size, true);
        let want = SEGMENT_SIZE + (3 << 12);
        let (got, got_size, zero) = take(want, false).expect("the cached span fits");
        assert_eq!(
            (got, got_size, zero),
            (base, want, false),
            "the head, dirty, cut to size"
        );
        // The rest of its first two chunks went back to the OS; from the next boundary on it is
        // a span of its own, whose contents survived.
        assert_eq!(
            segment_map::entry(base + 2 * SEGMENT_SIZE),
            segment_map::SEGMENT_START
        );
        let (rest, rest_size, zero) = take(5 * SEGMENT_SIZE, false).expect("the rest is cached");
        assert_eq!(
            (rest, rest_size, zero),
            (base + 2 * SEGMENT_SIZE, 5 * SEGMENT_SIZE + (5 << 12), false)
        );
        // SAFETY: the rest is mapped; its last byte was written above.
        let last = unsafe { (rest as *const u8).add(rest_size - 1).read() };
        assert_eq!(last, 0xa5);
        stats::add_committed(-((want + rest_size) as isize));
        release_span(rest, rest_size);
        release_span(base, want);
    }

    #[test]
    fn a_segment_never_takes_more_than_a_segment() {
        // A dirty span a little over a segment (a freed large block): a small segment's pages
        // would cover only its first 4 MiB, and its tail would later be cached as reading zero
        // while it still held the block's bytes.
        let size = SEGMENT_SIZE + (3 << 19) + (7 << 12);
        let base = mapped_span(size);
        // SAFETY: the span is mapped and unused.
        unsafe { (base as *mut u8).add(size - 1).write(0x5a) };
        put(base, size, true);
        let (got, got_size, zero) = take(SEGMENT_SIZE, true).expect("the cached span fits");
        assert_eq!((got, got_size, zero), (base, SEGMENT_SIZE, false));
        let tail = size - SEGMENT_SIZE;
        let (rest, rest_size, zero) = take(tail, false).expect("the tail is cached");
        assert_eq!(
            (rest, rest_size, zero),
            (base + SEGMENT_SIZE, tail, false),
            "still dirty"
        );
        stats::add_committed(-((SEGMENT_SIZE + tail) as isize));
        release_span(rest, rest_size);
        release_span(base, SEGMENT_SIZE);
    }
}
