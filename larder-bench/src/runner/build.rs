//! Builds the worker once per allocator with cargo and copies each build to its own file name
//! (`larder-bench-worker-<allocator>`) in the workers folder, since every build overwrites
//! `target/release/larder-bench-worker`. Cargo keeps each feature set's compiled crates apart,
//! so switching between them does not rebuild the dependencies.

use std::path::Path;
use std::process::Command;

/// Builds the workers for `allocators` into `workers`. `target_dir` is the cargo target folder
/// the runner itself was built in (the parent of its `release` folder).
pub fn build_workers(
    allocators: &[String],
    target_dir: &Path,
    workers: &Path,
) -> Result<(), String> {
    std::fs::create_dir_all(workers).map_err(|e| format!("{}: {e}", workers.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for allocator in allocators {
        eprintln!("larder-bench: building the worker with {allocator}");
        let status = Command::new(&cargo)
            .args([
                "build",
                "--release",
                "-p",
                "larder-bench-worker",
                "--features",
            ])
            .arg(format!("alloc-{allocator}"))
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("building the {allocator} worker failed ({status})"));
        }
        let built = target_dir.join("release").join("larder-bench-worker");
        let dest = super::contenders::worker_path(workers, allocator);
        // Copy to a temporary name and rename, so a running worker's file is never rewritten.
        let tmp = dest.with_extension("tmp");
        std::fs::copy(&built, &tmp).map_err(|e| format!("copying {}: {e}", built.display()))?;
        std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    Ok(())
}
