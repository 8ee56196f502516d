//! The workload process: runs one workload with the allocator chosen at build time by the
//! crate's `alloc-*` feature, and prints one result line for the runner.

#[cfg(feature = "alloc-larder")]
#[global_allocator]
static GLOBAL: larder::Larder = larder::Larder;

#[cfg(all(feature = "alloc-mimalloc", not(feature = "alloc-larder")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(
    feature = "alloc-jemalloc",
    not(feature = "alloc-larder"),
    not(feature = "alloc-mimalloc")
))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Which allocator this build installed. The features are meant to be used one at a time; if
/// several are on (as with `--all-features`), the first of larder, mimalloc, jemalloc wins, and
/// the runner catches a worker that reports a name other than the one its file name promises.
const BUILT_WITH: &str = if cfg!(feature = "alloc-larder") {
    "larder"
} else if cfg!(feature = "alloc-mimalloc") {
    "mimalloc"
} else if cfg!(feature = "alloc-jemalloc") {
    "jemalloc"
} else {
    "system"
};

fn main() -> std::process::ExitCode {
    let code = larder_bench::workloads::worker_main(BUILT_WITH);
    // For digging into a result: larder's own counters after the workload, on stderr.
    #[cfg(feature = "alloc-larder")]
    if std::env::var_os("LARDER_BENCH_STATS").is_some() {
        larder::raw::write_stats(2);
    }
    code
}
