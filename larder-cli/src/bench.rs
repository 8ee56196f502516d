//! `larder bench`: the benchmark suite is its own program, larder-bench, built
//! into the same directory; this replaces the current process with it.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::{locate, Failure};

/// Executes larder-bench with `args`; returns only if that fails.
pub fn exec_bench(args: &[OsString]) -> Result<u8, Failure> {
    let bench = locate::beside_this_executable("larder-bench", "larder-bench")?;
    let error = Command::new(&bench).args(args).exec();
    Err(Failure::new(format!(
        "cannot run {}: {error}",
        bench.display()
    )))
}
