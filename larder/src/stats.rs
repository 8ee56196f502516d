//! Counters and reports. Each heap counts its own allocations and frees in plain (relaxed,
//! owner-written) counters. The fast paths do not touch them: a page's allocations and owner
//! frees are added when the page is refilled, emptied or abandoned (`Page::count_into`), and
//! `stats()` counts the calling thread's pages first, so its own figures are exact; it sums the
//! live heaps and the totals of exited ones. Memory figures (reserved,
//! committed) are global atomics updated on the slow paths that map, purge and unmap.

use core::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};

/// A snapshot of larder's heap, from `larder::stats()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Allocations served (malloc, calloc, realloc that moved, aligned allocations).
    pub alloc_count: u64,
    /// Blocks freed.
    pub free_count: u64,
    /// Bytes asked for, summed over every allocation: the size asked for of large and huge
    /// blocks, the block size (the size class) of small and medium ones, whose requested sizes
    /// the fast paths do not keep.
    pub requested_bytes: u64,
    /// `requested_bytes` of the blocks live now (block sizes for small and medium blocks).
    pub live_requested_bytes: u64,
    /// Bytes in live blocks (block sizes, as `usable_size` reports them).
    pub live_bytes: u64,
    /// Highest `live_bytes` seen (sampled on the slow paths: exact to within about one page of
    /// blocks per thread).
    pub peak_live_bytes: u64,
    /// Blocks live now (`alloc_count - free_count`).
    pub live_blocks: u64,
    /// Bytes of mapped memory that may be resident (not purged).
    pub committed_bytes: u64,
    /// Bytes of address space mapped from the OS.
    pub reserved_bytes: u64,
    /// Free memory still resident, waiting for the purge delay.
    pub dirty_bytes: u64,
    /// Small and medium segments in use (owned or abandoned).
    pub segments: u64,
    /// Segments whose thread exited, waiting to be reclaimed.
    pub abandoned_segments: u64,
    /// Spans in the span cache, and their bytes.
    pub cached_spans: u64,
    /// Bytes in the span cache.
    pub cached_bytes: u64,
    /// Heaps (threads that allocated) alive now.
    pub heaps: u64,
    /// Resident set size of the process (from /proc/self/statm).
    pub resident_bytes: u64,
}

/// One heap's counters: written by the owning thread only, read by `stats()` from any thread.
#[derive(Default)]
pub struct Counters {
    /// Allocations.
    pub alloc_count: AtomicU64,
    /// Frees performed by this thread (of any thread's blocks).
    pub free_count: AtomicU64,
    /// Bytes requested by allocations.
    pub requested_bytes: AtomicU64,
    /// Requested bytes of blocks freed (block size when unknown).
    pub freed_requested_bytes: AtomicU64,
    /// Block bytes allocated.
    pub alloc_bytes: AtomicU64,
    /// Block bytes freed.
    pub freed_bytes: AtomicU64,
}

/// Adds `n` to an owner-written counter without a locked instruction.
#[inline(always)]
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl Counters {
    /// All-zero counters.
    pub const fn new() -> Counters {
        Counters {
            alloc_count: AtomicU64::new(0),
            free_count: AtomicU64::new(0),
            requested_bytes: AtomicU64::new(0),
            freed_requested_bytes: AtomicU64::new(0),
            alloc_bytes: AtomicU64::new(0),
            freed_bytes: AtomicU64::new(0),
        }
    }

    /// Adds these counters to `sum`.
    pub fn add_to(&self, sum: &mut Totals) {
        sum.alloc_count += self.alloc_count.load(Ordering::Relaxed);
        sum.free_count += self.free_count.load(Ordering::Relaxed);
        sum.requested_bytes += self.requested_bytes.load(Ordering::Relaxed);
        sum.freed_requested_bytes += self.freed_requested_bytes.load(Ordering::Relaxed);
        sum.alloc_bytes += self.alloc_bytes.load(Ordering::Relaxed);
        sum.freed_bytes += self.freed_bytes.load(Ordering::Relaxed);
    }

    /// Moves these counters into the totals of exited heaps and zeroes them.
    pub fn retire(&self) {
        for (mine, global) in [
            (&self.alloc_count, &RETIRED.alloc_count),
            (&self.free_count, &RETIRED.free_count),
            (&self.requested_bytes, &RETIRED.requested_bytes),
            (&self.freed_requested_bytes, &RETIRED.freed_requested_bytes),
            (&self.alloc_bytes, &RETIRED.alloc_bytes),
            (&self.freed_bytes, &RETIRED.freed_bytes),
        ] {
            global.fetch_add(mine.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Live block bytes by this heap's own count (may be negative: it frees others' blocks).
    pub fn live_delta(&self) -> isize {
        self.alloc_bytes
            .load(Ordering::Relaxed)
            .wrapping_sub(self.freed_bytes.load(Ordering::Relaxed)) as isize
    }
}

/// Sums of counters.
#[derive(Default, Clone, Copy)]
pub struct Totals {
    /// See `Counters`.
    pub alloc_count: u64,
    /// See `Counters`.
    pub free_count: u64,
    /// See `Counters`.
    pub requested_bytes: u64,
    /// See `Counters`.
    pub freed_requested_bytes: u64,
    /// See `Counters`.
    pub alloc_bytes: u64,
    /// See `Counters`.
    pub freed_bytes: u64,
}

/// Counters of heaps whose threads exited.
pub static RETIRED: Counters = Counters::new();
static RESERVED: AtomicIsize = AtomicIsize::new(0);
static COMMITTED: AtomicIsize = AtomicIsize::new(0);
/// Sum of the live deltas heaps have flushed (see `flush_live`).
static LIVE_FLUSHED: AtomicIsize = AtomicIsize::new(0);
static PEAK_LIVE: AtomicUsize = AtomicUsize::new(0);

/// Adds (or with a negative value removes) mapped address space.
pub fn add_reserved(bytes: isize) {
    RESERVED.fetch_add(bytes, Ordering::Relaxed);
}

/// Adds (or removes) committed memory.
pub fn add_committed(bytes: isize) {
    COMMITTED.fetch_add(bytes, Ordering::Relaxed);
}

/// Publishes a heap's change in live bytes since its last flush and updates the peak.
pub fn flush_live(delta: isize) {
    let live = LIVE_FLUSHED.fetch_add(delta, Ordering::Relaxed) + delta;
    if live > 0 {
        PEAK_LIVE.fetch_max(live as usize, Ordering::Relaxed);
    }
}

/// Assembles a snapshot from summed counters.
pub fn snapshot(t: Totals) -> Stats {
    let live_bytes = t.alloc_bytes.saturating_sub(t.freed_bytes);
    PEAK_LIVE.fetch_max(live_bytes as usize, Ordering::Relaxed);
    let (cached_spans, cached_bytes) = crate::cache::usage();
    Stats {
        alloc_count: t.alloc_count,
        free_count: t.free_count,
        requested_bytes: t.requested_bytes,
        live_requested_bytes: t.requested_bytes.saturating_sub(t.freed_requested_bytes),
        live_bytes,
        peak_live_bytes: PEAK_LIVE.load(Ordering::Relaxed) as u64,
        live_blocks: t.alloc_count.saturating_sub(t.free_count),
        committed_bytes: COMMITTED.load(Ordering::Relaxed).max(0) as u64,
        reserved_bytes: RESERVED.load(Ordering::Relaxed).max(0) as u64,
        dirty_bytes: crate::purge::dirty_bytes() as u64,
        segments: crate::segment::REGISTRY.lock().count as u64,
        abandoned_segments: crate::segment::abandoned_count() as u64,
        cached_spans: cached_spans as u64,
        cached_bytes: cached_bytes as u64,
        heaps: 0,
        resident_bytes: crate::os::resident_bytes() as u64,
    }
}

/// Writes a human-readable report of `s` to `fd` with write(2), without allocating.
pub fn write_report(fd: i32, s: &Stats) {
    let mut out = crate::report::Writer::new(fd);
    out.str("larder heap report\n");
    let rows: [(&str, u64, bool); 16] = [
        ("allocations", s.alloc_count, false),
        ("frees", s.free_count, false),
        ("live blocks", s.live_blocks, false),
        ("requested (total)", s.requested_bytes, true),
        ("live (requested)", s.live_requested_bytes, true),
        ("live (in blocks)", s.live_bytes, true),
        ("peak live", s.peak_live_bytes, true),
        ("committed", s.committed_bytes, true),
        ("reserved", s.reserved_bytes, true),
        ("dirty (awaiting purge)", s.dirty_bytes, true),
        ("segments", s.segments, false),
        ("abandoned segments", s.abandoned_segments, false),
        ("cached spans", s.cached_spans, false),
        ("cached span bytes", s.cached_bytes, true),
        ("heaps", s.heaps, false),
        ("resident (RSS)", s.resident_bytes, true),
    ];
    for (name, value, bytes) in rows {
        out.str("  ");
        out.str(name);
        out.pad_to(26);
        out.u64(value);
        if bytes {
            out.str(" B (");
            out.bytes_human(value);
            out.str(")");
        }
        out.str("\n");
    }
    out.flush();
}
