//! larder: a memory allocator and the toolkit around it.
//!
//! Use it as Rust's global allocator:
//! ```
//! #[global_allocator]
//! static GLOBAL: larder::Larder = larder::Larder;
//!
//! fn main() {
//!     let v: Vec<u64> = (0..1000).collect();
//!     assert_eq!(v.iter().sum::<u64>(), 499_500);
//! }
//! ```
//!
//! Map of the source, lowest layer first (a module uses only modules above it in this list):
//! - `os`: mmap, munmap, madvise, futex, clock, write(2): the only code that talks to the OS;
//! - `sync`: the futex lock of the few global structures;
//! - `size_class`: size ↔ class tables;
//! - `segment_map`: which 4 MiB chunks of the address space are larder's;
//! - `page`: one page's three free lists; `remote`: frees from other threads;
//! - `segment`: aligned segments carved into pages, single-block segments;
//! - `cache`: spans kept for reuse; `purge`: giving memory back after a delay;
//! - `heap`: the per-thread heap, the slow path, abandon and reclaim;
//! - `alloc`: the fast paths; `stats`, `report`: counters and messages;
//! - `options`: every `LARDER_*` variable, one typed table;
//! - `global` (`Larder`), `raw` (for the C library): the public faces;
//! - `check`: check mode (`Checked`, `liblarder_check.so`), a layer over `alloc` that finds heap
//!   bugs (redzones, quarantine, double and invalid frees, backtraces), and its heap profiler
//!   (`check::profile`: sampled allocation sites, `LARDER_PROFILE`);
//! - `kit`: allocation strategies (arena, pool, slab, buffer) and test wrappers.

mod alloc;
mod atomic;
mod cache;
mod freed;
mod global;
mod heap;
mod os;
mod page;
mod purge;
mod remote;
pub mod report;
mod segment;
mod segment_map;
mod size_class;
mod stats;
mod sync;

pub mod check;
pub mod kit;
pub mod options;
pub mod raw;

pub use check::Checked;
pub use global::Larder;
pub use stats::Stats;

/// The real size of a live block (at least what was asked for); 0 for null or a pointer larder
/// does not own.
///
/// # Safety
/// `ptr` must be null, memory larder does not own, or a live block from larder (not one that
/// was freed: its memory may have been returned to the OS).
pub unsafe fn usable_size(ptr: *const u8) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { alloc::usable_size(ptr) }
}

/// A snapshot of the heap's counters and memory figures.
pub fn stats() -> Stats {
    let (totals, heaps) = heap::totals();
    let mut s = stats::snapshot(totals);
    s.heaps = heaps as u64;
    s
}

/// Gives unused memory back to the OS now. Without `force`, only memory free for longer than
/// the purge delay; with `force`, every free page and cached span of the process, after taking
/// in the segments of exited threads (the calling thread's own empty pages are freed too).
pub fn collect(force: bool) {
    heap::collect(force);
}

/// The cross-thread free list's code, exposed only to the model checker (`tests/loom_remote.rs`,
/// built with `--cfg loom`), which runs it on loom's atomics.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_model {
    pub use crate::atomic::AtomicWord;
    pub use crate::page::Block;
    pub use crate::remote::{
        count_of, free_remote_chain_on, head_of, set_delayed_state_on, take_delayed_on,
        take_thread_free_on, DelayedFree, DELAYED_FREEING, NEVER_DELAYED, NORMAL, STATE_MASK,
        USE_DELAYED,
    };
}

pub use kit::{Arena, Buffer, Counting, Failing, Key, Pool, PoolBox, Slab};
