//! The span cache: segment-aligned spans that held an empty segment or a freed large block,
//! kept mapped for reuse. A program that frees and reallocates big blocks in a loop reuses
//! resident memory instead of faulting fresh pages in (the cliff mimalloc and jemalloc fall off);
//! a span nobody reuses is purged after the purge delay and unmapped after a longer one, so RSS
//! still falls when the program goes idle.
//!
//! Dirty spans count as committed whole; purged spans read as zero and count nothing.

use crate::segment::{release_span, SEGMENT_SIZE};
use crate::sync::Lock;
use crate::{os, purge, stats};

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

/// Takes the smallest cached span of at least `min` bytes: `(base, size, reads_as_zero)`. A
/// dirty span must be at most twice `min`, so a small block does not pin much resident memory;
/// a purged one may be up to a segment larger (its untouched part costs only address space).
pub fn take(min: usize) -> Option<(usize, usize, bool)> {
    let mut cache = CACHE.lock();
    let dirty_limit = min.saturating_mul(2);
    let clean_limit = dirty_limit.max(min.saturating_add(SEGMENT_SIZE));
    let mut best: Option<usize> = None;
    for i in 0..cache.len {
        let e = cache.entries[i];
        let limit = if e.dirty { dirty_limit } else { clean_limit };
        if e.size >= min && e.size <= limit && best.is_none_or(|b| e.size < cache.entries[b].size) {
            best = Some(i);
        }
    }
    let i = best?;
    let e = cache.entries[i];
    let last = cache.len - 1;
    cache.entries[i] = cache.entries[last];
    cache.len = last;
    cache.bytes -= e.size;
    if e.dirty {
        purge::remove_dirty(e.size);
    }
    Some((e.base, e.size, !e.dirty))
}

/// Caches a span that holds nothing any more (or unmaps it when it is huge or the cache full).
/// A dirty span is counted as committed whole by the caller.
pub fn put(base: usize, size: usize, dirty: bool) {
    if size <= MAX_CACHED_SPAN {
        let mut cache = CACHE.lock();
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
            return;
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
                let last = cache.len - 1;
                cache.entries[i] = cache.entries[last];
                cache.len = last;
                cache.bytes -= e.size;
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
