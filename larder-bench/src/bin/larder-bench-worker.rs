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

fn main() -> std::process::ExitCode {
    larder_bench::workloads::worker_main()
}
