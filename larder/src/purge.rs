//! Giving memory back to the OS after a delay, from a background thread.
//!
//! Free pages and cached spans stay resident for the purge delay after they empty, so a program
//! that frees and reallocates reuses warm memory; after the delay the purger thread purges them
//! (MADV_DONTNEED), so RSS falls within a fraction of a second even when the program then sits
//! idle and never calls the allocator again (mimalloc and jemalloc purge only from inside
//! allocator calls).
//!
//! The purger starts on first need (once enough memory is dirty), sleeps on a futex while there
//! is nothing to purge, and never touches a page without winning the page's `purge` state
//! (`page::purge_state`), so an owner can take a free page at any time.

use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicU32, AtomicU8, Ordering};

use crate::page::purge_state;
use crate::segment::{Segment, REGISTRY};
use crate::{cache, os, stats};

/// How long free memory stays resident before the purger gives it back.
/// (`LARDER_PURGE_DELAY_MS`, 200 by default.)
pub fn purge_delay_ms() -> u64 {
    crate::options::get().purge_delay_ms
}
/// How often the purger looks while something is dirty.
const TICK_MS: u64 = 100;
/// Dirty bytes that justify starting the purger thread.
const START_THRESHOLD: isize = 1 << 20;

static DIRTY_BYTES: AtomicIsize = AtomicIsize::new(0);

const NOT_STARTED: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;
const FAILED: u8 = 3;
/// Asked to end (see `stop`); it becomes `NOT_STARTED` as the thread ends.
const STOPPING: u8 = 4;
static PURGER: AtomicU8 = AtomicU8::new(NOT_STARTED);
/// Futex word the purger sleeps on while nothing is dirty (1 = asleep).
static ASLEEP: AtomicU32 = AtomicU32::new(0);
/// Set by a free into a segment whose thread has exited: nothing is dirty yet (the block only
/// joins its page's `thread_free` list), but only the purger's reaping pass will free the pages
/// such frees empty, so it must keep ticking (and be started) until it has looked.
static ABANDONED_FREES: AtomicBool = AtomicBool::new(false);

/// Free bytes that are still resident (free pages, dirty cached spans).
pub fn dirty_bytes() -> usize {
    DIRTY_BYTES.load(Ordering::Relaxed).max(0) as usize
}

/// Records `bytes` of newly free, resident memory.
pub fn add_dirty(bytes: usize) {
    DIRTY_BYTES.fetch_add(bytes as isize, Ordering::Relaxed);
    wake();
}

/// Wakes the purger if it sleeps (new dirty memory, or a segment abandoned: other threads may
/// empty it with their frees, and only the purger's pass releases it then).
pub fn wake() {
    if ASLEEP.load(Ordering::Relaxed) == 1 {
        ASLEEP.store(0, Ordering::Relaxed);
        os::futex_wake(&ASLEEP, 1);
    }
}

/// How long the purger sleeps with nothing dirty: long, unless abandoned segments wait to be
/// reaped (then about once a second, so that one emptied by remote frees goes back within a
/// second or so).
fn idle_sleep_ms() -> u64 {
    if crate::segment::abandoned_count() > 0 {
        1000
    } else {
        60_000
    }
}

/// Records that `bytes` of free memory were purged or taken back into use.
pub fn remove_dirty(bytes: usize) {
    DIRTY_BYTES.fetch_sub(bytes as isize, Ordering::Relaxed);
}

/// Records a free into a segment that no heap owns (its thread exited).
#[inline]
pub fn note_abandoned_free() {
    if !ABANDONED_FREES.load(Ordering::Relaxed) {
        // SeqCst, against the purger's announce-then-check before it sleeps.
        ABANDONED_FREES.store(true, Ordering::SeqCst);
        wake();
    }
}

/// Starts the purger thread if memory waits for it. Called where the caller's heap is
/// consistent and no lock of larder's is held, because `pthread_create` may call `malloc`: at
/// the end of the allocation slow path, and at the end of the free paths that make memory
/// dirty or free into abandoned segments (a program whose last act is freeing never runs an
/// allocation slow path again, and its memory would stay resident for as long as it lives).
#[inline]
pub fn maybe_start() {
    if PURGER.load(Ordering::Relaxed) == NOT_STARTED
        && (DIRTY_BYTES.load(Ordering::Relaxed) >= START_THRESHOLD
            || ABANDONED_FREES.load(Ordering::Relaxed))
    {
        start();
    }
}

/// Whether the purger has work beyond dirty bytes; takes the abandoned-frees mark.
fn take_abandoned_frees() -> bool {
    ABANDONED_FREES.load(Ordering::Relaxed) && ABANDONED_FREES.swap(false, Ordering::SeqCst)
}

#[cold]
fn start() {
    if PURGER
        .compare_exchange(NOT_STARTED, STARTING, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    // SAFETY: all pointers passed are to valid local variables; the new thread runs
    // `purger_main`, which touches only larder's global state. Blocking every signal around the
    // creation makes the thread inherit a full mask, so it never runs a program's handlers.
    let ok = unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, 256 * 1024);
        let mut thread: libc::pthread_t = 0;
        let rc = libc::pthread_create(&mut thread, &attr, purger_main, core::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        rc == 0
    };
    PURGER.store(if ok { RUNNING } else { FAILED }, Ordering::Release);
}

extern "C" fn purger_main(_: *mut libc::c_void) -> *mut libc::c_void {
    // After a free into an abandoned segment, ticks go on for a purge delay and a tick, so that
    // a reaping pass sees the segment once the frees have stopped, old enough to be reaped.
    let mut reap_until = 0;
    loop {
        if PURGER.load(Ordering::SeqCst) == STOPPING {
            // The last thread that allocated has gone: what it freed last would otherwise stay
            // resident until another thread allocates, which may be never.
            purge_expired(u64::MAX, false);
            PURGER.store(NOT_STARTED, Ordering::Release);
            return core::ptr::null_mut();
        }
        if take_abandoned_frees() {
            reap_until = os::now_ms() + purge_delay_ms() + TICK_MS;
        }
        if DIRTY_BYTES.load(Ordering::Relaxed) <= 0 && os::now_ms() >= reap_until {
            ASLEEP.store(1, Ordering::SeqCst);
            // Re-check after announcing sleep, so that a concurrent `add_dirty`,
            // `note_abandoned_free` or `stop` cannot be missed.
            if DIRTY_BYTES.load(Ordering::SeqCst) <= 0
                && !ABANDONED_FREES.load(Ordering::SeqCst)
                && PURGER.load(Ordering::SeqCst) != STOPPING
            {
                os::futex_wait(&ASLEEP, 1, Some(idle_sleep_ms()));
            }
            ASLEEP.store(0, Ordering::Relaxed);
        }
        let tick = AtomicU32::new(0);
        os::futex_wait(&tick, 0, Some(TICK_MS));
        purge_expired(os::now_ms().saturating_sub(purge_delay_ms()), false);
    }
}

/// Purges every free page and cached span that became free before `cutoff_ms`; with `force`,
/// also unmaps every purged cached span. Returns the bytes purged. First frees the pages that
/// other threads emptied in segments abandoned before `cutoff_ms`, for a later call to purge.
pub fn purge_expired(cutoff_ms: u64, force: bool) -> usize {
    crate::segment::reap_abandoned(cutoff_ms);
    let mut purged = cache::purge_expired(cutoff_ms, force);
    let reg = REGISTRY.lock();
    reg.for_each(|seg| {
        // SAFETY: registered segments stay mapped and active while the registry lock is held;
        // their page count and layout do not change while registered.
        let count = unsafe { (*seg).page_count } as usize;
        for i in 0..count {
            // SAFETY: i < page_count.
            let (page, (start, bytes)) =
                unsafe { (Segment::page(seg, i), Segment::page_area(seg, i)) };
            // SAFETY: page metadata is valid; `purge` and `freed_at` are atomics shared with
            // the owner.
            let page = unsafe { &*page };
            if bytes == 0
                || page.purge.load(Ordering::Relaxed) != purge_state::FREE_DIRTY
                || page.freed_at.load(Ordering::Relaxed) > cutoff_ms
            {
                continue;
            }
            if page
                .purge
                .compare_exchange(
                    purge_state::FREE_DIRTY,
                    purge_state::PURGING,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            os::purge(start, bytes);
            remove_dirty(bytes);
            stats::add_committed(-(bytes as isize));
            purged += bytes;
            page.purge.store(purge_state::PURGED, Ordering::Release);
        }
    });
    purged
}

/// Asks the purger thread to end, and wakes it: the last thread that allocated is exiting, and
/// the purger must not be what keeps the process alive (see `heap::on_thread_exit`). Memory
/// freed after this waits for the next purger, which the next allocation slow path starts if
/// enough is dirty.
pub fn stop() {
    if PURGER
        .compare_exchange(RUNNING, STOPPING, Ordering::SeqCst, Ordering::Relaxed)
        .is_ok()
    {
        ASLEEP.store(0, Ordering::SeqCst);
        os::futex_wake(&ASLEEP, 1);
    }
}

/// Forgets the purger thread in a `fork` child, where it does not exist.
pub fn after_fork_in_child() {
    let state = PURGER.load(Ordering::Relaxed);
    if state == RUNNING || state == STARTING || state == STOPPING {
        PURGER.store(NOT_STARTED, Ordering::Relaxed);
    }
    ASLEEP.store(0, Ordering::Relaxed);
}
