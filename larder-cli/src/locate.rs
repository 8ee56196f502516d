//! Finding the files that a cargo build puts beside the `larder` executable:
//! liblarder.so (crate larder-c) and larder-bench (crate larder-bench).

use std::path::PathBuf;

use crate::Failure;

/// The path of `name` in the directory of the running executable, if it is
/// there. `build_hint` says which cargo package builds it.
pub fn beside_this_executable(name: &str, build_hint: &str) -> Result<PathBuf, Failure> {
    let exe = std::env::current_exe().map_err(|e| {
        Failure::new(format!(
            "cannot find the larder executable's directory: {e}"
        ))
    })?;
    let dir = exe
        .parent()
        .ok_or_else(|| Failure::new("the larder executable has no directory"))?;
    let candidate = dir.join(name);
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(Failure::new(format!(
            "{} not found; build it with `cargo build --release -p {build_hint}` (it goes beside the larder \
             executable)",
            candidate.display()
        )))
    }
}
