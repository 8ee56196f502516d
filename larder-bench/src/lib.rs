//! larder-bench: the allocator benchmark suite.
//!
//! Two binaries share this library. `larder-bench-worker` (the package in `worker/`) runs one
//! workload in its own process with whichever allocator it was built with; `larder-bench` (the runner)
//! starts a worker per allocator, interleaves the runs, measures each child with `wait4`, and
//! writes the markdown table, the raw results and the chart.
//!
//! A map of the source:
//! - [`workloads`]: the allocation patterns, one module each, and the result line a worker prints;
//! - [`runner`]: contenders, child processes, statistics, the report and the chart.

pub mod runner;
pub mod workloads;
