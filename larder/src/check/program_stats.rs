//! The program's own heap figures under check mode: its calls and the sizes it asked for.
//!
//! The core's counters are the wrong figures here. Each checked block is a core block holding a
//! header and redzones besides the program's bytes; a freed block stays a live core block while
//! it sits in the quarantine; and guarded blocks never touch the core. So check mode counts what
//! the program did, at the two places a call succeeds: a block handed out, a live block freed.
//!
//! Counts and requested bytes are added in stripes, one cache line each, picked by the calling
//! thread's number (`tls::thread_number`), so that threads do not write one line on every call. Live bytes are one
//! atomic: the peak is a maximum of the total, which stripes cannot give. Check mode's free
//! already takes the quarantine's lock, a shared line of its own, so one more is in proportion.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::stats::Stats;

const STRIPES: usize = 16;

#[repr(align(64))]
struct Stripe {
    alloc_count: AtomicU64,
    free_count: AtomicU64,
    requested_bytes: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)] // each array element is its own stripe
const EMPTY_STRIPE: Stripe = Stripe {
    alloc_count: AtomicU64::new(0),
    free_count: AtomicU64::new(0),
    requested_bytes: AtomicU64::new(0),
};

static STRIPES_OF: [Stripe; STRIPES] = [EMPTY_STRIPE; STRIPES];
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);
static PEAK_LIVE_BYTES: AtomicU64 = AtomicU64::new(0);

/// The calling thread's stripe.
#[inline(always)]
fn stripe() -> &'static Stripe {
    &STRIPES_OF[super::tls::thread_number() % STRIPES]
}

/// The program was handed a block of `size` bytes (it asked for `size`).
#[inline]
pub fn allocated(size: usize) {
    let s = stripe();
    s.alloc_count.fetch_add(1, Ordering::Relaxed);
    s.requested_bytes.fetch_add(size as u64, Ordering::Relaxed);
    let live = LIVE_BYTES.fetch_add(size as u64, Ordering::Relaxed) + size as u64;
    // Most calls are below the peak: a load, and no write to the shared line.
    if live > PEAK_LIVE_BYTES.load(Ordering::Relaxed) {
        PEAK_LIVE_BYTES.fetch_max(live, Ordering::Relaxed);
    }
}

/// The program freed a live block of `size` bytes.
#[inline]
pub fn freed(size: usize) {
    stripe().free_count.fetch_add(1, Ordering::Relaxed);
    LIVE_BYTES.fetch_sub(size as u64, Ordering::Relaxed);
}

/// The core's figures with the program's own in place of the core's block counts (calls, bytes
/// asked for, bytes live in blocks the program holds, and their peak), and the guard pool's
/// memory added to the core's.
pub fn stats() -> Stats {
    let mut stats = crate::stats();
    let (guard_committed, guard_used) = super::guard::memory();
    stats.committed_bytes += guard_committed as u64;
    stats.reserved_bytes += guard_used as u64;
    let sum = |field: fn(&Stripe) -> &AtomicU64| {
        STRIPES_OF
            .iter()
            .map(|s| field(s).load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    };
    stats.alloc_count = sum(|s| &s.alloc_count);
    stats.free_count = sum(|s| &s.free_count);
    stats.requested_bytes = sum(|s| &s.requested_bytes);
    stats.live_bytes = LIVE_BYTES.load(Ordering::Relaxed);
    stats.live_requested_bytes = stats.live_bytes;
    stats.peak_live_bytes = PEAK_LIVE_BYTES
        .load(Ordering::Relaxed)
        .max(stats.live_bytes);
    stats.live_blocks = stats.alloc_count.saturating_sub(stats.free_count);
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_calls() {
        let before = stats();
        allocated(100);
        allocated(28);
        freed(100);
        let after = stats();
        // Other tests of this binary may count too: only lower bounds hold for them.
        assert!(after.alloc_count >= before.alloc_count + 2);
        assert!(after.free_count > before.free_count);
        assert!(after.requested_bytes >= before.requested_bytes + 128);
        assert!(after.peak_live_bytes >= 128);
        freed(28);
    }
}
