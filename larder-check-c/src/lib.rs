//! liblarder_check.so: larder's check mode as the `malloc` of C and C++
//! programs (`LD_PRELOAD=liblarder_check.so`, or `larder run --check`).
//!
//! The C symbols, C's rules, the foreign-pointer warning and the exit record
//! are liblarder.so's own source files (larder-c/src), compiled here over a
//! different [`backend`]: check mode's entry points (`larder::check`) instead
//! of the core's. One copy of the rules, two libraries, and the default one
//! pays nothing for the checks.

#[path = "../../larder-c/src/c_rules.rs"]
pub mod c_rules;
#[path = "../../larder-c/src/exit_report.rs"]
pub mod exit_report;
#[path = "../../larder-c/src/exports.rs"]
pub mod exports;
#[path = "../../larder-c/src/foreign.rs"]
pub mod foreign;
#[path = "../../larder-c/src/line.rs"]
pub mod line;
#[path = "../../larder-c/src/timeline.rs"]
pub mod timeline;

pub mod backend {
    //! The entry points the C rules sit on: check mode's.
    pub use larder_core::check::{alloc, alloc_zeroed, free, owns, realloc, usable_size};
    pub use larder_core::raw::write_stats;
    /// Check mode needs the requested size: what lies past it is redzone.
    pub const EXACT_SIZES: bool = true;
}

/// Rust code inside this library allocates from the core directly: its own
/// blocks are not the program's, and are not checked.
#[global_allocator]
static GLOBAL: larder_core::Larder = larder_core::Larder;

/// Run at `exit` after the program's own destructors: the end-of-life checks.
#[used]
#[link_section = ".fini_array"]
static CHECK_AT_EXIT: extern "C" fn() = check_at_exit;

extern "C" fn check_at_exit() {
    larder_core::check::at_exit_from_fini();
}

/// Run by the dynamic linker before `main`: check mode's fork handlers.
#[used]
#[link_section = ".init_array"]
static CHECK_INIT: extern "C" fn() = check_init;

extern "C" fn check_init() {
    larder_core::check::init();
}
