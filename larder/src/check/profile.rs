//! Heap profiling by sampled allocation sites (`LARDER_PROFILE=RATE`, `larder run --profile`):
//! liblarder_check.so with check mode's own checks off, blocks straight from the core.
//!
//! Which allocations: the bytes a thread allocates are a line on which sample points fall as a
//! Poisson process of rate 1/RATE, as tcmalloc's and jemalloc's samplers do. Each thread counts
//! down the bytes to its next point (an exponential draw from its own xorshift generator); an
//! allocation that crosses the point is sampled, and the next interval is drawn from its end
//! (the process has no memory, so that is exact). An allocation of `s` bytes is sampled with
//! probability `p = 1 - exp(-s/RATE)` and stands for `w = s/p` bytes: the sum of `w` over the
//! samples of a site is an unbiased estimate of its bytes, and `w(w - s)` summed is an unbiased
//! estimate of that sum's variance (its square root is the standard error the records carry;
//! for blocks much smaller than RATE it is about `estimate / sqrt(samples)`).
//!
//! What it costs: an unsampled allocation pays a thread-local subtraction and a branch; a free
//! pays one test on the address, because sampled blocks are placed at 4 KiB alignment (at most
//! 4 KiB of padding per RATE bytes allocated, under 1% at the default 512 KiB). Only frees of
//! 4 KiB-aligned pointers read a counting filter (one 32-bit counter per hash of the address),
//! and only a filter hit takes the lock. A sample takes the lock and a backtrace
//! (`_Unwind_Backtrace`, no allocation).
//!
//! What is kept, in memory mapped on the first sample (never the heap): a table of sites
//! (stacks) with the bytes allocated, live now and live at the peak, and a table of live
//! sampled blocks by address, so that frees of sampled blocks are recognised. The peak is the
//! moment the sampled estimate of live bytes reaches its highest: each new high starts an
//! epoch, and a site that changes for the first time in an epoch first saves what it held, so
//! the snapshot costs O(1) per sample. At exit the records go to `LARDER_REPORT_FILE`:
//!
//! `larder-profile v1 pid=P rate=R samples=N dropped=N live_bytes=B peak_bytes=B`
//! `larder-site v1 pid=P alloc_samples=N alloc_bytes=B alloc_se=B peak_samples=N peak_bytes=B
//! peak_se=B exit_samples=N exit_bytes=B exit_se=B stack=MODULE+0xOFF;...`

use core::cell::Cell;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};

use super::backtrace::Backtrace;
use super::report::Record;
use crate::alloc as core_alloc;
use crate::options;
use crate::sync::Lock;

/// Sampled blocks start at a multiple of this, so a free of any other address skips the tables.
pub const SAMPLED_ALIGN: usize = 4096;
/// Slots of the site table (open addressing; slot 0 collects stacks that found no room).
const SITE_SLOTS: usize = 1 << 14;
/// Slots of the table of live sampled blocks (open addressing).
const LIVE_SLOTS: usize = 1 << 17;
/// Counters of the filter of sampled addresses.
const FILTER_SLOTS: usize = 1 << 16;

/// Whether profiling is on: unknown until the first call, then on or off for the process's
/// life. A byte of its own rather than the options, so that the check on every malloc and
/// free of liblarder_check.so is one load and a compare (the options need an acquire load, a
/// compare and a load of the field: 6 instructions per malloc+free pair more, callgrind).
static MODE: AtomicU8 = AtomicU8::new(MODE_UNKNOWN);
const MODE_UNKNOWN: u8 = 0;
const MODE_OFF: u8 = 1;
const MODE_ON: u8 = 2;

/// Whether profiling is on (`LARDER_PROFILE` is a non-zero rate).
#[inline(always)]
pub fn enabled() -> bool {
    // The profiler's path first: one compare and a taken branch.
    let mode = MODE.load(Ordering::Relaxed);
    if mode == MODE_ON {
        return true;
    }
    mode == MODE_UNKNOWN && decide_mode()
}

#[cold]
#[inline(never)]
fn decide_mode() -> bool {
    let on = options::get().profile_rate != 0;
    MODE.store(if on { MODE_ON } else { MODE_OFF }, Ordering::Relaxed);
    on
}

thread_local! {
    /// This thread's xorshift64* state; 0 until the thread's first draw seeds it.
    static RNG: Cell<u64> = const { Cell::new(0) };
}

super::tls::tls_word!(
    /// Bytes left before this thread's next sample point (an `i64` in the word's bits).
    countdown,
    "larder_profile_countdown"
);

/// Counts `size` bytes down; true when the allocation is to be sampled.
#[inline(always)]
fn counts_down(size: usize) -> bool {
    let left = (countdown::get() as i64).wrapping_sub(size as i64);
    countdown::set(left as u64);
    left < 0 && sample_point_crossed(size)
}

/// The countdown went below zero: a sample, unless this was the thread's first allocation and
/// its first interval (drawn now) covers it.
#[cold]
#[inline(never)]
fn sample_point_crossed(size: usize) -> bool {
    let rate = options::get().profile_rate;
    if RNG.with(Cell::get) == 0 {
        RNG.with(|r| r.set(seed()));
        let left = (draw_interval(rate) as i64).wrapping_sub(size as i64);
        countdown::set(left as u64);
        if left >= 0 {
            return false;
        }
    }
    countdown::set(draw_interval(rate));
    true
}

/// A seed that differs between threads and processes: the thread's own TLS address, the clock
/// and a counter, mixed by splitmix64 (never 0).
fn seed() -> u64 {
    static THREADS: AtomicU64 = AtomicU64::new(0);
    let here = RNG.with(|r| r as *const Cell<u64> as u64);
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes; CLOCK_MONOTONIC always exists (vDSO, no allocation).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let mixed = splitmix64(
        here ^ (ts.tv_nsec as u64).rotate_left(32)
            ^ ts.tv_sec as u64
            ^ THREADS.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed),
    );
    mixed | 1
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The next exponential interval of mean `rate` bytes, from this thread's generator.
fn draw_interval(rate: u64) -> u64 {
    let x = RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    });
    exponential(x, rate)
}

/// `-ln(u) * rate` for `u` uniform in (0, 1] taken from the top 53 bits of `random`.
fn exponential(random: u64, rate: u64) -> u64 {
    let u = ((random >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
    let interval = -u.ln() * rate as f64;
    // The cast saturates; no interval is anywhere near 2^62 bytes at a sane rate.
    (interval as u64).min(1 << 62)
}

/// What one sample of `size` bytes stands for at `rate`: its weight in bytes, `size / p` with
/// `p = 1 - exp(-size/rate)` the chance that it was sampled, rounded.
pub fn weight(size: u64, rate: u64) -> u64 {
    let s = size.max(1) as f64;
    let p = -(-s / rate as f64).exp_m1();
    if p <= 0.0 {
        return size.max(1);
    }
    ((s / p).round() as u64).max(size.max(1))
}

/// The size for the core: malloc's 16-byte alignment above 8 bytes, kept on the core's fast
/// path as the default library does (its `fast_path_request`), since this library is given
/// exact sizes.
#[inline(always)]
fn core_request(size: usize, align: usize) -> usize {
    if align > 8 || size <= 8 {
        size.max(1)
    } else {
        size.wrapping_add(15) & !15
    }
}

/// Allocates `size` bytes aligned to `align` (a power of two), sampling it when its turn comes.
///
/// # Safety
/// As the core's `alloc`: free the block with this module's [`free`].
#[inline(always)]
pub unsafe fn alloc(size: usize, align: usize) -> *mut u8 {
    if counts_down(size) {
        return alloc_sampled(size, align, false);
    }
    core_alloc::alloc(core_request(size, align), align)
}

/// As [`alloc`], zeroed.
///
/// # Safety
/// As [`alloc`].
#[inline(always)]
pub unsafe fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    if counts_down(size) {
        return alloc_sampled(size, align, true);
    }
    core_alloc::alloc_zeroed(core_request(size, align), align)
}

/// Frees a block of this module's (forgetting it first if it was sampled).
///
/// # Safety
/// As the core's `free`.
#[inline(always)]
pub unsafe fn free(ptr: *mut u8) {
    if (ptr as usize) & (SAMPLED_ALIGN - 1) == 0 && maybe_sampled(ptr as usize) {
        forget(ptr as usize);
    }
    // SAFETY: the caller's contract is the core's.
    unsafe { core_alloc::free(ptr) }
}

/// Resizes a block: counted as an allocation of `new_size` bytes. Sampled blocks (old or new)
/// are moved by allocating, copying and freeing, so that an address is never in the live table
/// twice; others go through the core's `realloc`. A null result leaves the old block intact.
///
/// # Safety
/// As the core's `realloc`.
pub unsafe fn realloc(ptr: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    if ptr.is_null() {
        // SAFETY: realloc of null is an allocation.
        return unsafe { alloc(new_size, align) };
    }
    let old_sampled = (ptr as usize) & (SAMPLED_ALIGN - 1) == 0 && maybe_sampled(ptr as usize);
    let new_sampled = counts_down(new_size);
    if !old_sampled && !new_sampled {
        // SAFETY: the caller's contract is the core's.
        return unsafe { core_alloc::realloc(ptr, new_size, align) };
    }
    let new = if new_sampled {
        alloc_sampled(new_size, align, false)
    } else {
        core_alloc::alloc(core_request(new_size, align), align)
    };
    if new.is_null() {
        return new;
    }
    // SAFETY: `ptr` is a live block of at least its usable size; `new` holds `new_size` bytes;
    // they are distinct blocks.
    unsafe {
        let old_size = core_alloc::usable_size(ptr);
        core::ptr::copy_nonoverlapping(ptr, new, old_size.min(new_size));
        free(ptr);
    }
    new
}

#[cold]
#[inline(never)]
fn alloc_sampled(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    let stack = Backtrace::capture(0);
    let align = align.max(SAMPLED_ALIGN);
    let block = if zeroed {
        core_alloc::alloc_zeroed(size.max(1), align)
    } else {
        core_alloc::alloc(size.max(1), align)
    };
    if !block.is_null() {
        record(block as usize, size as u64, &stack);
    }
    block
}

/// Estimated bytes with their variance, and the samples behind them.
#[derive(Clone, Copy, Default)]
struct Estimate {
    samples: u64,
    bytes: u64,
    variance: u128,
}

impl Estimate {
    fn add(&mut self, weight: u64, size: u64) {
        self.samples += 1;
        self.bytes += weight;
        self.variance += variance_of(weight, size);
    }

    fn remove(&mut self, weight: u64, size: u64) {
        self.samples = self.samples.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(weight);
        self.variance = self.variance.saturating_sub(variance_of(weight, size));
    }

    fn standard_error(&self) -> u64 {
        (self.variance as f64).sqrt().round() as u64
    }
}

/// One sample's share of its estimate's variance: `w (w - s)`.
fn variance_of(weight: u64, size: u64) -> u128 {
    weight as u128 * weight.saturating_sub(size) as u128
}

/// One allocation site: a stack, and its estimates.
#[derive(Clone, Copy)]
struct Site {
    hash: u64,
    stack: Backtrace,
    allocated: Estimate,
    live: Estimate,
    /// What `live` was at the peak of epoch `peak_epoch` (see the module's notes).
    at_peak: Estimate,
    peak_epoch: u64,
}

/// A live sampled block. `addr == 0`: an empty slot.
#[derive(Clone, Copy)]
struct LiveBlock {
    addr: usize,
    site: u32,
    size: u64,
    weight: u64,
}

struct Tables {
    sites: *mut Site,
    live: *mut LiveBlock,
    sites_used: usize,
    live_used: usize,
    /// The estimate of live bytes (all sites), its highest so far, and the peak's epoch.
    live_bytes: u64,
    peak_bytes: u64,
    epoch: u64,
    samples: u64,
    /// Samples not kept because the live table was full.
    dropped: u64,
}

// SAFETY: the tables' memory is only touched under the lock that holds them.
unsafe impl Send for Tables {}

impl Tables {
    /// No tables mapped yet, nothing counted.
    const EMPTY: Tables = Tables {
        sites: core::ptr::null_mut(),
        live: core::ptr::null_mut(),
        sites_used: 0,
        live_used: 0,
        live_bytes: 0,
        peak_bytes: 0,
        epoch: 0,
        samples: 0,
        dropped: 0,
    };
}

static TABLES: Lock<Tables> = Lock::new(Tables::EMPTY);

/// The counting filter: how many live sampled blocks hash to each counter. Read without the
/// lock by frees (a block being freed was inserted before the pointer reached the freeing
/// thread, so its counter is non-zero), written under it.
static FILTER: AtomicPtr<AtomicU32> = AtomicPtr::new(core::ptr::null_mut());

fn mix(addr: usize) -> usize {
    ((addr as u64 >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) as usize
}

fn filter_slot(addr: usize) -> Option<&'static AtomicU32> {
    let filter = FILTER.load(Ordering::Acquire);
    if filter.is_null() {
        return None;
    }
    // SAFETY: the filter maps FILTER_SLOTS counters, never unmapped; the index is masked.
    Some(unsafe { &*filter.add(mix(addr) & (FILTER_SLOTS - 1)) })
}

#[inline]
fn maybe_sampled(addr: usize) -> bool {
    addr != 0 && filter_slot(addr).is_some_and(|c| c.load(Ordering::Acquire) != 0)
}

/// Maps the tables on the first sample; false when the OS refuses.
fn map_tables(t: &mut Tables) -> bool {
    if !t.sites.is_null() {
        return true;
    }
    let sites = SITE_SLOTS * core::mem::size_of::<Site>();
    let live = LIVE_SLOTS * core::mem::size_of::<LiveBlock>();
    let filter = FILTER_SLOTS * core::mem::size_of::<AtomicU32>();
    // Zeroed memory is an empty table (hash 0 and addr 0 mark free slots) and zero counters.
    let Some(base) = map_zeroed(sites + live + filter) else {
        return false;
    };
    t.sites = base.cast();
    // SAFETY: the offsets lie inside the mapping, and each table's start is aligned (every
    // size above is a multiple of 64).
    unsafe {
        t.live = base.add(sites).cast();
        FILTER.store(base.add(sites + live).cast(), Ordering::Release);
    }
    // Slot 0: the stacks that found no room of their own.
    // SAFETY: slot 0 lies in the mapping.
    unsafe { (*t.sites).hash = 1 };
    t.sites_used = 1;
    true
}

/// `bytes` of zeroed read-write memory from the OS (reserved, backed as touched), never from
/// the heap; `None` when the OS refuses.
fn map_zeroed(bytes: usize) -> Option<*mut u8> {
    // SAFETY: an anonymous private mapping with no address hint touches no existing memory.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p.cast())
}

fn stack_hash(stack: &Backtrace) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &f in stack.frames() {
        h = splitmix64(h ^ f as u64);
    }
    // 0 marks a free slot, 1 the overflow site.
    h.max(2)
}

impl Tables {
    /// The site of `stack`, created when new (slot 0 when the table is three quarters full).
    fn site(&mut self, stack: &Backtrace) -> u32 {
        let hash = stack_hash(stack);
        let mut i = (hash as usize) & (SITE_SLOTS - 1);
        loop {
            if i != 0 {
                // SAFETY: `i < SITE_SLOTS`, inside the mapped table.
                let site = unsafe { &mut *self.sites.add(i) };
                if site.hash == hash && site.stack.frames() == stack.frames() {
                    return i as u32;
                }
                if site.hash == 0 {
                    if self.sites_used >= SITE_SLOTS / 4 * 3 {
                        return 0;
                    }
                    self.sites_used += 1;
                    site.hash = hash;
                    site.stack = *stack;
                    site.peak_epoch = u64::MAX;
                    return i as u32;
                }
            }
            i = (i + 1) & (SITE_SLOTS - 1);
        }
    }

    fn site_mut(&mut self, index: u32) -> &mut Site {
        // SAFETY: site indices come from `site`, below SITE_SLOTS.
        unsafe { &mut *self.sites.add(index as usize) }
    }

    /// Saves the site's live estimate as it stood at the latest peak, the first time it
    /// changes after that peak.
    fn before_change(&mut self, index: u32) {
        let epoch = self.epoch;
        let site = self.site_mut(index);
        if site.peak_epoch != epoch {
            site.at_peak = site.live;
            site.peak_epoch = epoch;
        }
    }

    fn slot(&mut self, i: usize) -> &mut LiveBlock {
        // SAFETY: callers mask `i` below LIVE_SLOTS; the table is mapped; the lock is held.
        unsafe { &mut *self.live.add(i & (LIVE_SLOTS - 1)) }
    }

    fn insert_live(&mut self, block: LiveBlock) -> bool {
        if self.live_used >= LIVE_SLOTS / 4 * 3 {
            return false;
        }
        let mut i = mix(block.addr);
        while self.slot(i).addr != 0 {
            i += 1;
        }
        *self.slot(i) = block;
        self.live_used += 1;
        true
    }

    /// Takes `addr` out of the live table (backward-shift deletion: no tombstones, and only
    /// this lock's holder ever reads the table).
    fn remove_live(&mut self, addr: usize) -> Option<LiveBlock> {
        let mut i = mix(addr) & (LIVE_SLOTS - 1);
        loop {
            let entry = *self.slot(i);
            if entry.addr == 0 {
                return None;
            }
            if entry.addr == addr {
                break;
            }
            i = (i + 1) & (LIVE_SLOTS - 1);
        }
        let found = *self.slot(i);
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & (LIVE_SLOTS - 1);
            let entry = *self.slot(j);
            if entry.addr == 0 {
                break;
            }
            let home = mix(entry.addr) & (LIVE_SLOTS - 1);
            // Move the entry into the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                *self.slot(hole) = entry;
                hole = j;
            }
        }
        self.slot(hole).addr = 0;
        self.live_used -= 1;
        Some(found)
    }
}

fn record(addr: usize, size: u64, stack: &Backtrace) {
    let rate = options::get().profile_rate;
    let weight = weight(size, rate);
    let mut t = TABLES.lock();
    if !map_tables(&mut t) {
        return;
    }
    t.samples += 1;
    let site = t.site(stack);
    if !t.insert_live(LiveBlock {
        addr,
        site,
        size,
        weight,
    }) {
        t.dropped += 1;
        return;
    }
    if let Some(counter) = filter_slot(addr) {
        counter.fetch_add(1, Ordering::Release);
    }
    t.before_change(site);
    let s = t.site_mut(site);
    s.allocated.add(weight, size);
    s.live.add(weight, size);
    t.live_bytes += weight;
    if t.live_bytes > t.peak_bytes {
        t.peak_bytes = t.live_bytes;
        t.epoch += 1;
    }
}

#[cold]
#[inline(never)]
fn forget(addr: usize) {
    let mut t = TABLES.lock();
    let Some(block) = t.remove_live(addr) else {
        return;
    };
    if let Some(counter) = filter_slot(addr) {
        counter.fetch_sub(1, Ordering::Release);
    }
    t.before_change(block.site);
    t.site_mut(block.site).live.remove(block.weight, block.size);
    t.live_bytes = t.live_bytes.saturating_sub(block.weight);
}

/// Writes the profile records to `LARDER_REPORT_FILE` (called once, at exit). The sites are
/// copied out under the lock into memory mapped for the purpose, and named (`dladdr`) after it
/// is released: `dladdr` takes the loader's lock, which a thread in `dlopen` may hold while it
/// allocates.
pub fn at_exit() {
    let (copy, len, header) = {
        let t = TABLES.lock();
        copy_sites(&t)
    };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u64;
    let mut r = Record::new();
    r.push(b"larder-profile v1 pid=");
    r.num(pid, 10);
    r.push(b" rate=");
    r.num(options::get().profile_rate, 10);
    for (key, value) in [
        (&b" samples="[..], header[0]),
        (b" dropped=", header[1]),
        (b" live_bytes=", header[2]),
        (b" peak_bytes=", header[3]),
    ] {
        r.push(key);
        r.num(value, 10);
    }
    r.append_to_report_file();
    for i in 0..len {
        // SAFETY: the first `len` sites of the copy were written above.
        let site = unsafe { &*copy.add(i) };
        let mut r = Record::new();
        r.push(b"larder-site v1 pid=");
        r.num(pid, 10);
        for (name, e) in [
            (&b"alloc"[..], &site.allocated),
            (b"peak", &site.at_peak),
            (b"exit", &site.live),
        ] {
            for (key, value) in [
                (&b"_samples="[..], e.samples),
                (b"_bytes=", e.bytes),
                (b"_se=", e.standard_error()),
            ] {
                r.push(b" ");
                r.push(name);
                r.push(key);
                r.num(value, 10);
            }
        }
        if site.stack.len > 0 {
            r.frames(b"stack", Some(&site.stack));
        }
        r.append_to_report_file();
    }
    if !copy.is_null() {
        // SAFETY: `copy_sites` mapped the copy with this length; it is not used after.
        unsafe { libc::munmap(copy.cast(), len.max(1) * core::mem::size_of::<Site>()) };
    }
}

/// The sites with samples, copied into a mapping of `len.max(1)` sites (null when there is
/// nothing to copy or no memory: then only the header is written), their live figures at the
/// peak resolved; and the header's figures.
fn copy_sites(t: &Tables) -> (*mut Site, usize, [u64; 4]) {
    let header = [t.samples, t.dropped, t.live_bytes, t.peak_bytes];
    if t.sites.is_null() {
        return (core::ptr::null_mut(), 0, header);
    }
    let Some(copy) = map_zeroed(t.sites_used.max(1) * core::mem::size_of::<Site>()) else {
        return (core::ptr::null_mut(), 0, header);
    };
    let copy = copy.cast::<Site>();
    let mut len = 0;
    for i in 0..SITE_SLOTS {
        // SAFETY: `i < SITE_SLOTS`, in the mapped table; the caller holds the lock.
        let site = unsafe { &*t.sites.add(i) };
        if site.hash != 0 && site.allocated.samples > 0 && len < t.sites_used {
            let mut site = *site;
            if site.peak_epoch != t.epoch {
                site.at_peak = site.live;
            }
            // SAFETY: `len < sites_used`, inside the copy's mapping.
            unsafe { copy.add(len).write(site) };
            len += 1;
        }
    }
    (copy, len, header)
}

/// Fork handlers: the tables' lock is held across `fork`, so the child's copy is consistent.
pub fn lock_for_fork() {
    TABLES.lock_for_fork();
}

/// Releases the lock taken by `lock_for_fork`, in the parent or the child.
pub fn unlock_after_fork() {
    // SAFETY: called only after `lock_for_fork` by the forking thread (or its child copy).
    unsafe { TABLES.unlock_after_fork() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_scale_small_blocks_to_the_rate_and_keep_large_ones() {
        let rate = 512 << 10;
        // A 16-byte block is sampled with p ~ 16/rate: it stands for about `rate` bytes.
        let w = weight(16, rate);
        assert!((rate..rate + 16).contains(&w), "{w}");
        // A block many times the rate is always sampled and stands for itself.
        assert_eq!(weight(64 << 20, rate), 64 << 20);
        // At s = rate, p = 1 - 1/e.
        let w = weight(rate, rate) as f64;
        let want = rate as f64 / (1.0 - (-1.0f64).exp());
        assert!((w - want).abs() < 1.0, "{w} {want}");
    }

    #[test]
    fn exponential_draws_have_the_rate_as_their_mean() {
        let rate = 1u64 << 19;
        let mut x = 0x1234_5678_9abc_def1u64;
        let n = 200_000u64;
        let mut sum = 0f64;
        for _ in 0..n {
            x = splitmix64(x);
            sum += exponential(x, rate) as f64;
        }
        let mean = sum / n as f64;
        // The standard error of the mean of n exponentials is rate / sqrt(n) (~0.22%).
        assert!((mean / rate as f64 - 1.0).abs() < 0.01, "mean {mean}");
    }

    /// Simulates the thread's sampler over a known stream of allocations: the estimate of the
    /// bytes allocated falls within four of its own standard errors of the truth, and the
    /// standard error is about truth / sqrt(samples) for small blocks.
    #[test]
    fn the_sampled_estimate_is_within_its_stated_error() {
        let rate = 64 << 10;
        let mut x = 0x00dd_ba11_cafe_5eed_u64;
        for round in 0..4 {
            let mut truth = 0u64;
            let mut estimate = Estimate::default();
            let mut countdown = exponential(splitmix64(x), rate) as i64;
            for i in 0..100_000u64 {
                x = splitmix64(x ^ i);
                // Sizes from 8 bytes to 256 KiB, most of them small.
                let size = 8u64 << ((x >> 7) % (16 - 2 * round as u64));
                truth += size;
                countdown -= size as i64;
                if countdown < 0 {
                    estimate.add(weight(size, rate), size);
                    x = splitmix64(x);
                    countdown = exponential(x, rate) as i64;
                }
            }
            let se = estimate.standard_error() as f64;
            let error = (estimate.bytes as f64 - truth as f64).abs();
            assert!(se > 0.0);
            assert!(
                error <= 4.0 * se,
                "round {round}: estimate {} truth {truth} se {se}",
                estimate.bytes
            );
        }
    }

    #[test]
    fn the_live_table_forgets_what_it_held_and_keeps_the_rest() {
        // A table of its own (not the process's).
        let live_bytes = LIVE_SLOTS * core::mem::size_of::<LiveBlock>();
        let p = map_zeroed(live_bytes).expect("a mapping");
        let mut t = Tables {
            live: p.cast(),
            ..Tables::EMPTY
        };
        // Enough addresses (at 4 KiB steps, as sampled blocks lie) that the table has long
        // runs of probed slots; removing every other one shifts entries back across them.
        let n = LIVE_SLOTS / 4 * 3 - 1;
        let addr = |i: usize| (i + 1) * SAMPLED_ALIGN * 3;
        for i in 0..n {
            assert!(t.insert_live(LiveBlock {
                addr: addr(i),
                site: i as u32,
                size: 1,
                weight: 1
            }));
        }
        for i in (0..n).step_by(2) {
            assert_eq!(t.remove_live(addr(i)).map(|b| b.site), Some(i as u32));
        }
        for i in 0..n {
            let found = t.remove_live(addr(i)).map(|b| b.site);
            assert_eq!(found, (i % 2 == 1).then_some(i as u32), "address {i}");
        }
        assert_eq!(t.live_used, 0);
        // SAFETY: mapped above, no longer used.
        unsafe { libc::munmap(p.cast(), live_bytes) };
    }
}
