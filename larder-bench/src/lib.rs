//! larder-bench: the allocator benchmark suite.
//!
//! Two binaries share this library. `larder-bench-worker` runs one workload in its own process
//! with whichever allocator it was built with (see [`built_with`]); `larder-bench` (the runner)
//! starts a worker per allocator, interleaves the runs, measures each child with `wait4`, and
//! writes the markdown table, the raw results and the chart.
//!
//! A map of the source:
//! - [`workloads`]: the allocation patterns, one module each, and the result line a worker prints;
//! - [`runner`]: contenders, child processes, statistics, the report and the chart.

pub mod runner;
pub mod workloads;

/// Which allocator a worker built from this crate installs as `#[global_allocator]`.
///
/// The features are meant to be used one at a time; if several are on (as with
/// `--all-features`), the first of larder, mimalloc, jemalloc wins, and the runner catches a
/// worker that reports a name other than the one its file name promises.
pub const fn built_with() -> &'static str {
    if cfg!(feature = "alloc-larder") {
        "larder"
    } else if cfg!(feature = "alloc-mimalloc") {
        "mimalloc"
    } else if cfg!(feature = "alloc-jemalloc") {
        "jemalloc"
    } else {
        "system"
    }
}
