//! liblarder.so and liblarder.a: larder as the `malloc` of C and C++ programs,
//! preloaded (`LD_PRELOAD=liblarder.so`) or linked (`-llarder`).
//!
//! The layers, each using only those below it:
//! - [`exports`]: the C symbols (`malloc`, `free`, ... and `larder_*`), one-line
//!   forwarders;
//! - [`cxx`]: C++'s `operator new` and `operator delete`, straight to the same rules;
//! - [`c_rules`]: what C expects of them (errno, overflow, alignment rules,
//!   `realloc(p, 0)`), written once, over [`backend`] (larder-check-c compiles
//!   these same files over check mode's entry points);
//! - [`glibc_ext`]: glibc's `mallinfo`, `malloc_trim` and `malloc_stats`, with larder's figures;
//! - [`foreign`]: the one-time warning for pointers larder did not allocate;
//! - [`exit_report`]: the heap record written at exit for `larder run`;
//! - [`early_init`]: larder set up (its `fork` handlers registered) from a constructor;
//! - [`timeline`]: the sampler thread behind `larder run --plot`;
//! - [`line`]: a fixed-size text buffer, because none of this may allocate.
//!
//! Nothing here allocates, locks, or calls `dlsym` (but a failed C++ `new`, which hands
//! over to the C++ runtime to throw): these functions can be
//! called before libc has finished starting, from any thread, inside `fork`.

pub mod backend {
    //! The entry points the C rules sit on: the core's.
    pub use larder_core::check::AllocKind;
    pub use larder_core::raw::*;
    /// The core rounds requests up to malloc's alignment itself.
    pub const EXACT_SIZES: bool = false;

    /// The heap figures of the exit record and the timeline: the core's.
    pub fn stats() -> larder_core::Stats {
        larder_core::stats()
    }

    /// The core does not track which family (malloc, `new`, `new[]`) allocated a block: `alloc`.
    ///
    /// # Safety
    /// As `larder::raw::alloc`.
    #[inline(always)]
    pub unsafe fn alloc_as(size: usize, align: usize, _kind: AllocKind) -> *mut u8 {
        // SAFETY: the caller's contract is raw::alloc's.
        unsafe { alloc(size, align) }
    }

    /// `free`, whichever family frees.
    ///
    /// # Safety
    /// As `larder::raw::free`.
    #[inline(always)]
    pub unsafe fn free_as(ptr: *mut u8, _kind: AllocKind) {
        // SAFETY: the caller's contract is raw::free's.
        unsafe { free(ptr) }
    }
}
pub mod c_rules;
pub mod cxx;
pub mod early_init;
pub mod exit_report;
pub mod exports;
pub mod foreign;
pub mod glibc_ext;
pub mod line;
pub mod timeline;

/// Rust code inside this library (there is little) allocates from larder
/// directly rather than through the exported `malloc` symbol.
#[global_allocator]
static GLOBAL: larder_core::Larder = larder_core::Larder;
